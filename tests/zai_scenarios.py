"""Z.ai answer streams as data: what the fake upstream serves and the unit tests replay.

Each scenario is the list of JSON objects Z.ai would send as ``data:`` lines, plus
what a correct proxy must show for them. The fake upstream picks a scenario from the
prompt (``scenario:<name>`` anywhere in the last user message); the translator tests
feed the same events without HTTP. Each event is ``{"type": "chat:completion", "data":
{...}}`` with a ``phase`` (thinking, answer, tool_call, other, done), ``delta_content``
or an ``edit_index``/``edit_content`` edit (UTF-16 offsets), and ``usage`` at the end,
as the web chat sends them (``zto/translate.py`` reads them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

USAGE = {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}

OPENER = '<details type="reasoning" done="false">\n<summary>Thinking…</summary>\n> '


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, as JavaScript counts string indexes."""
    return len(text.encode("utf-16-le")) // 2


def chunk(phase: str, **fields) -> dict:
    return {"type": "chat:completion", "data": {"phase": phase, **fields}}


def done() -> dict:
    return chunk("done", done=True, delta_content="")


def usage(values: dict = USAGE) -> dict:
    return chunk("other", usage=dict(values))


@dataclass(frozen=True)
class Scenario:
    events: list[dict]
    reasoning: str = ""
    content: str = ""
    usage: dict | None = None
    # An error the client must see: (status before streaming, message fragment).
    error: tuple[int, str] | None = None
    extra: dict = field(default_factory=dict)


def _plain() -> Scenario:
    parts = ["Hello", ", ", "world", "!"]
    return Scenario(
        events=[chunk("answer", delta_content=p) for p in parts] + [usage(), done()],
        content="Hello, world!",
        usage=USAGE,
    )


def _thinking() -> Scenario:
    """Thinking, the answer-phase edit that carries the answer's first characters,
    answer deltas, then a tail rewrite that repeats sent text and adds a suffix."""
    reasoning_quoted = "> Let me think about it.\n> Second line.\n>\n> Third 你好 line."
    raw = ""
    events = []

    def append(phase: str, text: str) -> None:
        nonlocal raw
        raw += text
        events.append(chunk(phase, delta_content=text))

    append("thinking", OPENER)
    append("thinking", "Let me think")
    append("thinking", " about it.\n> Second line")
    append("thinking", ".\n>\n> Third 你好 line.")
    index = utf16_len(raw[: raw.index('done="') + len('done="')])
    edit = (
        'true" duration="2" view="" last_tool_call_name="">\n'
        "<summary>Thought for 2 seconds</summary>\n"
        f"{reasoning_quoted}\n</details>\nHel"
    )
    raw = raw[: raw.index('done="') + len('done="')] + edit
    events.append(chunk("answer", edit_index=index, edit_content=edit))
    append("answer", "lo 🙂, wor")
    append("answer", "ld!")
    # The emoji before the rewrite point makes the UTF-16 index differ from Python's.
    tail_start = raw.rindex("wor")
    events.append(
        chunk("other", edit_index=utf16_len(raw[:tail_start]), edit_content="world! Bye.")
    )
    events += [usage(), done()]
    return Scenario(
        events=events,
        reasoning="Let me think about it.\nSecond line.\n\nThird 你好 line.",
        content="Hello 🙂, world! Bye.",
        usage=USAGE,
    )


def _error(event: dict, message: str, status: int = 426) -> Scenario:
    return Scenario(events=[event], error=(status, message))


STALE_DETAIL = "Your client version (unknown) is outdated, please refresh the page."


CAPTCHA_ERROR = {
    "captcha_error_type": "missing_param",
    "code": "FRONTEND_CAPTCHA_REQUIRED",
    "error_code": "FRONTEND_CAPTCHA_REQUIRED",
    "detail": "Please refresh the page to update the app, then try again.",
}
USER_LEVEL_DETAIL = "Model not available for current user level"


def _mid_stream_error() -> Scenario:
    return Scenario(
        events=[
            chunk("answer", delta_content="Partial "),
            chunk("answer", delta_content="answer"),
            {"type": "chat:completion", "data": {"error": {"detail": "Internal failure", "code": 500}, "done": True}},
        ],
        content="Partial answer",
        error=(500, "Internal failure"),
    )


def _upstream_tools() -> Scenario:
    """Z.ai running its own search tool: a glm_block the client must not see as text."""
    raw = ""
    events = []
    events.append(chunk("answer", delta_content="Let me search. "))
    raw += "Let me search. "
    block = '<glm_block view="">{"type": "mcp", "data": {"metadata": {"name": "search", "arguments": "{\\"q\\": \\"x\\"}"}}}</glm_block>'
    events.append(chunk("tool_call", edit_index=utf16_len(raw), edit_content=block[:40]))
    raw += block[:40]
    events.append(chunk("tool_call", edit_index=utf16_len(raw), edit_content=block[40:]))
    raw += block[40:]
    events.append(chunk("answer", delta_content="\n\nFound it."))
    events += [usage(), done()]
    return Scenario(events=events, content="Let me search. \n\nFound it.", usage=USAGE)


def _long(count: int = 200) -> Scenario:
    words = [f"w{i} " for i in range(count)]
    return Scenario(
        events=[chunk("answer", delta_content=w) for w in words] + [usage(), done()],
        content="".join(words),
        usage=USAGE,
    )


def _bulk(count: int = 1200, size: int = 8000) -> Scenario:
    """About 10 MB of answer text: more than every socket buffer between zto and a
    client that stops reading holds, so zto's writes block."""
    piece = "x" * (size - 1) + " "
    return Scenario(
        events=[chunk("answer", delta_content=piece) for _ in range(count)] + [usage(), done()],
        content=piece * count,
        usage=USAGE,
    )


def _long50() -> Scenario:
    """The benchmark's slow stream (``bench/``): 50 answer chunks, then ``done`` carrying
    the usage. 51 events, so at ``transport:delay=0.1`` the last byte leaves 5.0 s after
    the first."""
    words = [f"w{i} " for i in range(50)]
    return Scenario(
        events=[chunk("answer", delta_content=w) for w in words]
        + [chunk("done", done=True, delta_content="", usage=dict(USAGE))],
        content="".join(words),
        usage=USAGE,
    )


SCENARIOS: dict[str, Scenario] = {
    "plain": _plain(),
    "thinking": _thinking(),
    "no_usage": Scenario(
        events=[chunk("answer", delta_content="No usage here."), done()],
        content="No usage here.",
    ),
    # A body that ends cleanly without any done event: finished normally.
    "no_done": Scenario(
        events=[chunk("answer", delta_content="Ends "), chunk("answer", delta_content="early.")],
        content="Ends early.",
    ),
    "unicode": Scenario(
        events=[chunk("answer", delta_content=t) for t in ["你好，", "世界 🌍", "\u2028line"]]
        + [usage(), done()],
        content="你好，世界 🌍\u2028line",
        usage=USAGE,
    ),
    "error_426": _error(
        {
            "type": "chat:completion",
            "data": {
                "data": {"error": {"detail": STALE_DETAIL, "code": 426}, "done": True},
                "error": {"detail": STALE_DETAIL, "code": 426},
                "done": True,
            },
        },
        "outdated",
    ),
    "error_nested": _error(
        {"type": "chat:completion", "data": {"data": {"error": {"detail": "Nested failure", "code": 500}}}},
        "Nested failure",
        status=500,
    ),
    "error_toplevel": _error(
        {"type": "chat:completion", "error": {"detail": "Top-level failure", "code": 500}},
        "Top-level failure",
        status=500,
    ),
    "error_concurrency": _error(
        {"type": "chat:completion", "data": {"error": {"detail": "Too many concurrency requests", "code": 429}, "done": True}},
        "concurrency",
        status=429,
    ),
    # Since 12 May 2026: every completion without a captcha proof, guests and logged-in alike.
    "error_captcha": _error(
        {
            "type": "chat:completion",
            "error": CAPTCHA_ERROR,
            "data": {"error": CAPTCHA_ERROR, "data": {"error": CAPTCHA_ERROR, "done": True}, "done": True},
        },
        "captcha",
        status=200,
    ),
    # Guests may not use the newest models.
    "error_user_level": _error(
        {"type": "chat:completion", "data": {"error": {"code": 403, "detail": USER_LEVEL_DETAIL}, "done": True}},
        "user level",
        status=403,
    ),
    "mid_error": _mid_stream_error(),
    "upstream_tools": _upstream_tools(),
    "long": _long(),
    "long50": _long50(),
    "bulk": _bulk(),
}


def scenario_for_prompt(prompt: str) -> tuple[str, Scenario]:
    """The scenario a prompt names (``scenario:<name>``), else ``plain``."""
    for word in prompt.split():
        if word.startswith("scenario:"):
            name = word.split(":", 1)[1]
            if name in SCENARIOS:
                return name, SCENARIOS[name]
    return "plain", SCENARIOS["plain"]
