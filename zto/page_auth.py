"""The optional key in front of the operator pages (/dashboard, /metrics), and the
security headers of every HTML page.

With ``DASHBOARD_KEY`` empty those pages are public (start-up warns). With it set, a
request gets in with ``Authorization: Bearer <key>`` (scripts, Prometheus) or with the
cookie the login form sets (browsers). The cookie holds an HMAC of the key, never the
key itself; it is HttpOnly and SameSite=Strict. Every comparison is constant-time, and
the key is never logged.

``protect(bp, ...)`` makes the check a blueprint's ``before_request``, so every route
of an operator page is behind the key, including the ones added later; only the
endpoints named public (the login form itself) are not.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import unicodedata
from urllib.parse import unquote, urlsplit

from flask import Blueprint, redirect, request, url_for

from .context import resources
from .errors import ProxyError
from .settings import Settings

log = logging.getLogger(__name__)

COOKIE = "zto_dashboard"
COOKIE_MAX_AGE_S = 30 * 24 * 3600


def cookie_value(key: str) -> str:
    """What the login cookie holds for ``key``: proof of the key, not the key."""
    return hmac.new(key.encode(), b"zto dashboard cookie v1", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def key_matches(settings: Settings, given: str) -> bool:
    return bool(settings.dashboard_key) and _same(given, settings.dashboard_key)


def is_allowed(settings: Settings) -> bool:
    """Whether this request may see the operator pages."""
    key = settings.dashboard_key
    if not key:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given.strip() and _same(given.strip(), key):
        return True
    return _same(request.cookies.get(COOKIE, ""), cookie_value(key))


def require(settings: Settings) -> None:
    """Raise a 401 (OpenAI's error shape) unless the request may see the pages."""
    if not is_allowed(settings):
        raise ProxyError("This page needs DASHBOARD_KEY: log in at /dashboard/login or send "
                         "'Authorization: Bearer <DASHBOARD_KEY>'.", status=401, code="dashboard_key_required")


def protect(bp: Blueprint, *, public: tuple[str, ...] = (), browser_pages: tuple[str, ...] = ()) -> None:
    """Put every route of ``bp`` behind ``DASHBOARD_KEY``, except the ``public`` endpoints.
    A browser asking for one of the ``browser_pages`` (HTML) is sent to the login form;
    anything else (JSON, Prometheus text) gets the 401."""

    @bp.before_request
    def require_page_key():
        if request.endpoint in public or is_allowed(resources().settings):
            return None
        if request.endpoint in browser_pages:
            return redirect(url_for(LOGIN_ENDPOINT, next=request.full_path.rstrip("?")))
        return require(resources().settings)


LOGIN_ENDPOINT = "dashboard.login"

# Where the login form may send a browser back to: these pages, and paths under them.
NEXT_PREFIXES = ("/dashboard", "/metrics")


def _plain_character(char: str) -> bool:
    """Not a control, format or separator character (tab, CR, LF, NUL, spaces...), nor a
    backslash: browsers drop or rewrite those, so that a tab in ``/<tab>/evil`` makes it
    ``//evil``, and a CR or LF cannot go into a header."""
    return char != "\\" and not unicodedata.category(char).startswith(("C", "Z"))


def safe_next(target: str | None, default: str = "/dashboard") -> str:
    """Where to go back to after logging in: ``target`` if it is a path on this server under
    ``NEXT_PREFIXES``, else ``default``. Never another site (an open redirect), never a
    header-breaking character."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if not all(_plain_character(char) for char in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    if any(unquote(segment) in (".", "..") for segment in parts.path.split("/")):
        return default
    if not any(parts.path == prefix or parts.path.startswith(prefix + "/") for prefix in NEXT_PREFIXES):
        return default
    return target


def warn_if_public(settings: Settings) -> None:
    pages = [p for p, on in (("/dashboard", settings.dashboard_enabled), ("/metrics", settings.metrics_enabled)) if on]
    if pages and not settings.dashboard_key:
        log.warning("DASHBOARD_KEY is not set: %s %s public; anyone who can reach this server sees its traffic.",
                    " and ".join(pages), "is" if len(pages) == 1 else "are")


# The pages load only their own files: no CDN, no web fonts, no inline script.
PAGE_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                                "form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def add_page_headers(response):
    """The ``after_request`` hook of each blueprint that serves pages:
    ``bp.after_request(page_auth.add_page_headers)``."""
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
