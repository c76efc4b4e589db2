"""What the README says about scaling zto out, held against the code and a real gunicorn.

The nginx examples fit zto's limits (``client_max_body_size`` above ``MAX_REQUEST_BYTES``,
the upstream ``keepalive_timeout`` below gunicorn's ``keepalive``); the loopback bind it
documents really binds loopback alone; ``TRUSTED_PROXIES`` believes whoever connects,
as it warns; the metrics table lists exactly the metrics, labels and label values of
``zto/metrics.py``; a worker's fast stop cuts open streams uncounted while SIGTERM lets
them finish; and the figures it quotes are the code's.
"""

from __future__ import annotations

import os
import re
import signal
import socket
from pathlib import Path

import pytest
import redis
import requests
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_restarts import Outcome, _raw_stream, _run

from conftest import API_KEY, free_port
from zto import key_attempts, metrics, stats_redis
from zto.official import OfficialAnswer, rejection
from zto.settings import load_settings
from zto.web_chat import WebAnswer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
NGINX_BLOCKS = re.findall(r"```nginx\n(.*?)```", README, re.S)
UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def flat(text: str) -> str:
    return " ".join(text.split())


def nginx_size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", value.lower()).groups()
    return int(number) * UNITS[unit]


def nginx_seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[unit]


# ---- the nginx examples ------------------------------------------------------------------

def test_every_nginx_example_lets_bodies_up_to_max_request_bytes_through():
    limit = load_settings({}, env_dir="/nonexistent").max_body_bytes
    assert len(NGINX_BLOCKS) >= 2
    for block in NGINX_BLOCKS:
        sizes = re.findall(r"^\s*client_max_body_size (\S+);", block, re.M)
        assert sizes, block
        assert all(nginx_size(size) > limit for size in sizes), block
    assert "MAX_REQUEST_BYTES" in NGINX_BLOCKS[0]


def test_nginx_closes_idle_upstream_connections_before_gunicorn_does():
    gunicorn_keepalive = int(re.search(r"^keepalive = (\d+)", (ROOT / "gunicorn.conf.py").read_text(), re.M)[1])
    upstreams = [block for block in NGINX_BLOCKS if re.search(r"^\s*keepalive \d+;", block, re.M)]
    assert upstreams
    for block in upstreams:
        timeout = re.search(r"^\s*keepalive_timeout (\S+);", block, re.M)
        assert timeout, block
        assert nginx_seconds(timeout[1]) < gunicorn_keepalive


# ---- who may reach the port ---------------------------------------------------------------

def reaches(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
    except OSError:
        return False
    return True


def test_the_documented_loopback_bind_listens_on_loopback_alone(start_server, shared_fake):
    assert 'GUNICORN_CMD_ARGS="--bind 127.0.0.1:9090" make run' in flat(README)
    env = {"UPSTREAM_URL": shared_fake.completions_url, "DEBUG_MODE": "false"}
    default = start_server(env)
    assert reaches("127.0.0.2", int(default.url.rsplit(":", 1)[1]))  # gunicorn.conf.py's 0.0.0.0
    port = free_port()
    bound = start_server({**env, "PORT": str(port), "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}"})
    assert requests.get(bound.url + "/healthz", timeout=5).status_code == 200
    assert not reaches("127.0.0.2", port)


def test_trusted_proxies_believes_whoever_connects_as_the_readme_warns(client_with):
    warning = flat(README[README.index("With `TRUSTED_PROXIES=1`, zto takes"):])
    assert "passes its this-machine-only rule" in warning and "fresh count of wrong `DASHBOARD_KEY`s" in warning
    client = client_with(trusted_proxies=1, api_keys=("sk-your-key",), dashboard_key="dashboard-key-0123456789")
    direct = {"REMOTE_ADDR": "203.0.113.5"}  # not loopback, and no proxy in between

    def chat(headers):
        return client.post("/v1/chat/completions", json={}, environ_base=direct,
                           headers={"Authorization": "Bearer sk-your-key", **headers})

    assert chat({}).get_json()["error"]["code"] == "published_key_refused"
    assert chat({"X-Forwarded-For": "127.0.0.1"}).status_code == 400  # past the key check: an empty body

    def dashboard(address):
        return client.get("/dashboard/stats", environ_base=direct,
                          headers={"Authorization": "Bearer wrong", "X-Forwarded-For": address}).status_code

    assert [dashboard("198.51.100.1") for _ in range(key_attempts.LIMIT + 1)][-1] == 429
    assert dashboard("198.51.100.2") == 401  # another name, a fresh count


# ---- the metrics table --------------------------------------------------------------------

LABEL_VALUES = {
    "kind": {*metrics.UPSTREAM_ERROR_KINDS.values(), metrics.OTHER_KIND},
    "token_kind": set(metrics.TOKEN_KINDS),
    "upstream": {WebAnswer.upstream, OfficialAnswer.upstream},
    "fell_back": {"true", "false"},
    "reason": {"upstream_unauthorized", "insufficient_quota"},  # the refusals ApiKeys.set_aside is given
}


def code_metrics() -> dict[str, set[str]]:
    """Every zto_* metric the code serves, with its label names."""
    m = metrics.Metrics()
    m.observe_request("GET", "/v1/models", 200, 0.01)
    m.first_token(0.1)
    m.upstream_error("upstream_timeout")
    for kind in metrics.TOKEN_KINDS:
        m.upstream_opened(kind)()
    m.upstream_answered("web", False)
    m.api_keys_set_aside({("0f3c9a…(49 chars)", "insufficient_quota"): 5.0})
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(m.registry).decode()):
        if family.name.startswith("zto_"):
            name = family.name + ("_total" if family.type == "counter" else "")
            found[name] = {label for sample in family.samples for label in sample.labels} - {"le"}
    return found


def readme_metrics() -> dict[str, set[str]]:
    """The metrics table: metric -> the lowercase words in backticks of its labels cell."""
    table = README[README.index("- **`/metrics`**"):README.index("plus the usual `process_*`")]
    rows = re.findall(r"^\s*\| `(zto_\w+)` \|([^|]*)\|", table, re.M)
    return {name: set(re.findall(r"`([a-z_0-9]+)`", labels)) for name, labels in rows}


def test_the_metrics_table_lists_the_code_metrics_labels_and_values():
    code, readme = code_metrics(), readme_metrics()
    assert set(readme) == set(code)
    for name, labels in code.items():
        expected = labels | {value for label in labels for value in LABEL_VALUES.get(label, ())}
        assert readme[name] == expected, name


def test_the_reasons_a_key_is_set_aside_are_the_two_the_table_names():
    # OfficialUpstream.start sets a key aside for a retryable refusal other than a rate limit.
    refusals = [rejection(status, code, "said") for status in (400, 401, 403, 404, 429, 500)
                for code in ("", *map(str, range(1000, 1400)))]
    assert {r.code for r in refusals if r.retryable and r.code != "upstream_rate_limited"} == LABEL_VALUES["reason"]


# ---- what a worker's end does to open streams ---------------------------------------------

STREAM = "scenario:long50 transport:delay=0.06"  # 51 events: about 3 s


def chat_records(raw: redis.Redis) -> int:
    return sum(b'"/v1/chat/completions"' in record for record in raw.lrange(stats_redis.RECENT_LIST, 0, -1))


@pytest.mark.parametrize("stop", ["ctrl_c", "sigterm"])
def test_a_fast_stop_cuts_open_streams_uncounted_and_sigterm_lets_them_finish(start_server, fake, redis_server,
                                                                                stop):
    server = start_server({"UPSTREAM_URL": fake.completions_url, "DEBUG_MODE": "false",
                           "REDIS_URL": redis_server.url}, env_local={"DEFAULT_KEY": API_KEY})
    outcome = Outcome()
    reader = _run(_raw_stream, server, STREAM, outcome)
    assert outcome.started.wait(15)
    if stop == "ctrl_c":  # a terminal's Ctrl-C signals the worker and the master
        os.kill(int(re.search(r"Booting worker with pid: (\d+)", server.log())[1]), signal.SIGINT)
        server.process.send_signal(signal.SIGINT)
    else:
        server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0, server.log()
    reader.join(15)
    raw = redis.Redis.from_url(redis_server.url)
    if stop == "ctrl_c":
        assert isinstance(outcome.error, requests.RequestException), outcome.error
        assert outcome.raw_lines[-1] != "data: [DONE]" and "server_shutting_down" not in "".join(outcome.raw_lines)
        assert chat_records(raw) == 0
    else:
        assert outcome.error is None and outcome.raw_lines[-1] == "data: [DONE]"
        assert chat_records(raw) == 1
    passage = flat(README[README.index("- `REDIS_URL` set: totals"):])
    assert "streams still open are cut (the client's body ends without an error event or `[DONE]`) and not counted" \
        in passage
    assert "running answers first get `GRACEFUL_TIMEOUT_S` to finish" in passage


# ---- figures the README quotes -----------------------------------------------------------

def test_the_figures_the_readme_quotes_are_the_code_ones():
    text = flat(README)
    assert f"After {key_attempts.LIMIT} wrong keys from one address within a minute" in text
    assert key_attempts.WINDOW_S == key_attempts.BLOCK_S == 60
    assert f"about {key_attempts.LIMIT} × workers × instances tries a minute" in text
    assert f"stay in the \"In flight\" card for up to {stats_redis.IN_FLIGHT_STALE_S:g} s" in text


def test_the_python_example_says_how_to_install_openai():
    section = README[README.index("### Python (`openai` package)"):README.index("```python")]
    assert "`pip install openai`" in section
    assert "openai" not in (ROOT / "requirements.txt").read_text()  # make run does not install it


def test_the_anthropic_example_says_how_to_install_anthropic():
    start = README.index("## Claude Code (Anthropic's Messages API)")
    section = README[start:README.index("import anthropic", start)]
    assert "`pip install anthropic`" in section
    assert "anthropic" not in (ROOT / "requirements.txt").read_text()  # make run does not install it
