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

Guessing is limited (``key_attempts``): after 10 wrong keys from one address within a
minute (login form, Bearer or cookie), that address gets 429 for a minute, right key
or not. Each wrong key and each refusal is logged with the address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import unicodedata
from urllib.parse import unquote, urlsplit

from flask import Blueprint, Flask, current_app, redirect, request, url_for

from .context import resources
from .errors import ProxyError
from .key_attempts import KeyAttempts
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


def _presented() -> tuple[str, str]:
    """The Bearer key and the cookie this request carries (either may be empty)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return (given.strip() if scheme.lower() == "bearer" else ""), request.cookies.get(COOKIE, "")


def is_allowed(settings: Settings) -> bool:
    """Whether this request may see the operator pages. A wrong key or cookie counts as
    a guess; a blocked address gets ``TooManyWrongKeys`` whatever it sends."""
    key = settings.dashboard_key
    if not key:
        return True
    refuse_if_blocked()
    bearer, cookie = _presented()
    if (bearer and _same(bearer, key)) or (cookie and _same(cookie, cookie_value(key))):
        return True
    if bearer or cookie:
        count_wrong_key()
    return False


def _key_required() -> ProxyError:
    return ProxyError("This page needs DASHBOARD_KEY: log in at /dashboard/login or send "
                      "'Authorization: Bearer <DASHBOARD_KEY>'.", status=401, code="dashboard_key_required")


def protect(bp: Blueprint, *, public: tuple[str, ...] = (), browser_pages: tuple[str, ...] = ()) -> None:
    """Put every route of ``bp`` behind ``DASHBOARD_KEY``, except the ``public`` endpoints.
    A browser asking for one of the ``browser_pages`` (HTML) is sent to the login form;
    anything else (JSON, Prometheus text) gets the 401."""

    @bp.before_request
    def require_page_key():
        if request.endpoint in public:
            return None
        browser = request.endpoint in browser_pages
        try:
            if is_allowed(resources().settings):
                return None
        except TooManyWrongKeys:
            if not browser:
                raise
        if browser:  # the login form says what is wrong
            return redirect(url_for(LOGIN_ENDPOINT, next=request.full_path.rstrip("?")))
        raise _key_required()


LOGIN_ENDPOINT = "dashboard.login"


# ---- guessing ---------------------------------------------------------------------------

ATTEMPTS = "zto.key_attempts"


class TooManyWrongKeys(ProxyError):
    status = 429
    code = "too_many_wrong_keys"


def init_app(app: Flask, attempts: KeyAttempts | None = None) -> None:
    app.extensions[ATTEMPTS] = attempts or KeyAttempts()


def refuse_if_blocked() -> None:
    seconds = current_app.extensions[ATTEMPTS].blocked_for(request.remote_addr or "")
    if seconds:
        log.warning("DASHBOARD_KEY: refused %s %s: too many wrong keys, blocked for %.0f s more",
                    request.remote_addr, request.path, seconds)
        refusal = TooManyWrongKeys(f"Too many wrong DASHBOARD_KEY attempts from this address: try again in "
                                   f"{math.ceil(seconds)} s.")
        refusal.headers = {"Retry-After": str(math.ceil(seconds))}
        raise refusal


def count_wrong_key() -> None:
    attempts: KeyAttempts = current_app.extensions[ATTEMPTS]
    address = request.remote_addr or ""
    count = attempts.failed(address)
    log.warning("DASHBOARD_KEY: wrong key from %s on %s (%d within a minute%s)", address, request.path, count,
                "; now blocked" if attempts.blocked_for(address) else "")

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
