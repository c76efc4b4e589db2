"""The load client: a small asyncio HTTP/1.1 client for SSE streams, on raw sockets.

One ``Session`` is one keep-alive client connection that runs one request at a time
(it reconnects if the server closed it). ``Session.stream`` sends a completion
request and reads the SSE answer, timing the first content token and the last byte;
``Session.fetch`` is a plain request (guest tokens, the fake's counters).

The two ``Target`` kinds build the requests and read the answers of either side:

- ``ProxyTarget``: OpenAI's ``POST /v1/chat/completions`` to zto, text in
  ``choices[0].delta.content``, ending with ``data: [DONE]``;
- ``ZaiTarget``: the fake Z.ai called directly, with a request signed as zto signs it
  (``hmac`` scheme, by ``zto.signing`` itself: query fields, ``X-Signature``,
  ``signature_prompt``), text in ``data.delta_content``, ending with ``data.done``.

Everything is timed with ``time.perf_counter`` in the event loop's callbacks; the
figures check the loop's own lag (``LoopLag``) so a busy client shows up.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

from zto.signing import hmac_signature
from zto.tokens import user_id_of

MAX_HEAD = 65536


# ---- results -------------------------------------------------------------------------

@dataclass
class StreamResult:
    """One request's outcome. Times are seconds from the request's start (connect included
    when the session had to connect)."""

    ok: bool = False
    status: int | None = None
    error: str | None = None
    ttft: float | None = None  # first content token
    total: float | None = None  # last byte of the answer
    content_events: int = 0
    text: str = ""


# ---- targets: how to ask, how to read the answer ---------------------------------------

class ProxyTarget:
    """zto's OpenAI API."""

    name = "proxy"

    def __init__(self, host: str, port: int, api_key: str, model: str = "GLM-4.6") -> None:
        self.host, self.port, self.api_key, self.model = host, port, api_key, model

    def request(self, prompt: str) -> bytes:
        body = json.dumps({"model": self.model, "stream": True,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        return _http_request("POST", "/v1/chat/completions", self.host, self.port, body, {
            "Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json",
            "Accept": "text/event-stream"})

    @staticmethod
    def read_event(payload: bytes) -> tuple[str, bool, str | None]:
        """(text, end of answer, error) of one ``data:`` payload."""
        if payload == b"[DONE]":
            return "", True, None
        event = json.loads(payload)
        if "error" in event:
            return "", True, str(event["error"])[:200]
        choices = event.get("choices") or [{}]
        delta = choices[0].get("delta") or {}
        return (delta.get("content") or "") + (delta.get("reasoning_content") or ""), False, None


class OfficialTarget:
    """The fake's official API (``POST /api/paas/v4/chat/completions``), called directly
    as zto calls it: a Bearer key, a stream, thinking stated; OpenAI-shaped chunks back."""

    name = "direct"
    PATH = "/api/paas/v4/chat/completions"

    def __init__(self, host: str, port: int, api_key: str, model: str = "glm-4.6") -> None:
        self.host, self.port, self.api_key, self.model = host, port, api_key, model

    def request(self, prompt: str) -> bytes:
        body = json.dumps({"model": self.model, "stream": True, "thinking": {"type": "disabled"},
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        return _http_request("POST", self.PATH, self.host, self.port, body, {
            "Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json",
            "Accept": "text/event-stream"})

    read_event = staticmethod(ProxyTarget.read_event)  # the same chunks, and [DONE]


class ZaiTarget:
    """The fake Z.ai upstream, called directly with a correctly signed request."""

    name = "direct"
    UPSTREAM_MODEL = "GLM-4-6-API-V1"

    def __init__(self, host: str, port: int, secret: str, fe_version: str = "prod-fe-1.0.94") -> None:
        self.host, self.port, self.secret, self.fe_version = host, port, secret, fe_version

    def request(self, prompt: str, token: str) -> bytes:
        """A completion request as zto builds it: query, browser headers, signed body."""
        now = time.time()
        timestamp = int(now * 1000)
        chat_id, message_id, request_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
        user_id = user_id_of(token)
        origin = f"http://{self.host}:{self.port}"
        query = urlencode([
            ("timestamp", timestamp), ("requestId", request_id), ("user_id", user_id), ("token", token),
            ("current_url", f"{origin}/c/{chat_id}"), ("pathname", f"/c/{chat_id}"),
            ("version", "0.0.1"), ("platform", "web"), ("language", "zh-CN"),
            ("timezone", "Asia/Shanghai"), ("signature_timestamp", timestamp),
        ])
        body = json.dumps({
            "stream": True, "model": self.UPSTREAM_MODEL,
            "messages": [{"role": "user", "content": prompt}], "signature_prompt": prompt,
            "params": {}, "features": {"enable_thinking": False, "web_search": False, "auto_web_search": False},
            "background_tasks": {"title_generation": False, "tags_generation": False},
            "chat_id": chat_id, "id": message_id, "mcp_servers": [], "tool_servers": [],
            "model_item": {"id": self.UPSTREAM_MODEL, "name": "GLM-4.6", "owned_by": "openai"},
        }, ensure_ascii=False, separators=(",", ":")).encode()
        return _http_request("POST", f"/api/chat/completions?{query}", self.host, self.port, body, {
            "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "*/*",
            "Origin": origin, "Referer": f"{origin}/c/{chat_id}", "X-FE-Version": self.fe_version,
            "X-Signature": hmac_signature(self.secret, timestamp_ms=timestamp, request_id=request_id,
                                          user_id=user_id, prompt=prompt)})

    @staticmethod
    def read_event(payload: bytes) -> tuple[str, bool, str | None]:
        event = json.loads(payload)
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        error = event.get("error") or data.get("error") or (data.get("data") or {}).get("error")
        if error:
            return "", True, str(error)[:200]
        text = (data.get("delta_content") or "") if data.get("phase") in ("answer", "thinking") else ""
        return text, bool(data.get("done")), None


def make_jwt(user_id: str) -> str:
    """A JWT-shaped static token whose ``id`` claim is ``user_id`` (the fake does not verify it)."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps({'id': user_id}).encode())}.{b64(b'bench-signature')}"


def _http_request(method: str, path: str, host: str, port: int, body: bytes, headers: dict) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ---- HTTP/1.1 response parsing ------------------------------------------------------------

class ResponseParser:
    """Incremental parser of one HTTP/1.1 response: head, then a chunked, sized or
    until-close body, whose bytes go to ``on_body`` as they arrive."""

    def __init__(self, on_body) -> None:
        self.on_body = on_body
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.done = False
        self.keep_alive = True
        self._buf = bytearray()
        self._state = "head"
        self._remaining = 0

    def feed(self, data: bytes) -> None:
        self._buf += data
        buf = self._buf
        while not self.done:
            state = self._state
            if state == "head":
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise ValueError("response head too large")
                    return
                self._head(bytes(buf[:end]).decode("latin-1"))
                del buf[:end + 4]
            elif state == "size":
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buf[:end]).split(b";")[0], 16)
                del buf[:end + 2]
                self._remaining, self._state = size, ("data" if size else "trailer")
            elif state in ("data", "sized"):
                if not buf:
                    return
                n = min(self._remaining, len(buf))
                self.on_body(bytes(buf[:n]))
                del buf[:n]
                self._remaining -= n
                if self._remaining == 0:
                    if state == "data":
                        self._state = "data_end"
                    else:
                        self.done = True
            elif state == "data_end":
                if len(buf) < 2:
                    return
                del buf[:2]
                self._state = "size"
            elif state == "trailer":
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                line = buf[:end]
                del buf[:end + 2]
                if not line:
                    self.done = True
            else:  # "eof": the body runs until the connection closes
                if buf:
                    self.on_body(bytes(buf))
                    buf.clear()
                return

    def eof(self) -> None:
        """The connection closed: the end of an until-close body, else a cut answer."""
        if self._state == "eof":
            self.done = True

    def _head(self, head: str) -> None:
        lines = head.split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if self.headers.get("connection", "").lower() == "close":
            self.keep_alive = False
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._state = "size"
        elif "content-length" in self.headers:
            self._remaining = int(self.headers["content-length"])
            self._state = "sized"
            self.done = self._remaining == 0
        else:
            self._state, self.keep_alive = "eof", False


class SseReader:
    """Splits a body into SSE events and reads each ``data:`` payload with ``read_event``;
    records the first content token's time, the text and the end of the answer."""

    def __init__(self, read_event, started: float) -> None:
        self.read_event = read_event
        self.started = started
        self.ttft: float | None = None
        self.texts: list[str] = []
        self.content_events = 0
        self.ended = False
        self.error: str | None = None
        self._pending = b""

    def feed(self, data: bytes) -> None:
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        blocks = (self._pending + data).split(b"\n\n")
        self._pending = blocks.pop()
        for block in blocks:
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    self._event(line[5:].strip())

    def _event(self, payload: bytes) -> None:
        try:
            text, end, error = self.read_event(payload)
        except (ValueError, AttributeError, TypeError, IndexError) as exc:
            self.error = f"unreadable event: {exc}"
            return
        if text:
            if self.ttft is None:
                self.ttft = time.perf_counter() - self.started
            self.content_events += 1
            self.texts.append(text)
        if error:
            self.error = error
        if end:
            self.ended = True


# ---- one keep-alive connection ---------------------------------------------------------

class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.parser: ResponseParser | None = None
        self.finished: asyncio.Future | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.parser is None or self.finished.done():
            return
        try:
            self.parser.feed(data)
        except Exception as exc:  # a malformed answer is the server's failure, not the client's
            self.finished.set_exception(exc)
            return
        if self.parser.done:
            self.finished.set_result(None)

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.parser is not None and not self.finished.done():
            self.parser.eof()
            if self.parser.done:
                self.finished.set_result(None)
            else:
                self.finished.set_exception(ConnectionError("connection closed mid-answer"))


class Session:
    """One client connection, kept alive across requests, one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._protocol: _Protocol | None = None
        self.connections_opened = 0

    async def _ensure_connected(self) -> _Protocol:
        if self._protocol is None or self._protocol.closed:
            loop = asyncio.get_running_loop()
            _, self._protocol = await loop.create_connection(_Protocol, self.host, self.port)
            self.connections_opened += 1
        return self._protocol

    async def _exchange(self, request: bytes, on_body, timeout: float) -> ResponseParser:
        """Send ``request``; return the parsed response once its body is complete."""
        protocol = await asyncio.wait_for(self._ensure_connected(), timeout)
        parser = ResponseParser(on_body)
        protocol.parser = parser
        protocol.finished = asyncio.get_running_loop().create_future()
        protocol.transport.write(request)
        try:
            await asyncio.wait_for(protocol.finished, timeout)
        finally:
            protocol.parser = None
            if not (parser.done and parser.keep_alive):
                self.close()
        return parser

    async def stream(self, request: bytes, read_event, timeout: float) -> StreamResult:
        """Send a completion request and read its SSE answer to the end."""
        started = time.perf_counter()
        reader = SseReader(read_event, started)
        result = StreamResult()
        try:
            parser = await self._exchange(request, reader.feed, timeout)
            result.status = parser.status
            if parser.status != 200:
                result.error = f"HTTP {parser.status}"
            elif reader.error:
                result.error = reader.error
            elif not reader.ended:
                result.error = "answer ended without its end marker"
            else:
                result.ok = True
        except TimeoutError:
            result.error = f"timeout after {timeout:g}s"
        except (OSError, ValueError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        result.total = time.perf_counter() - started
        result.ttft = reader.ttft
        result.content_events = reader.content_events
        result.text = "".join(reader.texts)
        return result

    async def fetch(self, method: str, path: str, timeout: float = 10.0, headers: dict | None = None) -> tuple[int, bytes]:
        """A plain request; (status, body)."""
        body = bytearray()
        parser = await self._exchange(_http_request(method, path, self.host, self.port, b"", headers or {}),
                                      body.extend, timeout)
        return parser.status, bytes(body)

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None


# ---- the client's own health ------------------------------------------------------------

@dataclass
class LoopLag:
    """Measures how late the event loop wakes a task that sleeps ``interval`` seconds:
    a busy client shows up as lag, and every time it takes is then suspect."""

    interval: float = 0.02
    samples: list[float] = field(default_factory=list)
    _task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append(time.perf_counter() - before - self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
