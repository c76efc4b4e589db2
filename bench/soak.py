"""``python -m bench.soak`` (``make soak``): zto under hostile and faulty traffic for a few
minutes, on loopback only, and what it cost.

It starts the threaded fake Z.ai (``tests/fake_zai.py``, for its fault scenarios and its
open-stream counter) and zto under gunicorn as deployed (``bench/procs.py``), with
short ``STREAM_WRITE_TIMEOUT_S`` and ``BODY_TIMEOUT_S`` so that greedy clients cycle
quickly, then runs three phases from this process's asyncio loop:

1. **mixed** (``--seconds``, default 120): client loops of every kind at once: streams,
   whole answers, upstream faults (an error before the answer, an error in the stream,
   a cut upstream connection, a refusal), clients that disconnect mid-stream, clients
   that never read, bodies that trickle, and 8 MB bodies. Each outcome is judged:
   ``ok`` (the right answer, or the planned end: an error the client sees, a cut-off, a
   408), ``wrong`` (another answer than the right one) or ``silent`` (no answer, or one
   that stops without an error).
2. **big bodies, delay**: a paced stream (a chunk every 50 ms) while 10 clients send
   8 MB bodies at once, twice: the stream's worst lateness against its pace, and the
   same stream's alone, for comparison.
3. **big bodies, memory**: 50 clients send 8 MB bodies at once: the worker's peak RSS.

It prints outcomes by kind, the worker's RSS and open file descriptors at the start,
peak and end, the fake's open streams at the end (they must return to 0), and the
big-body figures; everything goes to ``bench/results/soak-latest.json`` too. The
machine is shared with whatever else runs: timings carry that noise.

    python -m bench.soak               # about 3 minutes
    python -m bench.soak --seconds 30  # a short run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from . import procs

sys.path.insert(0, str(procs.ROOT / "tests"))  # fake_zai, zai_scenarios

import fake_zai  # noqa: E402
import zai_scenarios  # noqa: E402

from .client import ResponseParser, _http_request, make_jwt  # noqa: E402

API_KEY = "sk-soak-key"
TOKEN = make_jwt("soak-user")
WRITE_TIMEOUT_S = 3
BODY_TIMEOUT_S = 3
BIG_BODY_BYTES = 8 * 1024 * 1024 - 4096  # under MAX_REQUEST_BYTES' default, with the JSON around it
PACE_S = 0.05
RESULTS = Path(__file__).resolve().parent / "results"
LONG50 = zai_scenarios.SCENARIOS["long50"].content
LONG = zai_scenarios.SCENARIOS["long"].content
PLAIN = zai_scenarios.SCENARIOS["plain"].content


# ---- one request over a raw connection ------------------------------------------------

@dataclass
class Answer:
    status: int | None = None
    body: bytes = b""
    complete: bool = False  # the HTTP body ended as HTTP says
    closed: bool = False  # the server closed the connection
    content_times: list[float] = field(default_factory=list)  # arrival of each body piece holding content


def chat_body(prompt: str, stream: bool) -> bytes:
    return json.dumps({"model": "GLM-4.6", "stream": stream,
                       "messages": [{"role": "user", "content": prompt}]}).encode()


def chat_request(host: str, port: int, body: bytes) -> bytes:
    return _http_request("POST", "/v1/chat/completions", host, port, body, {
        "Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json", "Connection": "close"})


async def exchange(host: str, port: int, request: bytes, *, timeout: float = 60.0, leave_after_content: bool = False,
                   rcvbuf: int | None = None, read_after: float = 0.0) -> Answer:
    """Send ``request`` on a new connection and read the answer until it ends or the
    server closes. ``leave_after_content``: close after the first content; ``read_after``:
    read nothing for that long first (a client that does not read)."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    answer = Answer()
    body = bytearray()

    def on_body(data: bytes) -> None:
        body.extend(data)
        if b'"content"' in data:
            answer.content_times.append(time.perf_counter())

    parser = ResponseParser(on_body)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 10)
        await asyncio.wait_for(loop.sock_sendall(sock, request), timeout)
        if read_after:
            await asyncio.sleep(read_after)
        deadline = time.monotonic() + timeout
        while not parser.done:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), max(0.1, deadline - time.monotonic()))
            if not data:
                answer.closed = True
                parser.eof()
                break
            parser.feed(data)
            if leave_after_content and answer.content_times:
                break
    except (TimeoutError, OSError, ValueError):
        pass
    finally:
        sock.close()
    answer.status, answer.body, answer.complete = parser.status, bytes(body), parser.done
    return answer


def sse(answer: Answer) -> tuple[str, str | None, bool]:
    """(text, error code, [DONE] seen) of an OpenAI SSE body."""
    text, error, done = [], None, False
    for line in answer.body.split(b"\n"):
        if not line.startswith(b"data: "):
            continue
        payload = line[6:].strip()
        if payload == b"[DONE]":
            done = True
            continue
        event = json.loads(payload)
        if "error" in event:
            error = event["error"].get("code") or "error"
        for choice in event.get("choices") or ():
            text.append((choice.get("delta") or {}).get("content") or "")
    return "".join(text), error, done


def whole(answer: Answer) -> tuple[str | None, str | None]:
    """(content, error code) of a JSON answer."""
    try:
        body = json.loads(answer.body)
    except ValueError:
        return None, None
    if "error" in body:
        return None, body["error"].get("code")
    return body["choices"][0]["message"]["content"], None


# ---- the kinds of clients ---------------------------------------------------------------

def judge_stream(answer: Answer, expected: str | None) -> str:
    """``expected`` None: an error is planned (the upstream fails)."""
    if answer.status is None:
        return "silent"
    if answer.status != 200:
        return "ok" if expected is None and answer.body.startswith(b'{"error"') else "wrong"
    text, error, done = sse(answer)
    if not (answer.complete and done):
        return "silent"
    if expected is None:
        return "ok" if error else "wrong"
    return "ok" if error is None and text == expected else "wrong"


class Kinds:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.big = chat_body("scenario:plain " + "x" * BIG_BODY_BYTES, stream=False)

    def request(self, body: bytes) -> bytes:
        return chat_request(self.host, self.port, body)

    async def stream(self, i: int) -> str:
        answer = await exchange(self.host, self.port, self.request(
            chat_body("scenario:long50 transport:delay=0.02", stream=True)))
        return judge_stream(answer, LONG50)

    async def whole(self, i: int) -> str:
        answer = await exchange(self.host, self.port, self.request(
            chat_body("scenario:long transport:delay=0.005", stream=False)))
        if answer.status is None:
            return "silent"
        return "ok" if answer.status == 200 and whole(answer) == (LONG, None) else "wrong"

    FAULTS = [("scenario:error_nested", False), ("scenario:mid_error", True),
              ("scenario:long50 transport:cut transport:delay=0.01", True), ("scenario:error_concurrency", True),
              ("scenario:mid_error", False)]

    async def fault(self, i: int) -> str:
        prompt, stream = self.FAULTS[i % len(self.FAULTS)]
        answer = await exchange(self.host, self.port, self.request(chat_body(prompt, stream)))
        if stream:
            return judge_stream(answer, None)
        if answer.status is None:
            return "silent"
        return "ok" if answer.status >= 400 and whole(answer)[1] else "wrong"

    async def disconnect(self, i: int) -> str:
        answer = await exchange(self.host, self.port, self.request(
            chat_body("scenario:long50 transport:delay=0.05", stream=True)), leave_after_content=True)
        return "ok" if answer.status == 200 and answer.content_times else "wrong"

    async def never_read(self, i: int) -> str:
        """Reads nothing for the write timeout and more, then drains: zto must have cut it
        off (no [DONE] at the end of what the buffers held)."""
        answer = await exchange(self.host, self.port, self.request(chat_body("scenario:bulk", stream=True)),
                                rcvbuf=4096, read_after=WRITE_TIMEOUT_S + 4, timeout=60)
        if answer.status is None:
            return "silent"
        return "wrong" if b"data: [DONE]" in answer.body else "ok"

    async def slow_body(self, i: int) -> str:
        body = chat_body("hi", stream=False)
        head = self.request(body)[:-len(body)]
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (self.host, self.port))
            await loop.sock_sendall(sock, head)
            received = bytearray()
            reading = loop.create_task(_read_until_closed(loop, sock, received))
            for byte in body[:-1]:
                if reading.done():
                    break
                with contextlib.suppress(OSError):
                    await loop.sock_sendall(sock, bytes([byte]))
                await asyncio.sleep(0.5)
            await asyncio.wait_for(reading, BODY_TIMEOUT_S + 10)
            return "ok" if received.startswith(b"HTTP/1.1 408") else "wrong"
        except TimeoutError:
            return "silent"
        finally:
            sock.close()

    async def big_body(self, i: int) -> str:
        answer = await exchange(self.host, self.port, self.request(self.big), timeout=120)
        if answer.status is None:
            return "silent"
        return "ok" if answer.status == 200 and whole(answer) == (PLAIN, None) else "wrong"


async def _read_until_closed(loop, sock: socket.socket, into: bytearray) -> None:
    while True:
        try:
            data = await loop.sock_recv(sock, 65536)
        except OSError:
            return
        if not data:
            return
        into.extend(data)


# kind -> concurrent client loops in the mixed phase
MIX = {"stream": 8, "whole": 4, "fault": 3, "disconnect": 2, "never_read": 2, "slow_body": 2, "big_body": 1}


# ---- what the processes hold ------------------------------------------------------------

def open_fds(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/fd"))
    return total


class Monitor:
    """The worker's RSS and open fds, sampled in the background: start, peak, end."""

    def __init__(self, master_pid: int, every_s: float = 0.2) -> None:
        self.master_pid, self.every_s = master_pid, every_s
        self.samples: list[tuple[int, int]] = []
        self._task: asyncio.Task | None = None

    def workers(self) -> list[int]:
        return [pid for pid in procs.tree(self.master_pid) if pid != self.master_pid]

    def sample(self) -> tuple[int, int]:
        workers = self.workers()
        value = (procs.rss_bytes(workers), open_fds(workers))
        self.samples.append(value)
        return value

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every_s)

    def start(self) -> None:
        self.samples.clear()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def peak(self) -> tuple[int, int]:
        return max(s[0] for s in self.samples), max(s[1] for s in self.samples)


def fake_stats(fake: procs.Proc) -> dict:
    with procs._NO_PROXY_OPENER.open(fake.origin + fake_zai.STATS_PATH, timeout=5) as answer:
        return json.load(answer)


# ---- phases -------------------------------------------------------------------------------

async def mixed(kinds: Kinds, seconds: float) -> dict[str, Counter]:
    outcomes: dict[str, Counter] = defaultdict(Counter)
    stop_at = time.monotonic() + seconds

    async def loop(kind: str, n: int) -> None:
        run = getattr(kinds, kind)
        i = n
        while time.monotonic() < stop_at:
            try:
                outcome = await run(i)
            except Exception as exc:  # noqa: BLE001 - a client bug must show, not stop the run
                outcome = f"client error {type(exc).__name__}"
            outcomes[kind][outcome] += 1
            i += 1

    await asyncio.gather(*(loop(kind, n) for kind, count in MIX.items() for n in range(count)))
    return outcomes


async def paced_stream_lateness(kinds: Kinds, seconds: float) -> float:
    """Repeat a stream paced at PACE_S for ``seconds``; its worst lateness (gap minus pace)."""
    worst = 0.0
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        answer = await exchange(kinds.host, kinds.port, kinds.request(
            chat_body(f"scenario:long50 transport:delay={PACE_S}", stream=True)))
        times = answer.content_times
        worst = max([worst, *(b - a - PACE_S for a, b in zip(times, times[1:], strict=False))])
    return worst


async def big_body_delay(kinds: Kinds, rounds: int = 2) -> dict:
    alone = await paced_stream_lateness(kinds, 3.0)
    results = []

    async def bodies() -> None:
        for _ in range(rounds):
            results.extend(await asyncio.gather(*(kinds.big_body(i) for i in range(10))))

    busy = asyncio.get_running_loop().create_task(bodies())
    worst = 0.0
    while not busy.done():
        worst = max(worst, await paced_stream_lateness(kinds, 0.1))
    await busy
    return {"lateness_alone_ms": round(alone * 1000, 1), "lateness_with_10_big_bodies_ms": round(worst * 1000, 1),
            "big_bodies": dict(Counter(results))}


async def big_body_memory(kinds: Kinds, monitor: Monitor, count: int = 50) -> dict:
    monitor.start()
    try:
        results = await asyncio.gather(*(kinds.big_body(i) for i in range(count)))
    finally:
        await monitor.stop()
    return {"peak_rss_mb": round(monitor.peak()[0] / 2**20, 1), "big_bodies": dict(Counter(results))}


async def settle(fake: procs.Proc, timeout_s: float = 20.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        open_streams = fake_stats(fake)["streams_open"]
        if open_streams == 0 or time.monotonic() > deadline:
            return open_streams
        await asyncio.sleep(0.2)


async def soak(args, fake: procs.Proc, proxy: procs.Proc) -> dict:
    host, port = proxy.host_port
    kinds = Kinds(host, port)
    monitor = Monitor(proxy.pid)
    start = monitor.sample()
    monitor.start()
    outcomes = await mixed(kinds, args.seconds)
    open_after_mixed = await settle(fake)
    await asyncio.sleep(2)  # the last connections' close
    await monitor.stop()
    peak = monitor.peak()
    end = monitor.sample()
    big = args.only != "mixed"
    delay = await big_body_delay(kinds) if big else None
    memory = await big_body_memory(kinds, monitor) if big else None
    return {
        "seconds": args.seconds, "mix": MIX, "outcomes": {k: dict(v) for k, v in outcomes.items()},
        "worker": {"rss_mb": {"start": round(start[0] / 2**20, 1), "peak": round(peak[0] / 2**20, 1),
                              "end": round(end[0] / 2**20, 1)},
                   "open_fds": {"start": start[1], "peak": peak[1], "end": end[1]}},
        "fake_streams_open_at_end": open_after_mixed,
        "fake": fake_stats(fake),
        "big_body_delay": delay,
        "big_body_memory": memory,
    }


def print_report(result: dict) -> None:
    print(f"\nmixed phase, {result['seconds']:g} s, client loops per kind: {result['mix']}")
    print(f"{'kind':<12} {'ok':>6} {'wrong':>6} {'silent':>7}  other")
    for kind, counts in result["outcomes"].items():
        other = {k: v for k, v in counts.items() if k not in ("ok", "wrong", "silent")}
        print(f"{kind:<12} {counts.get('ok', 0):>6} {counts.get('wrong', 0):>6} {counts.get('silent', 0):>7}  "
              f"{other or ''}")
    worker = result["worker"]
    print(f"worker RSS MB   start {worker['rss_mb']['start']}, peak {worker['rss_mb']['peak']}, "
          f"end {worker['rss_mb']['end']}")
    print(f"worker open fds start {worker['open_fds']['start']}, peak {worker['open_fds']['peak']}, "
          f"end {worker['open_fds']['end']}")
    print(f"fake's open streams after the mixed phase: {result['fake_streams_open_at_end']}")
    delay = result["big_body_delay"]
    if delay is None:
        return
    print(f"paced stream's worst lateness: alone {delay['lateness_alone_ms']} ms, with 10 concurrent 8 MB bodies "
          f"{delay['lateness_with_10_big_bodies_ms']} ms (target 250 ms); bodies {delay['big_bodies']}")
    memory = result["big_body_memory"]
    print(f"50 concurrent 8 MB bodies: worker peak RSS {memory['peak_rss_mb']} MB (target 600 MB); "
          f"bodies {memory['big_bodies']}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="zto under hostile and faulty traffic (loopback only)")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the mixed phase")
    parser.add_argument("--only", choices=("mixed", "big"), help="run one part (big: the big-body figures)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="zto-soak-"))
    fake = procs.start_fake("threaded", workdir, accept_tokens=(TOKEN,), extra=("--keep-requests", "50"))
    proxy = None
    try:
        proxy = procs.start_proxy(workdir, {
            "UPSTREAM_URL": fake.origin + "/api/chat/completions", "DEBUG_MODE": "false", "DEFAULT_KEY": API_KEY,
            "ZAI_TOKEN": TOKEN, "STREAM_WRITE_TIMEOUT_S": str(WRITE_TIMEOUT_S), "BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
            "FE_VERSION": "prod-fe-1.0.94", "FE_VERSION_DISCOVERY": "false"})
        if args.only == "big":
            host, port = proxy.host_port
            kinds = Kinds(host, port)
            result = {"big_body_delay": asyncio.run(big_body_delay(kinds)),
                      "big_body_memory": asyncio.run(big_body_memory(kinds, Monitor(proxy.pid)))}
            print(json.dumps(result, indent=2))
        else:
            result = asyncio.run(soak(args, fake, proxy))
            print_report(result)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "soak-latest.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nproxy log: {proxy.log_path}")
    finally:
        if proxy is not None:
            proxy.stop()
        fake.stop()


if __name__ == "__main__":
    main()
