"""The Flask app factory of zto.

``create_app`` builds the Flask app: settings, the upstreams of ``UPSTREAMS`` over one
shared session, the stats and metrics with the request accounting that feeds them
(``tracking``), error handling, CORS (for the API only) and the blueprints. There is no global app;
``wsgi.py`` makes the one gunicorn serves.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from . import api, client_io, dashboard, guide, health, home, messages, metrics_page, page_auth, shutdown, tracking
from .context import Resources
from .error_handlers import register_error_handlers
from .http import build_session
from .metrics import Metrics
from .official import OfficialUpstream
from .settings import Settings, load_settings
from .startup import configure_logging, warn_operator
from .stats import Stats, StatsStore
from .upstreams import Upstreams
from .web_chat import WebChat

ROOT = Path(__file__).resolve().parent.parent


# The pages are not traffic: the dashboard must not count its own polling, nor Docker's health
# checks, nor a browser's first look at / and its favicon.
UNTRACKED_BLUEPRINTS = frozenset({dashboard.bp.name, guide.bp.name, metrics_page.bp.name, health.bp.name, home.bp.name})


def build_upstreams(settings: Settings, session, metrics: Metrics) -> Upstreams:
    """The upstreams of ``UPSTREAMS``, in order, behind one router."""
    kinds = {"web": WebChat, "api": OfficialUpstream}
    return Upstreams([kinds[kind](settings, session, metrics) for kind in settings.upstream_order], metrics)


def open_stats(settings: Settings) -> StatsStore:
    """Redis when ``REDIS_URL`` is set (every worker and instance), else this worker's memory."""
    if settings.redis_url:
        from .stats_redis import RedisStats  # the redis client is loaded only when used

        return RedisStats(settings.redis_url)
    return Stats()


def create_app(settings: Settings | None = None, *, startup_warnings: bool = True) -> Flask:
    """The app; ``startup_warnings=False`` when gunicorn's master said them already
    (``wsgi.py``: ``gunicorn.conf.py`` says them once per instance)."""
    settings = settings or load_settings()
    configure_logging(settings.debug)
    app = Flask(__name__, template_folder=str(ROOT / "templates"))
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)
    stats = open_stats(settings)
    metrics = Metrics()
    app.extensions["zto"] = Resources(settings, build_upstreams(settings, build_session(settings), metrics), stats, metrics)
    register_error_handlers(app)
    page_auth.init_app(app)
    shutdown.init_app(app)
    client_io.init_app(app, settings)
    # The API answers browsers from CORS_ORIGINS; the operator pages never answer another origin.
    CORS(app, resources={r"/v1/*": {"origins": list(settings.cors_origins)},
                         "/openapi.json": {"origins": list(settings.cors_origins)}})
    tracking.init_app(app, stats, metrics, untracked=UNTRACKED_BLUEPRINTS)
    app.register_blueprint(api.bp)
    app.register_blueprint(messages.bp)
    app.register_blueprint(guide.bp)
    app.register_blueprint(home.bp)
    app.register_blueprint(health.bp)
    if settings.dashboard_enabled:
        app.register_blueprint(dashboard.bp)
    if settings.metrics_enabled:
        app.register_blueprint(metrics_page.bp)
    if startup_warnings:
        warn_operator(settings)
    return app
