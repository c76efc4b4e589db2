"""The one place errors become responses: ``register_error_handlers(app)``.

Every ``ProxyError`` (``errors.py``), every werkzeug ``HTTPException`` (404, 405,
413...) and anything unexpected is rendered as OpenAI's error body
``{"error": {"message", "type", "param", "code"}}`` with its status; under
Anthropic's ``/v1/messages`` as Anthropic's, ``{"type": "error", "error": {"type",
"message"}}``, with Anthropic's status (``anthropic_format.error_status``).
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from . import anthropic_format, tracking
from .errors import ProxyError

ANTHROPIC_PATH = "/v1/messages"  # messages.PATH: its errors are in Anthropic's shape

log = logging.getLogger(__name__)


def error_response(error: ProxyError):
    tracking.note_error(error)
    if request.path == ANTHROPIC_PATH or request.path.startswith(ANTHROPIC_PATH + "/"):
        status = anthropic_format.error_status(error)
        response = jsonify(anthropic_format.error_body(status, error.message))
    else:
        status = error.status
        response = jsonify(error.to_dict())
    response.status_code = status
    if error.headers:
        response.headers.update(error.headers)
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ProxyError)
    def handle_proxy_error(error: ProxyError):
        return error_response(error)

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException):
        status = error.code or 500
        messages = {
            404: "Unknown path. The API lives under /v1 (GET /v1/models, POST /v1/chat/completions, "
                 "POST /v1/messages).",
            405: f"Method not allowed here. Allowed: {', '.join(error.valid_methods or [])}."
            if getattr(error, "valid_methods", None) else "Method not allowed here.",
        }
        message = messages.get(status, error.description or error.name)
        response = error_response(ProxyError(message, status=status, code=error.name.lower().replace(" ", "_")))
        if status == 405 and getattr(error, "valid_methods", None):
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        log.exception("unexpected error")
        return error_response(ProxyError("Internal error in zto; see the server log."))
