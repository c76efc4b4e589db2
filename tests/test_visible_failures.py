"""Failures an operator can see: every upstream failure logged at WARNING whatever
DEBUG_MODE is, each failed request's error code on the dashboard, and messages that
fit the setup."""

from __future__ import annotations

from conftest import ask


def test_dashboard_records_the_error_code_of_failures_before_streaming(client, fake, auth):
    fake.fail_next("500")
    assert ask(client).status_code == 502
    assert ask(client, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/v1/chat/completions", headers=auth, data="{").status_code == 400
    assert ask(client).status_code == 200
    recent = client.get("/dashboard/requests").get_json()
    assert [(r["status"], r["error"]) for r in recent] == [
        (200, None), (400, "invalid_request"), (401, "invalid_api_key"), (502, "upstream_error")]
