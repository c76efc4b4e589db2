"""Where Z.ai tokens come from.

``StaticTokens`` hands out the tokens of ``ZAI_TOKEN`` in turn. ``GuestTokens``
gets a fresh anonymous guest token for every conversation, so that guests never
share memory or a concurrency budget; fetching is the upstream client's job and is
passed in. Both offer ``another(failed)`` for the one retry after a 401, 429 or
concurrency error. ``user_id_of`` reads the user id from a JWT, unverified, as
Z.ai's front end does.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Callable
from typing import Protocol

USER_ID_CLAIMS = ("id", "user_id", "uid", "sub")


class TokenSource(Protocol):
    def acquire(self) -> str: ...

    def another(self, failed: str) -> str | None: ...


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

    def another(self, failed: str) -> str | None:
        if len(self._tokens) < 2:
            return None
        with self._lock:
            for _ in self._tokens:
                token = self._tokens[next(self._turn)]
                if token != failed:
                    return token
        return None


class GuestTokens:
    def __init__(self, fetch: Callable[[], str]) -> None:
        self._fetch = fetch

    def acquire(self) -> str:
        return self._fetch()

    def another(self, failed: str) -> str | None:
        return self._fetch()


def user_id_of(token: str) -> str:
    """The first non-empty id claim of a JWT's payload, or ``guest``."""
    parts = token.split(".")
    if len(parts) < 2:
        return "guest"
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError:
        return "guest"
    if isinstance(claims, dict):
        for claim in USER_ID_CLAIMS:
            if claims.get(claim) not in (None, ""):
                return str(claims[claim])
    return "guest"


def redact(token: str) -> str:
    """A token as it may appear in logs: never whole."""
    return f"{token[:6]}…({len(token)} chars)" if len(token) > 12 else "…"
