"""The OpenAPI 3.1 description of zto's HTTP API, served at ``/openapi.json``.

Built per request from the settings, so it names this server's URL and models. The
schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect); ``tests/test_guide.py``
validates real answers (models, completions, stream chunks, errors, dashboard JSON,
/healthz) against them, which keeps this document honest. Pure code.
"""

from __future__ import annotations

from . import openapi_messages
from .settings import THINKING_MODES, Settings

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NULLABLE_STRING = {"type": ["string", "null"]}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict, required: list[str] | None = None, **extra) -> dict:
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema.update(extra)
    return schema


def schemas(settings: Settings, models: list[str]) -> dict:
    """The components' schemas; ``models``: what the configured upstreams serve."""
    usage = _object(
        {"prompt_tokens": INTEGER, "completion_tokens": INTEGER, "total_tokens": INTEGER},
        ["prompt_tokens", "completion_tokens", "total_tokens"],
        description="Token counts as Z.ai reports them; when the web chat reports none, an estimate marked "
                    "`estimated: true`. Extra fields pass through.")
    content_part = _object(
        {"type": {"enum": ["text", "image_url"]}, "text": STRING,
         "image_url": _object({"url": STRING, "detail": STRING}, ["url"])},
        ["type"])
    message = _object(
        {
            "role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
            "content": {"anyOf": [STRING, {"type": "array", "items": content_part}, {"type": "null"}]},
            "name": STRING,
            "tool_calls": {"type": "array", "items": {"type": "object"},
                           "description": "passed to Z.ai as text (it has no tool calls)"},
            "tool_call_id": STRING,
        },
        ["role"])
    return {
        "Error": _object(
            {"error": _object(
                {"message": STRING, "type": STRING, "param": NULLABLE_STRING, "code": NULLABLE_STRING},
                ["message", "type", "param", "code"])},
            ["error"],
            description="Every error, and the last data event of a stream that failed after it began."),
        "Model": _object(
            {"id": {"type": "string", "examples": models}, "object": {"const": "model"}, "created": INTEGER,
             "owned_by": STRING},
            ["id", "object", "created", "owned_by"]),
        "ModelList": _object({"object": {"const": "list"}, "data": {"type": "array", "items": _ref("Model")}},
                             ["object", "data"]),
        "Usage": usage,
        "ChatMessage": message,
        "ChatCompletionRequest": _object(
            {
                "model": {"type": "string", "minLength": 1, "default": settings.model_name, "examples": models,
                          "description": "a name from /v1/models, optionally with -Thinking or -Search; "
                                         "unknown names get MODEL_NAME's model"},
                "messages": {"type": "array", "minItems": 1, "items": _ref("ChatMessage")},
                "stream": {"type": "boolean", "default": settings.default_stream},
                "stream_options": _object({"include_usage": {"type": "boolean", "default": False}}),
                "enable_thinking": {"type": "boolean", "default": settings.enable_thinking,
                                    "description": "zto's extension: ask GLM to reason before answering"},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "top_p": {"type": "number", "minimum": 0, "maximum": 1},
                "max_tokens": {"type": "integer", "minimum": 1},
                "max_completion_tokens": {"type": "integer", "minimum": 1},
            },
            ["messages"],
            description="OpenAI's request; other fields are accepted and ignored."),
        "ChatCompletion": _object(
            {
                "id": {"type": "string", "pattern": "^chatcmpl-"},
                "object": {"const": "chat.completion"},
                "created": INTEGER,
                "model": STRING,
                "choices": {"type": "array", "minItems": 1, "items": _object(
                    {
                        "index": INTEGER,
                        "message": _object(
                            {"role": {"const": "assistant"}, "content": STRING,
                             "reasoning_content": {"type": "string",
                                                   "description": "present with THINKING_MODE=reasoning"}},
                            ["role", "content"]),
                        "logprobs": {"type": "null"},
                        "finish_reason": STRING,
                    },
                    ["index", "message", "finish_reason"])},
                "usage": _ref("Usage"),
            },
            ["id", "object", "created", "model", "choices", "usage"]),
        "ChatCompletionChunk": _object(
            {
                "id": {"type": "string", "pattern": "^chatcmpl-"},
                "object": {"const": "chat.completion.chunk"},
                "created": INTEGER,
                "model": STRING,
                "choices": {"type": "array", "maxItems": 1, "items": _object(
                    {
                        "index": INTEGER,
                        "delta": _object(
                            {"role": {"const": "assistant"}, "content": STRING, "reasoning_content": STRING},
                            additionalProperties=False),
                        "logprobs": {"type": "null"},
                        "finish_reason": NULLABLE_STRING,
                    },
                    ["index", "delta", "finish_reason"])},
                "usage": _ref("Usage"),
            },
            ["id", "object", "created", "model", "choices"],
            description="One `data:` event of a stream. The usage chunk (stream_options.include_usage) "
                        "has an empty `choices` and comes after the one with `finish_reason`."),
        "DashboardStats": _object(
            {
                "total_requests": INTEGER, "successful_requests": INTEGER, "failed_requests": INTEGER,
                "average_response_ms": {"type": "number"}, "p95_response_ms": {"type": "number"},
                "in_flight": INTEGER, "uptime_s": {"type": "number"},
                "last_request_at": {"type": ["number", "null"], "description": "Unix time"},
                "workers": INTEGER, "pid": INTEGER,
                "shared": {"type": "boolean", "description": "true: every worker and instance (REDIS_URL); "
                                                             "false: the answering worker's (pid) share"},
                "api_keys_set_aside": {
                    "type": "array", "description": "official API keys set aside after a refusal, redacted",
                    "items": _object({"key": STRING, "seconds_left": INTEGER, "reason": STRING},
                                     ["key", "seconds_left", "reason"])},
            },
            ["total_requests", "successful_requests", "failed_requests", "average_response_ms",
             "p95_response_ms", "in_flight", "uptime_s", "last_request_at"]),
        "RequestRecord": _object(
            {
                "time": {"type": "number", "description": "Unix time the request arrived"},
                "method": STRING, "path": STRING,
                "status": {"type": ["integer", "null"], "description": "null while in progress"},
                "duration_ms": {"type": "number", "description": "to the last byte; so far, while in progress"},
                "client_ip": STRING, "user_agent": STRING, "model": NULLABLE_STRING, "stream": {"type": "boolean"},
                "error": NULLABLE_STRING,
                "ok": {"type": ["boolean", "null"], "description": "whether it succeeded: status below 400 and no "
                                                                   "error but client_disconnected; null while in progress"},
                "in_progress": {"type": "boolean", "description": "begun and not finished yet (a stream being sent)"},
            },
            ["time", "method", "path", "status", "duration_ms", "client_ip", "user_agent", "model", "stream",
             "error", "ok", "in_progress"]),
        "Health": _object({"status": {"const": "ok"}}, ["status"]),
    }


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


def document(settings: Settings, server_url: str, models: list[str]) -> dict:
    """The OpenAPI document for a server reachable at ``server_url`` (no trailing slash)
    whose upstreams serve ``models`` (``Upstreams.models``, as ``/v1/models`` lists them)."""
    paths = {
        "/v1/models": {"get": {
            "operationId": "listModels", "summary": "The models offered", "security": [],
            "responses": {"200": _json(_ref("ModelList"), "OpenAI's model list")},
        }},
        "/v1/models/{model_id}": {"get": {
            "operationId": "getModel", "summary": "One model", "security": [],
            "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": STRING}],
            "responses": {"200": _json(_ref("Model"), "The model"), "404": _error("No such model")},
        }},
        "/v1/chat/completions": {"post": {
            "operationId": "createChatCompletion",
            "summary": "A chat completion, whole or streamed",
            "description": f"Reasoning goes where THINKING_MODE says (this server: {settings.thinking_mode}; "
                           f"one of {', '.join(THINKING_MODES)}).",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ChatCompletionRequest")}}},
            "responses": {
                "200": {
                    "description": "With `stream: false`, a ChatCompletion. With `stream: true`, server-sent "
                                   "events: `data: <ChatCompletionChunk>` lines, `: keepalive` comments, a "
                                   "`data: <Error>` line if the answer fails after it began, then `data: [DONE]`.",
                    "content": {
                        "application/json": {"schema": _ref("ChatCompletion")},
                        "text/event-stream": {"schema": {"type": "string"},
                                              "x-event-data": {"oneOf": [_ref("ChatCompletionChunk"), _ref("Error")]}},
                    },
                },
                "400": _error("The request is malformed"),
                "401": _error("The API key is missing or wrong"),
                "403": _error("Z.ai refused the model for this token"),
                "413": _error("The body is larger than MAX_REQUEST_BYTES"),
                "429": _error("Z.ai is rate-limiting the token (after one retry)"),
                "502": _error("Z.ai is unreachable, refused the request, or failed"),
                "504": _error("Z.ai stayed silent longer than UPSTREAM_READ_TIMEOUT"),
            },
        }},
    }
    paths.update(openapi_messages.paths())
    paths["/healthz"] = {"get": {
        "operationId": "health", "summary": "Whether the server answers (for Docker and load balancers)",
        "description": "Not counted as traffic by the dashboard or /metrics.", "tags": ["operators"],
        "security": [], "responses": {"200": _json(_ref("Health"), "The server is up")},
    }}
    operator_security = [{"dashboardKey": []}, {"dashboardCookie": []}] if settings.dashboard_key else []
    if settings.dashboard_enabled:
        unavailable = _error("Statistics unavailable: REDIS_URL is set and Redis cannot be read")
        recent = {"type": "array", "items": _ref("RequestRecord")}
        paths["/dashboard/snapshot"] = {"get": {
            "operationId": "dashboardSnapshot", "summary": "Totals and the last 100 requests, from one snapshot",
            "tags": ["operators"], "security": operator_security,
            "responses": {"200": _json(_object({"stats": _ref("DashboardStats"), "recent": recent},
                                               ["stats", "recent"]), "What the dashboard shows"),
                          "401": _error("DASHBOARD_KEY needed"), "503": unavailable},
        }}
        paths["/dashboard/stats"] = {"get": {
            "operationId": "dashboardStats", "summary": "Traffic totals (all workers with REDIS_URL, else this worker's)",
            "tags": ["operators"], "security": operator_security,
            "responses": {"200": _json(_ref("DashboardStats"), "Totals"), "401": _error("DASHBOARD_KEY needed"),
                          "503": unavailable},
        }}
        paths["/dashboard/requests"] = {"get": {
            "operationId": "dashboardRequests", "summary": "The last 100 requests and those in progress, newest first (by arrival)",
            "tags": ["operators"], "security": operator_security,
            "responses": {"200": _json(recent, "Requests"), "401": _error("DASHBOARD_KEY needed"),
                          "503": unavailable},
        }}
    if settings.metrics_enabled:
        paths["/metrics"] = {"get": {
            "operationId": "metrics", "summary": "Prometheus metrics", "tags": ["operators"],
            "security": operator_security,
            "responses": {"200": {"description": "Prometheus text format",
                                  "content": {"text/plain": {"schema": STRING}}},
                          "401": _error("DASHBOARD_KEY needed")},
        }}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "zto",
            "version": "1",
            "summary": "An OpenAI-compatible API for Z.ai's GLM models",
            "description": "Use any OpenAI client with this server's /v1 URL and its API key (DEFAULT_KEY).",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": server_url}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": {**schemas(settings, models), **openapi_messages.schemas()},
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "one of DEFAULT_KEY"},
                "anthropicKey": openapi_messages.SECURITY_SCHEME,
                "dashboardKey": {"type": "http", "scheme": "bearer", "description": "DASHBOARD_KEY"},
                "dashboardCookie": {"type": "apiKey", "in": "cookie", "name": "zto_dashboard",
                                    "description": "set by the /dashboard/login form"},
            },
        },
    }
