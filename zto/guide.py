"""The API guide: ``GET /docs`` (``templates/docs.html``) and ``GET /openapi.json``.

Both are filled in per request with this server's base URL (``PUBLIC_URL``, or as the
client reached it, so behind nginx with ``TRUSTED_PROXIES`` it is the public one) and
its model names.
The sample answers on the page are made by ``openai_format``'s own encoders, and the
error samples by the error classes' own ``to_dict``, so they look exactly like what
the API sends. Public, like ``/v1/models``; no secret is shown
(examples use the placeholder key ``sk-your-key``).
"""

from __future__ import annotations

import json

from flask import Blueprint, jsonify, render_template, request

from . import api_keys, openapi, page_auth
from .context import resources
from .errors import Unauthorized, UpstreamUnavailable
from .openai_format import DONE, ChunkEncoder, completion_body, error_event
from .settings import THINKING_MODES

bp = Blueprint("guide", __name__)

PLACEHOLDER_KEY = api_keys.PUBLISHED_KEY
SAMPLE_USAGE = {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}

bp.after_request(page_auth.add_page_headers)


def server_url() -> str:
    """``PUBLIC_URL`` when set; else the URL the client used, if its ``Host`` is a plain
    host name or address (werkzeug empties any other); else this machine's."""
    settings = resources().settings
    if settings.public_url:
        return settings.public_url.rstrip("/")
    if not request.host:
        return f"http://localhost:{settings.port}"
    return request.host_url.rstrip("/")


def _samples(model: str) -> dict[str, str]:
    whole = completion_body(model, "", "Hello! I am GLM, a large language model. How can I help you today?",
                            SAMPLE_USAGE)
    encoder = ChunkEncoder(model, completion_id=whole["id"], created=whole["created"])
    stream = b"".join([encoder.role(), encoder.delta("", "Hello"), encoder.delta("", "! How can I help?"),
                       encoder.finish("stop"), encoder.usage(SAMPLE_USAGE), DONE])
    thinking = completion_body(model, "The user greets me; I should greet back.", "Hello!", SAMPLE_USAGE)
    error = Unauthorized(api_keys.WRONG_KEY).to_dict()
    return {
        "whole": json.dumps(whole, indent=2, ensure_ascii=False),
        "stream": stream.decode().strip(),
        "thinking_message": json.dumps(thinking["choices"][0]["message"], indent=2, ensure_ascii=False),
        "error": json.dumps(error, indent=2),
        "stream_error": (encoder.delta("", "Hello") + error_event(UpstreamUnavailable(
            "The connection to Z.ai broke (ChunkedEncodingError).").to_dict()) + DONE).decode().strip(),
    }


@bp.get("/docs")
def show_guide():
    res = resources()
    settings = res.settings
    base = server_url()
    return render_template(
        "docs.html", base_url=base, api_url=base + "/v1", models=res.upstreams.models(), model=settings.model_name,
        key=PLACEHOLDER_KEY, thinking_mode=settings.thinking_mode, thinking_modes=THINKING_MODES,
        default_stream=settings.default_stream, dashboard=settings.dashboard_enabled,
        metrics=settings.metrics_enabled, upstreams=settings.upstream_order, samples=_samples(settings.model_name),
        claude_map=settings.anthropic_model_map)


@bp.get("/openapi.json")
def openapi_document():
    res = resources()
    return jsonify(openapi.document(res.settings, server_url(), res.upstreams.models()))
