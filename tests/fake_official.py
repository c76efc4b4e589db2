"""A fake of Z.ai's official API (the open platform): a test fixture, never part of the product.

A real threaded HTTP/1.1 server on a loopback port serving ``POST {base}/chat/completions``
the way ``zto/official.py``'s docstring describes the official API: a Bearer key check,
model ids, Z.ai's ``thinking`` switch (reasoning first when it is on or left out, as
Z.ai's default is on), OpenAI-style SSE chunks with the usage in the last one, whole
answers when ``stream`` is false, tool calls (whole, or with ``tool_stream`` argument
pieces), a reply to a ``tool`` message, image parts for the vision model only, and every
business error code, injectable once (``fail_next``) or per key (``fail_key``), as an
HTTP error or as a ``data:`` line inside a stream.

What the answer is follows from the request: a ``tool`` message last -> a reply quoting
it; tools offered -> a call of the first (or the chosen) tool; image parts -> a reply
saying how many images it saw; else ``Hello from <model id>!``. Words in the last user
message change how it travels: ``transport:cut`` (the connection dies mid-stream),
``transport:delay=<s>`` (between chunks), ``transport:repeat=<n>`` (a longer answer).

In-process::

    with FakeOfficial() as fake:
        requests.post(fake.base_url + "/chat/completions", ...)

As its own process (prints the base URL on the first stdout line, serves until killed)::

    python tests/fake_official.py --port 0 --key KEY

``GET /_fake/stats`` answers the counters (connections opened, streams open...) as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

try:
    from .fake_zai import _CONNECTION_ERRORS, STATS_PATH, LoopbackFake, TrackedHandler
except ImportError:  # run as a script, or tests/ is not a package
    from fake_zai import _CONNECTION_ERRORS, STATS_PATH, LoopbackFake, TrackedHandler

BASE_PATH = "/api/paas/v4"
# Keys look like the console's: 32 hex digits, a dot, 16 letters.
DEFAULT_KEYS = ("0f3c9a1b2d4e5f60718293a4b5c6d7e8.AbCdEfGhIjKlMnOp", "9e8d7c6b5a4f30211203f4e5d6c7b8a9.QrStUvWxYzAbCdEf")
KEY_SHAPE = re.compile(r"^[0-9a-f]{32}\.[A-Za-z0-9]{16}$")
MODELS = ("glm-4.5", "glm-4.5-air", "glm-4.5-flash", "glm-4.6", "glm-4.6v", "glm-4.7", "glm-5", "glm-5.1")
VISION_MODELS = ("glm-4.6v",)
ROLES = ("system", "user", "assistant", "tool")
REASONING = ("Let me think", " about it.")
TOOL_ARGUMENTS = '{"city": "Paris", "unit": "celsius"}'
USAGE = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20, "prompt_tokens_details": {"cached_tokens": 4}}
# Business code -> (HTTP status, message), as Z.ai answers them.
BUSINESS_ERRORS = {
    "1000": (401, "Authentication failed."),
    "1001": (401, "The Authorization header is missing; authentication is impossible."),
    "1002": (401, "Invalid Authorization token."),
    "1003": (401, "The Authorization token has expired."),
    "1113": (429, "Your account is in arrears; please recharge and try again."),
    "1211": (400, "Model not found."),
    "1214": (400, "Invalid parameter."),
    "1261": (400, "The prompt exceeds the maximum length."),
    "1301": (400, "The input or generated content may contain unsafe or sensitive content."),
    "1302": (429, "High concurrency usage of this API; please reduce concurrency or contact support."),
    "1303": (429, "High frequency usage of this API; please reduce frequency or contact support."),
    "1304": (429, "The daily call limit of this API has been reached."),
    "1305": (429, "The service may be temporarily overloaded; please try again later."),
    "500": (500, "Internal error."),
}
WHERE = ("http", "start", "middle")  # an injected error: HTTP status, first data line, after some text


@dataclass
class RecordedRequest:
    path: str
    headers: dict  # lower-case keys
    key: str | None
    body: object
    status: int | None = None  # HTTP status answered
    code: str | None = None  # the business code answered, if any
    outcome: str | None = None  # rejected, answered, finished, aborted, cut, failed_in_stream


@dataclass
class Reply:
    reasoning: list[str]
    content: list[str]
    tool_calls: list[dict]
    finish_reason: str


def error_body(code: str, message: str | None = None) -> dict:
    return {"error": {"code": code, "message": message or BUSINESS_ERRORS[code][1]}}


def _pieces(text: str) -> list[str]:
    """``text`` in word-sized pieces (spaces kept), as a model streams it."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _images(messages: list) -> list[str]:
    urls = []
    for message in messages:
        for part in message.get("content") if isinstance(message.get("content"), list) else ():
            if isinstance(part, dict) and part.get("type") == "image_url":
                image = part.get("image_url")
                urls.append(image.get("url", "") if isinstance(image, dict) else str(image))
    return urls


def _options(prompt: str) -> dict:
    options: dict = {}
    for word in prompt.split():
        if word.startswith("transport:"):
            name, _, value = word[len("transport:"):].partition("=")
            options[name] = float(value) if value else True
    return options


def check_request(body) -> tuple[str, str] | None:
    """The official API's checks of a completion body: None, or (business code, message)."""
    if not isinstance(body, dict):
        return "1214", "The body is not a JSON object."
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "1214", "model is required."
    if model not in MODELS:
        return "1211", f"Model not found: {model}."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "1214", "messages must be a non-empty array."
    call_ids: set[str] = set()
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return "1214", f"messages[{i}].role must be one of {', '.join(ROLES)}."
        if message["role"] == "assistant":
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
                    return "1214", f"messages[{i}].tool_calls need a function with string arguments."
                call_ids.add(call.get("id"))
        if message["role"] == "tool" and message.get("tool_call_id") not in call_ids:
            return "1214", f"messages[{i}].tool_call_id names no earlier tool call."
    if _images(messages) and model not in VISION_MODELS:
        return "1214", f"{model} does not accept image input; use a vision model such as glm-4.6v."
    thinking = body.get("thinking")
    if thinking is not None and (not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled")):
        return "1214", "thinking.type must be enabled or disabled."
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(
            isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
            and t["function"].get("name") for t in tools)):
        return "1214", "tools must be an array of function tools with names."
    if not isinstance(body.get("stream", False), bool):
        return "1214", "stream must be a boolean."
    return None


def reply_to(body: dict) -> Reply:
    """What the fake model answers to a (checked) body."""
    messages = body["messages"]
    thinking = (body.get("thinking") or {}).get("type", "enabled") == "enabled"
    reasoning = list(REASONING) if thinking else []
    last = messages[-1]
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    repeat = int(_options(_text(last.get("content"))).get("repeat", 1))
    if last["role"] == "tool":
        return Reply(reasoning, _pieces(f"The tool said: {_text(last.get('content'))}"), [], "stop")
    if tools and choice != "none":
        name = tools[0]["function"]["name"]
        if isinstance(choice, dict):
            name = choice.get("function", {}).get("name", name)
        call = {"id": "call_" + uuid.uuid4().hex[:20], "type": "function", "function": {"name": name, "arguments": TOOL_ARGUMENTS}}
        return Reply(reasoning, [], [call], "tool_calls")
    images = _images(messages)
    if images:
        text = f"I see {len(images)} image{'s' if len(images) > 1 else ''}, the first from {images[0][:24]}."
    else:
        text = f"Hello from {body['model']}!"
    content = _pieces(text) * repeat
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens < len(content):
        return Reply(reasoning, content[:max_tokens], [], "length")
    return Reply(reasoning, content, [], "stop")


class _Handler(TrackedHandler):
    server_version = "FakeOfficial/1.0"
    fake: FakeOfficial

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _fail(self, rec: RecordedRequest, code: str, message: str | None = None) -> None:
        # Recorded before the answer leaves: a client that has it may look at once.
        rec.code, rec.outcome, rec.status = code, "rejected", BUSINESS_ERRORS[code][0]
        self._send(rec.status, error_body(code, message))

    def do_GET(self):
        if urlsplit(self.path).path == STATS_PATH:
            self._send(200, self.fake.stats())
        else:
            self._send(404, {"error": {"code": "404", "message": "Not Found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if urlsplit(self.path).path != self.fake.base_path + "/chat/completions":
            self._send(404, {"error": {"code": "404", "message": "Not Found"}})
            return
        try:
            self._completion(raw)
        except _CONNECTION_ERRORS:
            self.close_connection = True

    def _completion(self, raw: bytes) -> None:
        fake = self.fake
        scheme, _, key = self.headers.get("Authorization", "").partition(" ")
        key = key.strip() if scheme.lower() == "bearer" and key.strip() else None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, key, body)
        with fake._lock:
            fake.requests.append(rec)
            injected = fake._failures.pop(0) if fake._failures else None
            per_key = fake._key_failures.get(key or "")
        if key is None:
            return self._fail(rec, "1001")
        if not KEY_SHAPE.match(key):
            return self._fail(rec, "1002")
        if key not in fake.keys:
            return self._fail(rec, "1000")
        if per_key:
            return self._fail(rec, per_key)
        if injected and (injected[1] == "http" or not (isinstance(body, dict) and body.get("stream"))):
            return self._fail(rec, injected[0])
        problem = check_request(body)
        if problem:
            return self._fail(rec, *problem)
        reply = reply_to(body)
        if body.get("stream"):
            self._stream(rec, body, reply, *(injected or (None, None)))
        else:
            rec.outcome, rec.status = "answered", 200
            self._send(200, fake.whole_answer(body, reply))

    def _stream(self, rec: RecordedRequest, body: dict, reply: Reply, code: str | None, where: str | None) -> None:
        fake = self.fake
        options = _options(_text(body["messages"][-1].get("content")))
        events = fake.stream_events(body, reply)
        if code and where == "start":
            events = [error_body(code)]
        elif code:
            events = events[:2] + [error_body(code)]
        blocks = [b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\n\n" for e in events]
        if not code:
            blocks.append(b"data: [DONE]\n\n")
        delay = float(options.get("delay", fake.chunk_delay))
        cut_at = max(1, len(blocks) // 2) if options.get("cut") else None
        rec.status, rec.code = 200, code
        fake._count("streams_open")
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, block in enumerate(blocks):
                if i and delay:
                    fake._stopping.wait(delay)
                if i == cut_at:
                    rec.outcome, self.close_connection = "cut", True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            rec.outcome = "failed_in_stream" if code else "finished"
            fake._count("streams_finished")
            self.wfile.write(b"0\r\n\r\n")
        except (*_CONNECTION_ERRORS, OSError):
            rec.outcome, self.close_connection = "aborted", True
            fake._count("streams_aborted")
        finally:
            fake._count("streams_open", -1)


class FakeOfficial(LoopbackFake):
    handler = _Handler
    name = "fake-official"

    def __init__(self, *, keys=DEFAULT_KEYS, base_path=BASE_PATH, chunk_delay=0.0, port=0):
        super().__init__(port)
        self.keys = tuple(keys)
        self.base_path = base_path
        self.chunk_delay = chunk_delay
        self.requests: list[RecordedRequest] = []
        self.counters = dict.fromkeys(("streams_open", "streams_finished", "streams_aborted"), 0)
        self._failures: list[tuple[str, str]] = []
        self._key_failures: dict[str, str] = {}

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What ZAI_API_BASE is set to."""
        return self.origin + self.base_path

    # -- what tests set
    def fail_next(self, code: str, count: int = 1, *, where: str = "http") -> None:
        """The next ``count`` completions fail with business ``code``: as an HTTP error, as
        the first ``data:`` line of a 200 stream (``start``), or after some text (``middle``;
        a whole answer then fails as HTTP)."""
        if code not in BUSINESS_ERRORS or where not in WHERE:
            raise ValueError(f"unknown failure {code!r} at {where!r}; codes {sorted(BUSINESS_ERRORS)}, places {WHERE}")
        with self._lock:
            self._failures.extend([(code, where)] * count)

    def fail_key(self, key: str, code: str | None) -> None:
        """Every completion with ``key`` fails with ``code`` (None: it works again)."""
        if code is not None and code not in BUSINESS_ERRORS:
            raise ValueError(f"unknown code {code!r}")
        with self._lock:
            if code is None:
                self._key_failures.pop(key, None)
            else:
                self._key_failures[key] = code

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._failures.clear()
            self._key_failures.clear()

    def stats(self) -> dict:
        with self._lock:
            return {**self.counters, "connections_opened": self.connections_opened, "connections_open": len(self._sockets),
                    "completions": len(self.requests)}

    def wait_for(self, name: str, value: int, timeout: float = 10.0) -> bool:
        """Wait until counter ``name`` is ``value``; whether it got there in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats()[name] == value:
                return True
            time.sleep(0.02)
        return False

    # -- answers
    def stream_events(self, body: dict, reply: Reply) -> list[dict]:
        head = {"id": uuid.uuid4().hex, "created": int(time.time()), "model": body["model"]}

        def chunk(delta: dict, finish_reason: str | None = None) -> dict:
            choice = {"index": 0, "delta": {"role": "assistant", **delta}}
            if finish_reason:
                choice["finish_reason"] = finish_reason
            return {**head, "choices": [choice]}

        events = [chunk({"reasoning_content": r}) for r in reply.reasoning]
        events += [chunk({"content": c}) for c in reply.content]
        for index, call in enumerate(reply.tool_calls):
            if body.get("tool_stream"):
                arguments = call["function"]["arguments"]
                first = {**call, "index": index, "function": {"name": call["function"]["name"], "arguments": ""}}
                events.append(chunk({"tool_calls": [first]}))
                events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[i:i + 7]}}]})
                           for i in range(0, len(arguments), 7)]
            else:
                events.append(chunk({"tool_calls": [{**call, "index": index}]}))
        events.append({**chunk({"content": ""}, reply.finish_reason), "usage": dict(USAGE)})
        return events

    def whole_answer(self, body: dict, reply: Reply) -> dict:
        message = {"role": "assistant", "content": "".join(reply.content)}
        if reply.reasoning:
            message["reasoning_content"] = "".join(reply.reasoning)
        if reply.tool_calls:
            message["tool_calls"] = [{**call, "index": i} for i, call in enumerate(reply.tool_calls)]
        return {"id": uuid.uuid4().hex, "request_id": uuid.uuid4().hex, "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "finish_reason": reply.finish_reason, "message": message}], "usage": dict(USAGE)}

    def _count(self, name: str, step: int = 1) -> None:
        with self._lock:
            self.counters[name] += step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Fake Z.ai official API (test fixture)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", action="append", help="an accepted API key (default: two built-in test keys)")
    parser.add_argument("--base-path", default=BASE_PATH)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    fake = FakeOfficial(keys=args.key or DEFAULT_KEYS, base_path=args.base_path, chunk_delay=args.chunk_delay,
                        port=args.port).start()
    fake.serve_until_stopped(fake.base_url)


if __name__ == "__main__":
    main()
