"""The processes a benchmark runs, and what /proc says about them.

- ``start_fake``: the fake Z.ai upstream in its own process (the asyncio fake of
  ``bench/fake_async.py`` by default, or the threaded test fake ``tests/fake_zai.py``).
- ``start_proxy``: zto under gunicorn exactly as ``make run`` starts it
  (``gunicorn -c gunicorn.conf.py``), from a scratch working directory, with
  ``PYTHONPATH`` = the repository and the given environment.
- ``Proc.stop``: SIGTERM to the whole process group, SIGKILL after a grace period.
  Every process is started in its own session, so a group kill reaches its children
  (gunicorn's workers) and nothing else.
- ``tree``, ``cpu_seconds``, ``rss_bytes``: a process and its children, their CPU time
  (utime + stime from ``/proc/<pid>/stat``) and resident memory (``VmRSS``).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
                   "http_proxy", "https_proxy", "all_proxy", "no_proxy")
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Proc:
    name: str
    process: subprocess.Popen
    origin: str  # http://127.0.0.1:PORT
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.origin.removeprefix("http://").split(":")
        return host, int(port)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the process group; SIGKILL whatever is left after ``grace`` seconds."""
        if self.process.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.pid, signal.SIGKILL)  # workers that outlived their master, too
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment() -> dict[str, str]:
    """This environment without proxy variables or zto settings (the bench sets its own)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from zto.settings import setting_docs  # the names of every zto setting

    drop = set(PROXY_VARIABLES) | {name for name, _, _ in setting_docs()}
    return {k: v for k, v in os.environ.items() if k not in drop}


def start_fake(kind: str, workdir: Path, *, accept_tokens: tuple[str, ...] = (), accept_keys: tuple[str, ...] = (),
               latency: float = 0.0, extra: tuple[str, ...] = (), timeout: float = 15.0) -> Proc:
    """Start a fake Z.ai upstream (``asyncio`` or ``threaded``; ``extra``: more of its
    command-line options); wait for its origin line."""
    if kind == "asyncio":
        command = [sys.executable, "-m", "bench.fake_async"]
    else:
        command = [sys.executable, str(ROOT / "tests" / "fake_zai.py")]
    command += ["--port", "0"]
    for token in accept_tokens:
        command += ["--accept-token", token]
    for key in accept_keys:  # the official API: the asyncio fake only
        command += ["--accept-key", key]
    if latency:
        command += ["--latency", str(latency)]
    command += list(extra)
    log_path = workdir / f"fake-{kind}-{time.monotonic_ns()}.log"
    env = clean_environment()
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=log_path.open("wb"), start_new_session=True)
    proc = Proc(f"fake ({kind})", process, "", log_path)
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise RuntimeError(f"the fake did not start within {timeout}s:\n{proc.log()}")
        proc.origin = process.stdout.readline().decode().strip()
        if not proc.origin.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the fake did not start:\n{proc.log()}")
    except BaseException:
        proc.stop()
        raise
    return proc


def start_proxy(workdir: Path, env: dict[str, str], timeout: float = 30.0) -> Proc:
    """Start ``gunicorn -c gunicorn.conf.py`` from a scratch directory, as deployed."""
    workdir = Path(tempfile.mkdtemp(prefix="proxy-", dir=workdir))
    port = free_port()
    full_env = clean_environment()
    full_env.update(env, PORT=str(port), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    log_path = workdir / "gunicorn.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py")],
        cwd=workdir, env=full_env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    proc = Proc("proxy", process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{proc.log()}")
            try:
                with _NO_PROXY_OPENER.open(proc.origin + "/v1/models", timeout=2) as answer:
                    if answer.status == 200:
                        return proc
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within {timeout}s:\n{proc.log()}")
            time.sleep(0.1)
    except BaseException:
        proc.stop()
        raise


def gunicorn_config(env: dict[str, str]) -> dict:
    """The configuration ``gunicorn.conf.py`` yields for ``env``: read by running it,
    as gunicorn does, in a scratch directory."""
    script = ("import json, runpy, sys; c = runpy.run_path(sys.argv[1]); "
              "print(json.dumps({k: c.get(k) for k in ('worker_class', 'workers', 'threads', "
              "'worker_connections', 'keepalive', 'timeout')}))")
    full_env = clean_environment()
    full_env.update(env, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as scratch:
        out = subprocess.run([sys.executable, "-c", script, str(ROOT / "gunicorn.conf.py")], cwd=scratch, env=full_env,
                             capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-500:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- /proc ---------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return text[text.rindex(")") + 2:].split()


def tree(pid: int) -> list[int]:
    """``pid`` and its children (gunicorn's master and workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))  # fields[1] = ppid
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` (each process's own, not its reaped children's)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / CLOCK_TICKS


def rss_bytes(pids: list[int]) -> int:
    """Sum of ``VmRSS`` of ``pids``."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def machine_cpu_s() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of all CPUs since boot, from /proc/stat: busy is user +
    nice + system (what processes are charged), stolen is time the hypervisor took away."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = values[:8]
    return (user + nice + system) / CLOCK_TICKS, steal / CLOCK_TICKS


def wait_until_quiet(threshold_cores: float = 0.15, window_s: float = 1.0, max_wait_s: float = 30.0) -> float:
    """Wait (at most ``max_wait_s``) for a ``window_s`` in which the machine's busy CPU stays
    under ``threshold_cores``; the busy cores of the last window."""
    deadline = time.monotonic() + max_wait_s
    while True:
        before = machine_cpu_s()[0]
        time.sleep(window_s)
        busy = (machine_cpu_s()[0] - before) / window_s
        if busy < threshold_cores or time.monotonic() > deadline:
            return busy


def thread_count(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[17])  # num_threads (field 20 of stat)
    return total
