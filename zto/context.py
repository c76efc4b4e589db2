"""The resources an app shares between requests, and the accessor views use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

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
