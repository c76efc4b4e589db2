"""Beyond one process: the statistics in a real Redis (``RedisStats``), then zto under
gunicorn as two instances sharing one ``redis-server`` (one of them with two workers),
Redis killed in the middle of streams, and ``/metrics`` summing two workers and
showing the official API keys any of them set aside.

The pages themselves in a browser are in ``test_browser.py``.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

import zai_scenarios
from conftest import API_KEY, api_env, wait_for
from fake_official import DEFAULT_KEYS as OFFICIAL_KEYS
from zto.errors import StatsUnavailable
from zto.stats import RECORD_FIELDS, PendingRequest
from zto.stats_redis import IN_FLIGHT, RECENT_LIST, TOTALS, RedisStats

LONG_TEXT = zai_scenarios.SCENARIOS["long"].content
NEVER = 3600.0  # a writer interval the test never reaches: the test flushes itself


def finish_one(store, status: int = 200, **fields):
    store.begin()
    pending = PendingRequest("POST", "/v1/chat/completions", "127.0.0.1", "test-agent", model="GLM-4.6", **fields)
    return store.finish(pending, status)


# ---- the store, in-process ---------------------------------------------------------------

def test_two_stores_on_one_redis_show_the_same_sum(redis_server):
    a, b = RedisStats(redis_server.url, flush_interval=NEVER), RedisStats(redis_server.url, flush_interval=NEVER)
    try:
        for _ in range(3):
            finish_one(a, stream=True)
        finish_one(b, 502, error="upstream_unavailable")
        b.begin()  # one request still running in b
        assert a.flush() and b.flush()
        for store in (a, b):
            snapshot = store.snapshot()
            assert snapshot["shared"] is True
            assert (snapshot["total_requests"], snapshot["successful_requests"], snapshot["failed_requests"],
                    snapshot["in_flight"]) == (4, 3, 1, 1)
            recent = snapshot["recent"]
            assert [r["status"] for r in recent] == [502, 200, 200, 200]  # newest first
            assert set(recent[0]) == {*RECORD_FIELDS, "ok"} and recent[0]["ok"] is False
            assert recent[0]["error"] == "upstream_unavailable" and recent[1]["stream"] is True
            assert snapshot["last_request_at"] == max(r["time"] for r in recent)
    finally:
        a.close()
        b.close()


def test_records_of_other_versions_are_read_generically(redis_server):
    store = RedisStats(redis_server.url, flush_interval=NEVER)
    try:
        finish_one(store)
        assert store.flush()
        raw = redis.Redis.from_url(redis_server.url)
        newer = {**store.snapshot()["recent"][0], "upstream": "api", "fell_back": True}
        del newer["ok"]
        raw.lpush(RECENT_LIST, json.dumps(newer), b'{"time": 1.0}')  # a newer and a broken record
        recent = store.snapshot()["recent"]
        assert len(recent) == 2 and recent[0]["status"] == 200  # the unknown fields dropped, the broken one skipped
    finally:
        store.close()


def test_an_outage_costs_no_count_and_the_snapshot_says_unavailable(redis_server):
    store = RedisStats(redis_server.url, flush_interval=NEVER)
    try:
        finish_one(store)
        assert store.flush()
        redis_server.kill()
        for _ in range(5):
            finish_one(store, 404)  # memory only: nothing waits on the dead Redis
        assert store.flush() is False
        with pytest.raises(StatsUnavailable) as caught:
            store.snapshot()
        assert caught.value.status == 503 and caught.value.code == "statistics_unavailable"
        redis_server.start()  # a fresh, empty Redis on the same port
        assert store.flush()
        snapshot = store.snapshot()
        assert (snapshot["total_requests"], snapshot["failed_requests"], len(snapshot["recent"])) == (5, 5, 5)
    finally:
        store.close()


def test_a_stalled_redis_counts_each_request_once(redis_server):
    """A write that times out may still run: a stalled Redis runs what it had received when
    it resumes. The retry must not add the same requests again."""
    store = RedisStats(redis_server.url, flush_interval=NEVER)
    raw = redis.Redis.from_url(redis_server.url)
    try:
        finish_one(store)  # starts the writer, whose first write is at once (then not for an hour)
        assert wait_for(lambda: raw.hlen(IN_FLIGHT) == 1, timeout=10)
        assert store.flush() and total(raw) == 1
        for _ in range(5):
            finish_one(store)
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            assert store.flush() is False  # sent, then no answer within the timeout
            finish_one(store, 404)
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        assert wait_for(lambda: total(raw) == 6, timeout=10), "the write that timed out did not run"
        assert store.flush()  # the same batch again, then the newer request
        snapshot = store.snapshot()
        assert (snapshot["total_requests"], snapshot["failed_requests"], len(snapshot["recent"])) == (7, 1, 7)
        assert len({r["time"] for r in snapshot["recent"]}) == 7  # no record twice
        finish_one(store)
        store.close()  # goes on numbering after the retried batch
        assert total(raw) == 8 and raw.hlen(IN_FLIGHT) == 0
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
        store.close()


def total(raw: redis.Redis) -> int:
    return int(raw.hget(TOTALS, "total") or 0)


def test_a_failed_write_is_retried_as_it_was_by_close(redis_server):
    store = RedisStats(redis_server.url, flush_interval=NEVER)
    raw = redis.Redis.from_url(redis_server.url)
    try:
        for _ in range(3):
            finish_one(store)
        assert wait_for(lambda: raw.hlen(IN_FLIGHT) == 1, timeout=10)  # the writer's first write is done
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            assert store.flush() is False
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        assert wait_for(lambda: total(raw) == 3, timeout=10), "the write that timed out did not run"
        finish_one(store)
        store.close()  # the batch that timed out (Redis has it: skipped), then the newer one
        assert total(raw) == 4 and raw.llen(RECENT_LIST) == 4 and raw.hlen(IN_FLIGHT) == 0
    finally:
        store.close()


def test_in_flight_entries_of_processes_long_gone_are_removed(redis_server):
    """A worker killed outright never removes its in_flight entry: after 30 s it is left out
    of the sum, after an hour the dashboard's read removes it (and at once one it cannot read)."""
    store = RedisStats(redis_server.url, flush_interval=NEVER)
    raw = redis.Redis.from_url(redis_server.url)
    try:
        now = time.time()
        raw.hset(IN_FLIGHT, mapping={"live": f"2 {now - 1}", "stale": f"3 {now - 60}", "gone": f"4 {now - 7200}",
                                     "garbled": "not a count"})
        assert store.snapshot()["in_flight"] == 2
        assert sorted(raw.hkeys(IN_FLIGHT)) == [b"live", b"stale"]
    finally:
        store.close()


def test_the_writer_thread_writes_on_its_own(redis_server):
    store = RedisStats(redis_server.url, flush_interval=0.05)
    try:
        finish_one(store)
        assert wait_for(lambda: store.snapshot()["total_requests"] == 1, timeout=20), "the writer never wrote"
    finally:
        store.close()


# ---- under gunicorn --------------------------------------------------------------------

def ask(server, prompt: str = "hi", *, stream: bool = False, key: str = API_KEY) -> str:
    """One chat completion through the real openai package, on a connection of its own
    (so that requests spread over a server's workers)."""
    with openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=30) as client:
        if stream:
            chunks = client.chat.completions.create(model="GLM-4.6", stream=True,
                                                    messages=[{"role": "user", "content": prompt}])
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        answer = client.chat.completions.create(model="GLM-4.6", messages=[{"role": "user", "content": prompt}])
        return answer.choices[0].message.content


def snapshot(server) -> requests.Response:
    with requests.Session() as session:  # a fresh connection: any worker may answer
        return session.get(server.url + "/dashboard/snapshot", timeout=10)


def chat_records(body: dict) -> int:
    """How many chat completions a snapshot holds (the starts' GET /v1/models vary in number)."""
    return sum(r["path"] == "/v1/chat/completions" for r in body["recent"])


def consistent(body: dict) -> dict:
    """A snapshot's cards and table agree (fewer than 100 requests here)."""
    stats, recent = body["stats"], body["recent"]
    assert stats["total_requests"] == len(recent), body
    assert stats["successful_requests"] == sum(r["ok"] for r in recent), body
    return stats


def server_env(fake, **extra) -> dict[str, str]:
    return {"UPSTREAM_URL": fake.completions_url, "DEBUG_MODE": "false", **extra}


def test_two_instances_and_two_workers_show_one_dashboard(start_server, shared_fake, redis_server):
    shared_fake.reset()
    one = start_server(server_env(shared_fake, REDIS_URL=redis_server.url), env_local={"DEFAULT_KEY": API_KEY})
    two = start_server(server_env(shared_fake, REDIS_URL=redis_server.url, WEB_CONCURRENCY="2"),
                       env_local={"DEFAULT_KEY": API_KEY})
    assert ask(one) and ask(one, stream=True) and ask(one)
    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(lambda _: ask(two), range(5)))
    with pytest.raises(openai.AuthenticationError):
        ask(two, key="wrong")
    last = {}

    def summed(server) -> bool:
        """Both instances' chat traffic (8 answered, 1 refused) in one consistent view; the
        GET /v1/models of each start are counted too, but how many the start took varies."""
        last["body"] = body = snapshot(server).json()
        stats = consistent(body)
        chats = [r["ok"] for r in body["recent"] if r["path"] == "/v1/chat/completions"]
        return stats["shared"] is True and stats["in_flight"] == 0 and sorted(chats) == [False] + [True] * 8

    for server in (one, two):
        for _ in range(4):  # several loads: whichever worker answers, the same view
            assert wait_for(lambda server=server: summed(server), timeout=20), (server.url, last)
        total = last["body"]["stats"]["total_requests"]
        assert requests.get(server.url + "/dashboard/stats", timeout=10).json()["total_requests"] == total


def test_killing_redis_mid_run_costs_no_answer(start_server, shared_fake, redis_server):
    shared_fake.reset()
    server = start_server(server_env(shared_fake, REDIS_URL=redis_server.url, WEB_CONCURRENCY="2"),
                          env_local={"DEFAULT_KEY": API_KEY})
    assert ask(server)
    assert wait_for(lambda: chat_records(snapshot(server).json()) == 1, timeout=20)
    started = threading.Barrier(9)

    def slow_stream(_):
        started.wait(timeout=30)
        return ask(server, "scenario:long transport:delay=0.05", stream=True)

    with ThreadPoolExecutor(8) as pool:
        answers = pool.map(slow_stream, range(8))
        started.wait(timeout=30)
        time.sleep(0.3)  # the streams are under way
        redis_server.kill()
        answers = list(answers)
    assert answers == [LONG_TEXT] * 8
    assert all(ask(server) for _ in range(3))  # later requests are answered too
    for path in ("/dashboard/snapshot", "/dashboard/stats", "/dashboard/requests"):
        response = requests.get(server.url + path, timeout=10)
        assert response.status_code == 503, path
        assert response.json()["error"]["code"] == "statistics_unavailable"
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
    assert "Traceback" not in server.log()


CHAT = "/v1/chat/completions"


def metric_sum(server, name: str, path: str) -> float:
    """One scrape's sum of ``name`` over its samples for the route ``path``."""
    with requests.Session() as session:
        text = session.get(server.url + "/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == name and sample.labels.get("path") == path)


def test_metrics_sum_every_worker(start_server, shared_fake):
    shared_fake.reset()
    server = start_server(server_env(shared_fake, WEB_CONCURRENCY="2"), env_local={"DEFAULT_KEY": API_KEY})
    sent, per_worker = 0, {}
    with ThreadPoolExecutor(8) as pool:
        while sent < 96 and (len(per_worker) < 2 or 0 in per_worker.values()):
            assert all(pool.map(lambda _: ask(server), range(8)))
            sent += 8
            for _ in range(30):  # find both workers, each with its own share (no Redis here)
                body = snapshot(server).json()
                stats = consistent(body)
                assert stats["shared"] is False and stats["workers"] == 2
                per_worker[stats["pid"]] = chat_records(body)
                if len(per_worker) == 2 and sum(per_worker.values()) == sent:
                    break
    assert len(per_worker) == 2 and 0 not in per_worker.values(), per_worker  # both workers served a share
    assert sum(per_worker.values()) == sent
    for _ in range(6):  # whichever worker answers the scrape, it counts both
        assert metric_sum(server, "zto_http_requests_total", CHAT) == sent
        assert metric_sum(server, "zto_http_request_duration_seconds_count", CHAT) == sent


def scrape_keys_set_aside(server) -> tuple[int, dict]:
    """The pid of the worker a scrape met, and its ``zto_api_key_set_aside_seconds``:
    (key, reason) -> seconds left. One connection: the dashboard names the worker."""
    with requests.Session() as session:
        pid = session.get(server.url + "/dashboard/stats", timeout=10).json()["pid"]
        text = session.get(server.url + "/metrics", timeout=10).text
    return pid, {(s.labels["key"], s.labels["reason"]): s.value for family in text_string_to_metric_families(text)
                 for s in family.samples if s.name == "zto_api_key_set_aside_seconds"}


def test_metrics_show_the_keys_any_worker_set_aside(start_server, official):
    key, other_key = OFFICIAL_KEYS
    official.fail_key(key, "1000")
    server = start_server(api_env(official, WEB_CONCURRENCY="2", API_KEY_COOLDOWN_S="10", DEBUG_MODE="false"),
                          env_local={"DEFAULT_KEY": API_KEY})
    assert ask(server)
    assert [r.key for r in official.requests] == [key, other_key]  # one worker set the key aside
    official.fail_key(key, None)
    series = (f"{key[:6]}…({len(key)} chars)", "upstream_unauthorized")
    scraped_by = set()
    for _ in range(60):  # until both workers answered scrapes: each shows the one that set the key aside
        pid, set_aside = scrape_keys_set_aside(server)
        scraped_by.add(pid)
        assert list(set_aside) == [series] and 0 < set_aside[series] <= 10, (pid, set_aside)
        if len(scraped_by) == 2:
            break
    assert len(scraped_by) == 2, scraped_by
    assert wait_for(lambda: scrape_keys_set_aside(server)[1] == {}, timeout=30)  # back after its cool-down
