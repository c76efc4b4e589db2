"""Traffic statistics for the dashboard: running totals and the last 100 requests.

A request is recorded when it truly ends: after the last byte of a stream, or when
the client walked away. ``Stats`` is owned by the app (one per worker process): a
lock, a bounded deque and a few counters; ``snapshot`` copies under the lock and
computes outside it. Each recent request is sent with its ``ok``, the one place that
says what a success is.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

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
        ``ok`` field each of its recent requests carries (the page does not re-derive it)."""
        return self.status < 400 and self.error in (None, "client_disconnected")


def p95(durations: Iterable[float]) -> float:
    """The 95th percentile by nearest rank: the ``ceil(0.95 * n)``-th smallest (1-based) of the
    ``n`` values, so that 95% of them are at most it; 0.0 for none."""
    ordered = sorted(durations)
    if not ordered:
        return 0.0
    rank = -(-95 * len(ordered) // 100)  # ceil(0.95 * n), in exact integer arithmetic
    return ordered[rank - 1]


class Stats:
    def __init__(self, recent: int = RECENT) -> None:
        self._lock = threading.Lock()
        self._recent: deque[RequestRecord] = deque(maxlen=recent)
        self._started = time.time()
        self._total = self._successful = self._in_flight = 0
        self._duration_ms_sum = 0.0
        self._last_at: float | None = None

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def finish(self, pending: PendingRequest, status: int) -> RequestRecord:
        record = RequestRecord(
            time=pending.started_at, method=pending.method, path=pending.path, status=status,
            duration_ms=round((time.perf_counter() - pending.started) * 1000, 2),
            client_ip=pending.client_ip, user_agent=pending.user_agent, model=pending.model,
            stream=pending.stream, error=pending.error, upstream=pending.upstream, fell_back=pending.fell_back,
        )
        with self._lock:
            self._in_flight -= 1
            self._total += 1
            self._successful += record.ok
            self._duration_ms_sum += record.duration_ms
            self._last_at = record.time
            self._recent.append(record)
        return record

    def snapshot(self) -> dict:
        with self._lock:
            recent = list(self._recent)
            total, successful, in_flight = self._total, self._successful, self._in_flight
            duration_sum, last_at = self._duration_ms_sum, self._last_at
        return {
            "total_requests": total,
            "successful_requests": successful,
            "failed_requests": total - successful,
            "average_response_ms": round(duration_sum / total, 2) if total else 0.0,
            "p95_response_ms": p95([r.duration_ms for r in recent]),
            "in_flight": in_flight,
            "uptime_s": round(time.time() - self._started, 1),
            "last_request_at": last_at,
            "recent": [{**asdict(r), "ok": r.ok} for r in reversed(recent)],
        }
