"""The Z.ai client: the shared HTTP session, request building and signing, and the
translation of HTTP failures into zto's errors.

Every ``requests``/``urllib3`` exception of a call to the web chat is caught here and
re-raised as an ``UpstreamError`` (see ``errors.py``); nothing above the upstream
layer sees them. The session is made once per app: a pool as large as the number of
requests a worker runs at once (``Settings.concurrency``: its threads, or gevent's
worker connections), no
environment look-ups (``trust_env`` off; ``UPSTREAM_PROXY`` is explicit), and a
cookie jar that keeps nothing, so no guest's cookie ever reaches another.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from http import cookiejar
from urllib.parse import urlencode, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from .chat_request import ChatRequest
from .errors import UpstreamError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from .fe_version import FrontendVersion
from .settings import Settings
from .signing import hmac_signature, sha256_signature
from .tokens import GuestTokens, StaticTokens, TokenSource, redact, user_id_of

log = logging.getLogger(__name__)

GUEST_TOKEN_PATH = "/api/v1/auths/"
READ_SIZE = 65536
DRAIN_LIMIT = 256 * 1024  # bytes read past the answer's end to keep the connection
DRAIN_TIMEOUT_S = 0.05
CHINA_TIME = timezone(timedelta(hours=8))


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


def _detail_of(response: requests.Response) -> str:
    """What Z.ai said in an error answer, short."""
    text = response.text[:2000]
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


def rejection(status: int | None, detail: str, fe_version: str = "") -> UpstreamRejected:
    """The error a client sees for a Z.ai error answer or in-stream error event."""
    lowered = detail.lower()
    if status == 426 or "outdated" in lowered or "client version" in lowered:
        return UpstreamRejected(
            f"Z.ai rejected the front-end version {fe_version} as outdated ({detail}). Set FE_VERSION to "
            "the current prod-fe-X.Y.Z (it appears in chat.z.ai's page source), or keep FE_VERSION_DISCOVERY on.",
            code="upstream_version_rejected")
    if "signature" in lowered or "签名" in detail:
        return UpstreamRejected(
            f"Z.ai rejected the request signature ({detail}). Check SIGNATURE_SCHEME (hmac or sha256) "
            "and SIGNATURE_SECRET against the current front end.", code="upstream_signature_rejected")
    if status == 429 or "concurrency" in lowered or "too many" in lowered:
        return UpstreamRejected(
            f"Z.ai is rate-limiting this token ({detail}). Wait and retry; several tokens in ZAI_TOKEN "
            "spread the load.", status=429, code="upstream_rate_limited", retryable=True)
    if status == 401:
        return UpstreamRejected(
            f"Z.ai refused the token ({detail}). Check ZAI_TOKEN (it may have expired), or leave it "
            "empty to use anonymous guest tokens.", code="upstream_unauthorized", retryable=True)
    if status == 403:
        return UpstreamRejected(
            f"Z.ai refused this request ({detail}). Some models need a logged-in ZAI_TOKEN.",
            status=403, code="upstream_forbidden")
    if status == 405:
        return UpstreamRejected(
            f"Z.ai's firewall blocked the request ({detail}). Try another network or UPSTREAM_PROXY, "
            "or update UPSTREAM_USER_AGENT.", code="upstream_blocked")
    if status == 404:
        return UpstreamRejected(
            f"Z.ai has no such endpoint ({detail}). Check UPSTREAM_URL.", code="upstream_not_found")
    shown = f"{status}: {detail}" if status else detail
    return UpstreamRejected(f"Z.ai failed to answer ({shown}). Try again later.")


def _translate_exception(exc: Exception) -> UpstreamError:
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError)):
        return UpstreamTimeout("Z.ai did not answer in time (UPSTREAM_READ_TIMEOUT / UPSTREAM_CONNECT_TIMEOUT).")
    if isinstance(exc, requests.exceptions.ProxyError):
        return UpstreamUnavailable(f"Cannot reach Z.ai through UPSTREAM_PROXY ({type(exc).__name__}).")
    if isinstance(exc, requests.ConnectionError):
        return UpstreamUnavailable("Cannot connect to Z.ai (UPSTREAM_URL unreachable).")
    return UpstreamUnavailable(f"The connection to Z.ai broke ({type(exc).__name__}).")


class UpstreamResponse:
    """An open Z.ai answer stream. Iterate ``chunks()``; end with ``release()`` after a
    complete answer (the connection may be reused) or ``close()`` (it is dropped)."""

    def __init__(self, response: requests.Response, fe_version: str) -> None:
        self._response = response
        self.fe_version = fe_version  # the X-FE-Version it was asked with, for error messages
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
            raise _translate_exception(exc) from exc

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


class ZaiClient:
    def __init__(self, settings: Settings, session: requests.Session) -> None:
        self.settings = settings
        self.session = session
        origin = settings.upstream_origin
        self._origin = origin
        self._timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self._url_prefix = settings.upstream_url + ("&" if "?" in settings.upstream_url else "?")
        self.tokens: TokenSource = (
            StaticTokens(settings.zai_tokens) if settings.zai_tokens else GuestTokens(self.fetch_guest_token)
        )
        self.fe_version = FrontendVersion(
            settings.fe_version, self.fetch_landing_page if settings.fe_version_discovery else None,
            settings.fe_version_cache_s)
        host = urlsplit(origin).netloc
        self._browser_headers = {
            "Accept": "*/*",
            "Accept-Language": settings.accept_language,
            "User-Agent": settings.user_agent,
            "sec-ch-ua": settings.sec_ch_ua,
            "sec-ch-ua-mobile": "?0",
            "sec-ch-ua-platform": settings.sec_ch_ua_platform,
            "Sec-Fetch-Dest": "empty",
            "Sec-Fetch-Mode": "cors",
            "Sec-Fetch-Site": "same-origin",
            "Origin": origin,
        }
        # The fingerprint agrees with the identity headers: navigator.language(s) from
        # Accept-Language, the OS from sec-ch-ua-platform.
        languages = ",".join(tag.split(";")[0].strip() for tag in settings.accept_language.split(","))
        language = languages.split(",")[0]
        fingerprint = [
            ("version", "0.0.1"), ("platform", "web"), ("user_agent", settings.user_agent),
            ("language", language), ("languages", languages), ("timezone", "Asia/Shanghai"),
            ("cookie_enabled", "true"), ("screen_width", "1920"), ("screen_height", "1080"),
            ("screen_resolution", "1920x1080"), ("viewport_height", "945"), ("viewport_width", "1920"),
            ("viewport_size", "1920x945"), ("color_depth", "24"), ("pixel_ratio", "1"),
            ("host", host), ("hostname", host.split(":")[0]), ("protocol", urlsplit(origin).scheme + ":"),
            ("title", "Z.ai Chat - Free AI powered by GLM-4.6 & GLM-4.5"), ("timezone_offset", "-480"),
            ("is_mobile", "false"), ("is_touch", "false"), ("max_touch_points", "0"),
            ("browser_name", "Chrome"), ("os_name", settings.sec_ch_ua_platform.strip('"')),
        ]
        self._fingerprint_query = urlencode(fingerprint)  # the same for every request: encoded once

    # -- small calls -------------------------------------------------------------

    def _get(self, path: str) -> requests.Response:
        try:
            response = self.session.get(self._origin + path, headers=self._browser_headers, timeout=self._timeout)
        except requests.RequestException as exc:
            raise _translate_exception(exc) from exc
        if response.status_code != 200:
            raise rejection(response.status_code, _detail_of(response))
        return response

    def fetch_guest_token(self) -> str:
        response = self._get(GUEST_TOKEN_PATH)
        try:
            token = response.json()["token"]
        except (ValueError, KeyError, TypeError):
            raise UpstreamRejected("Z.ai's guest-token answer has no token.", code="upstream_bad_answer") from None
        if not isinstance(token, str) or not token:
            raise UpstreamRejected("Z.ai's guest-token answer has no token.", code="upstream_bad_answer")
        return token

    def fetch_landing_page(self) -> str:
        return self._get("/").text

    # -- the completion call -----------------------------------------------------

    def build_request(self, chat: ChatRequest, token: str) -> tuple[str, dict, bytes]:
        """(url with query, headers, body bytes) of a signed completion request."""
        now = time.time()
        timestamp = int(now * 1000)
        chat_id, message_id, request_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
        user_id = user_id_of(token)
        chat_url = f"{self._origin}/c/{chat_id}"
        query = "&".join((
            urlencode({
                "timestamp": timestamp, "requestId": request_id, "user_id": user_id,
                "token": token, "current_url": chat_url, "pathname": f"/c/{chat_id}",
            }),
            self._fingerprint_query,
            urlencode({
                "local_time": datetime.fromtimestamp(now, CHINA_TIME).isoformat(timespec="milliseconds"),
                "utc_time": formatdate(now, usegmt=True),
                "signature_timestamp": timestamp,
            }),
        ))
        body = {
            "stream": True,
            "model": chat.upstream_model,
            "messages": chat.messages,
            "signature_prompt": chat.prompt,
            "params": chat.params,
            "features": {
                "enable_thinking": chat.enable_thinking,
                "web_search": chat.web_search,
                "auto_web_search": chat.web_search,
            },
            "background_tasks": {"title_generation": False, "tags_generation": False},
            "chat_id": chat_id,
            "id": message_id,
            "mcp_servers": [],
            "tool_servers": [],
            "model_item": {"id": chat.upstream_model, "name": chat.model, "owned_by": "openai"},
            "variables": {
                "{{USER_NAME}}": "User",
                "{{USER_LOCATION}}": "Unknown",
                "{{CURRENT_DATETIME}}": datetime.fromtimestamp(now, CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S"),
            },
        }
        body_bytes = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        if self.settings.signature_scheme == "sha256":
            signature = sha256_signature(body_bytes)
        else:
            signature = hmac_signature(
                self.settings.signature_secret, timestamp_ms=timestamp, request_id=request_id,
                user_id=user_id, prompt=chat.prompt)
        headers = {
            **self._browser_headers,
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "Referer": chat_url,
            "X-FE-Version": self.fe_version.current(),
            "X-Signature": signature,
        }
        return self._url_prefix + query, headers, body_bytes

    def open(self, chat: ChatRequest, token: str) -> UpstreamResponse:
        """Send a completion request; return its stream once Z.ai answered 200."""
        url, headers, body = self.build_request(chat, token)
        log.debug("upstream call model=%s token=%s", chat.upstream_model, redact(token))
        try:
            response = self.session.post(url, data=body, headers=headers, stream=True, timeout=self._timeout)
        except requests.RequestException as exc:
            raise _translate_exception(exc) from exc
        if response.status_code != 200:
            try:
                error = rejection(response.status_code, _detail_of(response), headers["X-FE-Version"])
            except requests.RequestException as exc:
                error = _translate_exception(exc)
            finally:
                response.close()
            raise error
        return UpstreamResponse(response, headers["X-FE-Version"])
