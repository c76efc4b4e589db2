"""zto on Z.ai's official API as deployed: gunicorn started as ``make run`` does, the
fake official API (``fake_official``) behind it, driven by the real ``openai`` package.

``api`` is this module's server, on the session's ``shared_official``, with ``UPSTREAMS=api`` and two keys (a tiny
``API_KEY_COOLDOWN_S``, so that keys set aside by one test are back for the next);
other configurations (key rotation and cool-down, ``THINKING_MODE=think``, the web chat
with the official API as fallback) get servers of their own.
"""

from __future__ import annotations

import json

import openai
import pytest
import requests

import fake_official
from conftest import API_KEY, api_env, start_gunicorn, wait_for
from fake_official import DEFAULT_KEYS, USAGE
from fake_zai import FakeZai

pytestmark = pytest.mark.e2e

KEY, OTHER_KEY = DEFAULT_KEYS
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
IMAGE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def api_server(shared_official, tmp_path_factory):
    server = start_gunicorn(tmp_path_factory.mktemp("api"), env=api_env(shared_official, API_KEY_COOLDOWN_S="0.001"),
                            env_local={"DEFAULT_KEY": API_KEY})
    yield server
    server.stop()


@pytest.fixture
def api(api_server, shared_official):
    shared_official.reset()
    return api_server


@pytest.fixture
def client(api, sdk):
    return sdk(api)


def stream_parts(stream) -> dict:
    """What a streamed answer said, gathered as a client does."""
    reasoning, content, calls, finish, usage, models = [], [], {}, None, None, set()
    for chunk in stream:
        models.add(chunk.model)
        usage = chunk.usage or usage
        for choice in chunk.choices:
            delta = choice.delta
            reasoning.append(getattr(delta, "reasoning_content", None) or "")
            content.append(delta.content or "")
            for call in delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                entry["name"] += (call.function.name or "") if call.function else ""
                entry["arguments"] += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    return {"reasoning": "".join(reasoning), "content": "".join(content), "calls": list(calls.values()),
            "finish": finish, "usage": usage, "models": models}


# ---- answers -------------------------------------------------------------------------------

def test_models_are_the_api_model_map(client):
    assert [m.id for m in client.models.list()] == [
        "GLM-4.6", "GLM-4.5", "GLM-4.5-Air", "GLM-4.5-Flash", "GLM-4.6V", "GLM-4.7", "GLM-5", "GLM-5.1"]


def test_streamed_with_thinking_and_usage(client, shared_official):
    said = stream_parts(client.chat.completions.create(
        model="GLM-4.6-Thinking", messages=user("hi"), stream=True, stream_options={"include_usage": True}))
    assert said["reasoning"] == "Let me think about it." and said["content"] == "Hello from glm-4.6!"
    assert said["finish"] == "stop" and said["models"] == {"GLM-4.6-Thinking"}
    assert said["usage"].prompt_tokens == USAGE["prompt_tokens"] and said["usage"].total_tokens == USAGE["total_tokens"]
    assert said["usage"].prompt_tokens_details.cached_tokens == 4
    sent = shared_official.requests[-1].body
    assert sent["model"] == "glm-4.6" and sent["thinking"] == {"type": "enabled"}


def test_streamed_without_thinking(client, shared_official):
    said = stream_parts(client.chat.completions.create(model="glm-4.5-flash", messages=user("hi"), stream=True))
    assert said["reasoning"] == "" and said["content"] == "Hello from glm-4.5-flash!" and said["usage"] is None
    assert shared_official.requests[-1].body["thinking"] == {"type": "disabled"}


def test_whole_with_and_without_thinking(client, shared_official):
    whole = client.chat.completions.create(model="GLM-4.5", messages=user("hi"), extra_body={"enable_thinking": True})
    message = whole.choices[0].message
    assert (message.content, message.model_extra["reasoning_content"]) == ("Hello from glm-4.5!", "Let me think about it.")
    assert whole.model == "GLM-4.5" and whole.choices[0].finish_reason == "stop"
    assert whole.usage.prompt_tokens_details.cached_tokens == 4
    plain = client.chat.completions.create(model="GLM-4.5", messages=user("hi"), temperature=0.2, top_p=0.5,
                                           max_tokens=100, stop=["END"])
    assert plain.choices[0].message.content == "Hello from glm-4.5!"
    assert not (plain.choices[0].message.model_extra or {}).get("reasoning_content")
    sent = shared_official.requests[-1].body
    assert (sent["thinking"], sent["temperature"], sent["top_p"], sent["max_tokens"], sent["stop"]) == (
        {"type": "disabled"}, 0.2, 0.5, 100, ["END"])


def test_finish_reason_length(client):
    whole = client.chat.completions.create(model="GLM-4.6", messages=user("hi"), max_tokens=1)
    assert whole.choices[0].finish_reason == "length" and whole.choices[0].message.content == "Hello "


@pytest.mark.parametrize("stream", [True, False])
def test_a_tool_call_round_trip(client, shared_official, stream):
    question = user("What is the weather in Paris?")
    if stream:
        said = stream_parts(client.chat.completions.create(model="GLM-4.6", messages=question, tools=TOOLS, stream=True))
        assert shared_official.requests[-1].body["tool_stream"] is True
        (call,) = said["calls"]
        assert said["finish"] == "tool_calls"
        call_id, name, arguments = call["id"], call["name"], call["arguments"]
    else:
        whole = client.chat.completions.create(model="GLM-4.6", messages=question, tools=TOOLS, tool_choice="auto")
        assert whole.choices[0].finish_reason == "tool_calls"
        (tool_call,) = whole.choices[0].message.tool_calls
        call_id, name, arguments = tool_call.id, tool_call.function.name, tool_call.function.arguments
        assert "tool_stream" not in shared_official.requests[-1].body
    assert name == "get_weather" and json.loads(arguments) == {"city": "Paris", "unit": "celsius"}
    history = question + [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "22 degrees and sunny"}]
    if stream:
        said = stream_parts(client.chat.completions.create(model="GLM-4.6", messages=history, tools=TOOLS,
                                                           tool_choice="none", stream=True))
        answer = said["content"]
    else:
        answer = client.chat.completions.create(model="GLM-4.6", messages=history, tools=TOOLS,
                                                tool_choice="none").choices[0].message.content
    assert answer == "The tool said: 22 degrees and sunny"
    sent = shared_official.requests[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call_id and sent[2] == history[2]


def test_an_image_reaches_the_vision_model(client, shared_official):
    content = [{"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": IMAGE}}]
    whole = client.chat.completions.create(model="GLM-4.6V", messages=[{"role": "user", "content": content}])
    assert whole.choices[0].message.content.startswith("I see 1 image, the first from data:image/png")
    sent = shared_official.requests[-1].body
    assert sent["model"] == "glm-4.6v" and sent["messages"][0]["content"] == content


# ---- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "exception", "status", "error_code"), [
    ("1000", openai.InternalServerError, 502, "upstream_unauthorized"),
    ("1113", openai.RateLimitError, 429, "insufficient_quota"),
    ("1211", openai.NotFoundError, 404, "model_not_found"),
    ("1214", openai.BadRequestError, 400, "invalid_request"),
    ("1261", openai.BadRequestError, 400, "context_length_exceeded"),
    ("1301", openai.BadRequestError, 400, "content_filter"),
    ("1302", openai.RateLimitError, 429, "upstream_rate_limited"),
    ("1305", openai.RateLimitError, 429, "upstream_rate_limited"),
    ("500", openai.InternalServerError, 502, "upstream_error"),
])
@pytest.mark.parametrize("stream", [True, False])
def test_each_error_class(client, shared_official, code, exception, status, error_code, stream):
    shared_official.fail_next(code, 2)  # both keys, where a second key is tried
    with pytest.raises(exception) as caught:
        client.chat.completions.create(model="GLM-4.6", messages=user("hi"), stream=stream)
    assert caught.value.status_code == status and caught.value.body["code"] == error_code
    assert fake_official.BUSINESS_ERRORS[code][1] in caught.value.message
    if code in ("1302", "1305"):
        assert int(caught.value.response.headers["Retry-After"]) >= 1


def test_a_bad_server_key_is_not_the_clients_authentication_error(client, shared_official):
    shared_official.fail_next("1003", 2)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="GLM-4.6", messages=user("hi"))
    assert not isinstance(caught.value, openai.AuthenticationError)
    assert isinstance(caught.value, openai.InternalServerError) and "ZAI_API_KEY" in caught.value.message
    assert KEY not in caught.value.message and KEY[:6] not in caught.value.message


def test_an_error_inside_a_stream_ends_it_with_an_error_event(api, shared_official):
    shared_official.fail_next("1301", where="middle")
    response = requests.post(api.base_url + "/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                             json={"model": "GLM-4.6", "messages": user("hi"), "stream": True}, timeout=10)
    assert response.status_code == 200
    data = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert error["code"] == "content_filter" and "unsafe" in error["message"]


def test_an_error_inside_a_stream_raises_in_the_openai_client(client, shared_official):
    shared_official.fail_next("500", where="middle")
    stream = client.chat.completions.create(model="GLM-4.6", messages=user("hi"), stream=True)
    with pytest.raises(openai.APIError):
        stream_parts(stream)


def test_a_cut_connection_is_an_error_not_a_short_answer(client):
    stream = client.chat.completions.create(model="GLM-4.6", messages=user("hi transport:cut transport:repeat=20"),
                                            stream=True)
    with pytest.raises(openai.APIError):
        stream_parts(stream)


# ---- connections ---------------------------------------------------------------------------

def test_connections_to_the_official_api_are_reused(client, shared_official):
    opened = shared_official.stats()["connections_opened"]
    for _ in range(5):
        client.chat.completions.create(model="GLM-4.6", messages=user("hi"))
    assert shared_official.stats()["connections_opened"] - opened <= 1


def test_a_client_that_leaves_closes_the_official_stream(api, shared_official):
    response = requests.post(api.base_url + "/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                             json={"model": "GLM-4.6", "stream": True,
                                   "messages": user("hi transport:delay=0.05 transport:repeat=600")},
                             stream=True, timeout=10)
    next(response.iter_lines())
    assert shared_official.wait_for("streams_open", 1)
    response.close()
    assert shared_official.wait_for("streams_open", 0)
    assert shared_official.requests[-1].outcome == "aborted"


# ---- keys ----------------------------------------------------------------------------------

def test_key_rotation_and_cooldown(shared_official, start_server, sdk):
    shared_official.reset()
    server = start_server(api_env(shared_official, API_KEY_COOLDOWN_S="2", DASHBOARD_KEY=""), {"DEFAULT_KEY": API_KEY})
    client = sdk(server)
    shared_official.fail_key(KEY, "1000")
    assert client.chat.completions.create(model="GLM-4.6", messages=user("hi")).choices[0].message.content
    assert [r.key for r in shared_official.requests] == [KEY, OTHER_KEY]
    for _ in range(3):
        client.chat.completions.create(model="GLM-4.6", messages=user("hi"))
    assert [r.key for r in shared_official.requests[2:]] == [OTHER_KEY] * 3

    redacted = f"{KEY[:6]}…({len(KEY)} chars)"
    metrics = requests.get(server.url + "/metrics", timeout=5).text
    assert f'zto_api_key_set_aside_seconds{{key="{redacted}",reason="upstream_unauthorized"}}' in metrics
    stats = requests.get(server.url + "/dashboard/stats", timeout=5).json()
    assert [entry["key"] for entry in stats["api_keys_set_aside"]] == [redacted]

    shared_official.fail_key(KEY, None)
    assert wait_for(lambda: (client.chat.completions.create(model="GLM-4.6", messages=user("hi")),
                               shared_official.requests[-1].key == KEY)[1])
    for secret in DEFAULT_KEYS:
        assert secret not in server.log() and secret not in metrics


def test_thinking_mode_shapes_official_reasoning(shared_official, start_server, sdk):
    shared_official.reset()
    server = start_server(api_env(shared_official, THINKING_MODE="think"), {"DEFAULT_KEY": API_KEY})
    said = stream_parts(sdk(server).chat.completions.create(model="GLM-4.6-Thinking", messages=user("hi"), stream=True))
    assert said["content"] == "<think>\nLet me think about it.\n</think>\n\nHello from glm-4.6!"
    assert said["reasoning"] == ""


# ---- the web chat and the fallback ---------------------------------------------------------

def test_fallback_from_the_web_captcha_to_the_official_api(shared_official, start_server, sdk):
    shared_official.reset()
    with FakeZai() as web:
        web.captcha_required = True
        server = start_server({**api_env(shared_official, UPSTREAMS="web,api"), "UPSTREAM_URL": web.completions_url},
                              {"DEFAULT_KEY": API_KEY})
        client = sdk(server)
        for stream in (False, True):
            answer = client.chat.completions.create(model="GLM-4.6", messages=user("hi"), stream=stream)
            text = answer.choices[0].message.content if not stream else stream_parts(answer)["content"]
            assert text == "Hello from glm-4.6!"
        assert len(web.requests) == 2 and len(shared_official.requests) == 2
        recent = requests.get(server.url + "/dashboard/requests", timeout=5).json()
        assert [(r["upstream"], r["fell_back"]) for r in recent[:2]] == [("api", True), ("api", True)]


def test_the_web_only_captcha_error(live, shared_fake, sdk):
    shared_fake.captcha_required = True
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(live).chat.completions.create(model="GLM-4.6", messages=user("hi"))
    assert caught.value.status_code == 403 and caught.value.body["code"] == "upstream_captcha_required"
    assert "ZAI_API_KEY" in caught.value.message and "UPSTREAMS=web,api" in caught.value.message
