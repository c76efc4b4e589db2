"""``GET /`` and ``GET /favicon.ico``: what a browser asks for first.

``/`` sends a person to the API guide (``/docs``, which links the dashboard); the API
itself lives under ``/v1``, where unknown paths keep their 404 JSON. ``/favicon.ico``
is the pages' icon, for the browsers that ask for it by that name. Neither is traffic:
the dashboard does not count them.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, send_from_directory, url_for

bp = Blueprint("home", __name__)

FAVICON_MAX_AGE_S = 24 * 3600


@bp.get("/")
def home():
    return redirect(url_for("guide.show_guide"))


@bp.get("/favicon.ico")
def favicon():
    return send_from_directory(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml",
                               max_age=FAVICON_MAX_AGE_S)
