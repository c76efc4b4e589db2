"""Z.ai's web chat (chat.z.ai) as an ``Upstream``: tokens, the front-end version, the
completion call with its one retry, and the answer read through the assembler.

``WebChat.start`` picks a token, sends the signed request (``web_request.py``) and
reads ahead until Z.ai starts writing (``WebAnswer.prime``), so that an error Z.ai
sends first becomes a proper HTTP error status. A 401, 429 or concurrency error is
retried once with another token, and a 426 once with the front-end version read
again, before the client has seen anything. Refusals another token cannot fix carry
``fallback``: the router (``upstreams.py``) may then ask the next upstream. Since
May 2026 Z.ai refuses every answer without a browser's captcha proof, which zto
cannot produce: that refusal is named as such (``upstream_captcha_required``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import requests

from .chat_request import ChatRequest, split_model_suffixes
from .errors import InvalidRequest, UpstreamError, UpstreamRejected
from .fe_version import FrontendVersion
from .http import StreamedBody, detail_of, error_text, open_stream, send
from .settings import Settings
from .sse import SSEDecoder, parse_event
from .token_estimate import estimated_usage
from .tokens import GuestTokens, StaticTokens, TokenSource, redact
from .translate import AnswerAssembler, is_captcha_refusal
from .upstreams import TICK, Piece, log_failure
from .web_request import WebRequestBuilder

if TYPE_CHECKING:
    from .metrics import Metrics

log = logging.getLogger(__name__)
new_piece = tuple.__new__

GUEST_TOKEN_PATH = "/api/v1/auths/"
CAPTCHA_CODE = "upstream_captcha_required"
CAPTCHA_MESSAGE = (
    "Z.ai's web chat now requires human verification (a captcha) on every answer, which zto cannot "
    "provide. Use Z.ai's official API instead: set ZAI_API_KEY to a key from the Z.ai console "
    "(glm-4.5-flash is free), or UPSTREAMS=web,api to fall back to it when the web chat refuses.")
# The same refusal on a server whose official API is configured: its advice is followed already.
CAPTCHA_MESSAGE_WITH_API = (
    "Z.ai's web chat now requires human verification (a captcha) on every answer, which zto cannot "
    "provide; this server's official API answers in its place for the models it serves (GET /v1/models), "
    "and the server's log says why it did not answer this request.")
NO_USER_MESSAGE = (
    "Z.ai's web chat needs a user message to answer (it signs the last one): add one, or ask a server "
    "with Z.ai's official API (ZAI_API_KEY), which answers an assistant turn alone.")


def captcha_rejection() -> UpstreamRejected:
    return UpstreamRejected(CAPTCHA_MESSAGE, status=403, code=CAPTCHA_CODE, fallback=True)


def rejection(status: int | None, detail: str, fe_version: str = "", *, anonymous: bool = False) -> UpstreamRejected:
    """The error a client sees for a Z.ai error answer or in-stream error event;
    ``anonymous``: the token was a guest's (ZAI_TOKEN is empty)."""
    lowered = detail.lower()
    if status == 426 or "outdated" in lowered or "client version" in lowered:
        return UpstreamRejected(
            f"Z.ai rejected the front-end version {fe_version} as outdated ({detail}). Set FE_VERSION to "
            "the current prod-fe-X.Y.Z (it appears in chat.z.ai's page source), or keep FE_VERSION_DISCOVERY on.",
            code="upstream_version_rejected", fallback=True)
    if "signature" in lowered or "签名" in detail:
        return UpstreamRejected(
            f"Z.ai rejected the request signature ({detail}). Check SIGNATURE_SCHEME (hmac or sha256) "
            "and SIGNATURE_SECRET against the current front end.", code="upstream_signature_rejected", fallback=True)
    if status == 429 or "concurrency" in lowered or "too many" in lowered:
        return UpstreamRejected(
            f"Z.ai is rate-limiting this token ({detail}). Wait and retry; several tokens in ZAI_TOKEN "
            "spread the load.", status=429, code="upstream_rate_limited", retryable=True)
    if status == 401 and anonymous:
        return UpstreamRejected(
            f"Z.ai refused the anonymous guest token ({detail}). Z.ai may be limiting guests from this "
            "server's address: try again later, or set ZAI_TOKEN to a logged-in token (or ZAI_API_KEY for "
            "the official API).", code="upstream_unauthorized", retryable=True)
    if status == 401:
        return UpstreamRejected(
            f"Z.ai refused the token ({detail}). Check ZAI_TOKEN (it may have expired), or leave it "
            "empty to use anonymous guest tokens.", code="upstream_unauthorized", retryable=True)
    if status == 403:
        return UpstreamRejected(
            f"Z.ai refused this request ({detail}). Some models need a logged-in ZAI_TOKEN.",
            status=403, code="upstream_forbidden", fallback=True)
    if status == 405:
        return UpstreamRejected(
            f"Z.ai's firewall blocked the request ({detail}). Try another network or UPSTREAM_PROXY, "
            "or update UPSTREAM_USER_AGENT.", code="upstream_blocked", fallback=True)
    if status == 404:
        return UpstreamRejected(
            f"Z.ai has no such endpoint ({detail}). Check UPSTREAM_URL.", code="upstream_not_found")
    shown = f"{status}: {detail}" if status else detail
    return UpstreamRejected(f"Z.ai failed to answer ({shown}). Try again later.")


def http_rejection(status: int, text: str, fe_version: str = "", *, anonymous: bool = False) -> UpstreamRejected:
    """The error for an HTTP error answer: its body may be the captcha refusal."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        nested = [body, body.get("error"), body.get("detail"), body.get("data")]
        if any(isinstance(level, dict) and is_captcha_refusal(level) for level in nested):
            return captcha_rejection()
    return rejection(status, detail_of(text), fe_version, anonymous=anonymous)


class WebAnswer:
    """An answer being read from Z.ai's web chat. Pieces are the new reasoning and
    answer text of each network read (events that arrived together leave as one
    piece); a read that shows nothing yet is a tick."""

    upstream = "web"

    def __init__(self, body: StreamedBody, fe_version: str, release: Callable[[], None], *,
                 anonymous: bool = False, prompt: object = None) -> None:
        self.fell_back = False
        self._prompt = prompt  # what was sent, to estimate the usage Z.ai may not send
        self.fe_version = fe_version  # the X-FE-Version it was asked with, for error messages
        self.anonymous = anonymous  # a guest token: error messages must not talk about ZAI_TOKEN's value
        self._body = body
        self._release = release  # called once on close: the token is no longer in use
        self._assembler = AnswerAssembler()
        self._reader = self._read()
        self._ahead: list[Piece] = []
        self._shown = False

    @property
    def usage(self) -> dict | None:
        """Z.ai's usage, or, when it sent none, an estimate (``token_estimate``)."""
        if self._assembler.usage is not None:
            return self._assembler.usage
        return estimated_usage(self._prompt, self._assembler.raw_text())

    @property
    def finish_reason(self) -> str:
        return "stop"

    def prime(self) -> None:
        """Read until Z.ai has started writing the message, raising the error it sent
        instead, so that refusals and empty answers become HTTP errors.

        It stops at the first text Z.ai writes even if that shows nothing yet: waiting
        for visible text would hold back the headers through a long hidden reasoning.
        """
        for piece in self._reader:
            self._ahead.append(piece)
            if self._assembler.started:
                return

    def pieces(self) -> Iterator[Piece]:
        yield from self._ahead
        self._ahead = []
        yield from self._reader

    def close(self) -> None:
        self._reader.close()
        if self._assembler.done and self._assembler.error is None:
            self._body.release()
        else:
            self._body.close()
        release, self._release = self._release, None
        if release is not None:
            release()

    def _read(self) -> Iterator[Piece]:
        decoder, assembler = SSEDecoder(), self._assembler
        for data in self._body.chunks():
            # Events that arrived together leave as one piece: one chunk to encode and write;
            # where the answer starts after the reasoning (or the reverse), as two, in order.
            reasoning = answer = ""
            for payload in decoder.feed(data):
                event = parse_event(payload)
                if event is None:
                    continue
                more_reasoning, more_answer = assembler.feed(event)
                if (more_reasoning and answer) or (more_answer and reasoning):
                    self._shown = True
                    yield Piece(reasoning, answer)
                    reasoning = answer = ""
                reasoning += more_reasoning
                answer += more_answer
                if assembler.error is not None or assembler.done:
                    break
            if reasoning or answer:
                self._shown = True
                yield new_piece(Piece, (reasoning, answer, ()))  # Piece(reasoning, answer), at C speed: once per read
            elif assembler.error is None:
                yield TICK  # Z.ai sent something that shows nothing yet
            if assembler.error is not None:
                raise self._failure()
            if assembler.done:
                break
        else:
            for payload in decoder.close():
                event = parse_event(payload)
                if event is not None:
                    assembler.feed(event)
            if assembler.error is not None:
                raise self._failure()
        reasoning, answer = assembler.finish()
        if reasoning or answer:
            self._shown = True
            yield Piece(reasoning, answer)
        if not self._shown:
            raise UpstreamRejected(
                "Z.ai ended the answer without any text. Try again; if it persists, check the model name "
                "and ZAI_TOKEN.", code="upstream_empty_answer")

    def _failure(self) -> UpstreamRejected:
        failure = self._assembler.error
        if failure.captcha:
            return captcha_rejection()
        if failure.code == 426 or "outdated" in failure.message.lower():
            log.warning("Z.ai says front-end version %s is outdated", self.fe_version)
        return rejection(failure.code, failure.message, self.fe_version, anonymous=self.anonymous)


def has_user_message(chat: ChatRequest) -> bool:
    """Whether the web chat has a prompt to sign: a user message, or a tool result (sent
    as one)."""
    return any(message["role"] in ("user", "tool") for message in chat.messages)


class WebChat:
    """The web chat upstream: one per app."""

    name = "web"

    def __init__(self, settings: Settings, session: requests.Session, metrics: Metrics) -> None:
        self.settings = settings
        self.session = session
        self.metrics = metrics
        self.requests = WebRequestBuilder(settings)
        self._timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self.tokens: TokenSource = (
            StaticTokens(settings.zai_tokens) if settings.zai_tokens else GuestTokens(self.fetch_guest_token)
        )
        self._token_kind = "static" if settings.zai_tokens else "guest"
        self._model_names = frozenset(name.lower() for name in settings.models)
        self._api_configured = "api" in settings.upstream_order
        self.fe_version = FrontendVersion(
            settings.fe_version, self.fetch_landing_page if settings.fe_version_discovery else None,
            settings.fe_version_cache_s)

    def models(self) -> list[str]:
        return list(self.settings.models)

    def serves(self, model: str) -> bool:
        name, _, _ = split_model_suffixes(model)
        return name.lower() in self._model_names

    def drops(self, chat: ChatRequest) -> str | None:
        return None

    def unsupported(self, chat: ChatRequest) -> str | None:
        if not has_user_message(chat):
            return NO_USER_MESSAGE
        if chat.tools:
            return "Z.ai's web chat cannot call tools: the request was answered without them"
        if chat.has_images:
            return "Z.ai's web chat may not read image parts (the official API's GLM-4.6V does): they were sent as they are"
        return None

    # -- small calls -------------------------------------------------------------

    def _get(self, path: str) -> requests.Response:
        response = send(self.session, "GET", self.requests.origin + path,
                        headers=self.requests.browser_headers, timeout=self._timeout)
        if response.status_code != 200:
            raise http_rejection(response.status_code, error_text(response), anonymous=not self.settings.zai_tokens)
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

    def open(self, chat: ChatRequest, token: str, fe_version: str) -> WebAnswer:
        """Send a completion request; return its answer once Z.ai answered 200."""
        url, headers, body = self.requests.build(chat, token, fe_version)
        log.debug("upstream call model=%s token=%s", chat.model, redact(token))
        # The URL is encoded by the builder already: sent as it is (see http.py).
        response = open_stream(self.session, "POST", url, headers, body, timeout=self._timeout)
        if response.status_code != 200:
            raise http_rejection(response.status_code, error_text(response), fe_version,
                                 anonymous=not self.settings.zai_tokens)
        return WebAnswer(StreamedBody(response), fe_version, self.metrics.upstream_opened(self._token_kind),
                         anonymous=not self.settings.zai_tokens, prompt=chat.messages)

    def start(self, chat: ChatRequest) -> WebAnswer:
        """Open the answer and prime it: retried once with another token on 401/429,
        once with the front-end version read again on 426."""
        if not has_user_message(chat):
            raise InvalidRequest(NO_USER_MESSAGE, param="messages")
        try:
            token = self.tokens.acquire()
        except UpstreamError as error:
            self.metrics.upstream_error(error.code)
            raise
        for attempt in range(2):
            answer = None
            fe_version = self.fe_version.current()
            try:
                answer = self.open(chat, token, fe_version)
                answer.prime()
                return answer
            except BaseException as error:
                if answer is not None:
                    answer.close()
                if not isinstance(error, UpstreamError):
                    raise
                self.metrics.upstream_error(error.code)
                if error.code == CAPTCHA_CODE and self._api_configured:
                    error.message = CAPTCHA_MESSAGE_WITH_API
                retry_token = self._retry_token(error, token, fe_version) if attempt == 0 else None
                if retry_token is None:
                    if isinstance(error, UpstreamRejected) and error.retryable:
                        error.fallback = True  # the one retry is spent: another upstream may still answer
                    raise
                token = retry_token
        raise AssertionError("unreachable")

    def _retry_token(self, error: UpstreamError, token: str, fe_version: str) -> str | None:
        """The token to try once more with, or None if trying again cannot help."""
        if error.code == "upstream_version_rejected":
            newer = self.fe_version.refreshed()
            if newer == fe_version:
                return None
            log_failure(self.name, error, f"retrying with front-end version {newer}")
            return token
        if not (isinstance(error, UpstreamRejected) and error.retryable):
            return None
        replacement = self.tokens.another(token, unauthorized=error.code == "upstream_unauthorized")
        if replacement is not None:
            log_failure(self.name, error, "retrying with another token")
        return replacement
