"""``python -m bench.floor``: the floor of zto's stack for figure (a), the time a
proxy adds to the first token of sequential requests.

The smallest apps on the same stack (``floor_apps.py``: Flask under gunicorn's gevent
worker, one worker, on loopback) against the same asyncio fake, beside zto on the
official-API path and the fake called directly: each app's time to the first content
token (p50) and its worker's CPU time per request (from /proc). The variants run in
turn, ``--rounds`` times, and each figure is the median of its rounds, so a drift of the
machine spreads over all of them.

    python -m bench.floor                 # 3 rounds of 1000 requests per variant
    python -m bench.floor --rounds 1 --requests 200
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from . import procs

sys.path.insert(0, str(procs.ROOT / "tests"))  # fake_zai, zai_scenarios

from . import figures  # noqa: E402
from .client import OfficialTarget, ProxyTarget  # noqa: E402

APPS = ("static", "urllib3", "requests")
LABELS = {
    "direct": "the fake called directly",
    "static": "Flask app, two fixed chunks, no upstream",
    "urllib3": "Flask app passing the fake's stream through a urllib3 pool",
    "requests": "Flask app passing the fake's stream through requests",
    "zto": "zto, official-API path (UPSTREAMS=api)",
}


def start_app(kind: str, upstream: str, workdir: Path) -> procs.Proc:
    port = procs.free_port()
    env = procs.clean_environment()
    env.update(FLOOR_APP=kind, FLOOR_UPSTREAM=upstream, FLOOR_TEXT=figures.PLAIN_TEXT, PYTHONPATH=str(procs.ROOT))
    log_path = workdir / f"floor-{kind}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "--worker-connections", "2000",
         "-b", f"127.0.0.1:{port}", "bench.floor_apps:app"],
        cwd=workdir, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,  # not zto's gunicorn.conf.py
        start_new_session=True)
    proc = procs.Proc(f"floor app ({kind})", process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 30
    while len(procs.tree(process.pid)) < 2 or not _answers(proc):
        if process.poll() is not None or time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"the floor app did not start:\n{proc.log()}")
        time.sleep(0.1)
    return proc


def _answers(proc: procs.Proc) -> bool:
    import socket

    try:
        with socket.create_connection(proc.host_port, timeout=1):
            return True
    except OSError:
        return False


def measure(host_port, make_request, read_event, pids: list[int], requests: int, warmup: int) -> tuple[float, float]:
    """(time to first token p50 in ms, CPU ms per request of ``pids``)."""
    stack = SimpleNamespace(all_pids=lambda: pids)
    cpu0 = procs.cpu_seconds(pids)
    result = figures.run_load(figures._sequential(stack, host_port, make_request, read_event,
                                                  requests=requests, warmup=warmup))
    cpu = procs.cpu_seconds(pids) - cpu0
    if result["failures"]:
        raise RuntimeError(f"{result['failures']} requests failed: {result['errors']}")
    return result["ttft_p50_ms"], cpu / (requests + warmup) * 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--no-quiet-wait", action="store_true",
                        help="start each variant at once, without waiting for the machine to be quiet")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="zto-floor-"))
    bench = figures.Bench(workdir)
    fake = procs.start_fake("asyncio", workdir, accept_keys=(figures.OFFICIAL_KEY,))
    servers: dict[str, procs.Proc] = {}
    figures_of: dict[str, list[tuple[float, float]]] = {}
    try:
        for kind in APPS:
            servers[kind] = start_app(kind, fake.origin, workdir)
        servers["zto"] = procs.start_proxy(workdir, bench.proxy_environment(anonymous=False, upstream=fake.origin,
                                                                            api=True))
        official = OfficialTarget(*fake.host_port, api_key=figures.OFFICIAL_KEY)
        for round_ in range(1, args.rounds + 1):
            for name in ("direct", *APPS, "zto"):
                if not args.no_quiet_wait:
                    procs.wait_until_quiet()  # other programs' load would weigh on the figure
                if name == "direct":
                    host_port, pids = fake.host_port, procs.tree(fake.pid)
                    make, read = lambda: official.request(figures.PLAIN), OfficialTarget.read_event
                elif name == "zto":
                    host_port, pids = servers[name].host_port, procs.tree(servers[name].pid)
                    target = ProxyTarget(*host_port, api_key=figures.API_KEY)
                    make, read = (lambda t=target: t.request(figures.PLAIN)), ProxyTarget.read_event
                else:
                    host_port, pids = servers[name].host_port, procs.tree(servers[name].pid)
                    target = OfficialTarget(*host_port, api_key=figures.OFFICIAL_KEY)
                    make, read = (lambda t=target: t.request(figures.PLAIN)), OfficialTarget.read_event
                figures_of.setdefault(name, []).append(measure(host_port, make, read, pids, args.requests, args.warmup))
            print(f"round {round_} of {args.rounds} done", flush=True)
    except KeyboardInterrupt:
        print("interrupted; processes stopped", file=sys.stderr)
        return 130
    finally:
        for proc in servers.values():
            proc.stop()
        fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    direct = statistics.median(t for t, _ in figures_of["direct"])
    print(f"\n{args.requests} sequential keep-alive requests per variant and round, medians of {args.rounds} rounds\n")
    print("| app | time to first token, p50 | added to the direct call | worker CPU per request |")
    print("|---|---|---|---|")
    for name, measured in figures_of.items():
        ttft = statistics.median(t for t, _ in measured)
        cpu = "" if name == "direct" else f"{statistics.median(c for _, c in measured):.2f} ms"
        added = "" if name == "direct" else f"+{ttft - direct:.2f} ms"
        print(f"| {LABELS[name]} | {ttft:.2f} ms | {added} | {cpu} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
