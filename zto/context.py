"""The resources an app shares between requests, and the accessor views use."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from .metrics import Metrics
from .settings import Settings
from .stats import Stats
from .upstream import ZaiClient


@dataclass(frozen=True)
class Resources:
    settings: Settings
    client: ZaiClient
    stats: Stats
    metrics: Metrics


def resources() -> Resources:
    return current_app.extensions["zto"]
