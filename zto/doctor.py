"""``zto doctor`` (``python -m zto doctor``, ``make doctor``): check the configured
setup against the real upstreams, step by step.

It loads the settings as the service does (environment, ``.env.local``, ``.env``) and
prints one line per step (``✓`` works, ``✗`` fails, ``!`` a warning: what was checked,
what was found, ``→`` the setting to change; ``doctor_report.py``):

1. the settings: valid, which upstreams answer (``UPSTREAMS``, ``ZAI_API_KEY``), the
   published ``DEFAULT_KEY``; ``REDIS_URL`` when set (``doctor_redis.py``);
2. reaching each configured origin (chat.z.ai's from ``UPSTREAM_URL``, the official
   API's from ``ZAI_API_BASE``) layer by layer: DNS, TCP (or the tunnel through
   ``UPSTREAM_PROXY``, checked first), TLS (``netcheck.py``);
3. the web chat and 4. the official API, each asked a real question through the
   service's own client (``doctor_upstreams.py``).

Every step has a short timeout inside an overall budget, so the run ends in under
20 s; tokens and keys never appear whole. The exit status is 0 only if some
configured upstream answered and ``REDIS_URL``, when set, works.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from . import netcheck
from .api_keys import PUBLISHED_KEY
from .doctor_report import ASCII_MARKS, MARKS, Budget, OutOfTime, Report
from .netcheck import Endpoint, ProbeFailed, Proxy
from .settings import Settings, SettingsError, load_settings

STEP_TIMEOUT_S = 5.0
COMPLETION_TIMEOUT_S = 10.0
BUDGET_S = 18.0
WATCHDOG_GRACE_S = 1.5  # past the budget, before the run is abandoned whatever it waits for


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Doctor:
    def __init__(self, settings: Settings, report: Report, budget: Budget, resolver: netcheck.Resolver) -> None:
        self.settings = settings
        self.report = report
        self.budget = budget
        self.resolver = resolver
        self.proxy = Proxy.of(settings.upstream_proxy) if settings.upstream_proxy else None
        self._proxy_address: tuple[int, tuple] | None = None
        self.redis_ok = True
        report.hide((*settings.zai_tokens, *settings.zai_api_keys, *settings.api_keys))
        if self.proxy is not None and self.proxy.password:
            report.hide((self.proxy.password,))

    def run(self) -> bool:
        """True if some configured upstream answered; ``redis_ok`` says whether REDIS_URL,
        when set, works."""
        from .doctor_redis import check_redis
        from .doctor_upstreams import check_api, check_web

        self.check_settings()
        self.redis_ok = self.guarded(lambda: check_redis(self), "REDIS_URL")
        if self.proxy is not None and not self.guarded(self.check_proxy, "UPSTREAM_PROXY"):
            self.report.step("fail", "upstreams", "not checked: UPSTREAM_PROXY is unreachable")
            return False
        checks = {"web": (check_web, "web chat"), "api": (check_api, "official API")}
        answered = [self.guarded(lambda check=check: check(self), what)
                    for check, what in (checks[name] for name in self.settings.upstream_order)]
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
            self.report.step("warn", "DEFAULT_KEY", f"still the published {PUBLISHED_KEY}: only clients on this "
                             "machine are served", "set DEFAULT_KEY to a long random key of your own")
        if s.zai_api_keys and "api" not in order:
            self.report.step("warn", "ZAI_API_KEY", "set, but UPSTREAMS leaves the official API out",
                             "UPSTREAMS=web,api to fall back to it, or api to use it alone")

    # -- 2. reaching the origins ---------------------------------------------------

    def addresses(self, endpoint: Endpoint) -> list[tuple[int, tuple]]:
        if _is_address(endpoint.host):  # nothing to look up
            return [(socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET, (endpoint.host, endpoint.port))]
        return netcheck.resolve(self.resolver, endpoint.host, endpoint.port, self.budget.timeout())

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

    def check_origin(self, url: str, setting: str) -> bool:
        """DNS, TCP (or the proxy's tunnel) and TLS to ``url``'s origin."""
        target = Endpoint.of(url)
        host = target.host
        addresses: list[tuple[int, tuple]] = []
        if _is_address(host) or self.proxy is None or not self.proxy.remote_dns:
            try:
                addresses = self.addresses(target)
            except ProbeFailed as exc:
                return self.report.step("fail", f"DNS {host}", str(exc),
                                        f"check the host name in {setting} and this server's DNS")
            if not _is_address(host):
                more = f" (+{len(addresses) - 3})" if len(addresses) > 3 else ""
                self.report.step("ok", f"DNS {host}", ", ".join(a[1][0] for a in addresses[:3]) + more)
        if self.proxy is None:
            try:
                sock, address = netcheck.connect(addresses, self.budget.timeout())
            except ProbeFailed as exc:
                return self.report.step("fail", f"TCP {target}", f"cannot connect: {exc}",
                                        f"check {setting}, this server's firewall, or set UPSTREAM_PROXY")
            self.report.step("ok", f"TCP {target}", f"connected to {address}")
        elif self.proxy.scheme == "https":
            return self.report.step("warn", f"TCP {target} through UPSTREAM_PROXY", "not probed: the tunnel of an "
                                    "https:// proxy is checked by the requests below, which go through it")
        else:
            # A proxy that looks names up itself gets the name; otherwise the address found here.
            via = addresses[0][1][0] if addresses else host
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


def run(settings: Settings, write: Callable[[str], None], *, resolver: netcheck.Resolver = netcheck.system_resolver,
        budget_s: float = BUDGET_S, step_timeout_s: float = STEP_TIMEOUT_S,
        completion_timeout_s: float = COMPLETION_TIMEOUT_S, marks: dict[str, str] = MARKS) -> int:
    """Check ``settings``, writing one line per step; the exit status (0: something answers)."""
    report = Report(write, marks)
    doctor = Doctor(settings, report, Budget(budget_s, step_timeout_s, completion_timeout_s), resolver)
    answered = doctor.run()
    if answered and doctor.redis_ok:
        report.line(f"{marks['ok']} zto can answer with this setup.")
        return 0
    if answered:
        report.line(f"{marks['fail']} zto can answer, but REDIS_URL does not work: the dashboard's statistics "
                    "would be unavailable (see the REDIS_URL line above).")
        return 1
    report.line(f"{marks['fail']} no configured upstream answered: see the {marks['fail']} lines above.")
    return 1


def main(*, environ: dict[str, str] | None = None, env_dir: str | os.PathLike | None = None,
         resolver: netcheck.Resolver = netcheck.system_resolver, budget_s: float = BUDGET_S) -> int:
    """``python -m zto doctor``: load the settings as the service does, check, print."""
    out = sys.stdout
    try:
        "✓✗→…".encode(out.encoding or "ascii")
        marks = MARKS
    except (UnicodeEncodeError, LookupError):
        marks = ASCII_MARKS
        out.reconfigure(errors="replace")

    abandoned = threading.Event()

    def write(text: str) -> None:
        if not abandoned.is_set():  # an abandoned run may still finish a step: it is not told
            print(text, file=out, flush=True)

    # The upstream clients log each refusal for the service's operator; here the report says it.
    logging.getLogger("zto").addHandler(logging.NullHandler())
    logging.getLogger("zto").propagate = False
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
            outcome["code"] = run(settings, write, resolver=resolver, budget_s=budget_s, marks=marks)
        except Exception as exc:  # a bug of the doctor's own: say so, and still end
            write(f"{marks['fail']} doctor: internal error ({type(exc).__name__}: {exc})")
            outcome["code"] = 1

    # The steps' timeouts keep within the budget; this is the backstop for a call that
    # ignores them (a server that trickles one byte at a time never times out a read).
    worker = threading.Thread(target=check, name="doctor", daemon=True)
    worker.start()
    worker.join(budget_s + WATCHDOG_GRACE_S)
    if "code" not in outcome:
        abandoned.set()
        print(f"{marks['fail']} doctor: gave up after {budget_s + WATCHDOG_GRACE_S:g} s; the network is too slow "
              "to judge → run it again, or check UPSTREAM_PROXY", file=out, flush=True)
        return 1
    return outcome["code"]
