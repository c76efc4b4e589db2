"""The seam between front ends and upstreams.

Front ends (the OpenAI API in ``api.py``; Anthropic's Messages API) turn a client's
request into one ``ChatRequest`` (``chat_request.py``) and read the answer as one
sequence of ``Piece``s, whichever upstream produced it. Upstreams (Z.ai's web chat,
Z.ai's official API) each implement ``Upstream``: they open an answer for a chat
request and expose it as an ``Answer``. So N front ends and M upstreams cost N + M
adapters, not N x M.

Pieces carry raw text: reasoning is *not* yet shaped by ``THINKING_MODE`` (that is
the OpenAI front end's business; Anthropic's has thinking blocks of its own).

``Upstreams`` is what front ends call: it holds the configured upstreams in
``UPSTREAMS`` order, sends a request the first of them cannot fully serve (tools,
images) to one that can, and when an upstream refuses before its first byte with a
refusal marked ``fallback`` (the web chat's captcha, say), asks the next one. The
client sees one answer; ``Answer.fell_back`` says it came the long way round.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from .errors import ProxyError, UpstreamRejected

if TYPE_CHECKING:
    from .chat_request import ChatRequest
    from .metrics import Metrics

log = logging.getLogger(__name__)
WARNED_CLIENTS_LIMIT = 10000  # clients remembered for the once-per-client warning log
REASON_LIMIT = 200  # characters of an error message a failure's log line keeps


def log_failure(upstream: str, error: ProxyError, outcome: str) -> None:
    """One WARNING line for an upstream failure, whatever DEBUG_MODE is: its code, the
    upstream, the status the client gets, a short reason, and what zto does about it
    (``outcome``: "retrying", "falling back", "answered", "stream ended"...)."""
    reason = " ".join(error.message.split())
    if len(reason) > REASON_LIMIT:
        reason = reason[:REASON_LIMIT - 1] + "…"
    log.warning("upstream failure: code=%s upstream=%s status=%s %s: %s", error.code, upstream, error.status,
                outcome, reason)


class Piece(NamedTuple):
    """Some of an answer, as it arrived. An all-empty piece is a tick: the upstream
    sent something that shows nothing yet (the writer may send a keepalive)."""

    reasoning: str = ""
    content: str = ""
    # OpenAI tool-call deltas: {"index", "id"?, "type"?, "function": {"name"?, "arguments"?}}.
    tool_calls: tuple[dict, ...] = ()


TICK = Piece()


class Answer(Protocol):
    """An open upstream answer, started: the upstream has begun to write, so refusals
    it sends first have already been raised as ``UpstreamError``s."""

    upstream: str  # "web" or "api": which upstream answers
    fell_back: bool  # another upstream refused first

    @property
    def usage(self) -> dict | None:
        """OpenAI-shaped usage, once the upstream sent it (at the end)."""

    @property
    def finish_reason(self) -> str:
        """``stop``, ``length``, ``tool_calls`` or ``content_filter``; final once
        ``pieces()`` is exhausted."""

    def pieces(self) -> Iterator[Piece]:
        """The answer's pieces; failures after the start raise ``UpstreamError``."""

    def close(self) -> None:
        """Release the upstream connection (reused after a complete answer, dropped
        otherwise) and whatever token or key the answer held. Idempotent."""


class Upstream(Protocol):
    name: str  # "web" or "api"

    def models(self) -> list[str]:
        """The model names this upstream serves, for ``/v1/models``."""

    def unsupported(self, chat: ChatRequest) -> str | None:
        """Why this upstream cannot fully serve ``chat`` (tools, images), or None."""

    def start(self, chat: ChatRequest) -> Answer:
        """Open and start an answer, with the one retry on another token or key;
        raise ``UpstreamError`` if it cannot."""


class Upstreams:
    """The configured upstreams, in order, and the fallback between them."""

    def __init__(self, upstreams: Sequence[Upstream], metrics: Metrics) -> None:
        if not upstreams:
            raise ValueError("Upstreams needs at least one upstream")
        self.upstreams = tuple(upstreams)
        self._metrics = metrics
        self._warned: set[str] = set()

    def models(self) -> list[str]:
        """Every model name the configured upstreams serve, each once, in order."""
        seen: dict[str, str] = {}
        for upstream in self.upstreams:
            for name in upstream.models():
                seen.setdefault(name.lower(), name)
        return list(seen.values())

    def _route(self, chat: ChatRequest) -> tuple[tuple[Upstream, ...], str | None]:
        """(the upstreams to try in order, a warning if none can fully serve ``chat``)."""
        able = tuple(u for u in self.upstreams if u.unsupported(chat) is None)
        if able:
            return able, None
        return self.upstreams, self.upstreams[0].unsupported(chat)

    def warning(self, chat: ChatRequest, client: str) -> str | None:
        """What ``chat`` will be answered without, if no upstream can fully serve it;
        logged once per client."""
        _, warning = self._route(chat)
        if warning is not None and client not in self._warned:
            if len(self._warned) >= WARNED_CLIENTS_LIMIT:
                self._warned.clear()
            self._warned.add(client)
            log.warning("%s (client %s; Z.ai's official API serves it: set ZAI_API_KEY)", warning, client)
        return warning

    def start(self, chat: ChatRequest) -> Answer:
        """Start an answer on the first upstream that gives one."""
        order, _ = self._route(chat)
        for i, upstream in enumerate(order):
            try:
                answer = upstream.start(chat)
            except UpstreamRejected as error:
                if not error.fallback or i + 1 == len(order):
                    log_failure(upstream.name, error, "sent to the client")
                    raise
                log_failure(upstream.name, error, f"asking {order[i + 1].name} instead")
                continue
            except ProxyError as error:
                log_failure(upstream.name, error, "sent to the client")
                raise
            answer.fell_back = i > 0
            self._metrics.upstream_answered(answer.upstream, answer.fell_back)
            return answer
        raise AssertionError("unreachable")
