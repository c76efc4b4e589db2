"""Validation of an OpenAI chat completion request, and its translation into the
messages, parameters and features Z.ai's web chat takes.

``parse_chat_request`` either returns a ``ChatRequest`` or raises ``InvalidRequest``
naming the offending parameter. Unknown fields are ignored, as OpenAI clients send
many. Z.ai knows neither the ``tool`` role nor assistant ``tool_calls``, so both are
rendered as text; ``developer`` becomes ``system``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .errors import InvalidRequest

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
PART_TYPES = ("text", "image_url")
PROMPT_PART_SEPARATOR = "\n"
THINKING_SUFFIX = "-Thinking"
SEARCH_SUFFIX = "-Search"


@dataclass(frozen=True)
class ChatRequest:
    model: str  # as the client asked, echoed back
    upstream_model: str
    messages: list[dict]
    stream: bool
    include_usage: bool
    enable_thinking: bool
    web_search: bool
    prompt: str  # the last user message's text: signed, and sent as signature_prompt
    params: dict = field(default_factory=dict)


def _fail(message: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _optional_bool(body: dict, name: str, default: bool) -> bool:
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


def _text_of(content, where: str) -> str:
    """The text of a message content: a string, or the text parts of a content array."""
    if isinstance(content, str):
        return _checked(content, f"{where}.content")
    if not isinstance(content, list):
        raise _fail(f"{where}.content must be a string or an array of content parts.", "messages")
    texts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in PART_TYPES:
            raise _fail(
                f"{where}.content[{i}] must be an object with type 'text' or 'image_url'.", "messages")
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise _fail(f"{where}.content[{i}].text must be a string.", "messages")
            texts.append(_checked(part["text"], f"{where}.content[{i}].text"))
        else:
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise _fail(f"{where}.content[{i}].image_url must have a 'url'.", "messages")
            _checked(url, f"{where}.content[{i}].image_url")
    return PROMPT_PART_SEPARATOR.join(texts)


def _tool_calls_text(tool_calls, where: str) -> str:
    if tool_calls is None:
        return ""
    if not isinstance(tool_calls, list):
        raise _fail(f"{where}.tool_calls must be an array of tool calls.", "messages")
    lines = []
    for i, call in enumerate(tool_calls):
        function = call.get("function", {}) if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise _fail(f"{where}.tool_calls[{i}] must be an object with a 'function' object.", "messages")
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        lines.append(f"[tool call {call.get('id', '')}] {function.get('name', '')}({arguments})")
    return "\n".join(lines)


def _upstream_message(message, index: int) -> dict:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise _fail(f"{where} must be an object with 'role' and 'content'.", "messages")
    role = message.get("role")
    if role not in ROLES:
        raise _fail(f"{where}.role must be one of: {', '.join(ROLES)}.", "messages")
    content = message.get("content")
    if role in ("system", "developer", "user", "tool", "function") and content in (None, "", []):
        raise _fail(f"{where} ({role}) has no content.", "messages")
    if content is not None:
        _text_of(content, where)  # validates arrays
    if role == "developer":
        return {"role": "system", "content": content}
    if role in ("tool", "function"):
        call = message.get("tool_call_id") or message.get("name") or ""
        return {"role": "user", "content": f"[tool result {call}]\n{_text_of(content, where)}"}
    if role == "assistant":
        text = "" if content is None else _text_of(content, where)
        calls = _tool_calls_text(message.get("tool_calls"), where)
        return {"role": "assistant", "content": "\n".join(t for t in (text, calls) if t)}
    return {"role": role, "content": content}


def resolve_model(requested: str, models: dict[str, str], default_model: str) -> tuple[str, bool, bool]:
    """(Z.ai model id, thinking forced on, web search on) for a requested model name.

    ``-Thinking`` and ``-Search`` suffixes switch those features; names zto does not
    map fall back to MODEL_NAME's model, as the original project did.
    """
    name, thinking, search = requested, False, False
    for _ in range(2):
        if name.endswith(THINKING_SUFFIX):
            name, thinking = name[: -len(THINKING_SUFFIX)], True
        elif name.endswith(SEARCH_SUFFIX):
            name, search = name[: -len(SEARCH_SUFFIX)], True
    lowered = {key.lower(): value for key, value in models.items()}
    return lowered.get(name.lower(), models[default_model]), thinking, search


def parse_chat_request(raw: bytes, *, models: dict[str, str], default_model: str,
                       default_stream: bool, default_thinking: bool) -> ChatRequest:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise _fail("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _fail("The request body must be a JSON object.")

    model = body.get("model", default_model)
    if not isinstance(model, str) or not model.strip():
        raise _fail("'model' must be a non-empty string.", "model")
    _checked(model, "'model'", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("'messages' must be a non-empty array of messages.", "messages")
    upstream_messages = [_upstream_message(m, i) for i, m in enumerate(messages)]

    stream = _optional_bool(body, "stream", default_stream)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _fail("'stream_options' must be an object.", "stream_options")
    include_usage = _optional_bool(options or {}, "include_usage", False)

    params = {}
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

    upstream_model, thinking_by_name, search = resolve_model(model, models, default_model)
    enable_thinking = _optional_bool(body, "enable_thinking", default_thinking) or thinking_by_name
    # Signed as Z.ai sees it: tool results are sent as user messages too.
    user_messages = [m for m in upstream_messages if m["role"] == "user"]
    if not user_messages:
        raise _fail("'messages' must include at least one user message.", "messages")
    prompt = _text_of(user_messages[-1]["content"], "messages")
    return ChatRequest(
        model=model,
        upstream_model=upstream_model,
        messages=upstream_messages,
        stream=stream,
        include_usage=include_usage,
        enable_thinking=enable_thinking,
        web_search=search,
        prompt=prompt,
        params=params,
    )
