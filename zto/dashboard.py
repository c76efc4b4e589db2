"""The live dashboard: ``/dashboard`` and the JSON it polls.

- ``GET /dashboard``: the page (``templates/dashboard.html``; ``static/dashboard.js``
  fills it in and refreshes it every 5 seconds).
- ``GET /dashboard/snapshot``: what the page shows, ``{"stats": ..., "recent": [...]}``,
  from one snapshot of one store, so its cards, chart and table always agree. With
  several workers and no Redis each worker answers with its own share: the page names
  the worker (``pid``) and says the view is partial (``shared`` false, ``workers`` > 1).
  ``recent`` is newest first by the time each request arrived (the time the page
  shows), with this worker's requests still in progress among them (``in_progress``,
  no status yet); ``last_request_at`` is the newest of those times.
- ``GET /dashboard/stats``: the totals of a snapshot (field names are a contract with
  the page and the tests), plus ``workers``, ``pid`` and ``shared``.
- ``GET /dashboard/requests``: the ``recent`` of a snapshot.
- ``GET|POST /dashboard/login``, ``POST /dashboard/logout``: the form that sets the
  ``DASHBOARD_KEY`` cookie (see ``page_auth``).

Registered only when ``DASHBOARD_ENABLED``; its own requests are not counted in the
statistics it shows. Every route but the login form needs ``DASHBOARD_KEY`` when it
is set (``page_auth.protect``). When the shared store (Redis) cannot be read, the JSON
answers are 503 ``statistics_unavailable`` and the page says so; the API is not affected.
"""

from __future__ import annotations

import os

from flask import Blueprint, jsonify, redirect, render_template, request, url_for

from . import page_auth, tracking
from .context import resources

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

STATS_FIELDS = ("total_requests", "successful_requests", "failed_requests", "average_response_ms",
                "p95_response_ms", "in_flight", "uptime_s", "last_request_at")
NO_STORE = {"Cache-Control": "no-store"}

bp.after_request(page_auth.add_page_headers)
page_auth.protect(bp, public=("dashboard.login", "dashboard.logout"), browser_pages=("dashboard.show_dashboard",))


@bp.get("")
def show_dashboard():
    settings = resources().settings
    return render_template("dashboard.html", workers=settings.workers, pid=os.getpid(),
                           shared=bool(settings.redis_url), protected=bool(settings.dashboard_key)), 200, NO_STORE


def _view(snapshot: dict) -> tuple[dict, list[dict]]:
    """A snapshot as the page shows it: its totals, and its finished requests with this
    worker's in progress, newest first by arrival; "last at" is the newest row's time."""
    finished = [{**record, "in_progress": False} for record in snapshot["recent"]]
    rows = sorted(tracking.in_progress_rows() + finished, key=lambda row: row["time"], reverse=True)
    if rows:
        snapshot = {**snapshot, "last_request_at": max(rows[0]["time"], snapshot["last_request_at"] or 0)}
    return snapshot, rows


def _totals(snapshot: dict, res) -> dict:
    body = {name: snapshot[name] for name in STATS_FIELDS}
    body.update(workers=res.settings.workers, pid=os.getpid(), shared=snapshot["shared"],
                api_keys_set_aside=_keys_set_aside(res))
    return body


@bp.get("/snapshot")
def page_snapshot():
    res = resources()
    snapshot, rows = _view(res.stats.snapshot())
    return jsonify(stats=_totals(snapshot, res), recent=rows), 200, NO_STORE


@bp.get("/stats")
def stats():
    res = resources()
    snapshot, _ = _view(res.stats.snapshot())
    return jsonify(_totals(snapshot, res)), 200, NO_STORE


def _keys_set_aside(res) -> list[dict]:
    """The official API keys set aside now (redacted), if the official API is configured."""
    return [entry for upstream in res.upstreams.upstreams if upstream.name == "api"
            for entry in upstream.keys.set_aside_now()]


@bp.get("/requests")
def recent_requests():
    return jsonify(_view(resources().stats.snapshot())[1]), 200, NO_STORE


@bp.route("/login", methods=["GET", "POST"])
def login():
    settings = resources().settings
    target = page_auth.safe_next(request.values.get("next"))
    if not settings.dashboard_key:
        return redirect(target)
    try:
        page_auth.refuse_if_blocked()
    except page_auth.TooManyWrongKeys as refusal:
        return (render_template("login.html", next=target, failed=False, blocked=refusal.message), 429,
                {**NO_STORE, **refusal.headers})
    if request.method == "GET":
        return render_template("login.html", next=target, failed=False), 200, NO_STORE
    if not page_auth.key_matches(settings, request.form.get("key", "")):
        page_auth.count_wrong_key()
        return render_template("login.html", next=target, failed=True), 401, NO_STORE
    response = redirect(target, code=303)
    response.set_cookie(page_auth.COOKIE, page_auth.cookie_value(settings.dashboard_key),
                        max_age=page_auth.COOKIE_MAX_AGE_S, path="/", httponly=True, samesite="Strict",
                        secure=request.is_secure)
    return response


@bp.post("/logout")
def logout():
    response = redirect(url_for("dashboard.login"), code=303)
    response.delete_cookie(page_auth.COOKIE, path="/", httponly=True, samesite="Strict")
    return response
