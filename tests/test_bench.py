"""The benchmark's own parts: the official-API endpoint of its asyncio fake, both paths
of a figure end to end against zto under gunicorn (a few requests, no timing), and
issue 10's table of targets."""

from __future__ import annotations

import asyncio

import pytest

import zai_scenarios
from bench import figures, procs, report
from bench.client import OfficialTarget, Session

KEY = figures.OFFICIAL_KEY


@pytest.fixture
def fake(tmp_path):
    proc = procs.start_fake("asyncio", tmp_path, accept_keys=(KEY,))
    yield proc
    proc.stop()


def stream(fake, key: str, prompt: str):
    async def run():
        session = Session(*fake.host_port)
        try:
            return await session.stream(OfficialTarget(*fake.host_port, api_key=key).request(prompt),
                                        OfficialTarget.read_event, timeout=10)
        finally:
            session.close()

    return asyncio.run(run())


def test_the_fake_official_api_streams_the_scenario_text(fake):
    result = stream(fake, KEY, "scenario:long Write a long answer.")
    assert result.ok and result.text == zai_scenarios.SCENARIOS["long"].content
    assert result.content_events == sum(1 for e in zai_scenarios.SCENARIOS["long"].events
                                        if e["data"].get("delta_content"))
    refused = stream(fake, "0" * 32 + ".wrongwrongwrong", "hi")
    assert not refused.ok and refused.status == 401


@pytest.mark.parametrize("api", [False, True])
def test_a_figure_runs_on_both_paths(tmp_path, api):
    bench = figures.Bench(tmp_path, figures.Counts(a_requests=3, a_warmup=1))
    result = figures.figure_a(bench, api=api)
    for side in ("direct", "proxy"):
        assert result[side]["failures"] == 0, result[side]["errors"]
        assert result[side]["ttft_p50_ms"] is not None


def test_the_goals_table_names_each_target_and_the_go_reference():
    c = {"ideal_s": 5.0, "direct": {"failures": 0, "total_p99_s": 5.0, "peak_rss_mb": 40.0, "streams": 2000},
         "proxy": {"failures": 0, "total_p99_s": 5.08, "peak_rss_mb": 131.0}}
    results = {"a": {"direct": {"ttft_p50_ms": 0.2}, "proxy": {"ttft_p50_ms": 0.7}},
               "b_api": {"direct": {"cpu_us_per_chunk": 2.0}, "proxy": {"cpu_us_per_chunk": 11.0}},
               "c": c, "c2": {**c, "proxy": {**c["proxy"], "failures": 3}}, "c_api": {"error": "RuntimeError: x"}}
    rows = {row[0]: row[1:] for row in report.goal_rows(results)}
    assert rows["added time to first token, p50 [web chat]"] == ("0.50 ms", "0.26 ms", "≤ 0.6 ms", "yes")
    assert rows["CPU per forwarded chunk (32 fast streams) [official API]"] == ("11.0 µs", "8.3 µs", "≤ 12 µs", "yes")
    assert rows["1000 concurrent streams, p99 of a 5.0 s stream [web chat]"][0::3] == ("5.08 s", "yes")
    assert rows["peak RSS in that run [web chat]"] == ("131.0 MB", "122 MB", "≤ 130 MB", "no")
    assert rows["1000 concurrent streams, p99 of a 5.0 s stream [web chat, WEB_CONCURRENCY=2]"][0] == "failed"
    assert rows["peak RSS in that run [official API]"][0] == "failed"
    assert report.goals_table(results).splitlines()[0].endswith("| met |")


def test_the_spread_table_gives_median_range_and_runs_that_met_each_target():
    def run(added_ms, p99_s, failures=0):
        return {"a": {"direct": {"ttft_p50_ms": 0.2}, "proxy": {"ttft_p50_ms": 0.2 + added_ms}},
                "c": {"ideal_s": 5.0, "direct": {"failures": 0, "total_p99_s": 5.0, "peak_rss_mb": 40.0, "streams": 2000},
                      "proxy": {"failures": failures, "total_p99_s": p99_s, "peak_rss_mb": 120.0}}}

    rows = {row[0]: row[1:] for row in report.spread_rows([run(0.5, 5.08), run(0.9, 5.30), run(0.7, 5.05, failures=2)])}
    assert rows["added time to first token, p50 [web chat]"] == ("0.70 ms", "0.50 – 0.90", "0.26 ms", "≤ 0.6 ms",
                                                                 "1 of 3")
    assert rows["1000 concurrent streams, p99 of a 5.0 s stream [web chat]"][1:] == (
        "5.08 – 5.30", "5.05 s", "≤ 5.1 s", "1 of 3")  # the run with failures meets nothing
    assert report.spread_table([run(0.5, 5.08)]).splitlines()[0].endswith("| met in |")


def test_the_floor_measures_each_small_app_and_zto(capsys):
    from bench import floor

    assert floor.main(["--rounds", "1", "--requests", "3", "--warmup", "1", "--no-quiet-wait"]) == 0
    table = capsys.readouterr().out.split("| app |", 1)[1]
    for label in floor.LABELS.values():
        assert f"| {label} | " in table
