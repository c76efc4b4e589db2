"""SSEDecoder and parse_event: bytes split anywhere in, the same data payloads out."""

from __future__ import annotations

import json
import logging
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zai_scenarios import SCENARIOS
from zto.sse import SSEDecoder, parse_event

LINE_ENDS = ["\n", "\r\n", "\r"]


def decode(*pieces: bytes) -> list[str]:
    decoder = SSEDecoder()
    payloads = []
    for piece in pieces:
        payloads += decoder.feed(piece)
    return payloads + decoder.close()


def split_at(data: bytes, cuts) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def serialize(events: list[dict], eol: str) -> bytes:
    """Z.ai's framing: one data line per event, a blank line after each, with a
    comment and an ignored field thrown in so that the decoder must skip them."""
    out = [f": keep-alive{eol}", f"event: message{eol}"]
    for event in events:
        out.append(f"data: {json.dumps(event, ensure_ascii=False)}{eol}{eol}")
    return "".join(out).encode()


# One stream per (scenario, line end): every scenario's events, its multibyte text included.
STREAMS = [(name, eol, serialize(s.events, eol)) for name, s in SCENARIOS.items() for eol in LINE_ENDS]
EXPECTED = {name: [json.dumps(e, ensure_ascii=False) for e in s.events] for name, s in SCENARIOS.items()}


@pytest.mark.parametrize("eol", LINE_ENDS, ids=["LF", "CRLF", "CR"])
def test_each_line_end_ends_a_line(eol):
    stream = f"data: one{eol}{eol}data: two{eol}{eol}".encode()
    assert decode(stream) == ["one", "two"]


def test_feed_returns_payloads_as_soon_as_their_line_ends():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one") == []
    assert decoder.feed(b"\n") == ["one"]
    assert decoder.feed(b"\ndata: two\n") == ["two"]
    assert decoder.close() == []


def test_crlf_split_between_cr_and_lf_is_one_line_end():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\r") == ["one"]
    # The LF completes the CRLF: it must not end an empty line that swallows "two".
    assert decoder.feed(b"\ndata: two\r") == ["two"]
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: three\r\n") == ["three"]
    assert decoder.close() == []


def test_cr_then_empty_feed_then_lf():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\r") == ["one"]
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\ndata: two\n") == ["two"]


def test_lone_cr_followed_by_text_is_a_line_end():
    assert decode(b"data: one\r", b"data: two\r") == ["one", "two"]


def test_two_crs_are_two_line_ends_not_one():
    assert decode(b"data: one\r\rdata: two\r\r") == ["one", "two"]


def test_data_with_and_without_space():
    assert decode(b"data: spaced\ndata:tight\ndata:  two spaces\n") == ["spaced", "tight", " two spaces"]


def test_empty_data_lines():
    assert decode(b"data:\ndata: \n") == ["", ""]


def test_comments_and_other_fields_are_ignored():
    stream = b": a comment\n:\nevent: chat\nid: 7\nretry: 1000\nfoo: bar\ndatax: no\n data: no\ndata: yes\n\n"
    assert decode(stream) == ["yes"]


def test_multibyte_character_split_across_feeds():
    text = "data: 你好 🙂\n".encode()
    for cut in range(len(text) + 1):
        assert decode(text[:cut], text[cut:]) == ["你好 🙂"], cut


def test_every_byte_fed_alone():
    text = "data: 你好 🙂\r\ndata: ok\r\n".encode()
    assert decode(*(bytes([b]) for b in text)) == ["你好 🙂", "ok"]


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_unicode_line_breaks_inside_data_do_not_split(char):
    payload = f'{{"t": "a{char}b"}}'
    stream = f"data: {payload}\n\n".encode()
    assert decode(stream) == [payload]
    # Split inside the (multibyte) separator too.
    assert decode(*(bytes([b]) for b in stream)) == [payload]


def test_close_returns_a_last_line_without_line_end():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\ndata: last") == ["one"]
    assert decoder.close() == ["last"]


def test_close_ignores_a_last_comment_or_empty_rest():
    decoder = SSEDecoder()
    decoder.feed(b"data: one\n: trailing comment")
    assert decoder.close() == []
    assert SSEDecoder().close() == []


def test_close_replaces_a_truncated_multibyte_character():
    decoder = SSEDecoder()
    assert decoder.feed("data: a你".encode()[:-1]) == []
    assert decoder.close() == ["a\ufffd"]


def test_invalid_utf8_is_replaced_not_fatal():
    assert decode(b"data: a\xffb\n") == ["a\ufffdb"]


def test_parse_event_returns_objects():
    assert parse_event('{"type": "chat:completion", "data": {"delta_content": "hi"}}') == {
        "type": "chat:completion", "data": {"delta_content": "hi"}}


@pytest.mark.parametrize("payload", ['{"type": "chat:compl', "[DONE]", "", "not json"])
def test_parse_event_skips_broken_json_and_logs_it(payload, caplog):
    with caplog.at_level(logging.WARNING, logger="zto.sse"):
        assert parse_event(payload) is None
    assert any("not JSON" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("payload", ["[1, 2]", '"text"', "42", "null", "true"])
def test_parse_event_skips_non_objects_and_logs_it(payload, caplog):
    with caplog.at_level(logging.WARNING, logger="zto.sse"):
        assert parse_event(payload) is None
    assert any("not an object" in r.getMessage() for r in caplog.records)


def test_parse_event_log_is_bounded(caplog):
    with caplog.at_level(logging.WARNING, logger="zto.sse"):
        parse_event("x" * 10_000)
    assert len(caplog.records[0].getMessage()) < 400


@pytest.mark.parametrize(("name", "eol", "stream"), STREAMS, ids=[f"{n}-{repr(e)}" for n, e, _ in STREAMS])
def test_scenario_streams_one_feed_and_byte_by_byte(name, eol, stream):
    assert decode(stream) == EXPECTED[name]
    # The bulk scenario's first 50 kB byte by byte (six of its 8 kB lines), the rest at
    # once: all 10 MB would be ten million calls.
    head = stream[:50_000]
    assert decode(*(head[i:i + 1] for i in range(len(head))), stream[len(head):]) == EXPECTED[name]


@pytest.mark.parametrize("eol", LINE_ENDS, ids=["LF", "CRLF", "CR"])
def test_stream_without_final_line_end(eol):
    events = SCENARIOS["thinking"].events
    stream = eol.join(f"data: {json.dumps(e, ensure_ascii=False)}" for e in events).encode()
    assert decode(stream) == EXPECTED["thinking"]
    assert [parse_event(p) for p in decode(stream)] == events


@settings(max_examples=200, deadline=None)
@given(data=st.data(), index=st.integers(0, len(STREAMS) - 1))
def test_scenario_streams_split_anywhere(data, index):
    name, _eol, stream = STREAMS[index]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=40))
    pieces = split_at(stream, cuts)
    assert b"".join(pieces) == stream
    payloads = decode(*pieces)
    assert payloads == decode(stream) == EXPECTED[name]
    assert [parse_event(p) for p in payloads] == SCENARIOS[name].events


def test_a_long_line_in_small_reads_is_decoded_in_linear_time():
    """A 1 MB line in 16-byte reads: each read used to be added to the whole pending line,
    copying it again (32 GB copied in all, tens of seconds); the pieces are now joined
    once. The bound is a generous timeout, a hundred times the time it takes."""
    line = b"data: " + b"x" * 1_000_000 + b"\n\n"
    decoder = SSEDecoder()
    started = time.monotonic()
    payloads = []
    for i in range(0, len(line), 16):
        payloads += decoder.feed(line[i:i + 16])
    assert payloads == ["x" * 1_000_000] and time.monotonic() - started < 5
