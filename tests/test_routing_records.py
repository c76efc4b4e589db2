"""Which upstream answers which model, and what the dashboard records, with both real
fakes (the web chat and the official API) in process: models only the official API
maps go to it, failures are recorded with the upstream whose error the client got,
every error response has its code, warnings for what an answer went without."""

from __future__ import annotations

import logging

import pytest
from test_api import error_of

from conftest import API_KEY, ask, wait_for
from fake_official import DEFAULT_KEYS
from zto import create_app
from zto.stats import RequestRecord

ANTHROPIC = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture
def both(make_settings, official):
    """A client of an app with these upstreams (web,api by default), both fakes behind."""
    def make(upstreams=("web", "api"), **overrides):
        settings = make_settings(zai_api_keys=DEFAULT_KEYS, api_base=official.base_url, upstreams=upstreams,
                                 **overrides)
        return create_app(settings).test_client()

    return make


def recent(client) -> dict:
    return client.get("/dashboard/requests").get_json()[0]


# ---- routing by model ---------------------------------------------------------------------

@pytest.mark.parametrize(("model", "official_id"), [
    ("GLM-4.5-Flash", "glm-4.5-flash"), ("GLM-5.1-Thinking", "glm-5.1"), ("glm-5.1", "glm-5.1")])
def test_a_model_only_the_official_api_maps_goes_to_it(both, fake, official, model, official_id):
    client = both()
    response = ask(client, model=model)
    assert response.status_code == 200 and response.get_json()["model"] == model
    assert fake.requests == [] and [r.body["model"] for r in official.requests] == [official_id]
    assert (recent(client)["upstream"], recent(client)["fell_back"]) == ("api", False)


def test_an_official_id_the_web_chat_does_not_map_is_not_answered_by_its_default(both, fake, official):
    response = ask(both(), model="glm-5-turbo")  # the fake official API does not have it: its 404
    assert error_of(response, 404)["code"] == "model_not_found"
    assert fake.requests == [] and official.requests[0].body["model"] == "glm-5-turbo"


def test_models_both_map_and_unknown_names_stay_on_the_web_chat_first(both, fake, official):
    client = both()
    assert ask(client, model="GLM-4.6").status_code == 200
    assert ask(client, model="gpt-4o").status_code == 200  # unknown: MODEL_NAME's model, as the original
    assert [r.body["model"] for r in fake.requests] == ["glm-4.6", "glm-4.6"] and official.requests == []


def test_web_only_unknown_names_become_model_names_model(client, fake):
    assert ask(client, model="GLM-5.1").status_code == 200
    assert fake.requests[0].body["model"] == "glm-4.6"


def test_api_only_unknown_names_become_model_names_official_model(both, official):
    assert ask(both(upstreams=("api",)), model="gpt-4o").status_code == 200
    assert official.requests[0].body["model"] == "glm-4.6"


def test_openapi_lists_what_the_configured_upstreams_serve(both, client):
    def model_examples(c) -> list[str]:
        return c.get("/openapi.json").get_json()["components"]["schemas"]["Model"]["properties"]["id"]["examples"]

    assert "GLM-5.1" in model_examples(both()) and "GLM-4.5-Flash" in model_examples(both(upstreams=("api",)))
    assert "GLM-5.1" not in model_examples(client)
    assert model_examples(both()) == [m["id"] for m in both().get("/v1/models").get_json()["data"]]


# ---- failures on the dashboard -----------------------------------------------------------

@pytest.mark.parametrize(("code", "status"), [("1302", 429), ("500", 502)])
def test_a_failure_after_falling_back_is_recorded_with_its_upstream(both, fake, official, code, status):
    client = both()
    fake.captcha_required = True
    official.fail_next(code, 2)  # the one retry with the other key too
    assert ask(client).status_code == status
    record = recent(client)
    assert (record["upstream"], record["fell_back"], record["status"], record["ok"]) == ("api", True, status, False)
    assert record["error"] in ("upstream_rate_limited", "upstream_error")


@pytest.mark.parametrize("stream", [False, True])
def test_web_chat_failures_are_recorded_as_the_web_chats(client, stream):
    for scenario in ("scenario:error_nested", "scenario:mid_error"):
        ask(client, scenario, stream=stream)
        record = recent(client)
        assert (record["upstream"], record["fell_back"], record["ok"]) == ("web", False, False), scenario
        assert record["error"] is not None


def test_messages_errors_have_their_codes_and_model(client):
    client.post("/v1/messages", headers={**ANTHROPIC, "x-api-key": "wrong"},
                json={"model": "claude-sonnet-4", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    assert recent(client)["error"] == "invalid_api_key"
    response = client.post("/v1/messages", headers=ANTHROPIC, json={"model": "claude-sonnet-4", "max_tokens": 10})
    assert response.status_code == 400
    assert (recent(client)["error"], recent(client)["model"]) == ("invalid_request", "claude-sonnet-4")
    client.post("/v1/messages/nowhere", headers=ANTHROPIC, json={})
    assert recent(client)["error"] == "not_found"


def test_chat_completions_400s_record_the_model_named(client, auth):
    response = client.post("/v1/chat/completions", headers=auth, json={"model": "GLM-4.6", "messages": []})
    assert response.status_code == 400
    assert (recent(client)["error"], recent(client)["model"]) == ("invalid_request", "GLM-4.6")


def test_a_client_leaving_is_no_failure_streamed_or_whole():
    def record(status: int, error: str | None) -> RequestRecord:
        return RequestRecord(time=0, method="POST", path="/v1/chat/completions", status=status, duration_ms=1,
                             client_ip="", user_agent="", model=None, stream=False, error=error)

    assert record(200, "client_disconnected").ok and record(499, "client_disconnected").ok
    assert not record(499, "upstream_error").ok and not record(200, "upstream_error").ok


# ---- logs and messages that fit the configuration ----------------------------------------

def test_the_captcha_fallback_is_logged_once_without_advice_already_followed(both, fake, caplog):
    client = both()
    fake.captcha_required = True
    with caplog.at_level(logging.DEBUG, logger="zto"):
        for _ in range(3):
            assert ask(client).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([w for w in warnings if "asking api instead" in w]) == 1, warnings
    assert not any("set ZAI_API_KEY" in w or "UPSTREAMS=web,api" in w for w in warnings), warnings
    assert len([r for r in caplog.records if "asking api instead" in r.getMessage()]) == 3


def test_the_captcha_403_on_a_server_with_the_api_does_not_advise_setting_it(both, fake, official):
    fake.captcha_required = True
    official.fail_next("500")
    error = error_of(ask(both(upstreams=("api", "web"))), 403)
    assert error["code"] == "upstream_captcha_required"
    assert "ZAI_API_KEY" not in error["message"] and "UPSTREAMS" not in error["message"]


# ---- what an answer went without -----------------------------------------------------------

@pytest.mark.parametrize("upstreams", [("api",), ("web", "api")])
def test_search_dropped_by_the_official_api_is_warned_about(both, fake, upstreams, caplog):
    client = both(upstreams=upstreams)
    fake.captcha_required = True  # web,api: the official API answers instead
    with caplog.at_level(logging.WARNING, logger="zto"):
        responses = [ask(client, model="GLM-4.6-Search") for _ in range(2)]
    assert all(r.status_code == 200 and "web search" in r.headers["X-Zto-Warning"] for r in responses)
    assert len([r for r in caplog.records if "-Search dropped" in r.getMessage()]) == 1
    assert "X-Zto-Warning" not in ask(client, model="GLM-4.6").headers


def test_search_on_the_web_chat_has_no_warning(client, fake):
    response = ask(client, model="GLM-4.6-Search")
    assert response.status_code == 200 and "X-Zto-Warning" not in response.headers
    assert fake.requests[0].body["features"]["web_search"] is True


# ---- an assistant turn alone ----------------------------------------------------------------

ASSISTANT_ONLY = [{"role": "assistant", "content": "Once upon a time"}]


@pytest.mark.parametrize("upstreams", [("api",), ("web", "api")])
def test_an_assistant_turn_alone_is_answered_by_the_official_api(both, fake, official, upstreams):
    response = ask(both(upstreams=upstreams), messages=ASSISTANT_ONLY)
    assert response.status_code == 200 and response.get_json()["choices"][0]["message"]["content"]
    assert fake.requests == [] and official.requests[0].body["messages"] == ASSISTANT_ONLY


def test_an_assistant_turn_alone_is_a_clear_400_on_the_web_chat(client, fake):
    error = error_of(ask(client, messages=ASSISTANT_ONLY), 400, "user message", "ZAI_API_KEY")
    assert error["param"] == "messages" and fake.requests == []


# ---- guests Z.ai forgot ------------------------------------------------------------------------

def test_after_zai_forgets_its_guests_no_request_fails(client, fake):
    assert ask(client).status_code == 200
    tokens = client.application.extensions["zto"].upstreams.upstreams[0].tokens
    assert wait_for(lambda: len(tokens._ready) == 4)  # the reserve is full
    with fake._lock:
        fake._users.clear()  # Z.ai restarted: every guest it issued is unknown now
    assert [ask(client).status_code for _ in range(3)] == [200, 200, 200]
