"""Traffic statistics for the dashboard: running totals and the last 100 requests.

A request is recorded when it truly ends: after the last byte of a stream, or when
the client walked away. Two stores keep them, behind one small interface
(``StatsStore``: ``begin``, ``finish``, ``snapshot``, ``close``):

- ``Stats`` (the default): in the worker's memory, a lock, a bounded deque and a few
  counters; ``snapshot`` copies under the lock and computes outside it. Each worker
  process has its own, so with several workers a snapshot is one worker's share.
- ``RedisStats`` (``zto.stats_redis``, when ``REDIS_URL`` is set): in Redis, shared by
  every worker and every instance.

``create_app`` picks one from the settings. Both produce the same snapshot
(``summarize``), with ``shared`` saying whether it covers all traffic. Each recent
request is sent with its ``ok``, the one place that says what a success is, and with
every field of ``RequestRecord``, so a field added there reaches the dashboard's JSON
through either store.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Protocol

RECENT = 100


@dataclass
class PendingRequest:
    """What is known about a request while it runs; views and streams fill it in."""

    method: str
    path: str
    client_ip: str
    user_agent: str
    started_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    model: str | None = None
    stream: bool = False
    error: str | None = None  # an error code, or "client_disconnected"
    upstream: str | None = None  # "web" or "api": which upstream answered
    fell_back: bool = False  # another upstream refused first


@dataclass(frozen=True)
class RequestRecord:
    time: float
    method: str
    path: str
    status: int
    duration_ms: float
    client_ip: str
    user_agent: str
    model: str | None
    stream: bool
    error: str | None
    upstream: str | None = None
    fell_back: bool = False

    @property
    def ok(self) -> bool:
        """Whether the request succeeded: the rule of the dashboard's totals, and of the
        ``ok`` field each of its recent requests carries (the page does not re-derive it).
        A client that left (a stream at 200, a whole answer at 499) chose to: that is no
        failure of zto or Z.ai."""
        if self.error == "client_disconnected":
            return True
        return self.status < 400 and self.error is None


def p95(durations: Iterable[float]) -> float:
    """The 95th percentile by nearest rank: the ``ceil(0.95 * n)``-th smallest (1-based) of the
    ``n`` values, so that 95% of them are at most it; 0.0 for none."""
    ordered = sorted(durations)
    if not ordered:
        return 0.0
    rank = -(-95 * len(ordered) // 100)  # ceil(0.95 * n), in exact integer arithmetic
    return ordered[rank - 1]


RECORD_FIELDS = tuple(f.name for f in fields(RequestRecord))


# The fields a record takes from its PendingRequest as they are: a field added to both
# flows through to the stores and the dashboard's JSON with no change here.
_COPIED = tuple(name for name in RECORD_FIELDS if name in {f.name for f in fields(PendingRequest)})


def make_record(pending: PendingRequest, status: int) -> RequestRecord:
    """The record of a request that ends now with ``status``."""
    return RequestRecord(
        time=pending.started_at, status=status, duration_ms=round((time.perf_counter() - pending.started) * 1000, 2),
        **{name: getattr(pending, name) for name in _COPIED})


def record_fields(record: RequestRecord) -> dict:
    """A record as the dashboard's JSON sends it: every field, and its ``ok``."""
    return {**asdict(record), "ok": record.ok}


def record_from(data: dict) -> RequestRecord | None:
    """A record back from its fields (as ``asdict`` made them), written by this version or
    another: fields this one does not know are dropped, missing ones with a default take it,
    and None if one without a default is missing."""
    try:
        return RequestRecord(**{name: data[name] for name in RECORD_FIELDS if name in data})
    except TypeError:
        return None


@dataclass
class Totals:
    """The running totals, which add up: across batches, workers and instances."""

    total: int = 0
    successful: int = 0
    duration_ms_sum: float = 0.0
    last_at: float | None = None

    def add(self, record: RequestRecord) -> None:
        self.total += 1
        self.successful += record.ok
        self.duration_ms_sum += record.duration_ms
        self.last_at = record.time if self.last_at is None else max(self.last_at, record.time)


def summarize(totals: Totals, recent: list[RequestRecord], in_flight: int, started: float, *, shared: bool) -> dict:
    """The snapshot both stores give: totals, p95 of ``recent`` (oldest first) and the
    recent requests newest first. ``shared``: whether it covers every worker and instance."""
    return {
        "total_requests": totals.total,
        "successful_requests": totals.successful,
        "failed_requests": totals.total - totals.successful,
        "average_response_ms": round(totals.duration_ms_sum / totals.total, 2) if totals.total else 0.0,
        "p95_response_ms": p95([r.duration_ms for r in recent]),
        "in_flight": in_flight,
        "uptime_s": round(time.time() - started, 1),
        "last_request_at": totals.last_at,
        "shared": shared,
        "recent": [record_fields(r) for r in reversed(recent)],
    }


class StatsStore(Protocol):
    """Where the statistics live. ``begin`` and ``finish`` are on every request's path and
    never wait on anything slow; ``snapshot`` may raise ``StatsUnavailable``."""

    shared: bool  # whether a snapshot covers every worker and instance

    def begin(self) -> None: ...

    def finish(self, pending: PendingRequest, status: int) -> RequestRecord: ...

    def snapshot(self) -> dict: ...

    def close(self) -> None:
        """The process ends: hand on what is not yet written (best effort, briefly)."""


class Stats:
    """The embedded store: this worker's traffic, in its memory."""

    shared = False

    def __init__(self, recent: int = RECENT) -> None:
        self._lock = threading.Lock()
        self._recent: deque[RequestRecord] = deque(maxlen=recent)
        self._started = time.time()
        self._totals = Totals()
        self._in_flight = 0

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def finish(self, pending: PendingRequest, status: int) -> RequestRecord:
        record = make_record(pending, status)
        with self._lock:
            self._in_flight -= 1
            self._totals.add(record)
            self._recent.append(record)
        return record

    def snapshot(self) -> dict:
        with self._lock:
            recent = list(self._recent)
            totals, in_flight = replace(self._totals), self._in_flight
        return summarize(totals, recent, in_flight, self._started, shared=False)

    def close(self) -> None:
        """Nothing to hand on: these statistics end with the process."""

