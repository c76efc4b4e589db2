"""The Redis step of ``zto doctor``: whether ``REDIS_URL`` works, when it is set.

The service connects to Redis lazily and keeps answering when it cannot, so a wrong
``REDIS_URL`` shows only as a dashboard saying "statistics unavailable". This step
connects as the service does (``redis.Redis.from_url``, no retries, a short timeout),
sends PING, and reads the statistics' keys (``zto:stats:``) without writing anything.
A refused connection, a database number Redis does not have, a missing or wrong
password or a user not allowed to read those keys fails with Redis's own message.
The URL is shown with its password replaced by ``***``, and the password is taken out
of every message.

Without ``REDIS_URL`` there is nothing to check; with several workers
(``WEB_CONCURRENCY``) and no ``REDIS_URL`` each worker keeps its own statistics, which
is a warning.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .stats_redis import PREFIX, TOTALS

TIMEOUT_S = 3.0
HIDDEN = "***"
MIN_HIDDEN_CHARS = 4  # shorter ones would mangle ordinary words; no Redis message quotes a password anyway


def passwords(url: str) -> list[str]:
    """The passwords ``url`` carries (in its user part, or as a ``password`` parameter), as
    they may be written, to take out of messages."""
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [value for name, value in parse_qsl(parts.query) if name == "password" and value]
    return [p for password in found for p in {password, unquote(password), quote(password, safe="")}
            if len(p) >= MIN_HIDDEN_CHARS]


def shown_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    url = re.sub(r"^([a-z]+://[^:/@]*):[^@/]*@", rf"\1:{HIDDEN}@", url)
    return re.sub(r"([?&]password=)[^&#]*", rf"\g<1>{HIDDEN}", url)


def _fix(exc: Exception) -> str:
    if isinstance(exc, redis.AuthenticationError) or "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
        return "set the password in REDIS_URL (redis://:password@host:6379/0, or user:password@ for an ACL user)"
    if "DB index" in str(exc):
        return "REDIS_URL's database number (the path: /0, /1...) must be below Redis's `databases` setting (16 by default)"
    if isinstance(exc, redis.ResponseError):  # e.g. NOPERM, WRONGTYPE
        return f"REDIS_URL's user must be allowed to read and write the keys {PREFIX}*, and nothing else may use them"
    return "check REDIS_URL's host and port, that Redis runs, and that this machine may connect to it"


def check_redis(doctor) -> bool:
    """One line for ``REDIS_URL`` (``doctor``: the running ``Doctor``); True unless it is
    set and fails."""
    settings, report = doctor.settings, doctor.report
    if not settings.redis_url:
        if settings.workers > 1:
            report.step("warn", "REDIS_URL", f"empty with WEB_CONCURRENCY={settings.workers}: each worker keeps its "
                        "own statistics and /dashboard shows one worker's share",
                        "set REDIS_URL for one view of every worker")
        return True
    url = settings.redis_url
    what = f"REDIS_URL {shown_url(url)}"
    timeout = doctor.budget.timeout(TIMEOUT_S)
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                      retry=Retry(NoBackoff(), 0))
    except ValueError as exc:
        return report.step("fail", what, f"not a Redis URL: {_hidden(str(exc), url)}",
                           "REDIS_URL=redis://host:6379/0 (or rediss://, unix://)")
    try:
        client.ping()
        total = client.hget(TOTALS, "total")
    except (redis.RedisError, OSError) as exc:
        return report.step("fail", what, f"{type(exc).__name__}: {_hidden(str(exc), url)}", _fix(exc))
    finally:
        client.close()
    held = f"the statistics of {int(total)} request(s)" if total is not None else "no statistics yet"
    return report.step("ok", what, f"PING answered; {PREFIX} holds {held}")


def _hidden(text: str, url: str) -> str:
    text = text.replace(url, shown_url(url))
    for password in sorted(passwords(url), key=len, reverse=True):
        text = text.replace(password, HIDDEN)
    return text
