"""The table ``make bench`` prints: each figure for the fake called directly and for the
proxy, with their difference or ratio; then the configuration and the harness checks."""

from __future__ import annotations

# The figures whose numbers are times the client takes: a busy client would inflate them.
# (b) is a CPU counter of the proxy and (d) a count; there the client only sets the pace.
TIMED = ("a", "c", "e")


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


def rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(figure, direct, proxy, difference) for every figure that ran to its end."""
    results = {name: figure for name, figure in results.items() if "error" not in figure}
    out = []
    if "a" in results:
        d, p = results["a"]["direct"], results["a"]["proxy"]
        out += [
            ("(a) time to first token p50, sequential keep-alive", _num(d["ttft_p50_ms"], " ms"),
             _num(p["ttft_p50_ms"], " ms"), _diff(d["ttft_p50_ms"], p["ttft_p50_ms"], " ms")),
            ("(a) time to first token p99", _num(d["ttft_p99_ms"], " ms"),
             _num(p["ttft_p99_ms"], " ms"), _diff(d["ttft_p99_ms"], p["ttft_p99_ms"], " ms")),
        ]
    if "b" in results:
        d, p = results["b"]["direct"], results["b"]["proxy"]
        out += [
            ("(b) CPU per forwarded chunk, 32 fast streams [direct: the fake's own]",
             _num(d["cpu_us_per_chunk"], " µs", 1), _num(p["cpu_us_per_chunk"], " µs", 1),
             _ratio(d["cpu_us_per_chunk"], p["cpu_us_per_chunk"])),
        ]
    if "c" in results:
        r = results["c"]
        d, p = r["direct"], r["proxy"]
        n = d["streams"]
        out += [
            (f"(c) {n} streams ({n // 2} conn x 2) of 50 chunks 100 ms apart: failures",
             f"{d['failures']} / {n}", f"{p['failures']} / {p['streams']}", _diff(d["failures"], p["failures"], "", 0)),
            (f"(c) total time p50 (ideal {r['ideal_s']:.1f} s)", _num(d["total_p50_s"], " s"),
             _num(p["total_p50_s"], " s"), _diff(d["total_p50_s"], p["total_p50_s"], " s")),
            ("(c) total time p99", _num(d["total_p99_s"], " s"), _num(p["total_p99_s"], " s"),
             _diff(d["total_p99_s"], p["total_p99_s"], " s")),
            ("(c) time to first token p99", _num(d["ttft_p99_s"], " s", 3), _num(p["ttft_p99_s"], " s", 3),
             _diff(d["ttft_p99_s"], p["ttft_p99_s"], " s", 3)),
            ("(c) peak RSS, all processes [direct: the fake's]", _num(d["peak_rss_mb"], " MB", 1),
             _num(p["peak_rss_mb"], " MB", 1), _ratio(d["peak_rss_mb"], p["peak_rss_mb"])),
            ("(c) CPU used, share of one core [direct: the fake's]", _num(d["cpu_share"], "", 2),
             _num(p["cpu_share"], "", 2), _ratio(d["cpu_share"], p["cpu_share"])),
        ]
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


def table(results: dict) -> str:
    header = ("figure", "fake called directly", "proxy", "difference / ratio")
    body = rows(results)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(4)]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for row in body:
        lines.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


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
    c = results.get("c")
    if c and "direct" not in c:  # the figure failed; rows() says so
        c = None
    if c and c["direct"]["total_p99_s"] is not None and c["direct"]["total_p99_s"] > c["ideal_s"] + 0.2:
        warnings.append(f"(c) the direct p99 is {c['direct']['total_p99_s']:.2f} s, more than 0.2 s over the ideal: "
                        "the fake or the client limits the capacity figure.")
    if c and c["direct"]["failures"]:
        warnings.append("(c) the fake called directly had failures: the capacity figure is not trustworthy.")
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
