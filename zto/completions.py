"""One chat completion from the upstream call to the last byte the client gets.

``start_answer`` picks a token, opens the Z.ai stream and reads ahead until Z.ai
starts writing, so that an error Z.ai sends first becomes a proper HTTP error status,
and a 401, 429 or concurrency error is retried once with another token before the
client has seen anything. ``sse_stream`` then writes OpenAI chunks; once streaming
has begun, failures end the stream with an error event and ``[DONE]``, never in
silence. ``collect`` gathers a whole answer for non-streaming requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from .chat_request import ChatRequest
from .errors import UpstreamError, UpstreamRejected
from .metrics import NO_METRICS, Metrics
from .openai_format import DONE, ChunkEncoder, ThinkingPresenter, error_event
from .sse import SSEDecoder, parse_event
from .stats import PendingRequest
from .translate import AnswerAssembler
from .upstream import UpstreamResponse, ZaiClient, rejection

log = logging.getLogger(__name__)

KEEPALIVE = b": keepalive\n\n"


class Answer:
    """An answer being read from Z.ai, as (reasoning_content, content) pieces.

    Pieces come from ``pieces()``; an empty piece is a tick (Z.ai sent something that
    shows nothing yet). Upstream failures surface as ``UpstreamError``.
    """

    def __init__(self, upstream: UpstreamResponse, presenter: ThinkingPresenter,
                 release: Callable[[], None] | None = None) -> None:
        self._upstream = upstream
        self._release = release  # called once on close: the token is no longer in use
        self._presenter = presenter
        self._assembler = AnswerAssembler()
        self._reader = self._read()
        self._ahead: list[tuple[str, str]] = []
        self._shown = False

    @property
    def usage(self) -> dict | None:
        return self._assembler.usage

    def prime(self) -> None:
        """Read until Z.ai has started writing the message, raising the error it sent
        instead, so that refusals and empty answers become HTTP errors.

        It stops at the first text Z.ai writes even if that shows nothing yet: waiting
        for visible text would hold back the headers through a long hidden reasoning.
        """
        for piece in self._reader:
            self._ahead.append(piece)
            if self._assembler.started:
                return

    def pieces(self) -> Iterator[tuple[str, str]]:
        yield from self._ahead
        self._ahead = []
        yield from self._reader

    def close(self) -> None:
        self._reader.close()
        if self._assembler.done and self._assembler.error is None:
            self._upstream.release()
        else:
            self._upstream.close()
        release, self._release = self._release, None
        if release is not None:
            release()

    def _read(self) -> Iterator[tuple[str, str]]:
        decoder, assembler, present = SSEDecoder(), self._assembler, self._presenter.present
        chunks = self._upstream.chunks()
        for data in chunks:
            # Events that arrived together leave as one piece: one chunk to encode and write.
            reasoning = answer = ""
            for payload in decoder.feed(data):
                event = parse_event(payload)
                if event is None:
                    continue
                more_reasoning, more_answer = present(*assembler.feed(event))
                reasoning += more_reasoning
                answer += more_answer
                if assembler.error is not None or assembler.done:
                    break
            if reasoning or answer:
                self._shown = True
                yield reasoning, answer
            elif assembler.error is None:
                yield "", ""  # a tick: Z.ai sent something that shows nothing yet
            if assembler.error is not None:
                raise self._failure()
            if assembler.done:
                break
        else:
            for payload in decoder.close():
                event = parse_event(payload)
                if event is not None:
                    assembler.feed(event)
            if assembler.error is not None:
                raise self._failure()
        yield from self._finish()

    def _finish(self) -> Iterator[tuple[str, str]]:
        for piece in (self._presenter.present(*self._assembler.finish()), self._presenter.close()):
            if piece[0] or piece[1]:
                self._shown = True
                yield piece
        if not self._shown:
            raise UpstreamRejected(
                "Z.ai ended the answer without any text. Try again; if it persists, check the model name "
                "and ZAI_TOKEN.", code="upstream_empty_answer")

    def _failure(self) -> UpstreamRejected:
        failure = self._assembler.error
        if failure.code == 426 or "outdated" in failure.message.lower():
            log.warning("Z.ai says front-end version %s is outdated", self._upstream.fe_version)
        return rejection(failure.code, failure.message, self._upstream.fe_version)


def start_answer(client: ZaiClient, chat: ChatRequest, thinking_mode: str, metrics: Metrics = NO_METRICS) -> Answer:
    """Open the Z.ai stream and prime it, retrying once with another token on 401/429."""
    try:
        token = client.tokens.acquire()
    except UpstreamError as error:
        metrics.upstream_error(error.code)
        raise
    token_kind = "static" if client.settings.zai_tokens else "guest"
    for attempt in range(2):
        answer = None
        try:
            upstream = client.open(chat, token)
            answer = Answer(upstream, ThinkingPresenter(thinking_mode), metrics.upstream_opened(token_kind))
            answer.prime()
            return answer
        except BaseException as error:
            if answer is not None:
                answer.close()
            if not isinstance(error, UpstreamError):
                raise
            metrics.upstream_error(error.code)
            if error.code == "upstream_version_rejected":
                client.fe_version.invalidate()
            retry = isinstance(error, UpstreamRejected) and error.retryable and attempt == 0
            replacement = client.tokens.another(token) if retry else None
            if replacement is None:
                raise
            log.info("retrying with another token after: %s", error.code)
            token = replacement
    raise AssertionError("unreachable")


def sse_stream(answer: Answer, encoder: ChunkEncoder, *, include_usage: bool, keepalive_s: float,
               record: PendingRequest, metrics: Metrics = NO_METRICS) -> Iterator[bytes]:
    """The OpenAI SSE body. A failed or abandoned stream closes the upstream at once; a
    complete one leaves that to the response's close (``api.py``), which the server
    calls after the body's last bytes, so reading Z.ai's tail never delays them."""
    finished = False
    first_text = True
    metrics.stream_opened()
    try:
        yield encoder.role()
        last_write = time.monotonic()
        for reasoning, content in answer.pieces():
            if reasoning or content:
                if first_text:
                    first_text = False
                    metrics.first_token(time.perf_counter() - record.started)
                yield encoder.delta(reasoning, content)
                last_write = time.monotonic()
            elif time.monotonic() - last_write >= keepalive_s:
                yield KEEPALIVE
                last_write = time.monotonic()
        yield encoder.finish("stop")
        if include_usage:
            yield encoder.usage(answer.usage)
        yield DONE
        finished = True
    except UpstreamError as error:
        log.warning("stream ended by upstream failure: %s", error.message)
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


def collect(answer: Answer, metrics: Metrics = NO_METRICS) -> tuple[str, str]:
    """The whole (reasoning, content) of an answer. A failure closes the upstream; after
    success the caller closes it once the response is sent."""
    reasoning, content = [], []
    try:
        for r, c in answer.pieces():
            reasoning.append(r)
            content.append(c)
    except BaseException as error:
        if isinstance(error, UpstreamError):
            metrics.upstream_error(error.code)
        answer.close()
        raise
    return "".join(reasoning), "".join(content)
