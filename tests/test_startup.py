"""How the service starts: nothing heavy before the gevent worker patches."""

import subprocess
import sys
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("module", ["zto.settings", "zto.startup"])
def test_what_the_master_imports_loads_no_network_library(module):
    """gunicorn.conf.py imports these in the master; ssl imported there would be unpatched
    in gevent workers (gevent's MonkeyPatchWarning)."""
    code = f"import sys, {module}; print(sorted({{'ssl', 'requests', 'urllib3', 'flask'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_start_up_warnings_come_once_per_instance(start_server, fake):
    """From gunicorn's master, not from every worker: two workers, each warning once."""
    server = start_server({"UPSTREAM_URL": fake.completions_url, "WEB_CONCURRENCY": "2", "DEBUG_MODE": "false"})
    pids = set()
    for _ in range(200):  # until both workers have loaded the app and answered
        with requests.Session() as session:
            pids.add(session.get(server.url + "/dashboard/snapshot", timeout=10).json()["stats"]["pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2
    log = server.log()
    assert log.count("DASHBOARD_KEY is not set") == 1, log
    assert log.count("DEFAULT_KEY is the published sk-your-key") == 1, log


def test_gevent_worker_starts_without_patch_warnings(live):
    assert "MonkeyPatchWarning" not in live.log()
    assert "Using worker: gevent" in live.log()


def _closure(requirements: Path) -> set[str]:
    """The distributions requirements.txt installs: its lines and, recursively, what they need."""
    import importlib.metadata as metadata

    from packaging.requirements import Requirement

    def name(text: str) -> str:
        return text.lower().replace("_", "-")

    wanted = [Requirement(line) for line in requirements.read_text().splitlines()
              if line.strip() and not line.startswith(("#", "-"))]
    seen: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        if name(requirement.name) in seen:
            continue
        seen.add(name(requirement.name))
        for extra in [None, *requirement.extras]:
            for dependency in map(Requirement, metadata.requires(requirement.name) or []):
                if dependency.marker is None or dependency.marker.evaluate({"extra": extra or ""}):
                    wanted.append(dependency)
    return seen


def test_the_runtime_requirements_carry_the_gevent_worker():
    """make run and the Docker image install requirements.txt only: the worker they start
    must not depend on something only the test tools bring (gunicorn's gevent worker
    imports packaging, which gunicorn itself only lists under its [gevent] extra)."""
    installed = _closure(ROOT / "requirements.txt")
    assert {"gunicorn", "gevent", "packaging"} <= installed
