"""The upstream steps of ``zto doctor``: the web chat and the official API, each asked
a real question through the service's own upstream client.

Web chat: the landing page and the front-end version it names (the one the service
would send); the guest token, or each ``ZAI_TOKEN`` with its expiry read from the JWT
(never verified); then a one-word completion with each usable token, through
``WebChat`` built for exactly that token and version, so that no second token or
second look at the page hides what Z.ai said. A refusal every token gets alike
(captcha, 426, signature, firewall) ends the web steps.

Official API: each key of ``ZAI_API_KEY`` alone, through ``OfficialUpstream``, with a
one-token completion on the default model (``API_MODEL_MAP``'s id for
``MODEL_NAME``), named as working, bad key, no balance, rate-limited or unknown model.

Each check takes the running ``Doctor`` (its ``settings``, ``report``, ``budget`` and
``check_origin``) and answers whether the upstream answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from .doctor_report import OutOfTime, date, read_until, shown, span
from .errors import UpstreamError
from .tokens import jwt_claims, redact, user_id_of

if TYPE_CHECKING:
    import requests

    from .chat_request import ChatRequest
    from .settings import Settings
    from .web_chat import WebChat

PROMPT = "Reply with one word: ready"
# Web refusals that every token gets alike: the next token would tell nothing new.
SAME_FOR_EVERY_TOKEN = ("upstream_captcha_required", "upstream_version_rejected", "upstream_signature_rejected",
                        "upstream_blocked", "upstream_not_found", "upstream_unavailable", "upstream_timeout")
WEB_OUTCOMES = {
    "upstream_captcha_required": "captcha",
    "upstream_forbidden": "refused for this user level (403)",
    "upstream_version_rejected": "front-end version rejected (426)",
    "upstream_signature_rejected": "signature rejected",
    "upstream_blocked": "firewall (405)",
    "upstream_unauthorized": "token refused (401)",
    "upstream_rate_limited": "rate-limited (429)",
    "upstream_timeout": "no answer in time",
    "upstream_unavailable": "connection failed",
    "upstream_empty_answer": "empty answer",
}
FREE_MODEL = ("GLM-4.5-Flash", "glm-4.5-flash")
# Where a logged-in user finds their token (the README says the same).
TOKEN_HOWTO = ("in a browser logged in to chat.z.ai, F12 → Application → Local Storage → https://chat.z.ai → token, "
               "or F12 → Network → any /api/ request → its Authorization: Bearer header")


def one_word_chat(settings: Settings, **body) -> ChatRequest:
    """The smallest real question, built as the service builds a client's request."""
    from .chat_request import build_chat_request

    return build_chat_request({"model": settings.model_name, "messages": [{"role": "user", "content": PROMPT}],
                               "stream": True, "enable_thinking": False, **body}, settings=settings)


# ---- the web chat -----------------------------------------------------------------------

def _web_chat(doctor, session: requests.Session, timeout: float, **changes) -> WebChat:
    """The service's web-chat upstream, with this step's timeout and ``changes``."""
    from .metrics import Metrics
    from .web_chat import WebChat

    settings = replace(doctor.settings, connect_timeout_s=timeout, read_timeout_s=timeout, **changes)
    return WebChat(settings, session, Metrics())  # counted apart from any running service


def check_web(doctor) -> bool:
    from .http import build_session

    if not doctor.check_origin(doctor.settings.upstream_url, "UPSTREAM_URL"):
        doctor.report.step("fail", "web chat", "not checked further: its origin is unreachable")
        return False
    session = build_session(doctor.settings)
    try:
        version = _landing_page(doctor, session)
        return _ask_each(doctor, [(label, partial(_web_completion, doctor, session, version, label, token))
                                  for label, token in _web_tokens(doctor, session)], stop_after=SAME_FOR_EVERY_TOKEN)
    finally:
        session.close()


def _ask_each(doctor, questions: list[tuple[str, Callable[[], str]]], stop_after: tuple[str, ...] = ()) -> bool:
    """Ask each (label, ask) in turn, even after one answered: the report is for each
    token or key. True if one answered; running out of time after that is no failure."""
    answered = False
    for label, ask in questions:
        try:
            outcome = ask()
        except OutOfTime:
            if not answered:
                raise
            doctor.report.step("warn", f"{label} and later", "not asked: out of time")
            break
        answered = answered or outcome == "answered"
        if outcome in stop_after:
            break
    return answered


def _landing_page(doctor, session: requests.Session) -> str:
    """Check the landing page; the front-end version the service would send."""
    from .fe_version import newest_version, version_key

    s, report = doctor.settings, doctor.report
    what = f"web landing page {s.upstream_origin}/"
    status = "fail" if s.fe_version_discovery else "warn"
    fallback = f"FE_VERSION (now {s.fe_version}) is sent instead; keep it current by hand"
    try:
        found = newest_version(_web_chat(doctor, session, doctor.budget.timeout()).fetch_landing_page())
    except UpstreamError as exc:
        report.step(status, what, f"unavailable: {exc.message}", fallback)
        return s.fe_version
    if found is None:
        report.step(status, what, "names no prod-fe-X.Y.Z front-end version", fallback)
        return s.fe_version
    if not s.fe_version_discovery:
        if version_key(found) > version_key(s.fe_version):
            report.step("warn", what, f"names {found}, newer than FE_VERSION={s.fe_version}",
                        f"FE_VERSION={found}, or FE_VERSION_DISCOVERY=true")
        else:
            report.step("ok", what, f"names {found}; FE_VERSION={s.fe_version} is sent")
        return s.fe_version
    version = max((found, s.fe_version), key=version_key)
    report.step("ok", what, f"front-end version {found}; {version} is sent")
    return version


def _web_tokens(doctor, session: requests.Session) -> list[tuple[str, str]]:
    """(label, token) of the tokens a completion is tried with."""
    report = doctor.report
    if not doctor.settings.zai_tokens:
        try:
            token = _web_chat(doctor, session, doctor.budget.timeout()).fetch_guest_token()
        except UpstreamError as exc:
            report.step("fail", "web guest token", f"not given: {exc.message}",
                        "set ZAI_TOKEN to a logged-in token, or use the official API (ZAI_API_KEY)")
            return []
        report.hide((token,))
        report.step("ok", "web guest token", f"received {redact(token)} (user id {user_id_of(token)})")
        return [("guest token", token)]
    usable = []
    now = time.time()
    for number, token in enumerate(doctor.settings.zai_tokens, 1):
        what = f"ZAI_TOKEN #{number} {redact(token)}"
        claims = jwt_claims(token)
        expiry = claims.get("exp")
        if not claims:
            report.step("warn", what, "not a JWT: its expiry cannot be read",
                        f"copy the whole token into ZAI_TOKEN: {TOKEN_HOWTO}")
        elif isinstance(expiry, (int, float)) and not isinstance(expiry, bool):
            if expiry <= now:
                report.step("fail", what, f"expired {date(expiry)} ({span(now - expiry)} ago)",
                            f"put a fresh token into ZAI_TOKEN: {TOKEN_HOWTO}")
                continue
            report.step("ok", what, f"user id {user_id_of(token)}, expires {date(expiry)} (in {span(expiry - now)})")
        else:
            report.step("ok", what, f"user id {user_id_of(token)}, no expiry in the token")
        usable.append((f"ZAI_TOKEN #{number}", token))
    return usable


def _web_completion(doctor, session: requests.Session, version: str, label: str, token: str) -> str:
    """A one-word completion with ``token``: ``answered``, or the refusal's error code."""
    from .web_request import resolve_model

    s = doctor.settings
    timeout = doctor.budget.timeout(doctor.budget.completion_s)
    deadline = time.monotonic() + timeout
    what = f"web completion ({s.model_name} → {resolve_model(s.model_name, s.models, s.model_name)[0]}, {label})"
    web = _web_chat(doctor, session, timeout, zai_tokens=(token,), fe_version=version, fe_version_discovery=False)
    try:
        answer = web.start(one_word_chat(s))
        try:
            text = read_until(answer.pieces(), deadline)
        finally:
            answer.close()
    except UpstreamError as exc:
        outcome = WEB_OUTCOMES.get(exc.code, exc.code or "failed")
        if exc.code == "upstream_captcha_required" and "api" in s.upstream_order:
            doctor.report.step("fail", what, f"{outcome}: Z.ai's web chat requires human verification (a captcha) "
                               "on every answer, which zto cannot provide; the official API answers instead "
                               "(checked below)")
        else:
            doctor.report.step("fail", what, f"{outcome}: {exc.message}",
                               silence_fix(exc.code, s, "UPSTREAM_URL", s.upstream_url))
        return exc.code or "failed"
    doctor.report.step("ok", what, f"answered: {shown(text)}")
    return "answered"


# ---- the official API ---------------------------------------------------------------------

def check_api(doctor) -> bool:
    from .http import build_session
    from .official import api_model

    s = doctor.settings
    if not doctor.check_origin(s.api_base, "ZAI_API_BASE"):
        doctor.report.step("fail", "official API", "not checked further: its origin is unreachable")
        return False
    model_id = api_model(s.model_name, s.api_model_map, s.model_name)
    session = build_session(s)
    try:
        return _ask_each(doctor, [(f"ZAI_API_KEY #{number}", partial(_api_completion, doctor, session, number, key,
                                                                      model_id))
                                  for number, key in enumerate(s.zai_api_keys, 1)])
    finally:
        session.close()


def _api_completion(doctor, session: requests.Session, number: int, key: str, model_id: str) -> str:
    """A one-token completion on the default model with ``key`` alone: ``answered``, or
    the refusal's error code."""
    from .metrics import Metrics
    from .official import OfficialUpstream

    timeout = doctor.budget.timeout(doctor.budget.completion_s)
    deadline = time.monotonic() + timeout
    settings = replace(doctor.settings, zai_api_keys=(key,), connect_timeout_s=timeout, read_timeout_s=timeout)
    what = f"official API ZAI_API_KEY #{number} {redact(key)} on {model_id}"
    try:
        answer = OfficialUpstream(settings, session, Metrics()).start(one_word_chat(settings, max_tokens=1))
        try:
            text = read_until(answer.pieces(), deadline)
        finally:
            answer.close()
    except UpstreamError as exc:
        outcome, fix = api_outcome(exc.code, model_id, doctor.settings)
        doctor.report.step("fail", what, f"{outcome}: {exc.message}", fix)
        return exc.code or "failed"
    doctor.report.step("ok", what, f"works: answered {shown(text)}")
    return "answered"


def silence_fix(code: str | None, settings: Settings, url_setting: str, url: str) -> str:
    """The settings to look at when an upstream did not answer (in time, or at all)."""
    if code not in ("upstream_timeout", "upstream_unavailable"):
        return ""
    proxy = "UPSTREAM_PROXY (set)" if settings.upstream_proxy else "UPSTREAM_PROXY (not set)"  # may hold a password
    where = f"check {url_setting} (now {url}) and {proxy}"
    if code == "upstream_unavailable":
        return where
    return (f"{where}; if answers are only slow, the service itself waits UPSTREAM_READ_TIMEOUT "
            f"(now {settings.read_timeout_s:g} s)")


def api_outcome(code: str | None, model_id: str, settings: Settings) -> tuple[str, str]:
    """(what an official API refusal means, the setting to change) for its error code."""
    model_name = settings.model_name
    if code == "upstream_unauthorized":
        return "bad key (1000-1003)", "replace this key in ZAI_API_KEY with one from the Z.ai console"
    if code == "insufficient_quota":
        free = "" if model_id == FREE_MODEL[1] else f", or MODEL_NAME={FREE_MODEL[0]} (free) instead of {model_id}"
        return "no balance (1113)", "top up the account in the Z.ai console" + free
    if code == "upstream_rate_limited":
        return "rate-limited (1302-1305)", "the key works but is busy: try again later, or add keys to ZAI_API_KEY"
    if code == "model_not_found":
        return f"unknown model {model_id} (1211)", (f"map MODEL_NAME={model_name} to an official id in "
                                                    "API_MODEL_MAP, or set MODEL_NAME to one it lists")
    if code == "upstream_not_found":
        return "no such endpoint", "check ZAI_API_BASE"
    if code == "upstream_timeout":
        return "no answer in time", silence_fix(code, settings, "ZAI_API_BASE", settings.api_base)
    if code == "upstream_unavailable":
        return "connection failed", silence_fix(code, settings, "ZAI_API_BASE", settings.api_base)
    return code or "failed", ""
