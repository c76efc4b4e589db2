"""Signatures against the protocol notes' test vectors, token sources, and the
front-end version discovery."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time

import pytest

from conftest import wait_for
from zto.fe_version import FrontendVersion, newest_version, version_key
from zto.signing import WINDOW_MS, hmac_signature, sha256_signature
from zto.tokens import GuestTokens, StaticTokens, redact, user_id_of

SECRET = "key-@@@@)))()((9))-xxxx&&&%%%%%"
VECTOR = {"timestamp_ms": 1700000000000, "request_id": "00000000-0000-0000-0000-000000000000", "user_id": "guest-user"}


# ---- signing -----------------------------------------------------------------------

def test_sha256_vector():
    body = b'{"stream":true,"model":"GLM-4-6-API-V1"}'
    assert sha256_signature(body) == "2a3db7bb6be504090ba80c363c2fdce0f7f22c4b43d5fedd58143f8ff1b6d44a"


def test_sha256_signs_the_exact_bytes():
    assert sha256_signature(b'{"stream": true}') != sha256_signature(b'{"stream":true}')


def test_hmac_window_and_key_vector():
    window = VECTOR["timestamp_ms"] // WINDOW_MS
    assert window == 5666666
    key = hmac.new(SECRET.encode(), str(window).encode(), hashlib.sha256).hexdigest()
    assert key == "e37c98fb931005cbfac88fc6d9f09a459c0645f25d89a6c059f56417af6f260b"


def test_hmac_vector_ascii_prompt():
    assert hmac_signature(SECRET, prompt="hello", **VECTOR) == (
        "9a7b7e0121a120db47f6a870037d631cf1d040b40c898fae8b99ddd28dfa9419")


def test_hmac_vector_chinese_prompt():
    assert hmac_signature(SECRET, prompt="你好", **VECTOR) == (
        "d2f81fc0b8092b238abcc16ce041865f8cc4b56de704452da21733ae9295e742")


def test_hmac_uses_standard_padded_base64_of_the_prompt():
    prompt = "~~~ ?>"  # base64 "fn5+ID8+" has "+", which base64url would change
    assert "+" in base64.b64encode(prompt.encode()).decode()
    ts, request_id, user_id = VECTOR["timestamp_ms"], VECTOR["request_id"], VECTOR["user_id"]
    key = hmac.new(SECRET.encode(), str(ts // 300000).encode(), hashlib.sha256).hexdigest()
    signed = f"requestId,{request_id},timestamp,{ts},user_id,{user_id}|{base64.b64encode(prompt.encode()).decode()}|{ts}"
    expected = hmac.new(key.encode(), signed.encode(), hashlib.sha256).hexdigest()
    assert hmac_signature(SECRET, prompt=prompt, **VECTOR) == expected


@pytest.mark.parametrize("change", [
    {"prompt": "hello!"}, {"user_id": "other"}, {"request_id": "00000000-0000-0000-0000-000000000001"},
    {"timestamp_ms": 1700000000001}, {"secret": "junjie"},
])
def test_hmac_depends_on_every_input(change):
    args = {"secret": SECRET, "prompt": "hello", **VECTOR}
    assert hmac_signature(**{**args, **change}) != hmac_signature(**args)


# ---- user_id_of --------------------------------------------------------------------

def jwt(claims, *, pad: bool = False) -> str:
    def part(value) -> str:
        text = base64.urlsafe_b64encode(json.dumps(value).encode()).decode()
        return text if pad else text.rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.signature"


@pytest.mark.parametrize(("claims", "user_id"), [
    ({"id": "i", "user_id": "u", "uid": "x", "sub": "s"}, "i"),
    ({"sub": "s", "uid": "x", "user_id": "u"}, "u"),
    ({"sub": "s", "uid": "x"}, "x"),
    ({"sub": "s"}, "s"),
    ({"id": "", "user_id": None, "sub": "s"}, "s"),
    ({"id": 42}, "42"),
    ({"id": "ü-ß-ユーザー"}, "ü-ß-ユーザー"),
    ({"email": "a@b"}, "guest"),
    ({}, "guest"),
    ({"id": "", "sub": ""}, "guest"),
])
def test_user_id_claims_in_order(claims, user_id):
    assert user_id_of(jwt(claims)) == user_id
    assert user_id_of(jwt(claims, pad=True)) == user_id


@pytest.mark.parametrize("payload", [[1, 2], "text", 7, None])
def test_user_id_of_non_object_payload(payload):
    assert user_id_of(jwt(payload)) == "guest"


@pytest.mark.parametrize("token", [
    "", "nodots", "a.", "a..c", "a.!!!.c", "a.bm90IGpzb24.c", "a." + base64.urlsafe_b64encode(b"\xff\xfe").decode() + ".c",
    "a.e30", "a.x.c",
])
def test_user_id_of_malformed_tokens_is_guest(token):
    assert user_id_of(token) == "guest"


def test_user_id_needs_base64url_not_base64():
    # This payload has "-" or "_" in base64url, where base64 would have "+" or "/".
    claims = {"id": "~~>?"}
    token = jwt(claims)
    assert "-" in token.split(".")[1] or "_" in token.split(".")[1]
    assert user_id_of(token) == "~~>?"


# ---- token sources -----------------------------------------------------------------

def test_static_tokens_round_robin():
    tokens = StaticTokens(("a", "b", "c"))
    assert [tokens.acquire() for _ in range(7)] == ["a", "b", "c", "a", "b", "c", "a"]


def test_static_tokens_another_skips_the_failed_one():
    tokens = StaticTokens(("a", "b", "c"))
    first = tokens.acquire()
    assert first == "a"
    assert tokens.another("a") == "b"
    for failed in ("a", "b", "c"):
        for _ in range(4):
            replacement = tokens.another(failed)
            assert replacement is not None and replacement != failed


def test_static_tokens_another_with_two_tokens():
    tokens = StaticTokens(("a", "b"))
    for _ in range(3):
        assert tokens.another(tokens.acquire()) in ("a", "b")
    assert all(tokens.another("a") == "b" for _ in range(5))


def test_static_tokens_another_with_one_token_is_none():
    tokens = StaticTokens(("only",))
    assert tokens.acquire() == "only"
    assert tokens.another("only") is None
    assert tokens.acquire() == "only"


def test_static_tokens_another_with_only_the_failed_token_repeated_is_none():
    assert StaticTokens(("same", "same")).another("same") is None


def test_static_tokens_need_a_token():
    with pytest.raises(ValueError):
        StaticTokens(())


def test_static_tokens_are_shared_fairly_between_threads():
    tokens = StaticTokens(("a", "b", "c", "d"))
    got, lock = [], threading.Lock()

    def worker():
        for _ in range(250):
            token = tokens.acquire()
            with lock:
                got.append(token)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {t: got.count(t) for t in "abcd"} == {t: 500 for t in "abcd"}


class CountingFetch:
    """Issues g1, g2, ...; can be told to fail or to wait."""

    def __init__(self):
        self.issued = []
        self.fail = False
        self.lock = threading.Lock()

    def __call__(self):
        if self.fail:
            raise OSError("Z.ai unreachable")
        with self.lock:
            self.issued.append(f"g{len(self.issued) + 1}")
            return self.issued[-1]


def test_guest_tokens_are_each_used_once():
    fetch = CountingFetch()
    tokens = GuestTokens(fetch, ahead=2)
    handed = [tokens.acquire(), tokens.another("x"), tokens.acquire(), tokens.acquire()]
    assert len(set(handed)) == 4 and set(handed) <= set(fetch.issued)


def test_guest_tokens_are_fetched_ahead():
    fetch = CountingFetch()
    tokens = GuestTokens(fetch, ahead=3)
    assert tokens.acquire() == "g1"  # nothing ready yet: fetched in the foreground
    assert wait_for(lambda: len(fetch.issued) == 4)
    fetch.fail = True  # from now on only tokens fetched ahead can be handed out
    assert sorted(tokens.acquire() for _ in range(3)) == ["g2", "g3", "g4"]
    with pytest.raises(OSError):
        tokens.acquire()


def test_stale_guest_tokens_are_thrown_away():
    fetch = CountingFetch()
    tokens = GuestTokens(fetch, ahead=2, max_age_s=0.05)
    tokens.acquire()
    assert wait_for(lambda: len(fetch.issued) == 3)
    time.sleep(0.1)
    assert tokens.acquire() == "g4"


def test_a_failing_background_fetch_does_not_break_acquire(caplog):
    fetch = CountingFetch()
    tokens = GuestTokens(fetch, ahead=2)
    fetch.fail = True
    with pytest.raises(OSError):
        tokens.acquire()
    fetch.fail = False
    assert tokens.acquire() == "g1"


@pytest.mark.parametrize("length", [0, 1, 2, 6, 7, 12, 13, 16, 20, 39, 40, 49, 200])
def test_redact_never_reveals_a_meaningful_share_of_the_token(length):
    token = "".join(chr(ord("a") + i % 26) for i in range(length))
    shown = redact(token)
    assert shown and (token not in shown or not token)
    revealed = shown.split("…")[0]
    assert token.startswith(revealed)
    assert len(revealed) <= min(6, length * 0.15)
    assert redact("mysecrettoken123") == "…(16 chars)"  # a short ZAI_TOKEN: nothing of it


def test_redact_real_looking_jwt():
    token = jwt({"id": "user-123"})
    shown = redact(token)
    assert token not in shown and "user" not in shown
    assert shown.startswith(token[:6]) and str(len(token)) in shown


# ---- front-end version -------------------------------------------------------------

PAGE = '<script src="/_app/immutable/prod-fe-1.0.99/start.js"></script><link href="/prod-fe-1.0.100/app.css">'


def test_version_key_is_numeric():
    assert version_key("prod-fe-1.0.100") > version_key("prod-fe-1.0.99")
    assert version_key("prod-fe-1.1.0") > version_key("prod-fe-1.0.999")
    assert version_key("garbage") == ()


@pytest.mark.parametrize(("page", "newest"), [
    (PAGE, "prod-fe-1.0.100"),
    ("prod-fe-1.0.9 prod-fe-1.0.10 prod-fe-1.0.2", "prod-fe-1.0.10"),
    ("prod-fe-2.0.0 prod-fe-10.0.0 prod-fe-9.9.9", "prod-fe-10.0.0"),
    ('"prod-fe-1.1.93"', "prod-fe-1.1.93"),
    ("no version here, prod-fe-1.0 or dev-fe-1.2.3", None),
    ("", None),
])
def test_newest_version(page, newest):
    assert newest_version(page) == newest


class Pages:
    """A fetch_page that counts its calls and returns (or raises) what it is told."""

    def __init__(self, *results):
        self.results = list(results)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        result = self.results[min(self.calls, len(self.results)) - 1]
        if isinstance(result, Exception):
            raise result
        return result


def looked(version: FrontendVersion) -> FrontendVersion:
    """``version`` once the look ``current`` started has ended."""
    version.current()
    version.join(5)
    return version


def test_discovered_version_is_used_and_cached():
    pages = Pages(PAGE)
    version = looked(FrontendVersion("prod-fe-1.0.94", pages, ttl_s=600))
    assert version.current() == "prod-fe-1.0.100"
    assert version.current() == "prod-fe-1.0.100"
    assert pages.calls == 1


def test_never_below_the_fallback():
    version = looked(FrontendVersion("prod-fe-1.0.94", Pages("prod-fe-1.0.50 prod-fe-1.0.9"), ttl_s=600))
    assert version.current() == "prod-fe-1.0.94"


def test_falls_back_when_the_page_names_no_version(caplog):
    with caplog.at_level(logging.WARNING, logger="zto.fe_version"):
        assert looked(FrontendVersion("prod-fe-1.0.94", Pages("<html></html>"), ttl_s=600)).current() == "prod-fe-1.0.94"
    assert caplog.records


def test_falls_back_when_the_fetch_raises(caplog):
    pages = Pages(ConnectionError("no route"))
    with caplog.at_level(logging.WARNING, logger="zto.fe_version"):
        version = looked(FrontendVersion("prod-fe-1.0.94", pages, ttl_s=600))
        assert version.current() == "prod-fe-1.0.94"
    assert "no route" in caplog.text
    version.join(5)
    assert version.current() == "prod-fe-1.0.94"
    assert pages.calls == 1  # a failure is not retried on every request


def test_without_discovery_the_fallback_is_used_and_nothing_fetched():
    version = FrontendVersion("prod-fe-1.0.94", None, ttl_s=600)
    assert version.current() == "prod-fe-1.0.94" and version.refreshed() == "prod-fe-1.0.94"


def test_a_slow_landing_page_is_never_waited_for():
    """The first request, and every later one, gets a version at once: FE_VERSION until
    the look ends."""
    release = threading.Event()
    pages = Pages("prod-fe-1.0.98")

    def slow_fetch():
        release.wait(10)
        return pages()

    version = FrontendVersion("prod-fe-1.0.94", slow_fetch, ttl_s=600)
    started = time.monotonic()
    assert [version.current() for _ in range(3)] == ["prod-fe-1.0.94"] * 3
    assert time.monotonic() - started < 5  # generous: not the fetch's 10 s
    release.set()
    version.join(5)
    assert version.current() == "prod-fe-1.0.98" and pages.calls == 1


def test_refreshed_looks_again_and_waits_for_the_look():
    pages = Pages("prod-fe-1.0.98", "prod-fe-1.0.103")
    version = looked(FrontendVersion("prod-fe-1.0.94", pages, ttl_s=600))
    assert version.current() == "prod-fe-1.0.98"
    assert version.refreshed() == "prod-fe-1.0.103"
    assert pages.calls == 2
    assert version.current() == "prod-fe-1.0.103" and pages.calls == 2


def test_refreshed_after_a_failed_fetch_looks_at_once():
    pages = Pages(OSError("down"), "prod-fe-1.0.106")
    version = looked(FrontendVersion("prod-fe-1.0.94", pages, ttl_s=600))
    assert version.current() == "prod-fe-1.0.94"
    assert version.refreshed() == "prod-fe-1.0.106"


def test_refreshed_waits_only_a_few_seconds_for_a_slow_page():
    release = threading.Event()
    version = FrontendVersion("prod-fe-1.0.94", lambda: release.wait(10) and "prod-fe-1.0.99", ttl_s=600)
    started = time.monotonic()
    assert version.refreshed(timeout_s=0.2) == "prod-fe-1.0.94"  # not done yet: the old one
    assert time.monotonic() - started < 5
    release.set()
    version.join(5)
    assert version.current() == "prod-fe-1.0.99"


def test_stale_value_is_served_while_a_background_refresh_runs():
    release = threading.Event()
    pages = Pages("prod-fe-1.0.98", "prod-fe-1.1.35")

    def fetch():
        if pages.calls >= 1:
            release.wait(5)
        return pages()

    version = looked(FrontendVersion("prod-fe-1.0.94", fetch, ttl_s=0.05))
    assert version.current() == "prod-fe-1.0.98"
    time.sleep(0.1)
    started = time.monotonic()
    assert version.current() == "prod-fe-1.0.98"  # stale, but not waited for
    assert version.current() == "prod-fe-1.0.98"
    assert time.monotonic() - started < 1
    release.set()
    deadline = time.monotonic() + 5
    while version.current() != "prod-fe-1.1.35" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert version.current() == "prod-fe-1.1.35"
    assert pages.calls == 2  # one background refresh, not one per stale request


def test_the_guest_reserve_grows_when_demand_outruns_it():
    gate = threading.Event()
    gate.set()
    fetch = CountingFetch()

    def fetch_ahead_waits_at_the_gate():
        if threading.current_thread().name == "guest-token":
            gate.wait(5)
        return fetch()

    tokens = GuestTokens(fetch_ahead_waits_at_the_gate, ahead=2, most=8)
    tokens.acquire()
    assert wait_for(lambda: len(tokens._ready) == 2)
    gate.clear()  # refills stall: the next acquires drain the reserve
    handed = [tokens.acquire() for _ in range(3)]  # two from the reserve, then a miss
    gate.set()
    assert wait_for(lambda: len(tokens._ready) == 4)  # the reserve doubled to 4
    assert len(set(handed)) == 3 and len(set(fetch.issued)) == len(fetch.issued)


@pytest.mark.parametrize("length", [0, 1, 2, 3, 65535, 65536, 65537, 3 * 65536 + 1])
def test_hmac_signature_fed_in_pieces_equals_the_fakes(length):
    """The prompt is base64-encoded piece by piece; the fake computes it whole."""
    from fake_zai import hmac_signature as fakes

    prompt = "".join("ab你🙂"[(i * 7) % 4] for i in range(length))
    ours = hmac_signature("secret", timestamp_ms=1700000000000, request_id="r-1", user_id="u-1", prompt=prompt)
    assert ours == fakes("secret", 1700000000000, "r-1", "u-1", prompt)


@pytest.mark.parametrize("prompt", ["short", "x" * 70000, "你好🙂\\\"\n" * 20000])
def test_a_long_prompt_encoded_once_gives_the_same_body(prompt):
    import json

    from zto.web_request import encode_body

    body = {"stream": True, "messages": [{"role": "system", "content": "be brief"},
                                         {"role": "user", "content": prompt}], "signature_prompt": prompt,
            "params": {"temperature": 0.5}}
    assert encode_body(body, prompt) == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
