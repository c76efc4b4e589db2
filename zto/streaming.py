"""Writing a started upstream ``Answer`` as server-sent events, for every front end.

``stream_answer`` is the one loop both APIs stream with: it counts the stream and its
first text in the metrics, writes each piece as the front end's ``EventWriter`` says,
writes the writer's keepalive when the upstream has shown nothing for
``STREAM_KEEPALIVE_S``, and ends the stream with the writer's failure event if the
upstream fails after the stream began (or a restart's grace period ends it), never in
silence. A failed or abandoned stream
closes the upstream at once; a complete one leaves that to the response's close,
which the server calls after the body's last bytes, so reading the upstream's tail
never delays them. ``whole_pieces`` reads an answer that is sent whole.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

from .errors import ProxyError, UpstreamError
from .metrics import Metrics
from .stats import PendingRequest
from .upstreams import Answer, Piece, log_failure


class EventWriter(Protocol):
    """One front end's events for one answer."""

    keepalive: bytes  # sent when the upstream has shown nothing for a while

    @property
    def done(self) -> bool:
        """The answer needs no more pieces (a stop sequence ended it)."""

    def start(self) -> bytes:
        """The stream's first events."""

    def piece(self, piece: Piece) -> bytes:
        """The events for one piece; empty when it shows nothing."""

    def end(self, answer: Answer) -> bytes:
        """The stream's last events, once the pieces are done."""

    def failure(self, error: ProxyError) -> bytes:
        """The events that end a stream the upstream failed (or a restart ended)."""


def stream_answer(answer: Answer, writer: EventWriter, *, keepalive_s: float, record: PendingRequest,
                  metrics: Metrics) -> Iterator[bytes]:
    finished = False
    first_text = True
    metrics.stream_opened()
    # Every yield is a socket write (a system call): the opening events leave with the
    # first text (at once if the answer shows nothing yet), and the end in one write.
    opening = writer.start()
    try:
        last_write = time.monotonic()
        for piece in answer.pieces():
            data = writer.piece(piece)
            if data:
                if first_text:
                    first_text = False
                    metrics.first_token(time.perf_counter() - record.started)
                yield opening + data  # b"" + data is data itself
                opening = b""
                last_write = time.monotonic()
            elif opening:
                due = time.monotonic() - last_write >= keepalive_s
                yield opening + writer.keepalive if due else opening
                opening = b""
                last_write = time.monotonic()
            elif time.monotonic() - last_write >= keepalive_s:
                yield writer.keepalive
                last_write = time.monotonic()
            if writer.done:
                break
        yield opening + writer.end(answer)
        finished = True
    except ProxyError as error:  # an upstream failure, or the grace period of a restart ending
        if isinstance(error, UpstreamError):
            log_failure(answer.upstream, error, "stream ended with an error event")
            metrics.upstream_error(error.code)
        record.error = error.code
        yield opening + writer.failure(error)
        finished = True
    finally:
        if not finished and record.error is None:
            record.error = "client_disconnected"
        metrics.stream_closed()
        if not finished:
            answer.close()


def whole_pieces(answer: Answer, metrics: Metrics) -> Iterator[Piece]:
    """An answer's pieces, read for a whole (not streamed) answer: a failure is logged,
    counted and closes the upstream before it propagates (to become an HTTP error);
    after success the caller closes it once the response is sent."""
    try:
        yield from answer.pieces()
    except BaseException as error:
        if isinstance(error, UpstreamError):
            log_failure(answer.upstream, error, "sent to the client")
            metrics.upstream_error(error.code)
        answer.close()
        raise
