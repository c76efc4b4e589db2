"""Failures an operator can see: every upstream failure logged at WARNING whatever
DEBUG_MODE is, each failed request's error code on the dashboard, and messages that
fit the setup."""

from __future__ import annotations

import logging
import re

import pytest
import requests

from conftest import API_KEY, ask, wait_for
from zto.web_chat import rejection

LINE = re.compile(r"upstream failure: code=(\S+) upstream=(\S+) status=(\d+) ([^:]+): (.+)")


def failure_lines(caplog) -> list[tuple[str, ...]]:
    lines = [LINE.search(r.getMessage()) for r in caplog.records if r.levelno == logging.WARNING]
    return [m.groups() for m in lines if m]


@pytest.mark.parametrize("debug", [False, True])
def test_a_502_before_streaming_is_logged(client_with, fake, caplog, debug):
    client = client_with(debug=debug)
    fake.fail_next("500")
    with caplog.at_level(logging.WARNING):
        assert ask(client).status_code == 502
    [(code, upstream, status, outcome, reason)] = failure_lines(caplog)
    assert (code, upstream, status, outcome) == ("upstream_error", "web", "502", "sent to the client")
    assert "500" in reason and len(reason) <= 200


def test_a_retried_failure_and_the_final_one_are_each_logged(client, fake, caplog):
    fake.fail_next("429", count=2)
    with caplog.at_level(logging.WARNING):
        assert ask(client).status_code == 429
    assert [line[:4] for line in failure_lines(caplog)] == [
        ("upstream_rate_limited", "web", "429", "retrying with another token"),
        ("upstream_rate_limited", "web", "429", "sent to the client")]


@pytest.mark.parametrize("stream", [True, False])
def test_a_failure_mid_answer_is_logged(client, caplog, stream):
    with caplog.at_level(logging.WARNING):
        response = ask(client, "scenario:mid_error", stream=stream)
        assert response.status_code == (200 if stream else 502)
    [(code, upstream, _status, outcome, _reason)] = failure_lines(caplog)
    assert upstream == "web" and code.startswith("upstream_")
    assert outcome == ("stream ended with an error event" if stream else "sent to the client")


def test_a_502_is_logged_under_gunicorn_with_the_default_settings(start_server, fake):
    """DEBUG_MODE's default, and no access log line to stand in for it."""
    server = start_server({"UPSTREAM_URL": fake.completions_url}, env_local={"DEFAULT_KEY": API_KEY})
    fake.fail_next("500")
    response = requests.post(server.base_url + "/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                             json={"messages": [{"role": "user", "content": "hi"}]}, timeout=10)
    assert response.status_code == 502
    assert wait_for(lambda: "upstream failure: code=upstream_error upstream=web status=502" in server.log())
    assert "WARNING" in next(line for line in server.log().splitlines() if "upstream failure" in line)


def test_dashboard_records_the_error_code_of_failures_before_streaming(client, fake, auth):
    fake.fail_next("500")
    assert ask(client).status_code == 502
    assert ask(client, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/v1/chat/completions", headers=auth, data="{").status_code == 400
    assert ask(client).status_code == 200
    recent = client.get("/dashboard/requests").get_json()
    assert [(r["status"], r["error"]) for r in recent] == [
        (200, None), (400, "invalid_request"), (401, "invalid_api_key"), (502, "upstream_error")]


def test_anonymous_401_does_not_say_to_leave_zai_token_empty(client, fake):
    fake.fail_next("401", count=2)
    response = ask(client)
    message = response.get_json()["error"]["message"]
    assert response.status_code == 502 and "guest" in message
    assert "leave it empty" not in message and "ZAI_TOKEN" in message  # it says how to set one


def test_static_token_401_still_suggests_anonymous_mode():
    assert "leave it empty" in rejection(401, "Invalid token").message
    assert "leave it empty" not in rejection(401, "Invalid token", anonymous=True).message
