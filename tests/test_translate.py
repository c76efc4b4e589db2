"""AnswerAssembler and friends: Z.ai's raw-message events in, client text out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zai_scenarios
from zai_scenarios import CAPTCHA_ERROR, OPENER, SCENARIOS, chunk, done, utf16_len
from zto.translate import AnswerAssembler, UpstreamFailure, find_error, render_answer, render_reasoning, utf16_to_index

OK_SCENARIOS = [name for name, s in SCENARIOS.items() if s.error is None]
ERROR_SCENARIOS = [name for name, s in SCENARIOS.items() if s.error is not None]


def run(events: list[dict]) -> tuple[AnswerAssembler, list[tuple[str, str]]]:
    """Feed every event then finish; the (reasoning, answer) pieces, finish's last."""
    assembler = AnswerAssembler()
    pieces = [assembler.feed(event) for event in events]
    pieces.append(assembler.finish())
    return assembler, pieces


def joined(pieces) -> tuple[str, str]:
    return "".join(r for r, _ in pieces), "".join(a for _, a in pieces)


def answer(*deltas: str) -> list[dict]:
    return [chunk("answer", delta_content=d) for d in deltas]


# ---- whole scenarios ------------------------------------------------------------

@pytest.mark.parametrize("name", OK_SCENARIOS)
def test_scenario_gives_its_reasoning_content_and_usage(name):
    scenario = SCENARIOS[name]
    assembler, pieces = run(scenario.events)
    assert joined(pieces) == (scenario.reasoning, scenario.content)
    assert assembler.usage == scenario.usage
    assert assembler.error is None


@pytest.mark.parametrize("name", OK_SCENARIOS)
def test_reasoning_is_all_sent_before_the_first_answer_text(name):
    _, pieces = run(SCENARIOS[name].events)
    answer_started = False
    for reasoning, text in pieces:
        assert not (answer_started and reasoning), "reasoning after the answer began"
        answer_started = answer_started or bool(text)


@pytest.mark.parametrize("name", OK_SCENARIOS)
def test_done_is_set_by_the_done_event(name):
    assembler, _ = run(SCENARIOS[name].events)
    assert assembler.done == (name != "no_done")


def _thinking_edit_positions():
    events = SCENARIOS["thinking"].events
    edits = [i for i, e in enumerate(events) if "edit_index" in e["data"]]
    return events, edits


def test_thinking_keeps_the_answer_start_carried_in_the_closing_edit():
    events, (closing, _tail) = _thinking_edit_positions()
    assert events[closing]["data"]["edit_content"].endswith("</details>\nHel")
    assembler = AnswerAssembler()
    for event in events[:closing]:
        assembler.feed(event)
    assert assembler.feed(events[closing]) == ("", "Hel")


def test_thinking_tail_rewrite_gives_only_the_new_suffix_once():
    events, (_closing, tail) = _thinking_edit_positions()
    assert events[tail]["data"]["edit_content"] == "world! Bye."
    assembler = AnswerAssembler()
    before = [assembler.feed(event) for event in events[:tail]]
    assert joined(before)[1] == "Hello 🙂, world!"
    assert assembler.feed(events[tail]) == ("", " Bye.")
    after = [assembler.feed(event) for event in events[tail + 1:]] + [assembler.finish()]
    assert joined(after) == ("", "")


def test_thinking_reasoning_arrives_while_thinking():
    events, (closing, _) = _thinking_edit_positions()
    assembler = AnswerAssembler()
    pieces = [assembler.feed(event) for event in events[:closing]]
    assert joined(pieces) == (SCENARIOS["thinking"].reasoning, "")


@pytest.mark.parametrize("name", ERROR_SCENARIOS)
def test_error_scenarios_report_the_error(name):
    scenario = SCENARIOS[name]
    assembler, pieces = run(scenario.events)
    status, fragment = scenario.error
    assert assembler.error is not None
    assert fragment in assembler.error.message
    if name == "error_captcha":  # a 200 stream whose error code is a word, not a status
        assert assembler.error.captcha and assembler.error.code is None
    else:
        assert assembler.error.code == status and not assembler.error.captcha
    assert assembler.done
    assert joined(pieces) == (scenario.reasoning, scenario.content)


# ---- find_error -----------------------------------------------------------------

@pytest.mark.parametrize("event", [
    {"error": CAPTCHA_ERROR},
    {"data": {"error": CAPTCHA_ERROR}},
    {"data": {"data": {"error": CAPTCHA_ERROR}}},
    {"data": {"error": {"code": "FRONTEND_CAPTCHA_REQUIRED", "detail": "refresh"}}},
    {"data": {"error": {"error_code": "FRONTEND_CAPTCHA_REQUIRED"}}},
    {"data": {"error": {"captcha_error_type": "missing_param", "detail": "refresh"}}},
    {"type": "chat:completion", "code": "FRONTEND_CAPTCHA_REQUIRED", "detail": "refresh"},
    {"data": {"captcha_error_type": "missing_param", "detail": "refresh", "done": True}},
    {"data": {"data": {"error_code": "FRONTEND_CAPTCHA_REQUIRED"}}},
])
def test_the_captcha_refusal_is_recognised_wherever_its_fields_are(event):
    failure = find_error(event)
    assert failure is not None and failure.captcha and "captcha" in failure.message


@pytest.mark.parametrize("error", [{"code": 403, "detail": "Model not available for current user level"},
                                   {"code": 426, "detail": "outdated"}, {"detail": "captcha-free failure"}])
def test_other_errors_are_not_the_captcha_refusal(error):
    assert find_error({"data": {"error": error}}).captcha is False

def test_find_error_at_top_level():
    assert find_error(SCENARIOS["error_toplevel"].events[0]) == UpstreamFailure("Top-level failure", 500)


def test_find_error_in_data():
    assert find_error(SCENARIOS["error_concurrency"].events[0]) == UpstreamFailure("Too many concurrency requests", 429)


def test_find_error_in_data_data():
    assert find_error(SCENARIOS["error_nested"].events[0]) == UpstreamFailure("Nested failure", 500)


def test_find_error_stale_front_end():
    assert find_error(SCENARIOS["error_426"].events[0]) == UpstreamFailure(zai_scenarios.STALE_DETAIL, 426)


@pytest.mark.parametrize("event", [
    {"type": "chat:completion", "error": "plain string"},
    {"type": "chat:completion", "data": {"error": {"message": "plain string"}}},
])
def test_find_error_other_shapes(event):
    failure = find_error(event)
    assert failure is not None and failure.message == "plain string" and failure.code is None


@pytest.mark.parametrize("event", [
    chunk("answer", delta_content="hi"),
    {"type": "chat:completion", "error": None, "data": {"error": {}, "data": {"error": None}}},
    {"type": "chat:completion", "data": "not an object"},
    {},
])
def test_find_error_none_without_error(event):
    assert find_error(event) is None


def test_error_event_yields_no_text():
    assembler = AnswerAssembler()
    assert assembler.feed(SCENARIOS["error_nested"].events[0]) == ("", "")
    assert assembler.error == UpstreamFailure("Nested failure", 500)


# ---- UTF-16 edit indexes ----------------------------------------------------------

@pytest.mark.parametrize("text", ["abc", "a🙂b", "🙂🙂x", "你好🌍z", ""])
def test_utf16_to_index_matches_javascript_indexes(text):
    for i in range(len(text) + 1):
        assert utf16_to_index(text, utf16_len(text[:i])) == i


def test_utf16_to_index_bounds():
    assert utf16_to_index("a🙂b", -3) == 0
    assert utf16_to_index("a🙂b", 99) == 3
    # Half a surrogate pair: the cut is before the emoji, never inside it.
    assert utf16_to_index("a🙂b", 2) == 1


def test_edit_index_counts_utf16_after_an_emoji():
    events = answer("Hi 🙂 there, wor") + [
        chunk("other", edit_index=utf16_len("Hi 🙂 there, "), edit_content="world!"),
    ]
    assert utf16_len("Hi 🙂 there, ") == len("Hi 🙂 there, ") + 1
    _, pieces = run(events)
    assert joined(pieces) == ("", "Hi 🙂 there, world!")


# ---- held-back markup ---------------------------------------------------------------

def test_partial_reasoning_opener_split_across_deltas_is_held_back():
    parts = ["<det", 'ails type="rea', 'soning" done="false">\n', "<summ", "ary>Thinking…</summary>\n> Idea",
             ".\n</det", "ails>\nAnswer."]
    events = [chunk("thinking", delta_content=p) for p in parts]
    assembler = AnswerAssembler()
    pieces = [assembler.feed(e) for e in events]
    assert pieces[:4] == [("", "")] * 4
    for reasoning, text in pieces:
        assert "<" not in reasoning + text and "summary" not in reasoning
    pieces.append(assembler.finish())
    assert joined(pieces) == ("Idea.", "Answer.")


@pytest.mark.parametrize("first", ["<html>", "<", "<d", "<details>", "<b>bold</b>", '<details type="reasoning_not"'])
def test_answer_starting_with_a_tag_is_not_lost(first):
    _, pieces = run(answer(first, " rest"))
    assert joined(pieces) == ("", first + " rest")


def test_answer_starting_with_a_tag_is_sent_before_the_end():
    assembler = AnswerAssembler()
    assert assembler.feed(answer("<html>")[0]) == ("", "<html>")


def test_text_held_back_at_the_end_is_flushed_by_finish():
    assembler = AnswerAssembler()
    assert assembler.feed(answer("Hello ")[0]) == ("", "Hello ")
    assert assembler.feed(answer("<gl")[0]) == ("", "")
    assert assembler.finish() == ("", "<gl")


def test_lone_partial_opener_is_flushed_by_finish_as_answer():
    assembler = AnswerAssembler()
    assert assembler.feed(answer("<deta")[0]) == ("", "")
    assert assembler.finish() == ("", "<deta")


def test_reasoning_only_stream_is_flushed_by_finish():
    assembler = AnswerAssembler()
    pieces = [assembler.feed(chunk("thinking", delta_content=OPENER + "Still thinking\n<su"))]
    assert joined(pieces) == ("Still thinking", "")
    pieces.append(assembler.finish())
    assert joined(pieces) == ("Still thinking\n<su", "")


def test_glm_block_split_across_deltas_is_removed():
    block = '<glm_block view="">{"type": "mcp", "arguments": "{\\"q\\": 1}"}</glm_block>'
    text = "Searching. " + block + " Found."
    for cut in range(len("Searching. "), len("Searching. ") + len(block) + 1):
        _, pieces = run(answer(text[:cut], text[cut:]))
        assert joined(pieces) == ("", "Searching.  Found."), cut
    for step in (1, 3, 7):
        _, pieces = run(answer(*(text[i:i + step] for i in range(0, len(text), step))))
        assert joined(pieces) == ("", "Searching.  Found."), step


def test_glm_block_never_leaks_while_streaming():
    scenario = SCENARIOS["upstream_tools"]
    _, pieces = run(scenario.events)
    for _, text in pieces:
        assert "glm" not in text and "{" not in text


def test_glm_block_after_thinking():
    events = [chunk("thinking", delta_content=OPENER + "Hmm"),
              chunk("answer", edit_index=utf16_len(OPENER + "Hmm"), edit_content="\n</details>\nOk <glm_bl"),
              chunk("tool_call", delta_content='ock view="">{}</glm'),
              chunk("tool_call", delta_content="_block>done"), done()]
    _, pieces = run(events)
    assert joined(pieces) == ("Hmm", "Ok done")


def test_unfinished_glm_block_is_not_shown_even_at_the_end():
    _, pieces = run(answer("A ", '<glm_block view="">{"half'))
    assert joined(pieces) == ("", "A ")


# ---- pure renderers -------------------------------------------------------------

def test_render_reasoning_drops_summary_and_quotes():
    body = '\n<summary>Thinking…</summary>\n> one\n>\n> two\n>three'
    assert render_reasoning(body, closed=True) == "one\n\ntwo\nthree"


@pytest.mark.parametrize("tail", ["<", "</", "</det", "<summ", "<summary>Thi"])
def test_render_reasoning_holds_possible_markup_while_open(tail):
    assert render_reasoning("\n> one\n" + tail, closed=False) == "one"


def test_render_reasoning_keeps_other_angle_brackets():
    assert render_reasoning("\n> a <b> c\n<b>", closed=False) == "a <b> c\n<b>"


def test_render_answer():
    assert render_answer("\nplain", final=False) == ("plain", True)
    assert render_answer("x <glm_block>{}</glm_block> y", final=False) == ("x  y", True)
    assert render_answer("x <glm_block>{}", final=False) == ("x ", False)
    assert render_answer("x <glm", final=False) == ("x ", False)
    assert render_answer("x <glm", final=True) == ("x <glm", True)
    assert render_answer("x <p", final=False) == ("x <p", True)


# ---- re-chunking ----------------------------------------------------------------

def _rechunk(events: list[dict], cuts_for) -> list[dict]:
    """The thinking scenario with every delta_content append split at other points."""
    out = []
    for i, event in enumerate(events):
        data = event["data"]
        text = data.get("delta_content")
        if data.get("phase") in ("thinking", "answer") and text:
            points = sorted({c for c in cuts_for(i, len(text)) if 0 < c < len(text)})
            for a, b in zip([0, *points], [*points, len(text)], strict=True):
                out.append(chunk(data["phase"], delta_content=text[a:b]))
        else:
            out.append(event)
    return out


def test_thinking_fed_one_character_at_a_time():
    scenario = SCENARIOS["thinking"]
    events = _rechunk(scenario.events, lambda _i, n: range(n))
    _, pieces = run(events)
    assert joined(pieces) == (scenario.reasoning, scenario.content)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_thinking_rechunked_anywhere(data):
    scenario = SCENARIOS["thinking"]
    events = _rechunk(scenario.events,
                      lambda _i, n: data.draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=8)))
    assembler, pieces = run(events)
    assert joined(pieces) == (scenario.reasoning, scenario.content)
    assert assembler.usage == scenario.usage
    answer_started = False
    for reasoning, text in pieces:
        assert not (answer_started and reasoning)
        answer_started = answer_started or bool(text)
        assert "<" not in reasoning + text and "glm" not in text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="ab> <\n", max_size=8), max_size=40), st.booleans())
def test_reasoning_rendered_line_by_line_equals_the_full_render(deltas, summary):
    """The assembler renders complete reasoning lines once; the result must not differ."""
    opener = zai_scenarios.OPENER if summary else '<details type="reasoning" done="false">\n> '
    assembler, shown = AnswerAssembler(), []
    for delta in [opener, *deltas]:
        shown.append(assembler.feed(zai_scenarios.chunk("thinking", delta_content=delta))[0])
    shown.append(assembler.finish()[0])
    body = (opener + "".join(deltas)).split(">", 1)[1]
    assert "".join(shown) == render_reasoning(body, closed=True)


# ---- tail edits among plain pieces ------------------------------------------------

def test_tail_edit_after_several_plain_pieces_does_not_repeat_text():
    """Z.ai's browser shows "toketoketoke [tail]": the edit cuts at offset 8 and rewrites."""
    events = answer("toke", "toke", "toke") + [chunk("answer", edit_index=8, edit_content="toke [tail]")]
    _, pieces = run(events)
    assert joined(pieces) == ("", "toketoketoke [tail]")


PLAIN = st.text(alphabet="ab ,.\n你🙂", min_size=1, max_size=6)


@st.composite
def plain_pieces_and_tail_edits(draw, prefix: str = ""):
    """Events a browser would replay: any number of plain appends between tail rewrites
    that repeat the text they cut and add some; and the raw message they leave."""
    raw, events = prefix, []
    if prefix:
        events.append(chunk("thinking", delta_content=prefix))
    for _ in range(draw(st.integers(1, 6))):
        for piece in draw(st.lists(PLAIN, max_size=6)):
            raw += piece
            events.append(chunk("answer", delta_content=piece))
        cut = draw(st.integers(len(prefix), len(raw)))
        rewrite = raw[cut:] + draw(st.text(alphabet="xy 🙂", max_size=4))
        events.append(chunk("answer", edit_index=utf16_len(raw[:cut]), edit_content=rewrite))
        raw = raw[:cut] + rewrite
    return events, raw


@settings(max_examples=300, deadline=None)
@given(plain_pieces_and_tail_edits())
def test_tail_edits_among_any_number_of_plain_pieces_show_the_browsers_text(case):
    events, raw = case
    _, pieces = run(events)
    assert joined(pieces) == ("", render_answer(raw, final=True)[0])


REASONED = OPENER + "Hmm.\n</details>\n"


@settings(max_examples=200, deadline=None)
@given(plain_pieces_and_tail_edits(prefix=REASONED))
def test_tail_edits_after_reasoning_show_the_browsers_text(case):
    events, raw = case
    _, pieces = run(events)
    assert joined(pieces) == ("Hmm.", render_answer(raw[len(REASONED):], final=True)[0])
