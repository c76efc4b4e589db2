"""Prometheus metrics for operators: the metric definitions and their hooks.

``GET /metrics`` serves them (``metrics_page.py``); this module has no Flask in it.

``Metrics`` owns a ``prometheus_client`` registry of its own (not the global default
one), so every app, and every test, counts from zero. The hooks are called where the
events happen: ``observe_request`` when a request ends (``create_app``'s tracking),
``first_token`` / ``stream_opened`` / ``stream_closed`` from the SSE generator,
``upstream_error`` wherever a Z.ai failure surfaces or causes a retry,
``upstream_answered`` when the router has an answer (by upstream, and whether it fell
back), and ``upstream_opened`` around each open upstream answer ("tokens in use", by token kind;
never the token itself). Each hook is a dictionary lookup and a locked add.
``api_keys_set_aside`` is told the official API keys set aside (by redacted name) each
time they change; a scrape shows the seconds each has left.

With one worker the numbers are that process's, with the usual ``process_*`` and
``python_*`` metrics. With several (gunicorn.conf.py sets ``PROMETHEUS_MULTIPROC_DIR``
for them), prometheus_client's documented multiprocess mode is used: each worker writes
its values to files in that directory and a scrape, whichever worker answers it, sums
them all (``MultiProcessCollector``); gauges count the live workers' values
(``livesum``); the per-process metrics are left out, as that mode does not support them.
Keys are set aside per worker: each worker writes, per key and reason, the time its key
comes back (0 once it is back: that mode cannot remove a series) to a ``livemax`` gauge,
and a scrape turns the latest of the live workers' times into seconds left, so
``zto_api_key_set_aside_seconds`` means the same with one worker or several. That
gauge itself is not served.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# The *_created samples double the output and no dashboard uses them.
disable_created_metrics()

# zto's error codes (UpstreamError.code) grouped into the kinds operators alert on.
UPSTREAM_ERROR_KINDS = {
    "upstream_version_rejected": "version_426",
    "upstream_signature_rejected": "signature",
    "upstream_unauthorized": "auth",
    "upstream_rate_limited": "rate_limit",
    "upstream_timeout": "timeout",
    "upstream_unavailable": "connection",
    "upstream_forbidden": "forbidden",
    "upstream_blocked": "firewall",
    "insufficient_quota": "balance",
}
OTHER_KIND = "other"
TOKEN_KINDS = ("guest", "static", "api_key")
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60)


# prometheus_client's own switch, read by the library itself when first imported; only
# gunicorn.conf.py sets it (several workers), so it is not one of zto's settings.
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

SET_ASIDE = "zto_api_key_set_aside_seconds"
SET_ASIDE_HELP = "Official API keys set aside after an authentication or balance refusal (redacted): seconds left."
# Several workers only: each one's keys set aside, as the time.time() each comes back.
SET_ASIDE_UNTIL = "zto_api_key_set_aside_until"


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self._keys_until: dict[tuple[str, str], float] = {}  # this process's (key, reason) -> time back
        self._keys_until_gauge: Gauge | None = None
        if MULTIPROCESS_DIR:
            self._scrape = CollectorRegistry()
            self._scrape.register(_EveryWorker(MULTIPROCESS_DIR))
            self._keys_until_gauge = Gauge(
                SET_ASIDE_UNTIL, "Official API keys this worker set aside: when each comes back (0: it is back).",
                ["key", "reason"], registry=None, multiprocess_mode="livemax")
        else:
            self._scrape = registry
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            registry.register(_SetAsideKeys(lambda: self._keys_until))
        self.requests = Counter(
            "zto_http_requests", "HTTP requests answered, by method, route and status.",
            ["method", "path", "status"], registry=registry)
        self.latency = Histogram(
            "zto_http_request_duration_seconds", "Time from a request's arrival to its last byte (streams included).",
            ["path"], buckets=LATENCY_BUCKETS, registry=registry)
        self.ttft = Histogram(
            "zto_time_to_first_token_seconds", "Time from a streamed request's arrival to its first text sent.",
            buckets=TTFT_BUCKETS, registry=registry)
        self.streams = Gauge(
            "zto_streams_in_flight", "Streamed answers being sent to clients.", registry=registry,
            multiprocess_mode="livesum")
        self.upstream_errors = Counter(
            "zto_upstream_errors", "Z.ai failures, by kind; retried ones included.", ["kind"], registry=registry)
        self.tokens_in_use = Gauge(
            "zto_upstream_tokens_in_use", "Z.ai tokens in use: upstream answers being read, by token kind.",
            ["token_kind"], registry=registry, multiprocess_mode="livesum")
        self.answers = Counter(
            "zto_upstream_answers", "Answers started, by the upstream that gave them and whether another refused first.",
            ["upstream", "fell_back"], registry=registry)
        # Each request meets a handful of labelled series: they are looked up in these dicts
        # (keys of a few known values), not through labels(), which validates and locks.
        self._tokens_gauges = {kind: self.tokens_in_use.labels(kind) for kind in TOKEN_KINDS}
        self._request_series: dict[tuple, tuple] = {}
        self._answer_counters: dict[tuple, object] = {}
        # Every kind shows from the start (at 0), so an alert on a rate has a series to watch.
        self._error_counters = {kind: self.upstream_errors.labels(kind) for kind in (*UPSTREAM_ERROR_KINDS.values(), OTHER_KIND)}

    # -- hooks -----------------------------------------------------------------

    def observe_request(self, method: str, path: str, status: int, seconds: float) -> None:
        series = self._request_series.get((method, path, status))
        if series is None:
            series = self._request_series[method, path, status] = (
                self.requests.labels(method, path, str(status)), self.latency.labels(path))
        series[0].inc()
        series[1].observe(seconds)

    def first_token(self, seconds: float) -> None:
        self.ttft.observe(seconds)

    def stream_opened(self) -> None:
        self.streams.inc()

    def stream_closed(self) -> None:
        self.streams.dec()

    def upstream_error(self, code: str | None) -> None:
        self._error_counters[UPSTREAM_ERROR_KINDS.get(code or "", OTHER_KIND)].inc()

    def upstream_opened(self, token_kind: str) -> Callable[[], None]:
        """Count an upstream answer as open; the returned function, called once, closes it."""
        gauge = self._tokens_gauges.get(token_kind) or self.tokens_in_use.labels(token_kind)
        gauge.inc()
        return gauge.dec

    def upstream_answered(self, upstream: str, fell_back: bool) -> None:
        counter = self._answer_counters.get((upstream, fell_back))
        if counter is None:
            counter = self._answer_counters[upstream, fell_back] = self.answers.labels(
                upstream, "true" if fell_back else "false")
        counter.inc()

    def api_keys_set_aside(self, seconds_left: dict[tuple[str, str], float]) -> None:
        """The official API keys set aside now, all of them, as ``(redacted key, reason)``
        -> seconds left; called by ``ApiKeys`` at each change, in order."""
        now = time.time()
        until = {labels: now + left for labels, left in seconds_left.items()}
        gauge = self._keys_until_gauge
        if gauge is not None:
            for labels in self._keys_until.keys() - until.keys():
                gauge.labels(*labels).set(0)
            for labels, back_at in until.items():
                gauge.labels(*labels).set(back_at)
        self._keys_until = until

    def render(self) -> bytes:
        return generate_latest(self._scrape)


def set_aside_seconds(until: dict[tuple[str, str], float], now: float) -> GaugeMetricFamily:
    """``zto_api_key_set_aside_seconds`` from ``(key, reason)`` -> the time each key comes
    back: the seconds left, for the keys not back yet."""
    family = GaugeMetricFamily(SET_ASIDE, SET_ASIDE_HELP, labels=["key", "reason"])
    for (key, reason), back_at in sorted(until.items()):
        if back_at > now:
            family.add_metric([key, reason], round(back_at - now))
    return family


class _SetAsideKeys(Collector):
    """The keys set aside, with one worker: this process's."""

    def __init__(self, until: Callable[[], dict[tuple[str, str], float]]) -> None:
        self._until = until

    def collect(self):
        yield set_aside_seconds(self._until(), time.time())


class _EveryWorker(Collector):
    """Every live worker's metrics, merged from the multiprocess directory, the keys set
    aside turned from the latest time each comes back into seconds left."""

    def __init__(self, path: str) -> None:
        self._files = multiprocess.MultiProcessCollector(None, path=path)  # None: not registered

    def collect(self):
        until: dict[tuple[str, str], float] = {}
        for metric in self._files.collect():
            if metric.name == SET_ASIDE_UNTIL:
                until = {(sample.labels["key"], sample.labels["reason"]): sample.value for sample in metric.samples}
            else:
                yield metric
        yield set_aside_seconds(until, time.time())

