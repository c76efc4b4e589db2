"""``OfficialUpstream`` against the fake official API on a loopback port: answers,
the body zto sends, key rotation and cool-down, errors before and inside a stream,
connection reuse and closing a stream at once."""

from __future__ import annotations

import time

import pytest

from fake_official import BUSINESS_ERRORS, DEFAULT_KEYS, USAGE
from zto.chat_request import build_chat_request
from zto.errors import UpstreamRejected, UpstreamUnavailable
from zto.http import build_session
from zto.metrics import Metrics
from zto.official import PROBE_INTERVAL_S, OfficialUpstream
from zto.settings import load_settings

KEY, OTHER_KEY = DEFAULT_KEYS
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@pytest.fixture
def make_upstream(official, tmp_path):
    made = []

    def make(keys=DEFAULT_KEYS, **overrides):
        settings = load_settings({}, env_dir=tmp_path, zai_api_keys=tuple(keys), api_base=official.base_url,
                                 upstreams=("api",), **overrides)
        upstream = OfficialUpstream(settings, build_session(settings), Metrics())
        made.append(upstream)
        return upstream

    yield make
    for upstream in made:
        upstream.session.close()


def chat(upstream, prompt="hi", **body):
    body.setdefault("messages", [{"role": "user", "content": prompt}])
    return build_chat_request(body, settings=upstream.settings)


def read(answer):
    try:
        pieces = list(answer.pieces())
    finally:
        answer.close()
    return ("".join(p.reasoning for p in pieces), "".join(p.content for p in pieces),
            [c for p in pieces for c in p.tool_calls])


def test_a_streamed_answer_with_thinking(make_upstream, official):
    upstream = make_upstream()
    answer = upstream.start(chat(upstream, model="GLM-4.6-Thinking", stream=True))
    assert answer.upstream == "api" and not answer.fell_back
    assert read(answer) == ("Let me think about it.", "Hello from glm-4.6!", [])
    assert answer.usage == USAGE and answer.finish_reason == "stop"
    answer.close()  # again: closing is idempotent
    assert 'token_kind="api_key"} 0.0' in upstream.metrics.render().decode()
    sent = official.requests[-1].body
    assert sent["model"] == "glm-4.6" and sent["thinking"] == {"type": "enabled"} and sent["stream"] is True


def test_thinking_off_is_said_so(make_upstream, official):
    upstream = make_upstream()
    assert read(upstream.start(chat(upstream, model="glm-4.5-flash")))[:2] == ("", "Hello from glm-4.5-flash!")
    assert official.requests[-1].body["thinking"] == {"type": "disabled"}


def test_tool_calls_stream_by_index_with_tool_stream(make_upstream, official):
    upstream = make_upstream()
    answer = upstream.start(chat(upstream, tools=TOOLS, stream=True))
    _, content, calls = read(answer)
    assert official.requests[-1].body["tool_stream"] is True
    # Deltas that arrived in one read may leave merged: the first names the call, the pieces add up.
    assert calls[0]["function"]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    assert "".join(c["function"].get("arguments", "") for c in calls) == '{"city": "Paris", "unit": "celsius"}'
    assert answer.finish_reason == "tool_calls" and content == ""


def test_finish_reason_length_passes_through(make_upstream):
    upstream = make_upstream()
    answer = upstream.start(chat(upstream, max_tokens=1))
    assert read(answer)[1] == "Hello " and answer.finish_reason == "length"


def test_a_refused_key_is_retried_with_the_next_and_set_aside(make_upstream, official):
    upstream = make_upstream()
    official.fail_key(KEY, "1000")
    assert read(upstream.start(chat(upstream)))[1] == "Hello from glm-4.6!"
    assert [r.key for r in official.requests] == [KEY, OTHER_KEY]
    for _ in range(3):
        read(upstream.start(chat(upstream)))
    assert [r.key for r in official.requests[2:]] == [OTHER_KEY] * 3  # the refused key rests
    assert upstream.keys.set_aside_now()[0]["reason"] == "upstream_unauthorized"
    metrics = upstream.metrics.render().decode()
    assert f'zto_api_key_set_aside_seconds{{key="{KEY[:6]}…({len(KEY)} chars)",reason="upstream_unauthorized"}} 600.0' in metrics
    assert KEY not in metrics and OTHER_KEY[:6] not in metrics


@pytest.mark.parametrize("code", ["1001", "1002", "1003", "1113", "1302", "1303", "1304", "1305"])
def test_codes_another_key_may_fix_are_retried_once(make_upstream, official, code):
    upstream = make_upstream()
    official.fail_next(code)
    assert read(upstream.start(chat(upstream)))[1] == "Hello from glm-4.6!"
    assert [r.key for r in official.requests] == [KEY, OTHER_KEY]
    set_aside = bool(upstream.keys.set_aside_now())
    assert set_aside == (code not in ("1302", "1303", "1304", "1305"))


def test_only_one_retry(make_upstream, official):
    upstream = make_upstream()
    official.fail_next("1302", 3)
    with pytest.raises(UpstreamRejected) as refused:
        upstream.start(chat(upstream))
    assert refused.value.status == 429 and refused.value.headers == {"Retry-After": "1"}
    assert len(official.requests) == 2


@pytest.mark.parametrize("code", ["1211", "1214", "1261", "1301", "500"])
def test_codes_a_key_cannot_fix_are_not_retried(make_upstream, official, code):
    upstream = make_upstream()
    official.fail_next(code)
    with pytest.raises(UpstreamRejected):
        upstream.start(chat(upstream))
    assert len(official.requests) == 1 and not upstream.keys.set_aside_now()


def test_with_every_key_set_aside_zai_is_not_asked(make_upstream, official):
    upstream = make_upstream(keys=(KEY,))
    official.fail_key(KEY, "1113")
    for _ in range(3):
        with pytest.raises(UpstreamRejected) as refused:
            upstream.start(chat(upstream))
        assert refused.value.code == "insufficient_quota"
    assert len(official.requests) == 1


def test_a_key_comes_back_after_the_cooldown(make_upstream, official):
    upstream = make_upstream(keys=(KEY,), api_key_cooldown_s=0.2)
    official.fail_key(KEY, "1003")
    with pytest.raises(UpstreamRejected):
        upstream.start(chat(upstream))
    official.fail_key(KEY, None)
    with pytest.raises(UpstreamRejected):  # still set aside: Z.ai is not asked
        upstream.start(chat(upstream))
    assert len(official.requests) == 1
    time.sleep(0.3)
    assert read(upstream.start(chat(upstream)))[1] == "Hello from glm-4.6!"


def test_an_error_line_first_is_an_http_error_and_retried(make_upstream, official):
    upstream = make_upstream()
    official.fail_next("1305", where="start")
    assert read(upstream.start(chat(upstream)))[1] == "Hello from glm-4.6!"
    official.fail_next("1301", where="start")
    with pytest.raises(UpstreamRejected) as refused:
        upstream.start(chat(upstream))
    assert (refused.value.status, refused.value.code) == (400, "content_filter")


def test_an_error_line_mid_stream_fails_the_pieces(make_upstream, official):
    upstream = make_upstream()
    official.fail_next("500", where="middle")
    answer = upstream.start(chat(upstream, stream=True))
    with pytest.raises(UpstreamRejected) as failed:
        read(answer)
    assert failed.value.status == 502 and BUSINESS_ERRORS["500"][1] in failed.value.message


def test_a_cut_connection_fails_the_pieces(make_upstream):
    upstream = make_upstream()
    answer = upstream.start(chat(upstream, "hi transport:cut transport:repeat=5"))
    with pytest.raises(UpstreamUnavailable):
        read(answer)


def test_unreachable_base_names_zai_api_base(make_upstream, tmp_path):
    settings = load_settings({}, env_dir=tmp_path, zai_api_keys=(KEY,), api_base="http://127.0.0.1:9/api/paas/v4")
    upstream = OfficialUpstream(settings, build_session(settings), Metrics())
    with pytest.raises(UpstreamUnavailable) as failed:
        upstream.start(chat(upstream))
    assert "ZAI_API_BASE" in failed.value.message


def test_connections_are_reused(make_upstream, official):
    upstream = make_upstream()
    for _ in range(5):
        read(upstream.start(chat(upstream)))
    assert official.stats()["connections_opened"] == 1


def test_closing_an_answer_closes_the_stream_at_once(make_upstream, official):
    upstream = make_upstream()
    answer = upstream.start(chat(upstream, "hi transport:delay=0.05 transport:repeat=400", stream=True))
    next(answer.pieces())
    assert official.stats()["streams_open"] == 1
    answer.close()
    assert official.wait_for("streams_open", 0)
    assert official.requests[-1].outcome == "aborted"


def test_keys_in_use_and_errors_are_counted(make_upstream, official):
    upstream = make_upstream()
    answer = upstream.start(chat(upstream))
    metrics = upstream.metrics.render().decode()
    assert 'zto_upstream_tokens_in_use{token_kind="api_key"} 1.0' in metrics
    answer.close()
    official.fail_next("1302")
    read(upstream.start(chat(upstream)))
    metrics = upstream.metrics.render().decode()
    assert 'zto_upstream_tokens_in_use{token_kind="api_key"} 0.0' in metrics
    assert 'zto_upstream_errors_total{kind="rate_limit"} 1.0' in metrics
    official.fail_next("1113", 2)
    with pytest.raises(UpstreamRejected):
        upstream.start(chat(upstream))
    assert 'zto_upstream_errors_total{kind="balance"} 2.0' in upstream.metrics.render().decode()


def test_a_single_key_refused_once_is_probed_and_back_within_the_probe_interval(make_upstream, official):
    """One 1113 must not mean API_KEY_COOLDOWN_S of outage once the account is topped up."""
    upstream = make_upstream(keys=(KEY,))
    now = [1000.0]
    upstream.keys._clock = lambda: now[0]
    official.fail_key(KEY, "1113")
    with pytest.raises(UpstreamRejected):
        upstream.start(chat(upstream))
    official.fail_key(KEY, None)  # topped up
    with pytest.raises(UpstreamRejected) as refused:  # within the interval: fails at once
        upstream.start(chat(upstream))
    assert "comes back in 600 s" in refused.value.message and len(official.requests) == 1
    now[0] += PROBE_INTERVAL_S
    assert read(upstream.start(chat(upstream)))[1] == "Hello from glm-4.6!"  # the probe
    assert read(upstream.start(chat(upstream)))[1] == "Hello from glm-4.6!"  # back in use
    assert upstream.keys.set_aside_now() == []
