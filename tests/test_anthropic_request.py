"""Unit tests of zto/anthropic_request.py: Anthropic Messages requests as OpenAI bodies."""

from __future__ import annotations

import pytest

from zto.anthropic_request import estimate_tokens, resolve_model, stop_sequences, thinking_omitted, to_openai_body
from zto.errors import InvalidRequest

MAP = (("claude-haiku*", "GLM-4.5-Air"), ("claude-opus-4-1", "GLM-5"))


def translate(**body):
    body.setdefault("model", "claude-sonnet-4-5")
    body.setdefault("max_tokens", 1024)
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return to_openai_body(body, model_map=MAP, default_model="GLM-4.6")


@pytest.mark.parametrize(("requested", "model"), [
    ("claude-sonnet-4-5-20250929", "GLM-4.6"),
    ("claude-sonnet-4-5[1m]", "GLM-4.6"),
    ("claude-3-5-haiku-20241022", "GLM-4.6"),
    ("claude-haiku-4-5-20251001", "GLM-4.5-Air"),
    ("Claude-Haiku-4-5[1m]", "GLM-4.5-Air"),
    ("claude-opus-4-1", "GLM-5"),
    ("claude-opus-4-1-20250805", "GLM-4.6"),
    ("GLM-4.5-Flash", "GLM-4.5-Flash"),
    ("glm-4.6v", "glm-4.6v"),
])
def test_models(requested, model):
    assert resolve_model(requested, MAP, "GLM-4.6") == model


def test_empty_map_sends_every_claude_name_to_model_name():
    assert resolve_model("claude-opus-4-1", (), "GLM-4.5") == "GLM-4.5"
    assert resolve_model("GLM-4.6-Thinking", (), "GLM-4.5") == "GLM-4.6-Thinking"


def test_minimal_request():
    assert translate() == {"model": "GLM-4.6", "messages": [{"role": "user", "content": "hi"}],
                           "max_tokens": 1024, "stream": False}


@pytest.mark.parametrize(("changes", "param"), [
    ({"max_tokens": None}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": True}, "max_tokens"),
    ({"model": ""}, "model"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages"),
    ({"messages": [{"role": "system", "content": [{"type": "image"}]}]}, "messages"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]}, "messages"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                                      "input": [1]}]}]}, "messages"),
    ({"system": [{"type": "image"}]}, "system"),
    ({"system": 3}, "system"),
    ({"tools": {"name": "f"}}, "tools"),
    ({"tools": [{"name": "f"}]}, "tools"),
    ({"tool_choice": {"type": "sometimes"}}, "tool_choice"),
    ({"tool_choice": {"type": "tool"}}, "tool_choice"),
    ({"thinking": {"type": "maybe"}}, "thinking"),
    ({"stop_sequences": "END"}, "stop_sequences"),
    ({"stop_sequences": [""]}, "stop_sequences"),
])
def test_invalid_requests_name_the_parameter(changes, param):
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(InvalidRequest) as caught:
        to_openai_body(body, model_map=(), default_model="GLM-4.6")
    assert caught.value.param == param and caught.value.status == 400


def test_body_must_be_an_object():
    with pytest.raises(InvalidRequest):
        to_openai_body([1], model_map=(), default_model="GLM-4.6")


def test_system_blocks_with_cache_control_become_one_system_message():
    body = translate(system=[
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}])
    assert body["messages"][0] == {"role": "system", "content": "You are Claude Code.\n\nBe brief."}
    assert translate(system="Plain.")["messages"][0] == {"role": "system", "content": "Plain."}


def test_system_turns_inside_messages_stay_in_place():
    """Claude Code sends its environment as a system turn after the user's (2.1, 2026)."""
    messages = [{"role": "user", "content": [{"type": "text", "text": "say hello"}]},
                {"role": "system", "content": [{"type": "text", "text": "# Environment", "cache_control": {"type": "ephemeral"}}]},
                {"role": "assistant", "content": "Hello."},
                {"role": "system", "content": "Be brief."}]
    out = translate(system="Top.", messages=messages)["messages"]
    assert out == [{"role": "system", "content": "Top."}, {"role": "user", "content": "say hello"},
                   {"role": "system", "content": "# Environment"}, {"role": "assistant", "content": "Hello."},
                   {"role": "system", "content": "Be brief."}]


def test_thinking_display_omitted():
    assert thinking_omitted({"thinking": {"type": "adaptive", "display": "omitted"}})
    assert not thinking_omitted({"thinking": {"type": "adaptive", "display": "summarized"}})
    assert not thinking_omitted({})


def test_images_become_image_url_parts():
    content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0"}},
               {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
               {"type": "text", "text": "What are these?", "cache_control": {"type": "ephemeral"}}]
    message = translate(messages=[{"role": "user", "content": content}])["messages"][0]
    assert message == {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What are these?"}]}


def test_text_blocks_join_into_a_string_and_text_documents_are_text():
    content = [{"type": "text", "text": "a"},
               {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}}]
    assert translate(messages=[{"role": "user", "content": content}])["messages"][0]["content"] == "a\ndoc"


def test_tool_round_trip_history():
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should call the tool.", "signature": "sig"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
             "content": [{"type": "text", "text": "service down"},
                         {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]},
            {"type": "text", "text": "Go on."}]},
    ]
    out = translate(messages=messages)["messages"]
    assert out[1] == {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
        {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}]}
    assert out[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}
    assert out[3] == {"role": "tool", "tool_call_id": "toolu_2", "content": "[tool error] service down"}
    assert out[4] == {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}, {"type": "text", "text": "Go on."}]}
    assert len(out) == 5


def test_assistant_turn_of_only_tool_use_has_no_content_and_only_thinking_is_dropped():
    messages = [{"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
                {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"}]},
                {"role": "user", "content": "b"}]
    out = translate(messages=messages)["messages"]
    assert out[1]["content"] is None and out[1]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert out[2] == {"role": "tool", "tool_call_id": "t", "content": "(no output)"}
    assert [m["role"] for m in out] == ["user", "assistant", "tool", "user"]


def test_tools_and_tool_choice():
    schema = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    tools = [{"name": "Read", "description": "Read a file", "input_schema": schema},
             {"name": "Plain", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
             {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]
    body = translate(tools=tools, tool_choice={"type": "any", "disable_parallel_tool_use": True})
    assert body["tools"] == [
        {"type": "function", "function": {"name": "Read", "parameters": schema, "description": "Read a file"}},
        {"type": "function", "function": {"name": "Plain", "parameters": {"type": "object"}}}]
    assert body["tool_choice"] == "required" and "parallel_tool_calls" not in body
    assert translate(tool_choice={"type": "auto"})["tool_choice"] == "auto"
    assert translate(tool_choice={"type": "none"})["tool_choice"] == "none"
    assert translate(tool_choice={"type": "tool", "name": "Read"})["tool_choice"] == {
        "type": "function", "function": {"name": "Read"}}


@pytest.mark.parametrize(("thinking", "enabled"), [
    ({"type": "enabled", "budget_tokens": 2048}, True), ({"type": "adaptive"}, True), ({"type": "disabled"}, False)])
def test_thinking_switch(thinking, enabled):
    assert translate(thinking=thinking)["enable_thinking"] is enabled
    assert "enable_thinking" not in translate()


def test_sampling_parameters_pass_and_the_rest_is_ignored():
    body = translate(temperature=0.2, top_p=0.9, top_k=40, metadata={"user_id": "u"}, stream=True,
                     stop_sequences=["END"])
    assert body["temperature"] == 0.2 and body["top_p"] == 0.9 and body["stream"] is True
    assert not {"top_k", "metadata", "stop", "stop_sequences"} & body.keys()
    assert stop_sequences({"stop_sequences": ["END", "\n\nHuman:"]}) == ("END", "\n\nHuman:")


def test_estimate_tokens():
    short = estimate_tokens({"messages": [{"role": "user", "content": "hi"}]})
    long = estimate_tokens({"system": "x" * 4000, "messages": [{"role": "user", "content": "hi"}]})
    assert 1 <= short < 20 and 1000 <= long < 1100
    assert estimate_tokens({"messages": [{"role": "user", "content": "中" * 100}]}) >= 100
    assert estimate_tokens({"messages": [], "tools": [{"input_schema": {"d": "y" * 400}}]}) >= 100
