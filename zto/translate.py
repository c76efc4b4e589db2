"""From Z.ai's chat events to the text a client should see: pure code, no I/O.

Z.ai's front end keeps the assistant message as one raw string that events either
extend (``delta_content``) or cut and rewrite (``edit_index`` + ``edit_content``,
where the index counts UTF-16 code units, as JavaScript does). Reasoning sits at the
start of that string inside ``<details type="reasoning">`` with every line quoted
by ``> ``; the answer follows ``</details>``.

``AnswerAssembler`` keeps that raw string exactly as the browser would, renders it
into (reasoning, answer) and returns only the text the client has not had yet, so
the answer's first characters hidden inside the thinking-closing rewrite are sent,
and a tail rewrite that repeats sent text yields only its new suffix. Text that may
still turn out to be markup (a half-received tag or quote mark) is held back until
it is known, and flushed by ``finish``. Upstream tool blocks (``<glm_block>``) are
Z.ai's own search calls, not the client's: they are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

REASONING_OPEN = '<details type="reasoning"'
DETAILS_CLOSE = "</details>"
SUMMARY_OPEN = "<summary"
SUMMARY_CLOSE = "</summary>"
TOOL_OPEN = "<glm_block"
TOOL_CLOSE = "</glm_block>"


CAPTCHA_CODE = "FRONTEND_CAPTCHA_REQUIRED"


@dataclass(frozen=True)
class UpstreamFailure:
    """An error Z.ai reported inside its stream."""

    message: str
    code: int | None = None
    captcha: bool = False  # the refusal of May 2026: every answer needs a captcha proof


def is_captcha_refusal(error: dict) -> bool:
    """Whether an error object (or event) is Z.ai's captcha refusal."""
    return CAPTCHA_CODE in (error.get("code"), error.get("error_code")) or "captcha_error_type" in error


def find_error(event: dict) -> UpstreamFailure | None:
    """The error an event carries at the top level, in ``data`` or in ``data.data``; the
    captcha refusal's fields count wherever they are."""
    data = event.get("data")
    levels: tuple[dict, ...] = (event,)
    if isinstance(data, dict):
        inner = data.get("data")
        levels = (event, data, inner) if isinstance(inner, dict) else (event, data)
    # Called on every event: no lists built, and the common case (no error) is a few lookups.
    for level in levels:
        if failure := _failure_of(level.get("error")):
            return failure
    for level in levels:
        if is_captcha_refusal(level):
            return _failure_of(level)
    return None


def _failure_of(error: object) -> UpstreamFailure | None:
    if isinstance(error, dict) and error:
        message = error.get("detail") or error.get("message") or str(error)
        code = error.get("code")
        if is_captcha_refusal(error):
            kind = error.get("captcha_error_type") or "required"
            return UpstreamFailure(f"captcha {kind} ({CAPTCHA_CODE}): {message}", captcha=True)
        return UpstreamFailure(str(message), code if isinstance(code, int) else None)
    if isinstance(error, str) and error:
        return UpstreamFailure(error)
    return None


def utf16_to_index(text: str, units: int) -> int:
    """The Python index of the character at UTF-16 offset ``units`` of ``text``."""
    if units <= 0:
        return 0
    prefix = text.encode("utf-16-le")[: 2 * units]
    return len(prefix.decode("utf-16-le", errors="ignore"))


def _unquote(line: str) -> str:
    if line.startswith("> "):
        return line[2:]
    if line.startswith(">"):
        return line[1:]
    return line


def render_reasoning(body: str, closed: bool) -> str:
    """The reasoning text of a ``<details>`` body: no summary, no quote marks,
    its own line breaks kept. While ``closed`` is false, a last line that may still
    become markup is held back, and so are trailing line breaks."""
    return _reasoning_lines(body, closed).strip("\n")


def _reasoning_lines(body: str, closed: bool) -> str:
    """``render_reasoning`` before the outer line breaks are stripped: rendering a
    body piece by piece, at line breaks, gives the same text joined."""
    start = body.find(SUMMARY_OPEN)
    if start >= 0:
        end = body.find(SUMMARY_CLOSE, start)
        if end >= 0:
            body = body[:start] + body[end + len(SUMMARY_CLOSE):]
        elif not closed:
            body = body[:start]
    lines = body.split("\n")
    if not closed and lines[-1].startswith("<") and (
        DETAILS_CLOSE.startswith(lines[-1]) or SUMMARY_OPEN.startswith(lines[-1][: len(SUMMARY_OPEN)])
    ):
        lines[-1] = ""
    return "\n".join(map(_unquote, lines))


def render_answer(raw: str, final: bool) -> tuple[str, bool]:
    """The answer text of the raw answer part, and whether it is complete (nothing
    held back). Upstream tool blocks are removed; an unfinished one is held back."""
    text = raw.lstrip("\n")
    complete = True
    while (start := text.find(TOOL_OPEN)) >= 0:
        end = text.find(TOOL_CLOSE, start)
        if end < 0:
            text, complete = text[:start], False
            break
        text = text[:start] + text[end + len(TOOL_CLOSE):]
    if not final:
        tail = text.rfind("<", -len(TOOL_OPEN))
        if tail >= 0 and TOOL_OPEN.startswith(text[tail:]):
            text, complete = text[:tail], False
    return text, complete


class AnswerAssembler:
    """Feed Z.ai events in order; get back the new (reasoning, answer) text of each."""

    def __init__(self) -> None:
        self._raw = ""
        self._appended: list[str] = []  # appends not yet joined into _raw: joining each would be quadratic
        self.usage: dict | None = None
        self.error: UpstreamFailure | None = None
        self.done = False
        self._astral = False  # raw holds characters outside the BMP: UTF-16 indexes differ
        self._answer_at: int | None = None  # where the answer starts in raw, once known
        self._reasoning_sent = 0
        self._answer_sent = 0
        self._clean = False  # the last render held nothing back and saw no tool block
        # Reasoning lines already rendered: raw[_lines_from:_lines_to] gave _lines_text.
        self._lines_from = self._lines_to = -1
        self._lines_text = ""

    def raw_text(self) -> str:
        """All the text Z.ai sent so far, reasoning and answer, markup included."""
        return self._raw + "".join(self._appended)

    def feed(self, event: dict) -> tuple[str, str]:
        error = find_error(event)
        if error is not None:
            self.error = error
            self.done = True
            return "", ""
        data = event.get("data")
        if not isinstance(data, dict):
            return "", ""
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]
        if data.get("done") or data.get("phase") == "done":
            self.done = True
        edit_index, edit_content = data.get("edit_index"), data.get("edit_content")
        if isinstance(edit_content, str) and isinstance(edit_index, int) and not isinstance(edit_index, bool):
            self._edit(edit_index, edit_content)
            return self._render(final=False)
        delta = data.get("delta_content")
        if not isinstance(delta, str) or not delta:
            return "", ""
        self._append(delta)
        if self._clean and self._answer_sent and "<" not in delta:
            # The common case: plain answer text after plain answer text.
            self._answer_sent += len(delta)
            return "", delta
        return self._render(final=False)

    @property
    def started(self) -> bool:
        """Z.ai has written some of the message, shown yet or not (reasoning, markup)."""
        return bool(self._raw or self._appended)

    @property
    def raw(self) -> str:
        """The message's raw text, as the browser holds it."""
        if self._appended:
            self._raw += "".join(self._appended)
            self._appended.clear()
        return self._raw

    def finish(self) -> tuple[str, str]:
        """End of stream: release text held back while it might have been markup."""
        return self._render(final=True)

    def _append(self, text: str) -> None:
        if not self._astral and not text.isascii() and any(ord(c) > 0xFFFF for c in text):
            self._astral = True
        self._appended.append(text)

    def _edit(self, units: int, text: str) -> None:
        raw = self.raw  # joins the pending appends: the cut applies to the whole message
        index = utf16_to_index(raw, units) if self._astral else max(units, 0)
        self._raw = raw[:index]
        self._lines_from = -1
        if self._answer_at is not None and index < self._answer_at:
            self._answer_at = None
        self._clean = False
        self._append(text)

    def _locate_answer(self, final: bool) -> tuple[tuple[int, int] | None, int | None]:
        """((start, end) of the reasoning body in raw, or None; answer offset or None)."""
        raw = self.raw
        if self._answer_at is not None:
            return None, self._answer_at
        stripped = raw.lstrip()
        if not stripped.startswith(REASONING_OPEN):
            if not final and REASONING_OPEN.startswith(stripped):
                return None, None  # may still become the reasoning opener
            self._answer_at = 0
            return None, 0
        opener_end = raw.find(">", raw.find(REASONING_OPEN))
        if opener_end < 0:
            return (len(raw), len(raw)), None
        # Lines already rendered hold no closing tag: search after them.
        close = raw.find(DETAILS_CLOSE, max(opener_end, self._lines_to - len(DETAILS_CLOSE)))
        if close < 0:
            return (opener_end + 1, len(raw)), None
        self._answer_at = close + len(DETAILS_CLOSE)
        return (opener_end + 1, close), self._answer_at

    def _reasoning(self, start: int, end: int, closed: bool) -> str:
        """render_reasoning(raw[start:end]), rendering each complete line only once."""
        raw = self.raw
        if self._lines_from != start:
            self._lines_from, self._lines_to, self._lines_text = start, start, ""
        cut = raw.rfind("\n", self._lines_to, end) + 1
        if cut > self._lines_to:
            piece = raw[self._lines_to:cut]
            summary = piece.find(SUMMARY_OPEN)
            if summary < 0 or piece.find(SUMMARY_CLOSE, summary) >= 0:
                self._lines_text += _reasoning_lines(piece, closed=True)
                self._lines_to = cut
        return (self._lines_text + _reasoning_lines(raw[self._lines_to:end], closed)).strip("\n")

    def _render(self, final: bool) -> tuple[str, str]:
        body, answer_at = self._locate_answer(final)
        new_reasoning = new_answer = ""
        if body is not None and not self._answer_sent:
            reasoning = self._reasoning(*body, closed=final or answer_at is not None)
            new_reasoning = reasoning[self._reasoning_sent:]
            self._reasoning_sent = max(self._reasoning_sent, len(reasoning))
        if answer_at is not None:
            answer, self._clean = render_answer(self.raw[answer_at:], final)
            new_answer = answer[self._answer_sent:]
            self._answer_sent = max(self._answer_sent, len(answer))
        return new_reasoning, new_answer
