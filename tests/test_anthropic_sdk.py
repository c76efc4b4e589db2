"""The official ``anthropic`` package against zto under gunicorn, as a new user runs it:
messages.create and messages.stream, thinking, stop reasons, every error class,
count_tokens, and requests shaped like Claude Code's own. The upstream is the fake
web chat (tools on the official API: ``test_anthropic_tools.py``)."""

from __future__ import annotations

import html
import re
import subprocess
import sys

import anthropic
import pytest
import requests

from conftest import API_KEY, free_port

# As Claude Code 2.1.328 sends them (captured against zto, November 2026).
BETAS = ["claude-code-20250219", "interleaved-thinking-2025-05-14", "context-management-2025-06-27",
         "per-turn-control-2026-07-01", "mid-conversation-tool-changes-2026-07-01", "thinking-token-count-2026-05-13",
         "advanced-tool-use-2025-11-20", "effort-2025-11-24"]
CLAUDE_CODE_EXTRA = {"context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
                     "output_config": {"effort": "medium"}}
MODEL = "claude-sonnet-4-6"


def sdk(server, key: str = API_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0, timeout=30)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_create_whole_text(live):
    message = sdk(live).messages.create(model=MODEL, max_tokens=256, messages=ask("hi"))
    assert message.id.startswith("msg_") and message.model == MODEL and message.role == "assistant"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Hello, world!"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens == 11 and message.usage.output_tokens == 22


def test_stream_text(live):
    # Paced, so that the pieces arrive apart (events that arrive together leave together).
    with sdk(live).messages.stream(model=MODEL, max_tokens=256, messages=ask("hi transport:delay=0.02")) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "Hello, world!" and len(pieces) > 1
    assert final.content[0].text == "Hello, world!" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 22


def test_auth_token_as_bearer_like_claude_code(live):
    client = anthropic.Anthropic(base_url=live.url, auth_token=API_KEY, api_key=None, max_retries=0)
    assert client.messages.create(model=MODEL, max_tokens=64, messages=ask("hi")).content[0].text


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_comes_first(live, stream):
    client = sdk(live)
    request = dict(model=MODEL, max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048},
                   messages=ask("scenario:thinking"))
    if stream:
        with client.messages.stream(**request) as events:
            kinds = [e.type for e in events]
            message = events.get_final_message()
        assert kinds.index("thinking") < kinds.index("signature") < kinds.index("text")
    else:
        message = client.messages.create(**request)
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking.startswith("Let me think about it.")
    assert thinking.signature and text.type == "text" and text.text


def test_stop_sequence(live):
    client = sdk(live)
    message = client.messages.create(model=MODEL, max_tokens=64, messages=ask("hi"), stop_sequences=["world"])
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "world"
    assert message.content[0].text == "Hello, "
    with client.messages.stream(model=MODEL, max_tokens=64, messages=ask("hi"), stop_sequences=["!"]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.content[0].text == "Hello, world"


def test_count_tokens(live):
    count = sdk(live).messages.count_tokens(model=MODEL, messages=ask("How many tokens is this?"),
                                            system="You are terse.")
    assert isinstance(count.input_tokens, int) and 5 < count.input_tokens < 50


def test_the_docs_example_works_as_pasted(live):
    page = requests.get(live.url + "/docs", timeout=10).text
    code = html.unescape(re.search(r'<code id="example-anthropic">(.*?)</code>', page, re.S).group(1))
    assert f'base_url="{live.url}"' in code and "sk-your-key" in code
    result = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c",
                             code.replace("sk-your-key", API_KEY)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Hello, world!"
    command = html.unescape(re.search(r'<code id="example-claude-code">(.*?)</code>', page, re.S).group(1))
    assert command == f"ANTHROPIC_BASE_URL={live.url} ANTHROPIC_AUTH_TOKEN=sk-your-key claude"


# -- every error class ------------------------------------------------------------------

def test_bad_request(live):
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk(live).messages.create(model=MODEL, max_tokens=64, messages=[])
    assert caught.value.body["error"]["type"] == "invalid_request_error"


def test_authentication(live):
    with pytest.raises(anthropic.AuthenticationError):
        sdk(live, key="sk-wrong").messages.create(model=MODEL, max_tokens=64, messages=ask("hi"))


def test_permission_denied(live, shared_fake):
    shared_fake.fail_next("403", count=2)
    with pytest.raises(anthropic.PermissionDeniedError):
        sdk(live).messages.create(model=MODEL, max_tokens=64, messages=ask("hi"))


def test_not_found(live):
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk(live).post("/v1/messages/batches", cast_to=object, body={})
    assert caught.value.body["error"]["type"] == "not_found_error"


def test_request_too_large(start_server, shared_fake):
    server = start_server({"UPSTREAM_URL": shared_fake.completions_url, "MAX_REQUEST_BYTES": "10000"},
                          {"DEFAULT_KEY": API_KEY})
    with pytest.raises(anthropic.ContentTooLargeError):
        sdk(server).messages.create(model=MODEL, max_tokens=64, messages=ask("x" * 20000))


def test_rate_limited(live, shared_fake):
    shared_fake.fail_next("429", count=2)
    with pytest.raises(anthropic.RateLimitError):
        sdk(live).messages.create(model=MODEL, max_tokens=64, messages=ask("hi"))


def test_upstream_failure_is_internal_server_error(live, shared_fake):
    shared_fake.fail_next("500", count=2)
    with pytest.raises(anthropic.InternalServerError) as caught:
        sdk(live).messages.create(model=MODEL, max_tokens=64, messages=ask("hi"))
    assert caught.value.status_code == 500


def test_unreachable_upstream_is_overloaded(start_server):
    server = start_server({"UPSTREAM_URL": f"http://127.0.0.1:{free_port()}/api/chat/completions"},
                          {"DEFAULT_KEY": API_KEY})
    with pytest.raises(anthropic.OverloadedError):
        sdk(server).messages.create(model=MODEL, max_tokens=64, messages=ask("hi"))


def test_failure_mid_stream_raises_not_a_silent_stop(live):
    with pytest.raises(anthropic.APIStatusError) as caught:
        with sdk(live).messages.stream(model=MODEL, max_tokens=64, messages=ask("scenario:mid_error")) as stream:
            for _ in stream:
                pass
    assert caught.value.body["type"] == "error"


# -- shaped like Claude Code's own requests ------------------------------------------------

def big_schema(name: str) -> dict:
    """An input_schema the size of Claude Code's (Bash, Edit, TodoWrite...): nested, described."""
    return {
        "type": "object", "$schema": "http://json-schema.org/draft-07/schema#", "additionalProperties": False,
        "properties": {
            "path": {"type": "string", "description": f"The absolute path {name} works on. " * 20},
            "edits": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False, "required": ["old_string", "new_string"],
                "properties": {"old_string": {"type": "string", "description": "The text to replace " * 10},
                               "new_string": {"type": "string"},
                               "replace_all": {"type": "boolean", "default": False}}}},
            "mode": {"type": "string", "enum": ["a", "b", "c", "d"]},
            "timeout": {"type": "number", "maximum": 600000},
        },
        "required": ["path"],
    }


CLAUDE_CODE_TOOLS = [{"name": name, "description": f"{name}: " + "Use this tool carefully. " * 40,
                      "input_schema": big_schema(name)}
                     for name in ("Task", "Bash", "Glob", "Grep", "Read", "Edit", "MultiEdit", "Write",
                                  "NotebookEdit", "WebFetch", "TodoWrite", "WebSearch", "BashOutput", "KillShell")]
CLAUDE_CODE_TOOLS.append({"name": "DeferredToolPlaceholder", "description": "Loaded on demand.", "defer_loading": True,
                          "input_schema": {"type": "object", "properties": {}}})
CLAUDE_CODE_SYSTEM = [
    {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
     "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "You are an interactive CLI tool that helps users with software engineering tasks. " * 60,
     "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.328.b7f; cc_entrypoint=sdk-cli;"},
]


def claude_code_history(last: str) -> list[dict]:
    return [
        {"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>As you answer, use the context.</system-reminder>"},
            {"type": "text", "text": "Read setup.py", "cache_control": {"type": "ephemeral"}}]},
        {"role": "system", "content": [  # Claude Code's environment: a system turn after the user's
            {"type": "text", "text": "# Environment\n - Primary working directory: /home/user/project",
             "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I will read it.", "signature": "c2lnbmF0dXJl"},
            {"type": "text", "text": "Reading it."},
            {"type": "tool_use", "id": "toolu_01A", "name": "Read", "input": {"path": "/home/user/project/setup.py"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A",
             "content": [{"type": "text", "text": "     1\tfrom setuptools import setup\n     2\tsetup()"}]},
            {"type": "text", "text": last, "cache_control": {"type": "ephemeral"}}]},
    ]


@pytest.mark.parametrize("stream", [True, False])
def test_claude_code_shaped_request_on_the_web_chat(live, shared_fake, stream):
    request = dict(model="claude-sonnet-4-6", max_tokens=32000, system=CLAUDE_CODE_SYSTEM,
                   messages=claude_code_history("Summarise it."), tools=CLAUDE_CODE_TOOLS,
                   tool_choice={"type": "auto"}, extra_body={"temperature": 1, **CLAUDE_CODE_EXTRA},
                   metadata={"user_id": '{"device_id":"da21","account_uuid":"","session_id":"fd9e"}'},
                   thinking={"type": "adaptive", "display": "omitted"}, betas=BETAS)
    client = sdk(live).beta.messages
    if stream:
        with client.stream(**request) as events:
            message = events.get_final_message()
    else:
        raw = client.with_raw_response.create(**request)
        assert raw.headers.get("x-zto-warning"), "answered without the tools, and says so"
        message = raw.parse()
    assert message.content and message.content[-1].type == "text" and message.stop_reason == "end_turn"
    sent = shared_fake.requests[-1]
    assert sent.headers.get("anthropic-beta") is None, "Anthropic's headers are not forwarded"
    texts = " ".join(str(m.get("content")) for m in sent.body["messages"])
    assert "from setuptools import setup" in texts and "Summarise it." in texts and "# Environment" in texts
    assert sent.body["features"]["enable_thinking"] is True


def test_claude_code_small_model_request(live):
    """Claude Code's quick side requests (titles, summaries) use the small fast model."""
    message = sdk(live).messages.create(
        model="claude-haiku-4-5-20251001", max_tokens=512,
        system=[{"type": "text", "text": "Summarize this coding conversation in under 50 characters."}],
        messages=ask("Please write a 5-10 word title for the following conversation"),
        extra_body={"temperature": 0})
    assert message.model == "claude-haiku-4-5-20251001" and message.content[0].text
