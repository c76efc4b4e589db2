"""Agents on Z.ai's official API through zto under gunicorn, with the fake official API
(``fake_official``) behind it: the ``anthropic`` package's tool round trip (tool_use,
a tool_result turn, the final text), streamed and whole, thinking, images, stop
reasons, usage and business errors, a request shaped like Claude Code's; and a
LangChain agent (``langchain-openai``) calling a tool through ``/v1``."""

from __future__ import annotations

import json

import anthropic
import pytest
from test_anthropic_sdk import BETAS, CLAUDE_CODE_SYSTEM, CLAUDE_CODE_TOOLS, claude_code_history

from conftest import API_KEY, api_env, start_gunicorn
from fake_official import TOOL_ARGUMENTS

pytestmark = pytest.mark.e2e

WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
                                                             "unit": {"type": "string"}}, "required": ["city"]}}
IMAGE = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def api_server(shared_official, tmp_path_factory):
    server = start_gunicorn(
        tmp_path_factory.mktemp("anthropic-api"),
        env=api_env(shared_official, API_KEY_COOLDOWN_S="0.001", DEBUG_MODE="false",
                    ANTHROPIC_MODEL_MAP="claude-haiku*=GLM-4.5-Air,claude-*=GLM-4.6"),
        env_local={"DEFAULT_KEY": API_KEY})
    yield server
    server.stop()


@pytest.fixture
def upstream(api_server, shared_official):
    """The fake official API behind ``api_server``, reset for this test."""
    shared_official.reset()
    return shared_official


@pytest.fixture
def client(api_server, upstream):
    return anthropic.Anthropic(base_url=api_server.url, api_key=API_KEY, max_retries=0, timeout=30)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip(client, upstream, stream):
    question = ask("What is the weather in Paris?")
    request = dict(model="claude-sonnet-4-6", max_tokens=1024, tools=[WEATHER], thinking={"type": "disabled"})
    if stream:
        with client.messages.stream(messages=question, **request) as events:
            kinds = [e.type for e in events]
            message = events.get_final_message()
        assert "input_json" in kinds, "the tool input streams as input_json_delta"
        assert upstream.requests[-1].body["tool_stream"] is True
    else:
        message = client.messages.create(messages=question, **request)
    assert message.stop_reason == "tool_use"
    (call,) = [block for block in message.content if block.type == "tool_use"]
    assert call.id.startswith("toolu_") and call.name == "get_weather"
    assert call.input == json.loads(TOOL_ARGUMENTS)
    sent = upstream.requests[-1].body
    assert sent["model"] == "glm-4.6" and sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]

    history = question + [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                      "content": [{"type": "text", "text": "22 degrees and sunny"}]}]}]
    if stream:
        with client.messages.stream(messages=history, **request, tool_choice={"type": "none"}) as events:
            final = events.get_final_message()
    else:
        final = client.messages.create(messages=history, **request, tool_choice={"type": "none"})
    assert final.stop_reason == "end_turn"
    assert final.content[-1].text == "The tool said: 22 degrees and sunny"
    sent = upstream.requests[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "22 degrees and sunny"}


def test_tool_choice_names_the_tool(client, upstream):
    other = {**WEATHER, "name": "get_time"}
    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=256, tools=[WEATHER, other],
                                     tool_choice={"type": "tool", "name": "get_time"}, messages=ask("time?"))
    assert [b.name for b in message.content if b.type == "tool_use"] == ["get_time"]
    assert upstream.requests[-1].body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_then_text_with_usage(client, upstream, stream):
    request = dict(model="claude-opus-4-7", max_tokens=1024, messages=ask("hi"),
                   thinking={"type": "enabled", "budget_tokens": 1024})
    if stream:
        with client.messages.stream(**request) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**request)
    thinking, text = message.content
    assert (thinking.type, thinking.thinking) == ("thinking", "Let me think about it.") and thinking.signature
    assert (text.type, text.text) == ("text", "Hello from glm-4.6!")
    assert message.model == "claude-opus-4-7"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (8, 4, 8)
    assert upstream.requests[-1].body["thinking"] == {"type": "enabled"}


def test_thinking_disabled_and_the_haiku_mapping(client, upstream):
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=ask("hi"),
                                     thinking={"type": "disabled"})
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "Hello from glm-4.5-air!"
    assert upstream.requests[-1].body["thinking"] == {"type": "disabled"}


def test_stop_reason_max_tokens(client):
    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=1, messages=ask("hi"),
                                     thinking={"type": "disabled"})
    assert message.stop_reason == "max_tokens"


def test_an_image_reaches_the_vision_model(client, upstream):
    content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": IMAGE}},
               {"type": "text", "text": "What is this?"}]
    message = client.messages.create(model="GLM-4.6V", max_tokens=256, messages=[{"role": "user", "content": content}])
    assert message.content[-1].text.startswith("I see 1 image, the first from data:image/png")
    sent = upstream.requests[-1].body
    assert sent["model"] == "glm-4.6v"
    assert sent["messages"][0]["content"][0] == {"type": "image_url",
                                                "image_url": {"url": f"data:image/png;base64,{IMAGE}"}}


@pytest.mark.parametrize(("code", "exception", "kind"), [
    ("1211", anthropic.NotFoundError, "not_found_error"),
    ("1261", anthropic.BadRequestError, "invalid_request_error"),
    ("1113", anthropic.RateLimitError, "rate_limit_error"),
    ("1000", anthropic.InternalServerError, "api_error"),
])
def test_business_errors(client, upstream, code, exception, kind):
    upstream.fail_next(code, 2)
    with pytest.raises(exception) as caught:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=ask("hi"))
    assert caught.value.body["error"]["type"] == kind
    assert not isinstance(caught.value, anthropic.AuthenticationError)


def test_error_inside_the_stream_is_an_error_event(client, upstream):
    upstream.fail_next("500", where="middle")
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=ask("hi")) as events:
            for _ in events:
                pass
    assert caught.value.body["type"] == "error"


@pytest.mark.parametrize("stream", [True, False])
def test_claude_code_shaped_request_gets_a_tool_call(client, upstream, stream):
    request = dict(model="claude-sonnet-4-6", max_tokens=32000, system=CLAUDE_CODE_SYSTEM,
                   messages=claude_code_history("Now run the tests."), tools=CLAUDE_CODE_TOOLS,
                   metadata={"user_id": "user_abc"}, thinking={"type": "enabled", "budget_tokens": 31999},
                   betas=BETAS)
    if stream:
        with client.beta.messages.stream(**request) as events:
            message = events.get_final_message()
    else:
        message = client.beta.messages.create(**request)
    assert [b.type for b in message.content] == ["thinking", "tool_use"] and message.stop_reason == "tool_use"
    assert message.content[1].name == "Task"
    sent = upstream.requests[-1].body
    assert len(sent["tools"]) == len(CLAUDE_CODE_TOOLS) and sent["messages"][0]["role"] == "system"
    assert sent["messages"][4] == {"role": "tool", "tool_call_id": "toolu_01A",
                                   "content": "     1\tfrom setuptools import setup\n     2\tsetup()"}


def test_langchain_agent_uses_a_tool_through_zto(api_server, upstream):
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    calls = []

    @tool
    def get_weather(city: str, unit: str = "celsius") -> str:
        """The current weather in a city."""
        calls.append((city, unit))
        return f"It is 21 degrees {unit} and sunny in {city}."

    agent = ChatOpenAI(base_url=api_server.base_url, api_key=API_KEY, model="GLM-4.6", max_retries=0,
                       timeout=30).bind_tools([get_weather])
    messages = [HumanMessage("What is the weather in Paris?")]
    for _ in range(3):  # the agent loop: call tools until the model answers
        reply = agent.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        messages += [get_weather.invoke(call) for call in reply.tool_calls]
    assert calls == [("Paris", "celsius")]
    assert reply.content == "The tool said: It is 21 degrees celsius and sunny in Paris."
    sent = upstream.requests[-1].body
    assert sent["messages"][-1]["role"] == "tool" and sent["tools"][0]["function"]["name"] == "get_weather"
