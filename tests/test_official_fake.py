"""Self-test of the fake official API (tests/fake_official.py), with plain requests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

import fake_official
from fake_official import BUSINESS_ERRORS, DEFAULT_KEYS, USAGE

KEY, OTHER_KEY = DEFAULT_KEYS


def post(fake, body, key=KEY, stream=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if stream is not None:
        body = {**body, "stream": stream}
    return requests.post(fake.base_url + "/chat/completions", json=body, headers=headers, timeout=10)


def events_of(response) -> list:
    """The data payloads of an SSE body: dicts, and the string "[DONE]"."""
    assert response.headers["Content-Type"].startswith("text/event-stream")
    payloads = [line[len("data: "):] for line in response.text.split("\n") if line.startswith("data: ")]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


def hello(model="glm-4.6", **extra):
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def deltas(events, field):
    return "".join(e["choices"][0]["delta"].get(field) or "" for e in events if isinstance(e, dict) and e.get("choices"))


def test_stream_with_thinking_sends_reasoning_first_then_usage_and_done(official):
    events = events_of(post(official, hello(thinking={"type": "enabled"}), stream=True))
    assert events[-1] == "[DONE]"
    assert events[0]["choices"][0]["delta"]["reasoning_content"] == fake_official.REASONING[0]
    assert "object" not in events[0]  # Z.ai's chunks have none
    assert deltas(events, "reasoning_content") == "Let me think about it."
    assert deltas(events, "content") == "Hello from glm-4.6!"
    last = events[-2]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["usage"] == USAGE and last["usage"]["prompt_tokens_details"]["cached_tokens"] == 4


def test_thinking_disabled_has_no_reasoning_and_left_out_means_enabled(official):
    assert deltas(events_of(post(official, hello(thinking={"type": "disabled"}), stream=True)), "reasoning_content") == ""
    assert deltas(events_of(post(official, hello(), stream=True)), "reasoning_content") != ""


def test_whole_answer_has_the_documented_shape(official):
    body = post(official, hello(thinking={"type": "enabled"}), stream=False).json()
    assert set(body) == {"id", "request_id", "created", "model", "choices", "usage"}
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant", "content": "Hello from glm-4.6!", "reasoning_content": "Let me think about it."}
    assert body["usage"] == USAGE


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def test_tool_stream_sends_the_call_head_then_argument_pieces(official):
    events = events_of(post(official, hello(tools=TOOLS, tool_stream=True, thinking={"type": "disabled"}), stream=True))
    calls = [e["choices"][0]["delta"]["tool_calls"][0] for e in events[:-1] if "tool_calls" in e["choices"][0]["delta"]]
    assert calls[0]["id"].startswith("call_") and calls[0]["type"] == "function"
    assert calls[0]["function"] == {"name": "get_weather", "arguments": ""}
    assert len(calls) > 2 and all(set(c) == {"index", "function"} and c["index"] == 0 for c in calls[1:])
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Paris", "unit": "celsius"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_call_without_tool_stream_arrives_whole_and_in_whole_answers(official):
    events = events_of(post(official, hello(tools=TOOLS), stream=True))
    calls = [e["choices"][0]["delta"]["tool_calls"] for e in events[:-1] if "tool_calls" in e["choices"][0]["delta"]]
    assert len(calls) == 1 and calls[0][0]["function"]["arguments"] == fake_official.TOOL_ARGUMENTS
    whole = post(official, hello(tools=TOOLS), stream=False).json()["choices"][0]
    assert whole["finish_reason"] == "tool_calls"
    assert whole["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    none = post(official, hello(tools=TOOLS, tool_choice="none"), stream=False).json()["choices"][0]
    assert none["finish_reason"] == "stop" and "tool_calls" not in none["message"]


def test_a_tool_message_is_answered_and_must_name_an_earlier_call(official):
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    messages = [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "22 degrees"}]
    answer = post(official, {"model": "glm-4.6", "messages": messages, "tools": TOOLS}, stream=False).json()
    assert answer["choices"][0]["message"]["content"] == "The tool said: 22 degrees"
    messages[2]["tool_call_id"] = "call_2"
    refused = post(official, {"model": "glm-4.6", "messages": messages}, stream=False)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "1214"


def test_image_parts_only_for_the_vision_model(official):
    content = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    body = {"messages": [{"role": "user", "content": content}]}
    seen = post(official, {"model": "glm-4.6v", **body}, stream=False).json()
    assert seen["choices"][0]["message"]["content"].startswith("I see 1 image")
    refused = post(official, {"model": "glm-4.6", **body}, stream=False)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "1214"


def test_keys_are_checked(official):
    assert post(official, hello(), key=None).json()["error"]["code"] == "1001"
    assert post(official, hello(), key="not-a-key").json()["error"]["code"] == "1002"
    unknown = post(official, hello(), key="f" * 32 + ".ABCDEFGHIJKLMNOP")
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "1000"
    assert post(official, hello(), key=OTHER_KEY).status_code == 200
    assert [r.key for r in official.requests][-1] == OTHER_KEY


def test_unknown_model_is_1211(official):
    refused = post(official, hello(model="GLM-4.6"))
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "1211"


@pytest.mark.parametrize("code", sorted(BUSINESS_ERRORS))
def test_every_business_code_can_be_injected_with_its_status(official, code):
    official.fail_next(code)
    refused = post(official, hello(), stream=True)
    assert refused.status_code == BUSINESS_ERRORS[code][0]
    assert refused.json()["error"]["code"] == code
    assert post(official, hello(), stream=True).status_code == 200  # once only


def test_per_key_failures_last_until_cleared(official):
    official.fail_key(KEY, "1113")
    for _ in range(2):
        assert post(official, hello()).json()["error"]["code"] == "1113"
    assert post(official, hello(), key=OTHER_KEY).status_code == 200
    official.fail_key(KEY, None)
    assert post(official, hello()).status_code == 200


def test_errors_inside_a_stream(official):
    official.fail_next("1301", where="start")
    assert events_of(post(official, hello(), stream=True)) == [fake_official.error_body("1301")]
    official.fail_next("500", where="middle")
    events = events_of(post(official, hello(thinking={"type": "disabled"}), stream=True))
    assert events[-1] == fake_official.error_body("500") and "[DONE]" not in events
    assert deltas(events[:-1], "content")  # some text came first
    official.fail_next("1305", where="middle")
    assert post(official, hello(), stream=False).status_code == 429  # a whole answer fails as HTTP


def test_max_tokens_cuts_the_answer_with_finish_reason_length(official):
    body = post(official, hello(max_tokens=1, thinking={"type": "disabled"}), stream=False).json()
    assert body["choices"][0] == {"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "Hello "}}


def test_a_cut_connection_ends_the_body_early(official):
    body = hello(messages=[{"role": "user", "content": "hi transport:cut"}])
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        post(official, body, stream=True)
    assert official.requests[-1].outcome == "cut"


def test_counters_of_connections_and_open_streams(official):
    with requests.Session() as session:
        for _ in range(3):
            session.post(official.base_url + "/chat/completions", json=hello(stream=True),
                         headers={"Authorization": f"Bearer {KEY}"}, timeout=10).close()
    assert official.stats()["connections_opened"] == 1  # kept alive and reused
    slow = hello(stream=True, messages=[{"role": "user", "content": "hi transport:delay=0.05 transport:repeat=200"}])
    response = requests.post(official.base_url + "/chat/completions", json=slow, headers={"Authorization": f"Bearer {KEY}"},
                             stream=True, timeout=10)
    next(response.iter_content(64))
    assert official.stats()["streams_open"] == 1
    response.close()
    assert official.wait_for("streams_open", 0)
    assert official.stats()["streams_aborted"] == 1 and official.requests[-1].outcome == "aborted"


def test_requests_are_recorded_with_body_and_headers(official):
    post(official, hello(temperature=0.3, thinking={"type": "disabled"}), stream=False)
    rec = official.requests[-1]
    assert rec.body["temperature"] == 0.3 and rec.headers["authorization"] == f"Bearer {KEY}"
    assert rec.status == 200 and rec.outcome == "answered"


def test_runs_as_its_own_process():
    script = Path(fake_official.__file__)
    process = subprocess.Popen([sys.executable, str(script), "--port", "0", "--base-path", "/api/coding/paas/v4"],
                               stdout=subprocess.PIPE, text=True)
    try:
        base = process.stdout.readline().strip()
        assert base.endswith("/api/coding/paas/v4")
        answer = requests.post(base + "/chat/completions", json=hello(), headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        assert answer.status_code == 200
        assert requests.get(base.split("/api/")[0] + "/_fake/stats", timeout=10).json()["completions"] == 1
    finally:
        process.terminate()
        process.wait(10)
