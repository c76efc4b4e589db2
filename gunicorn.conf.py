"""gunicorn settings for zto; `make run` starts `gunicorn -c gunicorn.conf.py`.

The gevent worker by default: the app code stays synchronous, and one event loop
carries every open stream. Measured with `make bench` on 2 cores, it holds 1000
concurrent streams at p99 5.0 to 5.2 s against a 5.0 s ideal (6.2 s on the machine's
slowest minutes), where gthread with 256 or 1100 threads queued them to 13-20 s
(README, Performance). WORKER_CLASS=gthread remains for those who prefer threads.

One worker process by default. With more (WEB_CONCURRENCY), /metrics uses
prometheus_client's multiprocess mode: the master makes a fresh directory per start
and hands it to the workers as PROMETHEUS_MULTIPROC_DIR (before any of them imports
prometheus_client), `child_exit` marks a dead worker's live gauges gone, and the
directory is removed on exit. The dashboard's statistics are shared through Redis
(REDIS_URL); without it each worker keeps its own and the dashboard says so. A worker
that ends writes its last statistics in `worker_int` or `worker_exit`.
"""

import gc
import logging
import math
import os
import shutil
import sys
import tempfile

from zto.settings import SettingsError, load_settings

try:
    _settings = load_settings()
except SettingsError as exc:
    sys.stderr.write(f"zto: {exc}\n")
    raise SystemExit(2) from None

wsgi_app = "wsgi:app"
bind = f"0.0.0.0:{_settings.port}"
worker_class = _settings.worker_class
workers = _settings.workers
threads = _settings.threads
worker_connections = _settings.worker_connections if worker_class == "gevent" else max(1000, 2 * threads)
# `timeout` is the worker heartbeat, not a limit on a request's length.
timeout = 60
# On SIGTERM/SIGHUP running answers get this long; those still running just before it
# ends get an error event (zto/shutdown.py).
graceful_timeout = math.ceil(_settings.graceful_timeout_s)  # gunicorn takes whole seconds
keepalive = 5
# zto does not use gunicorn's control socket; without it several instances never clash.
control_socket_disable = True
accesslog = "-" if _settings.debug else None
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'

# prometheus_client reads this when first imported: in the workers, after the fork.
_metrics_dir = tempfile.mkdtemp(prefix="zto-prometheus-") if workers > 1 and _settings.metrics_enabled else None
if _metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def when_ready(server):
    from zto.startup import configure_logging, warn_operator

    configure_logging(_settings.debug)
    warn_operator(_settings)  # once per instance: wsgi.py's workers leave it to the master
    if workers > 1 and not _settings.redis_url:
        logging.getLogger("gunicorn.error").warning(
            "WEB_CONCURRENCY=%d without REDIS_URL: each worker keeps its own statistics; /dashboard shows the "
            "worker that answers it and says the view is partial. /metrics sums every worker.", workers)


def post_worker_init(worker):
    from zto.shutdown import watch_worker  # in the worker, after gevent's patching

    watch_worker(worker, _settings.graceful_timeout_s)
    # The app and its imports live as long as the worker: once what start-up left over is
    # collected, they are moved out of the cyclic GC's sight (gc.freeze), so a full
    # collection under 1000 open streams walks the streams' objects alone.
    gc.collect()
    gc.freeze()


def worker_int(worker):  # SIGINT, SIGQUIT: gunicorn ends the worker right after this
    from zto.shutdown import close_worker

    close_worker(worker)


def worker_exit(server, worker):  # any other end: SIGTERM, a reload, max_requests
    from zto.shutdown import close_worker

    close_worker(worker)


def child_exit(server, worker):
    if _metrics_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def on_exit(server):
    if _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
