"""The app on the official API, in process: what the pages and the error responses say."""

from __future__ import annotations

import html
import re

import pytest
from test_guide import validate

from conftest import ask
from fake_official import DEFAULT_KEYS
from zto import create_app

KEY, OTHER_KEY = DEFAULT_KEYS


@pytest.fixture
def api_client(make_settings, official):
    def make(**overrides):
        settings = make_settings(zai_api_keys=DEFAULT_KEYS, api_base=official.base_url, upstreams=("api",), **overrides)
        return create_app(settings).test_client()

    return make


def test_rate_limits_answer_429_with_retry_after(api_client, official):
    official.fail_next("1303", 2)
    response = ask(api_client(), model="GLM-4.6")
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert response.get_json()["error"]["type"] == "rate_limit_error"


def test_the_dashboard_lists_keys_set_aside_redacted(api_client, official):
    client = api_client()
    assert client.get("/dashboard/stats").get_json()["api_keys_set_aside"] == []
    official.fail_key(KEY, "1113")
    assert ask(client).status_code == 200
    stats = client.get("/dashboard/stats").get_json()
    assert stats["api_keys_set_aside"] == [
        {"key": f"{KEY[:6]}…({len(KEY)} chars)", "seconds_left": 600, "reason": "insufficient_quota"}]
    validate(client, "DashboardStats", stats)
    assert KEY not in client.get("/dashboard/stats").get_data(as_text=True)


def test_the_dashboard_of_the_web_chat_has_no_keys(client):
    assert client.get("/dashboard/stats").get_json()["api_keys_set_aside"] == []


def page_text(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    return re.sub(r" ([.,)])", r"\1", text)


def test_docs_show_the_official_apis_errors(api_client):
    text = page_text(api_client(), "/docs")
    assert "It reaches Z.ai through Z.ai's official API." in text
    assert "1113 429 insufficient_quota" in text and "1261 400 context_length_exceeded" in text
    assert "1302–1305 429 upstream_rate_limited, with Retry-After" in text


def test_models_of_both_upstreams(make_settings, official):
    settings = make_settings(zai_api_keys=(KEY,), api_base=official.base_url, upstreams=("web", "api"))
    names = [m["id"] for m in create_app(settings).test_client().get("/v1/models").get_json()["data"]]
    web = list(settings.models)
    assert names[:len(web)] == web  # the web chat's first, then what only the official API has
    assert {name for name, _ in settings.api_model_map} <= set(names) and "GLM-4.5-Flash" in names[len(web):]


def test_both_upstreams_share_one_pooled_session(make_settings, official):
    app = create_app(make_settings(zai_api_keys=(KEY,), api_base=official.base_url, upstreams=("web", "api")))
    web, api = app.extensions["zto"].upstreams.upstreams
    assert (web.name, api.name) == ("web", "api") and web.session is api.session
    adapter = api.session.get_adapter(official.base_url)
    assert adapter._pool_maxsize >= 10  # sized to the worker's concurrency, as for the web chat
