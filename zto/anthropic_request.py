"""Anthropic's Messages API requests, translated into the OpenAI body zto validates.

``to_openai_body`` checks what is Anthropic's own (``max_tokens`` required, user and
assistant turns, content blocks) and returns an OpenAI chat completion body, which
``chat_request.build_chat_request`` then validates like any OpenAI request: one
request model, one validation, whichever front end the client spoke.

- ``system`` (a string or text blocks) becomes one system message, and so does each
  ``system`` turn inside ``messages`` (Claude Code sends its environment that way), in
  its place; ``cache_control`` is ignored (Z.ai caches by itself and reports it as
  ``cached_tokens``).
- ``tool_use`` blocks of an assistant turn become its ``tool_calls``; ``tool_result``
  blocks of a user turn become ``tool`` messages, placed first (OpenAI wants them right
  after the call), their images in a user message after them; ``is_error`` results
  are marked as errors in the text. ``thinking`` blocks sent back are dropped: they
  are the model's own earlier reasoning, not input.
- ``image`` blocks become ``image_url`` parts (base64 sources as ``data:`` URLs).
- ``stop_sequences`` are not sent upstream: zto applies them to the answer itself
  (``anthropic_format``), so it can say which one stopped it.
- ``top_k``, ``metadata`` and ``disable_parallel_tool_use`` are ignored.

Claude model names map to GLM models by ``ANTHROPIC_MODEL_MAP`` (``resolve_model``).
``estimate_tokens`` is the rough count ``count_tokens`` answers with. Pure code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from .errors import InvalidRequest
from .token_estimate import estimate_tokens as estimate_text_tokens

CLAUDE_PREFIX = "claude-"
# Claude Code's "[1m]"-style context suffixes on a model name.
CONTEXT_SUFFIX = re.compile(r"\[[^\[\]]*\]$")
ROLES = ("user", "assistant", "system")
THINKING_ON = ("enabled", "adaptive", "between_tools")
TOOL_CHOICES = ("auto", "any", "tool", "none")
ERROR_RESULT_PREFIX = "[tool error] "


def _fail(message: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def resolve_model(requested: str, model_map: Iterable[tuple[str, str]], default_model: str) -> str:
    """The zto model name a requested one becomes: ``ANTHROPIC_MODEL_MAP``'s first
    match (case-insensitive; a trailing ``*`` matches any suffix), else ``MODEL_NAME``
    for Claude names, else the name as it is (a GLM name)."""
    name = CONTEXT_SUFFIX.sub("", requested.strip()).lower()
    for pattern, target in model_map:
        pattern = pattern.lower()
        if name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1])):
            return target
    if name.startswith(CLAUDE_PREFIX):
        return default_model
    return requested


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"{where} must be a string.", "messages")
    return value


def _blocks(content, where: str) -> list[dict]:
    """A message's content as a list of blocks (a string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _fail(f"{where}.content must be a string or an array of content blocks.", "messages")
    for i, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _fail(f"{where}.content[{i}] must be an object with a 'type'.", "messages")
    return content


def _image_part(block: dict, where: str) -> dict:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _fail(f"{where}.source must be an object.", "messages")
    if source.get("type") == "base64":
        media_type = _text(source.get("media_type"), f"{where}.source.media_type")
        data = _text(source.get("data"), f"{where}.source.data")
        url = f"data:{media_type};base64,{data}"
    elif source.get("type") == "url":
        url = _text(source.get("url"), f"{where}.source.url")
    else:
        raise _fail(f"{where}.source.type must be 'base64' or 'url'.", "messages")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_text(block: dict, where: str) -> str:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "text":
        return _text(source.get("data"), f"{where}.source.data")
    raise _fail(f"{where}: only documents with a text source can be sent through zto.", "messages")


def _parts(blocks: list[dict], where: str) -> list[dict]:
    """OpenAI content parts for text, image and text-document blocks."""
    parts = []
    for i, block in enumerate(blocks):
        at = f"{where}.content[{i}]"
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": _text(block.get("text"), f"{at}.text")})
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "document":
            parts.append({"type": "text", "text": _document_text(block, at)})
        else:
            raise _fail(f"{at}.type '{kind}' is not supported here.", "messages")
    return parts


def _content(parts: list[dict]) -> str | list[dict]:
    """A plain string when the parts are all text, as every upstream takes that."""
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def _tool_result(block: dict, where: str) -> tuple[dict, list[dict]]:
    """The ``tool`` message of a tool_result block, and the images it carried."""
    call_id = _text(block.get("tool_use_id"), f"{where}.tool_use_id")
    content = block.get("content", "")
    parts = _parts(_blocks(content, where), where) if content != "" else []
    text = "\n".join(part["text"] for part in parts if part["type"] == "text")
    images = [part for part in parts if part["type"] == "image_url"]
    if block.get("is_error") is True:
        text = ERROR_RESULT_PREFIX + text
    return {"role": "tool", "tool_call_id": call_id, "content": text or "(no output)"}, images


def _user_messages(blocks: list[dict], where: str) -> list[dict]:
    results, images, others = [], [], []
    for i, block in enumerate(blocks):
        if block["type"] == "tool_result":
            message, more_images = _tool_result(block, f"{where}.content[{i}]")
            results.append(message)
            images += more_images
        else:
            others.append(block)
    parts = images + _parts(others, where)
    return results + ([{"role": "user", "content": _content(parts)}] if parts else [])


def _assistant_message(blocks: list[dict], where: str) -> dict | None:
    texts, calls = [], []
    for i, block in enumerate(blocks):
        at = f"{where}.content[{i}]"
        kind = block["type"]
        if kind == "text":
            texts.append(_text(block.get("text"), f"{at}.text"))
        elif kind == "tool_use":
            arguments = block.get("input", {})
            if not isinstance(arguments, dict):
                raise _fail(f"{at}.input must be an object.", "messages")
            calls.append({"id": _text(block.get("id"), f"{at}.id"), "type": "function",
                          "function": {"name": _text(block.get("name"), f"{at}.name"),
                                       "arguments": json.dumps(arguments, ensure_ascii=False)}})
        elif kind not in ("thinking", "redacted_thinking"):
            raise _fail(f"{at}.type '{kind}' is not supported in an assistant turn.", "messages")
    text = "".join(texts)
    if not text and not calls:
        return None  # only thinking: nothing the model needs to read again
    message: dict = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _messages(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise _fail("'messages' must be a non-empty array of messages.", "messages")
    result = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise _fail(f"{where} must be an object whose role is 'user', 'assistant' or 'system'.", "messages")
        if message["role"] == "system":
            result += _system(message.get("content"), f"{where}.content")
            continue
        blocks = _blocks(message.get("content"), where)
        if message["role"] == "user":
            result += _user_messages(blocks, where)
        elif (assistant := _assistant_message(blocks, where)) is not None:
            result.append(assistant)
    return result


def _system(system, where: str = "'system'") -> list[dict]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list) or not all(
            isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in system):
        raise _fail(f"{where} must be a string or an array of text blocks.", "system" if where == "'system'" else "messages")
    text = "\n\n".join(block["text"] for block in system if block["text"])
    return [{"role": "system", "content": text}] if text else []


def _tools(tools) -> list[dict]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _fail("'tools' must be an array of tools.", "tools")
    result = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _fail(f"tools[{i}] must be an object with a 'name'.", "tools")
        if tool.get("type") not in (None, "custom"):
            continue  # Anthropic's server tools (web search, code execution): not Z.ai's to run
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _fail(f"tools[{i}].input_schema must be a JSON schema object.", "tools")
        function = {"name": tool["name"], "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        result.append({"type": "function", "function": function})
    return result


def _tool_choice(choice) -> object:
    if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICES:
        raise _fail("'tool_choice' must be an object whose type is auto, any, tool or none.", "tool_choice")
    kind = choice["type"]
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise _fail("'tool_choice' of type tool must name the tool.", "tool_choice")
        return {"type": "function", "function": {"name": name}}
    return {"auto": "auto", "any": "required", "none": "none"}[kind]


def _thinking(thinking) -> bool:
    if not isinstance(thinking, dict) or thinking.get("type") not in (*THINKING_ON, "disabled"):
        raise _fail("'thinking' must be an object whose type is enabled, adaptive or disabled.", "thinking")
    return thinking["type"] != "disabled"


def thinking_omitted(body: dict) -> bool:
    """Whether the client asked for thinking blocks without their text
    (``thinking: {"display": "omitted"}``, as Claude Code does): signatures only."""
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("display") == "omitted"


def stop_sequences(body: dict) -> tuple[str, ...]:
    value = body.get("stop_sequences")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise _fail("'stop_sequences' must be an array of non-empty strings.", "stop_sequences")
    return tuple(value)


def to_openai_body(body, *, model_map: Iterable[tuple[str, str]], default_model: str) -> dict:
    """The OpenAI chat completion body of an Anthropic Messages request."""
    if not isinstance(body, dict):
        raise _fail("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _fail("'model' is required: a non-empty string.", "model")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _fail("'max_tokens' is required: a whole number of at least 1.", "max_tokens")
    stop_sequences(body)
    openai = {
        "model": resolve_model(model, model_map, default_model),
        "messages": _system(body.get("system")) + _messages(body.get("messages")),
        "max_tokens": max_tokens,
        "stream": body.get("stream", False),
    }
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            openai[name] = body[name]
    if tools := _tools(body.get("tools")):
        openai["tools"] = tools
    if body.get("tool_choice") is not None:
        openai["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("thinking") is not None:
        openai["enable_thinking"] = _thinking(body["thinking"])
    return openai


def estimate_tokens(body: dict) -> int:
    """A rough input token count of a Messages request: its system prompt, messages and
    tools as JSON (``token_estimate``)."""
    text = json.dumps([body.get("system"), body.get("messages"), body.get("tools")], ensure_ascii=False)
    return max(1, estimate_text_tokens(text))
