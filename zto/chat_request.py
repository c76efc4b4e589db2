"""Validation of an OpenAI chat completion request into zto's upstream-neutral
``ChatRequest``.

``build_chat_request`` takes an already-decoded body (the OpenAI front end decodes
JSON with ``parse_chat_request``; another front end may build the body itself) and
either returns a ``ChatRequest`` or raises ``InvalidRequest`` naming the offending
parameter. Unknown fields are ignored, as OpenAI clients send many. Messages stay
OpenAI-shaped (``developer`` becomes ``system``, ``function`` becomes ``tool``); each
upstream maps the model and renders the messages its own way.

Thinking is resolved here, once, for every upstream: the request's own switch
(``enable_thinking``, ``reasoning_effort``, ``thinking: {"type"}``) wins over the
``-Thinking`` model suffix, which wins over ``ENABLE_THINKING``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import InvalidRequest

if TYPE_CHECKING:
    from .settings import Settings

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
PART_TYPES = ("text", "image_url")
PROMPT_PART_SEPARATOR = "\n"
THINKING_SUFFIX = "-Thinking"
SEARCH_SUFFIX = "-Search"
EFFORTS_OFF = ("none", "minimal")
TOOL_CHOICES = ("none", "auto", "required")
MAX_STOP_SEQUENCES = 4


@dataclass(frozen=True)
class ChatRequest:
    model: str  # the name the client asked for, echoed back in answers
    messages: list[dict]  # validated OpenAI messages: system/user/assistant/tool, not rendered for any upstream
    stream: bool
    include_usage: bool
    thinking: bool  # resolved: the request's own switch > -Thinking suffix > ENABLE_THINKING
    web_search: bool  # -Search suffix (web chat only)
    params: dict = field(default_factory=dict)  # temperature, top_p, max_tokens, stop
    tools: tuple[dict, ...] = ()
    tool_choice: object | None = None
    has_images: bool = False


def _fail(message: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _optional_bool(body: dict, name: str, default: bool | None) -> bool | None:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _fail(f"'{name}' must be true or false.", name)
    return value


def _number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _fail(f"'{name}' must be a number from {low:g} to {high:g}.", name)
    return value


def _checked(text: str, where: str, param: str = "messages") -> str:
    """``text``, if it can be sent: JSON escapes can smuggle in unpaired surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(f"{where} contains an unpaired UTF-16 surrogate.", param) from None
    return text


def text_of(content) -> str:
    """The text of a validated message content: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if not content:
        return ""
    return PROMPT_PART_SEPARATOR.join(part["text"] for part in content if part["type"] == "text")


def _check_content(content, where: str) -> bool:
    """Validate a message content (a string or an array of parts); whether it holds images."""
    if isinstance(content, str):
        _checked(content, f"{where}.content")
        return False
    if not isinstance(content, list):
        raise _fail(f"{where}.content must be a string or an array of content parts.", "messages")
    images = False
    for i, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in PART_TYPES:
            raise _fail(
                f"{where}.content[{i}] must be an object with type 'text' or 'image_url'.", "messages")
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise _fail(f"{where}.content[{i}].text must be a string.", "messages")
            _checked(part["text"], f"{where}.content[{i}].text")
        else:
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise _fail(f"{where}.content[{i}].image_url must have a 'url'.", "messages")
            _checked(url, f"{where}.content[{i}].image_url")
            images = True
    return images


def _check_tool_calls(tool_calls, where: str) -> None:
    if not isinstance(tool_calls, list):
        raise _fail(f"{where}.tool_calls must be an array of tool calls.", "messages")
    for i, call in enumerate(tool_calls):
        function = call.get("function", {}) if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise _fail(f"{where}.tool_calls[{i}] must be an object with a 'function' object.", "messages")


def _message(message, index: int) -> tuple[dict, bool]:
    """(the message, normalised; whether it holds images)."""
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise _fail(f"{where} must be an object with 'role' and 'content'.", "messages")
    role = message.get("role")
    if role not in ROLES:
        raise _fail(f"{where}.role must be one of: {', '.join(ROLES)}.", "messages")
    content = message.get("content")
    if role != "assistant" and content in (None, "", []):
        raise _fail(f"{where} ({role}) has no content.", "messages")
    images = content is not None and _check_content(content, where)
    if role == "developer":
        return {"role": "system", "content": content}, images
    if role in ("tool", "function"):
        call_id = message.get("tool_call_id") or message.get("name") or ""
        return {"role": "tool", "tool_call_id": str(call_id), "content": content}, images
    if role == "assistant":
        result = {"role": "assistant", "content": content}
        if message.get("tool_calls") is not None:
            _check_tool_calls(message["tool_calls"], where)
            result["tool_calls"] = message["tool_calls"]
        return result, images
    return {"role": role, "content": content}, images


def split_model_suffixes(requested: str) -> tuple[str, bool, bool]:
    """(model name without suffixes, ``-Thinking`` given, ``-Search`` given)."""
    name, thinking, search = requested, False, False
    for _ in range(2):
        if name.endswith(THINKING_SUFFIX):
            name, thinking = name[: -len(THINKING_SUFFIX)], True
        elif name.endswith(SEARCH_SUFFIX):
            name, search = name[: -len(SEARCH_SUFFIX)], True
    return name, thinking, search


def requested_thinking(body: dict) -> bool | None:
    """The request's own thinking switch, or None if it has none. ``enable_thinking``
    first, then ``thinking: {"type"}`` (Cherry Studio and others), then
    ``reasoning_effort`` (``none``/``minimal`` = off, any other value = on)."""
    switch = _optional_bool(body, "enable_thinking", None)
    if switch is not None:
        return switch
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in ("enabled", "disabled"):
            raise _fail("'thinking' must be {\"type\": \"enabled\"} or {\"type\": \"disabled\"}.", "thinking")
        return kind == "enabled"
    effort = body.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or not effort:
            raise _fail("'reasoning_effort' must be a string such as none, low, medium or high.", "reasoning_effort")
        return effort.lower() not in EFFORTS_OFF
    return None


def _tools(body: dict) -> tuple[tuple[dict, ...], object | None]:
    tools = body.get("tools")
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        raise _fail("'tools' must be an array of tools.", "tools")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise _fail(f"tools[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\", ...}}}}.", "tools")
    choice = body.get("tool_choice")
    if choice is not None and choice not in TOOL_CHOICES:
        function = choice.get("function") if isinstance(choice, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _fail("'tool_choice' must be none, auto, required or {\"type\": \"function\", "
                        "\"function\": {\"name\"}}.", "tool_choice")
    return tuple(tools), choice


def _stop(body: dict) -> str | list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    if isinstance(stop, str):
        return _checked(stop, "'stop'", "stop")
    if (not isinstance(stop, list) or len(stop) > MAX_STOP_SEQUENCES
            or not all(isinstance(s, str) for s in stop)):
        raise _fail(f"'stop' must be a string or an array of at most {MAX_STOP_SEQUENCES} strings.", "stop")
    return [_checked(s, "'stop'", "stop") for s in stop]


def build_chat_request(body: dict, *, settings: Settings) -> ChatRequest:
    if not isinstance(body, dict):
        raise _fail("The request body must be a JSON object.")

    model = body.get("model", settings.model_name)
    if not isinstance(model, str) or not model.strip():
        raise _fail("'model' must be a non-empty string.", "model")
    _checked(model, "'model'", "model")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise _fail("'messages' must be a non-empty array of messages.", "messages")
    checked = [_message(m, i) for i, m in enumerate(raw_messages)]
    messages = [message for message, _ in checked]
    # An assistant turn alone is valid, as OpenAI has it: the official API answers it (it
    # continues the turn); the web chat, which signs the last user message, refuses it.

    stream = _optional_bool(body, "stream", settings.default_stream)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _fail("'stream_options' must be an object.", "stream_options")
    include_usage = _optional_bool(options or {}, "include_usage", False)

    params: dict = {}
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = _number(body, name, low, high)
        if value is not None:
            params[name] = value
    tokens_param = "max_tokens" if body.get("max_tokens") is not None else "max_completion_tokens"
    max_tokens = body.get(tokens_param)
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise _fail(f"'{tokens_param}' must be a whole number of at least 1.", tokens_param)
        params["max_tokens"] = max_tokens
    stop = _stop(body)
    if stop is not None:
        params["stop"] = stop
    tools, tool_choice = _tools(body)

    _, thinking_by_name, search = split_model_suffixes(model)
    thinking = requested_thinking(body)
    if thinking is None:
        thinking = thinking_by_name or settings.enable_thinking
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        thinking=thinking,
        web_search=search,
        params=params,
        tools=tools,
        tool_choice=tool_choice,
        has_images=any(images for _, images in checked),
    )


def decode_body(raw: bytes) -> dict:
    """A request body that must be a JSON object, decoded."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise _fail("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _fail("The request body must be a JSON object.")
    return body


def parse_chat_request(raw: bytes, *, settings: Settings) -> ChatRequest:
    """JSON-decode an OpenAI request body and build its ``ChatRequest``."""
    return build_chat_request(decode_body(raw), settings=settings)
