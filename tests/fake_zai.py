"""A fake Z.ai upstream: a test fixture, never part of the product.

A real threaded HTTP/1.1 server on a loopback port speaking Z.ai's web-chat protocol as
zto uses it (the docstrings of zto's web-chat client, ``zto/signing.py`` and
``zto/translate.py`` describe it): guest tokens from ``/api/v1/auths/``, the landing page whose source names the
front-end version, and ``/api/chat/completions`` with token, query, X-FE-Version and signature checks
(``sha256`` or ``hmac`` scheme), injectable failures (``fail_next``) and SSE answers
taken from ``zai_scenarios``. Words in the last user message choose the answer
(``scenario:<name>``) and how it travels (``transport:<modifier>``, see ``_transport``).

In-process::

    with FakeZai() as fake:
        requests.post(fake.completions_url, ...)

As its own process (prints the origin on the first stdout line, serves until killed)::

    python tests/fake_zai.py --port 0 --scheme hmac
    python tests/fake_zai.py --captcha   # every answer refused for a captcha, as Z.ai since May 2026

For benchmarks (``bench/``): ``latency`` (``--latency``) delays the headers of every
answer, a simulated network round trip; ``GET /_fake/stats`` answers the counters
(connections opened, streams finished...) as JSON. ``check_completion`` is the
request verification, shared with the bench's asyncio fake (``bench/fake_async.py``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qsl, urlsplit

try:
    from . import zai_scenarios
except ImportError:  # run as a script, or tests/ is not a package
    import zai_scenarios

DEFAULT_SECRET = "key-@@@@)))()((9))-xxxx&&&%%%%%"
# How the text parts of a content-array message join into the signed prompt.
PROMPT_JOIN = "\n"
SIGNATURE_DETAIL = "403: Signature validation failed: 签名验证失败"
FAILURES = {
    "401": (401, {"detail": "Invalid token"}),
    "429": (429, {"detail": "Too many requests"}),
    "403": (403, {"detail": "Model not available for current user level"}),
    "500": (500, {"detail": "Internal Server Error"}),
    "405": (405, None),
    "concurrency": (200, None),
    "empty": (200, None),  # a clean 200 stream with no text at all: only usage and done
    "captcha": (200, None),  # the May 2026 refusal inside a 200 stream
    "captcha_http": (403, zai_scenarios.CAPTCHA_ERROR),  # the same fields in an HTTP error body
    "user_level": (200, None),  # in-stream 403: the model needs a logged-in token
}
WAF_PAGE = (
    "<!DOCTYPE html><html><head><title>405</title></head><body>"
    "<h1>Sorry, your request has been blocked.</h1><p>Aliyun WAF</p></body></html>"
)
HANG_SECONDS = 30.0
STATS_PATH = "/_fake/stats"
_CONNECTION_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


# ---- protocol helpers (also used by the self-test) -------------------------------

def sha256_signature(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def hmac_key(secret: str, ts: int | str) -> str:
    window = str(int(ts) // 300000)
    return hmac.new(secret.encode(), window.encode(), hashlib.sha256).hexdigest()


def hmac_signature(secret: str, ts: int | str, request_id: str, user_id: str, prompt: str) -> str:
    e = f"requestId,{request_id},timestamp,{ts},user_id,{user_id}"
    c = f"{e}|{base64.b64encode(prompt.encode()).decode()}|{ts}"
    return hmac.new(hmac_key(secret, ts).encode(), c.encode(), hashlib.sha256).hexdigest()


def message_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return PROMPT_JOIN.join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def last_user_text(messages) -> str | None:
    for m in reversed(messages if isinstance(messages, list) else []):
        if isinstance(m, dict) and m.get("role") == "user":
            return message_text(m.get("content"))
    return None


def jwt_user_id(token: str) -> str:
    try:
        part = token.split(".")[1]
        payload = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return "guest"
    for key in ("id", "user_id", "uid", "sub"):
        if isinstance(payload, dict) and payload.get(key):
            return str(payload[key])
    return "guest"


def fe_version(text: str | None) -> tuple[int, ...] | None:
    match = re.search(r"prod-fe-(\d+)\.(\d+)\.(\d+)", text or "")
    return tuple(int(g) for g in match.groups()) if match else None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _transport(prompt: str) -> dict:
    """``transport:`` words: crlf, cr, nospace, comments, tiny, cut, hang, conn_close,
    slow=<s>, delay=<s>."""
    options: dict = {}
    for word in prompt.split():
        if word.startswith("transport:"):
            name, _, value = word[len("transport:"):].partition("=")
            try:
                options[name] = float(value) if value else True
            except ValueError:
                options[name] = True
    return options


def check_completion(fake: FakeZai, token: str | None, query: dict, headers: dict, raw: bytes,
                     body, prompt: str | None) -> tuple[int, str] | str | None:
    """Z.ai's checks of a completion request, in Z.ai's order: token, query, front-end
    version, signature, body. None when the request passes; ``"stale"`` when the
    front-end version is too old (Z.ai answers a 426 error event in a 200 stream);
    else the ``(status, detail)`` to answer. ``headers`` has lower-case keys."""
    # 1. token
    if not token or not (token in fake._users or token in fake.accepted_tokens):
        return 401, "401: Invalid token"
    # 2. query
    for name in ("timestamp", "requestId", "user_id", "signature_timestamp", "token"):
        if not query.get(name):
            return 400, f"Bad request: missing {name}"
    if query["signature_timestamp"] != query["timestamp"]:
        return 400, "Bad request: signature_timestamp != timestamp"
    if query["token"] != token:
        return 400, "Bad request: token does not match Authorization"
    if query["user_id"] != jwt_user_id(token):
        return 400, "Bad request: user_id does not match token"
    # 3. front-end version
    minimum = fe_version(fake.min_fe_version)
    got = fe_version(headers.get("x-fe-version"))
    if minimum and (got is None or got < minimum):
        return "stale"
    # 4. signature
    sig = headers.get("x-signature", "")
    if fake.scheme == "sha256":
        ok = hmac.compare_digest(sig, sha256_signature(raw))
    else:
        signed = body.get("signature_prompt") if isinstance(body, dict) else None
        ok = (
            isinstance(signed, str) and signed == prompt and query["timestamp"].isdigit()
            and hmac.compare_digest(sig, hmac_signature(
                fake.secret, query["timestamp"], query["requestId"], query["user_id"], signed))
        )
    if not ok:
        return 400, SIGNATURE_DETAIL
    # 5. body
    if not isinstance(body, dict):
        return 400, "Bad request: body is not a JSON object"
    for name, kind in (("model", str), ("messages", list), ("chat_id", str), ("id", str)):
        if not isinstance(body.get(name), kind):
            return 400, f"Bad request: missing {name}"
    if body.get("stream") is not True:
        return 400, "Bad request: stream must be true"
    if prompt is None:
        return 400, "Bad request: no user message"
    return None


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict
    headers: dict  # lower-case keys
    body: object
    raw_body: bytes
    token: str | None
    scenario: str | None = None
    transport: dict = field(default_factory=dict)
    status: int | None = None  # HTTP status answered
    outcome: str | None = None  # rejected, failed, finished, aborted, cut


# ---- the server --------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # listen backlog: the default 5 drops connections under a burst
    fake: FakeZai

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (*_CONNECTION_ERRORS, OSError)):
            super().handle_error(request, client_address)


class TrackedHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with kept-alive connections, counted by the fake (``self.fake``)."""

    protocol_version = "HTTP/1.1"
    timeout = 120

    def log_message(self, format, *args):
        pass

    def setup(self):
        super().setup()
        self.fake = self.server.fake
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fake._connection_opened(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.fake._connection_closed(self.connection)


class _Handler(TrackedHandler):
    server_version = "FakeZai/1.0"

    # -- plumbing
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return data
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body, content_type="application/json") -> int:
        data = body.encode() if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode()
        if self.fake.latency:
            self.fake._stopping.wait(self.fake.latency)
        self.send_response(status)
        self.send_header("Content-Type", content_type + "; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        # Like Z.ai's edge, hand out a cookie: a proxy must never pass it to the next guest.
        self.send_header("Set-Cookie", f"acw_tc={uuid.uuid4().hex}; Path=/")
        self.end_headers()
        self.wfile.write(data)
        return status

    def _dispatch(self, method: str):
        path = urlsplit(self.path).path
        if method == "GET" and path == STATS_PATH:
            self._send(200, self.fake.stats())
            return
        with self.fake._lock:
            self.fake.seen.append((method, path, {k.lower(): v for k, v in self.headers.items()}))
        try:
            body = self._read_body() if method == "POST" else b""
            if method == "GET" and path == "/" and self.fake.landing_delay:
                self.fake._stopping.wait(self.fake.landing_delay)
            if method == "GET" and path == "/" and self.fake.landing_status != 200:
                self._send(self.fake.landing_status, {"detail": "Landing page unavailable"})
            elif method == "GET" and path == "/":
                self._send(200, self.fake._landing_page(), "text/html")
            elif method == "GET" and path in ("/api/v1/auths/", "/api/v1/auths"):
                self._auths()
            elif method == "POST" and path in ("/api/chat/completions", "/api/v2/chat/completions"):
                self._completion(path, body)
            else:
                self._send(404, {"detail": "Not Found"})
        except _CONNECTION_ERRORS:
            self.close_connection = True

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _bearer(self) -> str | None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        return (token.strip() or None) if scheme.lower() == "bearer" else None

    # -- endpoints
    def _auths(self):
        token = self._bearer()
        if token and token in self.fake._users:
            self._send(200, self.fake._users[token])
        elif token:
            self._send(401, {"detail": "401: Invalid token"})
        elif self.fake.guest_status != 200:
            self._send(self.fake.guest_status, {"detail": "Guest access is not available"})
        else:
            self._send(200, self.fake._new_guest())

    def _completion(self, path: str, raw: bytes):
        fake = self.fake
        token = self._bearer()
        query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        prompt = last_user_text(body.get("messages")) if isinstance(body, dict) else None
        rec = RecordedRequest(
            "POST", path, query, {k.lower(): v for k, v in self.headers.items()}, body, raw, token,
            zai_scenarios.scenario_for_prompt(prompt)[0] if prompt is not None else None,
            _transport(prompt or ""),
        )
        with fake._lock:
            fake.requests.append(rec)
            fake.completions += 1
            if fake.keep_requests is not None and len(fake.requests) > fake.keep_requests:
                del fake.requests[0]

        verdict = check_completion(fake, token, query, rec.headers, raw, body, prompt)
        if verdict == "stale":
            rec.scenario = "error_426"
            return self._stream(rec, zai_scenarios.SCENARIOS["error_426"].events, {})
        if verdict is not None:
            status, detail = verdict
            rec.outcome, rec.status = "rejected", self._send(status, {"detail": detail})
            return
        # 6. injected failure; ``captcha_required`` refuses every answer, as Z.ai does since May 2026
        with fake._lock:
            failure = fake._failures.pop(0) if fake._failures else None
        if failure is None and fake.captcha_required:
            failure = "captcha"
        if failure in ("captcha", "user_level"):
            rec.scenario = "error_" + failure
            return self._stream(rec, zai_scenarios.SCENARIOS[rec.scenario].events, rec.transport)
        if failure == "concurrency":
            rec.scenario = "error_concurrency"
            return self._stream(rec, zai_scenarios.SCENARIOS["error_concurrency"].events, rec.transport)
        if failure == "empty":
            rec.scenario = "empty"
            return self._stream(rec, [zai_scenarios.usage(), zai_scenarios.done()], rec.transport)
        if failure == "405":
            rec.outcome, rec.status = "failed", self._send(405, WAF_PAGE, "text/html")
            return
        if failure:
            status, payload = FAILURES[failure]
            rec.outcome, rec.status = "failed", self._send(status, payload)
            return
        # 7. the answer
        self._stream(rec, zai_scenarios.SCENARIOS[rec.scenario].events, rec.transport)

    # -- SSE
    def _stream(self, rec: RecordedRequest, events: list, opts: dict):
        fake = self.fake
        eol = b"\r\n" if opts.get("crlf") else b"\r" if opts.get("cr") else b"\n"
        prefix = b"data:" if opts.get("nospace") else b"data: "
        blocks = [prefix + json.dumps(e, ensure_ascii=False).encode() + eol + eol for e in events]
        if opts.get("comments"):
            blocks = [b": ping" + eol + b for b in blocks]
            blocks.insert(len(blocks) // 2, b"data: {not json" + eol + eol)
        chunked = not opts.get("conn_close")
        tiny = random.Random(len(rec.raw_body)) if opts.get("tiny") else None
        pending = bytearray()
        writes = 0

        def write(data: bytes, final=False):
            nonlocal writes
            if tiny is None:
                if data:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                return
            pending.extend(data)
            while len(pending) >= 3 or (final and pending):
                size = min(tiny.randint(1, 3), len(pending))
                piece = bytes(pending[:size])
                del pending[:size]
                self.wfile.write(b"%x\r\n%s\r\n" % (size, piece) if chunked else piece)
                writes += 1
                if writes % 4 == 0:
                    time.sleep(0.001)

        rec.status = 200
        opened = False
        try:
            if opts.get("slow"):
                fake._stopping.wait(float(opts["slow"]))
            if fake.latency:
                fake._stopping.wait(fake.latency)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            opened = self._count_open(+1)
            delay = opts["delay"] if isinstance(opts.get("delay"), float) else fake.chunk_delay
            cut_at = max(1, len(blocks) // 2) if opts.get("cut") else None
            for i, block in enumerate(blocks):
                if i and delay:
                    fake._stopping.wait(delay)
                if i == cut_at:
                    write(b"", final=True)
                    rec.outcome = "cut"
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                write(block)
                if i == 0 and opts.get("hang"):
                    write(b"", final=True)
                    deadline = time.monotonic() + HANG_SECONDS
                    next_ping = time.monotonic() + 0.2
                    while time.monotonic() < deadline and not fake._stopping.wait(0.05):
                        if time.monotonic() >= next_ping:
                            write(b": keepalive" + eol + eol, final=True)
                            next_ping += 0.2
            write(b"", final=True)
            # Counted before the body's last bytes: a client that has read them all may
            # look at the count at once.
            self._count_finished(rec, +1)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.close_connection = True
        except (*_CONNECTION_ERRORS, OSError):
            if rec.outcome == "finished":
                self._count_finished(rec, -1)
            rec.outcome = "aborted"
            self.close_connection = True
            with fake._lock:
                fake.streams_aborted += 1
        finally:
            if opened:
                self._count_open(-1)

    def _count_open(self, step: int) -> bool:
        with self.fake._lock:
            self.fake.streams_open += step
        return True

    def _count_finished(self, rec: RecordedRequest, step: int) -> None:
        rec.outcome = "finished" if step > 0 else None
        with self.fake._lock:
            self.fake.streams_finished += step


class LoopbackFake:
    """Starting and stopping a fake on a loopback port (``handler`` serves it), and the
    connections it has open; stopping ends kept-alive connections too."""

    handler: type[TrackedHandler]
    name = "fake"

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.connections_opened = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: set = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self.port), self.handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"{self.name}-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_until_stopped(self, address: str) -> None:
        """Run as a process: print ``address`` on the first stdout line, serve until SIGTERM or SIGINT."""
        print(address, flush=True)
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
        while not done.wait(1):
            pass
        self.stop()

    def _connection_opened(self, sock) -> None:
        with self._lock:
            self.connections_opened += 1
            self._sockets.add(sock)

    def _connection_closed(self, sock) -> None:
        with self._lock:
            self._sockets.discard(sock)


class FakeZai(LoopbackFake):
    handler = _Handler
    name = "fake-zai"

    def __init__(self, *, scheme="hmac", secret=DEFAULT_SECRET,
                 landing_version="prod-fe-1.0.94", min_fe_version="prod-fe-1.0.94",
                 accepted_tokens=(), chunk_delay=0.0, latency=0.0, port=0):
        super().__init__(port)
        self.scheme = scheme
        self.secret = secret
        self.landing_version = landing_version
        self.min_fe_version = min_fe_version
        self.accepted_tokens = tuple(accepted_tokens)
        self.chunk_delay = chunk_delay
        self.latency = latency  # seconds before the headers of every answer: a simulated round trip
        self.landing_status = 200  # anything else: the landing page answers that status, no version
        self.landing_delay = 0.0  # seconds before the landing page answers: a slow chat.z.ai
        self.guest_status = 200  # anything else: guest tokens are refused with that status
        self.captcha_required = False  # True: every completion gets the captcha refusal
        self.requests: list[RecordedRequest] = []
        self.seen: list[tuple[str, str, dict]] = []  # every request: (method, path, lower-case headers)
        self.guest_tokens: list[str] = []
        self.streams_finished = 0
        self.streams_aborted = 0
        self.streams_open = 0  # answer streams being sent now
        self.keep_requests: int | None = None  # keep only the last N RecordedRequests (a soak sends 8 MB bodies)
        self.completions = 0
        self._users: dict[str, dict] = {}
        self._failures: list[str] = []

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def completions_url(self) -> str:
        return self.origin + "/api/chat/completions"

    def fail_next(self, kind: str, count: int = 1) -> None:
        if kind not in FAILURES:
            raise ValueError(f"unknown failure {kind!r}; one of {sorted(FAILURES)}")
        with self._lock:
            self._failures.extend([kind] * count)

    def stats(self) -> dict:
        """The counters ``GET /_fake/stats`` answers."""
        with self._lock:
            return {"connections_opened": self.connections_opened, "connections_open": len(self._sockets),
                    "completions": self.completions, "streams_finished": self.streams_finished,
                    "streams_aborted": self.streams_aborted, "streams_open": self.streams_open,
                    "guest_tokens": len(self.guest_tokens)}

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.seen.clear()
            self.guest_tokens.clear()
            self._failures.clear()
            self.captcha_required = False
            self.guest_status = 200
            self.landing_delay = 0.0

    # -- used by the handler
    def _new_guest(self) -> dict:
        user_id = str(uuid.uuid4())
        header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
        payload = _b64url(json.dumps({"id": user_id, "email": f"{user_id[:8]}@guest.com"}).encode())
        token = f"{header}.{payload}.{_b64url(uuid.uuid4().bytes + uuid.uuid4().bytes)}"
        record = {"id": user_id, "token": token, "role": "guest", "name": f"Guest-{user_id[:8]}",
                  "email": f"{user_id[:8]}@guest.com", "token_type": "Bearer"}
        with self._lock:
            self._users[token] = record
            self.guest_tokens.append(token)
        return record

    def _landing_page(self) -> str:
        v = self.landing_version
        cdn = f"https://z-cdn.chatglm.cn/z-ai/frontend/{v}" if v else "/static"
        assets = f"/_next/static/{v}" if v else "/_next/static"
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Z.ai Chat</title>'
            f'<link rel="stylesheet" href="{cdn}/_next/static/css/app.css">'
            f'<script src="{cdn}/_next/static/chunks/main.js" defer></script>'
            f'<script src="{assets}/_buildManifest.js" defer></script></head>'
            '<body><div id="__next"></div></body></html>'
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Fake Z.ai upstream (test fixture)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--scheme", choices=("hmac", "sha256"), default="hmac")
    parser.add_argument("--secret", default=DEFAULT_SECRET)
    parser.add_argument("--landing-version", default="prod-fe-1.0.94")
    parser.add_argument("--min-fe-version", default="prod-fe-1.0.94")
    parser.add_argument("--accept-token", action="append", default=[])
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds before the headers of every answer (a simulated round trip)")
    parser.add_argument("--captcha", action="store_true",
                        help="refuse every answer with the captcha refusal, as Z.ai's web chat does since May 2026")
    parser.add_argument("--keep-requests", type=int, default=None,
                        help="keep only the last N requests in memory (long runs with big bodies)")
    args = parser.parse_args(argv)
    fake = FakeZai(scheme=args.scheme, secret=args.secret, landing_version=args.landing_version or None,
                   min_fe_version=args.min_fe_version or None, accepted_tokens=args.accept_token,
                   chunk_delay=args.chunk_delay, latency=args.latency, port=args.port)
    fake.captcha_required = args.captcha
    fake.keep_requests = args.keep_requests
    fake.start().serve_until_stopped(fake.origin)


if __name__ == "__main__":
    main()
