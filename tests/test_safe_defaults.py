"""Safe by default, in-process: the published key serves only this machine, the operator
pages never answer another origin, DASHBOARD_KEY guesses are limited, and /docs does
not reflect an odd Host.

The same rules under gunicorn, over real sockets, are in ``test_hardening_e2e.py``.
"""

from __future__ import annotations

import logging

import pytest

from conftest import API_KEY, ask
from zto import create_app, page_auth
from zto.api_keys import PUBLISHED_KEY, is_local_client
from zto.key_attempts import KeyAttempts

USER = [{"role": "user", "content": "hi"}]
REMOTE = {"REMOTE_ADDR": "203.0.113.7"}
PUBLISHED = {"Authorization": f"Bearer {PUBLISHED_KEY}"}
DASHBOARD_KEY = "dash-key-0123456789"


@pytest.fixture
def default_key_client(make_settings):
    """An app with DEFAULT_KEY left at its published default."""
    return create_app(make_settings(api_keys=(PUBLISHED_KEY,))).test_client()


# ---- the published key ------------------------------------------------------------------

def test_published_key_serves_a_client_on_this_machine(default_key_client):
    response = default_key_client.post("/v1/chat/completions", headers=PUBLISHED, json={"messages": USER})
    assert response.status_code == 200, response.get_data(as_text=True)


def test_published_key_refuses_other_clients_naming_default_key(default_key_client):
    response = default_key_client.post("/v1/chat/completions", headers=PUBLISHED, json={"messages": USER},
                                       environ_base=REMOTE)
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert "DEFAULT_KEY" in error["message"] and error["type"] == "authentication_error"
    assert error["code"] == "published_key_refused"


def test_published_key_refuses_a_loopback_proxy_zto_does_not_trust(default_key_client):
    """nginx on the same machine forwards everyone from 127.0.0.1."""
    response = default_key_client.post(
        "/v1/chat/completions", json={"messages": USER},
        headers={**PUBLISHED, "X-Forwarded-For": "198.51.100.4"})
    assert response.status_code == 401 and "DEFAULT_KEY" in response.get_json()["error"]["message"]


def test_published_key_behind_trusted_proxy_judges_the_forwarded_client(make_settings):
    client = create_app(make_settings(api_keys=(PUBLISHED_KEY,), trusted_proxies=1)).test_client()
    remote = client.post("/v1/chat/completions", json={"messages": USER},
                         headers={**PUBLISHED, "X-Forwarded-For": "198.51.100.4"})
    local = client.post("/v1/chat/completions", json={"messages": USER},
                        headers={**PUBLISHED, "X-Forwarded-For": "127.0.0.1"})
    assert (remote.status_code, local.status_code) == (401, 200)


def test_own_key_serves_every_client(client, auth):
    assert ask(client, headers=auth).status_code == 200
    response = client.post("/v1/chat/completions", headers=auth, json={"messages": USER}, environ_base=REMOTE)
    assert response.status_code == 200


def test_published_key_among_own_keys_still_serves_only_this_machine(make_settings):
    client = create_app(make_settings(api_keys=(API_KEY, PUBLISHED_KEY))).test_client()
    refused = client.post("/v1/chat/completions", headers=PUBLISHED, json={"messages": USER}, environ_base=REMOTE)
    served = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                         json={"messages": USER}, environ_base=REMOTE)
    assert (refused.status_code, served.status_code) == (401, 200)


@pytest.mark.parametrize(("address", "headers", "local"), [
    ("127.0.0.1", {}, True), ("127.8.9.1", {}, True), ("::1", {}, True), ("::ffff:127.0.0.1", {}, True),
    ("192.0.2.2", {}, False), ("::ffff:192.0.2.2", {}, False), ("", {}, False), (None, {}, False),
    ("not an address", {}, False), ("127.0.0.1", {"Forwarded": "for=198.51.100.4"}, False),
    ("127.0.0.1", {"X-Real-IP": "198.51.100.4"}, False),
])
def test_is_local_client(address, headers, local):
    assert is_local_client(address, headers, trusted_proxies=0) is local


def test_startup_says_the_published_key_serves_only_this_machine(make_settings, caplog):
    with caplog.at_level(logging.WARNING, logger="zto"):
        create_app(make_settings(api_keys=(PUBLISHED_KEY,)))
    lines = [r.getMessage() for r in caplog.records if PUBLISHED_KEY in r.getMessage()]
    assert len(lines) == 1 and "DEFAULT_KEY" in lines[0] and "only clients on this machine" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="zto"):
        create_app(make_settings())
    assert not [r for r in caplog.records if PUBLISHED_KEY in r.getMessage()]


# ---- CORS: the API only -----------------------------------------------------------------

ORIGIN = "https://elsewhere.example"
PAGE_PATHS = ["/dashboard", "/dashboard/stats", "/dashboard/requests", "/dashboard/login", "/metrics"]


@pytest.mark.parametrize("path", PAGE_PATHS)
@pytest.mark.parametrize("key", ["", DASHBOARD_KEY])
def test_operator_pages_send_no_cors_headers(client_with, path, key):
    client = client_with(dashboard_key=key)
    headers = {"Origin": ORIGIN}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    answer = client.get(path, headers=headers)
    preflight = client.options(path, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET",
                                              "Access-Control-Request-Headers": "authorization"})
    for response in (answer, preflight):
        assert not [h for h in response.headers.keys() if h.lower().startswith("access-control-")], (
            path, response.status_code, dict(response.headers))


def test_api_answers_any_origin_by_default(client, auth):
    response = client.get("/v1/models", headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)


def test_cors_origins_narrows_the_api(client_with, auth):
    client = client_with(cors_origins=("https://chat.example",))
    allowed = ask(client, headers={**auth, "Origin": "https://chat.example"})
    other = ask(client, headers={**auth, "Origin": ORIGIN})
    preflight = client.options("/v1/chat/completions", headers={
        "Origin": "https://chat.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://chat.example"
    assert "Access-Control-Allow-Origin" not in other.headers
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://chat.example"


# ---- /docs: PUBLIC_URL, and no odd Host --------------------------------------------------

def test_docs_and_openapi_use_public_url(client_with):
    client = client_with(public_url="https://zto.example.com/")
    page = client.get("/docs", headers={"Host": "10.0.0.5:9090"}).get_data(as_text=True)
    assert "https://zto.example.com/v1/chat/completions" in page and "10.0.0.5" not in page
    servers = client.get("/openapi.json", headers={"Host": "10.0.0.5:9090"}).get_json()["servers"]
    assert servers[0]["url"] == "https://zto.example.com"


def test_docs_use_the_request_host_without_public_url(client):
    page = client.get("/docs", headers={"Host": "zto.lan:9090"}).get_data(as_text=True)
    assert "http://zto.lan:9090/v1/chat/completions" in page


ODD_HOSTS = ['evil.example"><script>alert(1)</script>', "odd host", "x;rm -rf ~", "ex`id`.example", "h\tx"]


@pytest.mark.parametrize("host", ODD_HOSTS)
def test_docs_never_reflect_an_odd_host(client, host):
    page = client.get("/docs", headers={"Host": host}).get_data(as_text=True)
    assert host not in page and "<script>alert" not in page
    assert "http://localhost:9090/v1/chat/completions" in page  # a URL that works on the server itself
    servers = client.get("/openapi.json", headers={"Host": host}).get_json()["servers"]
    assert servers[0]["url"] == "http://localhost:9090"


# ---- DASHBOARD_KEY guessing --------------------------------------------------------------

GUESS_PATHS = ["/dashboard/stats", "/dashboard/requests", "/metrics"]


@pytest.fixture
def keyed(client_with):
    return client_with(dashboard_key=DASHBOARD_KEY)


def _wrong(client, path: str, address: str = "198.51.100.9"):
    if path == "/dashboard/login":
        return client.post(path, data={"key": "guess"}, environ_base={"REMOTE_ADDR": address})
    return client.get(path, headers={"Authorization": "Bearer guess"}, environ_base={"REMOTE_ADDR": address})


@pytest.mark.parametrize("path", [*GUESS_PATHS, "/dashboard/login"])
def test_ten_wrong_keys_block_the_address_for_a_minute(keyed, path, caplog):
    right = {"Authorization": f"Bearer {DASHBOARD_KEY}"}
    with caplog.at_level(logging.WARNING, logger="zto"):
        statuses = [_wrong(keyed, path).status_code for _ in range(10)]
        assert statuses == [401] * 10
        blocked = [_wrong(keyed, path), keyed.get("/metrics", headers=right, environ_base={"REMOTE_ADDR": "198.51.100.9"}),
                   keyed.get("/dashboard/login", environ_base={"REMOTE_ADDR": "198.51.100.9"})]
    assert [r.status_code for r in blocked] == [429, 429, 429]  # the right key too, while blocked
    assert "try again" in blocked[1].get_json()["error"]["message"]
    assert blocked[1].get_json()["error"]["code"] == "too_many_wrong_keys"
    assert all(0 < int(r.headers["Retry-After"]) <= 60 for r in blocked)
    assert "try again" in blocked[2].get_data(as_text=True)  # the login page says it in HTML
    # Another address is not affected.
    assert keyed.get("/metrics", headers=right, environ_base={"REMOTE_ADDR": "198.51.100.10"}).status_code == 200
    logged = [r.getMessage() for r in caplog.records if "DASHBOARD_KEY" in r.getMessage()]
    assert sum("wrong key from 198.51.100.9" in line for line in logged) == 10
    assert sum("refused 198.51.100.9" in line for line in logged) == 3
    assert DASHBOARD_KEY not in caplog.text and "guess" not in caplog.text


def test_wrong_cookies_count_as_guesses(keyed):
    keyed.set_cookie("zto_dashboard", "forged", domain="localhost")
    statuses = [keyed.get("/dashboard/stats", environ_base={"REMOTE_ADDR": "198.51.100.9"}).status_code
                for _ in range(11)]
    assert statuses == [401] * 10 + [429]


def test_requests_without_a_key_are_not_guesses(keyed):
    statuses = {keyed.get("/dashboard/stats", environ_base={"REMOTE_ADDR": "198.51.100.9"}).status_code
                for _ in range(15)}
    assert statuses == {401}


def test_block_ends_after_a_minute(make_settings):
    now = [1000.0]
    app = create_app(make_settings(dashboard_key=DASHBOARD_KEY))
    page_auth.init_app(app, KeyAttempts(clock=lambda: now[0]))
    client = app.test_client()
    for _ in range(10):
        _wrong(client, "/metrics")
    assert _wrong(client, "/metrics").status_code == 429
    now[0] += 59
    assert _wrong(client, "/metrics").status_code == 429
    now[0] += 2
    assert client.get("/metrics", headers={"Authorization": f"Bearer {DASHBOARD_KEY}"},
                      environ_base={"REMOTE_ADDR": "198.51.100.9"}).status_code == 200


def test_key_attempts_counts_only_the_last_minute():
    now = [0.0]
    attempts = KeyAttempts(clock=lambda: now[0])
    for _ in range(9):
        attempts.failed("a")
        now[0] += 7  # 9 wrong keys spread over 63 s: never 10 within a minute
    assert attempts.failed("a") < 10 and attempts.blocked_for("a") == 0.0
    assert attempts.blocked_for("b") == 0.0


def test_key_attempts_memory_is_bounded():
    attempts = KeyAttempts(max_addresses=100)
    for i in range(1000):
        attempts.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(attempts._failures) <= 100
