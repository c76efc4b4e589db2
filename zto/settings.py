"""Settings: every knob of zto, read once, validated, and frozen.

Precedence, highest first: the real environment, ``.env.local``, ``.env``, then the
defaults below. The names and defaults of the original Go project are kept (except
``DEFAULT_STREAM``, which defaults to false so that clients that omit ``stream`` get
JSON); everything zto learned about Z.ai since is a setting too, because Z.ai changes
its front end every few weeks. Nothing else in the package reads ``os.environ``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

THINKING_MODES = ("reasoning", "think", "strip", "hide")
UPSTREAM_KINDS = ("web", "api")
SIGNATURE_SCHEMES = ("hmac", "sha256")
WORKER_CLASSES = ("gevent", "gthread")

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36"
)
DEFAULT_SEC_CH_UA = '"Chromium";v="140", "Not=A?Brand";v="24", "Google Chrome";v="140"'
# Z.ai's web chat names its models by lowercase ids since December 2025.
DEFAULT_MODEL_MAP = "GLM-4.6=glm-4.6,GLM-4.7=glm-4.7,GLM-4.6V=glm-4.6v,GLM-5=glm-5,GLM-4.5=glm-4.5,GLM-4.5-Air=glm-4.5-air"
DEFAULT_API_BASE = "https://api.z.ai/api/paas/v4"
DEFAULT_API_MODEL_MAP = (
    "GLM-4.6=glm-4.6,GLM-4.5=glm-4.5,GLM-4.5-Air=glm-4.5-air,GLM-4.5-Flash=glm-4.5-flash,"
    "GLM-4.6V=glm-4.6v,GLM-4.7=glm-4.7,GLM-5=glm-5,GLM-5.1=glm-5.1"
)


class SettingsError(ValueError):
    """A setting has a value zto cannot use; the message names it and what it accepts."""


def _text(value: str) -> str:
    return value.strip()


def _name(value: str) -> str:
    if not value.strip():
        raise ValueError("a non-empty model name")
    return value.strip()


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false")


def _whole_number(low: int, high: int | None, expected: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            raise ValueError(expected) from None
        if number < low or (high is not None and number > high):
            raise ValueError(expected)
        return number

    return parse


_positive_int = _whole_number(1, None, "a whole number greater than 0")
_port = _whole_number(1, 65535, "a port number from 1 to 65535")
_count = _whole_number(0, None, "a whole number, 0 or more")


def _seconds(value: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise ValueError("a number of seconds greater than 0") from None
    if not 0 < number < math.inf:
        raise ValueError("a number of seconds greater than 0")
    return number


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in options:
            raise ValueError("one of " + ", ".join(options))
        return lowered

    return parse


def _list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _http_url(value: str) -> str:
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("an http:// or https:// URL")
    return url


def _proxy_url(value: str) -> str:
    url = value.strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "socks5", "socks5h", "socks4", "socks4a") or not parts.netloc:
        raise ValueError("empty, or a proxy URL such as http://host:3128 or socks5h://host:1080")
    return url


def _optional_url(schemes: tuple[str, ...], example: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        url = value.strip()
        if not url:
            return ""
        parts = urlsplit(url)
        if parts.scheme not in schemes or not parts.netloc:
            raise ValueError(f"empty, or a URL such as {example}")
        return url.rstrip("/")

    return parse


def _upstream_list(value: str) -> tuple[str, ...]:
    kinds = tuple(item.lower() for item in _list(value))
    if any(kind not in UPSTREAM_KINDS for kind in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError("empty, or an ordered list of web and api, e.g. web,api")
    return kinds


def _origins(value: str) -> tuple[str, ...]:
    origins = _list(value)
    if not origins:
        raise ValueError("* or a comma-separated list of origins such as https://chat.example.com")
    return origins


def _model_map(value: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in _list(value):
        name, sep, upstream_id = item.partition("=")
        if not sep or not name.strip() or not upstream_id.strip():
            raise ValueError("comma-separated NAME=UPSTREAM_ID pairs, e.g. GLM-4.6=GLM-4-6-API-V1")
        pairs.append((name.strip(), upstream_id.strip()))
    if not pairs:
        raise ValueError("at least one NAME=UPSTREAM_ID pair")
    return tuple(pairs)


def _optional_model_map(value: str) -> tuple[tuple[str, str], ...]:
    return _model_map(value) if value.strip() else ()


def _setting(env: str, default: str, parse: Callable[[str], object], doc: str):
    return field(default=None, metadata={"env": env, "default": default, "parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """The validated configuration. Build it with :func:`load_settings`."""

    # The original project's settings.
    zai_tokens: tuple[str, ...] = _setting(
        "ZAI_TOKEN", "", _list, "Z.ai access token(s), comma-separated, used in turn; empty = a fresh anonymous guest per conversation")
    api_keys: tuple[str, ...] = _setting(
        "DEFAULT_KEY", "sk-your-key", _list, "API key(s) clients must send as Bearer, comma-separated")
    model_name: str = _setting("MODEL_NAME", "GLM-4.6", _name, "the model name shown in /v1/models and used by default")
    port: int = _setting("PORT", "9090", _port, "the port gunicorn listens on")
    debug: bool = _setting("DEBUG_MODE", "true", _bool, "log each request and upstream call (never secrets)")
    default_stream: bool = _setting(
        "DEFAULT_STREAM", "false", _bool, "stream when a request does not say `stream`")
    dashboard_enabled: bool = _setting("DASHBOARD_ENABLED", "true", _bool, "serve /dashboard")
    enable_thinking: bool = _setting(
        "ENABLE_THINKING", "false", _bool, "ask for reasoning when a request does not say `enable_thinking`")
    upstream_url: str = _setting(
        "UPSTREAM_URL", "https://chat.z.ai/api/v2/chat/completions", _http_url,
        "Z.ai's completion endpoint; the guest-token and landing-page URLs use its origin")

    # What zto adds.
    thinking_mode: str = _setting(
        "THINKING_MODE", "reasoning", _choice(THINKING_MODES),
        "how reasoning reaches clients: reasoning_content field, <think> tags, inline text, or hidden")
    model_map: tuple[tuple[str, str], ...] = _setting(
        "MODEL_MAP", DEFAULT_MODEL_MAP, _model_map, "model names offered and the Z.ai model ids they map to")
    signature_scheme: str = _setting(
        "SIGNATURE_SCHEME", "hmac", _choice(SIGNATURE_SCHEMES), "how requests to Z.ai are signed")
    signature_secret: str = _setting(
        "SIGNATURE_SECRET", "key-@@@@)))()((9))-xxxx&&&%%%%%", _text, "the secret of the hmac signature scheme")
    fe_version: str = _setting(
        "FE_VERSION", "prod-fe-1.1.93", _text, "X-FE-Version sent to Z.ai (the fallback when discovery finds none)")
    fe_version_discovery: bool = _setting(
        "FE_VERSION_DISCOVERY", "true", _bool, "read the current front-end version from Z.ai's landing page")
    fe_version_cache_s: float = _setting(
        "FE_VERSION_CACHE_S", "1800", _seconds, "how long a discovered front-end version is trusted")
    user_agent: str = _setting("UPSTREAM_USER_AGENT", DEFAULT_USER_AGENT, _text, "browser User-Agent sent to Z.ai")
    sec_ch_ua: str = _setting("UPSTREAM_SEC_CH_UA", DEFAULT_SEC_CH_UA, _text, "sec-ch-ua header matching the User-Agent")
    sec_ch_ua_platform: str = _setting(
        "UPSTREAM_SEC_CH_UA_PLATFORM", '"Windows"', _text, "sec-ch-ua-platform header matching the User-Agent")
    accept_language: str = _setting("UPSTREAM_ACCEPT_LANGUAGE", "zh-CN", _text, "Accept-Language sent to Z.ai")
    connect_timeout_s: float = _setting(
        "UPSTREAM_CONNECT_TIMEOUT", "10", _seconds, "seconds to wait for a connection to Z.ai")
    read_timeout_s: float = _setting(
        "UPSTREAM_READ_TIMEOUT", "120", _seconds, "seconds Z.ai may stay silent before the request fails with 504")
    upstream_proxy: str = _setting(
        "UPSTREAM_PROXY", "", _proxy_url, "route traffic to Z.ai through this HTTP or SOCKS proxy")
    max_body_bytes: int = _setting(
        "MAX_REQUEST_BYTES", str(8 * 1024 * 1024), _positive_int, "largest request body accepted (413 above)")
    keepalive_s: float = _setting(
        "STREAM_KEEPALIVE_S", "10", _seconds,
        "send an SSE comment when Z.ai's output has shown nothing for this long (hidden reasoning, tool calls):"
        " keeps reverse proxies open and notices clients that left")
    trusted_proxies: int = _setting(
        "TRUSTED_PROXIES", "0", _count,
        "how many reverse proxies (nginx...) stand in front: their X-Forwarded-For gives the client IP")
    dashboard_key: str = _setting(
        "DASHBOARD_KEY", "", _text,
        "key that /dashboard and /metrics require (login form or Authorization: Bearer); empty = public")
    metrics_enabled: bool = _setting("METRICS_ENABLED", "true", _bool, "serve Prometheus metrics at /metrics")
    workers: int = _setting("WEB_CONCURRENCY", "1", _positive_int, "gunicorn worker processes")
    worker_class: str = _setting(
        "WORKER_CLASS", "gevent", _choice(WORKER_CLASSES),
        "gunicorn worker: gevent (one event loop carries every stream; measured best) or gthread (a thread per stream)")
    worker_connections: int = _setting(
        "WORKER_CONNECTIONS", "2000", _positive_int, "gevent: the most clients one worker serves at once")
    threads: int = _setting(
        "THREADS", "256", _positive_int, "gthread: threads per worker; one open stream holds one thread")

    # The official API (Z.ai's open platform), the second upstream.
    zai_api_keys: tuple[str, ...] = _setting(
        "ZAI_API_KEY", "", _list,
        "Z.ai official API key(s) from the Z.ai console, comma-separated, used in turn; empty = web chat only")
    api_base: str = _setting(
        "ZAI_API_BASE", DEFAULT_API_BASE, _http_url,
        "the official API's base URL (mainland China: https://open.bigmodel.cn/api/paas/v4;"
        " GLM Coding Plan: https://api.z.ai/api/coding/paas/v4)")
    upstreams: tuple[str, ...] = _setting(
        "UPSTREAMS", "", _upstream_list,
        "which upstreams answer, in order: web (chat.z.ai), api (the official API), or web,api (web first,"
        " the official API when the web chat refuses); empty = api when ZAI_API_KEY is set, else web")
    api_model_map: tuple[tuple[str, str], ...] = _setting(
        "API_MODEL_MAP", DEFAULT_API_MODEL_MAP, _model_map,
        "model names offered on the official API and its model ids (case-insensitive; official ids pass as they are)")
    api_key_cooldown_s: float = _setting(
        "API_KEY_COOLDOWN_S", "600", _seconds,
        "seconds an official API key refused for authentication or balance is set aside"
        " (when every key is, one request every 30 s tries one anyway)")

    # Anthropic's Messages API (/v1/messages), for Claude Code.
    anthropic_model_map: tuple[tuple[str, str], ...] = _setting(
        "ANTHROPIC_MODEL_MAP", "", _optional_model_map,
        "Claude model names (a trailing * matches any suffix) and the GLM model each becomes;"
        " empty = every claude-* model becomes MODEL_NAME")

    # Hardening.
    graceful_timeout_s: float = _setting(
        "GRACEFUL_TIMEOUT_S", "120", _seconds,
        "on SIGTERM/SIGHUP, how long running streams may go on; streams still running then end with an error event")
    write_timeout_s: float = _setting(
        "STREAM_WRITE_TIMEOUT_S", "60", _seconds,
        "a client that reads nothing for this long is cut off and its upstream answer closed")
    body_timeout_s: float = _setting(
        "BODY_TIMEOUT_S", "30", _seconds,
        "the whole request body must arrive within this long of zto starting to read it (at once, or for bodies"
        " of 1 MB and more when their turn comes; 408 after)")
    cors_origins: tuple[str, ...] = _setting(
        "CORS_ORIGINS", "*", _origins,
        "origins browsers may call the API from: * (any, as the original) or a comma-separated list")
    public_url: str = _setting(
        "PUBLIC_URL", "", _optional_url(("http", "https"), "https://zto.example.com"),
        "the URL users reach this service at, used in /docs examples; empty = taken from each request")

    # More than one process.
    redis_url: str = _setting(
        "REDIS_URL", "", _optional_url(("redis", "rediss", "unix"), "redis://localhost:6379/0"),
        "Redis for statistics shared by every worker and instance; empty = each worker keeps its own")

    @property
    def upstream_order(self) -> tuple[str, ...]:
        """The upstreams to try, in order (UPSTREAMS, or its default)."""
        if self.upstreams:
            return self.upstreams
        return ("api",) if self.zai_api_keys else ("web",)

    @property
    def concurrency(self) -> int:
        """How many requests one worker runs at once (and so the upstream pool's size)."""
        return self.worker_connections if self.worker_class == "gevent" else self.threads

    @property
    def upstream_origin(self) -> str:
        parts = urlsplit(self.upstream_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def models(self) -> dict[str, str]:
        """Model name -> Z.ai model id; MODEL_NAME maps to the first id unless listed."""
        mapping = dict(self.model_map)
        mapping.setdefault(self.model_name, self.model_map[0][1])
        return mapping


def setting_docs() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting, for docs and .env.example."""
    return [(f.metadata["env"], f.metadata["default"], f.metadata["doc"]) for f in fields(Settings)]


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_dir: str | os.PathLike | None = None,
    **overrides: object,
) -> Settings:
    """Read and validate the settings.

    ``environ`` defaults to ``os.environ`` and ``env_dir`` (where ``.env.local`` and
    ``.env`` are looked for) to the working directory. Keyword ``overrides`` take
    already-parsed values by field name, for tests.
    """
    environ = os.environ if environ is None else environ
    directory = Path.cwd() if env_dir is None else Path(env_dir)
    merged: dict[str, str] = {}
    for name in (".env", ".env.local"):
        path = directory / name
        if path.is_file():
            merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    merged.update(environ)

    values = {}
    for f in fields(Settings):
        if f.name in overrides:
            values[f.name] = overrides.pop(f.name)
            continue
        env = f.metadata["env"]
        raw = merged.get(env, f.metadata["default"])
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            raise SettingsError(f"{env}={raw!r} is not valid: expected {exc}") from None
    if overrides:
        raise TypeError(f"unknown settings: {', '.join(sorted(overrides))}")
    if not values["api_keys"]:
        raise SettingsError("DEFAULT_KEY is empty: expected at least one API key")
    if "api" in (values["upstreams"] or ()) and not values["zai_api_keys"]:
        raise SettingsError("UPSTREAMS names api but ZAI_API_KEY is empty: set ZAI_API_KEY to a key from the "
                            "Z.ai console, or remove api from UPSTREAMS")
    return Settings(**values)
