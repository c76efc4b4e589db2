"""The Flask app factory of zto.

``create_app`` builds the Flask app: settings, the shared upstream session and
client, the stats, error handling, CORS and the blueprints. There is no global app;
``wsgi.py`` makes the one gunicorn serves.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, g, request
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from . import api, dashboard, guide, health, page_auth
from .context import Resources
from .errors import register_error_handlers
from .metrics import Metrics
from .metrics import bp as metrics_bp
from .settings import Settings, load_settings
from .stats import PendingRequest, Stats
from .upstream import ZaiClient, build_session

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)


def configure_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("zto").setLevel(logging.DEBUG if debug else logging.INFO)
    # urllib3 logs request URLs, and Z.ai's query string carries the token.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


# The pages are not traffic: the dashboard must not count its own polling, nor Docker's health checks.
UNTRACKED_BLUEPRINTS = frozenset({dashboard.bp.name, guide.bp.name, metrics_bp.name, health.bp.name})


def _track_requests(app: Flask, stats: Stats, metrics: Metrics) -> None:
    def finish(pending: PendingRequest, status: int, route: str):
        record = stats.finish(pending, status)
        metrics.observe_request(record.method, route, status, record.duration_ms / 1000)
        return record

    @app.before_request
    def begin():
        if request.blueprint in UNTRACKED_BLUEPRINTS or request.endpoint == "static":
            return
        g.pending = PendingRequest(
            method=request.method, path=request.path, client_ip=request.remote_addr or "",
            user_agent=request.user_agent.string[:300])
        stats.begin()

    @app.after_request
    def end(response):
        pending = g.pop("pending", None)
        if pending is not None:
            route = request.url_rule.rule if request.url_rule else "(unmatched)"
            if response.is_streamed:
                response.call_on_close(lambda: finish(pending, response.status_code, route))
            else:
                record = finish(pending, response.status_code, route)
                log.debug("%s %s %s %.1fms", record.method, record.path, record.status, record.duration_ms)
        return response


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    configure_logging(settings.debug)
    app = Flask(__name__, template_folder=str(ROOT / "templates"))
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)
    session = build_session(settings)
    stats = Stats()
    metrics = Metrics()
    app.extensions["zto"] = Resources(settings, session, ZaiClient(settings, session), stats, metrics)
    register_error_handlers(app)
    CORS(app)
    _track_requests(app, stats, metrics)
    app.register_blueprint(api.bp)
    app.register_blueprint(guide.bp)
    app.register_blueprint(health.bp)
    if settings.dashboard_enabled:
        app.register_blueprint(dashboard.bp)
    if settings.metrics_enabled:
        app.register_blueprint(metrics_bp)
    page_auth.warn_if_public(settings)
    return app
