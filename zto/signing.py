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

WINDOW_MS = 5 * 60 * 1000


def sha256_signature(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def hmac_signature(secret: str, *, timestamp_ms: int, request_id: str, user_id: str, prompt: str) -> str:
    signed = (
        f"requestId,{request_id},timestamp,{timestamp_ms},user_id,{user_id}"
        f"|{base64.b64encode(prompt.encode()).decode()}|{timestamp_ms}"
    )
    window = str(timestamp_ms // WINDOW_MS)
    key = hmac.new(secret.encode(), window.encode(), hashlib.sha256).hexdigest()
    return hmac.new(key.encode(), signed.encode(), hashlib.sha256).hexdigest()
