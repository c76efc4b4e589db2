"""parse_chat_request (OpenAI requests in, the upstream-neutral ChatRequest out) and the
web chat's view of it: resolve_model and web_messages."""

from __future__ import annotations

import json

import pytest

import fake_zai
from zto.chat_request import PROMPT_PART_SEPARATOR, parse_chat_request
from zto.errors import InvalidRequest
from zto.settings import load_settings
from zto.web_request import resolve_model, web_messages

MODELS = {"GLM-4.6": "GLM-4-6-API-V1", "GLM-4.5": "0727-360B-API", "GLM-4.5-Air": "0727-106B-API"}
HI = [{"role": "user", "content": "hi"}]


def parse(body, *, default_stream=False, default_thinking=False, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    settings = load_settings({}, env_dir="/nonexistent", model_map=tuple(MODELS.items()), model_name="GLM-4.6",
                             default_stream=default_stream, enable_thinking=default_thinking)
    return parse_chat_request(data, settings=settings)


def web(chat) -> tuple[list[dict], str]:
    """(the messages the web chat gets, the prompt it signs)."""
    return web_messages(chat.messages)


def rejected(body=None, raw: bytes | None = None) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parse(body, raw=raw)
    error = info.value
    assert error.status == 400
    assert error.to_dict()["error"]["type"] == "invalid_request_error"
    return error


# ---- malformed requests -----------------------------------------------------------

@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"\xff\xfe{}", b"{'messages': []}"])
def test_body_not_json(raw):
    error = rejected(raw=raw)
    assert "JSON" in error.message and error.param is None


@pytest.mark.parametrize("raw", [b"[]", b"null", b"42", b'"text"'])
def test_body_not_an_object(raw):
    error = rejected(raw=raw)
    assert "object" in error.message and error.param is None


@pytest.mark.parametrize("body", [
    {}, {"messages": None}, {"messages": []}, {"messages": "hi"}, {"messages": {"role": "user"}},
])
def test_messages_missing_empty_or_not_a_list(body):
    assert rejected(body).param == "messages"


@pytest.mark.parametrize(("messages", "fragment"), [
    (["hi"], "messages[0]"),
    ([None], "messages[0]"),
    ([{"role": "user", "content": "a"}, ["x"]], "messages[1]"),
    ([{"role": "robot", "content": "a"}], "role"),
    ([{"content": "a"}], "role"),
    ([{"role": "user"}], "content"),
    ([{"role": "user", "content": None}], "content"),
    ([{"role": "system"}, {"role": "user", "content": "a"}], "content"),
    ([{"role": "developer"}, {"role": "user", "content": "a"}], "content"),
    ([{"role": "tool", "tool_call_id": "c1"}], "content"),
    ([{"role": "user", "content": 42}], "content"),
    ([{"role": "user", "content": {"type": "text", "text": "a"}}], "content"),
    ([{"role": "user", "content": ["a"]}], "content[0]"),
    ([{"role": "user", "content": [{"type": "audio", "audio": "x"}]}], "content[0]"),
    ([{"role": "user", "content": [{"text": "a"}]}], "content[0]"),
    ([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": 5}]}], "content[1]"),
    ([{"role": "user", "content": [{"type": "text"}]}], "content[0]"),
    ([{"role": "assistant", "content": [1]}, {"role": "user", "content": "a"}], "content[0]"),
    ([{"role": "assistant", "tool_calls": "call"}, {"role": "user", "content": "a"}], "tool_calls"),
    ([{"role": "assistant", "tool_calls": ["call"]}, {"role": "user", "content": "a"}], "tool_calls[0]"),
    ([{"role": "assistant", "tool_calls": [{"id": "c", "function": "f"}]}, {"role": "user", "content": "a"}],
     "tool_calls[0]"),
])
def test_bad_messages(messages, fragment):
    error = rejected({"messages": messages})
    assert error.param == "messages"
    assert fragment in error.message


@pytest.mark.parametrize(("name", "value"), [
    ("stream", "true"), ("stream", 1), ("stream", []),
    ("enable_thinking", "yes"), ("enable_thinking", 0),
    ("temperature", "0.5"), ("temperature", True), ("temperature", -0.1), ("temperature", 2.5), ("temperature", []),
    ("top_p", "1"), ("top_p", 1.5), ("top_p", -1), ("top_p", False),
    ("max_tokens", "10"), ("max_tokens", 0), ("max_tokens", -5), ("max_tokens", 1.5), ("max_tokens", True),
    ("max_completion_tokens", "10"), ("max_completion_tokens", 0), ("max_completion_tokens", 2.0),
    ("stream_options", "include_usage"), ("stream_options", True), ("stream_options", []),
    ("model", 4), ("model", ""), ("model", "  "), ("model", None),
])
def test_wrong_parameter_types(name, value):
    error = rejected({"messages": HI, name: value})
    assert error.param == name
    assert name in error.message


def test_non_finite_temperature_rejected():
    assert rejected(raw=b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}').param == "temperature"
    assert rejected(raw=b'{"messages": [{"role": "user", "content": "hi"}], "top_p": Infinity}').param == "top_p"


def test_include_usage_must_be_a_bool():
    error = rejected({"messages": HI, "stream": True, "stream_options": {"include_usage": "yes"}})
    assert "include_usage" in error.message and "include_usage" in error.param


def test_enable_thinking_type_checked_even_with_thinking_model():
    assert rejected({"messages": HI, "model": "GLM-4.6-Thinking", "enable_thinking": "no"}).param == "enable_thinking"


# ---- accepted requests ---------------------------------------------------------------

def test_minimal_request_gets_defaults():
    chat = parse({"messages": HI})
    assert chat.model == "GLM-4.6"
    assert resolve_model(chat.model, MODELS, "GLM-4.6")[0] == "GLM-4-6-API-V1"
    assert chat.messages == HI
    assert web(chat) == (HI, "hi")
    assert chat.stream is False and chat.include_usage is False
    assert chat.thinking is False and chat.web_search is False
    assert chat.params == {} and chat.tools == () and chat.tool_choice is None and chat.has_images is False


def test_defaults_come_from_the_settings():
    chat = parse({"messages": HI}, default_stream=True, default_thinking=True)
    assert chat.stream is True and chat.thinking is True


def test_unknown_fields_are_ignored():
    chat = parse({"messages": [{"role": "user", "content": "hi", "name": "bob", "extra": 1}],
                  "user": "u1", "n": 1, "seed": 3, "tools": [], "tool_choice": "auto", "response_format": {},
                  "frequency_penalty": 0, "logit_bias": {}, "whatever": {"x": [1]}, "stream": None})
    assert web(chat)[1] == "hi" and chat.stream is False


def test_parameters_are_passed_on():
    chat = parse({"messages": HI, "temperature": 0.7, "top_p": 1, "max_tokens": 100, "stream": True,
                  "stream_options": {"include_usage": True}})
    assert chat.params == {"temperature": 0.7, "top_p": 1, "max_tokens": 100}
    assert chat.stream is True and chat.include_usage is True


@pytest.mark.parametrize(("temperature", "top_p"), [(0, 0), (2, 1), (1.0, 0.5)])
def test_parameter_bounds_are_inclusive(temperature, top_p):
    assert parse({"messages": HI, "temperature": temperature, "top_p": top_p}).params == {
        "temperature": temperature, "top_p": top_p}


def test_max_completion_tokens_accepted():
    assert parse({"messages": HI, "max_completion_tokens": 64}).params == {"max_tokens": 64}


def test_max_tokens_wins_over_max_completion_tokens():
    assert parse({"messages": HI, "max_tokens": 10, "max_completion_tokens": 64}).params == {"max_tokens": 10}
    assert parse({"messages": HI, "max_tokens": None, "max_completion_tokens": 64}).params == {"max_tokens": 64}


def test_content_array_text_parts_joined_like_the_fake_upstream():
    content = [{"type": "text", "text": "first"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
               {"type": "text", "text": "second"}]
    chat = parse({"messages": [{"role": "user", "content": content}]})
    messages, prompt = web(chat)
    assert PROMPT_PART_SEPARATOR == fake_zai.PROMPT_JOIN
    assert prompt == "first" + fake_zai.PROMPT_JOIN + "second"
    assert prompt == fake_zai.last_user_text(messages)
    assert chat.messages == messages == [{"role": "user", "content": content}]
    assert chat.has_images


def test_prompt_is_the_last_user_message():
    chat = parse({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "one"},
                               {"role": "assistant", "content": "ok"}, {"role": "user", "content": "two"},
                               {"role": "assistant", "content": "partial"}]})
    assert web(chat)[1] == "two"


def test_an_assistant_turn_alone_is_a_valid_request():
    """OpenAI accepts it (the official API continues the turn); the web chat, which
    signs the last user message, refuses it itself (test_upstreams)."""
    assert parse({"messages": [{"role": "assistant", "content": "Once upon a time"}]}).messages == [
        {"role": "assistant", "content": "Once upon a time"}]


def test_absurdly_deep_nesting_is_a_400_not_a_crash():
    rejected(raw=b'{"messages": ' + b"[" * 100000 + b"]" * 100000 + b"}")


@pytest.mark.parametrize("body, param", [
    ({"messages": [{"role": "user", "content": "bad \ud800 text"}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]}, "messages"),
    ({"model": "GLM\ud800", "messages": [{"role": "user", "content": "hi"}]}, "model"),
])
def test_unpaired_surrogates_are_rejected(body, param):
    raw = json.dumps(body).replace("\\\\u", "\\u").encode()  # keep the escape a JSON escape
    assert b"\\ud" in raw or b"\\udf" in raw
    assert rejected(raw=raw).param == param


def test_paired_surrogate_escapes_are_fine():
    """The openai package sends emoji as escaped surrogate pairs (ensure_ascii)."""
    chat = parse({"messages": [{"role": "user", "content": "hi 🙂"}]})
    assert web(chat)[1] == "hi 🙂"


@pytest.mark.parametrize("content", ["", []])
@pytest.mark.parametrize("role", ["user", "system"])
def test_empty_content_is_no_content(role, content):
    assert "no content" in rejected({"messages": [{"role": role, "content": content}, *HI]}).message


@pytest.mark.parametrize("part", [{"type": "image_url"}, {"type": "image_url", "image_url": {}},
                                  {"type": "image_url", "image_url": {"url": 3}}])
def test_image_part_needs_a_url(part):
    rejected({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, part]}]})


def test_image_parts_pass_through():
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    chat = parse({"model": "GLM-4.6", "messages": [{"role": "user", "content": [part, {"type": "text", "text": "what?"}]}]})
    assert chat.messages[-1]["content"][0] == part and web(chat)[1] == "what?"


def test_developer_becomes_system():
    chat = parse({"messages": [{"role": "developer", "content": "rules"}, *HI]})
    assert chat.messages[0] == {"role": "system", "content": "rules"}


def test_tool_messages_stay_openai_shaped_in_the_request():
    calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    chat = parse({"messages": [*HI, {"role": "assistant", "content": None, "tool_calls": calls},
                               {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                               {"role": "function", "name": "g", "content": "old style"}]})
    assert chat.messages[1] == {"role": "assistant", "content": None, "tool_calls": calls}
    assert chat.messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    assert chat.messages[3] == {"role": "tool", "tool_call_id": "g", "content": "old style"}


def test_tool_results_and_tool_calls_rendered_as_text():
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": {"tz": "CET"}}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
    ]
    rendered, _ = web(parse({"messages": messages}))
    assert [m["role"] for m in rendered] == ["user", "assistant", "user", "user"]
    for message in rendered:
        assert isinstance(message["content"], str)
    assistant = rendered[1]["content"]
    assert "call_1" in assistant and "get_weather" in assistant and '{"city": "Paris"}' in assistant
    assert "call_2" in assistant and "get_time" in assistant and '{"tz": "CET"}' in assistant
    assert "call_1" in rendered[2]["content"] and "sunny" in rendered[2]["content"]
    assert "12:00" in rendered[3]["content"]


def test_prompt_after_a_tool_result_is_what_the_upstream_sees_last():
    # The upstream checks the signed prompt against its own last user message, and it
    # receives tool results as user messages.
    messages = [{"role": "user", "content": "weather?"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "w", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
    rendered, prompt = web(parse({"messages": messages}))
    assert prompt == fake_zai.last_user_text(rendered)
    assert "sunny" in prompt


def test_assistant_text_and_tool_calls_together():
    chat = parse({"messages": [*HI, {"role": "assistant", "content": "Let me check.",
                                     "tool_calls": [{"id": "c9", "function": {"name": "f", "arguments": "{}"}}]}]})
    content = web(chat)[0][1]["content"]
    assert content.startswith("Let me check.\n") and "c9" in content


def test_assistant_without_content_or_calls_is_accepted():
    assert web(parse({"messages": [*HI, {"role": "assistant"}]}))[0][1] == {"role": "assistant", "content": ""}


@pytest.mark.parametrize(("request_value", "default", "expected"), [
    (True, False, True), (False, True, False), (None, True, True), (None, False, False),
])
def test_enable_thinking_request_value_wins_over_the_default(request_value, default, expected):
    body = {"messages": HI}
    if request_value is not None:
        body["enable_thinking"] = request_value
    assert parse(body, default_thinking=default).thinking is expected


@pytest.mark.parametrize(("model", "upstream", "thinking", "search"), [
    ("GLM-4.6", "GLM-4-6-API-V1", False, False),
    ("GLM-4.5", "0727-360B-API", False, False),
    ("glm-4.5-air", "0727-106B-API", False, False),
    ("GLM-4.5-Thinking", "0727-360B-API", True, False),
    ("GLM-4.5-Search", "0727-360B-API", False, True),
    ("GLM-4.5-Thinking-Search", "0727-360B-API", True, True),
    ("GLM-4.5-Search-Thinking", "0727-360B-API", True, True),
    ("gpt-4o", "GLM-4-6-API-V1", False, False),
    ("gpt-4o-Thinking", "GLM-4-6-API-V1", True, False),
])
def test_resolve_model(model, upstream, thinking, search):
    assert resolve_model(model, MODELS, "GLM-4.6") == (upstream, thinking, search)


def test_model_suffixes_reach_the_request_and_the_name_is_echoed():
    chat = parse({"messages": HI, "model": "GLM-4.5-Thinking-Search"})
    assert chat.model == "GLM-4.5-Thinking-Search"
    assert (chat.thinking, chat.web_search) == (True, True)


def test_unknown_model_falls_back_to_the_default_models_upstream_id(tmp_path):
    settings = load_settings({"MODEL_NAME": "GLM-4.5"}, env_dir=tmp_path)
    chat = parse_chat_request(json.dumps({"model": "claude-3", "messages": HI}).encode(), settings=settings)
    assert chat.model == "claude-3"
    assert resolve_model(chat.model, settings.models, settings.model_name)[0] == "glm-4.5"


def test_default_model_name_outside_the_map_uses_the_first_id(tmp_path):
    settings = load_settings({"MODEL_NAME": "My-GLM"}, env_dir=tmp_path)
    assert resolve_model("anything", settings.models, settings.model_name) == ("glm-4.6", False, False)
    assert resolve_model("My-GLM-Thinking", settings.models, settings.model_name) == ("glm-4.6", True, False)


# ---- thinking switches, tools, stop ------------------------------------------------------

@pytest.mark.parametrize(("body", "default", "expected"), [
    ({"reasoning_effort": "medium"}, False, True),
    ({"reasoning_effort": "NONE"}, True, False),
    ({"reasoning_effort": "minimal"}, True, False),
    ({"thinking": {"type": "enabled", "budget_tokens": 100}}, False, True),
    ({"thinking": {"type": "disabled"}}, True, False),
    ({"model": "GLM-4.6-Thinking", "reasoning_effort": "none"}, False, False),
    ({"model": "GLM-4.6-Thinking", "enable_thinking": False}, False, False),
    ({"model": "GLM-4.6-Thinking"}, False, True),
    ({"enable_thinking": False, "thinking": {"type": "enabled"}}, True, False),
])
def test_the_requests_own_thinking_switch_wins(body, default, expected):
    assert parse({"messages": HI, **body}, default_thinking=default).thinking is expected


@pytest.mark.parametrize(("name", "value"), [
    ("thinking", {"type": "on"}), ("thinking", "enabled"), ("thinking", {}),
    ("reasoning_effort", 1), ("reasoning_effort", ""), ("reasoning_effort", ["high"]),
    ("tools", {"type": "function"}), ("tools", [{"type": "function"}]), ("tools", [{"function": {"name": ""}}]),
    ("tool_choice", "sometimes"), ("tool_choice", {"type": "function"}), ("tool_choice", 3),
    ("stop", 3), ("stop", ["a", 1]), ("stop", ["a", "b", "c", "d", "e"]),
])
def test_wrong_switches_tools_and_stops(name, value):
    assert rejected({"messages": HI, name: value}).param == name


def test_tools_tool_choice_and_stop_are_kept_as_sent():
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    choice = {"type": "function", "function": {"name": "f"}}
    chat = parse({"messages": HI, "tools": [tool], "tool_choice": choice, "stop": ["END"]})
    assert chat.tools == (tool,) and chat.tool_choice == choice and chat.params == {"stop": ["END"]}
    assert parse({"messages": HI, "stop": "END"}).params == {"stop": "END"}


def test_a_tool_result_is_something_to_answer():
    messages = [{"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}]
    assert parse({"messages": messages}).messages[1]["role"] == "tool"
