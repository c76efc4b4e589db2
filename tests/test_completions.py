"""The web chat's answer read into pieces, and the OpenAI writer, without HTTP (the
upstream body is a list of reads)."""

import json

import pytest

import zai_scenarios as z
from zto.completions import KEEPALIVE, sse_stream
from zto.errors import UpstreamRejected
from zto.metrics import Metrics
from zto.openai_format import ChunkEncoder, ThinkingPresenter
from zto.stats import PendingRequest
from zto.upstreams import TICK, Piece
from zto.web_chat import WebAnswer


class Reads:
    """Stands in for StreamedBody: the body arrives as these network reads."""

    def __init__(self, *reads: bytes):
        self.reads = reads
        self.closed = False

    def chunks(self):
        yield from self.reads

    def close(self):
        self.closed = True

    def release(self):
        self.close()


def sse(*events) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def tokens_in_use(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("zto_upstream_tokens_in_use", {"token_kind": "guest"})


def answer_of(*reads: bytes, metrics: Metrics | None = None) -> tuple[WebAnswer, Reads]:
    upstream = Reads(*reads)
    return WebAnswer(upstream, "prod-fe-1.0.94", (metrics or Metrics()).upstream_opened("guest")), upstream


def record() -> PendingRequest:
    return PendingRequest("POST", "/v1/chat/completions", "127.0.0.1", "test")


def test_events_that_arrive_together_leave_as_one_piece():
    answer, _ = answer_of(sse(*z.SCENARIOS["plain"].events))
    assert [p for p in answer.pieces() if p != TICK] == [Piece(content="Hello, world!")]


def test_text_before_an_error_in_the_same_read_is_not_lost():
    answer, _ = answer_of(sse(*z.SCENARIOS["mid_error"].events))
    pieces = answer.pieces()
    assert next(pieces) == Piece(content="Partial answer")
    with pytest.raises(UpstreamRejected, match="Internal failure"):
        next(pieces)


def test_a_read_that_shows_nothing_yields_a_tick():
    answer, _ = answer_of(b": ping\n\n", sse(*z.SCENARIOS["plain"].events))
    assert list(answer.pieces())[:2] == [TICK, Piece(content="Hello, world!")]


def test_pieces_carry_raw_reasoning_whatever_the_thinking_mode():
    answer, _ = answer_of(sse(*z.SCENARIOS["thinking"].events))
    pieces = list(answer.pieces())
    assert "".join(p.reasoning for p in pieces) == z.SCENARIOS["thinking"].reasoning
    assert "".join(p.content for p in pieces) == z.SCENARIOS["thinking"].content


def test_prime_stops_at_the_first_text_and_close_closes_the_upstream():
    events = z.SCENARIOS["long"].events
    answer, upstream = answer_of(b": ping\n\n", sse(events[0]), sse(*events[1:]))
    answer.prime()
    answer.close()
    assert upstream.closed


def test_prime_returns_at_the_first_event_even_without_text():
    """Hidden reasoning must not hold back the response: headers go out after one event."""
    def first_event_then_nothing():
        yield sse(z.SCENARIOS["thinking"].events[0])
        raise AssertionError("prime read past the first event")

    upstream = Reads()
    upstream.chunks = first_event_then_nothing
    WebAnswer(upstream, "prod-fe-1.0.94", Metrics().upstream_opened("guest")).prime()


def test_the_answer_ends_without_reading_past_done():
    """A Z.ai that keeps the body open after done must not delay the end of the answer."""
    def hang_after_done():
        yield sse(*z.SCENARIOS["plain"].events)
        raise AssertionError("read past done")

    upstream = Reads()
    upstream.chunks = hang_after_done
    released, metrics = [], Metrics()
    upstream.release = lambda: released.append(True)
    answer = WebAnswer(upstream, "prod-fe-1.0.94", metrics.upstream_opened("guest"))
    assert "".join(p.content for p in answer.pieces()) == "Hello, world!"
    assert tokens_in_use(metrics) == 1
    answer.close()
    assert released == [True]  # a finished answer hands its connection back for reuse
    answer.close()
    assert tokens_in_use(metrics) == 0  # given back once, however often it is closed


def test_output_that_shows_nothing_gets_keepalive_comments():
    hidden = [z.chunk("thinking", delta_content=t) for t in (z.OPENER, "a", "b", "c")]
    answer, _ = answer_of(*(sse(e) for e in hidden), sse(*z.SCENARIOS["plain"].events))
    body = list(sse_stream(answer, ChunkEncoder("GLM-4.6"), ThinkingPresenter("hide"), include_usage=False,
                           keepalive_s=0.0, record=record(), metrics=Metrics()))
    assert body.count(KEEPALIVE) >= 3 and body[-1].endswith(b"data: [DONE]\n\n")


def test_a_complete_stream_leaves_the_upstream_to_the_response_close():
    """Z.ai's tail is read after the client has its last byte, not before."""
    answer, upstream = answer_of(sse(*z.SCENARIOS["plain"].events))
    released = []
    upstream.release = lambda: released.append(True)
    body = list(sse_stream(answer, ChunkEncoder("GLM-4.6"), ThinkingPresenter("reasoning"), include_usage=True,
                           keepalive_s=10, record=record(), metrics=Metrics()))
    assert body[-1].endswith(b"data: [DONE]\n\n") and released == []
    answer.close()
    assert released == [True]


def test_an_abandoned_stream_closes_the_upstream_at_once():
    answer, upstream = answer_of(*(sse(e) for e in z.SCENARIOS["long"].events))
    pending, metrics = record(), Metrics()
    body = sse_stream(answer, ChunkEncoder("GLM-4.6"), ThinkingPresenter("reasoning"), include_usage=False,
                      keepalive_s=10, record=pending, metrics=metrics)
    next(body), next(body)
    assert metrics.registry.get_sample_value("zto_streams_in_flight") == 1
    body.close()  # what the server does when the client goes away
    assert upstream.closed and pending.error == "client_disconnected"
    assert metrics.registry.get_sample_value("zto_streams_in_flight") == 0  # counted as closed


def test_the_answer_after_the_reasoning_in_one_read_leaves_after_it_not_with_it():
    answer, _ = answer_of(sse(*z.SCENARIOS["thinking"].events))
    pieces = [p for p in answer.pieces() if p != TICK]
    first_content = next(i for i, p in enumerate(pieces) if p.content)
    assert pieces[first_content].reasoning == "" and not any(p.reasoning for p in pieces[first_content:])
    assert "".join(p.reasoning for p in pieces) == z.SCENARIOS["thinking"].reasoning


def test_every_write_counts_the_role_goes_with_the_first_text_and_the_end_together():
    events = z.SCENARIOS["long"].events
    answer, _ = answer_of(*(sse(e) for e in events))
    body = list(sse_stream(answer, ChunkEncoder("GLM-4.6"), ThinkingPresenter("reasoning"), include_usage=True,
                           keepalive_s=10, record=record(), metrics=Metrics()))
    first, last = body[0].decode(), body[-1].decode()
    assert first.count("data: ") == 2 and '"role":"assistant"' in first and '"content":' in first.split("\n\n")[1]
    assert last.count("data: ") == 3 and '"finish_reason":"stop"' in last and last.endswith("data: [DONE]\n\n")
    assert len(body) == sum(1 for e in events if e["data"].get("delta_content")) + 1  # a write per text read, one to end


def test_a_tick_first_sends_the_role_at_once():
    answer, _ = answer_of(b": ping\n\n", sse(*z.SCENARIOS["plain"].events))
    body = list(sse_stream(answer, ChunkEncoder("GLM-4.6"), ThinkingPresenter("reasoning"), include_usage=False,
                           keepalive_s=10, record=record(), metrics=Metrics()))
    assert body[0].count(b"data: ") == 1 and b'"role":"assistant"' in body[0]
