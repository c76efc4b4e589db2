"""The bookkeeping of ``zto doctor``: the report it prints and the time it may take.

``Report`` prints each step as one line (``✓`` works, ``✗`` fails, ``!`` a warning:
what was checked, what was found, ``→`` the setting to change), with every secret
it was told about redacted, whatever text carries it. ``Budget`` hands out per-step
timeouts that never run past the whole run's deadline, and raises ``OutOfTime`` when
too little is left to try another step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from .api_keys import PUBLISHED_KEY
from .tokens import redact

MARKS = {"ok": "✓", "fail": "✗", "warn": "!"}
ASCII_MARKS = {"ok": "[ok]", "fail": "[FAIL]", "warn": "[warn]"}
MIN_SECRET_CHARS = 6  # shorter "secrets" would mangle ordinary words when redacted
MIN_STEP_S = 0.5
SHOWN_ANSWER_CHARS = 40


class OutOfTime(Exception):
    """The budget is spent: the remaining steps are not tried."""


class Report:
    """Writes each step as it is checked, with every known secret redacted."""

    def __init__(self, write: Callable[[str], None], marks: dict[str, str] = MARKS) -> None:
        self._write = write
        self.marks = marks
        self._secrets: set[str] = set()

    def hide(self, secrets: Iterable[str]) -> None:
        # The published DEFAULT_KEY is printed in the README: no secret to hide.
        self._secrets.update(s for s in secrets if len(s) >= MIN_SECRET_CHARS and s != PUBLISHED_KEY)

    def line(self, text: str) -> None:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, redact(secret))
        self._write(text)

    def step(self, status: str, what: str, found: str, fix: str = "") -> bool:
        """One step's line; True unless it failed."""
        self.line(f"{self.marks[status]} {what}: {found}" + (f" → {fix}" if fix else ""))
        return status != "fail"


class Budget:
    """Per-step timeouts within the whole run's deadline."""

    def __init__(self, total_s: float, step_s: float, completion_s: float) -> None:
        self.total_s = total_s
        self.step_s = step_s
        self.completion_s = completion_s
        self._deadline = time.monotonic() + total_s

    def timeout(self, wanted: float | None = None) -> float:
        """Seconds the next step may take: ``wanted`` (else ``step_s``), or what is left."""
        left = self._deadline - time.monotonic()
        if left < MIN_STEP_S:
            raise OutOfTime
        return min(wanted or self.step_s, left)


def read_until(pieces: Iterator, deadline: float) -> str:
    """The answer's text as it comes, up to ``deadline`` (``time.monotonic()``)."""
    text = []
    for piece in pieces:
        text.append(piece.content)
        if time.monotonic() > deadline:
            break
    return "".join(text)


def shown(answer: str) -> str:
    """The start of an answer, quoted."""
    answer = answer.strip()
    return repr(answer[:SHOWN_ANSWER_CHARS] + ("…" if len(answer) > SHOWN_ANSWER_CHARS else ""))


def span(seconds: float) -> str:
    """A rough duration: ``3 days``, ``1 hour``, ``12 seconds``."""
    seconds = abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{int(seconds)} seconds"


def date(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return f"at {timestamp:g}"
