"""zto's benchmark (issue 4): ``make bench`` or ``python -m bench [--quick] [--only a,c]``.

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
    to first token.

Modules: ``__main__`` (options, table, JSON), ``figures`` (the measurements),
``client`` (HTTP/SSE client, request signing), ``procs`` (processes, /proc),
``report`` (the table), ``fake_async`` (the fake upstream).
Results: ``bench/results/latest.json`` (not committed).
"""
