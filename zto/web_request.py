"""What Z.ai's web chat is sent for a ``ChatRequest``: the model id, the messages as
it understands them, and the signed completion request. Pure code, no I/O.

The web chat knows neither the ``tool`` role nor assistant ``tool_calls``, so both
are rendered as text (a tool result becomes a user message). The last user message's
text is the *prompt*: signed (``hmac`` scheme) and sent as ``signature_prompt``.
Model names map to Z.ai ids by ``MODEL_MAP``, with ``-Thinking``/``-Search``
suffixes; names zto does not map become ``MODEL_NAME``'s model, as the original
project did.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from urllib.parse import urlencode, urlsplit

from requests.utils import requote_uri

from .chat_request import ChatRequest, split_model_suffixes, text_of
from .settings import Settings
from .signing import hmac_signature, sha256_signature
from .tokens import user_id_of

CHINA_TIME = timezone(timedelta(hours=8))
WEB_PARAMS = ("temperature", "top_p", "max_tokens")  # what the web chat's `params` takes


def resolve_model(requested: str, models: dict[str, str], default_model: str) -> tuple[str, bool, bool]:
    """(Z.ai model id, ``-Thinking`` given, ``-Search`` given) for a requested model name."""
    name, thinking, search = split_model_suffixes(requested)
    lowered = {key.lower(): value for key, value in models.items()}
    return lowered.get(name.lower(), models[default_model]), thinking, search


def _tool_calls_text(tool_calls: list) -> str:
    lines = []
    for call in tool_calls:
        function = call.get("function", {})
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        lines.append(f"[tool call {call.get('id', '')}] {function.get('name', '')}({arguments})")
    return "\n".join(lines)


def web_message(message: dict) -> dict:
    """One validated OpenAI message as the web chat takes it."""
    role, content = message["role"], message["content"]
    if role == "tool":
        return {"role": "user", "content": f"[tool result {message['tool_call_id']}]\n{text_of(content)}"}
    if role == "assistant":
        text = text_of(content)
        calls = _tool_calls_text(message.get("tool_calls") or [])
        return {"role": "assistant", "content": "\n".join(t for t in (text, calls) if t)}
    return {"role": role, "content": content}


def web_messages(messages: list[dict]) -> tuple[list[dict], str]:
    """(the messages as the web chat takes them, the prompt it checks the signature against)."""
    rendered = [web_message(m) for m in messages]
    users = [m for m in rendered if m["role"] == "user"]
    return rendered, text_of(users[-1]["content"]) if users else ""


def _let_others_run() -> None:
    time.sleep(0)  # under gevent a switch to the other greenlets (streams), under threads a GIL release


SHARED_PROMPT_CHARS = 65536
_PROMPT_STANDIN = f"\x00zto-prompt-{uuid.uuid4().hex}\x00"


def _json(value) -> bytes:
    # json, not orjson: on a body of megabytes orjson's buffer grows to many times its size.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def encode_body(body: dict, prompt: str) -> bytes:
    """The body as compact UTF-8 JSON. The body carries the prompt twice (the last user
    message and ``signature_prompt``): a long one is encoded once and put in both places,
    the same bytes for a fraction of the time the event loop is held."""
    if len(prompt) < SHARED_PROMPT_CHARS:
        return _json(body)
    messages = [{**m, "content": _PROMPT_STANDIN} if m.get("content") == prompt else m for m in body["messages"]]
    skeleton = _json({**body, "messages": messages, "signature_prompt": _PROMPT_STANDIN})
    return skeleton.replace(_json(_PROMPT_STANDIN), _json(prompt))


class WebRequestBuilder:
    """Builds signed completion requests: the browser identity is fixed at start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        origin = self.origin = settings.upstream_origin
        url = requote_uri(settings.upstream_url)  # requests are sent as encoded here (http.open_stream)
        self._url_prefix = url + ("&" if "?" in url else "?")
        self.models = settings.models
        host = urlsplit(origin).netloc
        self.browser_headers = {
            "Accept": "*/*",
            "Accept-Language": settings.accept_language,
            "User-Agent": settings.user_agent,
            "sec-ch-ua": settings.sec_ch_ua,
            "sec-ch-ua-mobile": "?0",
            "sec-ch-ua-platform": settings.sec_ch_ua_platform,
            "Sec-Fetch-Dest": "empty",
            "Sec-Fetch-Mode": "cors",
            "Sec-Fetch-Site": "same-origin",
            "Origin": origin,
        }
        # The fingerprint agrees with the identity headers: navigator.language(s) from
        # Accept-Language, the OS from sec-ch-ua-platform.
        languages = ",".join(tag.split(";")[0].strip() for tag in settings.accept_language.split(","))
        language = languages.split(",")[0]
        fingerprint = [
            ("version", "0.0.1"), ("platform", "web"), ("user_agent", settings.user_agent),
            ("language", language), ("languages", languages), ("timezone", "Asia/Shanghai"),
            ("cookie_enabled", "true"), ("screen_width", "1920"), ("screen_height", "1080"),
            ("screen_resolution", "1920x1080"), ("viewport_height", "945"), ("viewport_width", "1920"),
            ("viewport_size", "1920x945"), ("color_depth", "24"), ("pixel_ratio", "1"),
            ("host", host), ("hostname", host.split(":")[0]), ("protocol", urlsplit(origin).scheme + ":"),
            ("title", "Z.ai Chat - Free AI powered by GLM-4.6 & GLM-4.5"), ("timezone_offset", "-480"),
            ("is_mobile", "false"), ("is_touch", "false"), ("max_touch_points", "0"),
            ("browser_name", "Chrome"), ("os_name", settings.sec_ch_ua_platform.strip('"')),
        ]
        self._fingerprint_query = urlencode(fingerprint)  # the same for every request: encoded once

    def build(self, chat: ChatRequest, token: str, fe_version: str) -> tuple[str, dict, bytes]:
        """(url with query, headers, body bytes) of a signed completion request."""
        now = time.time()
        timestamp = int(now * 1000)
        chat_id, message_id, request_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
        user_id = user_id_of(token)
        chat_url = f"{self.origin}/c/{chat_id}"
        query = "&".join((
            urlencode({
                "timestamp": timestamp, "requestId": request_id, "user_id": user_id,
                "token": token, "current_url": chat_url, "pathname": f"/c/{chat_id}",
            }),
            self._fingerprint_query,
            urlencode({
                "local_time": datetime.fromtimestamp(now, CHINA_TIME).isoformat(timespec="milliseconds"),
                "utc_time": formatdate(now, usegmt=True),
                "signature_timestamp": timestamp,
            }),
        ))
        upstream_model, _, _ = resolve_model(chat.model, self.models, self.settings.model_name)
        messages, prompt = web_messages(chat.messages)
        body = {
            "stream": True,
            "model": upstream_model,
            "messages": messages,
            "signature_prompt": prompt,
            "params": {name: chat.params[name] for name in WEB_PARAMS if name in chat.params},
            "features": {
                "enable_thinking": chat.thinking,
                "web_search": chat.web_search,
                "auto_web_search": chat.web_search,
            },
            "background_tasks": {"title_generation": False, "tags_generation": False},
            "chat_id": chat_id,
            "id": message_id,
            "mcp_servers": [],
            "tool_servers": [],
            "model_item": {"id": upstream_model, "name": chat.model, "owned_by": "openai"},
            "variables": {
                "{{USER_NAME}}": "User",
                "{{USER_LOCATION}}": "Unknown",
                "{{CURRENT_DATETIME}}": datetime.fromtimestamp(now, CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S"),
            },
        }
        body_bytes = encode_body(body, prompt)
        if self.settings.signature_scheme == "sha256":
            signature = sha256_signature(body_bytes)
        else:
            signature = hmac_signature(
                self.settings.signature_secret, timestamp_ms=timestamp, request_id=request_id,
                user_id=user_id, prompt=prompt, pause=_let_others_run)
        headers = {
            **self.browser_headers,
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "Referer": chat_url,
            "X-FE-Version": fe_version,
            "X-Signature": signature,
        }
        return self._url_prefix + query, headers, body_bytes
