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
  left out of the sum, and removed by the dashboard's read after ``IN_FLIGHT_FORGET_S``;
- ``applied:<process id>``: the number of that process's last batch added to the above,
  expiring ``APPLIED_TTL_S`` after it was written.

Writes never slow an answer: ``begin`` and ``finish`` only touch memory under a lock.
A background thread (a greenlet under the gevent worker), started with the first
request, writes at once and then what accumulated every ``FLUSH_INTERVAL_S``. When Redis
is slow, the answers do not wait for it; when it is unreachable, the totals keep adding
up in memory (and the last 100 records stay queued) and are written once it is back, so
an outage loses no counts unless the process ends meanwhile.

Each write is one numbered batch, added by a script that Redis runs atomically and that
skips a batch whose number it has already added. A write that timed out may still run
(a stalled Redis runs what it had received when it resumes), so a batch whose write
failed is sent again as it was, under the same number, before anything newer: every
request is counted once, whether the first try ran or not.

When the process ends, ``close`` (called from gunicorn's hooks: ``zto.shutdown.close_worker``)
stops the writer and makes one last write of what is pending, which also removes the
process's ``in_flight`` entry; if Redis cannot take it within the short timeouts, a
warning says how many requests may be missing.

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
from dataclasses import asdict, dataclass

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import StatsUnavailable
from .stats import RECENT, PendingRequest, RequestRecord, Totals, make_record, record_from, summarize

log = logging.getLogger(__name__)

PREFIX = "zto:stats:"
TOTALS, LAST_AT, RECENT_LIST, IN_FLIGHT = (PREFIX + name for name in ("totals", "last_at", "recent", "in_flight"))
APPLIED = PREFIX + "applied:"  # + the process id
APPLIED_TTL_S = 3600  # far longer than a write that timed out can wait inside Redis before it runs
FLUSH_INTERVAL_S = 0.25
HEARTBEAT_S = 5.0  # in_flight is rewritten at least this often, even when idle
IN_FLIGHT_STALE_S = 30.0
IN_FLIGHT_FORGET_S = 3600.0  # an entry this old is a killed process's: the dashboard's read removes it
TIMEOUT_S = 1.0  # connect and read timeout of every Redis call
RETRY_AFTER_S = (0.5, 1.0, 2.0, 5.0)  # pauses between writes while Redis is unreachable

# KEYS: totals, last_at, recent, in_flight, applied. ARGV: the batch number (0: no batch,
# the in_flight entry alone), total, successful, duration_ms_sum, last_at, the recent
# list's length, the process id, its in_flight entry ("" removes it), the applied key's
# TTL, then the records, oldest first. Returns 1 if the batch was added, 0 if it had been.
ADD_BATCH = """
local number = tonumber(ARGV[1])
local added = 0
if number > 0 and number > tonumber(redis.call('GET', KEYS[5]) or '0') then
  redis.call('SET', KEYS[5], number, 'EX', ARGV[9])
  redis.call('HINCRBY', KEYS[1], 'total', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'successful', ARGV[3])
  redis.call('HINCRBYFLOAT', KEYS[1], 'duration_ms_sum', ARGV[4])
  redis.call('ZADD', KEYS[2], 'GT', ARGV[5], 'last')
  if #ARGV > 9 then
    redis.call('LPUSH', KEYS[3], unpack(ARGV, 10))
    redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
  end
  added = 1
end
if ARGV[8] == '' then
  redis.call('HDEL', KEYS[4], ARGV[7])
else
  redis.call('HSET', KEYS[4], ARGV[7], ARGV[8])
end
return added
"""


@dataclass(frozen=True)
class Batch:
    """Requests finished since the last write, under this process's next batch number."""

    number: int
    totals: Totals
    records: list[RequestRecord]


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
        self._last_number = 0  # of the last batch made
        self._unconfirmed: Batch | None = None  # a batch whose write failed: it may have been added
        self._add_batch = self._redis.register_script(ADD_BATCH)
        self._writer: threading.Thread | None = None
        self._closed = threading.Event()
        self._closing = threading.Lock()  # a second close waits until the first is done
        # One write at a time (the writer's, a test's, the last one of close), so that they
        # land in order and a late one never puts back an older in_flight count.
        self._sending = threading.Lock()

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
        with self._sending:
            now = time.time()
            with self._lock:
                has_requests, in_flight = bool(self._pending.total), self._in_flight
            heartbeat_due = in_flight != self._written_in_flight or now - self._last_heartbeat >= HEARTBEAT_S
            if not (has_requests or heartbeat_due or self._unconfirmed):
                return True
            try:
                self._send(f"{in_flight} {now}")
            except (redis.RedisError, OSError) as exc:
                if not self._failures:
                    log.warning("Redis cannot take the statistics (%s: %s); they are kept in memory and written "
                                "when it is back. Answers are not affected.", type(exc).__name__, exc)
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
                with self._sending:  # after a write of the writer still under way, if the join timed out
                    try:
                        self._send(None)
                    except (redis.RedisError, OSError) as exc:
                        missing = (self._unconfirmed.totals.total if self._unconfirmed else 0) + self._pending.total
                        log.warning("Redis cannot take the last statistics of this process as it ends (%s: %s): "
                                    "%d request(s) may be missing from them.", type(exc).__name__, exc, missing)
            finally:
                self._redis.close()

    def _send(self, in_flight_entry: str | None) -> None:
        """Write the batch that failed before, if any, then what is pending as a new batch,
        each with this process's ``in_flight_entry`` (None removes it). Raises Redis's
        error; the batch being written then stays for the next try, under its number.
        The caller holds ``_sending``."""
        if self._unconfirmed is not None:
            self._write(self._unconfirmed, in_flight_entry)
            self._unconfirmed = None
        with self._lock:
            totals, self._pending = self._pending, Totals()
            records = list(self._pending_records)
            self._pending_records.clear()
        batch = None
        if totals.total:
            self._last_number += 1
            batch = self._unconfirmed = Batch(self._last_number, totals, records)
        self._write(batch, in_flight_entry)
        self._unconfirmed = None

    def _write(self, batch: Batch | None, in_flight_entry: str | None) -> None:
        """Add ``batch`` unless Redis has it already, and set this process's ``in_flight``
        entry, or remove it (None): one atomic script."""
        if batch is None:
            numbers = [0, 0, 0, 0, 0]
            records: list[bytes] = []
        else:
            totals = batch.totals
            numbers = [batch.number, totals.total, totals.successful, repr(totals.duration_ms_sum), repr(totals.last_at)]
            records = [orjson.dumps(asdict(r)) for r in batch.records]
        self._add_batch(keys=[TOTALS, LAST_AT, RECENT_LIST, IN_FLIGHT, APPLIED + self._id],
                        args=[*numbers, self._recent_limit, self._id, in_flight_entry or "", APPLIED_TTL_S, *records])

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
        in_flight, gone = self._in_flight_sum(raw_in_flight)
        if gone:
            try:
                self._redis.hdel(IN_FLIGHT, *gone)
            except (redis.RedisError, OSError):
                pass  # the next read tries again
        return summarize(totals, recent, in_flight, self._started, shared=True)

    def _in_flight_sum(self, entries: dict[bytes, bytes]) -> tuple[int, list[bytes]]:
        """(every live process's count, this process's own from memory as the freshest; the
        entries of processes gone for ``IN_FLIGHT_FORGET_S``, or unreadable, to remove)."""
        now = time.time()
        total, gone = self._in_flight, []
        for process, value in entries.items():
            if process.decode(errors="replace") == self._id:
                continue
            try:
                count, written_at = value.decode().split(" ")
                count, age = int(count), now - float(written_at)
            except ValueError:
                gone.append(process)
                continue
            if age < IN_FLIGHT_STALE_S:
                total += count
            elif age > IN_FLIGHT_FORGET_S:
                gone.append(process)
        return total, gone
