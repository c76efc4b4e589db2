"""The one error vocabulary of zto: the exception classes, and nothing else.

    ProxyError                      any failure a client is told about
    ├── InvalidRequest        400   the client's request is malformed
    ├── Unauthorized          401   missing or wrong API key
    ├── StatsUnavailable      503   the shared statistics (Redis) cannot be read
    └── UpstreamError         502   Z.ai failed us
        ├── UpstreamUnavailable 502 no connection, or it broke mid-answer
        ├── UpstreamTimeout   504   Z.ai stayed silent too long
        └── UpstreamRejected  *     Z.ai answered with an error (status chosen by kind)

The upstream clients (``http.py``) catch their HTTP library's exceptions and raise these instead.
A pure leaf module (no Flask, no HTTP), like requests' ``exceptions.py``: anything may
import it. ``error_handlers.py`` renders every error as
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

_TYPES_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class ProxyError(Exception):
    status = 500
    code: str | None = "internal_error"
    headers: dict[str, str] | None = None  # extra response headers, e.g. Retry-After
    # For the dashboard: the upstream ("web" or "api") whose failure this is, and whether
    # another upstream refused first (set by the router, ``upstreams.py``).
    upstream: str | None = None
    fell_back: bool = False

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.param = param

    @property
    def type(self) -> str:
        if self.status >= 500:
            return "upstream_error" if isinstance(self, UpstreamError) else "server_error"
        return _TYPES_BY_STATUS.get(self.status, "invalid_request_error")

    def to_dict(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(ProxyError):
    status = 400
    code = "invalid_request"


class Unauthorized(ProxyError):
    status = 401
    code = "invalid_api_key"


class UpstreamError(ProxyError):
    status = 502
    code = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamRejected(UpstreamError):
    """Z.ai answered with an error. ``retryable`` marks those another token may fix;
    ``fallback`` those after which another upstream may answer (``UPSTREAMS=web,api``)."""

    def __init__(self, message: str, *, status: int = 502, code: str = "upstream_error", retryable: bool = False,
                 fallback: bool = False):
        super().__init__(message, status=status, code=code)
        self.retryable = retryable
        self.fallback = fallback


class StatsUnavailable(ProxyError):
    """The shared statistics store (Redis) cannot be read; the service itself is fine."""

    status = 503
    code = "statistics_unavailable"
