"""Signatures Z.ai's backend checks on completion requests (``X-Signature``).

Two schemes have been live: ``sha256``, the hex SHA-256 of the exact body bytes
(September 2025), and ``hmac`` (since October 2025), an HMAC over the request id,
timestamp, user id and the last user prompt, keyed by a secret that rotates with a
five-minute window. Pure functions; the scheme and secret are settings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

WINDOW_MS = 5 * 60 * 1000


def sha256_signature(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def hmac_signature(secret: str, *, timestamp_ms: int, request_id: str, user_id: str, prompt: str,
                   pause: Callable[[], None] | None = None) -> str:
    """HMAC of ``requestId,<id>,timestamp,<ts>,user_id,<uid>|<base64 of the prompt>|<ts>``.
    Fed piece by piece, so that a prompt of megabytes is never copied whole again;
    ``pause`` (if given) is called after every ``PAUSE_EVERY`` pieces, for the caller to
    let other work run."""
    window = str(timestamp_ms // WINDOW_MS)
    key = hmac.new(secret.encode(), window.encode(), hashlib.sha256).hexdigest()
    signer = hmac.new(key.encode(), f"requestId,{request_id},timestamp,{timestamp_ms},user_id,{user_id}|".encode(),
                      hashlib.sha256)
    for i, piece in enumerate(_base64_pieces(prompt), 1):
        signer.update(piece)
        if pause is not None and i % PAUSE_EVERY == 0:
            pause()
    signer.update(f"|{timestamp_ms}".encode())
    return signer.hexdigest()


PIECE_CHARS = 1 << 16
PAUSE_EVERY = 16  # pieces: about 1 MB of prompt


def _base64_pieces(text: str):
    """base64(text.encode()) in pieces: each encodes a multiple of 3 bytes, the rest carried."""
    carry = b""
    for start in range(0, len(text), PIECE_CHARS):
        data = carry + text[start:start + PIECE_CHARS].encode()
        cut = len(data) - len(data) % 3
        carry = data[cut:]
        yield base64.b64encode(data[:cut])
    yield base64.b64encode(carry)
