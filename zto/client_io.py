"""The client's side of a connection: a request body must arrive in time, and a write to
the client must make progress.

- ``read_body``: the request body. 413 above ``MAX_REQUEST_BYTES`` (with or without a
  Content-Length); 408 if all of it has not arrived ``BODY_TIMEOUT_S`` after its read
  began, however it trickles (a byte now and then does not keep it alive); 400 for a
  body that is not valid HTTP (a malformed chunked encoding). After a 408 or a 400 the
  connection is closed: what is left of the body cannot be told from a next request.
- ``departure_checked``: a whole answer being gathered stops, and its upstream is
  closed, as soon as the client has gone (checked at each upstream event), instead of
  running to its end for nobody.
- ``init_app``: every response's writes to the client get ``STREAM_WRITE_TIMEOUT_S``. A
  client that stops reading blocks the server's write once the socket buffers are
  full; after that long gunicorn drops the connection, which closes the response (and
  with it the upstream answer).

Both act on the socket gunicorn hands the app (``environ["gunicorn.socket"]``): its
timeout bounds each write, under the gevent worker as under gthread. The body's
deadline is a timer that shuts the socket's reading side, which ends any read blocked
on it, however gunicorn's reader loops. Without gunicorn (Flask's test client) there
is no socket and only the size limit applies.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Iterable, Iterator

from flask import Flask, Response, after_this_request, request
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import InvalidRequest, ProxyError
from .settings import Settings
from .shutdown import WatchedAnswer

log = logging.getLogger(__name__)

READ_SIZE = 65536


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


def read_body(settings: Settings) -> bytes:
    limit = settings.max_body_bytes
    too_large = ProxyError(f"The request body is larger than MAX_REQUEST_BYTES ({limit} bytes).",
                           status=413, code="request_too_large")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    sock = _client_socket()
    late = threading.Event()
    timer = None
    if sock is not None:
        def cut() -> None:
            late.set()
            _shutdown(sock, socket.SHUT_RD)

        timer = threading.Timer(settings.body_timeout_s, cut)
        timer.daemon = True
        timer.start()
    started = time.monotonic()
    # A chunked body has no Content-Length: werkzeug's stream stops at the limit and only
    # raises on the read after it, which get_data never makes (it would truncate silently).
    body = bytearray()
    try:
        while data := request.stream.read(READ_SIZE):
            body += data
    except RequestEntityTooLarge:
        raise too_large from None
    except Exception as exc:  # gunicorn's and werkzeug's errors for a broken or cut body
        _close_after_answer(sock)
        if late.is_set():
            raise _late(settings, request.remote_addr, len(body)) from None
        raise InvalidRequest(f"The request body could not be read ({type(exc).__name__}): check its "
                             "Content-Length or chunked encoding.", code="invalid_body") from None
    finally:
        if timer is not None:
            timer.cancel()
    if late.is_set():  # the cut came as the body ended: an incomplete body reads as complete
        _close_after_answer(sock)
        raise _late(settings, request.remote_addr, len(body))
    log.debug("body of %d bytes read in %.3f s", len(body), time.monotonic() - started)
    return bytes(body)


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
    @app.after_request
    def bound_writes(response: Response) -> Response:
        sock = _client_socket()
        if sock is not None:
            sock.settimeout(settings.write_timeout_s)
        return response
