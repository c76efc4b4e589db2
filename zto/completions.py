"""The OpenAI front end's writing: an upstream ``Answer`` as OpenAI SSE chunks or as
one whole completion.

The answer has already started (``Upstreams.start``), so refusals are HTTP errors
before this runs. ``sse_stream`` shapes reasoning by ``THINKING_MODE`` (a
``ThinkingPresenter``), writes one chunk per piece (text and tool-call deltas), a
keepalive comment when the upstream has shown nothing for a while, and the answer's
``finish_reason``; once streaming has begun, failures end the stream with an error
event and ``[DONE]``, never in silence (the loop is ``streaming.stream_answer``,
shared with Anthropic's front end). ``collect`` gathers a whole answer, tool-call
deltas merged by index.
"""

from __future__ import annotations

from collections.abc import Iterator

from .errors import ProxyError, UpstreamRejected
from .metrics import Metrics
from .openai_format import DONE, ChunkEncoder, ThinkingPresenter, error_event, merge_tool_calls
from .stats import PendingRequest
from .streaming import stream_answer, whole_pieces
from .upstreams import Answer, Piece

KEEPALIVE = b": keepalive\n\n"


def nothing_shown() -> UpstreamRejected:
    """An answer that ended normally but showed nothing: THINKING_MODE=hide on an answer
    that only reasoned. A blank answer reads as a broken proxy, so it is an error."""
    return UpstreamRejected("The model only reasoned and wrote no answer, and THINKING_MODE=hide drops reasoning. "
                            "Try again, or set THINKING_MODE=reasoning to see it.", code="upstream_empty_answer")


class OpenAIWriter:
    """OpenAI's chunks for one answer (an ``EventWriter``): reasoning shaped by
    ``THINKING_MODE``, text and tool-call deltas, the finish reason, the usage if asked
    for, ``[DONE]``; a failure is an error chunk then ``[DONE]``."""

    keepalive = KEEPALIVE
    done = False

    def __init__(self, encoder: ChunkEncoder, presenter: ThinkingPresenter, include_usage: bool) -> None:
        self._encoder = encoder
        self._presenter = presenter
        self._include_usage = include_usage
        self._shown = False

    def start(self) -> bytes:
        return self._encoder.role()

    def piece(self, piece: Piece) -> bytes:
        reasoning, content, tool_calls = piece
        if reasoning or content:
            reasoning, content = self._presenter.present(reasoning, content)
        if reasoning or content or tool_calls:
            self._shown = True
            return self._encoder.delta(reasoning, content, tool_calls)
        return b""

    def end(self, answer: Answer) -> bytes:
        encoder = self._encoder
        reasoning, content = self._presenter.close()
        if not (self._shown or reasoning or content) and answer.finish_reason == "stop":
            raise nothing_shown()
        tail = encoder.delta(reasoning, content) if reasoning or content else b""
        tail += encoder.finish(answer.finish_reason)
        if self._include_usage:
            tail += encoder.usage(answer.usage)
        return tail + DONE

    def failure(self, error: ProxyError) -> bytes:
        return error_event(error.to_dict()) + DONE


def sse_stream(answer: Answer, encoder: ChunkEncoder, presenter: ThinkingPresenter, *, include_usage: bool,
               keepalive_s: float, record: PendingRequest, metrics: Metrics) -> Iterator[bytes]:
    """The OpenAI SSE body (``streaming.stream_answer`` with an ``OpenAIWriter``)."""
    return stream_answer(answer, OpenAIWriter(encoder, presenter, include_usage), keepalive_s=keepalive_s,
                         record=record, metrics=metrics)


def collect(answer: Answer, presenter: ThinkingPresenter,
            metrics: Metrics) -> tuple[str, str, list[dict]]:
    """The whole (reasoning, content, tool calls) of an answer. A failure closes the
    upstream; after success the caller closes it once the response is sent."""
    reasoning, content, deltas = [], [], []
    present = presenter.present
    for piece in whole_pieces(answer, metrics):
        r, c = present(piece.reasoning, piece.content)
        reasoning.append(r)
        content.append(c)
        deltas.extend(piece.tool_calls)
    r, c = presenter.close()
    reasoning_text, content_text = "".join(reasoning) + r, "".join(content) + c
    if not (reasoning_text or content_text or deltas) and answer.finish_reason == "stop":
        answer.close()
        metrics.upstream_error("upstream_empty_answer")
        raise nothing_shown()
    return reasoning_text, content_text, merge_tool_calls(deltas)
