"""The resources an app shares between requests, and the accessor views use."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from flask import current_app

from .settings import Settings
from .stats import Stats
from .upstream import ZaiClient


@dataclass(frozen=True)
class Resources:
    settings: Settings
    session: requests.Session
    client: ZaiClient
    stats: Stats


def resources() -> Resources:
    return current_app.extensions["zto"]
