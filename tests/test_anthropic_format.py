"""Unit tests of zto/anthropic_format.py: pieces in, Anthropic events and messages out.

The event sequences are checked against Anthropic's grammar and replayed through the
official SDK's own stream accumulator, which must rebuild exactly the whole message.
"""

from __future__ import annotations

import json

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from zto.anthropic_format import (
    PING,
    MessageBuilder,
    StopScanner,
    error_body,
    error_event,
    error_status,
    sse,
    usage_of,
)
from zto.errors import InvalidRequest, ProxyError, Unauthorized, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from zto.upstreams import TICK, Piece

USAGE = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
         "prompt_tokens_details": {"cached_tokens": 100}}


def tool_deltas(index: int, call_id: str, name: str, arguments: str, pieces: int = 3) -> list[Piece]:
    """An OpenAI tool call as it streams: id and name first, then arguments in pieces."""
    first = Piece(tool_calls=({"index": index, "id": call_id, "type": "function",
                               "function": {"name": name, "arguments": ""}},))
    size = max(1, -(-len(arguments) // pieces))
    rest = [Piece(tool_calls=({"index": index, "function": {"arguments": arguments[i:i + size]}},))
            for i in range(0, len(arguments), size)]
    return [first, *rest]


def run(pieces, finish_reason="stop", usage=None, stop_sequences=()):
    builder = MessageBuilder("claude-sonnet-4-5", stop_sequences=stop_sequences, input_tokens=7,
                             message_id="msg_test")
    events = [builder.start()]
    for piece in pieces:
        events += builder.feed(piece)
        if builder.stopped:
            break
    events += builder.finish(finish_reason, usage)
    return events, builder.message()


def check_grammar(events: list[dict]) -> None:
    """message_start, then blocks one at a time (start, deltas, stop), message_delta, message_stop."""
    assert events[0]["type"] == "message_start"
    assert [e["type"] for e in events[-2:]] == ["message_delta", "message_stop"]
    open_index, next_index, kind, signed = None, 0, None, False
    allowed = {"text": {"text_delta"}, "thinking": {"thinking_delta", "signature_delta"},
               "tool_use": {"input_json_delta"}}
    for event in events[1:-2]:
        if event["type"] == "content_block_start":
            assert open_index is None and event["index"] == next_index
            open_index, kind, signed = event["index"], event["content_block"]["type"], False
        elif event["type"] == "content_block_delta":
            assert event["index"] == open_index and event["delta"]["type"] in allowed[kind]
            assert not signed, "nothing after a thinking block's signature"
            signed = event["delta"]["type"] == "signature_delta"
        else:
            assert event["type"] == "content_block_stop" and event["index"] == open_index
            assert kind != "thinking" or signed, "a thinking block ends with its signature"
            open_index, next_index = None, next_index + 1
    assert open_index is None and next_index >= 1, "at least one block, all closed"


def replay(events: list[dict]) -> dict:
    """The message the official SDK accumulates from these events (sent as SSE bytes)."""
    snapshot, json_buffers = None, {}
    for event in events:
        wire = sse(event)
        name, data = wire.split(b"\n")[:2]
        assert name == b"event: " + event["type"].encode()
        snapshot = accumulate_event(event=orjson.loads(data[len(b"data: "):]), current_snapshot=snapshot,
                                    json_bufs=json_buffers)
    return snapshot.model_dump(exclude_none=True)


def test_text_answer_whole_and_streamed():
    events, message = run([Piece(content="Hel"), TICK, Piece(content="lo")], usage=USAGE)
    check_grammar(events)
    assert message["content"] == [{"type": "text", "text": "Hello"}]
    assert message["stop_reason"] == "end_turn" and message["stop_sequence"] is None
    assert message["usage"] == {"input_tokens": 20, "output_tokens": 30, "cache_read_input_tokens": 100}
    assert message["id"] == "msg_test" and message["model"] == "claude-sonnet-4-5"
    Message.model_validate(message)
    assert [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"] == ["Hel", "lo"]


def test_thinking_block_comes_first_with_a_signature():
    events, message = run([Piece(reasoning="Let me "), Piece(reasoning="think."), Piece(content="42")])
    check_grammar(events)
    thinking, text = message["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == "Let me think."
    assert isinstance(thinking["signature"], str) and thinking["signature"]
    assert text == {"type": "text", "text": "42"}
    deltas = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == ["thinking_delta", "thinking_delta", "signature_delta", "text_delta"]


def test_omitted_thinking_keeps_the_block_and_its_signature_not_its_text():
    builder = MessageBuilder("m", omit_thinking=True)
    events = [builder.start(), *builder.feed(Piece(reasoning="secret")), *builder.feed(Piece(content="hi")),
              *builder.finish("stop", None)]
    check_grammar(events)
    thinking, text = builder.message()["content"]
    assert thinking["thinking"] == "" and thinking["signature"] and text["text"] == "hi"
    assert b"secret" not in b"".join(map(sse, events))


def test_one_piece_with_reasoning_and_text_opens_both_blocks_in_order():
    events, message = run([Piece(reasoning="hmm", content="yes")])
    check_grammar(events)
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]


def test_tool_calls_become_tool_use_blocks():
    pieces = [Piece(content="Let me look."),
              *tool_deltas(0, "call_1", "get_weather", '{"city": "Paris"}'),
              *tool_deltas(1, "call_2", "get_time", '{"tz": "CET"}')]
    events, message = run(pieces, finish_reason="tool_calls")
    check_grammar(events)
    text, first, second = message["content"]
    assert text == {"type": "text", "text": "Let me look."}
    assert first == {"type": "tool_use", "id": "toolu_call_1", "name": "get_weather", "input": {"city": "Paris"}}
    assert second["id"] == "toolu_call_2" and second["input"] == {"tz": "CET"}
    assert message["stop_reason"] == "tool_use"
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts[1] == {"type": "tool_use", "id": "toolu_call_1", "name": "get_weather", "input": {}}
    partial = "".join(e["delta"]["partial_json"] for e in events
                      if e["type"] == "content_block_delta" and e["index"] == 1)
    assert json.loads(partial) == {"city": "Paris"}


def test_tool_ids_already_anthropic_kept_missing_ones_made_and_no_arguments_is_empty_input():
    pieces = [Piece(tool_calls=({"index": 0, "id": "toolu_abc", "function": {"name": "a"}},)),
              Piece(tool_calls=({"index": 1, "function": {"name": "b", "arguments": ""}},))]
    _, message = run(pieces, finish_reason="stop")
    first, second = message["content"]
    assert first["id"] == "toolu_abc" and first["input"] == {}
    assert second["id"].startswith("toolu_") and len(second["id"]) > len("toolu_")
    assert message["stop_reason"] == "tool_use", "tool calls made mean tool_use, whatever the upstream said"


def test_interleaved_tool_arguments_fail_visibly():
    builder = MessageBuilder("m")
    builder.feed(tool_deltas(0, "a", "f", "")[0])
    builder.feed(tool_deltas(1, "b", "g", "")[0])
    with pytest.raises(UpstreamRejected):
        builder.feed(Piece(tool_calls=({"index": 0, "function": {"arguments": "{}"}},)))


def test_tool_arguments_that_are_not_an_object_fail():
    builder = MessageBuilder("m")
    for piece in tool_deltas(0, "a", "f", "[1, 2"):
        builder.feed(piece)
    with pytest.raises(UpstreamRejected, match="not a JSON object"):
        builder.finish("tool_calls", None)


@pytest.mark.parametrize(("finish_reason", "stop_reason"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")])
def test_stop_reasons(finish_reason, stop_reason):
    events, message = run([Piece(content="x")], finish_reason=finish_reason)
    assert message["stop_reason"] == stop_reason
    assert events[-2]["delta"]["stop_reason"] == stop_reason


def test_an_empty_answer_still_has_one_block():
    events, message = run([TICK, TICK])
    check_grammar(events)
    assert message["content"] == [{"type": "text", "text": ""}]


def test_reasoning_only_answer_has_its_thinking_block_and_no_more():
    events, message = run([Piece(reasoning="only thoughts")])
    check_grammar(events)
    assert [b["type"] for b in message["content"]] == ["thinking"]


def test_stop_sequence_cuts_the_text_and_is_named():
    events, message = run([Piece(content="one, tw"), Piece(content="o, STO"), Piece(content="P, three")],
                          stop_sequences=("STOP", "never"))
    check_grammar(events)
    assert message["content"] == [{"type": "text", "text": "one, two, "}]
    assert message["stop_reason"] == "stop_sequence" and message["stop_sequence"] == "STOP"
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "STOP"}


def test_held_back_text_is_sent_before_the_next_block_and_at_the_end():
    events, message = run([Piece(content="abc S"), *tool_deltas(0, "c", "f", "{}"), Piece(content="end S")],
                          stop_sequences=("STOP",))
    check_grammar(events)
    assert [b.get("text") for b in message["content"]] == ["abc S", None, "end S"]
    assert message["stop_reason"] == "tool_use"


def test_stop_scanner_split_everywhere():
    text = "alpha beta <END> gamma"
    for cut in range(len(text) + 1):
        scanner = StopScanner(("<END>",))
        shown = scanner.feed(text[:cut]) + scanner.feed(text[cut:])
        assert shown == "alpha beta " and scanner.matched == "<END>"
        assert scanner.flush() == ""


def test_usage_without_upstream_figures_is_estimated():
    assert usage_of(None, 10, 3) == {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 0}
    assert usage_of({"prompt_tokens": 5, "completion_tokens": 2}, 10, 3) == {
        "input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 0}
    _, message = run([Piece(content="x" * 40)])
    assert message["usage"]["output_tokens"] == 10


def test_sse_wire_format_and_ping():
    assert sse({"type": "message_stop"}) == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    assert PING == sse({"type": "ping"})


@pytest.mark.parametrize(("error", "status", "kind"), [
    (InvalidRequest("bad"), 400, "invalid_request_error"),
    (Unauthorized("who"), 401, "authentication_error"),
    (UpstreamRejected("captcha", status=403, code="upstream_captcha_required"), 403, "permission_error"),
    (ProxyError("no", status=404, code="model_not_found"), 404, "not_found_error"),
    (ProxyError("big", status=413, code="request_too_large"), 413, "request_too_large"),
    (UpstreamRejected("slow down", status=429, code="upstream_rate_limited"), 429, "rate_limit_error"),
    (ProxyError("bug"), 500, "api_error"),
    (UpstreamRejected("bad key", code="upstream_unauthorized"), 500, "api_error"),
    (UpstreamUnavailable("down"), 529, "overloaded_error"),
    (UpstreamTimeout("silent"), 529, "overloaded_error"),
])
def test_errors_in_anthropic_shape(error, status, kind):
    assert error_status(error) == status
    assert error_body(status, error.message) == {"type": "error", "error": {"type": kind, "message": error.message}}
    name, data = error_event(error).split(b"\n")[:2]
    assert name == b"event: error" and orjson.loads(data[6:])["error"]["type"] == kind


def test_other_statuses_get_a_type_by_class():
    assert error_body(405, "m")["error"]["type"] == "invalid_request_error"
    assert error_body(503, "m")["error"]["type"] == "api_error"


# -- every order of pieces ---------------------------------------------------------

texts = st.text(alphabet="ab STOP\n\u00e9\u4e2d", min_size=1, max_size=6)
kinds = st.lists(st.sampled_from(["reasoning", "content", "tool", "tick"]), max_size=12)


@st.composite
def piece_streams(draw):
    pieces, tool_index = [], 0
    for kind in draw(kinds):
        if kind == "reasoning":
            pieces.append(Piece(reasoning=draw(texts)))
        elif kind == "content":
            pieces.append(Piece(content=draw(texts)))
        elif kind == "tool":
            value = {"k": draw(texts)}
            pieces += tool_deltas(tool_index, f"call_{tool_index}", "f", json.dumps(value),
                                  pieces=draw(st.integers(1, 4)))
            tool_index += 1
        else:
            pieces.append(TICK)
    return pieces


@settings(max_examples=300, deadline=None)
@given(piece_streams(), st.sampled_from([(), ("STOP",), ("a", "\n\n")]),
       st.sampled_from(["stop", "length", "tool_calls"]))
def test_any_order_of_pieces(pieces, stop_sequences, finish_reason):
    events, message = run(pieces, finish_reason, USAGE, stop_sequences)
    check_grammar(events)
    Message.model_validate(message)
    assert replay(events) == Message.model_validate(message).model_dump(exclude_none=True)
    shown_text = "".join(b["text"] for b in message["content"] if b["type"] == "text")
    all_text = "".join(p.content for p in pieces)
    if message["stop_reason"] == "stop_sequence":
        assert message["stop_sequence"] in stop_sequences
        # Within each text block: a tool call or thinking between two texts ends the first
        # block (its held-back text flushed), so a sequence split around it is not one.
        texts = [b["text"] for b in message["content"] if b["type"] == "text"]
        assert all(s not in text for s in stop_sequences for text in texts)
    elif not stop_sequences:
        assert shown_text == all_text
        assert "".join(b["thinking"] for b in message["content"] if b["type"] == "thinking") == \
            "".join(p.reasoning for p in pieces)
