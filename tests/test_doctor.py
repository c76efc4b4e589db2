"""``zto doctor`` against the fake upstream in every failure mode.

Nothing leaves 127.0.0.1: name lookups go through a resolver the test passes in (it
refuses any name it was not given), and every URL is a loopback port. Every run's
output is checked for whole keys and tokens.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import redis

from conftest import API_KEY, PROXY_VARIABLES, ROOT, free_port
from fake_official import DEFAULT_KEYS, FakeOfficial
from fake_zai import FakeZai
from zto import doctor, doctor_redis
from zto.settings import setting_docs

TOKEN_USER = "user-1234"


@dataclass
class Run:
    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def line(self, fragment: str) -> str:
        found = [line for line in self.lines if fragment in line]
        assert len(found) == 1, f"{fragment!r} in {len(found)} lines:\n{self.text}"
        return found[0]

    def ok(self, fragment: str) -> str:
        line = self.line(fragment)
        assert line.startswith("✓ "), self.text
        return line

    def failed(self, fragment: str) -> str:
        line = self.line(fragment)
        assert line.startswith("✗ "), self.text
        return line


class Resolver:
    """Knows only the names it is given; records what it was asked."""

    def __init__(self, names: dict[str, str] | None = None, delay: float = 0.0) -> None:
        self.names = names or {}
        self.delay = delay
        self.asked: list[str] = []

    def __call__(self, host: str, port: int):
        self.asked.append(host)
        if self.delay:
            time.sleep(self.delay)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, (self.names[host], port))]


def secrets_of(settings, fake: FakeZai | None = None) -> list[str]:
    keys = [key for key in settings.api_keys if key != "sk-your-key"]  # the published one is no secret
    return [*settings.zai_tokens, *settings.zai_api_keys, *keys, *(fake.guest_tokens if fake else ())]


def check(settings, fake: FakeZai | None = None, resolver=None, **limits) -> Run:
    lines: list[str] = []
    code = doctor.run(settings, lines.append, resolver=resolver or Resolver(), **limits)
    run = Run(code, lines)
    for secret in secrets_of(settings, fake):
        assert secret not in run.text
    return run


def jwt(claims: dict) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(b'{"alg":"HS256","typ":"JWT"}')
    return f"{header}.{part(json.dumps(claims).encode())}.{part(os.urandom(32))}"


@pytest.fixture
def closed_port():
    return free_port()  # bound then released: nothing listens there


@contextmanager
def raw_server(handle):
    """A TCP server on a loopback port (yields the port); each connection is given to
    ``handle(conn, stop)`` in a thread of its own."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn, stop), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        server.close()


def answer_400(conn, stop):
    with conn:
        conn.settimeout(1)
        try:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass


def trickle(conn, stop):
    """A body that comes one byte at a time, forever: no single read ever times out."""
    with conn:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n")
            while not stop.wait(0.1):
                conn.sendall(b"<")
        except OSError:
            pass


@pytest.fixture
def plain_listener():
    """A loopback port that speaks plain HTTP to anyone, TLS or not."""
    with raw_server(answer_400) as port:
        yield port


@pytest.fixture
def trickling_server():
    with raw_server(trickle) as port:
        yield port


class _Pipe(socketserver.StreamRequestHandler):
    """A forwarding proxy: CONNECT tunnels, and absolute-form requests (http:// URLs)."""

    rbufsize = 0  # unbuffered: what follows the request head is still in the socket to forward

    def handle(self):
        request_line = self.rfile.readline()
        headers = []
        while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
            headers.append(line)
        try:
            method, target, _ = request_line.decode().split(" ", 2)
        except ValueError:  # not HTTP (a TLS hello, when a test points https at this plain proxy): drop it
            return
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
        else:
            host, port = target.split("/")[2].rsplit(":", 1)
        self.server.targets.append((method, f"{host}:{port}"))
        upstream = socket.create_connection((host, int(port)), timeout=5)
        if method == "CONNECT":
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            head = request_line + b"".join(headers) + b"\r\n"
            self.server.forwarded.append(head)
            upstream.sendall(head)

        def copy(source, sink, record=None):
            try:
                while data := source.recv(65536):
                    if record is not None:
                        record.append(data)
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (source, sink):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        back = threading.Thread(target=copy, args=(upstream, self.connection), daemon=True)
        back.start()
        copy(self.connection, upstream, self.server.forwarded)
        back.join(5)
        upstream.close()


@pytest.fixture
def proxy():
    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), _Pipe)
    server.targets = []  # (method, host:port) of each connection's first request
    server.forwarded = []  # every byte clients sent through it
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# ---- all good --------------------------------------------------------------------

def test_all_good_exits_0_and_names_each_step(fake, make_settings):
    run = check(make_settings(), fake)
    assert run.code == 0
    assert "web then api" not in run.text
    run.ok("settings").endswith("(ZAI_TOKEN empty)")
    assert "upstreams web" in run.line("settings")
    run.ok(f"TCP 127.0.0.1:{fake.port}")
    assert "prod-fe-1.0.94" in run.ok("web landing page")
    assert "received eyJ" in run.ok("web guest token")
    assert "answered: 'Hello, world!'" in run.ok("web completion")
    assert run.lines[-1] == "✓ zto can answer with this setup."
    assert not any(line.startswith("✗") for line in run.lines)
    assert len(fake.requests) == 1 and fake.requests[0].outcome == "finished"


def test_the_published_default_key_is_a_warning_not_a_failure(fake, make_settings):
    run = check(make_settings(api_keys=("sk-your-key",)), fake)
    assert run.code == 0
    warning = run.line("DEFAULT_KEY")
    assert warning.startswith("! ") and "sk-your-key" in warning and "set DEFAULT_KEY" in warning


def test_an_api_key_left_out_of_upstreams_is_a_warning(fake, make_settings):
    run = check(make_settings(zai_api_keys=("sk-zai-0123456789abcdef",), upstreams=("web",)), fake)
    assert run.line("ZAI_API_KEY").startswith("! ") and "UPSTREAMS=web,api" in run.line("ZAI_API_KEY")


# ---- reaching the origin ------------------------------------------------------------

def test_unreachable_origin(make_settings, closed_port):
    run = check(make_settings(upstream_url=f"http://127.0.0.1:{closed_port}/api/chat/completions"))
    assert run.code == 1
    line = run.failed(f"TCP 127.0.0.1:{closed_port}")
    assert "refused" in line and "UPSTREAM_URL" in line
    assert "web landing page" not in run.text
    run.failed("web chat: not checked further")


def test_dns_failure_names_the_host_and_the_setting(make_settings):
    resolver = Resolver()
    run = check(make_settings(upstream_url="https://chat.zai.invalid/api/chat/completions"), resolver=resolver)
    assert run.code == 1
    line = run.failed("DNS chat.zai.invalid")
    assert "not found" in line and "UPSTREAM_URL" in line
    assert resolver.asked == ["chat.zai.invalid"]
    assert "TCP" not in run.text


def test_a_name_that_resolves_is_connected_to(fake, make_settings):
    resolver = Resolver({"chat.example.test": "127.0.0.1"})
    url = f"http://chat.example.test:{fake.port}/api/chat/completions"
    lines: list[str] = []
    doctor.Doctor(make_settings(upstream_url=url), doctor.Report(lines.append),
                  doctor.Budget(10, 2, 2), resolver).check_origin(url, "UPSTREAM_URL")
    assert lines[0] == "✓ DNS chat.example.test: 127.0.0.1"
    assert lines[1] == f"✓ TCP chat.example.test:{fake.port}: connected to 127.0.0.1"


def test_a_hanging_name_lookup_fails_after_the_step_timeout(make_settings):
    resolver = Resolver({"slow.example.test": "127.0.0.1"}, delay=3)
    started = time.monotonic()
    run = check(make_settings(upstream_url="https://slow.example.test/api/chat/completions"), resolver=resolver,
                step_timeout_s=0.3)
    assert time.monotonic() - started < 2.5
    assert "no answer within 0.3 s" in run.failed("DNS slow.example.test")


def test_tls_failure_against_a_plain_listener(make_settings, plain_listener):
    run = check(make_settings(upstream_url=f"https://127.0.0.1:{plain_listener}/api/chat/completions"))
    assert run.code == 1
    run.ok(f"TCP 127.0.0.1:{plain_listener}")
    line = run.failed("TLS 127.0.0.1")
    assert "handshake failed" in line and "UPSTREAM_URL" in line
    assert "web landing page" not in run.text


def test_proxy_unreachable(fake, make_settings, closed_port):
    run = check(make_settings(upstream_proxy=f"http://user:s3cret-pass@127.0.0.1:{closed_port}"), fake)
    assert run.code == 1
    line = run.failed(f"UPSTREAM_PROXY http://127.0.0.1:{closed_port}")
    assert "unreachable" in line and "s3cret-pass" not in run.text
    assert fake.requests == [] and fake.seen == []


def test_everything_goes_through_a_working_proxy(fake, make_settings, proxy):
    run = check(make_settings(upstream_proxy=f"http://127.0.0.1:{proxy.server_address[1]}"), fake)
    assert run.code == 0, run.text
    run.ok("UPSTREAM_PROXY http://")
    assert "tunnel open" in run.ok(f"TCP 127.0.0.1:{fake.port} through UPSTREAM_PROXY")
    run.ok("web completion")
    assert ("CONNECT", f"127.0.0.1:{fake.port}") in proxy.targets
    completion = f"POST http://127.0.0.1:{fake.port}/api/chat/completions?".encode()
    assert completion in b"".join(proxy.forwarded)  # the completion itself went through it


def test_an_https_proxy_is_reached_but_its_tunnel_left_to_the_requests(fake, make_settings, proxy):
    port = proxy.server_address[1]
    # This proxy speaks no TLS, so the requests through it fail: soon, with short steps.
    run = check(make_settings(upstream_proxy=f"https://127.0.0.1:{port}"), fake, step_timeout_s=0.5)
    run.ok(f"UPSTREAM_PROXY https://127.0.0.1:{port}")
    assert "UPSTREAM_PROXY" in run.failed("web landing page")
    assert run.line(f"TCP 127.0.0.1:{fake.port} through UPSTREAM_PROXY").startswith("! ")
    assert proxy.targets == []  # no CONNECT: the doctor does not speak TLS to a proxy


def test_tls_failure_through_the_proxy_tunnel(make_settings, proxy, plain_listener):
    run = check(make_settings(upstream_url=f"https://127.0.0.1:{plain_listener}/api/chat/completions",
                              upstream_proxy=f"http://127.0.0.1:{proxy.server_address[1]}"))
    run.ok(f"TCP 127.0.0.1:{plain_listener} through UPSTREAM_PROXY")
    assert "handshake failed" in run.failed("TLS 127.0.0.1")
    assert ("CONNECT", f"127.0.0.1:{plain_listener}") in proxy.targets
    assert run.code == 1


def test_a_proxy_that_refuses_the_tunnel(fake, make_settings, plain_listener):
    run = check(make_settings(upstream_proxy=f"http://127.0.0.1:{plain_listener}"), fake)
    run.ok("UPSTREAM_PROXY http://")
    line = run.failed(f"TCP 127.0.0.1:{fake.port} through UPSTREAM_PROXY")
    assert "the proxy refused: 400" in line and "UPSTREAM_PROXY" in line
    assert fake.seen == [] and run.code == 1


# ---- the web chat ---------------------------------------------------------------------

def test_landing_page_failing_is_reported_and_fe_version_used(fake, make_settings):
    fake.landing_status = 503
    run = check(make_settings(), fake)
    line = run.failed("web landing page")
    assert "unavailable" in line and "FE_VERSION (now prod-fe-1.1.93)" in line
    run.ok("web completion")
    assert run.code == 0


def test_landing_page_without_a_version(make_settings):
    with FakeZai(landing_version="") as fake:
        run = check(make_settings(upstream_url=fake.completions_url), fake)
    assert "names no prod-fe-X.Y.Z" in run.failed("web landing page")


def test_a_newer_discovered_version_is_the_one_sent(make_settings):
    with FakeZai(landing_version="prod-fe-1.2.5", min_fe_version="prod-fe-1.2.0") as fake:
        run = check(make_settings(upstream_url=fake.completions_url), fake)
        assert fake.requests[0].headers["x-fe-version"] == "prod-fe-1.2.5"
    assert "prod-fe-1.2.5 is sent" in run.ok("web landing page")
    run.ok("web completion")


def test_discovery_off_with_a_stale_fe_version_warns_then_426(make_settings):
    with FakeZai(landing_version="prod-fe-1.2.5", min_fe_version="prod-fe-1.2.0") as fake:
        run = check(make_settings(upstream_url=fake.completions_url, fe_version_discovery=False), fake)
    warning = run.line("web landing page")
    assert warning.startswith("! ") and "FE_VERSION=prod-fe-1.1.93" in warning
    assert "front-end version rejected (426)" in run.failed("web completion")
    assert run.code == 1


def test_guest_token_refused(fake, make_settings):
    fake.guest_status = 403
    run = check(make_settings(), fake)
    line = run.failed("web guest token")
    assert "not given" in line and "ZAI_TOKEN" in line and "ZAI_API_KEY" in line
    assert "web completion" not in run.text and run.code == 1


def test_expired_zai_token_is_read_locally_and_not_used(fake, make_settings):
    expired = jwt({"id": TOKEN_USER, "exp": int(time.time()) - 3 * 86400})
    valid = jwt({"id": TOKEN_USER, "exp": int(time.time()) + 30 * 86400})
    fake.accepted_tokens = (valid,)
    run = check(make_settings(zai_tokens=(expired, valid)), fake)
    line = run.failed("ZAI_TOKEN #1 ")
    assert "expired" in line and "3 days ago" in line and "ZAI_TOKEN" in line
    assert "expires" in run.ok("ZAI_TOKEN #2 ") and TOKEN_USER in run.line("ZAI_TOKEN #2 ")
    assert "ZAI_TOKEN #2" in run.ok("web completion")
    assert [r.token for r in fake.requests] == [valid]
    assert run.code == 0


def test_only_expired_tokens_means_no_completion(fake, make_settings):
    expired = jwt({"id": TOKEN_USER, "exp": int(time.time()) - 60})
    fake.accepted_tokens = (expired,)
    run = check(make_settings(zai_tokens=(expired,)), fake)
    run.failed("ZAI_TOKEN #1 ")
    assert fake.requests == [] and run.code == 1


def test_the_doctor_and_the_readme_say_alike_where_a_token_is_found(fake, make_settings):
    expired = jwt({"id": TOKEN_USER, "exp": int(time.time()) - 60})
    fix = check(make_settings(zai_tokens=(expired,)), fake).failed("ZAI_TOKEN #1 ").split(" → ", 1)[1]
    readme = " ".join((ROOT / "README.md").read_text().split())
    for way in ("F12 → Application → Local Storage → https://chat.z.ai → token",
                "F12 → Network → any /api/ request → its Authorization: Bearer header"):
        assert way in fix and way in readme, way


def test_a_short_token_is_not_shown_even_in_part(fake, make_settings):
    token = "mysecrettoken123"
    run = check(make_settings(zai_tokens=(token,)), fake)
    assert "…(16 chars)" in run.line("ZAI_TOKEN #1 ") and "mysecr" not in run.text


def test_a_token_that_is_not_a_jwt_is_a_warning_and_still_tried(fake, make_settings):
    token = "not-a-jwt-but-long-enough"
    fake.accepted_tokens = (token,)
    run = check(make_settings(zai_tokens=(token,)), fake)
    assert run.line("ZAI_TOKEN #1 ").startswith("! ")
    run.ok("web completion")


def test_each_token_gets_a_completion_until_one_answers(fake, make_settings):
    refused = jwt({"id": "someone-else"})
    accepted = jwt({"id": TOKEN_USER})
    fake.accepted_tokens = (accepted,)
    run = check(make_settings(zai_tokens=(refused, accepted)), fake)
    assert "token refused (401)" in run.failed("ZAI_TOKEN #1)")
    run.ok("ZAI_TOKEN #2)")
    assert run.code == 0


def test_every_token_is_asked_even_after_one_answered(fake, make_settings):
    accepted = jwt({"id": TOKEN_USER})
    refused = jwt({"id": "someone-else"})
    fake.accepted_tokens = (accepted,)
    run = check(make_settings(zai_tokens=(accepted, refused)), fake)
    run.ok("ZAI_TOKEN #1)")
    assert "token refused (401)" in run.failed("ZAI_TOKEN #2)")
    assert run.code == 0


def test_a_refusal_every_token_gets_is_asked_once(fake, make_settings):
    tokens = (jwt({"id": TOKEN_USER}), jwt({"id": TOKEN_USER + "-2"}))
    fake.accepted_tokens = tokens
    fake.captcha_required = True
    run = check(make_settings(zai_tokens=tokens), fake)
    assert "captcha" in run.failed("ZAI_TOKEN #1)")
    assert "ZAI_TOKEN #2)" not in run.text
    assert len(fake.requests) == 1


@pytest.mark.parametrize(("arrange", "outcome", "setting"), [
    (lambda fake, s: setattr(fake, "captcha_required", True), "captcha", "ZAI_API_KEY"),
    (lambda fake, s: fake.fail_next("captcha_http"), "captcha", "UPSTREAMS=web,api"),
    (lambda fake, s: fake.fail_next("user_level"), "refused for this user level (403)", "ZAI_TOKEN"),
    (lambda fake, s: setattr(fake, "min_fe_version", "prod-fe-9.0.0"), "front-end version rejected (426)",
     "FE_VERSION"),
    (lambda fake, s: s.update(signature_secret="not-the-secret"), "signature rejected", "SIGNATURE_SECRET"),
    (lambda fake, s: setattr(fake, "scheme", "sha256"), "signature rejected", "SIGNATURE_SCHEME"),
    (lambda fake, s: fake.fail_next("405"), "firewall (405)", "UPSTREAM_PROXY"),
    (lambda fake, s: fake.fail_next("429"), "rate-limited (429)", "ZAI_TOKEN"),
], ids=["captcha", "captcha_http", "user_level", "426", "signature_secret", "signature_scheme", "firewall", "rate_limited"])
def test_each_web_refusal_is_named_with_its_setting(fake, make_settings, arrange, outcome, setting):
    overrides: dict = {}
    arrange(fake, overrides)
    run = check(make_settings(**overrides), fake)
    line = run.failed("web completion")
    assert f"): {outcome}: " in line and setting in line
    assert run.code == 1
    assert len(fake.requests) == 1  # one completion: no retry with another token


# ---- the official API -----------------------------------------------------------------

@pytest.fixture
def api_settings(make_settings, official):
    def make(keys=DEFAULT_KEYS[:1], **overrides):
        overrides.setdefault("api_base", official.base_url)
        return make_settings(zai_api_keys=tuple(keys), **overrides)

    return make


def test_official_api_alone_works(official, api_settings):
    run = check(api_settings())
    assert run.code == 0
    settings_line = run.ok("settings")
    assert "upstreams api (UPSTREAMS empty: api since ZAI_API_KEY is set)" in settings_line
    assert "model glm-4.6 for MODEL_NAME=GLM-4.6" in settings_line
    run.ok(f"TCP 127.0.0.1:{official.port}")
    assert "works: answered" in run.ok("official API ZAI_API_KEY #1")
    assert "web" not in run.text.replace("upstreams api", "")
    body = official.requests[0].body
    assert body["model"] == "glm-4.6" and body["max_tokens"] == 1 and body["thinking"] == {"type": "disabled"}


@pytest.mark.parametrize(("code", "outcome", "fix"), [
    ("1000", "bad key (1000-1003)", "replace this key in ZAI_API_KEY"),
    ("1002", "bad key (1000-1003)", "replace this key in ZAI_API_KEY"),
    ("1113", "no balance (1113)", "MODEL_NAME=GLM-4.5-Flash (free)"),
    ("1302", "rate-limited (1302-1305)", "add keys to ZAI_API_KEY"),
    ("1305", "rate-limited (1302-1305)", "add keys to ZAI_API_KEY"),
])
def test_each_key_outcome_is_named_with_the_setting(official, api_settings, code, outcome, fix):
    official.fail_key(DEFAULT_KEYS[0], code)
    run = check(api_settings())
    line = run.failed("official API ZAI_API_KEY #1")
    assert f"on glm-4.6: {outcome}: " in line and fix in line.split(" → ")[-1]
    assert run.code == 1
    assert len(official.requests) == 1  # the key alone: no second key tried


def test_an_unknown_model_names_api_model_map(official, api_settings):
    run = check(api_settings(api_model_map=(("GLM-4.6", "glm-9000"),)))
    line = run.failed("official API ZAI_API_KEY #1")
    assert "unknown model glm-9000 (1211)" in line and "API_MODEL_MAP" in line
    assert run.code == 1


def test_each_key_is_checked_and_one_working_key_is_enough(official, api_settings):
    official.fail_key(DEFAULT_KEYS[0], "1000")
    run = check(api_settings(keys=DEFAULT_KEYS))
    run.failed("ZAI_API_KEY #1")
    run.ok("ZAI_API_KEY #2")
    assert [r.key for r in official.requests] == list(DEFAULT_KEYS)
    assert run.code == 0


def test_running_out_of_time_after_a_key_answered_is_no_failure(make_settings):
    with FakeOfficial(chunk_delay=1.2) as slow:  # the first key's answer outlasts the budget
        run = check(make_settings(zai_api_keys=DEFAULT_KEYS, api_base=slow.base_url), budget_s=2.0)
    run.ok("official API ZAI_API_KEY #1")
    assert run.line("ZAI_API_KEY #2 and later").startswith("! ")
    assert run.code == 0


def test_unreachable_official_api(api_settings, closed_port):
    run = check(api_settings(api_base=f"http://127.0.0.1:{closed_port}/api/paas/v4"))
    assert "ZAI_API_BASE" in run.failed(f"TCP 127.0.0.1:{closed_port}")
    run.failed("official API: not checked further")
    assert run.code == 1


def hear_nothing(conn, stop):
    """Reads the request, then says nothing until the test ends."""
    with conn:
        try:
            conn.recv(65536)
            stop.wait(10)
        except OSError:
            pass


def test_a_silent_official_api_names_the_settings_to_check(api_settings):
    with raw_server(hear_nothing) as port:
        base = f"http://127.0.0.1:{port}/api/paas/v4"
        run = check(api_settings(api_base=base), completion_timeout_s=0.5)
    line = run.failed("official API ZAI_API_KEY #1")
    found, fix = line.split(" → ")
    assert "no answer in time" in found
    assert f"ZAI_API_BASE (now {base})" in fix and "UPSTREAM_PROXY" in fix and "UPSTREAM_READ_TIMEOUT" in fix
    assert run.code == 1


def test_web_refuses_but_the_api_answers_exits_0(fake, official, api_settings):
    fake.captcha_required = True
    run = check(api_settings(upstreams=("web", "api")), fake)
    assert "upstreams web then api (UPSTREAMS=web,api)" in run.ok("settings")
    web = run.failed("web completion")
    assert "captcha" in web and "the official API answers instead" in web
    assert "set ZAI_API_KEY" not in web and "UPSTREAMS=web,api" not in web  # already so: no advice to set them
    run.ok("official API ZAI_API_KEY #1")
    assert run.code == 0 and run.lines[-1] == "✓ zto can answer with this setup."


def test_nothing_answers_exits_1(fake, official, api_settings):
    fake.captcha_required = True
    official.fail_key(DEFAULT_KEYS[0], "1113")
    run = check(api_settings(upstreams=("web", "api")), fake)
    run.failed("web completion")
    run.failed("official API ZAI_API_KEY #1")
    assert run.code == 1 and run.lines[-1].startswith("✗ no configured upstream answered")


# ---- limits ------------------------------------------------------------------------------

def test_a_slow_upstream_runs_out_of_budget_instead_of_hanging(make_settings):
    with FakeZai(latency=3) as fake:
        started = time.monotonic()
        run = check(make_settings(upstream_url=fake.completions_url), fake, budget_s=1.0, step_timeout_s=0.6)
        elapsed = time.monotonic() - started
    assert elapsed < 8  # generous: the point is that it ends
    assert run.code == 1
    assert "did not answer in time" in run.failed("web landing page")
    assert "the 1 s budget ran out" in run.failed("web chat: not finished")


def test_the_watchdog_ends_a_run_that_a_trickling_server_holds(trickling_server, tmp_path, capsys):
    started = time.monotonic()
    code = doctor.main(environ={"UPSTREAM_URL": f"http://127.0.0.1:{trickling_server}/api/chat/completions"},
                       env_dir=tmp_path, budget_s=1.0)
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert code == 1
    assert elapsed < 10  # generous: the point is that it ends although no read timed out
    assert "✗ doctor: gave up after 2.5 s" in out
    assert f"✓ TCP 127.0.0.1:{trickling_server}" in out


def test_invalid_settings_fail_the_first_step(tmp_path, capsys):
    code = doctor.main(environ={"UPSTREAMS": "web,carrier-pigeon"}, env_dir=tmp_path)
    out = capsys.readouterr().out
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith("✗ settings"))
    assert "UPSTREAMS='web,carrier-pigeon' is not valid" in line


# ---- as a user runs it ----------------------------------------------------------------------

def run_command(args: list[str], cwd, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    names = {name for name, _, _ in setting_docs()} | set(PROXY_VARIABLES)
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update({"PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8", **(extra_env or {})})
    return subprocess.run([sys.executable, "-m", "zto", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


def test_python_m_zto_doctor_reads_env_local(fake, tmp_path):
    token = jwt({"id": TOKEN_USER, "exp": int(time.time()) + 86400})
    fake.accepted_tokens = (token,)
    (tmp_path / ".env.local").write_text(
        f"UPSTREAM_URL={fake.completions_url}\nDEFAULT_KEY={API_KEY}\nZAI_TOKEN={token}\n")
    result = run_command(["doctor"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ web completion (GLM-4.6 → glm-4.6, ZAI_TOKEN #1)" in result.stdout
    assert str(tmp_path) in result.stdout.splitlines()[0]
    assert token not in result.stdout + result.stderr and API_KEY not in result.stdout + result.stderr
    assert [r.token for r in fake.requests] == [token]


def test_python_m_zto_doctor_with_both_upstreams(fake, official, tmp_path):
    fake.captcha_required = True
    key, bad_key = DEFAULT_KEYS[1], "ffffffffffffffffffffffffffffffff.NotAKeyOfTheFake"
    (tmp_path / ".env.local").write_text(
        f"UPSTREAM_URL={fake.completions_url}\nZAI_API_BASE={official.base_url}\nZAI_API_KEY={key},{bad_key}\n"
        "UPSTREAMS=web,api\n")
    result = run_command(["doctor"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # the clients' own log lines stay out of the report
    assert "bad key (1000-1003)" in next(line for line in result.stdout.splitlines() if "ZAI_API_KEY #2" in line)
    assert bad_key not in result.stdout
    assert "✗ web completion (GLM-4.6 → glm-4.6, guest token): captcha: " in result.stdout
    assert "✓ official API ZAI_API_KEY #2" not in result.stdout  # numbered within ZAI_API_KEY: this is #1
    assert "✓ official API ZAI_API_KEY #1 " in result.stdout
    assert key not in result.stdout + result.stderr


# ---- REDIS_URL -----------------------------------------------------------------------

REDIS_PASSWORD = "r3dis-Pass-0123456789"


def test_a_working_redis_url_is_a_step_and_reads_the_statistics(fake, make_settings, redis_server):
    redis.Redis.from_url(redis_server.url).hset("zto:stats:totals", "total", 7)
    run = check(make_settings(redis_url=redis_server.url), fake)
    assert run.code == 0
    assert run.ok(f"REDIS_URL {redis_server.url}").endswith("PING answered; zto:stats: holds the statistics of 7 request(s)")
    assert run.lines[-1] == "✓ zto can answer with this setup."


def test_an_unreachable_redis_fails_and_so_does_the_exit_status(fake, make_settings, closed_port):
    url = f"redis://127.0.0.1:{closed_port}/0"
    run = check(make_settings(redis_url=url), fake)
    line = run.failed(f"REDIS_URL {url}")
    assert "ConnectionError" in line and "Connection refused" in line
    assert "→ check REDIS_URL's host and port" in line
    run.ok("web completion")  # the upstreams are still checked, and answer
    assert run.code == 1
    assert run.lines[-1].startswith("✗ zto can answer, but REDIS_URL does not work")


def test_a_database_number_redis_does_not_have_fails_with_redis_message(fake, make_settings, redis_server):
    url = redis_server.url.rsplit("/", 1)[0] + "/99"
    run = check(make_settings(redis_url=url), fake)
    line = run.failed(f"REDIS_URL {url}")
    assert "DB index is out of range" in line and "databases" in line
    assert run.code == 1


@pytest.mark.parametrize(("given", "said"), [
    (REDIS_PASSWORD, None), ("wrong-password-987", "invalid username-password pair"), ("", "AuthenticationError")])
def test_the_redis_password_is_never_printed(fake, make_settings, redis_server, given, said):
    redis.Redis.from_url(redis_server.url).config_set("requirepass", REDIS_PASSWORD)
    netloc = f":{given}@" if given else ""
    url = f"redis://{netloc}127.0.0.1:{redis_server.port}/0"
    run = check(make_settings(redis_url=url), fake)
    shown = f"redis://:***@127.0.0.1:{redis_server.port}/0" if given else url
    if said is None:
        run.ok(f"REDIS_URL {shown}")
        assert run.code == 0
    else:
        line = run.failed(f"REDIS_URL {shown}")
        assert said in line and "→ set the password in REDIS_URL" in line
        assert run.code == 1
    assert REDIS_PASSWORD not in run.text and "wrong-password-987" not in run.text


def test_a_password_in_the_query_is_hidden_too():
    url = "unix:///run/redis.sock?db=3&password=s%40cret-pass"
    assert doctor_redis.shown_url(url) == "unix:///run/redis.sock?db=3&password=***"
    assert "cret" not in doctor_redis._hidden(f"cannot use {url} (s@cret-pass)", url)


def test_without_redis_url_there_is_no_redis_step_but_several_workers_get_a_warning(fake, make_settings):
    run = check(make_settings(), fake)
    assert "REDIS_URL" not in run.text and run.code == 0
    run = check(make_settings(workers=2), fake)
    assert "each worker keeps its own statistics" in run.line("! REDIS_URL: empty with WEB_CONCURRENCY=2")
    assert run.code == 0


def test_python_m_zto_doctor_exits_1_when_nothing_answers(fake, tmp_path):
    fake.guest_status = 403
    (tmp_path / ".env.local").write_text(f"UPSTREAM_URL={fake.completions_url}\n")
    result = run_command(["doctor"], tmp_path, {"PYTHONIOENCODING": "ascii"})  # a terminal without ✓
    assert result.returncode == 1
    assert "[FAIL] web guest token" in result.stdout  # marks a terminal can show


def test_python_m_zto_without_a_command_shows_usage(tmp_path):
    result = run_command([], tmp_path)
    assert result.returncode == 2 and "doctor" in result.stdout
    result = run_command(["frobnicate"], tmp_path)
    assert result.returncode == 2 and "unknown command" in result.stderr


def test_the_command_line_imports_nothing_heavy_before_needed():
    code = "import sys, zto.__main__; print(sorted(m for m in ('requests', 'flask', 'urllib3') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "[]", result.stderr


def test_troubleshooting_starts_with_make_doctor_and_docs_mention_it(client):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Troubleshooting"):]
    assert section.split("\n\n")[1].startswith("Start with `make doctor`")
    assert "$ make doctor\n" in section[:3000]
    assert "doctor:" in (ROOT / "Makefile").read_text()
    assert "make doctor" in client.get("/docs").get_data(as_text=True)
