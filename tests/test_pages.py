"""The operator pages in-process: /dashboard and its JSON, the DASHBOARD_KEY login,
and /metrics (Prometheus text, parsed with prometheus_client's own parser).

The browser's view of the same pages is in ``test_browser.py``.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from flask import Blueprint
from prometheus_client.parser import text_string_to_metric_families

from conftest import API_KEY, ask
from zto import create_app, health, page_auth
from zto.app import UNTRACKED_BLUEPRINTS
from zto.page_auth import COOKIE
from zto.stats import PendingRequest, Stats, p95

USER = [{"role": "user", "content": "hi"}]
HOSTILE_AGENT = '<img src=x onerror="document.title=\'pwned\'">'
DASHBOARD_KEY = "dash-key-0123456789"
STATS_FIELDS = {"total_requests", "successful_requests", "failed_requests", "average_response_ms",
                "p95_response_ms", "in_flight", "uptime_s", "last_request_at"}




def samples(client, headers=None) -> dict:
    """name{label=value,...} -> value of every sample /metrics shows."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


# ---- dashboard JSON and page -------------------------------------------------------------

def test_stats_and_requests_reflect_api_traffic(client, auth):
    client.get("/v1/models", headers={"User-Agent": HOSTILE_AGENT})
    ask(client)
    ask(client, headers={"Authorization": "Bearer wrong"})
    stats = client.get("/dashboard/stats").get_json()
    assert STATS_FIELDS <= set(stats)
    assert stats["total_requests"] == 3 and stats["successful_requests"] == 2 and stats["failed_requests"] == 1
    assert stats["in_flight"] == 0 and stats["average_response_ms"] > 0 and stats["p95_response_ms"] > 0
    assert stats["last_request_at"] > 0 and stats["workers"] == 1 and stats["pid"] > 0
    recent = client.get("/dashboard/requests").get_json()
    assert [r["status"] for r in recent] == [401, 200, 200]  # newest first
    assert recent[2]["user_agent"] == HOSTILE_AGENT  # raw data; the page writes it as text
    assert recent[1]["model"] == "GLM-4.6" and recent[1]["path"] == "/v1/chat/completions"


def test_the_pages_do_not_count_themselves(client):
    for path in ("/dashboard", "/dashboard/stats", "/dashboard/requests", "/docs", "/openapi.json", "/metrics",
                 "/static/dashboard.js"):
        assert client.get(path).status_code == 200, path
    assert client.get("/dashboard/stats").get_json()["total_requests"] == 0
    assert client.get("/dashboard/requests").get_json() == []


def test_a_browser_at_the_root_lands_on_the_guide(client):
    response = client.get("/", headers={"Accept": "text/html"})
    assert response.status_code == 302 and response.headers["Location"] == "/docs"
    assert client.get("/", follow_redirects=True).mimetype == "text/html"
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data
    # the API keeps its JSON 404 for what it does not know
    unknown = client.get("/v1/nowhere")
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "not_found"


def test_the_root_and_the_favicon_are_not_traffic(client):
    for path in ("/", "/favicon.ico", "/", "/favicon.ico"):
        client.get(path)
    assert client.get("/dashboard/stats").get_json()["total_requests"] == 0
    assert not any(name.endswith(("path=/,status=302}", "favicon.ico,status=200}")) for name in samples(client))


def test_the_page_is_self_contained(client):
    response = client.get("/dashboard")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert 'src="/static/dashboard.js"' in html and 'href="/static/pages.css"' in html
    assert "https://" not in html and "//cdn" not in html
    for asset in ("dashboard.js", "pages.css", "docs.js", "favicon.svg"):
        body = client.get(f"/static/{asset}").get_data(as_text=True)
        assert "https://" not in body and "@import" not in body and "url(" not in body, asset
    assert "innerHTML" not in client.get("/static/dashboard.js").get_data(as_text=True)


def test_several_workers_are_announced(client_with):
    client = client_with(workers=3)
    html = client.get("/dashboard").get_data(as_text=True)
    assert 'id="worker-notice"' in html and "one worker" in html
    assert client.get("/dashboard/stats").get_json()["workers"] == 3
    assert 'id="worker-notice"' not in client_with().get("/dashboard").get_data(as_text=True)


def test_dashboard_disabled_is_404_for_all_of_it(client_with):
    client = client_with(dashboard_enabled=False)
    for path in ("/dashboard", "/dashboard/stats", "/dashboard/requests", "/dashboard/login"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] == "not_found"
    assert client.post("/dashboard/login", data={"key": "x"}).status_code == 404
    assert "/dashboard" not in client.get("/docs").get_data(as_text=True).split("<main", 1)[0]
    assert client.get("/metrics").status_code == 200  # metrics have their own switch


def test_metrics_disabled_is_404(client_with):
    client = client_with(metrics_enabled=False)
    assert client.get("/metrics").status_code == 404
    assert "/metrics" not in client.get("/openapi.json").get_json()["paths"]


# ---- DASHBOARD_KEY ---------------------------------------------------------------------

def test_a_public_dashboard_is_warned_about(make_settings, caplog):
    with caplog.at_level(logging.WARNING, logger="zto"):
        create_app(make_settings())
    assert "DASHBOARD_KEY is not set" in caplog.text and "/dashboard" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="zto"):
        create_app(make_settings(dashboard_key=DASHBOARD_KEY))
    assert "DASHBOARD_KEY is not set" not in caplog.text
    assert DASHBOARD_KEY not in caplog.text


def test_the_key_protects_page_json_and_metrics(client_with, caplog):
    client = client_with(dashboard_key=DASHBOARD_KEY)
    page = client.get("/dashboard")
    assert page.status_code == 302 and page.headers["Location"].startswith("/dashboard/login?next=")
    for path in ("/dashboard/stats", "/dashboard/requests", "/metrics"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.get_json()["error"]["code"] == "dashboard_key_required"
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {DASHBOARD_KEY}"}).status_code == 200
    # the API itself does not take the dashboard key, and the docs stay public
    assert ask(client, headers={"Authorization": f"Bearer {DASHBOARD_KEY}"}).status_code == 401
    assert client.get("/docs").status_code == 200 and client.get("/v1/models").status_code == 200
    assert DASHBOARD_KEY not in caplog.text


PUBLIC_PAGE_ENDPOINTS = {"dashboard.login", "dashboard.logout"}


def test_every_operator_route_is_behind_the_key(client_with):
    """Whatever routes the dashboard and /metrics have, only the login form is open."""
    client = client_with(dashboard_key=DASHBOARD_KEY)
    rules = [rule for rule in client.application.url_map.iter_rules()
             if rule.endpoint.split(".")[0] in ("dashboard", "metrics")]
    assert {rule.endpoint for rule in rules} >= {"dashboard.show_dashboard", "dashboard.stats",
                                                  "dashboard.recent_requests", "metrics.show_metrics"}
    for rule in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(rule.rule, method=method)
            if rule.endpoint in PUBLIC_PAGE_ENDPOINTS:  # the form (a wrong key's is a 401 page), or a redirect
                assert response.status_code == 303 or 'name="key"' in response.get_data(as_text=True), rule.rule
            elif rule.endpoint == "dashboard.show_dashboard":
                assert response.status_code == 302 and "/dashboard/login" in response.headers["Location"]
            else:
                assert response.status_code == 401, (rule.rule, method)
                assert response.get_json()["error"]["code"] == "dashboard_key_required"


def test_a_route_added_to_a_protected_blueprint_needs_the_key(make_settings):
    extra = Blueprint("extra", __name__)
    page_auth.protect(extra, public=("extra.open_view",))
    extra.add_url_rule("/extra/secret", "secret_view", lambda: "secret")
    extra.add_url_rule("/extra/open", "open_view", lambda: "open")
    app = create_app(make_settings(dashboard_key=DASHBOARD_KEY))
    app.register_blueprint(extra)
    client = app.test_client()
    assert client.get("/extra/secret").status_code == 401
    assert client.get("/extra/secret", headers={"Authorization": f"Bearer {DASHBOARD_KEY}"}).data == b"secret"
    assert client.get("/extra/open").data == b"open"


def test_the_login_form_sets_a_strict_httponly_cookie(client_with):
    client = client_with(dashboard_key=DASHBOARD_KEY)
    form = client.get("/dashboard/login?next=/dashboard")
    assert form.status_code == 200 and 'name="key"' in form.get_data(as_text=True)
    wrong = client.post("/dashboard/login", data={"key": "nope", "next": "/dashboard"})
    assert wrong.status_code == 401 and "not right" in wrong.get_data(as_text=True)
    assert client.get_cookie(COOKIE) is None
    right = client.post("/dashboard/login", data={"key": DASHBOARD_KEY, "next": "/metrics"})
    assert right.status_code == 303 and right.headers["Location"] == "/metrics"
    set_cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/" in set_cookie
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None and DASHBOARD_KEY not in cookie.value
    assert client.get("/dashboard").status_code == 200
    assert client.get("/dashboard/stats").status_code == 200 and client.get("/metrics").status_code == 200
    out = client.post("/dashboard/logout")
    assert out.status_code == 303 and client.get_cookie(COOKIE) is None
    assert client.get("/dashboard/stats").status_code == 401


def test_a_forged_cookie_is_refused(client_with):
    client = client_with(dashboard_key=DASHBOARD_KEY)
    client.set_cookie(COOKIE, DASHBOARD_KEY)
    assert client.get("/dashboard/stats").status_code == 401
    client.set_cookie(COOKIE, "0" * 64)
    assert client.get("/dashboard/stats").status_code == 401


# Each as it stands, percent-encoded, in the query string of a link an attacker sends.
HOSTILE_NEXT = [
    "https://evil.example/", "//evil.example/", "/%5Cevil.example", "%5C%5Cevil.example", "javascript:x",
    "/%09/evil.example", "/%0d%0aSet-Cookie:%20x=1", "/%0a/evil.example", "/%20/evil.example",
    "/%2F%2Fevil.example", "///evil.example", "/dashboard%5C..%5C..%5Cevil.example",
    "/dashboard/../..//evil.example", "/dashboard%00", "/%E3%80%80/evil.example", "http:/evil.example",
    "/dashboardevil", "/v1/models", "evil.example", "",
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_login_only_returns_to_local_pages(client_with, target):
    client = client_with(dashboard_key=DASHBOARD_KEY)
    response = client.post("/dashboard/login", data={"key": DASHBOARD_KEY, "next": unquote(target)})
    assert response.status_code == 303 and response.headers["Location"] == "/dashboard"
    form = client.get(f"/dashboard/login?next={target}")
    assert form.status_code == 200
    assert 'name="next" value="/dashboard"' in form.get_data(as_text=True)


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_without_a_key_login_does_not_redirect_away(client, target):
    response = client.get(f"/dashboard/login?next={target}")
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard"


@pytest.mark.parametrize("target", ["/dashboard", "/dashboard?refresh=1", "/dashboard/stats", "/metrics"])
def test_login_returns_to_the_operator_pages(client_with, target):
    client = client_with(dashboard_key=DASHBOARD_KEY)
    response = client.post("/dashboard/login", data={"key": DASHBOARD_KEY, "next": target})
    assert response.status_code == 303 and response.headers["Location"] == target


@pytest.mark.parametrize("target", [None, "", "/dashboard", "/metrics?x=1", "//evil", "/\\evil", "/\tx",
                                    "/dashboard\r\nX: y", "https://evil", "/dashboard/../v1", "/dashboard/%2e%2e/v1"])
def test_safe_next_rules(target):
    expected = target if target in ("/dashboard", "/metrics?x=1") else "/dashboard"
    assert page_auth.safe_next(target) == expected


def test_without_a_key_login_just_goes_to_the_dashboard(client):
    assert client.get("/dashboard/login").headers["Location"] == "/dashboard"


# ---- /metrics -----------------------------------------------------------------------------

def test_metrics_count_requests_by_status_and_route(client):
    client.get("/v1/models")
    client.get("/v1/models/GLM-4.6")
    client.get("/v1/models/nope")
    ask(client)
    ask(client, headers={"Authorization": "Bearer wrong"})
    client.get("/nowhere")
    values = samples(client)
    assert values["zto_http_requests_total{method=GET,path=/v1/models,status=200}"] == 1
    assert values["zto_http_requests_total{method=GET,path=/v1/models/<path:model_id>,status=200}"] == 1
    assert values["zto_http_requests_total{method=GET,path=/v1/models/<path:model_id>,status=404}"] == 1
    assert values["zto_http_requests_total{method=POST,path=/v1/chat/completions,status=200}"] == 1
    assert values["zto_http_requests_total{method=POST,path=/v1/chat/completions,status=401}"] == 1
    assert values["zto_http_requests_total{method=GET,path=(unmatched),status=404}"] == 1
    assert values["zto_http_request_duration_seconds_count{path=/v1/chat/completions}"] == 2
    assert values["zto_http_request_duration_seconds_sum{path=/v1/chat/completions}"] > 0
    assert not any("/metrics" in name or "/dashboard" in name for name in values)  # pages are not traffic
    assert any(name.startswith("process_") for name in values)


def test_metrics_time_to_first_token_and_streams_in_flight(client, auth):
    response = client.post("/v1/chat/completions", headers=auth, buffered=False,
                           json={"messages": [{"role": "user", "content": "scenario:long"}], "stream": True})
    chunks = iter(response.response)
    next(chunks), next(chunks)
    during = samples(client)
    assert during["zto_streams_in_flight{}"] == 1
    assert during["zto_upstream_tokens_in_use{token_kind=guest}"] == 1
    assert during["zto_time_to_first_token_seconds_count{}"] == 1
    b"".join(chunks)
    response.close()
    after = samples(client)
    assert after["zto_streams_in_flight{}"] == 0
    assert after["zto_upstream_tokens_in_use{token_kind=guest}"] == 0
    assert after["zto_time_to_first_token_seconds_count{}"] == 1
    assert 0 < after["zto_time_to_first_token_seconds_sum{}"] < 5
    ask(client)  # a whole answer opens a token too, and gives it back
    assert samples(client)["zto_upstream_tokens_in_use{token_kind=guest}"] == 0


def test_a_stream_cut_by_the_client_gives_back_its_token(client, auth):
    response = client.post("/v1/chat/completions", headers=auth, buffered=False,
                           json={"messages": [{"role": "user", "content": "scenario:long transport:delay=0.05"}],
                                 "stream": True})
    chunks = iter(response.response)
    next(chunks), next(chunks)
    response.close()
    values = samples(client)
    assert values["zto_streams_in_flight{}"] == 0 and values["zto_upstream_tokens_in_use{token_kind=guest}"] == 0


def test_static_tokens_are_counted_as_static(client_with, fake):
    fake.accepted_tokens = ("static-token-aaaaaaaaaaaaaaaa",)
    client = client_with(zai_tokens=("static-token-aaaaaaaaaaaaaaaa",))
    response = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"}, buffered=False,
                           json={"messages": USER, "stream": True})
    next(iter(response.response))
    assert samples(client)["zto_upstream_tokens_in_use{token_kind=static}"] == 1
    response.close()
    assert samples(client)["zto_upstream_tokens_in_use{token_kind=static}"] == 0


def error_counts(client) -> dict:
    return {name.split("=", 1)[1].rstrip("}"): value for name, value in samples(client).items()
            if name.startswith("zto_upstream_errors_total")}


def test_upstream_errors_are_counted_by_kind(client_with, fake):
    client = client_with(fe_version_discovery=False)
    assert set(error_counts(client)) >= {"version_426", "signature", "auth", "rate_limit", "timeout", "connection"}
    assert not any(error_counts(client).values())

    fake.fail_next("401")  # retried with a fresh guest: counted, and the answer still comes
    assert ask(client).status_code == 200
    fake.fail_next("429", count=2)  # retried, fails again: counted twice
    assert ask(client).status_code == 429
    assert ask(client, "scenario:error_426").status_code == 502
    assert ask(client, "scenario:mid_error", stream=True).status_code == 200  # fails after the start
    fake.scheme = "sha256"
    assert ask(client).status_code == 502
    counts = error_counts(client)
    assert counts["auth"] == 1 and counts["rate_limit"] == 2 and counts["version_426"] == 1
    assert counts["signature"] == 1 and counts["other"] == 1  # the 500 in mid-stream


def test_timeouts_and_connection_failures_are_counted(client_with, fake):
    client = client_with(read_timeout_s=0.5, fe_version_discovery=False)
    assert ask(client, "transport:slow=3").status_code == 504
    fake.stop()
    assert ask(client).status_code == 502
    counts = error_counts(client)
    assert counts["timeout"] == 1 and counts["connection"] == 1


def test_every_app_has_its_own_registry(client_with):
    first, second = client_with(), client_with()
    first.get("/v1/models")
    assert samples(first)["zto_http_requests_total{method=GET,path=/v1/models,status=200}"] == 1
    assert "zto_http_requests_total{method=GET,path=/v1/models,status=200}" not in samples(second)


# ---- page headers -------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/login", "/docs"])
def test_every_html_page_sends_the_page_headers(client_with, path):
    response = client_with(dashboard_key=DASHBOARD_KEY).get(path, headers={"Authorization": f"Bearer {DASHBOARD_KEY}"})
    assert response.status_code == 200 and response.mimetype == "text/html", path
    for name, value in page_auth.PAGE_HEADERS.items():
        assert response.headers[name] == value, (path, name)


# ---- p95 -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "expected"), [
    ([], 0.0),
    ([7.5], 7.5),
    (list(range(1, 21)), 19),  # ceil(0.95 * 20) = 19th of 20
    (list(range(1, 101)), 95),  # ceil(0.95 * 100) = 95th of 100
    (list(range(1, 22)), 20),  # ceil(19.95) = 20th of 21
    ([5, 1, 4, 2, 3], 5),  # ceil(4.75) = 5th: order does not matter
])
def test_p95_is_the_nearest_rank(values, expected):
    shuffled = random.Random(len(values)).sample(values, len(values))
    assert p95(shuffled) == expected


def test_p95_nearest_rank_matches_its_definition():
    for n in range(1, 201):
        values = list(range(1, n + 1))
        assert p95(values) == values[math.ceil(0.95 * n) - 1], n


def test_the_snapshot_p95_is_the_nearest_rank():
    stats = Stats()
    for seconds in range(1, 21):  # 1000 ms, 2000 ms, ... 20000 ms
        stats.begin()
        stats.finish(PendingRequest("GET", "/v1/models", "127.0.0.1", "t",
                                    started=time.perf_counter() - seconds), 200)
    assert 19000 <= stats.snapshot()["p95_response_ms"] < 19500  # the 19th of 20, not the slowest


# ---- /healthz --------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [{}, {"dashboard_enabled": False, "metrics_enabled": False},
                                       {"dashboard_key": DASHBOARD_KEY}])
def test_healthz_answers_and_is_not_traffic(client_with, overrides):
    client = client_with(**overrides)
    for _ in range(3):
        response = client.get("/healthz")
        assert response.status_code == 200 and response.get_json() == {"status": "ok"}
        assert response.headers["Cache-Control"] == "no-store"
    assert client.head("/healthz").status_code == 200
    assert health.bp.name in UNTRACKED_BLUEPRINTS
    if overrides.get("dashboard_enabled", True):
        headers = {"Authorization": f"Bearer {DASHBOARD_KEY}"}
        assert client.get("/dashboard/stats", headers=headers).get_json()["total_requests"] == 0
        assert client.get("/dashboard/requests", headers=headers).get_json() == []
        assert not any("/healthz" in name for name in samples(client, headers))


def test_the_docker_healthcheck_uses_healthz():
    dockerfile = (Path(__file__).resolve().parent.parent / "Dockerfile").read_text()
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK"):].split("\nCMD", 1)[0]
    assert "/healthz" in healthcheck and "/v1/" not in healthcheck


# ---- the ok rule ---------------------------------------------------------------------------

def test_each_recent_request_says_whether_it_succeeded(client, auth):
    client.get("/v1/models")
    ask(client, headers={"Authorization": "Bearer wrong"})
    ask(client, "scenario:mid_error", stream=True)  # 200, then an error in the stream
    response = client.post("/v1/chat/completions", headers=auth, buffered=False,
                           json={"messages": [{"role": "user", "content": "scenario:long transport:delay=0.05"}],
                                 "stream": True})
    chunks = iter(response.response)
    next(chunks), next(chunks)
    response.close()  # the client walks away: not a failure
    recent = client.get("/dashboard/requests").get_json()
    assert [(r["status"], r["error"], r["ok"]) for r in recent] == [
        (200, "client_disconnected", True), (200, recent[1]["error"], False),
        (401, "invalid_api_key", False), (200, None, True)]  # each failure shows its error code
    assert recent[1]["error"] is not None
    stats = client.get("/dashboard/stats").get_json()
    assert stats["successful_requests"] == sum(r["ok"] for r in recent)


def test_the_debug_log_has_a_line_for_streamed_requests_too(client, auth, caplog):
    """Each request's line (method, path, status, duration) once it ended: a stream's when
    its last byte went out, not only whole answers'."""
    with caplog.at_level(logging.DEBUG, logger="zto.tracking"):
        ask(client, "hi")
        response = client.post("/v1/chat/completions", headers=auth, json={
            "model": "GLM-4.6", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
        assert b"[DONE]" in response.get_data()
        response.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "zto.tracking"]
    assert len(lines) == 2, lines
    assert re.fullmatch(r"POST /v1/chat/completions 200 \d+\.\dms", lines[0]), lines
    assert re.fullmatch(r"POST /v1/chat/completions 200 \d+\.\dms \(stream\)", lines[1]), lines
