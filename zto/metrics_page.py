"""``GET /metrics``: the app's ``Metrics`` in Prometheus' text format.

Registered only when ``METRICS_ENABLED``; behind ``DASHBOARD_KEY`` when it is set
(``page_auth.protect``: a ``Authorization: Bearer`` header, or the dashboard's login
cookie). Not counted as traffic.
"""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from . import page_auth
from .context import resources

bp = Blueprint("metrics", __name__)
page_auth.protect(bp)


@bp.get("/metrics")
def show_metrics():
    return Response(resources().metrics.render(), content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
