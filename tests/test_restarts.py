"""Restarts under gunicorn: SIGTERM or SIGHUP to the master with answers in flight.

With ``GRACEFUL_TIMEOUT_S=3``, answers of about 1 s finish, answers of about 8 s end
visibly (an error event with code ``server_shutting_down`` and ``[DONE]``, or a 503 for
a whole answer) before the worker exits, and after SIGTERM new connections are refused.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from urllib.parse import urlsplit

import openai
import pytest
import requests

from conftest import API_KEY

SHORT = "scenario:long50 transport:delay=0.02"  # 51 events: about 1 s
LONG = "scenario:long50 transport:delay=0.16"  # about 8 s
FULL_TEXT = "".join(f"w{i} " for i in range(50))
GRACE_S = 3


class Outcome:
    def __init__(self) -> None:
        self.started = threading.Event()
        self.text = ""
        self.finish_reason: str | None = None
        self.error: Exception | None = None
        self.raw_lines: list[str] = []


def _openai_stream(server, prompt: str, outcome: Outcome) -> None:
    client = openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0, timeout=30)
    try:
        for chunk in client.chat.completions.create(
                model="GLM-4.6", messages=[{"role": "user", "content": prompt}], stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                outcome.text += chunk.choices[0].delta.content
                outcome.started.set()
            if chunk.choices and chunk.choices[0].finish_reason:
                outcome.finish_reason = chunk.choices[0].finish_reason
    except Exception as exc:  # noqa: BLE001 - the outcome is checked by the test
        outcome.error = exc
    finally:
        outcome.started.set()


def _raw_stream(server, prompt: str, outcome: Outcome) -> None:
    """The same over plain HTTP, to see the last lines and a cleanly ended body."""
    try:
        with requests.post(server.base_url + "/chat/completions", stream=True, timeout=30,
                           headers={"Authorization": f"Bearer {API_KEY}"},
                           json={"model": "GLM-4.6", "stream": True,
                                 "messages": [{"role": "user", "content": prompt}]}) as response:
            for line in response.iter_lines(decode_unicode=True):
                if line:
                    outcome.raw_lines.append(line)
                    if '"content"' in line:
                        outcome.started.set()
    except Exception as exc:  # noqa: BLE001
        outcome.error = exc
    finally:
        outcome.started.set()


def _whole(server, prompt: str, outcome: Outcome) -> None:
    client = openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0, timeout=30)
    outcome.started.set()
    try:
        outcome.text = client.chat.completions.create(
            model="GLM-4.6", messages=[{"role": "user", "content": prompt}]).choices[0].message.content
    except Exception as exc:  # noqa: BLE001
        outcome.error = exc


def _connect_refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def _run(fn, *args) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


def _start(start_server, fake, worker_class="gevent"):
    return start_server({"UPSTREAM_URL": fake.completions_url, "DEBUG_MODE": "false", "WORKER_CLASS": worker_class,
                         "GRACEFUL_TIMEOUT_S": str(GRACE_S)}, env_local={"DEFAULT_KEY": API_KEY})


def _assert_ended_visibly(outcome: Outcome) -> None:
    assert isinstance(outcome.error, openai.APIError), outcome.error
    assert outcome.error.code == "server_shutting_down", outcome.error
    assert outcome.text and outcome.text != FULL_TEXT  # it was cut, not finished


def _assert_raw_ended_visibly(outcome: Outcome) -> None:
    assert outcome.error is None, outcome.error  # the chunked body was terminated properly
    assert outcome.raw_lines[-1] == "data: [DONE]"
    assert '"server_shutting_down"' in outcome.raw_lines[-2]


@pytest.mark.parametrize(("sig", "worker_class"), [
    (signal.SIGTERM, "gevent"), (signal.SIGHUP, "gevent"), (signal.SIGTERM, "gthread")])
def test_restart_finishes_short_answers_and_ends_long_ones_visibly(start_server, fake, sig, worker_class):
    """Under gthread an answer ends at its next upstream event after the grace period."""
    server = _start(start_server, fake, worker_class)
    short = [Outcome() for _ in range(2)]
    long = [Outcome() for _ in range(2)]
    raw, whole = Outcome(), Outcome()
    threads = [_run(_openai_stream, server, SHORT, o) for o in short]
    threads += [_run(_openai_stream, server, LONG, o) for o in long]
    threads += [_run(_raw_stream, server, LONG, raw), _run(_whole, server, LONG, whole)]
    for outcome in [*short, *long, raw, whole]:
        assert outcome.started.wait(10)
    time.sleep(0.2)  # the whole answer's request has reached the server
    server.process.send_signal(sig)
    signalled = time.monotonic()

    if sig == signal.SIGTERM and worker_class == "gevent":  # gthread keeps its listening socket until it exits
        refused = False
        while not refused and time.monotonic() - signalled < GRACE_S - 0.5:
            refused = _connect_refused(server.url)
            time.sleep(0.1)
        assert refused, "new connections were still accepted during the grace period"

    for thread in threads:
        thread.join(GRACE_S + 10)
    for outcome in short:
        assert outcome.error is None and outcome.text == FULL_TEXT and outcome.finish_reason == "stop"
    for outcome in long:
        _assert_ended_visibly(outcome)
    _assert_raw_ended_visibly(raw)
    assert isinstance(whole.error, openai.APIStatusError) and whole.error.status_code == 503, whole.error
    assert whole.error.code == "server_shutting_down"

    if sig == signal.SIGTERM:
        assert server.process.wait(10) == 0
    else:  # the new worker serves at once
        answer = requests.post(server.base_url + "/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                               json={"messages": [{"role": "user", "content": "hi"}]}, timeout=10)
        assert answer.status_code == 200
    assert "server_shutting_down" in server.log()


def test_watch_ends_pieces_once_the_grace_period_is_over():
    from zto.shutdown import ServerStopping, Shutdown

    shutdown = Shutdown()
    pieces = shutdown.watch(iter(["a", "b", "c"]))
    assert next(pieces) == "a"
    shutdown.end_answers()
    with pytest.raises(ServerStopping) as caught:
        next(pieces)
    assert caught.value.status == 503 and caught.value.code == "server_shutting_down"


def test_readme_stop_timeouts_outlast_the_grace_period():
    import re
    from pathlib import Path

    from zto.settings import load_settings

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    grace = load_settings({}, env_dir="/nonexistent").graceful_timeout_s
    docker = re.search(r"docker run [^\n]*--stop-timeout (\d+)", readme)
    systemd = re.search(r"^TimeoutStopSec=(\d+)$", readme, re.M)
    assert docker and systemd, "the Docker and systemd examples set no stop timeout"
    assert int(docker.group(1)) > grace and int(systemd.group(1)) > grace
