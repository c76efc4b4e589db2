"""What zto says once as it starts: its log format, and what its operator should fix.

Under gunicorn the master says it (``gunicorn.conf.py``'s ``when_ready``), once per
instance rather than once per worker; ``create_app`` says it otherwise. The master
imports this module, so it loads neither Flask nor requests: the gevent worker patches
ssl and sockets before those are imported.
"""

from __future__ import annotations

import logging

from .api_keys import PUBLISHED_KEY
from .settings import Settings

log = logging.getLogger(__name__)


def configure_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("zto").setLevel(logging.DEBUG if debug else logging.INFO)
    # urllib3 logs request URLs, and Z.ai's query string carries the token.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def warn_operator(settings: Settings) -> None:
    """The settings that leave this server open: operator pages without a key, and the
    published client key (served to this machine only)."""
    pages = [p for p, on in (("/dashboard", settings.dashboard_enabled), ("/metrics", settings.metrics_enabled)) if on]
    if pages and not settings.dashboard_key:
        log.warning("DASHBOARD_KEY is not set: %s %s public; anyone who can reach this server sees its traffic.",
                    " and ".join(pages), "is" if len(pages) == 1 else "are")
    if PUBLISHED_KEY in settings.api_keys:
        log.warning("DEFAULT_KEY is the published %s: only clients on this machine are served; set DEFAULT_KEY "
                    "to a key of your own to serve others.", PUBLISHED_KEY)
