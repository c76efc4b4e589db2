"""Restarts never cut an answer silently.

On SIGTERM or SIGHUP gunicorn stops accepting connections and gives running requests
``GRACEFUL_TIMEOUT_S`` (``graceful_timeout``) before it kills the worker. A stream still
running then would stop mid-answer with no error and an unterminated body. So a little
before the grace period ends (``margin_s``), ``Shutdown`` ends every answer still
reading from upstream: a stream gets an error event (code ``server_shutting_down``) and
``[DONE]``, a whole answer a 503, and the upstream is closed.

How an answer is ended: its upstream reads go through ``watch``. Under the gevent worker
a greenlet blocked in such a read gets ``Interrupted`` thrown into it from the event
loop, and only while it is still inside that read (never while it writes to its client).
Under gthread, threads cannot be interrupted: an answer ends at its next upstream event
(Z.ai sends them often; a silent one ends at the kill).

``gunicorn.conf.py``'s ``post_worker_init`` calls ``watch_worker``: a background task
waits for the worker to be told to stop (``worker.alive`` goes false), then for the grace
period minus the margin. Its ``worker_int`` and ``worker_exit`` call ``close_worker``,
which closes the app (its last statistics) before a second stop signal can end the
worker.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from flask import Flask

from .context import close_app
from .errors import ProxyError

log = logging.getLogger(__name__)

EXTENSION = "zto.shutdown"
POLL_S = 0.2
T = TypeVar("T")


class Interrupted(BaseException):
    """Thrown into an upstream read when the grace period ends. A BaseException, like
    GreenletExit, so that no ``except Exception`` on the way swallows it."""


class ServerStopping(ProxyError):
    status = 503
    code = "server_shutting_down"

    def __init__(self) -> None:
        super().__init__("zto is restarting and its grace period (GRACEFUL_TIMEOUT_S) ended before this answer "
                         "did. Send the request again.")


def margin_s(grace_s: float) -> float:
    """How long before the grace period ends answers are ended: time to write the error."""
    return min(2.0, grace_s * 0.2)


def _current():
    """The greenlet running this code under gevent, else the thread."""
    return _current_getter()()


@functools.cache  # asked once per stream; gevent patches before the app loads, so the answer holds
def _current_getter():
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        return threading.current_thread
    if monkey.is_module_patched("socket"):
        import greenlet
        return greenlet.getcurrent
    return threading.current_thread


class Shutdown:
    def __init__(self) -> None:
        self.ending = False
        self._reading: set = set()  # greenlets (gevent) or threads inside an upstream read

    def watch(self, pieces: Iterable[T]) -> Iterator[T]:
        """``pieces``, ended with ``ServerStopping`` once the grace period is over."""
        iterator = iter(pieces)
        me = _current()
        while True:
            if self.ending:
                raise ServerStopping()
            self._reading.add(me)
            try:
                piece = next(iterator)
            except StopIteration:
                return
            except Interrupted:
                raise ServerStopping() from None
            finally:
                self._reading.discard(me)
            yield piece

    def end_answers(self) -> None:
        """Mark the grace period over, and interrupt the answers waiting for upstream."""
        self.ending = True
        readers = list(self._reading)
        log.warning("grace period (GRACEFUL_TIMEOUT_S) ending: %d answer(s) still running get server_shutting_down",
                    len(readers))
        greenlets = [reader for reader in readers if not isinstance(reader, threading.Thread)]
        if greenlets:
            import gevent
            loop = gevent.get_hub().loop
            for reader in greenlets:
                loop.run_callback(self._interrupt, reader)

    def _interrupt(self, reader) -> None:
        # Runs in the event loop, so the reader is parked: still in the read, or gone from it.
        if reader in self._reading:
            reader.throw(Interrupted)


class WatchedAnswer:
    """An answer whose ``pieces()`` pass through ``watch`` (which may end them with an
    error); everything else is the answer's own."""

    def __init__(self, answer, watch: Callable[[Iterable], Iterator]) -> None:
        self._answer = answer
        self._watch = watch

    def pieces(self):
        return self._watch(self._answer.pieces())

    def __getattr__(self, name: str):
        return getattr(self._answer, name)


def init_app(app: Flask) -> Shutdown:
    shutdown = Shutdown()
    app.extensions[EXTENSION] = shutdown
    return shutdown


def guard(app: Flask, answer) -> WatchedAnswer:
    """``answer``, ended with ``ServerStopping`` when the grace period ends."""
    return WatchedAnswer(answer, app.extensions[EXTENSION].watch)


def watch_worker(worker, grace_s: float) -> None:
    """From gunicorn's ``post_worker_init``: end the worker's answers ``margin_s`` before
    ``grace_s`` after it is told to stop."""
    shutdown: Shutdown = worker.wsgi.extensions[EXTENSION]

    def wait_then_end() -> None:
        while worker.alive:
            time.sleep(POLL_S)
        time.sleep(max(0.0, grace_s - margin_s(grace_s) - POLL_S))
        shutdown.end_answers()

    threading.Thread(target=wait_then_end, name="zto-shutdown", daemon=True).start()


def close_worker(worker) -> None:
    """From gunicorn's ``worker_int`` (SIGINT, SIGQUIT) and ``worker_exit``: close the
    worker's app (``close_app``: its last statistics).

    A quit signal ends the worker 0.1 s after ``worker_int`` returns, and a terminal's
    Ctrl-C sends two (SIGINT to the worker and the master, which then sends the worker
    SIGQUIT). So the app is closed inside the first handler, before its exit, with further
    stop signals ignored from then on. A second quit signal that came before that
    (``_wait_for_the_end``) leaves the exit to the first. Any other end (SIGTERM: a stop,
    a reload; ``max_requests``) closes it in ``worker_exit``."""
    app = getattr(worker, "wsgi", None)
    if app is None:  # a worker still booting, or the master (worker_exit, for a worker found gone)
        return
    if getattr(worker, "zto_closing", False):
        _wait_for_the_end()
        return
    worker.zto_closing = True
    try:
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    except ValueError:  # not the main thread: gunicorn's --reload calls worker_int from its own
        pass
    close_app(app)


def _wait_for_the_end() -> None:
    """For a second quit signal's handler. Under gevent each handler runs in a greenlet of
    its own, and gunicorn's would call ``sys.exit(0)`` after ``worker_int`` while the first
    one's exit is already ending the process: gevent then prints that SystemExit as a
    traceback. That greenlet waits here for the end instead. Anywhere else (the main
    greenlet: a handler under gthread, ``worker_exit``) this returns at once."""
    try:
        import gevent
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        return
    if gevent.getcurrent().parent is not None:  # a spawned greenlet, not a thread's main one
        threading.Event().wait()
