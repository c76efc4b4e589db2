"""Slow and greedy clients under gunicorn, over raw sockets: a client that stops reading
is cut off after STREAM_WRITE_TIMEOUT_S and its upstream closed; a body that trickles
gets 408 after BODY_TIMEOUT_S and the connection closes; a malformed chunked body gets
400; a client that gives up on a whole answer has its upstream closed at once."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from conftest import API_KEY, wait_for

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def server(start_server, fake):
    return start_server({"UPSTREAM_URL": fake.completions_url, "DEBUG_MODE": "false", "STREAM_WRITE_TIMEOUT_S": "1",
                         "BODY_TIMEOUT_S": "2"}, env_local={"DEFAULT_KEY": API_KEY})


def _connect(server, rcvbuf: int | None = None) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    sock.settimeout(15)
    return sock


def _head(body_length: int | None, extra: str = "") -> bytes:
    length = f"Content-Length: {body_length}\r\n" if body_length is not None else ""
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: zto\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\n{length}{extra}\r\n").encode()


def _chat_body(prompt: str, stream: bool) -> bytes:
    return json.dumps({"model": "GLM-4.6", "stream": stream, "messages": [{"role": "user", "content": prompt}]}).encode()


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _still_serves(server) -> None:
    answer = requests.post(server.base_url + "/chat/completions", headers=HEADERS, timeout=10,
                           json={"messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200


def test_a_client_that_stops_reading_is_cut_off_and_its_upstream_closed(server, fake):
    sock = _connect(server, rcvbuf=4096)
    body = _chat_body("scenario:bulk", stream=True)
    sock.sendall(_head(len(body)) + body)
    assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    # ...and reads nothing more. zto's write blocks once the buffers are full.
    assert wait_for(lambda: fake.requests and fake.requests[-1].outcome == "aborted", timeout=20), \
        "the upstream stream was left open"
    _still_serves(server)
    sock.close()


def test_a_trickling_body_gets_408_and_the_connection_closes(server):
    sock = _connect(server)
    body = _chat_body("hi", stream=False)
    sock.sendall(_head(len(body)))
    started = time.monotonic()

    def trickle():
        for byte in body[:-1]:  # never the last byte
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(0.3)

    threading.Thread(target=trickle, daemon=True).start()
    answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"request_timeout"' in answer and b"BODY_TIMEOUT_S" in answer
    assert time.monotonic() - started < 10  # the byte every 0.3 s did not keep it alive
    sock.close()
    _still_serves(server)


def test_a_body_that_stops_gets_408(server):
    sock = _connect(server)
    body = _chat_body("hi", stream=False)
    sock.sendall(_head(len(body)) + body[:10])
    answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    sock.close()


def test_a_malformed_chunked_body_gets_400(server):
    sock = _connect(server)
    sock.sendall(_head(None, "Transfer-Encoding: chunked\r\n") + b"zz\r\n{}\r\n0\r\n\r\n")
    answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b'"invalid_body"' in answer
    assert "Traceback" not in server.log()
    sock.close()


def test_a_well_formed_chunked_body_is_read(server):
    sock = _connect(server)
    body = _chat_body("hi", stream=False)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
    sock.sendall(_head(None, "Transfer-Encoding: chunked\r\n") + chunks + b"0\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    sock.close()


def test_a_client_that_gives_up_on_a_whole_answer_has_its_upstream_closed(server, fake):
    sock = _connect(server)
    body = _chat_body("scenario:long transport:delay=0.05", stream=False)  # about 10 s of answer
    sock.sendall(_head(len(body)) + body)
    assert wait_for(lambda: fake.requests and fake.requests[-1].status == 200)
    time.sleep(0.5)
    sock.close()  # the client gives up
    gone = time.monotonic()
    assert wait_for(lambda: fake.requests[-1].outcome == "aborted", timeout=8), fake.requests[-1].outcome
    assert time.monotonic() - gone < 5  # generous; the answer had 9 s to go
    recent = requests.get(server.url + "/dashboard/requests", timeout=10).json()
    assert (recent[0]["status"], recent[0]["error"], recent[0]["ok"]) == (499, "client_disconnected", True)
    _still_serves(server)
