"""``zto doctor``: check the configured setup against the real upstreams, step by step.

It loads the settings as the service does (environment, ``.env.local``, ``.env``), then
checks, printing one line per step (✓ works, ✗ fails, ! a warning), each saying what
was checked, what was found and which setting to change:

1. the settings: valid, which upstreams answer (``UPSTREAMS``, ``ZAI_API_KEY``), the
   published ``DEFAULT_KEY``;
2. reaching each origin (chat.z.ai's from ``UPSTREAM_URL``, the official API's from
   ``ZAI_API_BASE``): DNS, TCP, TLS, through ``UPSTREAM_PROXY`` when set
   (``netcheck.py``);
3. the web chat: the landing page and its front-end version; the guest token, or each
   ``ZAI_TOKEN`` (its expiry read from the JWT, never verified); a one-word signed
   completion with each, named by how Z.ai answered (answered, captcha, user level,
   426, signature, firewall...);
4. the official API: each key of ``ZAI_API_KEY`` alone, with a one-token completion
   on the default model (``API_MODEL_MAP``'s id for ``MODEL_NAME``), named as working,
   bad key (1000-1003), no balance (1113), rate-limited or unknown model (1211).

The calls go through the service's own clients (session, signing, answer reading,
error classification), so the doctor sees what the service would see. Every step has
a short timeout and the whole run a budget, so it ends in under 20 s. Tokens and keys
never appear whole in its output. It exits 0 only if some configured upstream answered.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from . import netcheck
from .netcheck import Endpoint, ProbeFailed, Proxy
from .settings import Settings, SettingsError, load_settings
from .tokens import jwt_claims, redact, user_id_of

PUBLISHED_KEY = "sk-your-key"
MIN_SECRET_CHARS = 6
STEP_TIMEOUT_S = 5.0
COMPLETION_TIMEOUT_S = 10.0
BUDGET_S = 18.0
PROMPT = "Reply with one word: ready"
SHOWN_ANSWER_CHARS = 40
MARKS = {"ok": "✓", "fail": "✗", "warn": "!"}
ASCII_MARKS = {"ok": "[ok]", "fail": "[FAIL]", "warn": "[warn]"}
# Web refusals that every token gets alike: trying the next token would tell nothing new.
NOT_TOKEN_SPECIFIC = ("upstream_captcha_required", "upstream_version_rejected", "upstream_signature_rejected",
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


class OutOfTime(Exception):
    pass


class Report:
    """Prints each step as it is checked, with every known secret redacted."""

    def __init__(self, write: Callable[[str], None], marks: dict[str, str] = MARKS) -> None:
        self._write = write
        self._marks = marks
        self._secrets: set[str] = set()
        self.failures = 0

    def hide(self, secrets: Iterable[str]) -> None:
        # The published default is no secret; a secret shorter than a word would mangle the text.
        self._secrets.update(s for s in secrets if len(s) >= MIN_SECRET_CHARS and s != PUBLISHED_KEY)

    def line(self, text: str) -> None:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, redact(secret))
        self._write(text)

    def step(self, status: str, what: str, found: str, fix: str = "") -> bool:
        self.failures += status == "fail"
        self.line(f"{self._marks[status]} {what}: {found}" + (f" → {fix}" if fix else ""))
        return status != "fail"


class Budget:
    """Per-step timeouts that never run past the whole run's deadline."""

    def __init__(self, total_s: float, step_s: float, completion_s: float) -> None:
        self.total_s = total_s
        self.step_s = step_s
        self.completion_s = completion_s
        self._deadline = time.monotonic() + total_s

    def left(self) -> float:
        return self._deadline - time.monotonic()

    def timeout(self, wanted: float | None = None) -> float:
        left = self.left()
        if left < 0.5:
            raise OutOfTime
        return min(wanted or self.step_s, left)


def _ago(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{int(seconds)} seconds"


def _api_outcome(code: str | None, model_id: str, settings: Settings) -> tuple[str, str]:
    """(what the official API's refusal means, the setting to change) for an error code."""
    if code == "upstream_unauthorized":
        return "bad key (1000-1003)", "replace this key in ZAI_API_KEY with one from the Z.ai console"
    if code == "insufficient_quota":
        return "no balance (1113)", (f"top up the account in the Z.ai console, or MODEL_NAME=GLM-4.5-Flash (free) "
                                     f"instead of {model_id}" if model_id != "glm-4.5-flash" else
                                     "top up the account in the Z.ai console")
    if code == "upstream_rate_limited":
        return "rate-limited (1302-1305)", "the key works but is busy: try again later, or add keys to ZAI_API_KEY"
    if code == "model_not_found":
        return f"unknown model {model_id} (1211)", (f"map MODEL_NAME={settings.model_name} to an official id in "
                                                    "API_MODEL_MAP, or set MODEL_NAME to one it lists")
    if code == "upstream_not_found":
        return "no such endpoint", "check ZAI_API_BASE"
    if code == "upstream_timeout":
        return "no answer in time", ""
    return code or "failed", ""


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _date(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return f"at {timestamp:g}"


class Doctor:
    def __init__(self, settings: Settings, report: Report, budget: Budget, resolver: netcheck.Resolver) -> None:
        self.settings = settings
        self.report = report
        self.budget = budget
        self.resolver = resolver
        self.proxy = Proxy.of(settings.upstream_proxy) if settings.upstream_proxy else None
        self._proxy_address: tuple[int, tuple] | None = None
        report.hide((*settings.zai_tokens, *settings.zai_api_keys, *settings.api_keys))
        if self.proxy is not None:
            report.hide((self.proxy.password or "",))

    def run(self) -> bool:
        """True if some configured upstream answered."""
        self.check_settings()
        order = self.settings.upstream_order
        if self.proxy is not None and not self.check_proxy():
            self.report.step("fail", "upstreams", "not checked: UPSTREAM_PROXY is unreachable")
            return False
        answered = []
        if "web" in order:
            answered.append(self.guarded(self.check_web, "web chat"))
        if "api" in order:
            answered.append(self.guarded(self.check_api, "official API"))
        return any(answered)

    def guarded(self, check: Callable[[], bool], what: str) -> bool:
        try:
            return check()
        except OutOfTime:
            self.report.step("fail", what, f"not finished: the {self.budget.total_s:g} s budget ran out",
                             "run it again; if it persists, the network is slow (UPSTREAM_PROXY?)")
            return False

    # -- 1. settings -------------------------------------------------------------

    def check_settings(self) -> None:
        s = self.settings
        order = s.upstream_order
        why = f"UPSTREAMS={','.join(s.upstreams)}" if s.upstreams else (
            f"UPSTREAMS empty: {order[0]} since ZAI_API_KEY is {'set' if s.zai_api_keys else 'empty'}")
        parts = [f"upstreams {' then '.join(order)} ({why})"]
        if "web" in order:
            parts.append(f"web chat with {len(s.zai_tokens)} ZAI_TOKEN token(s)" if s.zai_tokens
                         else "web chat as anonymous guests (ZAI_TOKEN empty)")
        if "api" in order:
            from .official import api_model

            model_id = api_model(s.model_name, s.api_model_map, s.model_name)
            parts.append(f"official API with {len(s.zai_api_keys)} ZAI_API_KEY key(s) at {s.api_base}, "
                         f"model {model_id} for MODEL_NAME={s.model_name}")
        self.report.step("ok", "settings", "valid; " + "; ".join(parts))
        if PUBLISHED_KEY in s.api_keys:
            self.report.step("warn", "DEFAULT_KEY", f"still the published {PUBLISHED_KEY}: anyone who finds this "
                             "server can use it", "set DEFAULT_KEY to a long random key of your own")
        if s.zai_api_keys and "api" not in order:
            self.report.step("warn", "ZAI_API_KEY", "set, but UPSTREAMS leaves the official API out",
                             "UPSTREAMS=web,api to fall back to it, or api to use it alone")

    # -- 2. reaching the origins ---------------------------------------------------

    def check_proxy(self) -> bool:
        proxy = self.proxy
        what = f"UPSTREAM_PROXY {proxy.scheme}://{proxy.endpoint}"
        try:
            addresses = self.addresses(proxy.endpoint)
            sock, address = netcheck.connect(addresses, self.budget.timeout())
        except ProbeFailed as exc:
            return self.report.step("fail", what, f"unreachable: {exc}", "check UPSTREAM_PROXY, or leave it empty")
        sock.close()
        self._proxy_address = next(a for a in addresses if a[1][0] == address)
        return self.report.step("ok", what, f"accepts connections ({address})")

    def addresses(self, endpoint: Endpoint) -> list[tuple[int, tuple]]:
        if _is_address(endpoint.host):  # nothing to look up
            return [(socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET, (endpoint.host, endpoint.port))]
        return netcheck.resolve(self.resolver, endpoint.host, endpoint.port, self.budget.timeout())

    def check_origin(self, url: str, setting: str) -> bool:
        """DNS, TCP (or the proxy's tunnel) and TLS to ``url``'s origin."""
        target = Endpoint.of(url)
        host = target.host
        fix_reach = f"check {setting}, this server's firewall, or set UPSTREAM_PROXY"
        if _is_address(host):
            addresses = self.addresses(target)
        elif self.proxy is None or not self.proxy.remote_dns:
            try:
                addresses = self.addresses(target)
            except ProbeFailed as exc:
                return self.report.step("fail", f"DNS {host}", str(exc),
                                        f"check the host name in {setting} and this server's DNS")
            shown = ", ".join(a[1][0] for a in addresses[:3])
            self.report.step("ok", f"DNS {host}", shown + (f" (+{len(addresses) - 3})" if len(addresses) > 3 else ""))
        if self.proxy is None:
            try:
                sock, address = netcheck.connect(addresses, self.budget.timeout())
            except ProbeFailed as exc:
                return self.report.step("fail", f"TCP {target}", f"cannot connect: {exc}", fix_reach)
            self.report.step("ok", f"TCP {target}", f"connected to {address}")
        else:
            via = host if self.proxy.remote_dns else addresses[0][1][0]
            try:
                sock = netcheck.tunnel(self.proxy, self._proxy_address, target, via, self.budget.timeout())
            except ProbeFailed as exc:
                return self.report.step("fail", f"TCP {target} through UPSTREAM_PROXY", f"the proxy refused: {exc}",
                                        f"check UPSTREAM_PROXY (and that it may reach {target})")
            self.report.step("ok", f"TCP {target} through UPSTREAM_PROXY", "tunnel open")
        if not target.tls:
            sock.close()
            return True
        try:
            version = netcheck.handshake(sock, host, self.budget.timeout())
        except ProbeFailed as exc:
            return self.report.step("fail", f"TLS {host}", str(exc),
                                    f"something intercepts TLS to {host}: check {setting}'s scheme and UPSTREAM_PROXY")
        return self.report.step("ok", f"TLS {host}", f"{version}, certificate valid for {host}")

    # -- 3. the web chat -------------------------------------------------------------

    def web_chat(self, session, timeout: float, **changes):
        """The service's web-chat upstream, with this step's timeout and ``changes``."""
        from .metrics import NO_METRICS
        from .web_chat import WebChat

        settings = replace(self.settings, connect_timeout_s=timeout, read_timeout_s=timeout, **changes)
        return WebChat(settings, session, NO_METRICS)

    def check_web(self) -> bool:
        from .http import build_session

        if not self.check_origin(self.settings.upstream_url, "UPSTREAM_URL"):
            self.report.step("fail", "web chat", "not checked further: its origin is unreachable")
            return False
        session = build_session(self.settings)
        try:
            version = self.check_landing_page(session)
            answered = False
            for label, token in self.web_tokens(session):
                outcome, answered_now = self.web_completion(session, version, label, token)
                answered = answered or answered_now
                if answered_now or outcome in NOT_TOKEN_SPECIFIC:
                    break
            return answered
        finally:
            session.close()

    def check_landing_page(self, session) -> str:
        """The front-end version the service would send."""
        from .errors import UpstreamError
        from .fe_version import newest_version, version_key

        s = self.settings
        what = f"web landing page {s.upstream_origin}/"
        client = self.web_chat(session, self.budget.timeout())
        status = "fail" if s.fe_version_discovery else "warn"
        try:
            found = newest_version(client.fetch_landing_page())
        except UpstreamError as exc:
            self.report.step(status, what, f"unavailable: {exc.message}",
                             f"FE_VERSION (now {s.fe_version}) is sent instead; keep it current by hand")
            return s.fe_version
        if found is None:
            self.report.step(status, what, "names no prod-fe-X.Y.Z front-end version",
                             f"FE_VERSION (now {s.fe_version}) is sent instead; keep it current by hand")
            return s.fe_version
        if not s.fe_version_discovery:
            if version_key(found) > version_key(s.fe_version):
                self.report.step("warn", what, f"names {found}, newer than FE_VERSION={s.fe_version}",
                                 f"FE_VERSION={found}, or FE_VERSION_DISCOVERY=true")
            else:
                self.report.step("ok", what, f"names {found}; FE_VERSION={s.fe_version} is sent")
            return s.fe_version
        version = max((found, s.fe_version), key=version_key)
        self.report.step("ok", what, f"front-end version {found}; {version} is sent")
        return version

    def web_tokens(self, session) -> list[tuple[str, str]]:
        """(label, token) of the tokens to try a completion with."""
        from .errors import UpstreamError

        if not self.settings.zai_tokens:
            client = self.web_chat(session, self.budget.timeout())
            try:
                token = client.fetch_guest_token()
            except UpstreamError as exc:
                self.report.step("fail", "web guest token", f"not given: {exc.message}",
                                 "set ZAI_TOKEN to a logged-in token, or use the official API (ZAI_API_KEY)")
                return []
            self.report.hide((token,))
            self.report.step("ok", "web guest token", f"received {redact(token)} (user id {user_id_of(token)})")
            return [("guest token", token)]
        usable = []
        now = time.time()
        for number, token in enumerate(self.settings.zai_tokens, 1):
            label = f"ZAI_TOKEN #{number} {redact(token)}"
            claims = jwt_claims(token)
            expiry = claims.get("exp")
            if not claims:
                self.report.step("warn", label, "not a JWT: its expiry cannot be read",
                                 "copy the whole token from chat.z.ai (F12 → Application → Local Storage → token)")
            elif isinstance(expiry, (int, float)) and not isinstance(expiry, bool):
                when = _date(expiry)
                if expiry <= now:
                    self.report.step("fail", label, f"expired {when} ({_ago(now - expiry)} ago)",
                                     "take a fresh token from chat.z.ai into ZAI_TOKEN")
                    continue
                self.report.step("ok", label, f"user id {user_id_of(token)}, expires {when} "
                                 f"(in {_ago(expiry - now)})")
            else:
                self.report.step("ok", label, f"user id {user_id_of(token)}, no expiry in the token")
            usable.append((f"ZAI_TOKEN #{number}", token))
        return usable

    def web_completion(self, session, version: str, label: str, token: str) -> tuple[str, bool]:
        """(outcome code, answered) of a one-word completion with ``token``."""
        from .errors import UpstreamError
        from .web_request import resolve_model

        s = self.settings
        timeout = self.budget.timeout(self.budget.completion_s)
        deadline = time.monotonic() + timeout
        chat = one_word_chat(s)
        what = f"web completion ({s.model_name} → {resolve_model(s.model_name, s.models, s.model_name)[0]}, {label})"
        # Exactly this token and this version: no second token, no second look at the page.
        client = self.web_chat(session, timeout, zai_tokens=(token,), fe_version=version, fe_version_discovery=False)
        text = []
        try:
            answer = client.start(chat)
            try:
                for piece in answer.pieces():
                    text.append(piece.content)
                    if time.monotonic() > deadline:
                        break
            finally:
                answer.close()
        except UpstreamError as exc:
            outcome = WEB_OUTCOMES.get(exc.code, exc.code or "failed")
            self.report.step("fail", what, f"{outcome}: {exc.message}")
            return exc.code or "", False
        self.report.step("ok", what, f"answered: {_shown(''.join(text))}")
        return "answered", True

    # -- 4. the official API ----------------------------------------------------------

    def check_api(self) -> bool:
        from .http import build_session
        from .official import api_model

        s = self.settings
        if not self.check_origin(s.api_base, "ZAI_API_BASE"):
            self.report.step("fail", "official API", "not checked further: its origin is unreachable")
            return False
        model_id = api_model(s.model_name, s.api_model_map, s.model_name)
        session = build_session(s)
        answered = False
        try:
            for number, key in enumerate(s.zai_api_keys, 1):
                answered = self.api_completion(session, f"ZAI_API_KEY #{number} {redact(key)}", key, model_id) \
                    or answered
        finally:
            session.close()
        return answered

    def api_completion(self, session, label: str, key: str, model_id: str) -> bool:
        """A one-token completion on the default model with ``key`` alone."""
        from .errors import UpstreamError
        from .metrics import NO_METRICS
        from .official import OfficialUpstream

        timeout = self.budget.timeout(self.budget.completion_s)
        deadline = time.monotonic() + timeout
        settings = replace(self.settings, zai_api_keys=(key,), connect_timeout_s=timeout, read_timeout_s=timeout)
        what = f"official API {label} on {model_id}"
        text = []
        try:
            answer = OfficialUpstream(settings, session, NO_METRICS).start(one_word_chat(settings, max_tokens=1))
            try:
                for piece in answer.pieces():
                    text.append(piece.content)
                    if time.monotonic() > deadline:
                        break
            finally:
                answer.close()
        except UpstreamError as exc:
            outcome, fix = _api_outcome(exc.code, model_id, self.settings)
            return self.report.step("fail", what, f"{outcome}: {exc.message}", fix)
        return self.report.step("ok", what, f"works: answered {_shown(''.join(text))}")


def _shown(text: str) -> str:
    text = text.strip()
    return repr(text[:SHOWN_ANSWER_CHARS] + ("…" if len(text) > SHOWN_ANSWER_CHARS else ""))


def one_word_chat(settings: Settings, **body):
    """The smallest real question, as the service builds it from a client's request."""
    from .chat_request import build_chat_request

    return build_chat_request({"model": settings.model_name, "messages": [{"role": "user", "content": PROMPT}],
                               "stream": True, "enable_thinking": False, **body}, settings=settings)


def run(settings: Settings, write: Callable[[str], None], *, resolver: netcheck.Resolver = netcheck.system_resolver,
        budget_s: float = BUDGET_S, step_timeout_s: float = STEP_TIMEOUT_S,
        completion_timeout_s: float = COMPLETION_TIMEOUT_S, marks: dict[str, str] = MARKS) -> int:
    """Check ``settings``, writing one line per step; the exit status (0: something answers)."""
    report = Report(write, marks)
    doctor = Doctor(settings, report, Budget(budget_s, step_timeout_s, completion_timeout_s), resolver)
    answered = doctor.run()
    if answered:
        report.line(f"{marks['ok']} zto can answer with this setup.")
        return 0
    report.line(f"{marks['fail']} no configured upstream answered: see the {marks['fail']} lines above.")
    return 1


def main(argv: list[str] | None = None, *, environ: dict[str, str] | None = None,
         env_dir: str | os.PathLike | None = None, resolver: netcheck.Resolver = netcheck.system_resolver) -> int:
    """``python -m zto doctor``: load the settings as the service does, check, print."""
    out = sys.stdout
    try:
        "✓✗→…".encode(out.encoding or "ascii")
        marks = MARKS
    except (UnicodeEncodeError, LookupError):
        marks = ASCII_MARKS
        out.reconfigure(errors="replace")

    def write(text: str) -> None:
        print(text, file=out, flush=True)

    where = Path(env_dir) if env_dir is not None else Path.cwd()
    write(f"zto doctor: the settings of {where} (environment, .env.local, .env), checked against the upstreams")
    try:
        settings = load_settings(environ, env_dir)
    except SettingsError as exc:
        Report(write, marks).step("fail", "settings", str(exc), "fix that setting (see .env.example)")
        return 1
    outcome: dict[str, int] = {}

    def check() -> None:
        try:
            outcome["code"] = run(settings, write, resolver=resolver, marks=marks)
        except Exception as exc:  # a bug of the doctor's own: say so, and still end
            write(f"{marks['fail']} doctor: internal error ({type(exc).__name__}: {exc})")
            outcome["code"] = 1

    # The steps' timeouts keep within the budget; this is the backstop for a call that ignores them.
    worker = threading.Thread(target=check, name="doctor", daemon=True)
    worker.start()
    worker.join(BUDGET_S + 1.5)
    if "code" not in outcome:
        write(f"{marks['fail']} doctor: gave up after {BUDGET_S + 1.5:g} s; the network is too slow to judge")
        return 1
    return outcome["code"]

