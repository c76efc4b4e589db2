"""Statistics in Redis (``REDIS_URL``): one view of the traffic of every worker and instance.

The keys, under ``zto:stats:``:

- ``totals``: a hash of ``total``, ``successful`` and ``duration_ms_sum``, added to with
  HINCRBY / HINCRBYFLOAT, so every process's batches add up;
- ``last_at``: a sorted set of one member whose score is the newest request's start
  (ZADD GT keeps the largest, whichever instance writes last);
- ``recent``: a list of the last 100 records as JSON, newest first (LPUSH + LTRIM);
  every field of ``RequestRecord`` is written, so fields added there flow through;
- ``in_flight``: a hash of process id -> ``"<count> <unix time>"``; each process rewrites
  its own entry and removes it when it ends, and entries not refreshed for
  ``IN_FLIGHT_STALE_S`` (a process killed, or one that ended while Redis was down) are
  left out of the sum.

Writes never slow an answer: ``begin`` and ``finish`` only touch memory under a lock.
A background thread (a greenlet under the gevent worker), started with the first
request, writes at once and then what accumulated every ``FLUSH_INTERVAL_S``, in one
MULTI/EXEC. When Redis is slow, the answers do not wait for it; when it is unreachable,
the totals keep adding up in memory (and the last 100 records stay queued) and are
written once it is back, so an outage loses no counts unless the process ends meanwhile.
When the process ends, ``close`` (called from gunicorn's hooks: ``zto.shutdown.close_worker``)
stops the writer and makes one last write of what is pending, which also removes the
process's ``in_flight`` entry; if Redis cannot take it within the short timeouts, a
warning says how many requests went uncounted.

Reads (``snapshot``, for the dashboard) go to Redis with a short timeout and raise
``StatsUnavailable`` when it cannot answer; the dashboard then says so, and nothing else
is affected.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import StatsUnavailable
from .stats import RECENT, PendingRequest, RequestRecord, Totals, make_record, record_from, summarize

log = logging.getLogger(__name__)

PREFIX = "zto:stats:"
TOTALS, LAST_AT, RECENT_LIST, IN_FLIGHT = (PREFIX + name for name in ("totals", "last_at", "recent", "in_flight"))
FLUSH_INTERVAL_S = 0.25
HEARTBEAT_S = 5.0  # in_flight is rewritten at least this often, even when idle
IN_FLIGHT_STALE_S = 30.0
TIMEOUT_S = 1.0  # connect and read timeout of every Redis call
RETRY_AFTER_S = (0.5, 1.0, 2.0, 5.0)  # pauses between writes while Redis is unreachable


class RedisStats:
    """The shared store; the same interface as the embedded ``Stats``. ``flush_interval``:
    ``FLUSH_INTERVAL_S`` as it is when the store is made, unless given."""

    shared = True

    def __init__(self, url: str, recent: int = RECENT, *, flush_interval: float | None = None) -> None:
        # No retries inside the client: the writer retries on its own schedule, and a
        # dashboard read should fail fast rather than hang on a dead Redis.
        self._redis = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
                                           retry=Retry(NoBackoff(), 0))
        self._recent_limit = recent
        self._flush_interval = FLUSH_INTERVAL_S if flush_interval is None else flush_interval
        self._id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._started = time.time()
        self._lock = threading.Lock()
        self._pending = Totals()
        self._pending_records: deque[RequestRecord] = deque(maxlen=recent)
        self._in_flight = 0
        self._written_in_flight: int | None = None
        self._last_heartbeat = 0.0
        self._failures = 0
        self._writer: threading.Thread | None = None
        self._closed = threading.Event()
        # Reentrant: a signal handler that closes may run inside a close on the same thread.
        self._closing = threading.RLock()

    # -- the request path: memory only ------------------------------------------------------

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1
        if self._writer is None:
            self._start_writer()

    def finish(self, pending: PendingRequest, status: int) -> RequestRecord:
        record = make_record(pending, status)
        with self._lock:
            self._in_flight -= 1
            self._pending.add(record)
            self._pending_records.append(record)
        return record

    # -- the writer ---------------------------------------------------------------------------

    def _start_writer(self) -> None:
        with self._lock:
            if self._writer is not None:
                return
            # Started on first use, in the process that serves (never before gunicorn forks).
            self._writer = threading.Thread(target=self._write_forever, name="zto-stats-redis", daemon=True)
        self._writer.start()

    def _write_forever(self) -> None:
        pause = 0.0  # the first write at once: the process's in_flight entry appears with its first request
        while not self._closed.wait(pause):
            pause = self._flush_interval if self.flush() else RETRY_AFTER_S[min(self._failures, len(RETRY_AFTER_S)) - 1]

    def flush(self) -> bool:
        """Write what accumulated; False if Redis failed (it is kept for the next try)."""
        now = time.time()
        totals, records, in_flight = self._take_pending()
        heartbeat_due = in_flight != self._written_in_flight or now - self._last_heartbeat >= HEARTBEAT_S
        if not totals.total and not heartbeat_due:
            return True
        try:
            self._write(totals, records, f"{in_flight} {now}")
        except (redis.RedisError, OSError) as exc:
            with self._lock:  # keep it all for the next try; newer records go after these
                self._pending.merge(totals)
                kept = deque(records, maxlen=self._recent_limit)
                kept.extend(self._pending_records)
                self._pending_records = kept
            if not self._failures:
                log.warning("Redis cannot take the statistics (%s); they are kept in memory and written when it "
                            "is back. Answers are not affected.", type(exc).__name__)
            self._failures += 1
            return False
        if self._failures:
            log.info("Redis takes the statistics again, after %d failed writes", self._failures)
        self._failures = 0
        self._written_in_flight, self._last_heartbeat = in_flight, now
        return True

    def close(self) -> None:
        """At the process's end: stop the writer, then write what is pending and remove this
        process's ``in_flight`` entry, in one try bounded by the short timeouts. Another
        caller meanwhile waits until that is done."""
        with self._closing:
            if self._closed.is_set():
                return
            self._closed.set()
            try:
                if self._writer is None:  # never used: nothing pending, no entry written
                    return
                self._writer.join(TIMEOUT_S * 3)
                totals, records, _ = self._take_pending()
                try:
                    self._write(totals, records, None)
                except (redis.RedisError, OSError) as exc:
                    log.warning("Redis cannot take the last statistics of this process as it ends (%s): %d "
                                "request(s) are not counted.", type(exc).__name__, totals.total)
            finally:
                self._redis.close()

    def _take_pending(self) -> tuple[Totals, list[RequestRecord], int]:
        with self._lock:
            totals, self._pending = self._pending, Totals()
            records = list(self._pending_records)
            self._pending_records.clear()
            return totals, records, self._in_flight

    def _write(self, totals: Totals, records: list[RequestRecord], in_flight_entry: str | None) -> None:
        """One MULTI/EXEC: add ``totals`` and ``records``, then set this process's
        ``in_flight`` entry, or remove it (None)."""
        pipe = self._redis.pipeline(transaction=True)
        if totals.total:
            pipe.hincrby(TOTALS, "total", totals.total)
            pipe.hincrby(TOTALS, "successful", totals.successful)
            pipe.hincrbyfloat(TOTALS, "duration_ms_sum", totals.duration_ms_sum)
            pipe.zadd(LAST_AT, {"last": totals.last_at}, gt=True)
            pipe.lpush(RECENT_LIST, *(orjson.dumps(asdict(r)) for r in records))
            pipe.ltrim(RECENT_LIST, 0, self._recent_limit - 1)
        if in_flight_entry is None:
            pipe.hdel(IN_FLIGHT, self._id)
        else:
            pipe.hset(IN_FLIGHT, self._id, in_flight_entry)
        pipe.execute()

    # -- the dashboard's read ----------------------------------------------------------------

    def snapshot(self) -> dict:
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hgetall(TOTALS)
            pipe.zscore(LAST_AT, "last")
            pipe.lrange(RECENT_LIST, 0, self._recent_limit - 1)
            pipe.hgetall(IN_FLIGHT)
            raw_totals, last_at, raw_recent, raw_in_flight = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise StatsUnavailable(f"Statistics unavailable: Redis cannot be read ({type(exc).__name__}). "
                                   "The service keeps answering; only the statistics are affected.") from None
        totals = Totals(total=int(raw_totals.get(b"total", 0)), successful=int(raw_totals.get(b"successful", 0)),
                        duration_ms_sum=float(raw_totals.get(b"duration_ms_sum", 0.0)), last_at=last_at)
        recent = [r for r in (record_from(orjson.loads(raw)) for raw in reversed(raw_recent)) if r is not None]
        return summarize(totals, recent, self._in_flight_sum(raw_in_flight), self._started, shared=True)

    def _in_flight_sum(self, entries: dict[bytes, bytes]) -> int:
        """Every live process's count; this process's own from memory (it is the freshest)."""
        fresh_after = time.time() - IN_FLIGHT_STALE_S
        total = self._in_flight
        for process, value in entries.items():
            count, _, written_at = value.decode().partition(" ")
            if process.decode() != self._id and float(written_at or 0) > fresh_after:
                total += int(count)
        return total
