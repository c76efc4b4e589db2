"""The API keys clients send (``DEFAULT_KEY``), and the published key's rule.

Keys are compared in constant time and never logged. The default key, ``sk-your-key``,
is printed in this project's README and examples, so anyone knows it: it is accepted
only from clients on this machine (a loopback address, not forwarded by a proxy zto
does not trust). Everyone else gets a 401 that says to set ``DEFAULT_KEY``. Start-up
says so in one line.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress

from .errors import Unauthorized
from .settings import Settings

MISSING_KEY = "Missing API key: send 'Authorization: Bearer <key>' (the key is DEFAULT_KEY)."
WRONG_KEY = "Incorrect API key provided (the server's keys are its DEFAULT_KEY)."
PUBLISHED_KEY = "sk-your-key"
# Headers a reverse proxy adds: with TRUSTED_PROXIES=0 their presence means the loopback
# peer is a proxy speaking for someone else.
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


@functools.lru_cache(maxsize=4096)  # asked on every request, of a few distinct addresses
def is_loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def is_local_client(remote_addr: str | None, headers, trusted_proxies: int) -> bool:
    """Whether the client runs on this machine. ``remote_addr`` is the client as the app
    sees it (behind ``TRUSTED_PROXIES`` proxies, the address they forwarded)."""
    if not is_loopback(remote_addr):
        return False
    return trusted_proxies > 0 or not any(name in headers for name in FORWARDING_HEADERS)


def bearer_key(authorization: str) -> str:
    """The key of an ``Authorization: Bearer <key>`` header, or ``""``."""
    scheme, _, key = authorization.partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def check_api_key(settings: Settings, given: str, *, local_client: bool) -> None:
    """Raise ``Unauthorized`` unless ``given`` is one of ``DEFAULT_KEY``'s keys, and, for
    the published key, the client is local."""
    if not given:
        raise Unauthorized(MISSING_KEY)
    encoded = given.encode()
    matches = [hmac.compare_digest(encoded, key.encode()) for key in settings.api_keys]
    if not any(matches):
        raise Unauthorized(WRONG_KEY)
    if not local_client and hmac.compare_digest(encoded, PUBLISHED_KEY.encode()):
        raise Unauthorized(
            f"This server still uses the published key {PUBLISHED_KEY}, which it accepts only from its own "
            "machine. Its operator must set DEFAULT_KEY to a key of their own.", code="published_key_refused")


