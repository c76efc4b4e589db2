"""The OpenAI front end's writing: an upstream ``Answer`` as OpenAI SSE chunks or as
one whole completion.

The answer has already started (``Upstreams.start``), so refusals are HTTP errors
before this runs. ``sse_stream`` shapes reasoning by ``THINKING_MODE`` (a
``ThinkingPresenter``), writes one chunk per piece (text and tool-call deltas), a
keepalive comment when the upstream has shown nothing for a while, and the answer's
``finish_reason``; once streaming has begun, failures end the stream with an error
event and ``[DONE]``, never in silence. ``collect`` gathers a whole answer, tool-call
deltas merged by index.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from .errors import ProxyError, UpstreamError
from .metrics import NO_METRICS, Metrics
from .openai_format import DONE, ChunkEncoder, ThinkingPresenter, error_event, merge_tool_calls
from .stats import PendingRequest
from .upstreams import Answer, log_failure

log = logging.getLogger(__name__)

KEEPALIVE = b": keepalive\n\n"


def sse_stream(answer: Answer, encoder: ChunkEncoder, presenter: ThinkingPresenter, *, include_usage: bool,
               keepalive_s: float, record: PendingRequest, metrics: Metrics = NO_METRICS) -> Iterator[bytes]:
    """The OpenAI SSE body. A failed or abandoned stream closes the upstream at once; a
    complete one leaves that to the response's close (``api.py``), which the server
    calls after the body's last bytes, so reading the upstream's tail never delays them."""
    finished = False
    first_text = True
    present = presenter.present
    metrics.stream_opened()
    try:
        yield encoder.role()
        last_write = time.monotonic()
        for reasoning, content, tool_calls in answer.pieces():
            if reasoning or content:
                reasoning, content = present(reasoning, content)
            if reasoning or content or tool_calls:
                if first_text:
                    first_text = False
                    metrics.first_token(time.perf_counter() - record.started)
                yield encoder.delta(reasoning, content, tool_calls)
                last_write = time.monotonic()
            elif time.monotonic() - last_write >= keepalive_s:
                yield KEEPALIVE
                last_write = time.monotonic()
        reasoning, content = presenter.close()
        if reasoning or content:
            yield encoder.delta(reasoning, content)
        yield encoder.finish(answer.finish_reason)
        if include_usage:
            yield encoder.usage(answer.usage)
        yield DONE
        finished = True
    except ProxyError as error:  # an upstream failure, or the grace period of a restart ending
        if isinstance(error, UpstreamError):
            log_failure(answer.upstream, error, "stream ended with an error event")
            metrics.upstream_error(error.code)
        record.error = error.code
        yield error_event(error.to_dict())
        yield DONE
        finished = True
    finally:
        if not finished and record.error is None:
            record.error = "client_disconnected"
        metrics.stream_closed()
        if not finished:
            answer.close()


def collect(answer: Answer, presenter: ThinkingPresenter,
            metrics: Metrics = NO_METRICS) -> tuple[str, str, list[dict]]:
    """The whole (reasoning, content, tool calls) of an answer. A failure closes the
    upstream; after success the caller closes it once the response is sent."""
    reasoning, content, deltas = [], [], []
    present = presenter.present
    try:
        for piece in answer.pieces():
            r, c = present(piece.reasoning, piece.content)
            reasoning.append(r)
            content.append(c)
            deltas.extend(piece.tool_calls)
    except BaseException as error:
        if isinstance(error, UpstreamError):
            log_failure(answer.upstream, error, "sent to the client")
            metrics.upstream_error(error.code)
        answer.close()
        raise
    r, c = presenter.close()
    return "".join(reasoning) + r, "".join(content) + c, merge_tool_calls(deltas)
