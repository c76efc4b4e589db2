"""The front-end version (``X-FE-Version``) Z.ai expects, discovered and cached.

Z.ai answers 426 to front ends it considers outdated. Its landing page names the
current build (``prod-fe-X.Y.Z``) in its asset paths, so zto reads it from there,
keeps it for ``FE_VERSION_CACHE_S``, and never goes below the configured
``FE_VERSION``. The landing page can be slow (seconds, up to the upstream timeouts), so
nobody waits for it: ``current`` answers at once with the last known version (at first
``FE_VERSION``) and starts one look in the background when that is stale. After a 426,
``refreshed`` starts a look (or joins the one running) and waits for it at most a few
seconds, so the one retry can use what it found. One look runs at a time.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

VERSION_PATTERN = re.compile(r"prod-fe-(\d+)\.(\d+)\.(\d+)")
RETRY_AFTER_FAILURE_S = 300.0
REFRESH_WAIT_S = 3.0  # how long the retry after a 426 waits for the landing page


def version_key(version: str) -> tuple[int, ...]:
    match = VERSION_PATTERN.fullmatch(version)
    return tuple(int(n) for n in match.groups()) if match else ()


def newest_version(page: str) -> str | None:
    """The highest ``prod-fe-X.Y.Z`` on a page, compared numerically."""
    found = {m.group(0) for m in VERSION_PATTERN.finditer(page)}
    return max(found, key=version_key) if found else None


class FrontendVersion:
    def __init__(self, fallback: str, fetch_page: Callable[[], str] | None, ttl_s: float) -> None:
        self._fallback = fallback
        self._fetch_page = fetch_page
        self._ttl_s = ttl_s
        self._value = fallback
        self._expires = 0.0
        self._lock = threading.Lock()
        self._looking: threading.Event | None = None  # set when the running look ends

    def current(self) -> str:
        """The version to send now; a stale one starts a look in the background."""
        if self._fetch_page is not None and time.monotonic() >= self._expires:
            self._start_look()
        return self._value

    def refreshed(self, timeout_s: float = REFRESH_WAIT_S) -> str:
        """Z.ai said the version is outdated: look again, waiting at most ``timeout_s``;
        the version then (the old one if the look is not done)."""
        if self._fetch_page is None:
            return self._value
        self._start_look().wait(timeout_s)
        return self._value

    def join(self, timeout_s: float) -> None:
        """Wait at most ``timeout_s`` for the look running now, if any."""
        looking = self._looking
        if looking is not None:
            looking.wait(timeout_s)

    def _start_look(self) -> threading.Event:
        with self._lock:
            if self._looking is not None:
                return self._looking
            done = self._looking = threading.Event()
        threading.Thread(target=self._look, args=(done,), name="fe-version", daemon=True).start()
        return done

    def _look(self, done: threading.Event) -> None:
        try:
            self._refresh()
        finally:
            with self._lock:
                self._looking = None
            done.set()

    def _refresh(self) -> None:
        try:
            found = newest_version(self._fetch_page())
        except Exception as exc:  # any failure: keep what we have, look again later
            log.warning("front-end version discovery failed (%s); using %s", exc, self._value)
            self._expires = time.monotonic() + min(self._ttl_s, RETRY_AFTER_FAILURE_S)
            return
        if found is None:
            log.warning("Z.ai's landing page names no front-end version; using %s", self._fallback)
        candidates = [v for v in (found, self._fallback) if v]
        self._value = max(candidates, key=version_key)
        self._expires = time.monotonic() + self._ttl_s
        log.info("front-end version: %s", self._value)
