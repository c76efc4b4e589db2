"""``GET /healthz``: ``{"status": "ok"}`` while the server answers requests.

For Docker's ``HEALTHCHECK`` and load balancers. Always registered (not behind
``DASHBOARD_ENABLED`` or any key), asks nothing of Z.ai, and, like the pages, is not
counted as traffic by the dashboard or ``/metrics``.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok"), 200, {"Cache-Control": "no-store"}
