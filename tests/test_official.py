"""The official API client's pure parts: model ids, request bodies, the chunk decoder,
the business-code errors and the key pool. No HTTP here (see test_official_upstream.py)."""

from __future__ import annotations

import json

import pytest

import fake_official
from zto.chat_request import build_chat_request
from zto.errors import ProxyError, UpstreamRejected
from zto.official import PROBE_INTERVAL_S, ApiKeys, ChunkDecoder, api_model, build_body, rejection
from zto.settings import DEFAULT_API_MODEL_MAP, load_settings
from zto.upstreams import TICK, Piece

SETTINGS = load_settings({}, env_dir="/nonexistent")
MODEL_MAP = SETTINGS.api_model_map


def chat(**body):
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return build_chat_request(body, settings=SETTINGS)


# ---- model ids -----------------------------------------------------------------------

@pytest.mark.parametrize(("requested", "expected"), [
    ("GLM-4.6", "glm-4.6"), ("glm-4.5-AIR", "glm-4.5-air"), ("GLM-4.6V", "glm-4.6v"), ("GLM-5.1", "glm-5.1"),
    ("GLM-4.6-Thinking", "glm-4.6"), ("GLM-4.5-Flash-Search", "glm-4.5-flash"),
    ("glm-4.6", "glm-4.6"), ("glm-5-turbo", "glm-5-turbo"),  # official ids as they are
    ("gpt-4o", "glm-4.6"), ("Claude", "glm-4.6"),  # anything else: MODEL_NAME's id
])
def test_api_model(requested, expected):
    assert api_model(requested, MODEL_MAP, "GLM-4.6") == expected


def test_api_model_default_is_the_first_id_when_model_name_is_not_mapped():
    assert api_model("gpt-4o", (("Fast", "glm-4.5-flash"), ("Big", "glm-4.6")), "Other") == "glm-4.5-flash"
    assert "GLM-4.6=glm-4.6" in DEFAULT_API_MODEL_MAP


# ---- bodies --------------------------------------------------------------------------

def test_body_states_thinking_and_always_streams():
    assert build_body(chat(), "glm-4.6") == {
        "model": "glm-4.6", "messages": [{"role": "user", "content": "hi"}], "stream": True,
        "thinking": {"type": "disabled"}}
    assert build_body(chat(model="GLM-4.6-Thinking"), "glm-4.6")["thinking"] == {"type": "enabled"}
    assert build_body(chat(enable_thinking=True, stream=False), "glm-4.6")["thinking"] == {"type": "enabled"}
    assert build_body(chat(stream=False), "glm-4.6")["stream"] is True


def test_body_passes_parameters_through_unchanged():
    body = build_body(chat(temperature=0.3, top_p=0.9, max_completion_tokens=50, stop=["END"]), "glm-4.6")
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["stop"]) == (0.3, 0.9, 50, ["END"])


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]


def test_body_with_tools_asks_for_tool_stream_only_when_streaming():
    streamed = build_body(chat(tools=TOOLS, tool_choice="auto", stream=True), "glm-4.6")
    assert streamed["tools"] == TOOLS and streamed["tool_choice"] == "auto" and streamed["tool_stream"] is True
    whole = build_body(chat(tools=TOOLS, stream=False), "glm-4.6")
    assert whole["tools"] == TOOLS and "tool_stream" not in whole and "tool_choice" not in whole


def test_body_keeps_tool_calls_tool_messages_and_image_parts():
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    image = [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    messages = [{"role": "developer", "content": "be brief"}, {"role": "user", "content": image},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "22 degrees"}]
    assert build_body(chat(messages=messages), "glm-4.6v")["messages"] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": image},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "22 degrees"}]


def test_every_body_passes_the_fakes_checks():
    for body in (build_body(chat(tools=TOOLS, stream=True), "glm-4.6"), build_body(chat(), "glm-4.5-flash")):
        assert fake_official.check_request(json.loads(json.dumps(body))) is None


# ---- the chunk decoder ---------------------------------------------------------------

def sse(events, done=True) -> bytes:
    lines = [b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\n\n" for e in events]
    return b"".join(lines) + (b"data: [DONE]\n\n" if done else b"")


def stream_of(body: dict) -> bytes:
    fake = fake_official.FakeOfficial()
    return sse(fake.stream_events(body, fake_official.reply_to(body)))


def decode_split(data: bytes, at: list[int]) -> tuple[ChunkDecoder, list[Piece]]:
    decoder, pieces, start = ChunkDecoder(), [], 0
    for end in [*at, len(data)]:
        pieces.append(decoder.feed(data[start:end]))
        start = end
    pieces.append(decoder.close())
    return decoder, pieces


def joined(pieces: list[Piece]) -> tuple[str, str, list[dict]]:
    return "".join(p.reasoning for p in pieces), "".join(p.content for p in pieces), [c for p in pieces for c in p.tool_calls]


def merged_calls(deltas: list[dict]) -> list[dict]:
    calls: dict[int, dict] = {}
    for delta in deltas:
        call = calls.setdefault(delta["index"], {"function": {"name": "", "arguments": ""}})
        call.update({k: v for k, v in delta.items() if k in ("id", "type")})
        for key, value in delta["function"].items():
            call["function"][key] += value
    return list(calls.values())


THINKING_BODY = {"model": "glm-4.6", "messages": [{"role": "user", "content": "héllo 你好 🙂"}], "stream": True}


def test_decoder_reads_reasoning_content_usage_and_finish_whole():
    decoder, pieces = decode_split(stream_of(THINKING_BODY), [])
    assert joined(pieces)[:2] == ("Let me think about it.", "Hello from glm-4.6!")
    assert decoder.usage == fake_official.USAGE and decoder.usage["prompt_tokens_details"] == {"cached_tokens": 4}
    assert decoder.finish_reason == "stop" and decoder.done and decoder.error is None


def test_decoder_gives_one_piece_per_feed():
    decoder = ChunkDecoder()
    piece = decoder.feed(stream_of(THINKING_BODY))
    assert piece == Piece("Let me think about it.", "Hello from glm-4.6!", ())


def test_decoder_split_at_every_byte_gives_the_same_answer():
    data = stream_of(THINKING_BODY).replace(b"\n", b"\r\n")
    expected = joined(decode_split(data, [])[1])
    for cut in range(1, len(data)):
        decoder, pieces = decode_split(data, [cut])
        assert joined(pieces) == expected, cut
        assert decoder.done and decoder.usage == fake_official.USAGE


def test_decoder_tool_stream_pieces_split_at_every_byte_merge_to_the_call():
    body = {**THINKING_BODY, "tools": TOOLS, "tool_stream": True, "thinking": {"type": "disabled"}}
    data = stream_of(body)
    for cut in range(0, len(data), 3):
        decoder, pieces = decode_split(data, [cut, min(cut + 40, len(data))])
        calls = merged_calls(joined(pieces)[2])
        assert len(calls) == 1 and calls[0]["function"] == {"name": "get_weather", "arguments": fake_official.TOOL_ARGUMENTS}
        assert calls[0]["id"].startswith("call_") and calls[0]["type"] == "function"
        assert decoder.finish_reason == "tool_calls"


def test_decoder_joins_argument_pieces_that_arrive_together():
    body = {**THINKING_BODY, "tools": TOOLS, "tool_stream": True, "thinking": {"type": "disabled"}}
    (piece,) = [p for p in decode_split(stream_of(body), [])[1] if p.tool_calls]
    assert len(piece.tool_calls) == 1
    assert piece.tool_calls[0]["function"] == {"name": "get_weather", "arguments": fake_official.TOOL_ARGUMENTS}
    assert piece.tool_calls[0]["index"] == 0


def test_decoder_error_line_stops_and_keeps_what_came_first():
    chunk = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]}
    data = sse([chunk, fake_official.error_body("1301"), chunk], done=False)
    decoder = ChunkDecoder()
    assert decoder.feed(data) == Piece("", "Hi", ())
    assert decoder.error == ("1301", fake_official.BUSINESS_ERRORS["1301"][1])


def test_decoder_ticks_skips_junk_and_ignores_what_follows_done():
    decoder = ChunkDecoder()
    assert decoder.feed(b": ping\n\ndata: {not json\n\n") is TICK and not decoder.started
    assert decoder.feed(b'data: {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}\n\n') is TICK
    assert decoder.started
    assert decoder.feed(b'data: [DONE]\n\ndata: {"choices": [{"delta": {"content": "late"}}]}\n\n') is TICK
    assert decoder.done


def test_decoder_reads_an_unterminated_last_line_on_close():
    decoder = ChunkDecoder()
    decoder.feed(b'data: {"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "length"}]}')
    assert decoder.close() == Piece("", "a", ()) and decoder.finish_reason == "length"


# ---- errors --------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "code", "expected"), [
    (401, "1000", (502, "upstream_error", "upstream_unauthorized", True)),
    (401, "1001", (502, "upstream_error", "upstream_unauthorized", True)),
    (401, "1002", (502, "upstream_error", "upstream_unauthorized", True)),
    (401, "1003", (502, "upstream_error", "upstream_unauthorized", True)),
    (429, "1113", (429, "rate_limit_error", "insufficient_quota", True)),
    (400, "1211", (404, "not_found_error", "model_not_found", False)),
    (400, "1214", (400, "invalid_request_error", "invalid_request", False)),
    (400, "1261", (400, "invalid_request_error", "context_length_exceeded", False)),
    (400, "1301", (400, "invalid_request_error", "content_filter", False)),
    (429, "1302", (429, "rate_limit_error", "upstream_rate_limited", True)),
    (429, "1303", (429, "rate_limit_error", "upstream_rate_limited", True)),
    (429, "1304", (429, "rate_limit_error", "upstream_rate_limited", True)),
    (429, "1305", (429, "rate_limit_error", "upstream_rate_limited", True)),
    (500, "500", (502, "upstream_error", "upstream_error", False)),
    (503, "", (502, "upstream_error", "upstream_error", False)),
    (None, "1301", (400, "invalid_request_error", "content_filter", False)),  # an error line in a stream
])
def test_business_codes_become_openai_errors(status, code, expected):
    error = rejection(status, code, "what Z.ai said", model="glm-9")
    assert isinstance(error, UpstreamRejected)
    assert (error.status, error.type, error.code, error.retryable) == expected
    assert "what Z.ai said" in error.message and (not code or code in error.message)


def test_error_messages_say_what_to_do():
    assert "ZAI_API_KEY" in rejection(401, "1000", "bad").message
    assert "ZAI_API_KEY" in rejection(429, "1113", "arrears").message
    not_found = rejection(400, "1211", "no", model="glm-9")
    assert "API_MODEL_MAP" in not_found.message and "glm-9" in not_found.message and not_found.param == "model"
    assert "ZAI_API_BASE" in rejection(404, "", "Not Found").message


def test_rate_limits_carry_retry_after():
    assert rejection(429, "1302", "busy").headers == {"Retry-After": "1"}
    assert rejection(429, "1305", "busy", retry_after="17").headers == {"Retry-After": "17"}
    assert rejection(429, "1113", "arrears").headers is None
    assert ProxyError("x").headers is None


def test_fallback_marks_refusals_another_upstream_may_answer():
    assert all(rejection(s, c, "m").fallback for s, c in ((401, "1000"), (429, "1113"), (429, "1302"), (500, "500")))
    assert not any(rejection(400, c, "m").fallback for c in ("1211", "1214", "1261", "1301"))


# ---- keys ----------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_keys_are_used_in_turn():
    keys = ApiKeys(("a", "b", "c"), 60)
    assert [keys.acquire() for _ in range(4)] == ["a", "b", "c", "a"]
    assert keys.acquire(avoid="b") == "c"


def test_a_key_set_aside_comes_back_after_the_cooldown():
    clock = Clock()
    keys = ApiKeys(("key-number-one-0123456789", "key-number-two-0123456789"), 60, clock)
    keys.set_aside("key-number-one-0123456789", rejection(401, "1000", "bad"))
    assert {keys.acquire() for _ in range(4)} == {"key-number-two-0123456789"}
    assert keys.acquire(avoid="key-number-two-0123456789") is None
    aside = keys.set_aside_now()
    assert aside == [{"key": "…(25 chars)", "seconds_left": 60, "reason": "upstream_unauthorized"}]
    clock.now += 61
    assert keys.set_aside_now() == []
    assert {keys.acquire() for _ in range(4)} == {"key-number-one-0123456789", "key-number-two-0123456789"}


def test_when_every_key_is_set_aside_the_latest_refusal_answers():
    clock = Clock()
    keys = ApiKeys(("a", "b"), 600, clock)
    keys.set_aside("a", rejection(401, "1000", "bad"))
    clock.now += 5
    keys.set_aside("b", rejection(429, "1113", "arrears"))
    assert keys.acquire() is None and keys.probe() is None  # a refusal just now: no probe yet
    error = keys.all_set_aside()
    assert (error.status, error.code) == (429, "insufficient_quota")
    assert "API_KEY_COOLDOWN_S" in error.message and "arrears" in error.message
    assert "first comes back in 595 s" in error.message


def test_with_every_key_set_aside_one_request_every_interval_probes_the_first_to_come_back():
    clock = Clock()
    keys = ApiKeys(("a", "b"), 600, clock)
    keys.set_aside("a", rejection(401, "1000", "bad"))
    keys.set_aside("b", rejection(429, "1113", "arrears"))
    clock.now += PROBE_INTERVAL_S
    assert keys.probe() == "a"  # its cool-down ends first
    assert keys.probe() is None  # one probe per interval
    clock.now += PROBE_INTERVAL_S
    assert keys.probe() == "a"
    keys.answered("a")
    assert keys.acquire() == "a" and [k["key"] for k in keys.set_aside_now()] == ["…"]


ONE, TWO = "0f3c9a1b2d4e5f60718293a4b5c6d7e8.AbCdEfGh", "9e8d7c6b5a4f30211203f4e5d6c7b8a9.QrStUvWx"


def test_every_change_of_the_keys_set_aside_is_told_whole():
    clock, told = Clock(), []
    keys = ApiKeys((ONE, TWO), 60, clock, on_change=told.append)
    keys.set_aside(ONE, rejection(401, "1000", "bad"))
    clock.now += 10
    keys.set_aside(TWO, rejection(429, "1113", "arrears"))
    keys.answered(TWO)  # a probe answered: back in use
    keys.answered(ONE[::-1])  # never set aside: no change
    clock.now += 50
    keys.acquire()  # ONE's cool-down ended: back in use
    one, two = ("0f3c9a…(41 chars)", "upstream_unauthorized"), ("9e8d7c…(41 chars)", "insufficient_quota")
    assert told == [{one: 60}, {one: 50, two: 60}, {one: 50}, {}]
