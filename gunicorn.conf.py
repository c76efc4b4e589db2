"""gunicorn settings for zto; `make run` starts `gunicorn -c gunicorn.conf.py`.

The threaded worker: one open stream holds one thread, so a worker gets THREADS
threads (default 256) and an upstream connection pool as large. One worker process
by default, because the dashboard's statistics live in the worker's memory.
"""

import logging
import sys

from zto.settings import SettingsError, load_settings

try:
    _settings = load_settings()
except SettingsError as exc:
    sys.stderr.write(f"zto: {exc}\n")
    raise SystemExit(2) from None

wsgi_app = "wsgi:app"
bind = f"0.0.0.0:{_settings.port}"
worker_class = "gthread"
workers = _settings.workers
threads = _settings.threads
worker_connections = max(1000, 2 * threads)
# With gthread, `timeout` is the worker heartbeat, not a limit on a request's length.
timeout = 60
graceful_timeout = 30
keepalive = 5
# zto does not use gunicorn's control socket; without it several instances never clash.
control_socket_disable = True
accesslog = "-" if _settings.debug else None
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'


def when_ready(server):
    if workers > 1:
        logging.getLogger("gunicorn.error").warning(
            "WEB_CONCURRENCY=%d: each worker keeps its own statistics; /dashboard shows the worker that "
            "answers it, not all traffic.", workers)
