"""zto as deployed: gunicorn started as ``make run`` does, driven by the real ``openai``
package (no retries) and by raw ``requests`` for what the SDK cannot send.

``live`` is the session's server on the shared fake upstream (anonymous guest tokens,
default settings). ``configured`` is a second server for this module, started from a
directory with ``.env`` and ``.env.local`` plus environment overrides: a static
ZAI_TOKEN, two API keys, DEBUG_MODE, THINKING_MODE=think, DEFAULT_STREAM=true and a
small MAX_REQUEST_BYTES.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import openai
import pytest
import requests

import zai_scenarios
from conftest import API_KEY, start_gunicorn, wait_for
from fake_zai import FakeZai

pytestmark = pytest.mark.e2e

THINKING = zai_scenarios.SCENARIOS["thinking"]
STATIC_TOKEN = "zai-static-secret-token-0123456789abcdef"
ENV_KEYS = ("sk-env-key-one-4f1c9a", "sk-env-key-two-77b2d0")
LOCAL_KEY = "sk-local-key-shadowed"
MAX_BYTES = 2000


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def sse_lines(response: requests.Response) -> list[str]:
    return [line for line in response.iter_lines(decode_unicode=True) if line.startswith("data: ")]


def assert_error_shape(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.fixture
def oai(live, sdk):
    return sdk(live)


@pytest.fixture(scope="module")
def configured_fake():
    with FakeZai(accepted_tokens=(STATIC_TOKEN,)) as fake:
        yield fake


@pytest.fixture(scope="module")
def configured_server(configured_fake, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("configured")
    (workdir / ".env").write_text("MODEL_NAME=GLM-Dotenv\nDEFAULT_STREAM=true\nTHINKING_MODE=strip\n")
    server = start_gunicorn(
        workdir,
        env={"UPSTREAM_URL": configured_fake.completions_url, "ZAI_TOKEN": STATIC_TOKEN,
             "DEFAULT_KEY": ",".join(ENV_KEYS), "DEBUG_MODE": "true", "THINKING_MODE": "think",
             "MAX_REQUEST_BYTES": str(MAX_BYTES), "THREADS": "8"},
        env_local={"MODEL_NAME": "GLM-Local", "THINKING_MODE": "hide", "DEFAULT_KEY": LOCAL_KEY},
    )
    yield server
    server.stop()


@pytest.fixture
def configured(configured_server, configured_fake):
    configured_fake.reset()
    return configured_server


# ---- models and auth -------------------------------------------------------------------

def test_models_with_the_openai_client(oai):
    ids = [m.id for m in oai.models.list()]
    assert ids == ["GLM-4.6", "GLM-4.7", "GLM-4.6V", "GLM-5", "GLM-4.5", "GLM-4.5-Air"]
    model = oai.models.retrieve("GLM-4.5")
    assert model.id == "GLM-4.5" and model.object == "model" and model.owned_by
    with pytest.raises(openai.NotFoundError) as caught:
        oai.models.retrieve("gpt-nope")
    assert caught.value.status_code == 404 and "gpt-nope" in caught.value.message


def test_models_need_no_key(live):
    response = requests.get(live.base_url + "/models", timeout=5)
    assert response.status_code == 200 and response.json()["object"] == "list"


def test_wrong_or_missing_key(live, shared_fake, sdk):
    bad = sdk(live, "sk-wrong")
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model="GLM-4.6", messages=user("hi"))
    assert caught.value.status_code == 401 and caught.value.body["type"] == "authentication_error"
    error = assert_error_shape(requests.post(live.base_url + "/chat/completions", json={"messages": user("hi")},
                                             timeout=5), 401)
    assert "API key" in error["message"]
    assert shared_fake.requests == []


def test_every_listed_key_is_accepted_and_env_beats_env_local(configured, sdk):
    for key in ENV_KEYS:
        client = sdk(configured, key)
        assert client.chat.completions.create(model="GLM-4.6", messages=user("hi"), stream=False).choices
    shadowed = sdk(configured, LOCAL_KEY)
    with pytest.raises(openai.AuthenticationError):
        shadowed.chat.completions.create(model="GLM-4.6", messages=user("hi"), stream=False)


# ---- errors ------------------------------------------------------------------------------

def test_openai_exception_classes(oai, shared_fake):
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="GLM-4.6", messages=[])
    assert caught.value.status_code == 400 and caught.value.body["param"] == "messages"
    shared_fake.fail_next("429", count=2)
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="GLM-4.6", messages=user("hi"))
    assert "rate-limiting" in caught.value.message
    shared_fake.fail_next("500")
    with pytest.raises(openai.InternalServerError) as caught:
        oai.chat.completions.create(model="GLM-4.6", messages=user("hi"))
    assert caught.value.status_code == 502 and "Internal Server Error" in caught.value.message
    shared_fake.fail_next("500")
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="GLM-4.6", messages=user("hi"), stream=True)


def test_raw_bad_input(live, shared_fake):
    url = live.base_url + "/chat/completions"
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    assert "JSON" in assert_error_shape(requests.post(url, data=b"{oops", headers=headers, timeout=5), 400)["message"]
    assert_error_shape(requests.post(url, data=b"[1, 2]", headers=headers, timeout=5), 400)
    assert_error_shape(requests.post(url, json={"messages": [{"role": "x", "content": "y"}]}, headers=headers,
                                     timeout=5), 400)
    response = requests.get(url, headers=headers, timeout=5)
    assert assert_error_shape(response, 405)["code"] == "method_not_allowed" and "POST" in response.headers["Allow"]
    assert_error_shape(requests.get(live.url + "/nowhere", timeout=5), 404)
    assert shared_fake.requests == []


def test_413_with_content_length(configured, configured_fake, sdk):
    key = ENV_KEYS[0]
    client = sdk(configured, key)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="GLM-4.6", messages=user("x" * MAX_BYTES), stream=False)
    assert type(caught.value) is openai.APIStatusError and caught.value.status_code == 413
    response = requests.post(configured.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                             json={"messages": user("x" * MAX_BYTES)}, timeout=5)
    assert "MAX_REQUEST_BYTES" in assert_error_shape(response, 413)["message"]
    assert configured_fake.requests == []


def test_413_with_a_chunked_body(configured, configured_fake):
    body = json.dumps({"messages": user("x" * 3 * MAX_BYTES)}).encode()

    def pieces():
        for i in range(0, len(body), 500):
            yield body[i:i + 500]

    response = requests.post(configured.base_url + "/chat/completions", data=pieces(), timeout=5,
                             headers={"Authorization": f"Bearer {ENV_KEYS[0]}", "Content-Type": "application/json"})
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "MAX_REQUEST_BYTES" in assert_error_shape(response, 413)["message"]

    # The same over a raw socket, chunk by chunk, so nothing can add a Content-Length.
    host, port = urlsplit(configured.url).hostname, urlsplit(configured.url).port
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + ENV_KEYS[0].encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in pieces():
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        sock.sendall(b"0\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"]["code"]
    assert configured_fake.requests == []


def test_cors(live):
    preflight = requests.options(live.base_url + "/chat/completions", timeout=5, headers={
        "Origin": "https://ui.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code in (200, 204)
    assert preflight.headers["Access-Control-Allow-Origin"] in ("*", "https://ui.example")
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    headers = {"Origin": "https://ui.example", "Authorization": f"Bearer {API_KEY}"}
    with requests.post(live.base_url + "/chat/completions", headers=headers, stream=True, timeout=10,
                       json={"messages": user("hi"), "stream": True}) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.headers["Access-Control-Allow-Origin"] in ("*", "https://ui.example")
    error = requests.post(live.base_url + "/chat/completions", headers={"Origin": "https://ui.example"}, timeout=5,
                          json={"messages": user("hi")})
    assert error.status_code == 401 and error.headers["Access-Control-Allow-Origin"] in ("*", "https://ui.example")


# ---- answers -------------------------------------------------------------------------------

def test_thinking_stream_with_the_openai_client(oai):
    stream = oai.chat.completions.create(model="GLM-4.6", messages=user("scenario:thinking"), stream=True,
                                         stream_options={"include_usage": True})
    chunks = list(stream)
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    *answer_chunks, usage_chunk = chunks
    assert usage_chunk.choices == [] and usage_chunk.usage.total_tokens == 33
    assert usage_chunk.usage.prompt_tokens == 11 and usage_chunk.usage.completion_tokens == 22
    reasoning = content = ""
    for chunk in answer_chunks:
        delta = chunk.choices[0].delta
        piece = (delta.model_extra or {}).get("reasoning_content") or ""
        if piece:
            assert not content, "reasoning after the first content"
        reasoning += piece
        content += delta.content or ""
    assert reasoning == THINKING.reasoning and content == "Hello 🙂, world! Bye."
    finishes = [c.choices[0].finish_reason for c in answer_chunks]
    assert finishes.count("stop") == 1 and finishes[-1] == "stop"


def test_raw_stream_ends_with_done(live):
    with requests.post(live.base_url + "/chat/completions", stream=True, timeout=10,
                       headers={"Authorization": f"Bearer {API_KEY}"},
                       json={"messages": user("hi"), "stream": True}) as response:
        assert response.headers["Cache-Control"] == "no-cache"
        lines = sse_lines(response)
    assert lines[-1] == "data: [DONE]" and lines.count("data: [DONE]") == 1
    assert json.loads(lines[-2][6:])["choices"][0]["finish_reason"] == "stop"


def test_whole_answer_with_the_openai_client(oai):
    reply = oai.chat.completions.create(model="GLM-4.5-Air", messages=user("scenario:thinking"), temperature=0.5)
    choice = reply.choices[0]
    assert choice.message.content == THINKING.content and choice.finish_reason == "stop"
    assert choice.message.model_extra["reasoning_content"] == THINKING.reasoning
    assert reply.model == "GLM-4.5-Air" and reply.object == "chat.completion"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (11, 22, 33)
    plain = oai.chat.completions.create(model="GLM-4.6", messages=user("scenario:no_usage"))
    assert plain.choices[0].message.content == "No usage here."
    usage = plain.usage  # Z.ai sent none: an estimate, said to be one, not zeros
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0 and usage.model_extra["estimated"] is True
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize("transport", ["crlf", "cr", "nospace", "comments", "tiny", "conn_close"])
def test_transports_under_gunicorn(oai, transport):
    stream = oai.chat.completions.create(model="GLM-4.6", messages=user(f"scenario:unicode transport:{transport}"),
                                         stream=True)
    content = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert content == zai_scenarios.SCENARIOS["unicode"].content


def test_no_done_finishes_normally(oai):
    chunks = list(oai.chat.completions.create(model="GLM-4.6", messages=user("scenario:no_done"), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Ends early."
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("prompt", ["scenario:mid_error", "scenario:long transport:cut"])
def test_failure_mid_stream(oai, live, prompt):
    stream = oai.chat.completions.create(model="GLM-4.6", messages=user(prompt), stream=True)
    received = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received += chunk.choices[0].delta.content or ""
    assert received and caught.value.message
    with requests.post(live.base_url + "/chat/completions", stream=True, timeout=10,
                       headers={"Authorization": f"Bearer {API_KEY}"},
                       json={"messages": user(prompt), "stream": True}) as response:
        lines = sse_lines(response)
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2][6:])["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]


def test_errors_before_the_first_text(oai, shared_fake):
    shared_fake.min_fe_version = "prod-fe-9.9.9"  # newer than the landing page names
    with pytest.raises(openai.InternalServerError) as caught:
        oai.chat.completions.create(model="GLM-4.6", messages=user("hi"), stream=True)
    assert "FE_VERSION" in caught.value.message
    shared_fake.min_fe_version = "prod-fe-1.0.94"
    with pytest.raises(openai.InternalServerError) as caught:
        oai.chat.completions.create(model="GLM-4.6", messages=user("scenario:error_nested"))
    assert "Nested failure" in caught.value.message


def test_client_disconnect_closes_the_upstream(live, shared_fake):
    before = shared_fake.streams_aborted
    response = requests.post(live.base_url + "/chat/completions", stream=True, timeout=10,
                             headers={"Authorization": f"Bearer {API_KEY}"},
                             json={"messages": user("scenario:long transport:delay=0.05"), "stream": True})
    lines = response.iter_lines()
    received = [line for line in (next(lines), next(lines), next(lines)) if line]
    assert len(received) >= 2 and received[0].startswith(b"data: ")
    response.close()
    assert wait_for(lambda: shared_fake.streams_aborted > before), "the upstream stream was not closed"
    assert shared_fake.requests[-1].outcome == "aborted"


# ---- the configured server -------------------------------------------------------------------

def test_env_files_and_environment(configured):
    ids = [m["id"] for m in requests.get(configured.base_url + "/models", timeout=5).json()["data"]]
    assert "GLM-Local" in ids and "GLM-Dotenv" not in ids  # .env.local beats .env


def test_default_stream_and_think_mode(configured, configured_fake, sdk):
    headers = {"Authorization": f"Bearer {ENV_KEYS[1]}"}
    with requests.post(configured.base_url + "/chat/completions", headers=headers, stream=True, timeout=10,
                       json={"messages": user("scenario:thinking")}) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")  # DEFAULT_STREAM from .env
        lines = sse_lines(response)
    assert lines[-1] == "data: [DONE]"
    content = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or "" for line in lines[:-1])
    assert content == f"<think>\n{THINKING.reasoning}\n</think>\n\n{THINKING.content}"  # env beats .env.local
    client = sdk(configured, ENV_KEYS[1])
    reply = client.chat.completions.create(model="GLM-Local", messages=user("scenario:thinking"), stream=False)
    assert reply.choices[0].message.content.startswith("<think>\n")
    assert (reply.choices[0].message.model_extra or {}).get("reasoning_content") is None
    assert configured_fake.requests[-1].token == STATIC_TOKEN


def test_debug_log_holds_no_secrets(configured, configured_fake, sdk):
    client = sdk(configured, ENV_KEYS[0])
    assert client.chat.completions.create(model="GLM-4.6", messages=user("hi"), stream=False).choices
    configured_fake.fail_next("401")
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="GLM-4.6", messages=user("hi"), stream=False)
    with pytest.raises(openai.AuthenticationError):
        sdk(configured, LOCAL_KEY).chat.completions.create(
            model="GLM-4.6", messages=user("hi"), stream=False)
    assert wait_for(lambda: configured.log().count("/v1/chat/completions") >= 2, timeout=5)
    log = configured.log()
    assert "upstream call" in log  # DEBUG_MODE really is on
    for secret in (STATIC_TOKEN, *ENV_KEYS, LOCAL_KEY):
        assert secret not in log


@pytest.mark.parametrize("stream", [False, True])
def test_the_web_captcha_refusal_is_a_permission_error_not_retried(live, shared_fake, stream):
    """What a user of the web chat alone meets since May 2026: one clear 403, never
    retried, neither by zto with another token nor by the client library."""
    shared_fake.captcha_required = True
    client = openai.OpenAI(api_key=API_KEY, base_url=live.base_url, timeout=20)  # the library's own retries on
    try:
        with pytest.raises(openai.PermissionDeniedError) as info:
            client.chat.completions.create(model="GLM-4.6", messages=user("hi"), stream=stream)
    finally:
        client.close()
    assert info.value.status_code == 403 and info.value.code == "upstream_captcha_required"
    assert "ZAI_API_KEY" in info.value.message and "UPSTREAMS=web,api" in info.value.message
    assert len(shared_fake.requests) == 1
