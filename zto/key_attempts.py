"""Wrong-key counting per client address, against guessing ``DASHBOARD_KEY``.

After ``limit`` wrong keys from one address within ``window_s`` seconds, that address
is blocked for ``block_s`` seconds, right key or not. Pure bookkeeping with an
injectable clock; ``page_auth`` turns it into 429 answers and log lines. Memory stays
bounded: addresses with nothing recent are forgotten, and at most ``max_addresses``
are tracked (the oldest first out). Per worker process, like the statistics.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

LIMIT = 10
WINDOW_S = 60.0
BLOCK_S = 60.0
MAX_ADDRESSES = 10_000


class KeyAttempts:
    def __init__(self, *, limit: int = LIMIT, window_s: float = WINDOW_S, block_s: float = BLOCK_S,
                 max_addresses: int = MAX_ADDRESSES, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit, self._window_s, self._block_s = limit, window_s, block_s
        self._max_addresses = max_addresses
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._blocked_until: dict[str, float] = {}

    def blocked_for(self, address: str) -> float:
        """Seconds ``address`` stays blocked; 0.0 if it is not."""
        now = self._clock()
        with self._lock:
            until = self._blocked_until.get(address)
            if until is None:
                return 0.0
            if until <= now:
                del self._blocked_until[address]
                return 0.0
            return until - now

    def failed(self, address: str) -> int:
        """Record a wrong key; the count within the window (``limit`` or more: now blocked)."""
        now = self._clock()
        with self._lock:
            recent = self._failures.pop(address, None) or deque()
            recent.append(now)
            while recent and recent[0] <= now - self._window_s:
                recent.popleft()
            self._failures[address] = recent
            count = len(recent)
            if count >= self._limit:
                self._blocked_until[address] = now + self._block_s
                del self._failures[address]
            self._forget_old(now)
        return count

    def _forget_old(self, now: float) -> None:
        while self._failures:
            address, recent = next(iter(self._failures.items()))
            if len(self._failures) <= self._max_addresses and recent[-1] > now - self._window_s:
                break
            del self._failures[address]
        if len(self._blocked_until) > self._max_addresses:
            self._blocked_until = {a: t for a, t in self._blocked_until.items() if t > now}
