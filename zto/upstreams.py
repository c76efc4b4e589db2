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
``UPSTREAMS`` order, sends a model that only some of them map (``GLM-5.1`` on the
official API alone, say) to those only, so that no upstream answers with its default
model instead; sends a request the first of them cannot fully serve (tools, images)
to one that can; and when an upstream refuses before its first byte with a refusal
marked ``fallback`` (the web chat's captcha, say), asks the next one. The client
sees one answer; ``Answer.fell_back`` says it came the long way round. A failure the
client gets carries the same two facts (``UpstreamError.upstream``, ``fell_back``),
for the dashboard.
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

    def serves(self, model: str) -> bool:
        """Whether this upstream maps ``model`` (suffixes aside) to a model of its own,
        rather than answering it with its default model."""

    def unsupported(self, chat: ChatRequest) -> str | None:
        """Why this upstream cannot fully serve ``chat`` (tools, images), or None: the
        router prefers an upstream that can."""

    def drops(self, chat: ChatRequest) -> str | None:
        """What this upstream answers ``chat`` without that does not steer routing (the
        official API has no web search), or None; sent as the answer's warning."""

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
        self._warned: set[tuple[str, str]] = set()
        self._fallbacks_logged: set[tuple[str, str | None]] = set()

    def models(self) -> list[str]:
        """Every model name the configured upstreams serve, each once, in order."""
        seen: dict[str, str] = {}
        for upstream in self.upstreams:
            for name in upstream.models():
                seen.setdefault(name.lower(), name)
        return list(seen.values())

    def _route(self, chat: ChatRequest) -> tuple[tuple[Upstream, ...], str | None]:
        """(the upstreams to try in order, a warning if none can fully serve ``chat``).
        Upstreams that would answer the model with their default model are left out
        when another maps it; a name none maps goes to every one (their default)."""
        candidates = self.upstreams
        if len(candidates) > 1:
            candidates = tuple(u for u in self.upstreams if u.serves(chat.model)) or self.upstreams
        able = tuple(u for u in candidates if u.unsupported(chat) is None)
        if able:
            return able, None
        return candidates, candidates[0].unsupported(chat)

    def warning(self, chat: ChatRequest, answer: Answer, client: str) -> str | None:
        """What ``chat`` was answered without: what no upstream can fully serve, or what
        the upstream that answered dropped (``-Search`` on the official API); logged
        once per client and kind."""
        _, warning = self._route(chat)
        advice = "; Z.ai's official API serves it: set ZAI_API_KEY"
        if warning is None:
            answering = next((u for u in self.upstreams if u.name == answer.upstream), None)
            warning = answering.drops(chat) if answering is not None else None
            advice = ""
        if warning is not None and (client, warning) not in self._warned:
            if len(self._warned) >= WARNED_CLIENTS_LIMIT:
                self._warned.clear()
            self._warned.add((client, warning))
            log.warning("%s (client %s%s)", warning, client, advice)
        return warning

    def _log_fallback(self, name: str, error: UpstreamRejected, next_name: str) -> None:
        """A refusal the next upstream answers instead: expected once it happens at all
        (the web chat's captcha refuses every answer), so a WARNING the first time per
        upstream and cause, then DEBUG lines."""
        cause = (name, error.code)
        if cause in self._fallbacks_logged:
            log.debug("upstream %s refused (%s): asking %s instead", name, error.code, next_name)
            return
        self._fallbacks_logged.add(cause)
        log_failure(name, error, f"asking {next_name} instead (logged once per cause; later ones at DEBUG)")

    def start(self, chat: ChatRequest) -> Answer:
        """Start an answer on the first upstream that gives one."""
        order, _ = self._route(chat)
        for i, upstream in enumerate(order):
            try:
                answer = upstream.start(chat)
            except UpstreamRejected as error:
                if not error.fallback or i + 1 == len(order):
                    log_failure(upstream.name, error, "sent to the client")
                    error.upstream, error.fell_back = upstream.name, i > 0
                    raise
                self._log_fallback(upstream.name, error, order[i + 1].name)
                continue
            except ProxyError as error:
                log_failure(upstream.name, error, "sent to the client")
                error.upstream, error.fell_back = upstream.name, i > 0
                raise
            answer.fell_back = i > 0
            self._metrics.upstream_answered(answer.upstream, answer.fell_back)
            return answer
        raise AssertionError("unreachable")
