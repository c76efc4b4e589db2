"""ThinkingPresenter, ChunkEncoder, normalize_usage and completion_body."""

from __future__ import annotations

import json

import pytest

from zai_scenarios import SCENARIOS
from zto.openai_format import (
    DONE,
    ChunkEncoder,
    ThinkingPresenter,
    completion_body,
    error_event,
    merge_tool_calls,
    normalize_usage,
)
from zto.translate import AnswerAssembler

REASONING = ["Let me ", "think.\nDone."]
ANSWER = ["Hel", "lo."]


def present_all(mode: str, reasoning: list[str], answer: list[str]) -> tuple[str, str]:
    """Reasoning pieces then answer pieces through one presenter, then close()."""
    presenter = ThinkingPresenter(mode)
    out = [presenter.present(r, "") for r in reasoning] + [presenter.present("", a) for a in answer]
    out.append(presenter.close())
    return "".join(r for r, _ in out), "".join(c for _, c in out)


# ---- ThinkingPresenter ------------------------------------------------------------

def test_reasoning_mode_passes_reasoning_in_its_own_field():
    assert present_all("reasoning", REASONING, ANSWER) == ("Let me think.\nDone.", "Hello.")


def test_think_mode_wraps_reasoning_in_think_tags():
    assert present_all("think", REASONING, ANSWER) == ("", "<think>\nLet me think.\nDone.\n</think>\n\nHello.")


def test_strip_mode_puts_reasoning_then_a_blank_line_then_the_answer():
    assert present_all("strip", REASONING, ANSWER) == ("", "Let me think.\nDone.\n\nHello.")


def test_hide_mode_drops_reasoning():
    assert present_all("hide", REASONING, ANSWER) == ("", "Hello.")


@pytest.mark.parametrize(("mode", "expected"), [
    ("reasoning", ("Let me think.\nDone.", "")),
    ("think", ("", "<think>\nLet me think.\nDone.\n</think>")),
    ("strip", ("", "Let me think.\nDone.")),
    ("hide", ("", "")),
])
def test_reasoning_only_answers(mode, expected):
    assert present_all(mode, REASONING, []) == expected


@pytest.mark.parametrize("mode", ["reasoning", "think", "strip", "hide"])
def test_answers_without_reasoning_are_unchanged(mode):
    assert present_all(mode, [], ANSWER) == ("", "Hello.")


@pytest.mark.parametrize("mode", ["reasoning", "think", "strip", "hide"])
def test_close_is_idempotent_and_empty_after_an_answer(mode):
    presenter = ThinkingPresenter(mode)
    presenter.present("why", "")
    presenter.present("", "because")
    assert presenter.close() == ("", "")
    assert presenter.close() == ("", "")


def test_think_close_closes_the_tag_once():
    presenter = ThinkingPresenter("think")
    assert presenter.present("why", "") == ("", "<think>\nwhy")
    assert presenter.close() == ("", "\n</think>")
    assert presenter.close() == ("", "")


def test_think_tag_opened_once_and_closed_once_when_reasoning_and_answer_arrive_together():
    presenter = ThinkingPresenter("think")
    assert presenter.present("a", "") == ("", "<think>\na")
    assert presenter.present("b", "c") == ("", "b\n</think>\n\nc")
    assert presenter.present("", "d") == ("", "d")


@pytest.mark.parametrize(("mode", "expected"), [
    ("reasoning", ("Let me think about it.\nSecond line.\n\nThird 你好 line.", "Hello 🙂, world! Bye.")),
    ("think", ("", "<think>\nLet me think about it.\nSecond line.\n\nThird 你好 line.\n</think>\n\nHello 🙂, world! Bye.")),
    ("strip", ("", "Let me think about it.\nSecond line.\n\nThird 你好 line.\n\nHello 🙂, world! Bye.")),
    ("hide", ("", "Hello 🙂, world! Bye.")),
])
def test_presenter_on_the_thinking_scenario(mode, expected):
    assembler, presenter = AnswerAssembler(), ThinkingPresenter(mode)
    out = [presenter.present(*assembler.feed(e)) for e in SCENARIOS["thinking"].events]
    out += [presenter.present(*assembler.finish()), presenter.close()]
    assert ("".join(r for r, _ in out), "".join(c for _, c in out)) == expected


# ---- ChunkEncoder -----------------------------------------------------------------

def parse(line: bytes) -> dict:
    assert line.startswith(b"data: ") and line.endswith(b"\n\n")
    assert line.count(b"\n") == 2, "one SSE event, one line"
    return json.loads(line[len(b"data: "):])


def stream_of(encoder: ChunkEncoder) -> list[bytes]:
    return [encoder.role(), encoder.delta("why", ""), encoder.delta("", "héllo 你好 🙂"),
            encoder.delta("more", "both"), encoder.finish(), encoder.usage({"prompt_tokens": 1, "completion_tokens": 2})]


def test_every_chunk_is_json_with_one_id_created_and_the_model():
    encoder = ChunkEncoder("GLM-4.6-Thinking")
    chunks = [parse(line) for line in stream_of(encoder)]
    assert {c["id"] for c in chunks} == {encoder.id}
    assert encoder.id.startswith("chatcmpl-")
    assert {c["created"] for c in chunks} == {encoder.created}
    assert isinstance(encoder.created, int)
    assert {c["model"] for c in chunks} == {"GLM-4.6-Thinking"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}


def test_two_streams_have_different_ids():
    assert ChunkEncoder("m").id != ChunkEncoder("m").id


def test_given_id_and_created_are_used():
    chunk = parse(ChunkEncoder("m", completion_id="chatcmpl-x", created=0).role())
    assert (chunk["id"], chunk["created"]) == ("chatcmpl-x", 0)


def test_role_chunk():
    chunk = parse(ChunkEncoder("m").role())
    assert chunk["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                 "logprobs": None, "finish_reason": None}]


def test_delta_chunks_carry_only_what_is_there():
    encoder = ChunkEncoder("m")
    assert parse(encoder.delta("r", ""))["choices"][0]["delta"] == {"reasoning_content": "r"}
    assert parse(encoder.delta("", "c"))["choices"][0]["delta"] == {"content": "c"}
    assert parse(encoder.delta("r", "c"))["choices"][0]["delta"] == {"reasoning_content": "r", "content": "c"}
    assert parse(encoder.delta("r", "c"))["choices"][0]["finish_reason"] is None


@pytest.mark.parametrize("reason", ["stop", "length"])
def test_finish_chunk(reason):
    choice = parse(ChunkEncoder("m").finish(reason))["choices"][0]
    assert choice["finish_reason"] == reason and choice["delta"] == {}


def test_finish_defaults_to_stop():
    assert parse(ChunkEncoder("m").finish())["choices"][0]["finish_reason"] == "stop"


def test_usage_chunk_has_empty_choices_and_the_usage():
    chunk = parse(ChunkEncoder("m").usage({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}))
    assert chunk["choices"] == []
    assert chunk["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_usage_chunk_without_usage_has_zeros():
    assert parse(ChunkEncoder("m").usage(None))["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_non_ascii_is_sent_as_utf8_not_escaped():
    line = ChunkEncoder("模型").delta("思考", "héllo 🙂\u2028")
    assert "思考".encode() in line and "héllo 🙂".encode() in line and "模型".encode() in line
    assert b"\\u" not in line
    chunk = parse(line)
    assert chunk["choices"][0]["delta"] == {"reasoning_content": "思考", "content": "héllo 🙂\u2028"}


def test_text_with_newlines_and_quotes_stays_on_one_line():
    chunk = parse(ChunkEncoder('a "quoted" model').delta("", 'line\nbreak "q" \\ end\r\n'))
    assert chunk["choices"][0]["delta"]["content"] == 'line\nbreak "q" \\ end\r\n'
    assert chunk["model"] == 'a "quoted" model'


def test_done_and_error_event():
    assert DONE == b"data: [DONE]\n\n"
    body = {"error": {"message": "Nested failure 失败", "type": "upstream_error", "param": None, "code": "x"}}
    assert parse(error_event(body)) == body


# ---- normalize_usage --------------------------------------------------------------

def test_normalize_usage_none_and_empty_give_zeros():
    zeros = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert normalize_usage(None) == zeros
    assert normalize_usage({}) == zeros


def test_normalize_usage_passes_through():
    usage = {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 40,
             "prompt_tokens_details": {"cached_tokens": 5}}
    assert normalize_usage(usage) == usage


def test_normalize_usage_computes_missing_total():
    assert normalize_usage({"prompt_tokens": 11, "completion_tokens": 22}) == {
        "prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}


def test_normalize_usage_fills_missing_counts():
    assert normalize_usage({"completion_tokens": 5}) == {"prompt_tokens": 0, "completion_tokens": 5, "total_tokens": 5}


def test_normalize_usage_does_not_change_its_argument():
    usage = {"prompt_tokens": 1}
    normalize_usage(usage)
    assert usage == {"prompt_tokens": 1}


# ---- completion_body --------------------------------------------------------------

def test_completion_body_shape():
    body = completion_body("GLM-4.6", "why", "Hello.", {"prompt_tokens": 1, "completion_tokens": 2})
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "GLM-4.6"
    assert body["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "Hello.", "reasoning_content": "why"}}]
    assert body["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    json.dumps(body)


def test_completion_body_without_reasoning_has_no_reasoning_field():
    body = completion_body("m", "", "Hi", None, finish_reason="length")
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hi"}
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


# ---- tool calls ---------------------------------------------------------------------------

def test_tool_call_deltas_are_merged_by_index():
    deltas = [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        {"index": 0, "function": {"arguments": '{"x": '}},
        {"index": 0, "function": {"arguments": "1}"}},
    ]
    assert merge_tool_calls(deltas) == [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    assert merge_tool_calls([]) == []


def test_tool_call_deltas_in_a_chunk_and_the_finish_reason():
    encoder = ChunkEncoder("GLM-4.6", "chatcmpl-x", 1)
    call = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}
    choice = json.loads(encoder.delta("", "", (call,))[6:])["choices"][0]
    assert choice["delta"] == {"tool_calls": [call]}
    assert json.loads(encoder.finish("tool_calls")[6:])["choices"][0]["finish_reason"] == "tool_calls"


def test_a_whole_answer_with_tool_calls_has_null_content():
    calls = [{"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    body = completion_body("GLM-4.6", "", "", None, "tool_calls", calls)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": None, "tool_calls": calls}
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert completion_body("GLM-4.6", "", "", None)["choices"][0]["message"]["content"] == ""
