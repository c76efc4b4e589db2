"""``/metrics`` with several workers, in-process parts: the keys set aside, as each
worker writes them to prometheus_client's multiprocess directory and a scrape reads
them. Each "worker" is a Python process of its own (that mode is chosen when
prometheus_client is imported, and files are named by process id); under gunicorn, in
``test_scaling.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT
from zto.metrics import SET_ASIDE, set_aside_seconds

WORKER = """
import json, os, sys
from zto.metrics import Metrics
metrics = Metrics()
for state in json.loads(sys.argv[1]):
    metrics.api_keys_set_aside({(key, reason): left for key, reason, left in state})
print(os.getpid())
"""
SCRAPE = "from zto.metrics import Metrics; print(Metrics().render().decode())"


def run(tmp_path, code: str, *args: str) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, check=True, capture_output=True,
                          text=True, timeout=60).stdout


def worker(tmp_path, *states: list) -> int:
    """A worker process that is told ``states`` in turn, then ends; its pid."""
    return int(run(tmp_path, WORKER, json.dumps(states)))


def set_aside(tmp_path) -> dict[tuple[str, str], float]:
    """One scrape's ``zto_api_key_set_aside_seconds``: (key, reason) -> seconds left."""
    families = text_string_to_metric_families(run(tmp_path, SCRAPE))
    return {(s.labels["key"], s.labels["reason"]): s.value
            for family in families for s in family.samples if s.name == SET_ASIDE}


def test_a_scrape_shows_every_live_workers_keys_the_latest_back_and_no_more(tmp_path):
    one = worker(tmp_path, [["key-a", "upstream_unauthorized", 100], ["key-b", "insufficient_quota", 100]],
                 [["key-a", "upstream_unauthorized", 100]])  # key-b came back
    two = worker(tmp_path, [["key-a", "upstream_unauthorized", 300]])
    scrape = run(tmp_path, SCRAPE)
    assert "zto_api_key_set_aside_until" not in scrape  # the workers' own gauge is not served
    seen = set_aside(tmp_path)
    assert list(seen) == [("key-a", "upstream_unauthorized")] and 200 < seen["key-a", "upstream_unauthorized"] <= 300
    multiprocess.mark_process_dead(two, str(tmp_path))  # what gunicorn.conf.py's child_exit does
    seen = set_aside(tmp_path)
    assert list(seen) == [("key-a", "upstream_unauthorized")] and 0 < seen["key-a", "upstream_unauthorized"] <= 100
    multiprocess.mark_process_dead(one, str(tmp_path))
    assert set_aside(tmp_path) == {}


def test_seconds_left_are_shown_for_the_keys_not_back_yet():
    family = set_aside_seconds({("b", "insufficient_quota"): 1060.4, ("a", "upstream_unauthorized"): 999.0,
                                ("c", "upstream_unauthorized"): 0}, now=1000.0)
    assert family.name == SET_ASIDE
    assert [(s.labels, s.value) for s in family.samples] == [({"key": "b", "reason": "insufficient_quota"}, 60)]
