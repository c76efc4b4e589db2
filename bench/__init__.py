"""zto's benchmark (issues 4 and 10): ``make bench`` or ``python -m bench [--quick] [--only a,c]``.

It starts the fake Z.ai upstream in its own process (``fake_async.py``: the test
fake's protocol and checks on one asyncio loop, so the fake is not the bottleneck)
and zto under gunicorn exactly as deployed (``gunicorn -c gunicorn.conf.py`` from a
scratch directory, ``UPSTREAM_URL`` pointing at the fake, ``DEBUG_MODE=false``, a
static ``ZAI_TOKEN`` the fake accepts; anonymous for figure e), drives them from this
process with an asyncio client on raw sockets (``client.py``), and prints each figure
for the proxy and for the fake called directly, in the same run:

(a) time to first content token, sequential keep-alive requests, p50/p99;
(b) the proxy's CPU time (master + workers, from /proc) per forwarded chunk at 32
    concurrent fast streams;
(c) 1000 concurrent connections, each running two streams of 50 chunks 100 ms apart
    (5.0 s ideal), started evenly over 5 s: failures, total time p50/p99, time to first
    token p99, peak RSS of the proxy's processes;
(d) upstream TCP connections the fake saw opened per 100 requests, 32 concurrent;
(e) anonymous mode (guest tokens) with a 20 ms round trip on every fake answer: time
    to first token;
(c2) figure c with ``WEB_CONCURRENCY=2``;
(a_api), (b_api), (c_api) figures a to c on the official-API path: the proxy with
    ``ZAI_API_KEY`` and ``UPSTREAMS=api`` against the fake's official endpoint, and that
    endpoint called directly.

Before them ``make bench`` prints issue 10's table: each target (added time to first
token p50 <= 0.6 ms, CPU per chunk <= 12 µs, (c) p99 <= 5.10 s, peak RSS <= 130 MB) with
the figure measured on each path, and the Go original's published figures on the same
kind of machine (0.26 ms, 8.3 µs, 5.05 s, 122 MB) as a reference column.

Modules: ``__main__`` (options, table, JSON), ``figures`` (the measurements),
``client`` (HTTP/SSE client, request signing), ``procs`` (processes, /proc),
``report`` (the table), ``fake_async`` (the fake upstream).
Results: ``bench/results/latest.json`` (not committed).
"""
