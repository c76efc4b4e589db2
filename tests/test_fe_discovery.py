"""A slow Z.ai landing page never stalls answers: the front-end version is discovered
in the background; after a 426 the one retry waits for it only a few seconds."""

from __future__ import annotations

import time

from conftest import ask

SLOW_S = 20.0  # a landing page this slow would hold every answer that long if waited for


def test_answers_do_not_wait_for_a_slow_landing_page(client, fake):
    fake.landing_delay = SLOW_S
    started = time.monotonic()
    assert ask(client).status_code == 200
    assert ask(client).status_code == 200
    assert time.monotonic() - started < SLOW_S / 2  # generous: no answer waited for the page
    assert fake.requests[-1].headers["x-fe-version"] == "prod-fe-1.1.93"  # FE_VERSION, at once
    assert any(path == "/" for _, path, _ in fake.seen)  # the look runs meanwhile


def test_a_426_retry_uses_the_version_the_look_finds(client, fake):
    fake.landing_delay = 1.0
    fake.landing_version = fake.min_fe_version = "prod-fe-1.2.0"
    assert ask(client).status_code == 200
    assert [r.headers["x-fe-version"] for r in fake.requests] == ["prod-fe-1.1.93", "prod-fe-1.2.0"]


def test_a_426_retry_waits_only_a_few_seconds_for_a_slow_page(client, fake):
    fake.landing_delay = SLOW_S
    fake.landing_version = fake.min_fe_version = "prod-fe-1.2.0"
    started = time.monotonic()
    response = ask(client)
    assert time.monotonic() - started < SLOW_S / 2
    assert response.status_code == 502 and response.get_json()["error"]["code"] == "upstream_version_rejected"
