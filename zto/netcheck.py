"""Reaching an origin by hand, one layer at a time, for ``zto doctor``.

``requests`` reports "cannot connect" whatever the cause; these probes name the
layer that fails: the name lookup (DNS), the TCP connection, the tunnel through
``UPSTREAM_PROXY`` (HTTP CONNECT or SOCKS, by PySocks, the library ``requests`` itself
uses for socks URLs) and the TLS handshake, checked against the same certificate
store ``requests`` uses (certifi). Each probe takes a timeout and raises
``ProbeFailed`` with a short account of what went wrong. Name lookups go through a
``Resolver`` that the caller passes in, so tests never query real DNS.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import certifi
import socks

# (family, socket address) pairs for a host and port, as socket.getaddrinfo finds them.
Resolver = Callable[[str, int], list[tuple[int, tuple]]]

# Proxy schemes whose proxy looks names up itself (the origin's DNS is not ours to check).
REMOTE_DNS_SCHEMES = ("http", "https", "socks5h", "socks4a")
PROXY_TYPES = {"http": socks.HTTP, "socks5": socks.SOCKS5, "socks5h": socks.SOCKS5,
               "socks4": socks.SOCKS4, "socks4a": socks.SOCKS4}


class ProbeFailed(Exception):
    """A probe failed; the message says how, in a few words."""


def system_resolver(host: str, port: int) -> list[tuple[int, tuple]]:
    return [(family, address) for family, _, _, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


@dataclass(frozen=True)
class Endpoint:
    """Where a URL's connection goes: host, port and whether TLS is spoken."""

    host: str
    port: int
    tls: bool

    @classmethod
    def of(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        tls = parts.scheme in ("https",)
        return cls(parts.hostname or "", parts.port or (443 if tls else 80), tls)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Proxy:
    scheme: str
    endpoint: Endpoint
    username: str | None
    password: str | None

    @classmethod
    def of(cls, url: str) -> Proxy:
        parts = urlsplit(url)
        default_port = 1080 if parts.scheme.startswith("socks") else 3128 if parts.scheme == "http" else 443
        return cls(parts.scheme, Endpoint(parts.hostname or "", parts.port or default_port, False),
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)

    @property
    def remote_dns(self) -> bool:
        return self.scheme in REMOTE_DNS_SCHEMES


def resolve(resolver: Resolver, host: str, port: int, timeout: float) -> list[tuple[int, tuple]]:
    """The addresses of ``host``; a lookup that hangs fails after ``timeout``."""
    outcome: dict = {}

    def look_up() -> None:
        try:
            outcome["addresses"] = resolver(host, port)
        except (OSError, UnicodeError) as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=look_up, name="doctor-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ProbeFailed(f"no answer within {timeout:g} s")
    if "error" in outcome:
        error = outcome["error"]
        raise ProbeFailed(f"not found ({getattr(error, 'strerror', None) or error})")
    if not outcome["addresses"]:
        raise ProbeFailed("no addresses")
    return outcome["addresses"]


def _reason(error: OSError) -> str:
    if isinstance(error, (TimeoutError, socket.timeout)):
        return "no answer in time"
    return error.strerror or str(error) or type(error).__name__


def connect(addresses: list[tuple[int, tuple]], timeout: float) -> tuple[socket.socket, str]:
    """A TCP connection to the first address that takes one, and that address."""
    failures = []
    for family, address in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            return sock, address[0]
        except OSError as exc:
            sock.close()
            failures.append(f"{address[0]}: {_reason(exc)}")
    raise ProbeFailed("; ".join(failures))


def tunnel(proxy: Proxy, proxy_address: tuple[int, tuple], target: Endpoint, target_host: str,
           timeout: float) -> socket.socket:
    """A connection to ``target`` through the proxy: ``target_host`` is its name when
    the proxy looks names up itself, else the address we found. Not for https://
    proxies (TLS to the proxy itself), which PySocks does not speak."""
    family, address = proxy_address
    sock = socks.socksocket(family, socket.SOCK_STREAM)
    sock.set_proxy(PROXY_TYPES[proxy.scheme], address[0], address[1], rdns=proxy.remote_dns,
                   username=proxy.username, password=proxy.password)
    sock.settimeout(timeout)
    try:
        sock.connect((target_host, target.port))
    except (socks.ProxyError, OSError) as exc:
        sock.close()
        cause = getattr(exc, "socket_err", None)
        if isinstance(cause, OSError) or (isinstance(exc, OSError) and not isinstance(exc, socks.ProxyError)):
            raise ProbeFailed(_reason(cause if isinstance(cause, OSError) else exc)) from None
        # PySocks says e.g. "Socket error: 400: Bad Request" followed by a paragraph of advice.
        message = str(cause or exc).strip().splitlines()[0] if str(cause or exc).strip() else type(exc).__name__
        raise ProbeFailed(message.removeprefix("Socket error: ")) from None
    return sock


def handshake(sock: socket.socket, host: str, timeout: float) -> str:
    """Speak TLS on ``sock`` as ``host``; the TLS version agreed. Closes ``sock``."""
    context = ssl.create_default_context(cafile=certifi.where())
    sock.settimeout(timeout)
    try:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            return tls.version() or "TLS"
    except ssl.SSLCertVerificationError as exc:
        raise ProbeFailed(f"certificate not accepted ({exc.verify_message})") from None
    except ssl.SSLError as exc:
        raise ProbeFailed(f"handshake failed ({exc.reason or exc})") from None
    except OSError as exc:
        raise ProbeFailed(f"handshake failed ({_reason(exc) or 'connection closed'})") from None
    finally:
        sock.close()
