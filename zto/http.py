"""HTTP to Z.ai, shared by both upstreams: the pooled session, the streamed body, and
the translation of ``requests`` failures into zto's errors.

This is the only module that catches ``requests``/``urllib3`` exceptions: the web
chat (``web_chat.py``) and the official API client call ``send`` and read
``StreamedBody``, and see only ``UpstreamError``s (see ``errors.py``). The session is
made once per app: a pool as large as the worker's concurrency, no environment
look-ups (``trust_env`` off; ``UPSTREAM_PROXY`` is explicit), and a cookie jar that
keeps nothing, so no guest's cookie ever reaches another.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from http import cookiejar

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from .errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from .settings import Settings

READ_SIZE = 65536
DRAIN_LIMIT = 256 * 1024  # bytes read past the answer's end to keep the connection
DRAIN_TIMEOUT_S = 0.05


class _NoCookies(cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False


def build_session(settings: Settings) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(_NoCookies())
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(settings.concurrency, 10), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if settings.upstream_proxy:
        session.proxies = {"http": settings.upstream_proxy, "https": settings.upstream_proxy}
    return session


def translate_exception(exc: Exception, upstream: str = "Z.ai", url_setting: str = "UPSTREAM_URL") -> UpstreamError:
    """The error a client sees for a failed exchange with ``upstream``."""
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError)):
        return UpstreamTimeout(f"{upstream} did not answer in time (UPSTREAM_READ_TIMEOUT / UPSTREAM_CONNECT_TIMEOUT).")
    if isinstance(exc, requests.exceptions.ProxyError):
        return UpstreamUnavailable(f"Cannot reach {upstream} through UPSTREAM_PROXY ({type(exc).__name__}).")
    if isinstance(exc, requests.ConnectionError):
        return UpstreamUnavailable(f"Cannot connect to {upstream} ({url_setting} unreachable).")
    return UpstreamUnavailable(f"The connection to {upstream} broke ({type(exc).__name__}).")


def send(session: requests.Session, method: str, url: str, *, upstream: str = "Z.ai",
         url_setting: str = "UPSTREAM_URL", **kwargs) -> requests.Response:
    """``session.request``, with failures translated."""
    try:
        return session.request(method, url, **kwargs)
    except requests.RequestException as exc:
        raise translate_exception(exc, upstream, url_setting) from exc


def error_text(response: requests.Response, limit: int = 2000) -> str:
    """The start of an error answer's body, then the response is closed."""
    try:
        return response.text[:limit]
    except requests.RequestException:
        return ""
    finally:
        response.close()


def detail_of(text: str) -> str:
    """What an upstream said in an error body, short."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("message") or body.get("error") or body
        if isinstance(detail, dict):
            detail = detail.get("detail") or detail.get("message") or detail
        return str(detail)[:300]
    if "<html" in text.lower():
        title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
        return f"an HTML page{': ' + title.group(1).strip() if title else ''}"
    return text.strip()[:300] or "no details"


class StreamedBody:
    """An open answer body, read as it arrives. Iterate ``chunks()``; end with
    ``release()`` after a complete answer (the connection may be reused) or ``close()``
    (it is dropped)."""

    def __init__(self, response: requests.Response, upstream: str = "Z.ai") -> None:
        self._response = response
        self._upstream = upstream
        # One iterator for the whole body: abandoning urllib3's chunk reader halfway
        # closes the connection, so release() must go on with the same one.
        self._chunks = self._read()

    def chunks(self) -> Iterator[bytes]:
        return self._chunks

    def _read(self) -> Iterator[bytes]:
        raw = self._response.raw
        try:
            if raw.chunked and raw.supports_chunked_reads():
                yield from raw.read_chunked(decode_content=True)
            else:
                while data := raw.read1(READ_SIZE, decode_content=True):
                    yield data
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise translate_exception(exc, self._upstream) from exc

    def release(self) -> None:
        """Read what is left of the body, if it comes at once, so that the connection
        goes back to the pool; anything slower than ``DRAIN_TIMEOUT_S`` drops it."""
        sock = getattr(self._response.raw.connection, "sock", None)
        try:
            if sock is not None:
                sock.settimeout(DRAIN_TIMEOUT_S)  # urllib3 sets it again for the next request
            read = 0
            for data in self._chunks:
                read += len(data)
                if read > DRAIN_LIMIT:
                    break
        except (UpstreamError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self._chunks.close()
        self._response.close()
