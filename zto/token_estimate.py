"""Rough token counts, for when no upstream counted: about four characters a token in
ASCII, one a token outside it (CJK text runs near one a character). Used by
``/v1/messages/count_tokens`` and for the usage of web-chat answers Z.ai sent none
for. Pure code."""

from __future__ import annotations

import json

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """About how many tokens ``text`` is; 0 for none."""
    ascii_chars = len(text.encode("ascii", "ignore"))
    return -(-ascii_chars // CHARS_PER_TOKEN) + len(text) - ascii_chars


def estimated_usage(prompt: object, completion: str) -> dict:
    """OpenAI-shaped usage estimated from the prompt (anything JSON, e.g. the messages
    sent) and the completion's text, marked ``estimated``."""
    prompt_tokens = estimate_tokens(json.dumps(prompt, ensure_ascii=False))
    completion_tokens = estimate_tokens(completion)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens, "estimated": True}
