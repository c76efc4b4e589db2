"""Anthropic's side of the answers: Messages, their stream events, and errors.

``MessageBuilder`` turns an answer's ``Piece``s into Anthropic's content blocks, in
the order they came: reasoning becomes a ``thinking`` block (closed with a
``signature``; its text left out when the client asked for ``display: omitted``),
text a ``text`` block, each OpenAI tool call a ``tool_use`` block (its id prefixed
``toolu_``, its arguments streamed as ``input_json_delta``). A piece of another kind
closes the open block, so blocks never interleave. ``feed`` and ``finish`` return the
stream's events as dicts, and ``message`` is the same answer
whole, so streamed and whole answers cannot disagree. ``sse`` writes one event;
``MessageStream`` is the stream's ``EventWriter`` (``streaming``).

Stop sequences are applied here, to the text only: text that might begin one is
held back until it is known not to, and the first one found ends the answer
(``stopped``; the caller stops reading). Pure code.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

import orjson

from .errors import ProxyError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from .upstreams import Answer, Piece

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
OVERLOADED = 529
PING = b'event: ping\ndata: {"type":"ping"}\n\n'
TOOL_ID_PREFIX = "toolu_"
STOP_REASONS = {"length": "max_tokens", "content_filter": "refusal"}
CHARS_PER_TOKEN = 4  # output estimate when an answer ends before the upstream's usage


def error_status(error: ProxyError) -> int:
    """Anthropic's status for a zto error: client errors keep theirs; an upstream that
    is down or silent is "overloaded" (529, which Anthropic's clients retry); any
    other failure is Anthropic's 500."""
    if error.status < 500:
        return error.status
    return OVERLOADED if isinstance(error, (UpstreamTimeout, UpstreamUnavailable)) else 500


def error_body(status: int, message: str) -> dict:
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def sse(event: dict) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def error_event(error: ProxyError) -> bytes:
    return sse(error_body(error_status(error), error.message))


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def signature(thinking: str) -> str:
    """An opaque signature for a thinking block, as Anthropic's clients expect one.
    zto never checks it: thinking blocks sent back are dropped."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


def usage_of(usage: dict | None, input_estimate: int, output_estimate: int) -> dict:
    """Anthropic's usage from OpenAI's: cached prompt tokens are reported apart, as
    ``cache_read_input_tokens``; estimates stand in for what the upstream never said."""
    if not usage:
        return {"input_tokens": input_estimate, "output_tokens": output_estimate, "cache_read_input_tokens": 0}
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    cached = cached if isinstance(cached, int) else 0
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    return {
        "input_tokens": max(0, prompt - cached) if isinstance(prompt, int) else input_estimate,
        "output_tokens": completion if isinstance(completion, int) else output_estimate,
        "cache_read_input_tokens": cached,
    }


class StopScanner:
    """Finds the first stop sequence in text that arrives in pieces."""

    def __init__(self, sequences: tuple[str, ...]) -> None:
        self.sequences = sequences
        self._hold = max((len(s) for s in sequences), default=1) - 1
        self._held = ""
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        """The text that can be shown now; after a match, none."""
        if self.matched is not None:
            return ""
        text = self._held + text
        found = [(text.find(s), s) for s in self.sequences if s in text]
        if found:
            position, self.matched = min(found)
            self._held = ""
            return text[:position]
        cut = max(0, len(text) - self._hold)
        self._held = text[cut:]
        return text[:cut]

    def flush(self) -> str:
        """What was held back: no stop sequence can begin in it any more."""
        held, self._held = self._held, ""
        return held


class MessageBuilder:
    """One assistant message, built from pieces; see the module docstring."""

    def __init__(self, model: str, *, stop_sequences: tuple[str, ...] = (), input_tokens: int = 0,
                 omit_thinking: bool = False, message_id: str | None = None) -> None:
        self.model = model
        self.omit_thinking = omit_thinking  # thinking blocks keep their signature, not their text
        self.id = message_id or new_message_id()
        self.input_tokens = input_tokens
        self.blocks: list[dict] = []  # content blocks as built; tool inputs as JSON text
        self._open: dict | None = None
        self._tool_blocks: dict[int, dict] = {}  # OpenAI tool-call index -> its block
        self._scanner = StopScanner(stop_sequences)
        self._output_chars = 0
        self._result: dict | None = None

    @property
    def stopped(self) -> bool:
        """A stop sequence ended the answer: read no more."""
        return self._scanner.matched is not None

    def start(self) -> dict:
        return {"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0}}}

    # -- blocks ------------------------------------------------------------------

    def _open_block(self, block: dict, events: list[dict]) -> dict:
        self._close(events)
        index = len(self.blocks)
        self.blocks.append(block)
        self._open = block
        events.append({"type": "content_block_start", "index": index, "content_block": dict(block)})
        return block

    def _close(self, events: list[dict]) -> None:
        block = self._open
        if block is None:
            return
        if block["type"] == "text":
            self._text(self._scanner.flush(), events)
        index = len(self.blocks) - 1
        if block["type"] == "thinking":
            block["signature"] = signature(block["thinking"])
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "signature_delta", "signature": block["signature"]}})
        events.append({"type": "content_block_stop", "index": index})
        self._open = None

    def _text(self, text: str, events: list[dict]) -> None:
        if text:
            self._open["text"] += text
            self._output_chars += len(text)
            events.append({"type": "content_block_delta", "index": len(self.blocks) - 1,
                           "delta": {"type": "text_delta", "text": text}})

    def _reasoning(self, text: str, events: list[dict]) -> None:
        block = self._open
        if block is None or block["type"] != "thinking":
            block = self._open_block({"type": "thinking", "thinking": "", "signature": ""}, events)
        self._output_chars += len(text)
        if self.omit_thinking:
            return
        block["thinking"] += text
        events.append({"type": "content_block_delta", "index": len(self.blocks) - 1,
                       "delta": {"type": "thinking_delta", "thinking": text}})

    def _content(self, text: str, events: list[dict]) -> None:
        if self._open is None or self._open["type"] != "text":
            self._open_block({"type": "text", "text": ""}, events)
        self._text(self._scanner.feed(text), events)
        if self.stopped:
            self._close(events)

    def _tool_call(self, delta: dict, events: list[dict]) -> None:
        index = delta.get("index", 0)
        function = delta.get("function") or {}
        block = self._tool_blocks.get(index)
        if block is None:
            call_id = delta.get("id") or secrets.token_hex(12)
            if not call_id.startswith(TOOL_ID_PREFIX):
                call_id = TOOL_ID_PREFIX + call_id
            block = {"type": "tool_use", "id": call_id, "name": function.get("name") or "", "input": {}}
            self._open_block(block, events)
            block["input"] = ""  # the arguments' JSON text, until the end
            self._tool_blocks[index] = block
        elif block is not self._open:
            raise UpstreamRejected("The upstream interleaved the arguments of two tool calls; "
                                   "Anthropic's stream cannot carry that.", code="upstream_bad_tool_call")
        arguments = function.get("arguments") or ""
        if arguments:
            block["input"] += arguments
            self._output_chars += len(arguments)
            events.append({"type": "content_block_delta", "index": len(self.blocks) - 1,
                           "delta": {"type": "input_json_delta", "partial_json": arguments}})

    # -- pieces and the end --------------------------------------------------------

    def feed(self, piece: Piece) -> list[dict]:
        """The events for one piece (none for a tick, or after a stop sequence)."""
        events: list[dict] = []
        if self.stopped:
            return events
        if piece.reasoning:
            self._reasoning(piece.reasoning, events)
        if piece.content:
            self._content(piece.content, events)
        if not self.stopped:
            for delta in piece.tool_calls:
                self._tool_call(delta, events)
        return events

    def _stop_reason(self, finish_reason: str) -> str:
        if self.stopped:
            return "stop_sequence"
        if finish_reason in STOP_REASONS:
            return STOP_REASONS[finish_reason]
        return "tool_use" if self._tool_blocks else "end_turn"

    def finish(self, finish_reason: str, usage: dict | None) -> list[dict]:
        """The events that end the message: the open block's end (an empty text block
        if there was none: an empty content array stops Claude Code), message_delta
        with the stop reason and usage, message_stop."""
        events: list[dict] = []
        self._close(events)
        if not self.blocks:
            self._open_block({"type": "text", "text": ""}, events)
            self._close(events)
        for block in self._tool_blocks.values():
            block["input"] = _tool_input(block["input"])
        output_estimate = -(-self._output_chars // CHARS_PER_TOKEN)
        self._result = {
            "stop_reason": self._stop_reason(finish_reason),
            "stop_sequence": self._scanner.matched,
            "usage": usage_of(usage, self.input_tokens, output_estimate),
        }
        events.append({"type": "message_delta",
                       "delta": {"stop_reason": self._result["stop_reason"],
                                 "stop_sequence": self._result["stop_sequence"]},
                       "usage": self._result["usage"]})
        events.append({"type": "message_stop"})
        return events

    def message(self) -> dict:
        """The whole message, once ``finish`` has been called."""
        if self._result is None:
            raise RuntimeError("message() before finish()")
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": self.blocks, **self._result}


class MessageStream:
    """A ``MessageBuilder``'s events as server-sent events: the ``EventWriter`` that
    ``streaming.stream_answer`` writes an Anthropic stream with."""

    keepalive = PING

    def __init__(self, builder: MessageBuilder) -> None:
        self.builder = builder

    @property
    def done(self) -> bool:
        return self.builder.stopped

    def start(self) -> bytes:
        return sse(self.builder.start())

    def piece(self, piece: Piece) -> bytes:
        return b"".join(map(sse, self.builder.feed(piece)))

    def end(self, answer: Answer) -> bytes:
        return b"".join(map(sse, self.builder.finish(answer.finish_reason, answer.usage)))

    def failure(self, error: ProxyError) -> bytes:
        return error_event(error)


def _tool_input(arguments: str) -> dict:
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamRejected("The model's tool call arguments are not a JSON object; try again.",
                               code="upstream_bad_tool_call")
    return value
