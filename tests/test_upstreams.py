"""Two upstreams behind one pipeline, in-process: the web chat's 2026 refusals, the
router's fallback and routing, tool calls and thinking switches as clients send them,
the models list, and what the statistics and metrics say about each answer.

The second upstream here is a stand-in that satisfies the ``Upstream`` protocol, so
that the router is tested on its own; the official API client has tests of its own.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from test_api import error_of, events, streamed_text

from conftest import API_KEY, ask
from zto import create_app
from zto.chat_request import build_chat_request
from zto.errors import UpstreamRejected
from zto.metrics import Metrics
from zto.settings import load_settings
from zto.upstreams import Piece, Upstreams

TOKEN_A, TOKEN_B = "static-token-aaaaaaaaaaaaaaaa", "static-token-bbbbbbbbbbbbbbbb"
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "the weather",
                                                 "parameters": {"type": "object", "properties": {}}}}
TOOL_CALL_PIECES = [
    Piece(reasoning="I should look it up."),
    Piece(tool_calls=({"index": 0, "id": "call_1", "type": "function",
                       "function": {"name": "get_weather", "arguments": ""}},)),
    Piece(tool_calls=({"index": 0, "function": {"arguments": '{"city": '}},)),
    Piece(tool_calls=({"index": 0, "function": {"arguments": '"Paris"}'}},)),
]


class StandInAnswer:
    upstream = "api"

    def __init__(self, pieces: list[Piece], finish_reason: str) -> None:
        self.fell_back = False
        self.usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        self.finish_reason = finish_reason
        self._pieces = pieces
        self.closed = False

    def pieces(self):
        yield from self._pieces

    def close(self) -> None:
        self.closed = True


class StandInApi:
    """An ``Upstream`` that answers every request at once, and remembers them."""

    name = "api"

    def __init__(self, pieces: list[Piece] | None = None, finish_reason: str = "stop") -> None:
        self.asked = []
        self._pieces = pieces or [Piece(content="Answered by the stand-in.")]
        self._finish_reason = finish_reason

    def models(self) -> list[str]:
        return ["GLM-4.6", "GLM-4.5-Flash"]

    def serves(self, model: str) -> bool:
        return model.lower() in ("glm-4.6", "glm-4.5-flash")

    def unsupported(self, chat) -> str | None:
        return None

    def drops(self, chat) -> str | None:
        return None

    def start(self, chat) -> StandInAnswer:
        self.asked.append(chat)
        return StandInAnswer(self._pieces, self._finish_reason)


@pytest.fixture
def web_then_api(make_settings):
    """A client of an app whose upstreams are the web chat (the fake) then the stand-in."""
    def make(api: StandInApi | None = None, **overrides):
        app = create_app(make_settings(**overrides))
        res = app.extensions["zto"]
        api = api or StandInApi()
        web = res.upstreams.upstreams[0]
        app.extensions["zto"] = dataclasses.replace(res, upstreams=Upstreams([web, api], res.metrics))
        return app.test_client(), api

    return make


def recent(client) -> list[dict]:
    return client.get("/dashboard/requests").get_json()


def metric(client, line_start: str) -> float:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


# ---- the captcha refusal (web chat only) --------------------------------------------------

@pytest.mark.parametrize("kind", ["captcha", "captcha_http"])
@pytest.mark.parametrize("stream", [False, True])
def test_the_captcha_refusal_is_a_403_that_says_what_to_do(client, fake, kind, stream):
    fake.fail_next(kind)
    error = error_of(ask(client, stream=stream), 403, "human verification", "ZAI_API_KEY", "UPSTREAMS=web,api")
    assert error["code"] == "upstream_captcha_required" and error["type"] == "permission_error"
    assert "Try again later" not in error["message"] and "FE_VERSION" not in error["message"]
    assert len(fake.requests) == 1  # never retried: every token gets it


def test_the_captcha_refusal_is_not_retried_with_another_static_token(client_with, fake):
    fake.accepted_tokens = (TOKEN_A, TOKEN_B)
    fake.captcha_required = True
    client = client_with(zai_tokens=(TOKEN_A, TOKEN_B))
    error_of(ask(client), 403, "human verification")
    assert len(fake.requests) == 1
    assert recent(client)[0]["status"] == 403


def test_the_user_level_refusal_names_zai_token(client, fake):
    fake.fail_next("user_level")
    error = error_of(ask(client, model="GLM-4.6"), 403, "user level", "ZAI_TOKEN")
    assert error["code"] == "upstream_forbidden"
    assert len(fake.requests) == 1


# ---- fallback: web first, then the second upstream ----------------------------------------

REFUSALS = {
    "captcha": lambda fake: fake.fail_next("captcha"),
    "captcha_http": lambda fake: fake.fail_next("captcha_http"),
    "user_level": lambda fake: fake.fail_next("user_level"),
    "firewall_405": lambda fake: fake.fail_next("405"),
    "signature": lambda fake: setattr(fake, "scheme", "sha256"),
    "version_426": lambda fake: setattr(fake, "min_fe_version", "prod-fe-9.9.9"),
    "unauthorized_after_retry": lambda fake: fake.fail_next("401", count=2),
    "rate_limited_after_retry": lambda fake: fake.fail_next("429", count=2),
}


@pytest.mark.parametrize("refusal", REFUSALS)
@pytest.mark.parametrize("stream", [False, True])
def test_a_web_refusal_another_token_cannot_fix_goes_to_the_next_upstream(web_then_api, fake, refusal, stream):
    client, api = web_then_api()
    REFUSALS[refusal](fake)
    response = ask(client, "hello", stream=stream, model="GLM-4.6")
    if stream:
        chunks = events(response)
        assert streamed_text(chunks) == ("", "Answered by the stand-in.")
        assert {c["model"] for c in chunks if isinstance(c, dict)} == {"GLM-4.6"}
    else:
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json()["choices"][0]["message"]["content"] == "Answered by the stand-in."
        assert response.get_json()["model"] == "GLM-4.6"
    assert len(api.asked) == 1 and api.asked[0].model == "GLM-4.6"
    assert fake.requests  # the web chat was asked first
    record = recent(client)[0]
    assert (record["upstream"], record["fell_back"], record["status"]) == ("api", True, 200)
    assert metric(client, 'zto_upstream_answers_total{fell_back="true",upstream="api"}') == 1


@pytest.mark.parametrize("kind, status", [("500", 502), ("empty", 502)])
def test_failures_that_are_not_refusals_do_not_fall_back(web_then_api, fake, kind, status):
    client, api = web_then_api()
    fake.fail_next(kind, count=2)
    error_of(ask(client), status)
    assert api.asked == []


def test_an_answer_the_web_chat_gives_is_recorded_as_not_fallen_back(web_then_api, fake):
    client, api = web_then_api()
    assert ask(client).status_code == 200
    assert api.asked == []
    record = recent(client)[0]
    assert (record["upstream"], record["fell_back"]) == ("web", False)
    assert metric(client, 'zto_upstream_answers_total{fell_back="false",upstream="web"}') == 1


# ---- requests the web chat cannot serve ---------------------------------------------------

def test_tools_go_straight_to_the_upstream_that_can_call_them(web_then_api, fake):
    client, api = web_then_api(StandInApi(TOOL_CALL_PIECES, finish_reason="tool_calls"))
    response = ask(client, "weather in Paris?", tools=[WEATHER_TOOL], tool_choice="auto")
    assert response.status_code == 200 and "X-Zto-Warning" not in response.headers
    assert fake.requests == [] and api.asked[0].tools == (WEATHER_TOOL,) and api.asked[0].tool_choice == "auto"
    choice = response.get_json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["reasoning_content"] == "I should look it up."
    assert choice["message"]["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    assert recent(client)[0]["fell_back"] is False


def test_streamed_tool_calls_leave_as_openai_deltas(web_then_api):
    client, _ = web_then_api(StandInApi(TOOL_CALL_PIECES, finish_reason="tool_calls"))
    chunks = events(ask(client, "weather?", tools=[WEATHER_TOOL], stream=True))
    deltas = [c["choices"][0]["delta"]["tool_calls"] for c in chunks[:-1]
              if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert deltas == [list(p.tool_calls) for p in TOOL_CALL_PIECES[1:]]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1] if c["choices"]][-1] == "tool_calls"


def test_image_parts_go_straight_to_the_second_upstream(web_then_api, fake):
    client, api = web_then_api()
    content = [{"type": "text", "text": "what is it?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    assert ask(client, messages=[{"role": "user", "content": content}]).status_code == 200
    assert fake.requests == [] and api.asked[0].has_images


def test_web_only_tools_are_answered_without_them_with_a_warning(client, fake, caplog):
    caplog.set_level(logging.WARNING, logger="zto")
    first = ask(client, "weather?", tools=[WEATHER_TOOL])
    assert first.status_code == 200
    assert "tool" in first.headers["X-Zto-Warning"]
    assert first.get_json()["choices"][0]["message"]["content"]
    second = ask(client, "again?", tools=[WEATHER_TOOL], stream=True)
    assert "tool" in second.headers["X-Zto-Warning"] and events(second)[-1] == "[DONE]"
    assert "X-Zto-Warning" not in ask(client).headers
    warnings = [r for r in caplog.records if "ZAI_API_KEY" in r.getMessage()]
    assert len(warnings) == 1  # once per client
    assert len(fake.requests) == 3


# ---- thinking switches --------------------------------------------------------------------

@pytest.mark.parametrize("body, default, expected", [
    ({"reasoning_effort": "high"}, False, True),
    ({"reasoning_effort": "low"}, False, True),
    ({"reasoning_effort": "none"}, True, False),
    ({"reasoning_effort": "minimal"}, True, False),
    ({"thinking": {"type": "enabled"}}, False, True),
    ({"thinking": {"type": "disabled"}}, True, False),
    ({"enable_thinking": False, "model": "GLM-4.6-Thinking"}, False, False),
    ({"thinking": {"type": "disabled"}, "model": "GLM-4.6-Thinking"}, True, False),
    ({"model": "GLM-4.6-Thinking"}, False, True),
    ({"enable_thinking": True, "reasoning_effort": "none"}, False, True),
    ({}, True, True),
    ({}, False, False),
])
def test_thinking_switches_reach_the_web_chat(client_with, fake, body, default, expected):
    client = client_with(enable_thinking=default)
    assert ask(client, **body).status_code == 200
    assert fake.requests[-1].body["features"]["enable_thinking"] is expected


@pytest.mark.parametrize("body, param", [
    ({"thinking": {"type": "sometimes"}}, "thinking"), ({"thinking": True}, "thinking"),
    ({"reasoning_effort": 3}, "reasoning_effort"), ({"reasoning_effort": ""}, "reasoning_effort"),
])
def test_malformed_thinking_switches_are_400s(client, fake, body, param):
    assert error_of(ask(client, **body), 400)["param"] == param
    assert fake.requests == []


# ---- models ------------------------------------------------------------------------------

def test_models_list_what_the_configured_upstreams_serve(web_then_api, client):
    web_only = [m["id"] for m in client.get("/v1/models").get_json()["data"]]
    combined_client, _ = web_then_api()
    combined = [m["id"] for m in combined_client.get("/v1/models").get_json()["data"]]
    assert "GLM-4.5-Flash" not in web_only
    assert combined == [*web_only, "GLM-4.5-Flash"]  # each name once, in UPSTREAMS order
    assert combined_client.get("/v1/models/glm-4.5-flash").get_json()["id"] == "GLM-4.5-Flash"


def test_the_answer_names_the_model_the_client_asked_for(client):
    response = ask(client, model="glm-4.6-thinking-search")
    assert response.get_json()["model"] == "glm-4.6-thinking-search"


# ---- what the web chat is sent -----------------------------------------------------------

def test_the_v2_completion_path_is_served(client_with, fake):
    client = client_with(upstream_url=fake.origin + "/api/v2/chat/completions")
    assert ask(client).status_code == 200
    assert fake.requests[-1].path == "/api/v2/chat/completions"


def test_stop_and_tools_are_not_sent_to_the_web_chat(client, fake):
    assert ask(client, stop=["\n\n"], temperature=0.5, tools=[WEATHER_TOOL]).status_code == 200
    body = fake.requests[-1].body
    assert body["params"] == {"temperature": 0.5}
    assert "get_weather" not in json.dumps(body)
    assert API_KEY not in json.dumps(body)


# ---- the router alone ----------------------------------------------------------------------

class Refusing:
    """An upstream that refuses before its first byte."""

    def __init__(self, name: str, fallback: bool, unsupported: str | None = None) -> None:
        self.name, self.fallback, self._unsupported, self.asked = name, fallback, unsupported, 0

    def models(self) -> list[str]:
        return []

    def serves(self, model: str) -> bool:
        return True

    def unsupported(self, chat) -> str | None:
        return self._unsupported

    def drops(self, chat) -> str | None:
        return None

    def start(self, chat):
        self.asked += 1
        raise UpstreamRejected(f"{self.name} refused", fallback=self.fallback)


def chat_request(**body):
    settings = load_settings({}, env_dir="/nonexistent")
    return build_chat_request({"messages": [{"role": "user", "content": "hi"}], **body}, settings=settings)


def test_a_refusal_without_fallback_is_the_answer():
    first, second = Refusing("web", fallback=False), StandInApi()
    with pytest.raises(UpstreamRejected, match="web refused"):
        Upstreams([first, second], Metrics()).start(chat_request())
    assert second.asked == []


def test_the_last_upstreams_refusal_is_the_answer():
    first, second = Refusing("web", fallback=True), Refusing("api", fallback=True)
    with pytest.raises(UpstreamRejected, match="api refused"):
        Upstreams([first, second], Metrics()).start(chat_request())
    assert (first.asked, second.asked) == (1, 1)


def test_an_upstream_that_cannot_serve_is_skipped_unless_none_can():
    web = Refusing("web", fallback=True, unsupported="no tools here")
    api = StandInApi()
    router = Upstreams([web, api], Metrics())
    answer = router.start(chat_request())
    assert web.asked == 0 and answer.fell_back is False and router.warning(chat_request(), answer, "c") is None
    alone = Upstreams([web], Metrics())
    assert alone.warning(chat_request(), answer, "c") == "no tools here"


def test_a_426_is_retried_once_with_the_front_end_version_read_again(client, fake):
    assert ask(client).status_code == 200  # discovery looked once: FE_VERSION is newer than the page
    fake.landing_version = fake.min_fe_version = "prod-fe-1.2.0"  # Z.ai deploys a new front end
    assert ask(client).status_code == 200
    assert [r.headers["x-fe-version"] for r in fake.requests[-2:]] == ["prod-fe-1.1.93", "prod-fe-1.2.0"]
    assert fake.requests[-2].token == fake.requests[-1].token  # the token was not the problem


@pytest.mark.parametrize("stream", [False, True])
def test_a_reasoning_only_answer_is_not_a_blank_one_when_reasoning_is_hidden(client_with, stream):
    client = client_with(thinking_mode="hide")
    res = client.application.extensions["zto"]
    reasoning_only = StandInApi([Piece(reasoning="Hmm, let me think.")])
    client.application.extensions["zto"] = dataclasses.replace(res, upstreams=Upstreams([reasoning_only], res.metrics))
    response = ask(client, stream=stream)
    if stream:
        chunks = events(response)
        assert chunks[-2]["error"]["code"] == "upstream_empty_answer" and "THINKING_MODE" in chunks[-2]["error"]["message"]
    else:
        assert error_of(response, 502, "THINKING_MODE")["code"] == "upstream_empty_answer"
