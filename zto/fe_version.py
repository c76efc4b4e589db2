"""The front-end version (``X-FE-Version``) Z.ai expects, discovered and cached.

Z.ai answers 426 to front ends it considers outdated. Its landing page names the
current build (``prod-fe-X.Y.Z``) in its asset paths, so zto reads it from there,
keeps it for ``FE_VERSION_CACHE_S``, and never goes below the configured
``FE_VERSION``. The first caller waits for the first look; later ones get the
cached value while a background thread refreshes a stale one. A 426 drops the cache.
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
        self._refreshing = False

    def current(self) -> str:
        if self._fetch_page is None or time.monotonic() < self._expires:
            return self._value
        if self._expires == 0.0:
            with self._lock:
                if self._expires == 0.0:
                    self._refresh()
            return self._value
        with self._lock:
            if self._refreshing:
                return self._value
            self._refreshing = True
        threading.Thread(target=self._refresh_in_background, daemon=True).start()
        return self._value

    def invalidate(self) -> None:
        """Z.ai said our version is outdated: look again on the next request."""
        self._expires = 0.0

    def _refresh_in_background(self) -> None:
        try:
            self._refresh()
        finally:
            self._refreshing = False

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
