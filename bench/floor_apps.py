"""The smallest apps on zto's stack, for ``python -m bench.floor``: what Flask under
gunicorn's gevent worker costs before any of zto's own work.

``FLOOR_APP`` picks one (each a Flask app with one view, at the official API's path and
at ``/v1/chat/completions``, that reads the body and streams an answer):

- ``static``: ``FLOOR_TEXT`` in two fixed OpenAI chunks, then ``[DONE]``; no upstream;
- ``requests``: the body of the official API's answer (``FLOOR_UPSTREAM``), streamed
  through a ``requests.Session`` as it arrives, unchanged;
- ``urllib3``: the same through a urllib3 connection pool, without requests.

None of them checks a key, bounds the body, translates, counts or logs: zto does all
of that on top of the ``requests`` app's path.
"""

from __future__ import annotations

import json
import os

from flask import Flask, Response, request

KEY = "0f3c9a1b2d4e5f60718293a4b5c6d7e8.BenchBenchBench0"  # figures.OFFICIAL_KEY
PATH = "/api/paas/v4/chat/completions"
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", "Accept": "text/event-stream"}


def static_chunks(text: str) -> list[bytes]:
    """``text`` as the official API would stream it, in two chunks, then ``[DONE]``."""
    half = len(text) // 2
    return [b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant", "content": part}}]}).encode()
            + b"\n\n" for part in (text[:half], text[half:])] + [b"data: [DONE]\n\n"]


def create_app(kind: str, upstream: str) -> Flask:
    app = Flask(__name__)

    if kind == "static":
        chunks = static_chunks(os.environ.get("FLOOR_TEXT", "Hello, world."))

        def answer(body: bytes):
            return iter(chunks)
    elif kind == "requests":
        import requests

        session = requests.Session()

        def answer(body: bytes):
            response = session.post(upstream + PATH, data=body, headers=HEADERS, stream=True)

            def chunks():
                yield from response.raw.read_chunked()
                response.close()
            return chunks()
    elif kind == "urllib3":
        import urllib3

        host, _, port = upstream.removeprefix("http://").partition(":")
        pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=100)

        def answer(body: bytes):
            response = pool.urlopen("POST", PATH, body=body, headers=HEADERS, preload_content=False)

            def chunks():
                yield from response.read_chunked()
                response.release_conn()
            return chunks()
    else:
        raise SystemExit(f"FLOOR_APP: static, requests or urllib3, not {kind!r}")

    @app.post(PATH)  # asked as the official API is, with its body, which goes upstream unchanged
    @app.post("/v1/chat/completions")
    def chat():
        return Response(answer(request.get_data()), mimetype="text/event-stream")

    return app


app = create_app(os.environ.get("FLOOR_APP", "static"), os.environ.get("FLOOR_UPSTREAM", ""))
