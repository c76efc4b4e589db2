"""HTTP to Z.ai, shared by both upstreams: the pooled session, the streamed body, and
the translation of ``requests`` and ``urllib3`` failures into zto's errors.

This is the only module that catches ``requests``/``urllib3`` exceptions: the web
chat (``web_chat.py``) and the official API client call ``send`` (pages, guest
tokens), ``open_stream`` (completions) and read ``StreamedBody``, and see only
``UpstreamError``s (see ``errors.py``). The session is
made once per app: a pool as large as the worker's concurrency, no environment
look-ups (``trust_env`` off; ``UPSTREAM_PROXY`` is explicit), and a cookie jar that
keeps nothing, so no guest's cookie ever reaches another.

Ways around slow parts of requests and urllib3, on the streaming hot path (the last
three on direct connections: through ``UPSTREAM_PROXY``, urllib3's proxy managers make
pools of their own, and requests are sent as urllib3 sends them):

- ``open_stream`` sends a completion request through the session's own adapter and
  connection pool but without ``Session.send``: a streamed answer needs none of its
  hooks, cookies, redirects or ``Response`` building, which cost about 0.35 ms per
  request, a third of the proxy's own time on a short answer. Its URL is sent as
  encoded by the caller: urllib3 re-quotes a request target character by character,
  80 µs on the web chat's long fingerprint query (``encoded_target``).
- The session's connections send a request's head and body in one write: urllib3
  writes them apart, two system calls and, with TCP_NODELAY, two packets the server
  wakes up for (``_OneWrite``). Before reusing a pooled connection they check that
  the server has not closed it with the real poll(2): urllib3 calls ``select.poll``,
  which under gevent is a cooperative poll that waits a whole turn of the event loop,
  behind every other stream's pending work.
- ``StreamedBody`` decodes a chunked answer itself (``chunked.py``) from whatever
  the connection's buffered socket file holds at each read: urllib3's chunked reader is a
  few Python calls per chunk and yields one chunk per call, so events that arrived
  together could not leave together. When the answer is complete the connection goes
  back to the pool as urllib3 would put it. Compressed answers still go through urllib3.
  While it reads, ``UPSTREAM_READ_TIMEOUT`` is kept by one watcher for every body
  (``SilentBodies``), not by the socket: under gevent a socket timeout is a timer made,
  started and cancelled around every wait, a twentieth of the worker's CPU under 1000
  slow streams.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from http import cookiejar

import requests
import urllib3.connection
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from .chunked import ChunkedDecoder
from .errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from .settings import Settings

log = logging.getLogger(__name__)

READ_SIZE = 65536
DRAIN_LIMIT = 256 * 1024  # bytes read past the answer's end to keep the connection
DRAIN_TIMEOUT_S = 0.05
BIG_BODY_BYTES = 1024 * 1024  # a request body this big took a while to build


class _NoCookies(cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False


def _real_poll():
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        return select.poll
    return monkey.get_original("select", "poll")  # select.poll itself unless gevent patched it


_poll = _real_poll()


class _OneWrite:
    """For urllib3's connections: a request with a small bytes body leaves in one write,
    and ``is_connected`` asks the kernel without yielding."""

    ONE_WRITE_LIMIT = 256 * 1024
    _held: list[bytes] | None = None

    @property
    def is_connected(self) -> bool:
        """urllib3's test before reusing a pooled connection: open, and nothing (no EOF,
        no stray bytes) waiting to be read."""
        if self.sock is None:
            return False
        poller = _poll()
        poller.register(self.sock, select.POLLIN)
        return not poller.poll(0)

    def request(self, method, url, body=None, headers=None, **kwargs):
        if not isinstance(body, bytes) or len(body) > self.ONE_WRITE_LIMIT:
            return super().request(method, url, body=body, headers=headers, **kwargs)
        self._held = []
        try:
            super().request(method, url, body=body, headers=headers, **kwargs)
            data = b"".join(self._held)
        finally:
            self._held = None
        super().send(data)

    def send(self, data) -> None:
        if self._held is not None:
            self._held.append(bytes(data))
        else:
            super().send(data)


class OneWriteHTTPConnection(_OneWrite, urllib3.connection.HTTPConnection):
    pass


class OneWriteHTTPSConnection(_OneWrite, urllib3.connection.HTTPSConnection):
    pass


class _EncodedTarget:
    """For urllib3's pools: ``urlopen(..., encoded_target=t)`` sends ``t`` as the request
    target, as it is. urlopen percent-encodes the URL it is given first, which our
    targets, made by ``urlencode``, never need; it is then given the short path alone."""

    def _make_request(self, conn, method, url, *args, encoded_target: str | None = None, **kwargs):
        return super()._make_request(conn, method, encoded_target or url, *args, **kwargs)


class _HTTPPool(_EncodedTarget, urllib3.HTTPConnectionPool):
    ConnectionCls = OneWriteHTTPConnection


class _HTTPSPool(_EncodedTarget, urllib3.HTTPSConnectionPool):
    ConnectionCls = OneWriteHTTPSConnection


NOT_WAITING = math.inf


class SilentBodies:
    """The bodies being read (``StreamedBody``), each with the time its read began to wait;
    one watcher thread (a greenlet under gevent), started on first use, shuts the socket of
    any that has waited longer than its read timeout, which ends the read blocked on it.
    A body is let go before its connection goes back to the pool, so a pooled connection
    is never shut. The watcher ends after ``IDLE_S`` with no body, and the next starts it
    again."""

    CHECK_S = 0.25  # how late a read timeout may act, at most
    IDLE_S = 30.0

    def __init__(self) -> None:
        self._bodies: set[StreamedBody] = set()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def add(self, body: StreamedBody) -> None:
        with self._lock:
            self._bodies.add(body)
            if self._watcher is None:  # started in the worker that uses it, never before a fork
                self._watcher = threading.Thread(target=self._watch, name="silent-upstreams", daemon=True)
                self._watcher.start()

    def discard(self, body: StreamedBody) -> None:
        with self._lock:
            self._bodies.discard(body)

    def _watch(self) -> None:
        last_busy = time.monotonic()
        while True:
            time.sleep(self.CHECK_S)
            now = time.monotonic()
            with self._lock:
                if self._bodies:
                    last_busy = now
                elif now - last_busy > self.IDLE_S:
                    self._watcher = None
                    return
                silent = [body for body in self._bodies if now - body.waiting_since > body.read_timeout]
                for body in silent:
                    self._bodies.discard(body)
                    try:
                        body.cut()
                    except Exception:  # one body's failure must not end the watch of the others
                        log.exception("ending a silent upstream answer failed")


class _Adapter(HTTPAdapter):
    silent_bodies: SilentBodies

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.silent_bodies = SilentBodies()

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def build_session(settings: Settings) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(_NoCookies())
    adapter = _Adapter(pool_connections=4, pool_maxsize=max(settings.concurrency, 10), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if settings.upstream_proxy:
        session.proxies = {"http": settings.upstream_proxy, "https": settings.upstream_proxy}
    return session


def translate_exception(exc: Exception, upstream: str = "Z.ai", url_setting: str = "UPSTREAM_URL") -> UpstreamError:
    """The error a client sees for a failed exchange with ``upstream`` (an exception of
    requests, of urllib3 or of the socket)."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason  # urllib3 without retries: what failed
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # a subclass of urllib3's TimeoutError, alas
        return UpstreamUnavailable(f"Cannot connect to {upstream} ({url_setting} unreachable).")
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
        return UpstreamTimeout(f"{upstream} did not answer in time (UPSTREAM_READ_TIMEOUT / UPSTREAM_CONNECT_TIMEOUT).")
    if isinstance(exc, (requests.exceptions.ProxyError, urllib3.exceptions.ProxyError)):
        return UpstreamUnavailable(f"Cannot reach {upstream} through UPSTREAM_PROXY ({type(exc).__name__}).")
    if isinstance(exc, (requests.ConnectionError, urllib3.exceptions.SSLError, ConnectionRefusedError)):
        return UpstreamUnavailable(f"Cannot connect to {upstream} ({url_setting} unreachable).")
    return UpstreamUnavailable(f"The connection to {upstream} broke ({type(exc).__name__}).")


def send(session: requests.Session, method: str, url: str, *, upstream: str = "Z.ai",
         url_setting: str = "UPSTREAM_URL", **kwargs) -> requests.Response:
    """``session.request``, with failures translated."""
    try:
        return session.request(method, url, **kwargs)
    except requests.RequestException as exc:
        raise translate_exception(exc, upstream, url_setting) from exc


class UpstreamResponse:
    """A streamed answer as ``open_stream`` returns it: its status, its headers (looked
    up in any case) and its open body, urllib3's response (``raw``), which
    ``StreamedBody`` reads."""

    __slots__ = ("raw", "status_code", "headers", "silent_bodies")

    def __init__(self, raw: urllib3.HTTPResponse, silent_bodies: SilentBodies | None = None) -> None:
        self.raw = raw
        self.status_code = raw.status
        self.headers = raw.headers
        self.silent_bodies = silent_bodies  # who keeps the read timeout while the body is read

    @property
    def text(self) -> str:
        """The body (its first ``ERROR_BODY_LIMIT`` bytes), decoded: for error answers."""
        data = self.raw.read(ERROR_BODY_LIMIT, decode_content=True)
        try:  # the charset requests' Response.text would use
            return data.decode(get_encoding_from_headers(self.headers) or "utf-8", "replace")
        except LookupError:  # a charset Python does not know
            return data.decode("utf-8", "replace")

    def close(self) -> None:
        """Drop the connection unless the body was read to its end (then it is pooled)."""
        if not self.raw.isclosed():
            self.raw.close()
        self.raw.release_conn()


ERROR_BODY_LIMIT = 64 * 1024


def open_stream(session: requests.Session, method: str, url: str, headers: dict, body: bytes, *,
                timeout: tuple[float, float], upstream: str = "Z.ai",
                url_setting: str = "UPSTREAM_URL") -> UpstreamResponse:
    """Send a request and return as soon as the answer's head is in, its body unread.

    ``url`` is already percent-encoded (as ``urlencode`` makes it) and ``headers`` and
    ``body`` final. The request goes out through the session's adapter for ``url``, its
    pool and its proxy, with the session's default headers first, then these, then
    Content-Length: on the wire what ``session.request(..., stream=True)`` sends, for a
    session whose cookie jar keeps nothing (see ``build_session``). Failures are
    translated (``translate_exception``)."""
    base, mark, query = url.partition("?")
    adapter = session.get_adapter(base)
    where = requests.PreparedRequest()
    where.method, where.url = method, base  # the adapter looks up the pool and the target on the short URL
    merged = CaseInsensitiveDict(session.headers)
    merged.update(headers)
    merged["Content-Length"] = str(len(body))
    if len(body) >= BIG_BODY_BYTES:
        time.sleep(0)  # under gevent, let the streams run: building this body held the event loop
    try:
        pool = adapter.get_connection_with_tls_context(where, session.verify, session.proxies, session.cert)
        adapter.cert_verify(pool, base, session.verify, session.cert)  # certifi's CAs, as requests would
        path = adapter.request_url(where, session.proxies)
        target = {"encoded_target": path + mark + query} if isinstance(pool, _EncodedTarget) else {}
        raw = pool.urlopen(method, path if target else path + mark + query, body=body, headers=merged,
                           redirect=False, assert_same_host=False, preload_content=False, decode_content=False,
                           retries=adapter.max_retries, timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                           chunked=False, **target)
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ClosedPoolError, ConnectionError) as exc:
        # Before any answer, as requests has it: the server closed or reset the connection.
        raise UpstreamUnavailable(f"Cannot connect to {upstream} ({url_setting} unreachable).") from exc
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        raise translate_exception(exc, upstream, url_setting) from exc
    return UpstreamResponse(raw, getattr(adapter, "silent_bodies", None))


def error_text(response: requests.Response | UpstreamResponse, limit: int = 2000) -> str:
    """The start of an error answer's body, then the response is closed."""
    try:
        return response.text[:limit]
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError):
        return ""
    finally:
        response.close()


def detail_of(text: str) -> str:
    """What an upstream said in an error body, short."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("message") or body.get("error") or body
        if isinstance(detail, dict):
            detail = detail.get("detail") or detail.get("message") or detail
        return str(detail)[:300]
    if "<html" in text.lower():
        title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
        return f"an HTML page{': ' + title.group(1).strip() if title else ''}"
    return text.strip()[:300] or "no details"


class StreamedBody:
    """An open answer body, read as it arrives. Iterate ``chunks()``; end with
    ``release()`` after a complete answer (the connection may be reused) or ``close()``
    (it is dropped)."""

    waiting_since = NOT_WAITING  # time.monotonic() when the read now waiting began
    read_timeout = 0.0

    def __init__(self, response: UpstreamResponse, upstream: str = "Z.ai") -> None:
        self._response = response
        self._upstream = upstream
        self._cut = False
        # One iterator for the whole body: abandoning urllib3's chunk reader halfway
        # closes the connection, so release() must go on with the same one.
        self._chunks = self._read()

    def chunks(self) -> Iterator[bytes]:
        return self._chunks

    def _read(self) -> Iterator[bytes]:
        raw = self._response.raw
        try:
            if (fp := _chunked_socket_file(raw)) is not None:
                yield from self._read_chunked(raw, fp)
            elif raw.chunked and raw.supports_chunked_reads():
                yield from raw.read_chunked(decode_content=True)
            else:
                while data := raw.read1(READ_SIZE, decode_content=True):
                    yield data
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise translate_exception(exc, self._upstream) from exc

    def _read_chunked(self, raw: urllib3.HTTPResponse, fp) -> Iterator[bytes]:
        decoder = ChunkedDecoder()
        watch = self._watched_by(raw)
        try:
            while not decoder.done:
                # peek waits inside the file's own buffer; read1 then takes what it holds. (read1
                # alone would allocate its whole size for every wait: 1000 waiting streams,
                # 1000 such buffers.)
                self.waiting_since = time.monotonic()
                try:
                    arrived = fp.peek(1)
                except OSError:  # under gevent, a shutdown cancels the wait with an error
                    self._raise_if_cut()
                    raise
                self.waiting_since = NOT_WAITING  # writing to the client is not the upstream's silence
                if not arrived:
                    self._raise_if_cut()
                    raise ConnectionError("the connection closed inside the answer")
                data = fp.read1(READ_SIZE)
                self._raise_if_cut()  # cut while reading (threads): a TLS socket is unwrapped by its shutdown
                if body := decoder.feed(data):
                    yield body
        finally:
            if watch is not None:
                watch.discard(self)
        # The answer is complete: close http.client's response object (not the socket: it
        # does the same itself at a body's end) and hand the connection back to the pool.
        raw._fp._close_conn()
        raw.release_conn()

    def _watched_by(self, raw: urllib3.HTTPResponse) -> SilentBodies | None:
        """Hand the read timeout over from the socket to the session's ``SilentBodies``."""
        watch = self._response.silent_bodies
        sock = getattr(raw.connection, "sock", None)
        timeout = sock.gettimeout() if sock is not None else None
        if watch is None or not timeout or not isinstance(sock, socket.socket):
            # The socket keeps its own timeout (or has none); so does TLS inside a TLS proxy
            # tunnel, whose urllib3 SSLTransport cannot be shut.
            return None
        self._sock, self.read_timeout = sock, timeout
        sock.settimeout(None)  # urllib3 sets it again for the connection's next request
        watch.add(self)
        return watch

    def _raise_if_cut(self) -> None:
        if self._cut:
            raise TimeoutError("no data for the read timeout")

    def cut(self) -> None:
        """Silent too long (``SilentBodies``): end the read waiting on this body's socket."""
        self._cut = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    def release(self) -> None:
        """Read what is left of the body, if it comes at once, so that the connection
        goes back to the pool; anything slower than ``DRAIN_TIMEOUT_S`` drops it."""
        sock = getattr(self._response.raw.connection, "sock", None)
        try:
            if sock is not None:
                sock.settimeout(DRAIN_TIMEOUT_S)  # urllib3 sets it again for the next request
            read = 0
            for data in self._chunks:
                read += len(data)
                if read > DRAIN_LIMIT:
                    break
        except (UpstreamError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self._chunks.close()
        self._response.close()


def _chunked_socket_file(raw: urllib3.HTTPResponse):
    """The buffered socket file under a chunked, uncompressed answer not read yet, which
    ``ChunkedDecoder`` can read; None for any other (urllib3 reads those)."""
    response = getattr(raw, "_fp", None)
    if not (raw.chunked and isinstance(response, http.client.HTTPResponse) and response.chunked
            and response.chunk_left is None and response.fp is not None):
        return None
    if raw.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        return None
    return response.fp
