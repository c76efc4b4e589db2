"""Request accounting: ``init_app`` feeds every request that is traffic into the
dashboard's statistics (a ``StatsStore``) and Prometheus' ``Metrics``; ``note_error``
records what an error response was (its code, the upstream that failed), whichever
front end's shape it is rendered in.

A request is begun before its view runs and finished when it truly ends: at once for
a whole answer, after the last byte (or the client leaving) for a stream. Meanwhile
it is listed in this worker's ``InFlight``, so the dashboard shows a long stream as
in progress (``in_progress_rows``) before it is recorded. The ``untracked``
blueprints are not traffic: the dashboard must not count its own polling, nor Docker
its health checks; static files are not traffic either.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import asdict

from flask import Flask, current_app, g, request

from .errors import ProxyError
from .metrics import Metrics
from .stats import PendingRequest, StatsStore, make_record

log = logging.getLogger(__name__)

EXTENSION = "zto.in_flight"


class InFlight:
    """The requests this worker has begun and not yet finished."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[int, PendingRequest] = {}

    def add(self, pending: PendingRequest) -> None:
        with self._lock:
            self._requests[id(pending)] = pending

    def remove(self, pending: PendingRequest) -> None:
        with self._lock:
            self._requests.pop(id(pending), None)

    def rows(self) -> list[dict]:
        """Each as the dashboard lists a request: the fields of a finished one, with the
        time so far as its duration, no status yet, and ``in_progress``."""
        with self._lock:
            running = list(self._requests.values())
        return [{**asdict(make_record(pending, 0)), "status": None, "ok": None, "in_progress": True}
                for pending in running]


def in_progress_rows() -> list[dict]:
    """The current app's requests in progress (in this worker)."""
    return current_app.extensions[EXTENSION].rows()


def note_error(error: ProxyError) -> None:
    """Record an error response on the request's record (if it is tracked): its code,
    and the upstream whose failure it is, for every front end (``error_handlers``)."""
    pending = g.get("pending")
    if pending is None:
        return
    if pending.error is None:
        pending.error = error.code
    if error.upstream is not None:
        pending.upstream, pending.fell_back = error.upstream, error.fell_back


def init_app(app: Flask, stats: StatsStore, metrics: Metrics, *, untracked: Iterable[str] = ()) -> None:
    untracked = frozenset(untracked)
    in_flight = app.extensions[EXTENSION] = InFlight()

    def finish(pending: PendingRequest, status: int, route: str) -> None:
        in_flight.remove(pending)
        record = stats.finish(pending, status)
        metrics.observe_request(record.method, route, status, record.duration_ms / 1000)
        log.debug("%s %s %s %.1fms%s", record.method, record.path, record.status, record.duration_ms,
                  " (stream)" if pending.stream else "")

    @app.before_request
    def begin_request():
        if request.blueprint in untracked or request.endpoint == "static":
            return
        g.pending = PendingRequest(
            method=request.method, path=request.path, client_ip=request.remote_addr or "",
            user_agent=request.user_agent.string[:300])
        stats.begin()
        in_flight.add(g.pending)

    @app.after_request
    def end_request(response):
        pending = g.pop("pending", None)
        if pending is not None:
            route = request.url_rule.rule if request.url_rule else "(unmatched)"
            if response.is_streamed:
                # The status now, not the response: a closure over the response would
                # make a cycle through its close callbacks (freed only by the GC).
                status = response.status_code
                response.call_on_close(lambda: finish(pending, status, route))
            else:
                finish(pending, response.status_code, route)
        return response
