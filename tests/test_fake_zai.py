"""Self-test of the fake Z.ai upstream (tests/fake_zai.py), with plain requests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
import requests

import fake_zai
import zai_scenarios
from fake_zai import FakeZai

SECRET = fake_zai.DEFAULT_SECRET


# ---- local request builders (independent of the fake's own verifier) -------------

def _sign_hmac(secret, ts, request_id, user_id, prompt):
    key = hmac.new(secret.encode(), str(ts // 300000).encode(), hashlib.sha256).hexdigest()
    c = f"requestId,{request_id},timestamp,{ts},user_id,{user_id}|{base64.b64encode(prompt.encode()).decode()}|{ts}"
    return hmac.new(key.encode(), c.encode(), hashlib.sha256).hexdigest()


def _user_id(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["id"]


def build(fake, token, prompt, *, scheme="hmac", fe="prod-fe-1.0.94", sign=True, content=None):
    ts = int(time.time() * 1000)
    request_id, chat_id = str(uuid.uuid4()), str(uuid.uuid4())
    user_id = _user_id(token)
    body = {
        "stream": True, "model": "GLM-4-6-API-V1",
        "messages": [{"role": "user", "content": content if content is not None else prompt}],
        "signature_prompt": prompt, "params": {}, "features": {"enable_thinking": False},
        "chat_id": chat_id, "id": str(uuid.uuid4()),
    }
    raw = json.dumps(body, ensure_ascii=False).encode()
    query = {"timestamp": ts, "requestId": request_id, "user_id": user_id, "token": token,
             "version": "0.0.1", "platform": "web", "signature_timestamp": ts}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if fe:
        headers["X-FE-Version"] = fe
    if sign:
        headers["X-Signature"] = (hashlib.sha256(raw).hexdigest() if scheme == "sha256"
                                  else _sign_hmac(SECRET, ts, request_id, user_id, prompt))
    return fake.completions_url + "?" + urlencode(query), raw, headers


def events_of(text):
    out = []
    for block in text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data:"):
                try:
                    out.append(json.loads(line[5:].strip()))
                except ValueError:
                    pass
    return out


@pytest.fixture
def fake():
    with FakeZai() as f:
        yield f


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


def guest(session, fake):
    return session.get(fake.origin + "/api/v1/auths/", timeout=5).json()["token"]


def ask(session, fake, prompt, **kw):
    url, raw, headers = build(fake, guest(session, fake), prompt, **kw)
    return session.post(url, data=raw, headers=headers, timeout=10)


# ---- signature test vectors ---------------------------------------------------------

def test_sha256_vector():
    assert fake_zai.sha256_signature(b'{"stream":true,"model":"GLM-4-6-API-V1"}') == (
        "2a3db7bb6be504090ba80c363c2fdce0f7f22c4b43d5fedd58143f8ff1b6d44a")


def test_hmac_vectors():
    ts, rid, uid = 1700000000000, "00000000-0000-0000-0000-000000000000", "guest-user"
    assert ts // 300000 == 5666666
    assert fake_zai.hmac_key(SECRET, ts) == "e37c98fb931005cbfac88fc6d9f09a459c0645f25d89a6c059f56417af6f260b"
    assert fake_zai.hmac_signature(SECRET, ts, rid, uid, "hello") == (
        "9a7b7e0121a120db47f6a870037d631cf1d040b40c898fae8b99ddd28dfa9419")
    assert fake_zai.hmac_signature(SECRET, ts, rid, uid, "你好") == (
        "d2f81fc0b8092b238abcc16ce041865f8cc4b56de704452da21733ae9295e742")
    assert _sign_hmac(SECRET, ts, rid, uid, "你好") == fake_zai.hmac_signature(SECRET, ts, rid, uid, "你好")


# ---- endpoints ---------------------------------------------------------------------

def test_landing_page_and_404(fake, session):
    page = session.get(fake.origin + "/", timeout=5).text
    assert page.count("prod-fe-1.0.94") >= 2
    fake.landing_version = None
    assert "prod-fe-" not in session.get(fake.origin + "/", timeout=5).text
    r = session.get(fake.origin + "/nope", timeout=5)
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_guest_tokens_are_distinct(fake, session):
    a = session.get(fake.origin + "/api/v1/auths/", timeout=5).json()
    b = session.get(fake.origin + "/api/v1/auths/", timeout=5).json()
    assert a["token"] != b["token"] and a["id"] != b["id"] and a["role"] == "guest"
    assert _user_id(a["token"]) == a["id"]
    assert fake.guest_tokens == [a["token"], b["token"]]


def test_plain_hmac_stream(fake, session):
    r = ask(session, fake, "hi there")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert events_of(r.text) == zai_scenarios.SCENARIOS["plain"].events
    rec = fake.requests[-1]
    assert rec.scenario == "plain" and rec.outcome == "finished" and rec.token
    assert rec.headers["x-fe-version"] == "prod-fe-1.0.94" and rec.query["platform"] == "web"
    assert fake.streams_finished == 1


def test_named_scenario_and_content_array(fake, session):
    text = ["part one scenario:thinking", "part two"]
    content = [{"type": "text", "text": t} for t in text] + [{"type": "image_url", "image_url": {"url": "x"}}]
    r = ask(session, fake, fake_zai.PROMPT_JOIN.join(text), content=content)
    assert r.status_code == 200
    assert events_of(r.text) == zai_scenarios.SCENARIOS["thinking"].events


def test_sha256_scheme(session):
    with FakeZai(scheme="sha256") as fake:
        assert ask(session, fake, "x", scheme="sha256").status_code == 200
        r = ask(session, fake, "x", scheme="hmac")
        assert r.status_code == 400 and r.json()["detail"] == fake_zai.SIGNATURE_DETAIL


def test_wrong_signature(fake, session):
    url, raw, headers = build(fake, guest(session, fake), "hello")
    headers["X-Signature"] = "0" * 64
    r = session.post(url, data=raw, headers=headers, timeout=5)
    assert r.status_code == 400
    assert r.json() == {"detail": "403: Signature validation failed: 签名验证失败"}
    # signature_prompt must be the last user message
    url, raw, headers = build(fake, guest(session, fake), "hello", content="something else")
    assert session.post(url, data=raw, headers=headers, timeout=5).status_code == 400
    # a different secret
    fake.secret = "junjie"
    assert ask(session, fake, "hello").status_code == 400


def test_bad_token_and_query(fake, session):
    url, raw, headers = build(fake, guest(session, fake), "x")
    headers["Authorization"] = "Bearer nope"
    r = session.post(url, data=raw, headers=headers, timeout=5)
    assert r.status_code == 401 and r.json() == {"detail": "401: Invalid token"}
    url, raw, headers = build(fake, guest(session, fake), "x")
    r = session.post(url.replace("signature_timestamp=", "signature_timestamp=1"), data=raw,
                     headers=headers, timeout=5)
    assert r.status_code == 400 and r.json()["detail"].startswith("Bad request")


def test_missing_fe_version_gets_426(fake, session):
    for fe in (None, "prod-fe-1.0.93"):
        r = ask(session, fake, "hello", fe=fe)
        assert r.status_code == 200
        assert events_of(r.text) == zai_scenarios.SCENARIOS["error_426"].events
    fake.min_fe_version = "prod-fe-1.0.100"
    assert events_of(ask(session, fake, "x", fe="prod-fe-1.0.99").text)[0]["data"]["error"]["code"] == 426
    assert ask(session, fake, "x", fe="prod-fe-1.0.100").text.count("Hello") == 1


def test_fail_next(fake, session):
    fake.fail_next("429")
    fake.fail_next("401")
    fake.fail_next("concurrency")
    fake.fail_next("405")
    fake.fail_next("403")
    fake.fail_next("500")
    r = ask(session, fake, "x")
    assert r.status_code == 429 and r.json() == {"detail": "Too many requests"}
    assert ask(session, fake, "x").json() == {"detail": "Invalid token"}
    r = ask(session, fake, "x")
    assert r.status_code == 200 and events_of(r.text)[0]["data"]["error"]["code"] == 429
    r = ask(session, fake, "x")
    assert r.status_code == 405 and r.headers["Content-Type"].startswith("text/html")
    assert "Model not available" in ask(session, fake, "x").json()["detail"]
    assert ask(session, fake, "x").status_code == 500
    assert ask(session, fake, "x").status_code == 200
    fake.fail_next("500", count=2)
    fake.reset()
    assert ask(session, fake, "x").status_code == 200 and len(fake.requests) == 1
    with pytest.raises(ValueError):
        fake.fail_next("418")


@pytest.mark.parametrize("words", ["transport:crlf", "transport:cr", "transport:nospace",
                                   "transport:comments", "transport:tiny", "transport:conn_close",
                                   "transport:tiny transport:crlf transport:comments",
                                   "transport:delay=0.01"])
def test_transports_deliver_the_same_events(fake, session, words):
    r = ask(session, fake, f"scenario:unicode {words}")
    assert r.status_code == 200
    assert events_of(r.content.decode()) == zai_scenarios.SCENARIOS["unicode"].events


def test_tiny_really_splits(fake, session):
    url, raw, headers = build(fake, guest(session, fake), "scenario:thinking transport:tiny")
    r = session.post(url, data=raw, headers=headers, stream=True, timeout=5)
    pieces = list(r.raw.read_chunked(decode_content=False))
    assert max(len(p) for p in pieces) <= 3 and len(pieces) > 100
    assert events_of(b"".join(pieces).decode()) == zai_scenarios.SCENARIOS["thinking"].events


def test_cut_breaks_the_body(fake, session):
    url, raw, headers = build(fake, guest(session, fake), "scenario:long transport:cut")
    r = session.post(url, data=raw, headers=headers, stream=True, timeout=5)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        for _ in r.iter_content(None):
            pass
    assert fake.requests[-1].outcome == "cut"


def test_slow_headers(fake, session):
    url, raw, headers = build(fake, guest(session, fake), "transport:slow=1")
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.post(url, data=raw, headers=headers, timeout=(5, 0.3))


def test_hang_notices_client_going_away(fake, session):
    url, raw, headers = build(fake, guest(session, fake), "transport:hang")
    r = session.post(url, data=raw, headers=headers, stream=True, timeout=5)
    first = next(r.iter_lines())
    assert first.startswith(b"data: ")
    r.close()
    deadline = time.monotonic() + 5
    while fake.streams_aborted == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.streams_aborted == 1 and fake.requests[-1].outcome == "aborted"


def test_keep_alive_reuses_one_connection(fake, session):
    token = guest(session, fake)
    for _ in range(2):
        url, raw, headers = build(fake, token, "scenario:plain")
        assert session.post(url, data=raw, headers=headers, timeout=5).status_code == 200
    assert fake.connections_opened == 1


def test_accepted_tokens(session):
    payload = base64.urlsafe_b64encode(json.dumps({"sub": "u-1"}).encode()).rstrip(b"=").decode()
    token = f"x.{payload}.y"
    with FakeZai(accepted_tokens=[token]) as fake:
        ts = int(time.time() * 1000)
        body = {"stream": True, "model": "m", "messages": [{"role": "user", "content": "hi"}],
                "signature_prompt": "hi", "chat_id": "c", "id": "i"}
        raw = json.dumps(body).encode()
        q = {"timestamp": ts, "requestId": "r", "user_id": "u-1", "token": token, "signature_timestamp": ts}
        r = session.post(fake.completions_url + "?" + urlencode(q), data=raw, timeout=5, headers={
            "Authorization": f"Bearer {token}", "X-FE-Version": "prod-fe-1.0.94",
            "X-Signature": _sign_hmac(SECRET, ts, "r", "u-1", "hi")})
        assert r.status_code == 200 and "Hello" in r.text


@pytest.mark.parametrize("captcha", [False, True], ids=["answers", "captcha"])
def test_runs_as_a_process(captcha):
    """``--captcha`` refuses every answer, as Z.ai does since May 2026; without it the
    fake answers."""
    proc = subprocess.Popen([sys.executable, str(Path(fake_zai.__file__)), "--port", "0",
                             *(["--captcha"] if captcha else [])], stdout=subprocess.PIPE, text=True)
    try:
        origin = proc.stdout.readline().strip()
        assert origin.startswith("http://127.0.0.1:")
        token = requests.get(origin + "/api/v1/auths/", timeout=5).json()["token"]
        for _ in range(2):
            url, raw, headers = build(SimpleNamespace(completions_url=origin + "/api/chat/completions"), token, "hi")
            answer = requests.post(url, data=raw, headers=headers, timeout=5)
            assert answer.status_code == 200
            refused = [event for event in events_of(answer.text) if event.get("error") == zai_scenarios.CAPTCHA_ERROR]
            assert bool(refused) == captcha and ("Hello" in answer.text) != captcha
    finally:
        proc.terminate()
        proc.wait(5)



def test_captcha_and_user_level_refusals(fake, session):
    """Z.ai since May 2026: the captcha refusal in a 200 stream (at the top level, in
    data and in data.data) or as an HTTP error body, and the in-stream user-level 403."""
    token = session.get(fake.origin + "/api/v1/auths/").json()["token"]

    def ask():
        url, raw, headers = build(fake, token, "hi")
        return session.post(url, data=raw, headers=headers)

    fake.captcha_required = True
    for _ in range(2):  # every answer, not just the next
        response = ask()
        assert response.status_code == 200
        [event] = events_of(response.text)
        captcha = zai_scenarios.CAPTCHA_ERROR
        assert event["error"] == event["data"]["error"] == event["data"]["data"]["error"] == captcha
        assert captcha["code"] == "FRONTEND_CAPTCHA_REQUIRED" and captcha["captcha_error_type"]
    fake.captcha_required = False
    fake.fail_next("captcha_http")
    response = ask()
    assert response.status_code == 403 and response.json()["code"] == "FRONTEND_CAPTCHA_REQUIRED"
    fake.fail_next("user_level")
    [event] = events_of(ask().text)
    assert event["data"]["error"] == {"code": 403, "detail": zai_scenarios.USER_LEVEL_DETAIL}
    assert "Hello" in ask().text  # refusals were one-off
