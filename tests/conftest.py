"""Fixtures: a fake Z.ai upstream, apps built on it, and zto running under gunicorn.

- ``fake``: a fresh ``FakeZai`` on a loopback port for one test; ``official``: a fresh
  ``FakeOfficial`` (Z.ai's official API), and ``shared_official`` one for the session.
- ``make_settings`` / ``app`` / ``client``: the app in-process, pointed at ``fake``.
- ``shared_fake`` + ``live_server``: one fake and one gunicorn for the session,
  started the way ``make run`` starts it (``gunicorn -c gunicorn.conf.py``), in a
  scratch directory whose ``.env.local`` holds the test key; ``shared_fake`` is
  reset before each test that uses it.
- ``start_server``: a gunicorn with extra settings, for tests of other configurations.
- ``redis_server``: Debian's ``redis-server`` on a free loopback port, without persistence;
  it can be killed and started again on the same port (an outage).
- ``sdk``: real ``openai`` clients (no retries) for a server, closed after the test.
- An autouse fixture removes zto's settings and proxy variables from the environment.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
import requests

from fake_official import DEFAULT_KEYS as DEFAULT_OFFICIAL_KEYS
from fake_official import FakeOfficial
from fake_zai import FakeZai
from zto import create_app
from zto.settings import Settings, load_settings, setting_docs

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sk-test-key"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name, _, _ in setting_docs():
        monkeypatch.delenv(name, raising=False)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake():
    with FakeZai() as server:
        yield server


@pytest.fixture
def official():
    with FakeOfficial() as server:
        yield server


@pytest.fixture(scope="session")
def shared_official():
    with FakeOfficial() as server:
        yield server


def api_env(official: FakeOfficial, **extra: str) -> dict[str, str]:
    """The environment of a gunicorn answering from ``official`` alone (UPSTREAMS=api)."""
    return {"UPSTREAMS": "api", "ZAI_API_KEY": ",".join(DEFAULT_OFFICIAL_KEYS), "ZAI_API_BASE": official.base_url,
            "DEBUG_MODE": "true", **extra}


@pytest.fixture
def make_settings(fake, tmp_path):
    def make(**overrides) -> Settings:
        values = {"upstream_url": fake.completions_url, "debug": False, "api_keys": (API_KEY,)}
        values.update(overrides)
        return load_settings({}, env_dir=tmp_path, **values)

    return make


@pytest.fixture
def app(make_settings):
    return create_app(make_settings())


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def client_with(make_settings):
    """A test client of an app built with these setting overrides."""

    def make(**overrides):
        return create_app(make_settings(**overrides)).test_client()

    return make


def ask(client, prompt="hi", headers=None, **body):
    """POST a chat completion through a test client (the test key unless ``headers``)."""
    body.setdefault("messages", [{"role": "user", "content": prompt}])
    return client.post("/v1/chat/completions", headers=headers or {"Authorization": f"Bearer {API_KEY}"},
                       json=body, buffered=True)


@pytest.fixture
def auth():
    return {"Authorization": f"Bearer {API_KEY}"}


def wait_for(condition, timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it is true (True) or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str  # e.g. http://127.0.0.1:PORT
    process: subprocess.Popen
    log_path: Path

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_gunicorn(workdir: Path, env: dict[str, str], env_local: dict[str, str] | None = None,
                   timeout: float = 30.0, args: tuple[str, ...] = ()) -> LiveServer:
    """Start ``gunicorn -c gunicorn.conf.py`` as ``make run`` does, from ``workdir``;
    ``args`` are more of gunicorn's arguments (e.g. another app module)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if env_local is not None:
        (workdir / ".env.local").write_text("".join(f"{k}={v}\n" for k, v in env_local.items()))
    port = int(env.get("PORT") or free_port())
    full_env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    full_env.update(env, PORT=str(port), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    log_path = workdir / "gunicorn.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), *args],
        cwd=workdir, env=full_env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{server.log()}")
        try:
            if requests.get(server.url + "/v1/models", timeout=1).status_code == 200:
                return server
        except requests.RequestException:  # not listening yet, or too busy starting to answer in time
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"gunicorn did not start within {timeout}s:\n{server.log()}")


@pytest.fixture(scope="session")
def shared_fake():
    with FakeZai() as server:
        yield server


@pytest.fixture(scope="session")
def live_server(shared_fake, tmp_path_factory):
    server = start_gunicorn(
        tmp_path_factory.mktemp("live"),
        env={"UPSTREAM_URL": shared_fake.completions_url, "DEBUG_MODE": "false", "THREADS": "32"},
        env_local={"DEFAULT_KEY": API_KEY},
    )
    yield server
    server.stop()


@pytest.fixture
def live(live_server, shared_fake):
    """The session's gunicorn server, with its fake upstream reset for this test."""
    shared_fake.reset()
    shared_fake.scheme, shared_fake.min_fe_version = "hmac", "prod-fe-1.0.94"
    return live_server


@pytest.fixture
def sdk():
    """Make openai clients (no retries), closed after the test so no idle connection
    keeps gunicorn waiting when it stops."""
    clients = []

    def make(server, key: str = API_KEY) -> openai.OpenAI:
        clients.append(openai.OpenAI(api_key=key, base_url=server.base_url, max_retries=0, timeout=20))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def start_server(tmp_path):
    """Start a gunicorn with the given environment; stopped after the test."""
    servers = []

    def start(env: dict[str, str], env_local: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> LiveServer:
        server = start_gunicorn(tmp_path / f"server{len(servers)}", env, env_local, args=args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    """A real ``redis-server`` on a loopback port, in-memory only."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--daemonize", "no"],
            stdout=(self.workdir / "redis.log").open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server did not start within {timeout}s")

    def kill(self) -> None:
        """SIGKILL: an outage, not a shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def redis_server(tmp_path):
    if not os.path.exists(REDIS_SERVER) and not os.environ.get("CI"):
        pytest.skip("redis-server is not installed: apt-get install redis-server (CI installs it)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()
