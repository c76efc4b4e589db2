"""Z.ai's official API (its open platform) as an ``Upstream``: how zto talks to it.

The protocol, as Z.ai documents it. One endpoint, ``POST {ZAI_API_BASE}/chat/completions``
(international ``https://api.z.ai/api/paas/v4``, mainland China
``https://open.bigmodel.cn/api/paas/v4``, GLM Coding Plan
``https://api.z.ai/api/coding/paas/v4``), authenticated by ``Authorization: Bearer
<API key>`` with a key from the Z.ai console. The body is OpenAI's (``model``,
``messages`` with system/user/assistant/tool roles, assistant ``tool_calls``, tool
``tool_call_id``, ``image_url`` parts for the vision models, ``stream``,
``temperature``, ``top_p``, ``max_tokens``, ``stop``, ``tools``, ``tool_choice``) plus
Z.ai's own ``thinking: {"type": "enabled" | "disabled"}`` (its default is on for the
models that reason, so zto always says which) and ``tool_stream: true`` (tool-call
arguments then stream in pieces). Model ids are lowercase (``glm-4.6``, ``glm-4.6v``,
``glm-5``...).

A stream is ``data: {json}`` lines, each ``{"id", "created", "model", "choices":
[{"index": 0, "delta": {"role", "reasoning_content"?, "content"?, "tool_calls"?},
"finish_reason"?}]}`` (no ``object`` field); the last chunk carries ``finish_reason``
and ``usage`` (with ``prompt_tokens_details.cached_tokens``), then ``data: [DONE]``.
With ``tool_stream`` the first delta of a call has its ``id``, ``type`` and
``function.name`` with empty arguments, and later deltas add ``function.arguments``
pieces by ``index``; without it, each call arrives whole in one delta. zto always asks
for a stream, also for whole answers (the OpenAI front end gathers the pieces), so
there is one reading path.

Errors are an HTTP status with ``{"error": {"code": "<business code>", "message"}}``,
or the same object as a ``data:`` line inside a stream. ``rejection`` maps each code to
the OpenAI error a client library understands, with what to do: 1000-1003 (the
server's key is bad) 502 naming ``ZAI_API_KEY``; 1113 (no balance) 429
``insufficient_quota``; 1211 (unknown model) 404 ``model_not_found`` naming
``API_MODEL_MAP``; 1214 (bad parameter) 400; 1261 (prompt too long) 400
``context_length_exceeded``; 1301 (unsafe content) 400 ``content_filter``; 1302-1305
(concurrency, frequency, daily limit, busy) 429 with ``Retry-After``; 5xx 502.

Keys (``ApiKeys``): the keys of ``ZAI_API_KEY`` are used in turn. A key refused for
authentication, balance or rate before the answer's first byte is retried once with
the next key; one refused for authentication or balance is set aside for
``API_KEY_COOLDOWN_S`` (``/metrics`` and the dashboard list it by a redacted name).
When every key is set aside, one request every ``PROBE_INTERVAL_S`` (30 s) tries the
key whose cool-down ends first (a probe), so that an account topped up or a key
fixed is back within 30 s rather than after the whole cool-down; an answer takes the
key back into use at once. The other requests fail at once, without asking Z.ai,
with the error the last refusal gave and when the first key comes back. Keys are
never logged whole.

The pure parts (``api_model``, ``build_body``, ``ChunkDecoder``, ``rejection``,
``ApiKeys``) are unit-tested without HTTP; ``OfficialUpstream`` joins them to the
shared pooled session of ``http.py``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import orjson
from requests.utils import requote_uri

from .chat_request import split_model_suffixes
from .errors import UpstreamError, UpstreamRejected, UpstreamUnavailable
from .http import StreamedBody, UpstreamResponse, error_text, open_stream
from .sse import SSEDecoder, parse_event
from .tokens import redact
from .upstreams import TICK, Piece, log_failure

if TYPE_CHECKING:
    import requests

    from .chat_request import ChatRequest
    from .metrics import Metrics
    from .settings import Settings

log = logging.getLogger(__name__)

NAME = "the Z.ai official API"
PASSED_PARAMS = ("temperature", "top_p", "max_tokens", "stop")
AUTH_CODES = frozenset({"1000", "1001", "1002", "1003"})
RATE_CODES = frozenset({"1302", "1303", "1304", "1305"})
BALANCE_CODE = "1113"
# When every key is set aside: at most one request this often tries one (see ApiKeys.probe).
PROBE_INTERVAL_S = 30.0
# Seconds a client should wait after a rate refusal, when Z.ai does not say.
RETRY_AFTER_S = {"1302": 1, "1303": 2, "1304": 60, "1305": 5}


# ---- requests -----------------------------------------------------------------------

def api_model(requested: str, model_map: tuple[tuple[str, str], ...], default_model: str) -> str:
    """The official model id for a client's model name: ``API_MODEL_MAP`` looked up
    without case (``-Thinking``/``-Search`` suffixes dropped), an official ``glm-`` id as
    it is, and any other name ``MODEL_NAME``'s id (clients send e.g. ``gpt-4o`` by
    default), or the map's first id."""
    name, _, _ = split_model_suffixes(requested)
    mapping = {key.lower(): value for key, value in model_map}
    if name.lower() in mapping:
        return mapping[name.lower()]
    if is_official_id(name):
        return name
    return mapping.get(default_model.lower(), model_map[0][1])


def is_official_id(name: str) -> bool:
    """Whether ``name`` looks like an official model id (``glm-4.6``, ``glm-5-turbo``)."""
    return name == name.lower() and name.startswith("glm")


def build_body(chat: ChatRequest, model_id: str) -> dict:
    """The official API's body for ``chat``: always a stream, thinking always stated."""
    body: dict = {
        "model": model_id,
        "messages": chat.messages,
        "stream": True,
        "thinking": {"type": "enabled" if chat.thinking else "disabled"},
    }
    body.update((name, chat.params[name]) for name in PASSED_PARAMS if chat.params.get(name) is not None)
    if chat.tools:
        body["tools"] = list(chat.tools)
        if chat.stream:
            body["tool_stream"] = True
    if chat.tool_choice is not None:
        body["tool_choice"] = chat.tool_choice
    return body


# ---- answers --------------------------------------------------------------------------

class ChunkDecoder:
    """The official API's SSE body as ``Piece``s: bytes in, one piece per ``feed``
    (everything that arrived together; a tick if it shows nothing). Pure code.

    After a ``feed``, ``error`` holds ``(code, message)`` if an error line came (what
    came before it is in the returned piece), ``done`` says ``[DONE]`` came; ``usage``
    and ``finish_reason`` are those of the last chunk that had them, ``started``
    whether any chunk came."""

    def __init__(self) -> None:
        self._lines = SSEDecoder()
        self.started = False
        self.done = False
        self.error: tuple[str, str] | None = None
        self.usage: dict | None = None
        self.finish_reason: str | None = None

    def feed(self, data: bytes) -> Piece:
        return self._pieces(self._lines.feed(data))

    def close(self) -> Piece:
        """The end of the body: what an unterminated last line held."""
        return self._pieces(self._lines.close())

    def _pieces(self, payloads: list[str]) -> Piece:
        reasoning, content, calls = [], [], []
        for payload in payloads:
            if self.done or self.error:
                break
            if payload.strip() == "[DONE]":
                self.done = True
                break
            event = parse_event(payload)
            if event is None:
                continue
            if "error" in event:
                self.error = _error_of(event)
                break
            self.started = True
            if isinstance(event.get("usage"), dict):
                self.usage = event["usage"]
            choices = event.get("choices")
            choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("reasoning_content"), str):
                reasoning.append(delta["reasoning_content"])
            if isinstance(delta.get("content"), str):
                content.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    _add_call(calls, call)
        if not (reasoning or content or calls):
            return TICK
        return Piece("".join(reasoning), "".join(content), tuple(calls))


def _add_call(calls: list[dict], call: dict) -> None:
    """Append an OpenAI tool-call delta, joining argument pieces of the same call."""
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    delta: dict = {"index": call.get("index", 0) if isinstance(call.get("index"), int) else 0}
    for key in ("id", "type"):
        if call.get(key):
            delta[key] = call[key]
    delta["function"] = {}
    if function.get("name"):
        delta["function"]["name"] = function["name"]
    arguments = function.get("arguments")
    if arguments is not None:
        delta["function"]["arguments"] = arguments if isinstance(arguments, str) else json.dumps(arguments)
    last = calls[-1] if calls else None
    if last is not None and last["index"] == delta["index"] and set(delta) == {"index", "function"} \
            and set(delta["function"]) <= {"arguments"}:
        last["function"]["arguments"] = last["function"].get("arguments", "") + delta["function"].get("arguments", "")
    else:
        calls.append(delta)


def _error_of(body: dict) -> tuple[str, str]:
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("code") or ""), str(error.get("message") or "no details")[:500]
    return "", str(error or body)[:500]


# ---- errors ---------------------------------------------------------------------------

def rejection(status: int | None, code: str, message: str, *, model: str = "",
              retry_after: str | None = None) -> UpstreamRejected:
    """The error a client sees for an official API refusal (an HTTP error, or an error
    line in a stream, ``status`` None). ``retryable``: another key may fix it."""
    said = f"(code {code}: {message})" if code else f"({status}: {message})" if status else f"({message})"
    if code in AUTH_CODES or (status == 401 and not code):
        return UpstreamRejected(
            f"{NAME} refused this server's API key {said}. The server's ZAI_API_KEY is wrong or expired: "
            "its operator must set a key from the Z.ai console (for the platform of ZAI_API_BASE).",
            code="upstream_unauthorized", retryable=True, fallback=True)
    if code == BALANCE_CODE:
        return UpstreamRejected(
            f"The Z.ai account of this server's ZAI_API_KEY has no balance or resource package left {said}. "
            "Its operator must top it up in the Z.ai console, or add a key of another account to ZAI_API_KEY.",
            status=429, code="insufficient_quota", retryable=True, fallback=True)
    if code in RATE_CODES or (status == 429 and not code):
        seconds = retry_after if retry_after and retry_after.isdigit() else str(RETRY_AFTER_S.get(code, 2))
        error = UpstreamRejected(
            f"{NAME} is rate-limiting this server's key {said}. Retry after {seconds} s; more keys in "
            "ZAI_API_KEY spread the load.", status=429, code="upstream_rate_limited", retryable=True, fallback=True)
        error.headers = {"Retry-After": seconds}
        return error
    if code == "1211":
        error = UpstreamRejected(
            f"{NAME} has no model '{model}' {said}. Map the model name to an official id in API_MODEL_MAP "
            "(e.g. GLM-4.6=glm-4.6), or ask for an official id such as glm-4.6.", status=404, code="model_not_found")
        error.param = "model"
        return error
    if code == "1261":
        return UpstreamRejected(
            f"The conversation is longer than the model's context {said}. Shorten the messages or lower max_tokens.",
            status=400, code="context_length_exceeded")
    if code == "1301":
        return UpstreamRejected(
            f"Z.ai flagged the request or the answer as unsafe content {said}. Rephrase the request.",
            status=400, code="content_filter")
    if code == "1214" or (status is not None and 400 <= status < 500 and status != 404):
        return UpstreamRejected(
            f"{NAME} refused a parameter of this request {said}. Check the parameters against Z.ai's documentation.",
            status=400, code="invalid_request")
    if status == 404:
        return UpstreamRejected(f"{NAME} has no such endpoint {said}. Check ZAI_API_BASE.", code="upstream_not_found")
    return UpstreamRejected(f"{NAME} failed to answer {said}. Try again later.", fallback=True)


def _http_rejection(response: UpstreamResponse, model: str) -> UpstreamRejected:
    retry_after = response.headers.get("Retry-After")
    text = error_text(response)
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        body = None
    code, message = _error_of(body) if isinstance(body, dict) else ("", text.strip()[:300] or "no details")
    return rejection(response.status_code, code, message, model=model, retry_after=retry_after)


# ---- keys -----------------------------------------------------------------------------

class ApiKeys:
    """The keys of ``ZAI_API_KEY``, in turn, and the ones set aside for a while."""

    def __init__(self, keys: tuple[str, ...], cooldown_s: float, clock: Callable[[], float] = time.monotonic,
                 probe_interval_s: float = PROBE_INTERVAL_S,
                 on_change: Callable[[dict[tuple[str, str], float]], None] | None = None) -> None:
        """``on_change`` is told the keys set aside, ``(redacted key, reason)`` -> seconds
        left, each time they change (``Metrics.api_keys_set_aside``)."""
        if not keys:
            raise ValueError("ApiKeys needs at least one key")
        self._keys = keys
        self._cooldown_s = cooldown_s
        self._probe_interval_s = probe_interval_s
        self._last_probe: float | None = None
        self._clock = clock
        self._turn = 0
        self._aside: dict[str, tuple[float, UpstreamRejected]] = {}  # key -> (until, why)
        self._on_change = on_change
        self._lock = threading.Lock()

    def _changed(self, now: float) -> None:
        # Called under the lock, so that the changes arrive in the order they happened.
        if self._on_change is not None:
            self._on_change({(redact(key), why.code): until - now for key, (until, why) in self._aside.items()})

    def _usable(self, now: float) -> list[str]:
        back = [key for key, (until, _) in self._aside.items() if until <= now]
        for key in back:
            del self._aside[key]
            log.info("official API key %s is back in use", redact(key))
        if back:
            self._changed(now)
        return [key for key in self._keys if key not in self._aside]

    def acquire(self, avoid: str | None = None) -> str | None:
        """The next key in turn that is not set aside (nor ``avoid``), or None."""
        with self._lock:
            usable = [key for key in self._usable(self._clock()) if key != avoid]
            if not usable:
                return None
            for _ in self._keys:
                key = self._keys[self._turn % len(self._keys)]
                self._turn += 1
                if key in usable:
                    return key
        return None

    def probe(self) -> str | None:
        """With every key set aside: the key whose cool-down ends first, to try anyway,
        if no key was refused nor probed in the last ``probe_interval_s``; else None."""
        with self._lock:
            now = self._clock()
            if not self._aside or (self._last_probe is not None and now - self._last_probe < self._probe_interval_s):
                return None
            self._last_probe = now
            key = min(self._aside, key=lambda k: self._aside[k][0])
        log.info("every official API key is set aside: trying %s once anyway", redact(key))
        return key

    def answered(self, key: str) -> None:
        """``key`` got an answer: if it was set aside (a probe), it is back in use."""
        if key not in self._aside:  # the common case, without the lock
            return
        with self._lock:
            if self._aside.pop(key, None) is not None:
                log.info("official API key %s answered again: back in use", redact(key))
                self._changed(self._clock())

    def set_aside(self, key: str, why: UpstreamRejected) -> None:
        with self._lock:
            now = self._clock()
            self._aside[key] = (now + self._cooldown_s, why)
            self._last_probe = now  # a refusal is as good as a probe: the next one waits its interval
            self._changed(now)
        log.warning("official API key %s set aside for %g s: %s", redact(key), self._cooldown_s, why.code)

    def all_set_aside(self) -> UpstreamRejected:
        """The error for a request when every key is set aside: the latest refusal's."""
        with self._lock:
            why = max(self._aside.values(), key=lambda entry: entry[0])[1]
            first_back = min(until for until, _ in self._aside.values()) - self._clock()
        return UpstreamRejected(
            f"Every key in ZAI_API_KEY was refused lately and is set aside for API_KEY_COOLDOWN_S "
            f"({self._cooldown_s:g} s): the first comes back in {max(0, round(first_back))} s, and one "
            f"request every {self._probe_interval_s:g} s tries it sooner. The latest refusal: {why.message}",
            status=why.status, code=why.code, fallback=True)

    def set_aside_now(self) -> list[dict]:
        """The keys set aside now: redacted name, seconds left, and the refusal's code."""
        with self._lock:
            now = self._clock()
            self._usable(now)
            return [{"key": redact(key), "seconds_left": round(until - now), "reason": why.code}
                    for key, (until, why) in self._aside.items()]


# ---- the upstream ---------------------------------------------------------------------

class OfficialAnswer:
    """An answer being read from the official API, as ``Piece``s."""

    upstream = "api"

    def __init__(self, body: StreamedBody, model_id: str, release: Callable[[], None]) -> None:
        self.fell_back = False
        self._body = body
        self._model_id = model_id
        self._release: Callable[[], None] | None = release
        self._decoder = ChunkDecoder()
        self._reader = self._read()
        self._ahead: list[Piece] = []

    @property
    def usage(self) -> dict | None:
        return self._decoder.usage

    @property
    def finish_reason(self) -> str:
        return self._decoder.finish_reason or "stop"

    def prime(self) -> None:
        """Read until the first chunk, raising the error Z.ai sent instead."""
        for piece in self._reader:
            self._ahead.append(piece)
            if self._decoder.started:
                return

    def pieces(self) -> Iterator[Piece]:
        while self._ahead:
            yield self._ahead.pop(0)
        yield from self._reader

    def close(self) -> None:
        self._reader.close()
        if self._decoder.done:
            self._body.release()
        else:
            self._body.close()
        release, self._release = self._release, None
        if release is not None:
            release()

    def _read(self) -> Iterator[Piece]:
        decoder = self._decoder
        for data in self._body.chunks():
            piece = decoder.feed(data)
            if piece is not TICK or decoder.error is None:
                yield piece
            if decoder.error is not None:
                raise rejection(None, *decoder.error, model=self._model_id)
            if decoder.done:
                return
        piece = decoder.close()
        if piece is not TICK:
            yield piece
        if decoder.error is not None:
            raise rejection(None, *decoder.error, model=self._model_id)
        if not decoder.done and decoder.finish_reason is None:
            raise UpstreamUnavailable(f"The connection to {NAME} broke before the answer's end.")


class OfficialUpstream:
    """The official API, for the router (``upstreams.py``)."""

    name = "api"

    def __init__(self, settings: Settings, session: requests.Session, metrics: Metrics) -> None:
        self.settings = settings
        self.session = session
        self.metrics = metrics
        self.keys = ApiKeys(settings.zai_api_keys, settings.api_key_cooldown_s, on_change=metrics.api_keys_set_aside)
        self._model_names = frozenset(name.lower() for name, _ in settings.api_model_map)
        self._url = requote_uri(settings.api_base.rstrip("/") + "/chat/completions")  # sent as it is (open_stream)
        self._timeout = (settings.connect_timeout_s, settings.read_timeout_s)

    def models(self) -> list[str]:
        return [name for name, _ in self.settings.api_model_map]

    def serves(self, model: str) -> bool:
        name, _, _ = split_model_suffixes(model)
        return name.lower() in self._model_names or is_official_id(name)

    def unsupported(self, chat: ChatRequest) -> str | None:
        return None  # tools, images and thinking all pass through

    def drops(self, chat: ChatRequest) -> str | None:
        if chat.web_search:
            return "Z.ai's official API has no web search: the request was answered without it (-Search dropped)"
        return None

    def start(self, chat: ChatRequest) -> OfficialAnswer:
        """Open and start an answer; a refusal another key may fix is retried once with
        the next key."""
        model_id = api_model(chat.model, self.settings.api_model_map, self.settings.model_name)
        data = orjson.dumps(build_body(chat, model_id))
        key = self.keys.acquire() or self.keys.probe()
        if key is None:
            error = self.keys.all_set_aside()
            self.metrics.upstream_error(error.code)
            raise error
        for attempt in range(2):
            try:
                answer = self._open(key, data, model_id)
            except UpstreamError as error:
                self.metrics.upstream_error(error.code)
                if not (isinstance(error, UpstreamRejected) and error.retryable):
                    raise
                if error.code != "upstream_rate_limited":
                    self.keys.set_aside(key, error)
                replacement = self.keys.acquire(avoid=key) if attempt == 0 else None
                if replacement is None:
                    raise
                log_failure(self.name, error, f"retrying with key {redact(replacement)}")
                key = replacement
                continue
            self.keys.answered(key)
            return answer
        raise AssertionError("unreachable")

    def _open(self, key: str, data: bytes, model_id: str) -> OfficialAnswer:
        log.debug("official API call model=%s key=%s", model_id, redact(key))
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": "text/event-stream"}
        response = open_stream(self.session, "POST", self._url, headers, data, timeout=self._timeout,
                               upstream=NAME, url_setting="ZAI_API_BASE")
        if response.status_code != 200:
            raise _http_rejection(response, model_id)
        answer = OfficialAnswer(StreamedBody(response, NAME), model_id, self.metrics.upstream_opened("api_key"))
        try:
            answer.prime()
        except BaseException:
            answer.close()
            raise
        return answer
