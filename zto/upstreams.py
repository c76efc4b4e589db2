"""The seam between front ends and upstreams.

Front ends (the OpenAI API in ``api.py``; Anthropic's Messages API) turn a client's
request into one ``ChatRequest`` (``chat_request.py``) and read the answer as one
sequence of ``Piece``s, whichever upstream produced it. Upstreams (Z.ai's web chat,
Z.ai's official API) each implement ``Upstream``: they open an answer for a chat
request and expose it as an ``Answer``. So N front ends and M upstreams cost N + M
adapters, not N x M.

Pieces carry raw text: reasoning is *not* yet shaped by ``THINKING_MODE`` (that is
the OpenAI front end's business; Anthropic's has thinking blocks of its own).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from .chat_request import ChatRequest


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
