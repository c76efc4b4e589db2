"""The OpenAI-compatible API: ``/v1/models`` and ``/v1/chat/completions``.

Everything HTTP-level is decided before a stream starts: the key is checked, the
request validated, Z.ai called and read up to its first text; only then is a
``Response`` returned, streaming or whole. ``/v1/models`` stays open, as in the
original project.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, g, jsonify, request

from .chat_request import parse_chat_request
from .completions import collect, sse_stream, start_answer
from .context import resources
from .errors import ProxyError, Unauthorized
from .openai_format import ChunkEncoder, completion_body

bp = Blueprint("api", __name__, url_prefix="/v1")

MODELS_CREATED = 1759190400  # 2025-09-30, when GLM-4.6 came out
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": MODELS_CREATED, "owned_by": "z.ai"}


@bp.get("/models")
def list_models():
    return jsonify({"object": "list", "data": [_model(name) for name in resources().settings.models]})


@bp.get("/models/<path:model_id>")
def get_model(model_id: str):
    for name in resources().settings.models:
        if name.lower() == model_id.lower():
            return jsonify(_model(name))
    raise ProxyError(f"The model '{model_id}' does not exist.", status=404, code="model_not_found", param="model")


def _check_api_key() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>' (the key is DEFAULT_KEY).")
    given = key.strip().encode()
    matches = [hmac.compare_digest(given, k.encode()) for k in resources().settings.api_keys]
    if not any(matches):
        raise Unauthorized("Incorrect API key provided.")


def _body() -> bytes:
    limit = resources().settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ProxyError(f"The request body is larger than MAX_REQUEST_BYTES ({limit} bytes).",
                         status=413, code="request_too_large")
    return request.get_data(cache=False)


@bp.post("/chat/completions")
def chat_completions():
    _check_api_key()
    res = resources()
    settings = res.settings
    chat = parse_chat_request(
        _body(), models=settings.models, default_model=settings.model_name,
        default_stream=settings.default_stream, default_thinking=settings.enable_thinking)
    g.pending.model, g.pending.stream = chat.model, chat.stream
    answer = start_answer(res.client, chat, settings.thinking_mode)
    if not chat.stream:
        reasoning, content = collect(answer)
        return jsonify(completion_body(chat.model, reasoning, content, answer.usage))
    body = sse_stream(answer, ChunkEncoder(chat.model), include_usage=chat.include_usage,
                      keepalive_s=settings.keepalive_s, record=g.pending)
    response = Response(body, mimetype="text/event-stream", headers=STREAM_HEADERS)
    response.call_on_close(answer.close)  # in case the body is never iterated
    return response
