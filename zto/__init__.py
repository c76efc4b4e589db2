"""zto: an OpenAI-compatible API for Z.ai's GLM models.

The app factory lives in ``zto.app``; it is imported lazily so that importing
``zto.settings`` alone (gunicorn.conf.py does, in the master process) loads neither
Flask nor requests: the gevent worker must patch ssl and sockets before they are
imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from .settings import Settings


def create_app(settings: Settings | None = None, *, startup_warnings: bool = True) -> Flask:
    """Build the app; see ``zto.app.create_app``."""
    from .app import create_app as build

    return build(settings, startup_warnings=startup_warnings)
