"""Where Z.ai tokens come from.

``StaticTokens`` hands out the tokens of ``ZAI_TOKEN`` in turn. ``GuestTokens``
gets a fresh anonymous guest token for every conversation, so that guests never
share memory or a concurrency budget; fetching is the upstream client's job and is
passed in. To keep that fetch off the path to the first token, a reserve of guests
is fetched ahead by short-lived background threads, several at once; the reserve
grows when demand outruns it. Each guest is used once, and one left unused for longer
than ``max_age_s`` is thrown away rather than handed out. Both offer
``another(failed)`` for the one retry after a 401, 429 or concurrency error; after a
guest's 401 the reserve is dropped and the retry's guest fetched fresh. ``user_id_of`` reads the user id from a JWT, unverified, as
Z.ai's front end does (``jwt_claims`` reads the whole payload).
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

USER_ID_CLAIMS = ("id", "user_id", "uid", "sub")
log = logging.getLogger(__name__)


class TokenSource(Protocol):
    def acquire(self) -> str: ...

    def another(self, failed: str, *, unauthorized: bool = False) -> str | None: ...


class StaticTokens:
    def __init__(self, tokens: tuple[str, ...]) -> None:
        if not tokens:
            raise ValueError("StaticTokens needs at least one token")
        self._tokens = tokens
        self._turn = itertools.cycle(range(len(tokens)))
        self._lock = threading.Lock()

    def acquire(self) -> str:
        with self._lock:
            return self._tokens[next(self._turn)]

    def another(self, failed: str, *, unauthorized: bool = False) -> str | None:
        if len(self._tokens) < 2:
            return None
        with self._lock:
            for _ in self._tokens:
                token = self._tokens[next(self._turn)]
                if token != failed:
                    return token
        return None


class GuestTokens:
    """Fresh guests, fetched ahead. The reserve starts at ``ahead`` and doubles (up to
    ``most``) whenever a conversation finds it empty, so that it follows demand; it is
    refilled by up to ``parallel`` fetches at once."""

    def __init__(self, fetch: Callable[[], str], ahead: int = 4, max_age_s: float = 120.0,
                 most: int = 64, parallel: int = 8) -> None:
        self._fetch = fetch
        self._target = ahead
        self._most = most
        self._parallel = parallel
        self._max_age_s = max_age_s
        self._ready: deque[tuple[float, str]] = deque()  # (fetched at, token), oldest first
        self._fetching = 0
        self._filled = False  # the reserve has held a token: an empty one now means demand outran it
        self._lock = threading.Lock()

    def acquire(self) -> str:
        token = self._take()
        if token is None:
            with self._lock:
                if self._filled:
                    self._target = min(2 * self._target, self._most)
            token = self._fetch()
        self._fill_in_background()
        return token

    def another(self, failed: str, *, unauthorized: bool = False) -> str | None:
        """A guest for the one retry. After a 401 the reserve is thrown away and a guest
        fetched now: Z.ai refusing a guest it issued means it forgot them (a restart), and
        every guest fetched ahead is as stale."""
        if not unauthorized:
            return self.acquire()
        with self._lock:
            dropped = len(self._ready)
            self._ready.clear()
        if dropped:
            log.info("Z.ai refused a guest token: %d guest tokens fetched ahead were dropped", dropped)
        token = self._fetch()
        self._fill_in_background()
        return token

    def _take(self) -> str | None:
        oldest_allowed = time.monotonic() - self._max_age_s
        with self._lock:
            while self._ready:
                fetched_at, token = self._ready.popleft()
                if fetched_at >= oldest_allowed:
                    return token
        return None

    def _fill_in_background(self) -> None:
        with self._lock:
            missing = self._target - len(self._ready) - self._fetching
            starting = max(0, min(missing, self._parallel - self._fetching))
            self._fetching += starting
        for _ in range(starting):
            threading.Thread(target=self._fetch_one, name="guest-token", daemon=True).start()

    def _fetch_one(self) -> None:
        try:
            token = self._fetch()
        except Exception as exc:  # the next acquire fetches in the foreground and reports it
            log.warning("fetching a guest token ahead failed: %s", exc)
            token = None
        with self._lock:
            self._fetching -= 1
            if token is not None:
                self._ready.append((time.monotonic(), token))
                self._filled = True
        if token is not None:
            self._fill_in_background()


def jwt_claims(token: str) -> dict:
    """The claims of a JWT's payload, read and never verified; {} if it has none."""
    parts = token.split(".")
    if len(parts) < 2:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def user_id_of(token: str) -> str:
    """The first non-empty id claim of a JWT's payload, or ``guest``."""
    claims = jwt_claims(token)
    for claim in USER_ID_CLAIMS:
        if claims.get(claim) not in (None, ""):
            return str(claims[claim])
    return "guest"


REDACTED_PREFIX = 6
# A prefix is shown only when it is a small share of the secret (at most 15%): enough
# to tell real keys (49 chars) and JWTs (about 190) apart, nothing of a short secret.
SHOWN_FROM_CHARS = 40
SHOWN_LENGTH_FROM_CHARS = 13


def redact(token: str) -> str:
    """A token as it may appear in logs: never whole, and of a short one nothing but
    its length (``0f3c9a…(49 chars)``, ``…(16 chars)``, ``…``)."""
    if len(token) >= SHOWN_FROM_CHARS:
        return f"{token[:REDACTED_PREFIX]}…({len(token)} chars)"
    return f"…({len(token)} chars)" if len(token) >= SHOWN_LENGTH_FROM_CHARS else "…"
