"""The resources an app shares between requests, the accessor views use, and their closing
when the worker ends (``close_app``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from .metrics import Metrics
from .settings import Settings
from .stats import StatsStore

if TYPE_CHECKING:
    from .upstreams import Upstreams


@dataclass(frozen=True)
class Resources:
    settings: Settings
    upstreams: Upstreams
    stats: StatsStore
    metrics: Metrics


def resources() -> Resources:
    return current_app.extensions["zto"]


def close_app(app: Flask) -> None:
    """The worker ends: close the stats store, whose last write (to Redis) would otherwise
    be lost. The upstreams' connections need nothing: they end with the process."""
    app.extensions["zto"].stats.close()
