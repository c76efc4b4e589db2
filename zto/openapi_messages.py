"""The OpenAPI description of Anthropic's Messages API as zto serves it (``messages.py``):
its schemas and paths, merged into ``/openapi.json`` by ``openapi.py``. The tests
validate real answers, whole and streamed, against these schemas. Pure code.
"""

from __future__ import annotations

from .anthropic_format import ERROR_TYPES

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
STOP_REASONS = ["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"]


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict, required: list[str] | None = None, **extra) -> dict:
    return {"type": "object", "properties": properties, **({"required": required} if required else {}), **extra}


def _event(kind: str, properties: dict | None = None, required: list[str] | None = None) -> dict:
    return _object({"type": {"const": kind}, **(properties or {})}, ["type", *(required or [])])


def schemas() -> dict:
    usage = _object({"input_tokens": INTEGER, "output_tokens": INTEGER, "cache_read_input_tokens": INTEGER},
                    ["input_tokens", "output_tokens"],
                    description="Z.ai's counts: cached prompt tokens apart, in cache_read_input_tokens; "
                                "estimates where the upstream gave none.")
    block = {"oneOf": [
        _object({"type": {"const": "text"}, "text": STRING}, ["type", "text"]),
        _object({"type": {"const": "thinking"}, "thinking": STRING, "signature": STRING},
                ["type", "thinking", "signature"]),
        _object({"type": {"const": "tool_use"}, "id": {"type": "string", "pattern": "^toolu_"}, "name": STRING,
                 "input": {"type": "object"}}, ["type", "id", "name", "input"]),
    ]}
    delta = {"oneOf": [
        _event("text_delta", {"text": STRING}, ["text"]),
        _event("thinking_delta", {"thinking": STRING}, ["thinking"]),
        _event("signature_delta", {"signature": STRING}, ["signature"]),
        _event("input_json_delta", {"partial_json": STRING}, ["partial_json"]),
    ]}
    stop = {"stop_reason": {"enum": STOP_REASONS}, "stop_sequence": {"type": ["string", "null"]}}
    return {
        "AnthropicError": _object(
            {"type": {"const": "error"},
             "error": _object({"type": {"enum": sorted(set(ERROR_TYPES.values()))}, "message": STRING},
                              ["type", "message"])},
            ["type", "error"], description="Every error on /v1/messages, and the `error` event of a stream."),
        "MessageRequest": _object(
            {
                "model": {"type": "string", "minLength": 1,
                          "description": "a Claude name (mapped by ANTHROPIC_MODEL_MAP) or a GLM name"},
                "max_tokens": {"type": "integer", "minimum": 1},
                "messages": {"type": "array", "minItems": 1, "items": _object(
                    {"role": {"enum": ["user", "assistant", "system"]},
                     "content": {"anyOf": [STRING, {"type": "array", "items": {"type": "object"}}]}},
                    ["role", "content"])},
                "system": {"anyOf": [STRING, {"type": "array", "items": {"type": "object"}}]},
                "stream": {"type": "boolean", "default": False},
                "thinking": _object({"type": {"enum": ["enabled", "adaptive", "between_tools", "disabled"]},
                                     "budget_tokens": INTEGER, "display": {"enum": ["summarized", "omitted"]}},
                                    ["type"]),
                "tools": {"type": "array", "items": _object(
                    {"name": STRING, "description": STRING, "input_schema": {"type": "object"}}, ["name"])},
                "tool_choice": _object({"type": {"enum": ["auto", "any", "tool", "none"]}, "name": STRING},
                                       ["type"]),
                "stop_sequences": {"type": "array", "items": STRING},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            },
            ["model", "max_tokens", "messages"],
            description="Anthropic's request; top_k, metadata and cache_control are accepted and ignored."),
        "Message": _object(
            {"id": {"type": "string", "pattern": "^msg_"}, "type": {"const": "message"},
             "role": {"const": "assistant"}, "model": STRING,
             "content": {"type": "array", "minItems": 1, "items": block}, **stop, "usage": usage},
            ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"]),
        "MessageStreamEvent": {"oneOf": [
            _event("message_start", {"message": _object({"id": STRING, "content": {"const": []}},
                                                        ["id", "content"])}, ["message"]),
            _event("content_block_start", {"index": INTEGER, "content_block": block}, ["index", "content_block"]),
            _event("content_block_delta", {"index": INTEGER, "delta": delta}, ["index", "delta"]),
            _event("content_block_stop", {"index": INTEGER}, ["index"]),
            _event("message_delta", {"delta": _object(stop, ["stop_reason"]), "usage": usage}, ["delta", "usage"]),
            _event("message_stop"),
            _event("ping"),
            _ref("AnthropicError"),
        ]},
        "CountTokensRequest": _object(
            {"model": STRING, "messages": {"type": "array", "minItems": 1}, "system": {}, "tools": {}},
            ["model", "messages"]),
        "TokenCount": _object({"input_tokens": INTEGER}, ["input_tokens"]),
    }


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref("AnthropicError")}}}


def paths() -> dict:
    security = [{"anthropicKey": []}, {"apiKey": []}]
    errors = {
        "400": _error("invalid_request_error: the request is malformed"),
        "401": _error("authentication_error: the API key is missing or wrong"),
        "403": _error("permission_error: Z.ai refused (the web chat's captcha, a model above the token's level)"),
        "404": _error("not_found_error: no such path, or a model the upstream does not know"),
        "413": _error("request_too_large: the body is larger than MAX_REQUEST_BYTES"),
        "429": _error("rate_limit_error: Z.ai is rate-limiting (after one retry)"),
        "500": _error("api_error: Z.ai refused or failed"),
        "529": _error("overloaded_error: Z.ai is unreachable or stayed silent too long"),
    }
    return {
        "/v1/messages": {"post": {
            "operationId": "createMessage", "summary": "Anthropic's Messages API (Claude Code), whole or streamed",
            "tags": ["anthropic"], "security": security,
            "description": "`anthropic-version` and `anthropic-beta` headers are accepted and ignored. Tool use "
                           "needs the official API upstream; the web chat answers without the tools.",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref("MessageRequest")}}},
            "responses": {
                "200": {
                    "description": "With `stream: false`, a Message. With `stream: true`, server-sent events "
                                   "(`event: <type>` then `data: <MessageStreamEvent>`): message_start, each "
                                   "block's start, deltas and stop, message_delta, message_stop; `ping` while "
                                   "the upstream is quiet; an `error` event if the answer fails after it began.",
                    "content": {"application/json": {"schema": _ref("Message")},
                                "text/event-stream": {"schema": STRING,
                                                      "x-event-data": _ref("MessageStreamEvent")}},
                },
                **errors,
            },
        }},
        "/v1/messages/count_tokens": {"post": {
            "operationId": "countMessageTokens", "summary": "An estimate of a request's input tokens",
            "description": "An estimate (about four characters a token), not GLM's tokenizer.",
            "tags": ["anthropic"], "security": security,
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref("CountTokensRequest")}}},
            "responses": {"200": {"description": "The estimate",
                                  "content": {"application/json": {"schema": _ref("TokenCount")}}},
                          "400": errors["400"], "401": errors["401"]},
        }},
    }


SECURITY_SCHEME = {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "one of DEFAULT_KEY"}
