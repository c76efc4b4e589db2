"""The tables ``make bench`` prints: issue 10's targets (each figure against its target,
the Go original's published figure beside it), then each figure for the fake called
directly and for the proxy, with their difference or ratio; then the configuration and
the harness checks."""

from __future__ import annotations

import statistics

# The figures whose numbers are times the client takes: a busy client would inflate them.
# (b) is a CPU counter of the proxy and (d) a count; there the client only sets the pace.
TIMED = ("a", "c", "c2", "e", "a_api", "c_api")


def _num(value, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value}{unit}"
    return f"{value:.{digits}f}{unit}"


def _diff(direct, proxy, unit: str, digits: int = 2) -> str:
    if direct is None or proxy is None:
        return "-"
    return f"{proxy - direct:+.{digits}f}{unit}"


def _ratio(direct, proxy) -> str:
    if not direct or proxy is None:
        return "-"
    return f"x{proxy / direct:.2f}"


PATHS = (("", ""), ("_api", " [official API]"))  # figure-name suffix, label suffix


def _rows_a(r: dict, tag: str) -> list[tuple[str, str, str, str]]:
    d, p = r["direct"], r["proxy"]
    return [
        (f"(a) time to first token p50, sequential keep-alive{tag}", _num(d["ttft_p50_ms"], " ms"),
         _num(p["ttft_p50_ms"], " ms"), _diff(d["ttft_p50_ms"], p["ttft_p50_ms"], " ms")),
        (f"(a) time to first token p99{tag}", _num(d["ttft_p99_ms"], " ms"),
         _num(p["ttft_p99_ms"], " ms"), _diff(d["ttft_p99_ms"], p["ttft_p99_ms"], " ms")),
    ]


def _rows_b(r: dict, tag: str) -> list[tuple[str, str, str, str]]:
    d, p = r["direct"], r["proxy"]
    return [(f"(b) CPU per forwarded chunk, 32 fast streams [direct: the fake's own]{tag}",
             _num(d["cpu_us_per_chunk"], " µs", 1), _num(p["cpu_us_per_chunk"], " µs", 1),
             _ratio(d["cpu_us_per_chunk"], p["cpu_us_per_chunk"]))]


def _rows_c(r: dict, tag: str) -> list[tuple[str, str, str, str]]:
    d, p = r["direct"], r["proxy"]
    n = d["streams"]
    return [
        (f"(c) {n} streams ({n // 2} conn x 2) of 50 chunks 100 ms apart: failures{tag}",
         f"{d['failures']} / {n}", f"{p['failures']} / {p['streams']}", _diff(d["failures"], p["failures"], "", 0)),
        (f"(c) total time p50 (ideal {r['ideal_s']:.1f} s){tag}", _num(d["total_p50_s"], " s"),
         _num(p["total_p50_s"], " s"), _diff(d["total_p50_s"], p["total_p50_s"], " s")),
        (f"(c) total time p99{tag}", _num(d["total_p99_s"], " s"), _num(p["total_p99_s"], " s"),
         _diff(d["total_p99_s"], p["total_p99_s"], " s")),
        (f"(c) time to first token p99{tag}", _num(d["ttft_p99_s"], " s", 3), _num(p["ttft_p99_s"], " s", 3),
         _diff(d["ttft_p99_s"], p["ttft_p99_s"], " s", 3)),
        (f"(c) peak RSS, all processes [direct: the fake's]{tag}", _num(d["peak_rss_mb"], " MB", 1),
         _num(p["peak_rss_mb"], " MB", 1), _ratio(d["peak_rss_mb"], p["peak_rss_mb"])),
        (f"(c) CPU used, share of one core [direct: the fake's]{tag}", _num(d["cpu_share"], "", 2),
         _num(p["cpu_share"], "", 2), _ratio(d["cpu_share"], p["cpu_share"])),
    ]


def rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(figure, direct, proxy, difference) for every figure that ran to its end."""
    results = {name: figure for name, figure in results.items() if "error" not in figure}
    out = []
    for suffix, tag in PATHS:
        if "a" + suffix in results:
            out += _rows_a(results["a" + suffix], tag)
        if "b" + suffix in results:
            out += _rows_b(results["b" + suffix], tag)
        if "c" + suffix in results:
            out += _rows_c(results["c" + suffix], tag)
        if not suffix and "c2" in results:
            out += _rows_c(results["c2"], " [WEB_CONCURRENCY=2]")
    if "d" in results:
        d, p = results["d"]["direct"], results["d"]["proxy"]
        out += [
            (f"(d) upstream connections per 100 requests ({p['requests']} at 32 concurrent) [direct: the client's]",
             _num(d["per_100_requests"], "", 1), _num(p["per_100_requests"], "", 1),
             f"{p['upstream_connections']} opened in all"),
        ]
    if "e" in results:
        r = results["e"]
        d, p = r["direct"], r["proxy"]
        out += [
            (f"(e) anonymous, {r['latency_ms']:.0f} ms round trip: time to first token p50",
             _num(d["ttft_p50_ms"], " ms"), _num(p["ttft_p50_ms"], " ms"), _diff(d["ttft_p50_ms"], p["ttft_p50_ms"], " ms")),
            ("(e) time to first token p99", _num(d["ttft_p99_ms"], " ms"), _num(p["ttft_p99_ms"], " ms"),
             _diff(d["ttft_p99_ms"], p["ttft_p99_ms"], " ms")),
        ]
    return out


# Issue 10's table: each target, and the Go original's published figures on the same kind
# of machine as a reference (measured there, not in this run).
GOALS = (
    # (what, unit, Go original, target, the measured value of a figure, or None)
    ("added time to first token, p50", "ms", 0.26, 0.6, "a",
     lambda r: None if r["direct"]["ttft_p50_ms"] is None or r["proxy"]["ttft_p50_ms"] is None
     else r["proxy"]["ttft_p50_ms"] - r["direct"]["ttft_p50_ms"]),
    ("CPU per forwarded chunk (32 fast streams)", "µs", 8.3, 12.0, "b", lambda r: r["proxy"]["cpu_us_per_chunk"]),
    ("1000 concurrent streams, p99 of a 5.0 s stream", "s", 5.05, 5.10, "c", lambda r: r["proxy"]["total_p99_s"]),
    ("peak RSS in that run", "MB", 122.0, 130.0, "c", lambda r: r["proxy"]["peak_rss_mb"]),
)


def goal_values(results: dict) -> list[tuple[str, float | None, str, float, float]]:
    """(figure, measured value or None if it failed, unit, Go original, target) for each
    target on each path measured."""
    out = []
    variants = (("", "web chat"), ("2", "web chat, WEB_CONCURRENCY=2"), ("_api", "official API"))
    for what, unit, go, target, figure, measure in GOALS:
        for suffix, path in variants:
            r = results.get(figure + suffix)
            if r is None or (suffix == "2" and figure != "c"):
                continue
            value = None if "error" in r else measure(r)
            if figure == "c" and value is not None and r["proxy"]["failures"]:
                value = None  # a capacity run with failures meets nothing
            if figure == "c" and "direct" in r:  # the load actually applied (smaller with --quick)
                what_here = what.replace("1000", str(r["direct"]["streams"] // 2))
            else:
                what_here = what
            out.append((f"{what_here} [{path}]", value, unit, go, target))
    return out


def _digits(unit: str) -> int:
    return 1 if unit in ("µs", "MB") else 2


def goal_rows(results: dict) -> list[tuple[str, str, str, str, str]]:
    """(figure, zto now, Go original, target, met) for each target on each path measured."""
    out = []
    for what, value, unit, go, target in goal_values(results):
        shown = "failed" if value is None else f"{value:.{_digits(unit)}f} {unit}"
        met = "-" if value is None else ("yes" if value <= target else "no")
        out.append((what, shown, f"{go:g} {unit}", f"≤ {target:g} {unit}", met))
    return out


def spread_rows(runs: list[dict]) -> list[tuple[str, str, str, str, str, str]]:
    """(figure, median, spread, Go original, target, runs that met it) over several runs
    of the same figures (``--runs``); a failed run counts as not meeting the target."""
    values: dict[str, list[float | None]] = {}
    meta: dict[str, tuple[str, float, float]] = {}
    for results in runs:
        for what, value, unit, go, target in goal_values(results):
            values.setdefault(what, []).append(value)
            meta[what] = (unit, go, target)
    out = []
    for what, measured in values.items():
        unit, go, target = meta[what]
        ok = sorted(v for v in measured if v is not None)
        d = _digits(unit)
        median = f"{statistics.median(ok):.{d}f} {unit}" if ok else "failed"
        spread = f"{ok[0]:.{d}f} – {ok[-1]:.{d}f}" if ok else "-"
        met = sum(1 for v in measured if v is not None and v <= target)
        out.append((what, median, spread, f"{go:g} {unit}", f"≤ {target:g} {unit}", f"{met} of {len(measured)}"))
    return out


def spread_table(runs: list[dict]) -> str:
    return _render(("figure", "median", "min – max", "Go original", "target", "met in"), spread_rows(runs))


def _render(header: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in body]
    return "\n".join(lines)


def goals_table(results: dict) -> str:
    return _render(("figure", "zto now", "Go original", "target", "met"), goal_rows(results))


def table(results: dict) -> str:
    return _render(("figure", "fake called directly", "proxy", "difference / ratio"), rows(results))


def failures(results: dict) -> list[str]:
    """One line per side of a figure that had failures, with its commonest errors."""
    lines = []
    for name, figure in results.items():
        if "error" in figure:
            lines.append(f"({name}) did not complete: {figure['error'][:500]}")
        for side in ("direct", "proxy"):
            part = figure.get(side) or {}
            if part.get("failures"):
                lines.append(f"({name}) {side}: {part['failures']} failed: {part.get('errors')}")
    return lines


def harness_checks(results: dict) -> list[str]:
    """Warnings when the harness itself may have limited a figure."""
    warnings = []
    for name in ("c", "c2", "c_api"):
        c = results.get(name)
        if not c or "direct" not in c:  # not run, or failed: rows() says so
            continue
        if c["direct"]["total_p99_s"] is not None and c["direct"]["total_p99_s"] > c["ideal_s"] + 0.2:
            warnings.append(f"({name}) the direct p99 is {c['direct']['total_p99_s']:.2f} s, more than 0.2 s over "
                            "the ideal: the fake or the client limits the capacity figure.")
        if c["direct"]["failures"]:
            warnings.append(f"({name}) the fake called directly had failures: the capacity figure is not trustworthy.")
    for name, figure in results.items():
        for side in ("direct", "proxy"):
            others = (figure.get(side) or {}).get("other_programs_cores")
            if others is not None and others > 0.25:
                warnings.append(f"({name}) {side}: other programs kept {others:.2f} cores busy meanwhile: "
                                "the machine was not quiet, the figure is pessimistic.")
            stolen = (figure.get(side) or {}).get("stolen_cores")
            if stolen is not None and stolen > 0.1:
                warnings.append(f"({name}) {side}: the hypervisor took {stolen:.2f} cores meanwhile (steal time).")
        if name not in TIMED:
            continue
        for side in ("direct", "proxy"):
            part = figure.get(side) or {}
            share, lag = part.get("client_cpu_share"), part.get("client_loop_lag_p99_ms")
            if share is not None and share > 0.8:
                warnings.append(f"({name}) {side}: the client used {share:.0%} of a core: it may be the bottleneck.")
            if lag is not None and lag > 20:
                warnings.append(f"({name}) {side}: the client's event loop lagged {lag:.0f} ms at p99: "
                                "its times are inflated by up to that much.")
    return warnings


def harness_lines(results: dict) -> list[str]:
    """The client's CPU share and loop lag, and other programs' CPU, per figure and side."""
    lines = []
    for name, figure in results.items():
        parts = []
        for side in ("direct", "proxy"):
            part = figure.get(side) or {}
            if part.get("client_cpu_share") is not None:
                parts.append(f"{side} {part['client_cpu_share']:.0%} CPU, loop lag p99 "
                             f"{_num(part['client_loop_lag_p99_ms'], ' ms', 1)} / max "
                             f"{_num(part['client_loop_lag_max_ms'], ' ms', 1)}, other programs "
                             f"{_num(part.get('other_programs_cores'), ' cores', 2)}")
        if parts:
            lines.append(f"({name}) " + "; ".join(parts))
    return lines
