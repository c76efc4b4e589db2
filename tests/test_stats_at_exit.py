"""A process that ends hands its last statistics to Redis: ``RedisStats.close`` writes what
is pending and removes the process's ``in_flight`` entry, and gunicorn.conf.py's
``worker_int`` / ``worker_exit`` call it (``close_worker``, ``close_app``) whichever way the
worker ends, bounded when Redis does not answer.

Under gunicorn the app comes from a module of the test's own (``--pythonpath``), which
sets a writer interval the test never reaches before building the app: after the writer's
first write (at the first request) nothing is written until the worker's exit, so what
Redis holds afterwards was written there.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time

import openai
import pytest
import redis

from conftest import API_KEY, wait_for
from zto.context import close_app
from zto.stats import PendingRequest
from zto.stats_redis import IN_FLIGHT, RECENT_LIST, TOTALS, RedisStats

NEVER = 3600.0
CHAT = "/v1/chat/completions"
APP_MODULE = f"""
import zto.stats_redis

zto.stats_redis.FLUSH_INTERVAL_S = {NEVER}

from zto import create_app

app = create_app()
"""


def finish_one(store, status: int = 200) -> None:
    store.begin()
    store.finish(PendingRequest("POST", CHAT, "127.0.0.1", "test-agent", model="GLM-4.6"), status)


def chats_in_redis(raw: redis.Redis) -> int:
    return sum(json.loads(item)["path"] == CHAT for item in raw.lrange(RECENT_LIST, 0, -1))


# ---- the store ----------------------------------------------------------------------------

def test_close_writes_what_is_pending_and_removes_the_in_flight_entry(redis_server):
    raw = redis.Redis.from_url(redis_server.url)
    store = RedisStats(redis_server.url, flush_interval=NEVER)
    finish_one(store)
    assert store.flush() and raw.hlen(IN_FLIGHT) == 1  # this process's entry, as every write leaves it
    for status in (200, 200, 502):
        finish_one(store, status)
    store.close()
    totals = raw.hgetall(TOTALS)
    assert (int(totals[b"total"]), int(totals[b"successful"])) == (4, 3)
    assert raw.llen(RECENT_LIST) == 4
    assert raw.hlen(IN_FLIGHT) == 0
    store.close()  # a second close changes nothing
    assert int(raw.hget(TOTALS, "total")) == 4


def test_a_store_never_used_writes_nothing_at_close(redis_server):
    RedisStats(redis_server.url).close()
    assert redis.Redis.from_url(redis_server.url).keys("*") == []


def test_close_app_is_harmless_without_redis(app, client, auth):
    assert client.get("/v1/models", headers=auth).status_code == 200
    close_app(app)
    close_app(app)


# ---- under gunicorn -------------------------------------------------------------------------

@pytest.fixture
def start_slow_flush(start_server, shared_fake, redis_server, tmp_path):
    """Start gunicorn (zto's gunicorn.conf.py) on the app module above, with Redis; return
    the server once the worker's writer made its first write (so its in_flight entry exists)."""
    (tmp_path / "slow_flush_wsgi.py").write_text(APP_MODULE)
    shared_fake.reset()

    def start(**env: str):
        server = start_server({"UPSTREAM_URL": shared_fake.completions_url, "DEBUG_MODE": "false",
                               "REDIS_URL": redis_server.url, **env}, env_local={"DEFAULT_KEY": API_KEY},
                              args=("--pythonpath", str(tmp_path), "slow_flush_wsgi:app"))
        raw = redis.Redis.from_url(redis_server.url)
        assert wait_for(lambda: raw.hlen(IN_FLIGHT) == 1, timeout=20), server.log()
        return server, raw

    return start


def send_chats(server, count: int) -> None:
    with openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=30) as client:
        for n in range(count):
            if n % 2:
                chunks = client.chat.completions.create(model="GLM-4.6", stream=True,
                                                        messages=[{"role": "user", "content": "hi"}])
                assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            else:
                answer = client.chat.completions.create(model="GLM-4.6", messages=[{"role": "user", "content": "hi"}])
                assert answer.choices[0].message.content


def stop(server, sig: signal.Signals, *, ctrl_c: bool = False) -> float:
    """Signal gunicorn's master (and with ``ctrl_c`` its worker first, as a terminal's Ctrl-C
    signals both) and wait for it to exit; the seconds it took."""
    started = time.monotonic()
    if ctrl_c:
        os.kill(int(re.search(r"Booting worker with pid: (\d+)", server.log())[1]), sig)
    server.process.send_signal(sig)
    try:
        assert server.process.wait(timeout=30) == 0, server.log()
    except subprocess.TimeoutExpired:
        pytest.fail(f"gunicorn did not exit within 30 s of {sig.name}:\n{server.log()}")
    return time.monotonic() - started


# gthread with a quit signal (SIGINT, SIGQUIT) is left out: gunicorn's gthread worker can
# hang in its own quit handler, which shuts the thread pool down from inside a signal handler
# that may have interrupted the same pool's submit (both need the pool's lock).
@pytest.mark.parametrize(("worker_class", "sig", "ctrl_c"), [
    ("gevent", signal.SIGTERM, False), ("gthread", signal.SIGTERM, False), ("gevent", signal.SIGINT, True)])
def test_a_stopped_worker_writes_its_last_requests(start_slow_flush, worker_class, sig, ctrl_c):
    server, raw = start_slow_flush(WORKER_CLASS=worker_class)
    send_chats(server, 5)
    assert chats_in_redis(raw) == 0  # all five still in the worker's memory
    stop(server, sig, ctrl_c=ctrl_c)
    assert chats_in_redis(raw) == 5
    assert int(raw.hget(TOTALS, "total")) == raw.llen(RECENT_LIST)  # the chats and the start's GET /v1/models
    assert raw.hlen(IN_FLIGHT) == 0
    assert "Traceback" not in server.log(), server.log()[-3000:]


def test_two_quit_signals_end_the_worker_once_without_a_traceback(start_slow_flush):
    """Both before the first handler ran: under gevent each spawns a handler greenlet, and
    the second one's sys.exit(0) came while the first's was ending the process, which
    gevent printed as a traceback on every such Ctrl-C."""
    server, raw = start_slow_flush()
    send_chats(server, 3)
    worker = int(re.search(r"Booting worker with pid: (\d+)", server.log())[1])
    os.kill(worker, signal.SIGINT)
    os.kill(worker, signal.SIGQUIT)
    stop(server, signal.SIGINT)
    assert chats_in_redis(raw) == 3 and raw.hlen(IN_FLIGHT) == 0
    log = server.log()
    assert "Traceback" not in log and "failed with SystemExit" not in log, log[-3000:]


def test_a_redis_that_does_not_answer_delays_the_exit_briefly(start_slow_flush, redis_server):
    server, raw = start_slow_flush()
    send_chats(server, 3)
    redis_server.kill()
    with socket.socket() as silent:  # a Redis that takes connections and never answers
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind(("127.0.0.1", redis_server.port))
        silent.listen(16)
        took = stop(server, signal.SIGTERM)
    assert took < 15, server.log()
    log = server.log()
    assert "Redis cannot take the last statistics of this process as it ends (TimeoutError: " in log, log
    assert re.search(r"[1-9]\d* request\(s\) may be missing from them", log), log
    assert "Traceback" not in log and "Exception during worker exit" not in log
