"""Incremental decoding of Z.ai's server-sent events: bytes in, JSON events out.

Pure code, no I/O. ``SSEDecoder.feed`` takes body bytes as they arrive, split
anywhere (inside a line, inside a multibyte character), and returns the ``data``
payloads completed so far; ``close`` returns what an unterminated last line held.
Lines end at CR, LF or CRLF and nowhere else: ``str.splitlines`` would also split
on U+2028 and friends, which occur in model output.

Z.ai sends one JSON object per ``data:`` line, so each data line is one payload
(a missing blank line cannot glue two events together). Comment lines and the
other SSE fields are ignored. ``parse_event`` turns a payload into a dict, or
None (logged) for anything that is not a JSON object.
"""

from __future__ import annotations

import codecs
import logging

import orjson

log = logging.getLogger(__name__)


class SSEDecoder:
    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending: list[str] = []  # the pieces of an unterminated line, joined once it ends
        self._after_cr = False  # the last text ended in CR: a leading LF belongs to it

    def feed(self, data: bytes) -> list[str]:
        text = self._text.decode(data)
        if not text:
            return []
        if self._after_cr and text[0] == "\n":
            text = text[1:]
        self._after_cr = text.endswith("\r")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:
            # A long line arriving in small reads is kept in pieces: adding each read to the
            # whole would copy the line over and over (quadratic in its length).
            self._pending.append(text)
            return []
        if self._pending:
            self._pending.append(text)
            text = "".join(self._pending)
            self._pending.clear()
        lines = text.split("\n")
        if lines[-1]:
            self._pending.append(lines[-1])
        lines.pop()
        return [payload for payload in map(_data_of, lines) if payload is not None]

    def close(self) -> list[str]:
        """End of body: decode what remains, including a last line with no line end."""
        rest = "".join(self._pending) + self._text.decode(b"", final=True)
        self._pending.clear()
        payload = _data_of(rest) if rest else None
        return [payload] if payload is not None else []


def _data_of(line: str) -> str | None:
    if not line.startswith("data:"):
        return None  # blank line, comment (":..."), or another field
    value = line[5:]
    return value[1:] if value.startswith(" ") else value


def parse_event(payload: str) -> dict | None:
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        log.warning("skipped an upstream event that is not JSON: %.200r", payload)
        return None
    if not isinstance(event, dict):
        log.warning("skipped an upstream event that is not an object: %.200r", payload)
        return None
    return event
