"""The OpenAI-compatible API: ``/v1/models`` and ``/v1/chat/completions``.

Everything HTTP-level is decided before a stream starts: the key is checked, the
request validated, an upstream (``Upstreams``: the web chat, the official API, or
one falling back to the other) called and read up to its first text; only then is a
``Response`` returned, streaming or whole. ``/v1/models`` lists what the configured
upstreams serve and stays open, as in the original project.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, jsonify, request

from . import api_keys, client_io, shutdown
from .chat_request import build_chat_request, decode_body
from .completions import collect, sse_stream
from .context import resources
from .errors import ProxyError
from .openai_format import ChunkEncoder, ThinkingPresenter, completion_body

bp = Blueprint("api", __name__, url_prefix="/v1")

MODELS_CREATED = 1759190400  # 2025-09-30, when GLM-4.6 came out
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
WARNING_HEADER = "X-Zto-Warning"  # what the request was answered without (tools on the web chat, -Search on the API)


class EventStream(Response):
    """A server-sent events response. Its body yields bytes only, so the server iterates
    it as it is: werkzeug would wrap it in one more generator, checking each item's type,
    a cost on every chunk of every stream."""

    def __init__(self, events) -> None:
        super().__init__(events, mimetype="text/event-stream", headers=STREAM_HEADERS)

    def iter_encoded(self):
        return iter(self.response)


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": MODELS_CREATED, "owned_by": "z.ai"}


@bp.get("/models")
def list_models():
    return jsonify({"object": "list", "data": [_model(name) for name in resources().upstreams.models()]})


@bp.get("/models/<path:model_id>")
def get_model(model_id: str):
    for name in resources().upstreams.models():
        if name.lower() == model_id.lower():
            return jsonify(_model(name))
    raise ProxyError(f"The model '{model_id}' does not exist.", status=404, code="model_not_found", param="model")


def _check_api_key() -> None:
    settings = resources().settings
    local = api_keys.is_local_client(request.remote_addr, request.headers, settings.trusted_proxies)
    api_keys.check_api_key(settings, api_keys.bearer_key(request.headers.get("Authorization", "")),
                           local_client=local)


def read_body() -> bytearray:
    """The request body, within MAX_REQUEST_BYTES and BODY_TIMEOUT_S (``client_io``)."""
    return client_io.read_body(resources().settings)


def json_body() -> dict:
    """The request body as a JSON object; the model it names, if any, is recorded at
    once, so that a request refused as invalid still shows it on the dashboard."""
    body = decode_body(read_body())
    if isinstance(body.get("model"), str):
        g.pending.model = body["model"][:200]
    return body


@bp.post("/chat/completions")
def chat_completions():
    _check_api_key()
    res = resources()
    settings = res.settings
    chat = build_chat_request(json_body(), settings=settings)
    g.pending.model, g.pending.stream = chat.model, chat.stream
    answer = shutdown.guard(current_app, res.upstreams.start(chat))
    g.pending.upstream, g.pending.fell_back = answer.upstream, answer.fell_back
    warning = res.upstreams.warning(chat, answer, client=g.pending.client_ip)
    presenter = ThinkingPresenter(settings.thinking_mode)
    if chat.stream:
        body = sse_stream(answer, ChunkEncoder(chat.model), presenter, include_usage=chat.include_usage,
                          keepalive_s=settings.keepalive_s, record=g.pending, metrics=res.metrics)
        response = EventStream(body)
    else:
        reasoning, content, tool_calls = collect(client_io.departure_checked(answer), presenter, res.metrics)
        response = jsonify(completion_body(chat.model, reasoning, content, answer.usage, answer.finish_reason,
                                           tool_calls))
    if warning is not None:
        response.headers[WARNING_HEADER] = warning
    # After the last byte is sent: hand the upstream connection back (or drop it), never
    # before, so waiting for the end of Z.ai's body does not delay the client.
    response.call_on_close(answer.close)
    return response
