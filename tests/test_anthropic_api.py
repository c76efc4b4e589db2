"""POST /v1/messages and /v1/messages/count_tokens in-process, against the fake web chat:
auth, Anthropic's error shapes and statuses, whole and streamed answers, the model
map, stop sequences, pings, stats, metrics, /openapi.json and /docs."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from conftest import API_KEY, free_port
from zto import create_app, shutdown
from zto.anthropic_format import MessageBuilder, MessageStream
from zto.metrics import Metrics
from zto.stats import PendingRequest
from zto.streaming import stream_answer
from zto.upstreams import TICK, Piece

HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01",
           "anthropic-beta": "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"}


def post(client, path="/v1/messages", headers=None, **body):
    body.setdefault("model", "claude-sonnet-4-5-20250929")
    body.setdefault("max_tokens", 1024)
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return client.post(path, headers=HEADERS if headers is None else headers, json=body, buffered=True)


def events_of(response) -> list[tuple[str, dict]]:
    """(event name, data) of each server-sent event."""
    events = []
    for block in response.get_data(as_text=True).split("\n\n"):
        if block.strip():
            name, data = block.split("\n")
            assert name.startswith("event: ") and data.startswith("data: ")
            events.append((name[7:], json.loads(data[6:])))
    return events


def assert_anthropic_error(response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["type"] == "error" and body["error"]["type"] == kind and body["error"]["message"]
    return body


# -- auth ------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{"x-api-key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"},
                                     {"X-Api-Key": API_KEY, "anthropic-version": "2023-06-01"}])
def test_either_key_header_works(client, headers):
    response = post(client, headers=headers)
    assert response.status_code == 200 and response.get_json()["type"] == "message"


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "sk-wrong"}, {"Authorization": "Bearer sk-wrong"},
                                     {"Authorization": f"Basic {API_KEY}"}])
def test_missing_or_wrong_key_is_401_in_anthropic_shape(client, headers, fake):
    assert_anthropic_error(post(client, headers=headers), 401, "authentication_error")
    assert_anthropic_error(post(client, "/v1/messages/count_tokens", headers=headers), 401, "authentication_error")
    assert fake.requests == []


# -- errors ----------------------------------------------------------------------------

def test_invalid_requests_are_400_invalid_request_error(client):
    for raw in (b"{not json", b"[1, 2]"):
        response = client.post("/v1/messages", headers={**HEADERS, "Content-Type": "application/json"}, data=raw)
        assert_anthropic_error(response, 400, "invalid_request_error")
    body = assert_anthropic_error(post(client, max_tokens=None), 400, "invalid_request_error")
    assert "max_tokens" in body["error"]["message"]
    assert_anthropic_error(post(client, messages=[{"role": "user", "content": [{"type": "image"}]}]),
                           400, "invalid_request_error")
    # Found by the shared validation after translation.
    assert_anthropic_error(post(client, temperature=7), 400, "invalid_request_error")


def test_unknown_paths_and_wrong_methods_in_anthropic_shape(client):
    assert_anthropic_error(client.post("/v1/messages/batches", headers=HEADERS, json={}), 404, "not_found_error")
    response = client.get("/v1/messages", headers=HEADERS)
    assert_anthropic_error(response, 405, "invalid_request_error")
    assert "POST" in response.headers["Allow"]
    # The OpenAI side keeps OpenAI's shape.
    assert client.get("/v1/chat/completions").get_json()["error"]["code"] == "method_not_allowed"


def test_too_large_is_413_request_too_large(client_with):
    client = client_with(max_body_bytes=2000)
    assert_anthropic_error(post(client, system="x" * 5000), 413, "request_too_large")


@pytest.mark.parametrize(("failure", "status", "kind"), [
    ("429", 429, "rate_limit_error"),
    ("500", 500, "api_error"),
    ("403", 403, "permission_error"),
])
def test_upstream_refusals_in_anthropic_shape(client, fake, failure, status, kind):
    fake.fail_next(failure, count=2)  # the one retry with another token is refused too
    assert_anthropic_error(post(client), status, kind)


def test_unreachable_upstream_is_529_overloaded(make_settings):
    nowhere = make_settings(upstream_url=f"http://127.0.0.1:{free_port()}/api/chat/completions")
    client = create_app(nowhere).test_client()
    assert_anthropic_error(post(client), 529, "overloaded_error")


def test_mid_stream_failure_is_an_error_event(client):
    response = post(client, stream=True, messages=[{"role": "user", "content": "scenario:mid_error"}])
    assert response.status_code == 200
    events = events_of(response)
    assert events[0][0] == "message_start"
    name, data = events[-1]
    assert name == "error" and data["type"] == "error" and data["error"]["type"] in ("api_error", "overloaded_error")
    assert "message_stop" not in [n for n, _ in events]


# -- answers ---------------------------------------------------------------------------

def test_whole_answer(client, fake):
    response = post(client, system=[{"type": "text", "text": "Be nice.", "cache_control": {"type": "ephemeral"}}])
    message = response.get_json()
    assert message["id"].startswith("msg_") and message["type"] == "message" and message["role"] == "assistant"
    assert message["model"] == "claude-sonnet-4-5-20250929"
    assert message["content"] == [{"type": "text", "text": "Hello, world!"}]
    assert message["stop_reason"] == "end_turn" and message["stop_sequence"] is None
    assert message["usage"] == {"input_tokens": 11, "output_tokens": 22, "cache_read_input_tokens": 0}
    sent = fake.requests[-1].body
    assert sent["model"] == "glm-4.6"  # every claude-* name becomes MODEL_NAME by default
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


def test_streamed_answer_is_anthropics_event_sequence(client):
    response = post(client, stream=True)
    assert response.mimetype == "text/event-stream"
    events = events_of(response)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names[1:-2] == ["content_block_start", *["content_block_delta"] * (len(names) - 5), "content_block_stop"]
    assert all(name == data["type"] for name, data in events)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "Hello, world!"
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"]["output_tokens"] == 22
    assert events[0][1]["message"]["model"] == "claude-sonnet-4-5-20250929"


def test_thinking_switch_and_blocks(client, fake):
    message = post(client, thinking={"type": "enabled", "budget_tokens": 2000},
                   messages=[{"role": "user", "content": "scenario:thinking"}]).get_json()
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert message["content"][0]["thinking"] and message["content"][0]["signature"]
    assert fake.requests[-1].body["features"]["enable_thinking"] is True
    post(client, thinking={"type": "disabled"})
    assert fake.requests[-1].body["features"]["enable_thinking"] is False


def test_model_map_and_glm_names(client_with, fake):
    client = client_with(anthropic_model_map=(("claude-haiku*", "GLM-4.5-Air"),))
    assert post(client, model="claude-haiku-4-5-20251001").get_json()["model"] == "claude-haiku-4-5-20251001"
    assert fake.requests[-1].body["model"] == "glm-4.5-air"
    post(client, model="claude-opus-4-1[1m]")
    assert fake.requests[-1].body["model"] == "glm-4.6"
    post(client, model="GLM-4.5")
    assert fake.requests[-1].body["model"] == "glm-4.5"


def test_stop_sequences_are_applied(client):
    message = post(client, stop_sequences=["world", "nowhere"]).get_json()
    assert message["content"] == [{"type": "text", "text": "Hello, "}]
    assert message["stop_reason"] == "stop_sequence" and message["stop_sequence"] == "world"
    events = events_of(post(client, stream=True, stop_sequences=["world"]))
    assert events[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "world"}


def test_tools_on_the_web_chat_are_answered_without_them(client):
    response = post(client, tools=[{"name": "Read", "input_schema": {"type": "object"}}])
    assert response.status_code == 200 and response.headers.get("X-Zto-Warning")
    assert response.get_json()["stop_reason"] == "end_turn"


class Ticking:
    """A stand-in ``Answer``: ticks (nothing shown yet), then text."""

    upstream, fell_back, usage, finish_reason = "web", False, None, "stop"

    def __init__(self, ticks: int) -> None:
        self._pieces = [TICK] * ticks + [Piece(content="late")]
        self.closed = False

    def pieces(self):
        yield from self._pieces

    def close(self) -> None:
        self.closed = True


class Stopped(Ticking):
    """A stand-in ``Answer`` a restart's grace period ends after some text."""

    def pieces(self):
        yield Piece(content="partial")
        raise shutdown.ServerStopping()


def test_a_restart_ends_the_stream_with_an_error_event():
    record = PendingRequest(method="POST", path="/v1/messages", client_ip="", user_agent="")
    body = b"".join(stream_answer(Stopped(0), MessageStream(MessageBuilder("m")), keepalive_s=60, record=record,
                                  metrics=Metrics()))
    name, data = body.rstrip().rsplit(b"\n\n", 1)[-1].split(b"\n")
    assert name == b"event: error" and json.loads(data[6:])["error"]["type"] == "api_error"
    assert b"partial" in body and b"message_stop" not in body and record.error == "server_shutting_down"


def test_quiet_upstream_gets_pings():
    answer = Ticking(3)
    record = PendingRequest(method="POST", path="/v1/messages", client_ip="", user_agent="")
    body = b"".join(stream_answer(answer, MessageStream(MessageBuilder("m")), keepalive_s=0.0, record=record,
                                  metrics=Metrics()))
    assert body.count(b"event: ping\ndata: {\"type\":\"ping\"}\n\n") == 3
    assert body.index(b"event: ping") > body.index(b"event: message_start")
    assert body.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    quiet = b"".join(stream_answer(Ticking(3), MessageStream(MessageBuilder("m")), keepalive_s=60, record=record,
                                   metrics=Metrics()))
    assert b"ping" not in quiet


# -- count_tokens ----------------------------------------------------------------------

def test_count_tokens(client, fake):
    small = client.post("/v1/messages/count_tokens", headers=HEADERS,
                        json={"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]})
    large = client.post("/v1/messages/count_tokens", headers=HEADERS,
                        json={"model": "claude-sonnet-4-5", "system": "word " * 2000,
                              "messages": [{"role": "user", "content": "hi"}]})
    assert small.status_code == 200 and set(small.get_json()) == {"input_tokens"}
    assert 0 < small.get_json()["input_tokens"] < 20 < 2000 < large.get_json()["input_tokens"] < 4000
    bad = client.post("/v1/messages/count_tokens", headers=HEADERS, json={"model": "m", "messages": "hi"})
    assert_anthropic_error(bad, 400, "invalid_request_error")
    assert fake.requests == [], "counting asks no upstream"


# -- stats, metrics, OpenAPI, docs ------------------------------------------------------

def test_stats_and_metrics_count_the_new_routes(client):
    post(client)
    post(client, stream=True)
    post(client, headers={})
    recent = client.get("/dashboard/requests").get_json()
    mine = [r for r in recent if r["path"] == "/v1/messages"]
    assert len(mine) == 3 and {r["model"] for r in mine if r["ok"]} == {"claude-sonnet-4-5-20250929"}
    assert sorted(r["stream"] for r in mine if r["ok"]) == [False, True]
    assert {r["upstream"] for r in mine if r["ok"]} == {"web"}
    assert [r["status"] for r in mine if not r["ok"]] == [401]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'zto_http_requests_total{method="POST",path="/v1/messages",status="200"} 2.0' in metrics
    assert 'zto_http_requests_total{method="POST",path="/v1/messages",status="401"} 1.0' in metrics
    assert 'zto_upstream_answers_total{fell_back="false",upstream="web"} 2.0' in metrics


def schema_validator(client, name: str) -> Draft202012Validator:
    doc = client.get("/openapi.json").get_json()
    schema = {**doc["components"]["schemas"][name], "$defs": doc["components"]["schemas"]}
    text = json.dumps(schema).replace("#/components/schemas/", "#/$defs/")
    return Draft202012Validator(json.loads(text))


def test_openapi_describes_the_routes_and_real_answers_match(client):
    doc = client.get("/openapi.json").get_json()
    assert {"/v1/messages", "/v1/messages/count_tokens"} <= doc["paths"].keys()
    schema_validator(client, "Message").validate(
        post(client, messages=[{"role": "user", "content": "scenario:thinking"}],
             thinking={"type": "enabled"}).get_json())
    event = schema_validator(client, "MessageStreamEvent")
    for _, data in events_of(post(client, stream=True, messages=[{"role": "user", "content": "scenario:thinking"}],
                                  thinking={"type": "enabled"})):
        event.validate(data)
    for _, data in events_of(post(client, stream=True, messages=[{"role": "user", "content": "scenario:mid_error"}])):
        event.validate(data)
    schema_validator(client, "AnthropicError").validate(post(client, headers={}).get_json())
    schema_validator(client, "MessageRequest").validate({
        "model": "claude-opus-5-5", "max_tokens": 128000, "stream": True,
        "thinking": {"type": "adaptive", "display": "omitted"},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                     {"role": "system", "content": [{"type": "text", "text": "# Environment"}]}]})
    schema_validator(client, "TokenCount").validate(client.post(
        "/v1/messages/count_tokens", headers=HEADERS, json={"model": "m", "messages": [{"role": "user",
                                                                                           "content": "x"}]}).get_json())


def test_docs_page_has_the_claude_code_section(client_with):
    page = client_with(anthropic_model_map=(("claude-haiku*", "GLM-4.5-Air"),)).get(
        "/docs", base_url="http://zto.example:9090").get_data(as_text=True)
    assert 'id="claude-code"' in page
    assert "ANTHROPIC_BASE_URL=http://zto.example:9090 ANTHROPIC_AUTH_TOKEN=sk-your-key claude" in page
    assert "claude-haiku*=GLM-4.5-Air" in page
    for name in ("ANTHROPIC_MODEL_MAP", "ANTHROPIC_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "ZAI_API_KEY"):
        assert name in page
