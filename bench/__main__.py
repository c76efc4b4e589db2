"""``python -m bench`` (``make bench``): measure zto against the fake Z.ai called directly.

    python -m bench                 # every figure, full counts (a few minutes)
    python -m bench --quick         # smaller counts, for development
    python -m bench --runs 3        # everything three times: medians and spread of the targets
    python -m bench --only a,c      # some figures: a b c c2 d e (web chat), a_api b_api c_api (official API)
    python -m bench --threads 1100  # THREADS for gunicorn (default: gunicorn.conf.py's)
    python -m bench --worker-class gthread --threads 1100  # the threaded worker, for comparison
    python -m bench --fake threaded # the threaded test fake instead of the asyncio one

Prints the table and the configuration, and writes everything measured to
``bench/results/latest.json``. With ``--runs N`` the figures run N times in turn (run 1
of every figure, then run 2...), so that a drift of the machine spreads over all of
them; the targets' table then gives each one's median, its spread and how many runs
met it, and the detailed table is the last run's. Processes run on 127.0.0.1 only and are stopped
however the run ends.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import procs

sys.path.insert(0, str(procs.ROOT / "tests"))  # fake_zai, zai_scenarios

from . import figures, report  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def configuration(bench: figures.Bench, args) -> dict:
    gunicorn = procs.gunicorn_config(bench.proxy_environment(anonymous=False, upstream="http://127.0.0.1:1"))
    return {
        "gunicorn": gunicorn,
        "proxy_env_overrides": bench.proxy_env,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "fake": bench.fake_kind,
        "client": "asyncio (bench/client.py), one process, the bench's own",
        "counts": bench.counts.__dict__,
        "quick": args.quick,
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def _config_lines(config: dict) -> list[str]:
    g = config["gunicorn"]
    return [
        f"proxy: gunicorn -c gunicorn.conf.py: worker_class={g.get('worker_class')} workers={g.get('workers')} "
        f"threads={g.get('threads')} worker_connections={g.get('worker_connections')}"
        + (f"  (env overrides: {config['proxy_env_overrides']})" if config["proxy_env_overrides"] else ""),
        f"fake upstream: {config['fake']}; client: {config['client']}",
        f"machine: Python {config['python']}, {config['cpu_count']} CPUs ({config['cpu_model']}), "
        f"{config['memory_gb']} GB; fake, proxy and client share it",
    ]


def _interrupt(signum, frame) -> None:
    # SIGTERM ends the run as Ctrl-C does; the finally blocks stop the processes. (While
    # load runs, figures.run handles SIGTERM by cancelling it instead.)
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(figures.FIGURES),
                        help=f"figures to run, e.g. 'a,c' or 'ac' (default: all: {','.join(figures.FIGURES)})")
    parser.add_argument("--quick", action="store_true", help="smaller counts, for development")
    parser.add_argument("--fake", choices=("asyncio", "threaded"), default="asyncio",
                        help="the fake upstream: bench/fake_async.py (default) or tests/fake_zai.py")
    parser.add_argument("--worker-class", choices=("gevent", "gthread"),
                        help="WORKER_CLASS for the proxy (default: its own default)")
    parser.add_argument("--threads", type=int, help="THREADS for the proxy, with gthread (default: its own default)")
    parser.add_argument("--workers", type=int, help="WEB_CONCURRENCY for the proxy (default: its own default)")
    parser.add_argument("--runs", type=int, default=1, help="run the figures this many times (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json", help="where the JSON goes")
    args = parser.parse_args(argv)
    names = [n for n in args.only.replace(" ", ",").split(",") if n]
    if len(names) == 1 and names[0] not in figures.FIGURES:
        names = list(names[0])  # "ac": single-letter names run together
    chosen = [n for n in figures.FIGURES if n in names]
    if not chosen or set(names) - set(chosen):
        parser.error(f"--only: choose among {', '.join(figures.FIGURES)}")

    # 1000 client connections here, as many upstream in the proxy: raise the open-files limit
    # (children inherit it).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, _interrupt)

    env = {}
    if args.worker_class:
        env["WORKER_CLASS"] = args.worker_class
    if args.threads:
        env["THREADS"] = str(args.threads)
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    workdir = Path(tempfile.mkdtemp(prefix="zto-bench-"))
    bench = figures.Bench(workdir, figures.QUICK if args.quick else figures.FULL, args.fake, env)
    config = configuration(bench, args)
    print("\n".join(_config_lines(config)), flush=True)

    runs: list[dict] = []
    started = time.time()
    try:
        for run in range(1, max(args.runs, 1) + 1):
            results: dict = {}
            runs.append(results)
            for name in chosen:
                busy = procs.wait_until_quiet()  # other programs' load would weigh on the figure
                t0 = time.monotonic()
                print(f"figure ({name}){f', run {run}' if args.runs > 1 else ''}: "
                      f"{figures.FIGURES[name].__doc__.strip().splitlines()[0]} (machine busy before: {busy:.2f} cores)",
                      flush=True)
                try:
                    results[name] = figures.FIGURES[name](bench)
                except Exception as exc:  # one broken figure does not lose the others
                    results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                    print(f"  FAILED: {results[name]['error']}", flush=True)
                print(f"  done in {time.monotonic() - t0:.1f} s", flush=True)
    except KeyboardInterrupt:
        print("interrupted; processes stopped", file=sys.stderr)
        return 130
    finally:
        kept = any(f.get(side, {}).get("failures") for results in runs for f in results.values()
                   for side in ("direct", "proxy"))
        if not kept:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", file=sys.stderr)

    print()
    if len(runs) > 1:
        print(f"The targets over {len(runs)} runs:")
        print(report.spread_table(runs))
        print()
        print("The last run:")
    print(report.goals_table(results))
    print()
    print(report.table(results))
    print()
    print("\n".join(_config_lines(config)))
    print("client health: " + "\n               ".join(report.harness_lines(results)))
    for line in report.failures(results):
        print("failures: " + line)
    for line in report.harness_checks(results):
        print("WARNING: " + line)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "configuration": config, "figures": results, "goals": report.goal_rows(results),
        "runs": runs if len(runs) > 1 else None, "spread": report.spread_rows(runs) if len(runs) > 1 else None,
        "table": report.rows(results),
        "warnings": report.harness_checks(results),
    }, indent=2, ensure_ascii=False) + "\n")
    print(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
