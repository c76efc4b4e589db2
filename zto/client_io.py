"""The client's side of a connection: a request body must arrive in time, and a write to
the client must make progress.

- ``read_body``: the request body. 413 above ``MAX_REQUEST_BYTES`` (with or without a
  Content-Length); 408 if all of it has not arrived ``BODY_TIMEOUT_S`` after its read
  began, however it trickles (a byte now and then does not keep it alive); 400 for a
  body that is not valid HTTP (a malformed chunked encoding). After a 408 or a 400 the
  connection is closed: what is left of the body cannot be told from a next request.
- Big bodies take turns: a body of ``BIG_BODY_BYTES`` or more is read only once it
  fits in ``BODY_BUDGET_BYTES`` with the other big bodies being read and turned into
  an upstream request (held until the view has answered). Each costs several times
  its size while it is decoded, rendered and encoded, and each of those steps holds
  the event loop; taking turns bounds both the memory and how long a stream's next
  chunk waits. A body waiting its turn stays in the kernel's socket buffers, and its
  ``BODY_TIMEOUT_S`` starts when its turn comes.
- ``departure_checked``: a whole answer being gathered stops, and its upstream is
  closed, as soon as the client has gone (checked at each upstream event), instead of
  running to its end for nobody.
- ``init_app``: every response's writes to the client get ``STREAM_WRITE_TIMEOUT_S``. A
  client that stops reading blocks the server's write once the socket buffers are
  full; after that long gunicorn drops the connection, which closes the response (and
  with it the upstream answer).

Both act on the socket gunicorn hands the app (``environ["gunicorn.socket"]``): its
timeout bounds each write, under the gevent worker as under gthread. The body's
deadline is an action of one shared watcher (``Deadlines``) that shuts the socket's
reading side, which ends any read blocked on it, however gunicorn's reader loops. Without gunicorn (Flask's test client) there
is no socket and only the size limit applies.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import select
import socket
import threading
import time
from collections.abc import Iterable, Iterator

from flask import Flask, Response, after_this_request, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import InvalidRequest, ProxyError
from .settings import Settings
from .shutdown import WatchedAnswer

log = logging.getLogger(__name__)

READ_SIZE = 1024 * 1024  # gunicorn copies its read-ahead buffer on every read: few big reads
BIG_BODY_BYTES = 1024 * 1024
BODY_BUDGET_BYTES = 16 * 1024 * 1024  # two 8 MB bodies (MAX_REQUEST_BYTES' default) at a time
BUDGET = "zto.body_budget"
DEADLINES = "zto.body_deadlines"
DEADLINE_CHECK_S = 0.25  # how late a body deadline may act, at most


class BodyBudget:
    """Bytes of big bodies in progress at once, handed out first come, first served; a
    body larger than the whole budget waits for all of it."""

    def __init__(self, capacity: int = BODY_BUDGET_BYTES) -> None:
        self.capacity = capacity
        self._free = capacity
        self._queue: list[object] = []
        self._changed = threading.Condition()

    def acquire(self, size: int) -> int:
        size = min(size, self.capacity)
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            self._changed.wait_for(lambda: self._queue[0] is ticket and self._free >= size)
            self._queue.pop(0)
            self._free -= size
            self._changed.notify_all()
        return size

    def release(self, size: int) -> None:
        with self._changed:
            self._free += size
            self._changed.notify_all()


class Deadlines:
    """Actions due at a time, all run by one watcher thread (a greenlet under gevent).

    A timer per request would start a thread for every request and switch to it, which
    under a burst of new connections delays every first token; here a deadline costs a
    heap push, and cancelling it only marks it (it is dropped when it comes due).
    """

    def __init__(self, check_s: float = DEADLINE_CHECK_S) -> None:
        self._check_s = check_s
        self._due: list[list] = []  # [when, order, action or None], a heap
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def add(self, seconds: float, action) -> list:
        """Run ``action()`` about ``seconds`` from now, unless cancelled; returns its handle."""
        entry = [time.monotonic() + seconds, next(self._order), action]
        with self._lock:
            heapq.heappush(self._due, entry)
            if self._watcher is None:  # started in the worker that uses it, never before a fork
                self._watcher = threading.Thread(target=self._watch, name="body-deadlines", daemon=True)
                self._watcher.start()
        return entry

    @staticmethod
    def cancel(entry: list) -> None:
        entry[2] = None

    def _watch(self) -> None:
        while True:
            now = time.monotonic()
            due = []
            with self._lock:
                while self._due and self._due[0][0] <= now:
                    action = heapq.heappop(self._due)[2]
                    if action is not None:
                        due.append(action)
            for action in due:
                try:
                    action()
                except Exception:  # one failed action must not stop the others'
                    log.exception("a body deadline action failed")
            time.sleep(self._check_s)


class BodyTimeout(ProxyError):
    status = 408
    code = "request_timeout"


def _client_socket() -> socket.socket | None:
    return request.environ.get("gunicorn.socket")


def _close_after_answer(sock: socket.socket | None) -> None:
    """Close the connection once the answer to this request has been written."""
    if sock is None:
        return

    @after_this_request
    def close(response: Response) -> Response:
        response.call_on_close(lambda: _shutdown(sock, socket.SHUT_RDWR))
        return response


def _shutdown(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass  # already gone


def read_body(settings: Settings) -> bytearray:
    limit = settings.max_body_bytes
    too_large = ProxyError(f"The request body is larger than MAX_REQUEST_BYTES ({limit} bytes).",
                           status=413, code="request_too_large")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    _take_turn(request.content_length or limit)
    sock = _client_socket()
    late = threading.Event()
    deadline = None
    if sock is not None:
        def cut() -> None:
            late.set()
            _shutdown(sock, socket.SHUT_RD)

        deadline = current_app.extensions[DEADLINES].add(settings.body_timeout_s, cut)
    started = time.monotonic()
    # A chunked body has no Content-Length: werkzeug's stream stops at the limit and only
    # raises on the read after it, which get_data never makes (it would truncate silently).
    body = bytearray()
    try:
        while data := request.stream.read(READ_SIZE):
            body += data
            if len(body) >= BIG_BODY_BYTES:
                time.sleep(0)  # under gevent, let the streams run: a big body already in the buffers reads without a pause
    except RequestEntityTooLarge:
        raise too_large from None
    except Exception as exc:  # gunicorn's and werkzeug's errors for a broken or cut body
        _close_after_answer(sock)
        if late.is_set():
            raise _late(settings, request.remote_addr, len(body)) from None
        raise InvalidRequest(f"The request body could not be read ({type(exc).__name__}): check its "
                             "Content-Length or chunked encoding.", code="invalid_body") from None
    finally:
        if deadline is not None:
            Deadlines.cancel(deadline)
    if late.is_set():  # the cut came as the body ended: an incomplete body reads as complete
        _close_after_answer(sock)
        raise _late(settings, request.remote_addr, len(body))
    log.debug("body of %d bytes read in %.3f s", len(body), time.monotonic() - started)
    if len(body) >= BIG_BODY_BYTES:
        time.sleep(0)  # under gevent, let the streams run before this body is decoded
    return body  # not copied into bytes: JSON decoders take a bytearray as it is


def _take_turn(size: int) -> None:
    """Wait until a big body fits in the budget; it is given back when the request ends."""
    if size < BIG_BODY_BYTES:
        return
    budget: BodyBudget = current_app.extensions[BUDGET]
    g.body_budget = budget.acquire(size)


def _late(settings: Settings, client: str | None, received: int) -> BodyTimeout:
    log.warning("request body from %s not complete after BODY_TIMEOUT_S=%g s (%d bytes received): 408",
                client, settings.body_timeout_s, received)
    return BodyTimeout(f"The request body did not arrive within BODY_TIMEOUT_S ({settings.body_timeout_s:g} s).")


class ClientGone(ProxyError):
    status = 499  # nginx's "client closed request": nobody reads it, the dashboard shows it
    code = "client_disconnected"


def client_gone(sock: socket.socket) -> bool:
    """Whether the client closed its side (or reset) the connection. Data waiting there
    (a pipelined request) is not a departure."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def departure_checked(answer):
    """``answer``, whose pieces end with ``ClientGone`` once the client has left."""
    sock = _client_socket()
    if sock is None:
        return answer

    def watch(pieces: Iterable) -> Iterator:
        for piece in pieces:
            if client_gone(sock):
                log.info("client %s left before its whole answer: upstream closed", request.remote_addr)
                raise ClientGone("The client closed the connection before the answer was complete.")
            yield piece

    return WatchedAnswer(answer, watch)


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions[BUDGET] = BodyBudget()
    app.extensions[DEADLINES] = Deadlines()

    @app.teardown_request
    def give_back_budget(_error) -> None:
        taken = g.pop("body_budget", 0)
        if taken:
            app.extensions[BUDGET].release(taken)

    @app.after_request
    def bound_writes(response: Response) -> Response:
        sock = _client_socket()
        if sock is not None:
            sock.settimeout(settings.write_timeout_s)
        return response
