"""The figures of issues 4 and 10, each measured on the proxy and on the fake called
directly, in the same run: (a) to (e) on the web-chat path, (c) again with two worker
processes (``c2``), and (a) to (c) on the official-API path (``a_api``, ``b_api``,
``c_api``: the proxy with ``ZAI_API_KEY``/``UPSTREAMS=api``, the fake's official endpoint).

Each figure starts its own fake upstream and its own proxy (``Bench.stack``), so a
figure's numbers do not depend on which figures ran before it, and stops them after.
The load runs in this process's asyncio loop (the client of ``client.py``); the fake
and the proxy run in their own processes. Every figure also records what the client
itself cost (CPU share of one core, event-loop lag), which tells whether the client
could have slowed the numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import resource
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import fake_zai
import zai_scenarios

from . import procs
from .client import LoopLag, OfficialTarget, ProxyTarget, Session, StreamResult, ZaiTarget, make_jwt

API_KEY = "sk-bench-key"
OFFICIAL_KEY = "0f3c9a1b2d4e5f60718293a4b5c6d7e8.BenchBenchBench0"  # the shape of a console key
STATIC_TOKEN = make_jwt("bench-user")
SECRET = fake_zai.DEFAULT_SECRET
FE_VERSION = "prod-fe-1.0.94"
STATS_PATH = fake_zai.STATS_PATH
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---- counts -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Counts:
    """How much load each figure applies; ``QUICK`` for development."""

    a_requests: int = 200
    a_warmup: int = 20
    b_concurrency: int = 32
    b_streams: int = 640
    c_connections: int = 1000
    c_spread_s: float = 5.0
    c_streams_per_connection: int = 2
    c_stream_timeout_s: float = 60.0
    c_delay_s: float = 0.1
    d_requests: int = 320
    d_concurrency: int = 32
    e_requests: int = 50
    e_warmup: int = 5
    e_latency_s: float = 0.02
    e_pause_s: float = 0.05


FULL = Counts()
QUICK = Counts(a_requests=50, a_warmup=5, b_streams=64, c_connections=200, c_spread_s=2.0,
               d_requests=96, e_requests=15, e_warmup=3)

IDEAL_C_S = 50 * 0.1  # long50: 51 events 0.1 s apart, first at once


def run_load(coro):
    """``run(coro)``, where SIGTERM cancels the load as Ctrl-C does (a signal
    raised into the middle of the event loop would leave a thousand tasks dangling)."""
    async def main():
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGTERM)
        loop.add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
        try:
            return await coro
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


# ---- statistics ----------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float | None:
    """The ``p``-th percentile, linearly interpolated between the nearest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low, high = math.floor(k), math.ceil(k)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Watch:
    """What a run cost besides the figure itself: the client's CPU share of one core and
    its event loop's lag, and the CPU that other programs on the machine took meanwhile
    (all busy CPU from /proc/stat minus the fake's, the proxy's and the client's)."""

    servers: Callable[[], list[int]]  # the fake's and the proxy's processes
    lag: LoopLag = field(default_factory=LoopLag)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    others_cores: float | None = None
    stolen_cores: float | None = None

    def report(self) -> dict:
        return {"client_cpu_share": _r(self.cpu_s / self.wall_s) if self.wall_s else None,
                "client_loop_lag_p99_ms": _ms(percentile(self.lag.samples, 99)),
                "client_loop_lag_max_ms": _ms(max(self.lag.samples, default=None)),
                "other_programs_cores": _r(self.others_cores, 2), "stolen_cores": _r(self.stolen_cores, 2)}


@contextlib.asynccontextmanager
async def watching(watch: Watch):
    pids = watch.servers()
    cpu0, wall0, servers0 = _client_cpu(), time.perf_counter(), procs.cpu_seconds(pids)
    busy0, stolen0 = procs.machine_cpu_s()
    watch.lag.start()
    try:
        yield watch
    finally:
        await watch.lag.stop()
        watch.cpu_s, watch.wall_s = _client_cpu() - cpu0, time.perf_counter() - wall0
        ours = watch.cpu_s + procs.cpu_seconds(pids) - servers0
        if watch.wall_s > 0.5:  # /proc/stat counts in 10 ms ticks: too coarse for shorter runs
            busy, stolen = procs.machine_cpu_s()
            watch.others_cores = max(0.0, (busy - busy0 - ours) / watch.wall_s)
            watch.stolen_cores = (stolen - stolen0) / watch.wall_s


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def fake_stats(fake: procs.Proc) -> dict:
    with _NO_PROXY_OPENER.open(fake.origin + STATS_PATH, timeout=10) as answer:
        return json.loads(answer.read())


# ---- the processes of one figure ---------------------------------------------------------------

@dataclass
class Stack:
    fake: procs.Proc
    proxy: procs.Proc
    api: bool = False  # the proxy answers from the fake's official API, not its web chat

    def zai(self) -> ZaiTarget:
        return ZaiTarget(*self.fake.host_port, secret=SECRET, fe_version=FE_VERSION)

    def direct_request(self, prompt: str) -> bytes:
        """A request for ``prompt`` to the fake, on the path the proxy uses."""
        if self.api:
            return OfficialTarget(*self.fake.host_port, api_key=OFFICIAL_KEY).request(prompt)
        return self.zai().request(prompt, STATIC_TOKEN)

    @property
    def direct_read_event(self):
        return OfficialTarget.read_event if self.api else ZaiTarget.read_event

    def openai(self) -> ProxyTarget:
        return ProxyTarget(*self.proxy.host_port, api_key=API_KEY)

    def proxy_pids(self) -> list[int]:
        return procs.tree(self.proxy.pid)

    def all_pids(self) -> list[int]:
        return procs.tree(self.fake.pid) + procs.tree(self.proxy.pid)


@dataclass
class Bench:
    workdir: Path
    counts: Counts = FULL
    fake_kind: str = "asyncio"
    proxy_env: dict = field(default_factory=dict)  # extra settings (THREADS, WEB_CONCURRENCY...)

    def proxy_environment(self, *, anonymous: bool, upstream: str, api: bool = False,
                          workers: int | None = None) -> dict[str, str]:
        env = {"UPSTREAM_URL": upstream + "/api/chat/completions", "DEBUG_MODE": "false", "DEFAULT_KEY": API_KEY}
        if not anonymous:
            env["ZAI_TOKEN"] = STATIC_TOKEN
        if api:
            env.update(ZAI_API_KEY=OFFICIAL_KEY, ZAI_API_BASE=upstream + "/api/paas/v4", UPSTREAMS="api")
        env.update(self.proxy_env)
        if workers:
            env["WEB_CONCURRENCY"] = str(workers)
        return env

    @contextlib.contextmanager
    def stack(self, *, anonymous: bool = False, latency: float = 0.0, api: bool = False,
              workers: int | None = None) -> Iterator[Stack]:
        """A fresh fake and a fresh proxy in front of it; both stopped afterwards."""
        if api and self.fake_kind != "asyncio":
            raise RuntimeError("the official-API figures need the asyncio fake (--fake asyncio)")
        fake = procs.start_fake(self.fake_kind, self.workdir, accept_tokens=() if anonymous else (STATIC_TOKEN,),
                                accept_keys=(OFFICIAL_KEY,) if api else (), latency=latency)
        proxy = None
        try:
            proxy = procs.start_proxy(self.workdir, self.proxy_environment(
                anonymous=anonymous, upstream=fake.origin, api=api, workers=workers))
            yield Stack(fake, proxy, api)
        finally:
            if proxy is not None:
                proxy.stop()
            fake.stop()


def _check(result: StreamResult, expected_text: str) -> StreamResult:
    """A stream that ended cleanly but with the wrong text is a failure too."""
    if result.ok and result.text != expected_text:
        result.ok, result.error = False, f"wrong text ({len(result.text)} chars, expected {len(expected_text)})"
    return result


def _errors(results: list[StreamResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        if not r.ok:
            counts[r.error or "?"] = counts.get(r.error or "?", 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:5])


# ---- (a) time to first token, sequential --------------------------------------------------------

PLAIN = "scenario:plain Say hello."
PLAIN_TEXT = zai_scenarios.SCENARIOS["plain"].content


async def _sequential(stack: Stack, host_port: tuple[str, int], make_request: Callable[[], bytes], read_event, *,
                      requests: int, warmup: int, pause: float = 0.0, before: Callable | None = None,
                      limit_s: float = 120.0) -> dict:
    """``requests`` streams one after another on one keep-alive connection, after
    ``warmup``; no new request after ``limit_s`` seconds."""
    session = Session(*host_port)
    watch = Watch(stack.all_pids)
    results: list[StreamResult] = []
    deadline = time.perf_counter() + limit_s
    try:
        async with watching(watch):
            for i in range(warmup + requests):
                if time.perf_counter() > deadline:
                    break
                if before is not None:
                    await before(session)
                result = _check(await session.stream(make_request(), read_event, timeout=10), PLAIN_TEXT)
                if i >= warmup:
                    results.append(result)
                if pause:
                    await asyncio.sleep(pause)
    finally:
        session.close()
    ttfts = [r.ttft for r in results if r.ok]
    return {"requests": requests, "failures": requests - len(ttfts), "errors": _errors(results),
            "ttft_p50_ms": _ms(percentile(ttfts, 50)), "ttft_p99_ms": _ms(percentile(ttfts, 99)),
            "ttft_mean_ms": _ms(sum(ttfts) / len(ttfts) if ttfts else None),
            "connections_opened": session.connections_opened, **watch.report()}


def figure_a(bench: Bench, api: bool = False) -> dict:
    """(a) time to first content token, sequential keep-alive requests."""
    c = bench.counts
    with bench.stack(api=api) as stack:
        openai = stack.openai()
        direct = run_load(_sequential(stack, stack.fake.host_port, lambda: stack.direct_request(PLAIN),
                                         stack.direct_read_event, requests=c.a_requests, warmup=c.a_warmup))
        proxy = run_load(_sequential(stack, stack.proxy.host_port, lambda: openai.request(PLAIN),
                                        openai.read_event, requests=c.a_requests, warmup=c.a_warmup))
    return {"direct": direct, "proxy": proxy}


# ---- (b) CPU per forwarded chunk ------------------------------------------------------------------

LONG = "scenario:long Write a long answer."
LONG_TEXT = zai_scenarios.SCENARIOS["long"].content
LONG_CHUNKS = sum(1 for e in zai_scenarios.SCENARIOS["long"].events if e["data"].get("delta_content"))


async def _concurrent(host_port, make_request, read_event, expected_text: str, *, concurrency: int,
                      total: int, timeout: float = 60.0, limit_s: float = 300.0) -> tuple[list[StreamResult], list[Session]]:
    """``total`` streams over ``concurrency`` keep-alive connections, each running one
    stream after another until all are done; no new stream after ``limit_s`` seconds
    (the missing ones count as failures)."""
    sessions = [Session(*host_port) for _ in range(concurrency)]
    results: list[StreamResult] = []
    remaining = total
    deadline = time.perf_counter() + limit_s

    async def one_connection(session: Session) -> None:
        nonlocal remaining
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            results.append(_check(await session.stream(make_request(), read_event, timeout), expected_text))

    try:
        await asyncio.gather(*(one_connection(s) for s in sessions))
    finally:
        for s in sessions:
            s.close()
    results += [StreamResult(error=f"not started within {limit_s:g}s")] * remaining
    return results, sessions


async def _cpu_per_chunk(stack: Stack, host_port, make_request, read_event, *, measured_pids: Callable[[], list[int]],
                         concurrency: int, total: int) -> dict:
    # Warm-up: one stream per connection (threads, pools and connections get made).
    await _concurrent(host_port, make_request, read_event, LONG_TEXT, concurrency=concurrency, total=concurrency)
    watch = Watch(stack.all_pids)
    pids, fake_pids = measured_pids(), procs.tree(stack.fake.pid)
    cpu0, fake0 = procs.cpu_seconds(pids), procs.cpu_seconds(fake_pids)
    async with watching(watch):
        results, _ = await _concurrent(host_port, make_request, read_event, LONG_TEXT,
                                       concurrency=concurrency, total=total)
    pids_after = measured_pids()
    cpu = procs.cpu_seconds(pids_after) - cpu0
    fake_cpu = procs.cpu_seconds(fake_pids) - fake0
    ok = sum(r.ok for r in results)
    chunks = ok * LONG_CHUNKS
    return {"streams": len(results), "failures": len(results) - ok, "errors": _errors(results),
            "chunks": chunks, "wall_s": _r(watch.wall_s), "chunks_per_s": _r(chunks / watch.wall_s, 0),
            "cpu_s": _r(cpu), "cpu_us_per_chunk": _r(cpu / chunks * 1e6, 2) if chunks else None,
            "fake_cpu_us_per_chunk": _r(fake_cpu / chunks * 1e6, 2) if chunks else None,
            "client_cpu_us_per_chunk": _r(watch.cpu_s / chunks * 1e6, 2) if chunks else None,
            "processes_measured": len(pids_after), "processes_changed": sorted(pids) != sorted(pids_after),
            **watch.report()}


def figure_b(bench: Bench, api: bool = False) -> dict:
    """(b) CPU time per forwarded chunk at 32 concurrent fast streams: the proxy's own
    (master + workers); for the direct run, the fake's own, as a reference."""
    c = bench.counts
    with bench.stack(api=api) as stack:
        openai = stack.openai()
        fake_pids = lambda: procs.tree(stack.fake.pid)  # noqa: E731
        direct = run_load(_cpu_per_chunk(stack, stack.fake.host_port, lambda: stack.direct_request(LONG),
                                            stack.direct_read_event, measured_pids=fake_pids,
                                            concurrency=c.b_concurrency, total=c.b_streams))
        proxy = run_load(_cpu_per_chunk(stack, stack.proxy.host_port, lambda: openai.request(LONG),
                                           openai.read_event, measured_pids=stack.proxy_pids,
                                           concurrency=c.b_concurrency, total=c.b_streams))
    return {"direct": direct, "proxy": proxy}


# ---- (c) capacity -------------------------------------------------------------------------------

async def _sample_memory(pids_of: Callable[[], list[int]], peak: dict, interval: float = 0.2) -> None:
    """Every ``interval`` s: the summed RSS and thread count of the processes; keeps the peaks."""
    while True:
        pids = pids_of()
        peak["rss_bytes"] = max(peak.get("rss_bytes", 0), procs.rss_bytes(pids))
        peak["threads"] = max(peak.get("threads", 0), procs.thread_count(pids))
        peak["processes"] = max(peak.get("processes", 0), len(pids))
        peak["samples"] = peak.get("samples", 0) + 1
        await asyncio.sleep(interval)


async def _capacity(stack: Stack, host_port, make_request, read_event, expected_text: str, *, measured_pids, counts: Counts) -> dict:
    """``c_connections`` connections started evenly over ``c_spread_s``, each running
    ``c_streams_per_connection`` streams one after the other."""
    c = counts
    results: list[StreamResult] = []
    peak: dict = {}
    watch = Watch(stack.all_pids)
    pids0 = measured_pids()
    cpu0 = procs.cpu_seconds(pids0)
    start = time.perf_counter()

    async def connection(i: int) -> None:
        await asyncio.sleep(max(0.0, start + i * c.c_spread_s / c.c_connections - time.perf_counter()))
        session = Session(*host_port)
        try:
            for _ in range(c.c_streams_per_connection):
                results.append(_check(await session.stream(make_request(), read_event, c.c_stream_timeout_s),
                                      expected_text))
        finally:
            session.close()

    sampler = asyncio.get_running_loop().create_task(_sample_memory(measured_pids, peak))
    try:
        async with watching(watch):
            await asyncio.gather(*(connection(i) for i in range(c.c_connections)))
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    cpu = procs.cpu_seconds(measured_pids()) - cpu0
    ok = [r for r in results if r.ok]
    totals, ttfts = [r.total for r in ok], [r.ttft for r in ok]
    return {"streams": len(results), "failures": len(results) - len(ok), "errors": _errors(results),
            "total_p50_s": _r(percentile(totals, 50)), "total_p99_s": _r(percentile(totals, 99)),
            "total_max_s": _r(max(totals, default=None)),
            "ttft_p50_s": _r(percentile(ttfts, 50), 4), "ttft_p99_s": _r(percentile(ttfts, 99), 4),
            "peak_rss_mb": _r(peak.get("rss_bytes", 0) / 2**20, 1), "peak_threads": peak.get("threads"),
            "processes": peak.get("processes"), "rss_samples": peak.get("samples"),
            "cpu_s": _r(cpu), "cpu_share": _r(cpu / watch.wall_s) if watch.wall_s else None,
            "wall_s": _r(watch.wall_s), **watch.report()}


def figure_c(bench: Bench, api: bool = False, workers: int | None = None) -> dict:
    """(c) capacity: 1000 connections x 2 streams of 50 chunks 100 ms apart."""
    c = bench.counts
    prompt = f"scenario:long50 transport:delay={c.c_delay_s} Write slowly."
    text = zai_scenarios.SCENARIOS["long50"].content
    with bench.stack(api=api, workers=workers) as stack:
        openai = stack.openai()
        direct = run_load(_capacity(stack, stack.fake.host_port, lambda: stack.direct_request(prompt),
                                       stack.direct_read_event, text,
                                       measured_pids=lambda: procs.tree(stack.fake.pid), counts=c))
        time.sleep(1)
        proxy = run_load(_capacity(stack, stack.proxy.host_port, lambda: openai.request(prompt), openai.read_event,
                                      text, measured_pids=stack.proxy_pids, counts=c))
        fake_after = fake_stats(stack.fake)
    return {"ideal_s": IDEAL_C_S, "direct": direct, "proxy": proxy, "fake_stats": fake_after}


# ---- (d) upstream connections ---------------------------------------------------------------------

def figure_d(bench: Bench) -> dict:
    """(d) upstream TCP connections opened (the fake's count) for requests at 32
    concurrent, from a freshly started proxy; direct: the client's own connections."""
    c = bench.counts

    async def measure(host_port, make_request, read_event) -> dict:
        results, sessions = await _concurrent(host_port, make_request, read_event, PLAIN_TEXT,
                                              concurrency=c.d_concurrency, total=c.d_requests, timeout=30)
        return {"requests": len(results), "failures": sum(not r.ok for r in results), "errors": _errors(results),
                "client_connections": sum(s.connections_opened for s in sessions)}

    out = {}
    with bench.stack() as stack:
        zai, openai = stack.zai(), stack.openai()
        for side, host_port, make_request, read_event in (
                ("direct", stack.fake.host_port, lambda: zai.request(PLAIN, STATIC_TOKEN), zai.read_event),
                ("proxy", stack.proxy.host_port, lambda: openai.request(PLAIN), openai.read_event)):
            before = fake_stats(stack.fake)
            result = run_load(measure(host_port, make_request, read_event))
            after = fake_stats(stack.fake)
            opened = after["connections_opened"] - before["connections_opened"] - 1  # minus the stats request's own
            result["upstream_connections"] = opened
            result["per_100_requests"] = _r(opened * 100 / result["requests"], 1)
            result["completions_seen"] = after["completions"] - before["completions"]
            out[side] = result
    return out


# ---- (e) anonymous mode, 20 ms round trip ---------------------------------------------------------

def figure_e(bench: Bench) -> dict:
    """(e) anonymous mode (no ZAI_TOKEN), every fake answer 20 ms late: time to first
    token. Direct: one completion round trip with a guest token fetched just before
    (not timed), a fresh one per request as zto uses them."""
    c = bench.counts
    with bench.stack(anonymous=True, latency=c.e_latency_s) as stack:
        zai, openai = stack.zai(), stack.openai()
        guest = {}

        async def fetch_guest(session: Session) -> None:
            status, body = await session.fetch("GET", "/api/v1/auths/")
            guest["token"] = json.loads(body)["token"]

        direct = run_load(_sequential(stack, stack.fake.host_port, lambda: zai.request(PLAIN, guest["token"]),
                                         zai.read_event, requests=c.e_requests, warmup=c.e_warmup,
                                         pause=c.e_pause_s, before=fetch_guest))
        proxy = run_load(_sequential(stack, stack.proxy.host_port, lambda: openai.request(PLAIN), openai.read_event,
                                        requests=c.e_requests, warmup=c.e_warmup, pause=c.e_pause_s))
        stats = fake_stats(stack.fake)
    return {"latency_ms": c.e_latency_s * 1000, "pause_between_requests_ms": c.e_pause_s * 1000,
            "direct": direct, "proxy": proxy, "fake_stats": stats}


def figure_c2(bench: Bench) -> dict:
    """(c) with WEB_CONCURRENCY=2: the same load on two worker processes."""
    return {**figure_c(bench, workers=2), "workers": 2}


def figure_a_api(bench: Bench) -> dict:
    """(a) on the official-API path: time to first content token, sequential."""
    return figure_a(bench, api=True)


def figure_b_api(bench: Bench) -> dict:
    """(b) on the official-API path: CPU time per forwarded chunk, 32 fast streams."""
    return figure_b(bench, api=True)


def figure_c_api(bench: Bench) -> dict:
    """(c) on the official-API path: 1000 connections x 2 slow streams."""
    return figure_c(bench, api=True)


FIGURES = {"a": figure_a, "b": figure_b, "c": figure_c, "c2": figure_c2, "d": figure_d, "e": figure_e,
           "a_api": figure_a_api, "b_api": figure_b_api, "c_api": figure_c_api}
