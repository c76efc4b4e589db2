"""Anthropic's Messages API, for Claude Code and the ``anthropic`` SDK: ``POST
/v1/messages`` and ``POST /v1/messages/count_tokens``.

A second front end over the same pipeline as the OpenAI API, not a second proxy: the
request becomes an OpenAI body (``anthropic_request``), validated into the same
``ChatRequest``; the same ``Upstreams`` answer it; ``anthropic_format`` writes the
answer's pieces as a Message or its stream events. As in ``api.py``, everything
HTTP-level is decided before a stream starts.

Keys are DEFAULT_KEY's, sent as ``x-api-key`` or ``Authorization: Bearer``;
``anthropic-version`` and ``anthropic-beta`` are accepted and ignored. Errors on these
paths, werkzeug's 404/405/413 included, are rendered in Anthropic's shape by
``error_handlers``, which knows the paths by ``PATH``.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from . import api_keys, client_io, shutdown
from .anthropic_format import MessageBuilder, MessageStream
from .anthropic_request import estimate_tokens, stop_sequences, thinking_omitted, to_openai_body
from .api import WARNING_HEADER, EventStream, json_body
from .chat_request import build_chat_request
from .context import resources
from .errors import Unauthorized
from .metrics import Metrics
from .streaming import stream_answer, whole_pieces
from .upstreams import Answer

PATH = "/v1/messages"
bp = Blueprint("messages", __name__, url_prefix=PATH)


@bp.before_request
def check_api_key() -> None:
    settings = resources().settings
    key = request.headers.get("x-api-key", "").strip() or api_keys.bearer_key(request.headers.get("Authorization", ""))
    if not key:
        raise Unauthorized("Missing API key: send 'x-api-key: <key>' or 'Authorization: Bearer <key>' "
                           "(the key is DEFAULT_KEY).")
    local = api_keys.is_local_client(request.remote_addr, request.headers, settings.trusted_proxies)
    api_keys.check_api_key(settings, key, local_client=local)


@bp.post("")
def create_message():
    res = resources()
    settings = res.settings
    body = json_body()
    openai_body = to_openai_body(body, model_map=settings.anthropic_model_map, default_model=settings.model_name)
    chat = build_chat_request(openai_body, settings=settings)
    model = body["model"]  # answers name the model the client asked for
    g.pending.model, g.pending.stream = model, chat.stream
    answer = shutdown.guard(current_app, res.upstreams.start(chat))
    g.pending.upstream, g.pending.fell_back = answer.upstream, answer.fell_back
    warning = res.upstreams.warning(chat, answer, client=g.pending.client_ip)
    builder = MessageBuilder(model, stop_sequences=stop_sequences(body), input_tokens=estimate_tokens(body),
                             omit_thinking=thinking_omitted(body))
    if chat.stream:
        events = stream_answer(answer, MessageStream(builder), keepalive_s=settings.keepalive_s,
                               record=g.pending, metrics=res.metrics)
        response = EventStream(events)
    else:
        response = jsonify(collect_message(client_io.departure_checked(answer), builder, res.metrics))
    if warning is not None:
        response.headers[WARNING_HEADER] = warning
    # As in api.py: the upstream is released after the last byte is sent, never before.
    response.call_on_close(answer.close)
    return response


@bp.post("/count_tokens")
def count_tokens():
    body = json_body()
    # Validated as a Messages request would be, but count_tokens takes no max_tokens.
    to_openai_body({**body, "max_tokens": 1}, model_map=(), default_model="")
    return jsonify({"input_tokens": estimate_tokens(body)})


def collect_message(answer: Answer, builder: MessageBuilder, metrics: Metrics) -> dict:
    """The whole Message (``streaming.whole_pieces`` reads the answer)."""
    try:
        for piece in whole_pieces(answer, metrics):
            builder.feed(piece)
            if builder.stopped:
                break
        builder.finish(answer.finish_reason, answer.usage)
    except BaseException:  # a malformed tool call too: the response that would close the answer never comes
        answer.close()
        raise
    return builder.message()
