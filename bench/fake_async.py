"""The fake Z.ai upstream for benchmarks: the same protocol as ``tests/fake_zai.py``,
served by one asyncio event loop instead of a thread per connection.

The threaded test fake spends a thread and a GIL hand-over on every chunk of every
open stream; with 1000 slow streams that costs the box the CPU the proxy needs. This
one answers the same requests with the same checks (``fake_zai.check_completion``:
token, query, front-end version, hmac or sha256 signature, body), the same guest
tokens and landing page (a ``FakeZai`` instance holds that state, never started), and
the same answers (``zai_scenarios``, chosen by ``scenario:<name>``). Of the
``transport:`` words it honours ``delay=<s>`` only, and it paces a stream against the
clock (event *i* leaves at start + *i* × delay) so pacing does not drift. No failure
injection, no request recording: counters only, at ``GET /_fake/stats``.

It also serves Z.ai's official API at ``POST /api/paas/v4/chat/completions`` (the
protocol ``zto/official.py`` states): a Bearer key among ``--accept-key``, and the same
scenarios' answer text as OpenAI-style chunks (``choices[0].delta.content``), the last
with ``finish_reason`` and ``usage``, then ``data: [DONE]``, paced the same way.

    python -m bench.fake_async --port 0 --accept-token TOKEN [--accept-key KEY] [--latency 0.02]

prints its origin on the first stdout line and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fake_zai  # noqa: E402
import zai_scenarios  # noqa: E402

MAX_HEAD = 65536
MAX_BODY = 16 * 1024 * 1024
OFFICIAL_PATH = "/api/paas/v4/chat/completions"
OFFICIAL_USAGE = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}


class AsyncFake:
    def __init__(self, state: fake_zai.FakeZai, latency: float = 0.0, api_keys: tuple[str, ...] = ()) -> None:
        self.state = state  # configuration, guest users, landing page; its server is never started
        self.latency = latency
        self.api_keys = frozenset(api_keys)
        self.counters = {"connections_opened": 0, "connections_open": 0, "completions": 0,
                         "streams_finished": 0, "streams_aborted": 0, "rejected": 0}
        self._blocks: dict[str, list[bytes]] = {}
        self._official_blocks: dict[str, list[bytes]] = {}

    def stats(self) -> dict:
        return dict(self.counters, guest_tokens=len(self.state.guest_tokens))

    # -- connections -----------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters["connections_opened"] += 1
        self.counters["connections_open"] += 1
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
            pass
        finally:
            self.counters["connections_open"] -= 1
            writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read and answer one request; False when the connection should end."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed between requests
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader)
        else:
            length = int(headers.get("content-length") or 0)
            if length > MAX_BODY:
                raise ValueError("body too large")
            body = await reader.readexactly(length) if length else b""
        url = urlsplit(target)
        if self.latency:
            await asyncio.sleep(self.latency)
        path = url.path
        if method == "GET" and path == fake_zai.STATS_PATH:
            self._send(writer, 200, self.stats())
        elif method == "GET" and path == "/":
            self._send(writer, 200, self.state._landing_page(), "text/html")
        elif method == "GET" and path in ("/api/v1/auths/", "/api/v1/auths"):
            self._auths(writer, headers)
        elif method == "POST" and path in ("/api/chat/completions", "/api/v2/chat/completions"):
            await self._completion(writer, headers, dict(parse_qsl(url.query, keep_blank_values=True)), body)
        elif method == "POST" and path == OFFICIAL_PATH:
            await self._official(writer, headers, body)
        else:
            self._send(writer, 404, {"detail": "Not Found"})
        await writer.drain()
        return headers.get("connection", "").lower() != "close"

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        data = bytearray()
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16):
            data += await reader.readexactly(size)
            await reader.readuntil(b"\r\n")
            if len(data) > MAX_BODY:
                raise ValueError("body too large")
        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
            pass
        return bytes(data)

    @staticmethod
    def _send(writer: asyncio.StreamWriter, status: int, body, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nServer: FakeZaiAsync/1.0\r\n"
            f"Content-Type: {content_type}; charset=utf-8\r\nContent-Length: {len(data)}\r\n"
            f"Set-Cookie: acw_tc={uuid.uuid4().hex}; Path=/\r\n\r\n".encode() + data)

    # -- endpoints -------------------------------------------------------------------

    def _auths(self, writer, headers: dict) -> None:
        token = _bearer(headers)
        if token and token in self.state._users:
            self._send(writer, 200, self.state._users[token])
        elif token:
            self._send(writer, 401, {"detail": "401: Invalid token"})
        else:
            self._send(writer, 200, self.state._new_guest())

    async def _completion(self, writer, headers: dict, query: dict, raw: bytes) -> None:
        self.counters["completions"] += 1
        token = _bearer(headers)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        prompt = fake_zai.last_user_text(body.get("messages")) if isinstance(body, dict) else None
        verdict = fake_zai.check_completion(self.state, token, query, headers, raw, body, prompt)
        if verdict == "stale":
            return await self._stream(writer, "error_426", 0.0)
        if verdict is not None:
            self.counters["rejected"] += 1
            status, detail = verdict
            return self._send(writer, status, {"detail": detail})
        name, _ = zai_scenarios.scenario_for_prompt(prompt)
        delay = fake_zai._transport(prompt).get("delay", self.state.chunk_delay)
        await self._stream(writer, name, delay if isinstance(delay, float) else 0.0)

    async def _official(self, writer, headers: dict, raw: bytes) -> None:
        self.counters["completions"] += 1
        if _bearer(headers) not in self.api_keys:
            self.counters["rejected"] += 1
            return self._send(writer, 401, {"error": {"code": "1000", "message": "Authentication failed."}})
        try:
            body = json.loads(raw)
            prompt = fake_zai.last_user_text(body.get("messages")) or ""
        except (ValueError, AttributeError):
            return self._send(writer, 400, {"error": {"code": "1214", "message": "The body is not JSON."}})
        name, _ = zai_scenarios.scenario_for_prompt(prompt)
        delay = fake_zai._transport(prompt).get("delay", self.state.chunk_delay)
        blocks = self._official_blocks.get(name)
        if blocks is None:
            blocks = self._official_blocks[name] = _chunked(official_events(name))
        await self._write_stream(writer, blocks, delay if isinstance(delay, float) else 0.0)

    async def _stream(self, writer: asyncio.StreamWriter, scenario: str, delay: float) -> None:
        """The scenario's events as chunked SSE, event *i* at start + *i* × delay."""
        blocks = self._blocks.get(scenario)
        if blocks is None:
            blocks = self._blocks[scenario] = _chunked(
                b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\n\n"
                for e in zai_scenarios.SCENARIOS[scenario].events)
        await self._write_stream(writer, blocks, delay)

    async def _write_stream(self, writer: asyncio.StreamWriter, blocks: list[bytes], delay: float) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nServer: FakeZaiAsync/1.0\r\n"
                     b"Content-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        start = time.monotonic()
        try:
            for i, block in enumerate(blocks):
                if i and delay:
                    wait = start + i * delay - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                writer.write(block)
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            self.counters["streams_aborted"] += 1
            raise
        self.counters["streams_finished"] += 1


def official_events(scenario: str) -> list[bytes]:
    """A scenario's answer text as the official API streams it: one chunk per piece of
    answer text, then a last chunk with the finish reason and usage and ``[DONE]``."""
    head = {"id": "bench-" + scenario, "created": 1700000000, "model": "glm-4.6"}
    pieces = [e["data"]["delta_content"] for e in zai_scenarios.SCENARIOS[scenario].events
              if e["data"].get("phase") == "answer" and e["data"].get("delta_content")]
    events = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece}}]}
              for piece in pieces]
    events.append({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": "stop"}], "usage": OFFICIAL_USAGE})
    blocks = [b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\n\n" for e in events]
    blocks[-1] += b"data: [DONE]\n\n"  # with the last chunk: as many blocks as the web chat's events, same pacing
    return blocks


def _chunked(datas) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(data), data) for data in datas]


def _bearer(headers: dict) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


async def serve(args) -> None:
    state = fake_zai.FakeZai(scheme=args.scheme, secret=args.secret, accepted_tokens=args.accept_token,
                             landing_version=args.landing_version, min_fe_version=args.min_fe_version)
    fake = AsyncFake(state, latency=args.latency, api_keys=tuple(args.accept_key))
    server = await asyncio.start_server(fake.handle, "127.0.0.1", args.port, backlog=4096, limit=MAX_HEAD)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Fake Z.ai upstream on asyncio (for bench/)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--scheme", choices=("hmac", "sha256"), default="hmac")
    parser.add_argument("--secret", default=fake_zai.DEFAULT_SECRET)
    parser.add_argument("--landing-version", default="prod-fe-1.0.94")
    parser.add_argument("--min-fe-version", default="prod-fe-1.0.94")
    parser.add_argument("--accept-token", action="append", default=[])
    parser.add_argument("--accept-key", action="append", default=[], help="an official-API key it accepts")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds before the headers of every answer (a simulated round trip)")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
