"""The API in-process: Flask's test client against the fake Z.ai upstream.

Covers what a client sees (models, auth, errors, CORS, answers, streams, thinking
modes, transports, upstream failures), what Z.ai receives (ids, headers, query,
body, signatures, front-end version, tokens, retries, cookies) and the statistics.
"""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
import requests

import zai_scenarios
from conftest import API_KEY, ask, wait_for
from fake_zai import jwt_user_id
from zto import create_app
from zto.token_estimate import estimate_tokens

USER = [{"role": "user", "content": "hi"}]
THINKING = zai_scenarios.SCENARIOS["thinking"]
USAGE = zai_scenarios.USAGE
TOKEN_A, TOKEN_B = "static-token-aaaaaaaaaaaaaaaa", "static-token-bbbbbbbbbbbbbbbb"




def events(response) -> list:
    """The data payloads of an SSE answer, JSON-decoded; ``[DONE]`` as the string."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/event-stream"
    out = []
    for line in response.get_data(as_text=True).split("\n"):
        if line.startswith("data: "):
            out.append("[DONE]" if line == "data: [DONE]" else json.loads(line[6:]))
    return out


def streamed_text(chunks: list) -> tuple[str, str]:
    reasoning = content = ""
    for chunk in chunks:
        if isinstance(chunk, dict) and chunk.get("choices"):
            delta = chunk["choices"][0]["delta"]
            reasoning += delta.get("reasoning_content", "")
            content += delta.get("content") or ""
    return reasoning, content


def error_of(response, status: int, *fragments: str) -> dict:
    """The OpenAI error of an answer, checked for its status, shape and message."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    return error


# ---- 1. models -------------------------------------------------------------------------

def test_models_are_listed_without_a_key(client_with):
    client = client_with(model_name="GLM-Custom")
    response = client.get("/v1/models")
    assert response.status_code == 200
    body = response.get_json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["GLM-4.6", "GLM-4.7", "GLM-4.6V", "GLM-5", "GLM-4.5", "GLM-4.5-Air",
                                              "GLM-Custom"]
    for model in body["data"]:
        assert model["object"] == "model" and isinstance(model["created"], int) and model["owned_by"]


def test_default_models(client):
    ids = {m["id"] for m in client.get("/v1/models").get_json()["data"]}
    assert ids == {"GLM-4.6", "GLM-4.7", "GLM-4.6V", "GLM-5", "GLM-4.5", "GLM-4.5-Air"}


def test_retrieve_model(client):
    response = client.get("/v1/models/GLM-4.5-Air")
    assert response.status_code == 200
    assert response.get_json()["id"] == "GLM-4.5-Air" and response.get_json()["object"] == "model"
    error = error_of(client.get("/v1/models/gpt-9"), 404, "gpt-9")
    assert error["code"] == "model_not_found" and error["type"] == "not_found_error"


# ---- 2. auth -----------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-key"},
    {"Authorization": f"Basic {API_KEY}"},
    {"Authorization": "Bearer "},
], ids=["missing", "wrong", "not-bearer", "empty"])
def test_bad_api_key_is_401(client, fake, headers):
    error = error_of(client.post("/v1/chat/completions", headers=headers, json={"messages": USER}), 401)
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert "DEFAULT_KEY" in error["message"]  # where the key comes from, whether missing or wrong
    assert "wrong-key" not in error["message"] and API_KEY not in error["message"]
    assert fake.requests == []


def test_several_api_keys_are_all_accepted(client_with):
    client = client_with(api_keys=("sk-one", "sk-two", "sk-three"))
    for key in ("sk-one", "sk-two", "sk-three"):
        assert ask(client, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    error_of(ask(client, headers={"Authorization": "Bearer sk-four"}), 401)


# ---- 3. errors ---------------------------------------------------------------------------

def test_unknown_path_is_404(client):
    error = error_of(client.get("/v1/nothing"), 404, "/v1")
    assert error["type"] == "not_found_error"
    error_of(client.post("/chat/completions", json={}), 404)


def test_wrong_method_is_405(client, auth):
    response = client.get("/v1/chat/completions", headers=auth)
    error = error_of(response, 405, "POST")
    assert error["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]
    error_of(client.post("/v1/models", headers=auth), 405, "GET")


def test_body_over_max_request_bytes_is_413(client_with, fake, auth):
    client = client_with(max_body_bytes=200)
    big = json.dumps({"messages": [{"role": "user", "content": "x" * 300}]})
    response = client.post("/v1/chat/completions", headers=auth, data=big, content_type="application/json")
    error = error_of(response, 413, "MAX_REQUEST_BYTES")
    assert error["code"] == "request_too_large"
    assert ask(client, "small").status_code == 200
    assert len(fake.requests) == 1


@pytest.mark.parametrize("size, status", [(300, 413), (150, 200)])
def test_chunked_body_is_held_to_max_request_bytes(client_with, fake, auth, size, status):
    client = client_with(max_body_bytes=200)
    body = json.dumps({"messages": [{"role": "user", "content": "x" * (size - 47)}]}).encode()
    assert len(body) == size
    # As gunicorn passes a chunked body: no Content-Length, a stream the server ends.
    response = client.post("/v1/chat/completions", headers={**auth, "Transfer-Encoding": "chunked"},
                           input_stream=io.BytesIO(body), content_type="application/json",
                           environ_overrides={"wsgi.input_terminated": True})
    if status == 413:
        assert error_of(response, 413, "MAX_REQUEST_BYTES")["code"] == "request_too_large"
        assert fake.requests == []
    else:
        assert response.status_code == 200 and len(fake.requests) == 1


BAD_BODIES = {
    "not-json": (b"{nope", None, "not valid JSON"),
    "not-utf8": (b"\xff\xfe{", None, "not valid JSON"),
    "empty-body": (b"", None, "not valid JSON"),
    "json-array": (b"[]", None, "JSON object"),
    "json-string": (b'"hi"', None, "JSON object"),
    "no-messages": ({"model": "GLM-4.6"}, "messages", "messages"),
    "empty-messages": ({"messages": []}, "messages", "messages"),
    "messages-not-list": ({"messages": {"role": "user", "content": "hi"}}, "messages", "messages"),
    "message-not-object": ({"messages": ["hi"]}, "messages", "messages[0]"),
    "user-without-content": ({"messages": [{"role": "user"}]}, "messages", "content"),
    "system-without-content": ({"messages": [{"role": "system"}, *USER]}, "messages", "messages[0]"),
    "unknown-role": ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages", "role"),
    "no-role": ({"messages": [{"content": "hi"}]}, "messages", "role"),
    "content-number": ({"messages": [{"role": "user", "content": 5}]}, "messages", "content"),
    "bad-content-part": ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "messages", "content[0]"),
    "model-number": ({"model": 4, "messages": USER}, "model", "model"),
    "model-empty": ({"model": " ", "messages": USER}, "model", "model"),
    "stream-string": ({"messages": USER, "stream": "yes"}, "stream", "stream"),
    "temperature-string": ({"messages": USER, "temperature": "hot"}, "temperature", "temperature"),
    "temperature-too-high": ({"messages": USER, "temperature": 3}, "temperature", "temperature"),
    "top-p-bool": ({"messages": USER, "top_p": True}, "top_p", "top_p"),
    "max-tokens-float": ({"messages": USER, "max_tokens": 1.5}, "max_tokens", "max_tokens"),
    "max-tokens-zero": ({"messages": USER, "max_tokens": 0}, "max_tokens", "max_tokens"),
    "stream-options-list": ({"messages": USER, "stream_options": []}, "stream_options", "stream_options"),
    "enable-thinking-string": ({"messages": USER, "enable_thinking": "on"}, "enable_thinking", "enable_thinking"),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_request_is_400(client, fake, auth, name):
    body, param, fragment = BAD_BODIES[name]
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = client.post("/v1/chat/completions", headers=auth, data=data, content_type="application/json")
    error = error_of(response, 400, fragment)
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert fake.requests == []


def test_unexpected_failure_is_a_500_in_openai_shape(client, auth, monkeypatch):
    from zto.web_chat import WebChat

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(WebChat, "start", broken)
    error = error_of(ask(client), 500, "server log")
    assert error["type"] == "server_error" and "boom" not in error["message"]


# ---- 4. CORS -----------------------------------------------------------------------------

def test_cors_preflight(client):
    response = client.options("/v1/chat/completions", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://app.example")
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


def test_cors_headers_on_answers_errors_and_streams(client, auth):
    origin = {"Origin": "https://app.example"}
    answers = [
        client.get("/v1/models", headers=origin),
        ask(client, headers={**auth, **origin}),
        ask(client, headers={**auth, **origin}, stream=True),
        client.post("/v1/chat/completions", headers=origin, json={"messages": USER}),  # 401
        client.post("/v1/chat/completions", headers={**auth, **origin}, data="{"),  # 400
        client.get("/v1/nope", headers=origin),  # 404
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 401, 400, 404]
    for answer in answers:
        assert answer.headers.get("Access-Control-Allow-Origin") in ("*", "https://app.example")


# ---- 5. the upstream request -------------------------------------------------------------

def test_upstream_request_shape(client, fake):
    assert ask(client, "first", temperature=0.3, top_p=0.9, max_tokens=100).status_code == 200
    assert ask(client, "second").status_code == 200
    first, second = fake.requests
    for field in ("chat_id", "id"):
        assert first.body[field] != second.body[field]
    assert first.query["requestId"] != second.query["requestId"]
    assert len({first.body["chat_id"], first.body["id"], first.query["requestId"]}) == 3

    token = fake.guest_tokens[0]
    headers, query, body = first.headers, first.query, first.body
    assert headers["authorization"] == f"Bearer {token}"
    assert headers["x-fe-version"] == "prod-fe-1.1.93"  # FE_VERSION: newer than the landing page
    assert len(headers["x-signature"]) == 64
    assert "Chrome/" in headers["user-agent"]
    assert "Chrome" in headers["sec-ch-ua"] and headers["sec-ch-ua-mobile"] == "?0"
    assert headers["sec-ch-ua-platform"] == '"Windows"'
    assert headers["origin"] == fake.origin
    assert headers["referer"] == f"{fake.origin}/c/{body['chat_id']}"
    assert query["timestamp"] == query["signature_timestamp"] and query["timestamp"].isdigit()
    assert query["user_id"] == jwt_user_id(token) != "guest" and query["token"] == token
    assert query["pathname"] == f"/c/{body['chat_id']}"
    assert body["signature_prompt"] == "first" and body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "first"}]
    assert body["model"] == "glm-4.6"
    assert body["params"] == {"temperature": 0.3, "top_p": 0.9, "max_tokens": 100}
    assert second.body["params"] == {}
    assert body["features"]["enable_thinking"] is False


def test_signature_prompt_is_the_last_user_text(client, fake):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "one"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "two"}, {"type": "text", "text": "parts"}]}]
    assert ask(client, messages=messages).status_code == 200
    assert fake.requests[-1].body["signature_prompt"] == "two\nparts"


@pytest.mark.parametrize("model, upstream", [
    ("GLM-4.6", "glm-4.6"), ("GLM-4.7", "glm-4.7"), ("GLM-5", "glm-5"), ("GLM-4.5-Air", "glm-4.5-air"),
    ("glm-4.5-air", "glm-4.5-air"), ("some-other-model", "glm-4.6"),
])
def test_model_mapping(client, fake, model, upstream):
    response = ask(client, model=model)
    assert response.status_code == 200 and response.get_json()["model"] == model
    assert fake.requests[-1].body["model"] == upstream


@pytest.mark.parametrize("setting, asked, sent", [
    (False, None, False), (True, None, True), (True, False, False), (False, True, True),
])
def test_enable_thinking_request_wins_over_setting(client_with, fake, setting, asked, sent):
    client = client_with(enable_thinking=setting)
    body = {} if asked is None else {"enable_thinking": asked}
    assert ask(client, **body).status_code == 200
    assert fake.requests[-1].body["features"]["enable_thinking"] is sent


def test_sha256_signature_scheme(client_with, fake):
    fake.scheme = "sha256"
    response = ask(client_with(signature_scheme="sha256"))
    assert response.status_code == 200 and response.get_json()["choices"][0]["message"]["content"] == "Hello, world!"
    rec = fake.requests[-1]
    import hashlib
    assert rec.headers["x-signature"] == hashlib.sha256(rec.raw_body).hexdigest()


@pytest.mark.parametrize("fake_scheme, setting", [("sha256", "hmac"), ("hmac", "sha256")])
def test_signature_mismatch_is_a_clear_502(client_with, fake, fake_scheme, setting):
    fake.scheme = fake_scheme
    error = error_of(ask(client_with(signature_scheme=setting)), 502, "SIGNATURE_SCHEME", "SIGNATURE_SECRET")
    assert error["code"] == "upstream_signature_rejected"
    assert len(fake.requests) == 1  # not retried: another token would not help


def test_wrong_signature_secret_is_a_clear_502(client_with, fake):
    error_of(ask(client_with(signature_secret="junjie")), 502, "SIGNATURE_SECRET")


# ---- 6. front-end version ----------------------------------------------------------------

def test_fe_version_is_discovered(client, fake):
    fake.landing_version = fake.min_fe_version = "prod-fe-1.2.0"
    response = ask(client)
    assert response.status_code == 200
    assert fake.requests[-1].headers["x-fe-version"] == "prod-fe-1.2.0"
    assert any(path == "/" for _, path, _ in fake.seen)


def test_without_discovery_an_outdated_version_is_a_502_naming_fe_version(client_with, fake):
    fake.landing_version = fake.min_fe_version = "prod-fe-1.2.0"
    error = error_of(ask(client_with(fe_version_discovery=False)), 502, "FE_VERSION", "outdated")
    assert error["code"] == "upstream_version_rejected"
    assert fake.requests[-1].headers["x-fe-version"] == "prod-fe-1.1.93"
    assert not any(path == "/" for _, path, _ in fake.seen)
    error_of(ask(client_with(fe_version_discovery=False), stream=True), 502, "FE_VERSION")


def test_fe_version_setting_is_used_when_discovery_is_off(client_with, fake):
    fake.min_fe_version = "prod-fe-1.0.120"
    assert ask(client_with(fe_version_discovery=False, fe_version="prod-fe-1.0.121")).status_code == 200
    assert fake.requests[-1].headers["x-fe-version"] == "prod-fe-1.0.121"


def test_landing_page_without_a_version_falls_back_to_the_setting(client_with, fake):
    fake.landing_version = None
    assert ask(client_with(fe_version="prod-fe-1.0.99")).status_code == 200
    assert fake.requests[-1].headers["x-fe-version"] == "prod-fe-1.0.99"


def test_unreachable_landing_page_falls_back_to_the_setting(client_with, fake):
    fake.landing_status = 404
    assert ask(client_with(fe_version="prod-fe-1.0.99")).status_code == 200
    assert fake.requests[-1].headers["x-fe-version"] == "prod-fe-1.0.99"
    assert wait_for(lambda: ("GET", "/") in [(m, p) for m, p, _ in fake.seen])  # the look runs in the background


def test_discovery_never_goes_below_the_setting(client_with, fake):
    fake.landing_version = "prod-fe-1.0.90"
    assert ask(client_with(fe_version="prod-fe-1.0.99")).status_code == 200
    assert fake.requests[-1].headers["x-fe-version"] == "prod-fe-1.0.99"


# ---- 7. tokens and retries -----------------------------------------------------------------

def test_static_tokens_alternate(client_with, fake):
    fake.accepted_tokens = (TOKEN_A, TOKEN_B)
    client = client_with(zai_tokens=(TOKEN_A, TOKEN_B))
    for _ in range(4):
        assert ask(client).status_code == 200
    assert [r.token for r in fake.requests] == [TOKEN_A, TOKEN_B, TOKEN_A, TOKEN_B]
    assert fake.guest_tokens == []


def test_anonymous_mode_uses_a_fresh_guest_per_conversation(client, fake):
    for _ in range(3):
        assert ask(client).status_code == 200
    # Guests are fetched ahead, so the fake may have issued more than were used; each
    # conversation still gets its own, issued by Z.ai, never reused.
    used = [r.headers["authorization"].removeprefix("Bearer ") for r in fake.requests]
    assert len(set(used)) == 3 and set(used) <= set(fake.guest_tokens)
    assert len({r.query["user_id"] for r in fake.requests}) == 3


@pytest.mark.parametrize("kind", ["401", "429", "concurrency"])
@pytest.mark.parametrize("mode", ["anonymous", "static"])
def test_one_failure_is_retried_with_another_token(client_with, fake, kind, mode):
    if mode == "static":
        fake.accepted_tokens = (TOKEN_A, TOKEN_B)
        client = client_with(zai_tokens=(TOKEN_A, TOKEN_B))
    else:
        client = client_with()
    fake.fail_next(kind)
    response = ask(client)
    assert response.status_code == 200
    assert response.get_json()["choices"][0]["message"]["content"] == "Hello, world!"
    first, second = fake.requests
    assert first.headers["authorization"] != second.headers["authorization"]
    assert second.status == 200 and second.scenario == "plain"


@pytest.mark.parametrize("kind, status, fragment, code", [
    ("401", 502, "ZAI_TOKEN", "upstream_unauthorized"),
    ("429", 429, "rate-limiting", "upstream_rate_limited"),
    ("concurrency", 429, "concurrency", "upstream_rate_limited"),
])
def test_two_failures_reach_the_client(client, fake, kind, status, fragment, code):
    fake.fail_next(kind, count=2)
    error = error_of(ask(client), status, fragment)
    assert error["code"] == code
    assert len(fake.requests) == 2
    fake.fail_next(kind, count=2)
    error_of(ask(client, stream=True), status, fragment)


@pytest.mark.parametrize("kind, status", [("401", 502), ("429", 429), ("concurrency", 429)])
def test_a_single_static_token_is_not_retried(client_with, fake, kind, status):
    fake.accepted_tokens = (TOKEN_A,)
    fake.fail_next(kind)
    error_of(ask(client_with(zai_tokens=(TOKEN_A,))), status)
    assert len(fake.requests) == 1


def test_a_token_zai_does_not_know_is_a_502_naming_zai_token(client_with, fake):
    error = error_of(ask(client_with(zai_tokens=("expired-token-xxxxxxxx",))), 502, "ZAI_TOKEN")
    assert error["type"] == "upstream_error"


# ---- 8. cookies --------------------------------------------------------------------------

def test_no_cookie_ever_reaches_the_upstream(client, fake):
    for path in ("/", "/api/v1/auths/"):  # the fake hands out cookies, as Z.ai's edge does
        assert "acw_tc=" in requests.get(fake.origin + path, timeout=5).headers["Set-Cookie"]
    fake.reset()
    for _ in range(3):
        assert ask(client).status_code == 200
    paths = [path for _, path, _ in fake.seen]
    assert "/" in paths and paths.count("/api/v1/auths/") >= 3
    assert [headers.get("cookie") for _, _, headers in fake.seen] == [None] * len(fake.seen)


# ---- 9. answers and streams ----------------------------------------------------------------

def test_plain_answer(client):
    response = ask(client, model="GLM-4.5")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "GLM-4.5" and isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": "Hello, world!"}
    assert choice["finish_reason"] == "stop" and choice["index"] == 0
    assert body["usage"] == USAGE


def test_thinking_answer(client):
    body = ask(client, "scenario:thinking").get_json()
    message = body["choices"][0]["message"]
    assert message["content"] == THINKING.content
    assert message["reasoning_content"] == THINKING.reasoning
    assert body["usage"] == USAGE


def test_usage_is_estimated_when_upstream_gives_none(client):
    """Not zeros presented as counts: the estimator of count_tokens, marked as such."""
    prompt = "scenario:no_usage " + "word " * 40
    expected_prompt = estimate_tokens(json.dumps([{"role": "user", "content": prompt}], ensure_ascii=False))
    expected = {"prompt_tokens": expected_prompt, "completion_tokens": estimate_tokens("No usage here."),
                "total_tokens": expected_prompt + estimate_tokens("No usage here."), "estimated": True}
    body = ask(client, prompt).get_json()
    assert body["choices"][0]["message"]["content"] == "No usage here."
    assert body["usage"] == expected and expected_prompt > 40
    chunks = events(ask(client, prompt, stream=True, stream_options={"include_usage": True}))
    assert chunks[-2]["usage"] == expected


def test_thinking_stream(client):
    response = ask(client, "scenario:thinking", stream=True, stream_options={"include_usage": True})
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    chunks = events(response)
    assert chunks[-1] == "[DONE]"
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == USAGE
    chunks = chunks[:-1]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and {c["created"] for c in chunks} == {chunks[0]["created"]}
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "GLM-4.6" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert not any("role" in c["choices"][0]["delta"] for c in chunks[1:-1])
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes.count("stop") == 1 and finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    reasoning, content = streamed_text(chunks)
    assert (reasoning, content) == (THINKING.reasoning, THINKING.content)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert all("reasoning_content" not in d for d in deltas[first_content:])


def test_stream_without_include_usage_has_no_usage_chunk(client):
    chunks = events(ask(client, stream=True))
    assert chunks[-1] == "[DONE]"
    assert all(c["choices"] and "usage" not in c for c in chunks[:-1])
    assert streamed_text(chunks) == ("", "Hello, world!")


@pytest.mark.parametrize("mode, content", [
    ("reasoning", THINKING.content),
    ("think", f"<think>\n{THINKING.reasoning}\n</think>\n\n{THINKING.content}"),
    ("strip", f"{THINKING.reasoning}\n\n{THINKING.content}"),
    ("hide", THINKING.content),
])
def test_thinking_modes(client_with, mode, content):
    client = client_with(thinking_mode=mode)
    reasoning = THINKING.reasoning if mode == "reasoning" else ""
    message = ask(client, "scenario:thinking").get_json()["choices"][0]["message"]
    assert message["content"] == content
    assert message.get("reasoning_content", "") == reasoning
    assert streamed_text(events(ask(client, "scenario:thinking", stream=True))) == (reasoning, content)


@pytest.mark.parametrize("transport", ["crlf", "cr", "nospace", "comments", "tiny", "conn_close"])
def test_every_transport_gives_the_same_answer(client, fake, transport):
    prompt = f"scenario:thinking transport:{transport}"
    message = ask(client, prompt).get_json()["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == (THINKING.reasoning, THINKING.content)
    chunks = events(ask(client, prompt, stream=True))
    assert streamed_text(chunks) == (THINKING.reasoning, THINKING.content) and chunks[-1] == "[DONE]"
    assert fake.requests[-1].transport == {transport: True}


def test_unicode_survives(client):
    expected = zai_scenarios.SCENARIOS["unicode"].content
    assert ask(client, "scenario:unicode").get_json()["choices"][0]["message"]["content"] == expected
    assert streamed_text(events(ask(client, "scenario:unicode transport:tiny", stream=True)))[1] == expected


def test_upstream_tool_blocks_are_not_shown(client):
    content = ask(client, "scenario:upstream_tools").get_json()["choices"][0]["message"]["content"]
    assert content == zai_scenarios.SCENARIOS["upstream_tools"].content


def test_default_stream(client, client_with):
    assert ask(client).mimetype == "application/json"
    streaming = client_with(default_stream=True)
    chunks = events(ask(streaming))
    assert streamed_text(chunks)[1] == "Hello, world!"
    assert ask(streaming, stream=False).mimetype == "application/json"


def test_no_done_finishes_normally(client):
    chunks = events(ask(client, "scenario:no_done", stream=True))
    assert streamed_text(chunks)[1] == "Ends early."
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-1] == "[DONE]"
    assert ask(client, "scenario:no_done").get_json()["choices"][0]["message"]["content"] == "Ends early."


# ---- 10. upstream failures -----------------------------------------------------------------

def test_unreachable_upstream_is_502(make_settings, fake):
    port = fake.port
    fake.stop()  # nothing listens there any more
    url = f"http://127.0.0.1:{port}/api/chat/completions"
    for tokens in ((), (TOKEN_A,)):
        client = create_app(make_settings(upstream_url=url, zai_tokens=tokens, connect_timeout_s=2)).test_client()
        error = error_of(ask(client), 502, "UPSTREAM_URL")
        assert error["code"] == "upstream_unavailable" and error["type"] == "upstream_error"


def test_slow_upstream_is_504(client_with):
    client = client_with(read_timeout_s=0.5)
    started = time.monotonic()
    error = error_of(ask(client, "transport:slow=3"), 504, "UPSTREAM_READ_TIMEOUT")
    assert error["code"] == "upstream_timeout"
    error_of(ask(client, "transport:slow=3", stream=True), 504)
    assert time.monotonic() - started < 2.9


@pytest.mark.parametrize("kind, status, fragments", [
    ("401", 502, ("Invalid token", "ZAI_TOKEN")),
    ("429", 429, ("Too many requests", "ZAI_TOKEN")),
    ("403", 403, ("Model not available", "ZAI_TOKEN")),
    ("405", 502, ("HTML", "firewall", "UPSTREAM_PROXY")),
    ("500", 502, ("500", "Internal Server Error", "Try again")),
])
def test_upstream_statuses_are_mapped(client_with, fake, kind, status, fragments):
    fake.accepted_tokens = (TOKEN_A,)
    client = client_with(zai_tokens=(TOKEN_A,))
    fake.fail_next(kind)
    error_of(ask(client), status, *fragments)
    fake.fail_next(kind)
    error_of(ask(client, stream=True), status, *fragments)
    assert len(fake.requests) == 2


def test_500_is_not_retried(client, fake):
    fake.fail_next("500")
    error_of(ask(client), 502, "500")
    assert len(fake.requests) == 1


@pytest.mark.parametrize("scenario, fragment", [("error_nested", "Nested failure"),
                                                ("error_toplevel", "Top-level failure")])
def test_error_events_before_the_first_text_are_http_errors(client, scenario, fragment):
    error_of(ask(client, f"scenario:{scenario}"), 502, fragment)
    error_of(ask(client, f"scenario:{scenario}", stream=True), 502, fragment)


def test_an_answer_without_text_is_an_error(client, fake):
    fake.fail_next("empty", count=2)
    error = error_of(ask(client), 502, "without any text")
    assert error["code"] == "upstream_empty_answer"
    error_of(ask(client, stream=True), 502, "without any text")


@pytest.mark.parametrize("prompt, fragment", [("scenario:mid_error", "Internal failure"),
                                              ("scenario:long transport:cut", "broke")])
def test_failure_after_streaming_began_ends_with_an_error_event(client, prompt, fragment):
    chunks = events(ask(client, prompt, stream=True))
    assert chunks[-1] == "[DONE]"
    error = chunks[-2]["error"]
    assert set(error) == {"message", "type", "param", "code"} and fragment in error["message"]
    assert streamed_text(chunks[:-2])[1]  # some text came first
    assert not any(c["choices"][0]["finish_reason"] for c in chunks[:-2])
    error_of(ask(client, prompt), 502, fragment)


# ---- 11. connection reuse ------------------------------------------------------------------

def test_upstream_connections_are_reused(client, fake):
    for i in range(20):
        response = ask(client, stream=bool(i % 2))
        assert response.status_code == 200
    assert len(fake.requests) == 20 and len(fake.guest_tokens) >= 20
    # one for the requests, and at most one per guest token fetched ahead at the same time
    assert fake.connections_opened <= 1 + 8


# ---- 12. stats ---------------------------------------------------------------------------

def test_stats_count_requests(app, client, auth):
    stats = app.extensions["zto"].stats
    client.get("/v1/models")
    ask(client, model="GLM-4.5", headers={**auth, "User-Agent": "tester/1.0"})
    ask(client, headers={"Authorization": "Bearer wrong"})
    ask(client, "scenario:error_nested")
    snapshot = stats.snapshot()
    assert snapshot["total_requests"] == 4
    assert snapshot["successful_requests"] == 2 and snapshot["failed_requests"] == 2
    assert snapshot["in_flight"] == 0
    recent = snapshot["recent"]
    assert [r["status"] for r in recent] == [502, 401, 200, 200]  # newest first
    answer = recent[2]
    assert answer["method"] == "POST" and answer["path"] == "/v1/chat/completions"
    assert answer["model"] == "GLM-4.5" and answer["stream"] is False
    assert answer["client_ip"] == "127.0.0.1" and answer["user_agent"] == "tester/1.0"
    assert answer["duration_ms"] > 0
    assert recent[3]["method"] == "GET" and recent[3]["path"] == "/v1/models"


def test_a_stream_is_recorded_when_it_ends(app, client, auth):
    stats = app.extensions["zto"].stats
    response = client.post("/v1/chat/completions", headers=auth, buffered=False,
                           json={"messages": [{"role": "user", "content": "scenario:long"}], "stream": True})
    assert response.status_code == 200
    assert stats.snapshot()["in_flight"] == 1 and stats.snapshot()["total_requests"] == 0
    body = b"".join(response.response)
    response.close()
    assert body.endswith(b"data: [DONE]\n\n")
    snapshot = stats.snapshot()
    assert snapshot["in_flight"] == 0 and snapshot["total_requests"] == 1
    assert snapshot["recent"][0]["stream"] is True and snapshot["recent"][0]["error"] is None


def test_a_stream_cut_by_the_client_is_recorded(app, client, fake, auth):
    stats = app.extensions["zto"].stats
    response = client.post("/v1/chat/completions", headers=auth, buffered=False,
                           json={"messages": [{"role": "user", "content": "scenario:long transport:delay=0.05"}],
                                 "stream": True})
    chunks = iter(response.response)
    next(chunks), next(chunks)
    assert stats.snapshot()["in_flight"] == 1 and stats.snapshot()["total_requests"] == 0
    response.close()
    snapshot = stats.snapshot()
    assert snapshot["in_flight"] == 0 and snapshot["total_requests"] == 1
    assert snapshot["recent"][0]["error"] == "client_disconnected" and snapshot["recent"][0]["status"] == 200
    assert wait_for(lambda: fake.streams_aborted == 1)


def test_a_stream_that_failed_midway_counts_as_failed(app, client):
    events(ask(client, "scenario:mid_error", stream=True))
    snapshot = app.extensions["zto"].stats.snapshot()
    assert snapshot["failed_requests"] == 1 and snapshot["recent"][0]["error"]


def test_concurrent_streams_are_counted_in_flight(app, client, auth):
    stats = app.extensions["zto"].stats
    responses = [client.post("/v1/chat/completions", headers=auth, buffered=False,
                             json={"messages": USER, "stream": True}) for _ in range(3)]
    assert stats.snapshot()["in_flight"] == 3
    threads = [threading.Thread(target=lambda r=r: (b"".join(r.response), r.close())) for r in responses]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert stats.snapshot()["in_flight"] == 0 and stats.snapshot()["total_requests"] == 3


# ---- the session's network settings ------------------------------------------------------

def test_system_proxy_variables_are_ignored(client, monkeypatch):
    """trust_env is off: a proxy in the environment must not capture Z.ai traffic."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    assert ask(client).status_code == 200


def test_upstream_proxy_carries_the_traffic(client_with, fake):
    """UPSTREAM_PROXY is used: pointed at a closed port, Z.ai cannot be reached through it."""
    client = client_with(upstream_proxy="http://127.0.0.1:9")
    error_of(ask(client), 502, "UPSTREAM_PROXY")
    assert fake.requests == []


def test_an_upstream_url_with_a_query_keeps_it(client_with, fake):
    client = client_with(upstream_url=fake.completions_url + "?region=eu")
    assert ask(client).status_code == 200
    assert fake.requests[-1].query["region"] == "eu" and "timestamp" in fake.requests[-1].query


def test_the_fingerprint_agrees_with_the_identity_settings(client_with, fake):
    client = client_with(accept_language="en-US,en;q=0.9", sec_ch_ua_platform='"macOS"')
    assert ask(client).status_code == 200
    query, headers = fake.requests[-1].query, fake.requests[-1].headers
    assert headers["accept-language"] == "en-US,en;q=0.9" and headers["sec-ch-ua-platform"] == '"macOS"'
    assert (query["language"], query["languages"], query["os_name"]) == ("en-US", "en-US,en", "macOS")
