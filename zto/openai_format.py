"""OpenAI's side of the translation: chat completion objects and SSE chunks.

``ThinkingPresenter`` decides where reasoning goes for each ``THINKING_MODE``;
``ChunkEncoder`` writes ``chat.completion.chunk`` SSE lines for one stream (one id,
one ``created``, the model the client asked for), building each from a prefix
serialised once, tool-call deltas included; ``completion_body`` builds the
non-streaming answer, with ``merge_tool_calls`` joining streamed tool-call deltas.
Pure code.
"""

from __future__ import annotations

import json
import secrets
import time

import orjson

DONE = b"data: [DONE]\n\n"
ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def new_completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def normalize_usage(usage: dict | None) -> dict:
    """Z.ai's usage passed through, with OpenAI's three counts always present."""
    if not usage:
        return dict(ZERO_USAGE)
    result = dict(usage)
    for key in ("prompt_tokens", "completion_tokens"):
        if not isinstance(result.get(key), int):
            result[key] = 0
    if not isinstance(result.get("total_tokens"), int):
        result["total_tokens"] = result["prompt_tokens"] + result["completion_tokens"]
    return result


class ThinkingPresenter:
    """Maps (reasoning, answer) text to (reasoning_content, content) for one answer.

    reasoning: reasoning in ``reasoning_content``; think: ``<think>…</think>`` before
    the answer in ``content``; strip: reasoning as plain text before the answer;
    hide: reasoning dropped.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._reasoning_shown = False
        self._answer_shown = False

    def present(self, reasoning: str, answer: str) -> tuple[str, str]:
        if self.mode == "reasoning":
            return reasoning, answer
        if self.mode == "hide":
            return "", answer
        content = ""
        if reasoning and not self._answer_shown:
            if not self._reasoning_shown and self.mode == "think":
                content = "<think>\n"
            self._reasoning_shown = True
            content += reasoning
        if answer:
            if self._reasoning_shown and not self._answer_shown:
                content += "\n</think>\n\n" if self.mode == "think" else "\n\n"
            self._answer_shown = True
            content += answer
        return "", content

    def close(self) -> tuple[str, str]:
        """Text that ends the answer: a ``</think>`` left open by a reasoning-only answer."""
        if self.mode == "think" and self._reasoning_shown and not self._answer_shown:
            self._answer_shown = True
            return "", "\n</think>"
        return "", ""


class ChunkEncoder:
    """SSE lines of one OpenAI chat completion stream."""

    def __init__(self, model: str, completion_id: str | None = None, created: int | None = None) -> None:
        self.id = completion_id or new_completion_id()
        self.created = int(time.time()) if created is None else created
        head = _dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": model})
        self._prefix = ("data: " + head[:-1] + ',"choices":').encode()

    def _choice(self, delta: dict, finish_reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        # orjson: this runs for every chunk, and it is several times faster than json here.
        return self._prefix + orjson.dumps([choice]) + b"}\n\n"

    def role(self) -> bytes:
        return self._choice({"role": "assistant", "content": ""}, None)

    def delta(self, reasoning: str, content: str, tool_calls: tuple[dict, ...] = ()) -> bytes:
        delta = {}
        if reasoning:
            delta["reasoning_content"] = reasoning
        if content:
            delta["content"] = content
        if tool_calls:
            delta["tool_calls"] = list(tool_calls)
        return self._choice(delta, None)

    def finish(self, reason: str = "stop") -> bytes:
        return self._choice({}, reason)

    def usage(self, usage: dict | None) -> bytes:
        return self._prefix + b'[],"usage":' + _dumps(normalize_usage(usage)).encode() + b"}\n\n"


def error_event(error_body: dict) -> bytes:
    return b"data: " + _dumps(error_body).encode() + b"\n\n"


def merge_tool_calls(deltas: list[dict]) -> list[dict]:
    """Whole tool calls from streamed tool-call deltas: pieces of one call share its
    ``index``; ``function.arguments`` pieces are joined in order."""
    calls: dict[int, dict] = {}
    for delta in deltas:
        call = calls.setdefault(delta.get("index", 0), {"id": "", "type": "function",
                                                         "function": {"name": "", "arguments": ""}})
        if delta.get("id"):
            call["id"] = delta["id"]
        if delta.get("type"):
            call["type"] = delta["type"]
        function = delta.get("function") or {}
        if function.get("name"):
            call["function"]["name"] = function["name"]
        if function.get("arguments"):
            call["function"]["arguments"] += function["arguments"]
    return [calls[index] for index in sorted(calls)]


def completion_body(
    model: str, reasoning: str, content: str, usage: dict | None, finish_reason: str = "stop",
    tool_calls: list[dict] | None = None,
) -> dict:
    # OpenAI's message has a null content when the model only called tools.
    message = {"role": "assistant", "content": None if tool_calls and not content else content}
    if reasoning:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": normalize_usage(usage),
    }
