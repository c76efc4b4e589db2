"""The resources an app shares between requests, and the accessor views use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import requests
from flask import current_app

from .settings import Settings
from .stats import Stats
from .upstream import ZaiClient

if TYPE_CHECKING:
    from .metrics import Metrics


@dataclass(frozen=True)
class Resources:
    settings: Settings
    session: requests.Session
    client: ZaiClient
    stats: Stats
    metrics: Metrics


def resources() -> Resources:
    return current_app.extensions["zto"]
