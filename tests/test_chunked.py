"""The upstream body reader: ``ChunkedDecoder`` (pure: any split of any chunked body),
then ``StreamedBody`` and ``open_stream`` over real loopback sockets: events that
arrive together leave in one read, a complete answer's connection is reused, a cut
one is an error, and a prepared request is on the wire what ``session.request`` sends.
"""

from __future__ import annotations

import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from conftest import API_KEY
from zto.chat_request import build_chat_request
from zto.chunked import ChunkedDecoder
from zto.errors import UpstreamTimeout, UpstreamUnavailable
from zto.http import SilentBodies, StreamedBody, build_session, error_text, open_stream, send
from zto.metrics import Metrics
from zto.official import OfficialUpstream
from zto.web_request import WebRequestBuilder

# ---- the decoder -------------------------------------------------------------------------


def encode(parts: list[bytes], extension: bytes = b"", trailers: bytes = b"") -> bytes:
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), extension, p) for p in parts if p)
    return body + b"0\r\n" + trailers + b"\r\n"


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@given(parts=st.lists(st.binary(min_size=0, max_size=300), max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=30),
       extension=st.sampled_from([b"", b";name=value", b"; x"]),
       trailers=st.sampled_from([b"", b"X-Checksum: 1\r\n", b"A: b\r\nC: d\r\n"]))
def test_any_split_of_any_chunked_body_decodes_to_the_body(parts, cuts, extension, trailers):
    decoder = ChunkedDecoder()
    out = b""
    for piece in split(encode(parts, extension, trailers), cuts):
        assert not decoder.done
        out += decoder.feed(piece)
    assert decoder.done and out == b"".join(parts)


def test_one_read_of_many_chunks_is_one_result():
    decoder = ChunkedDecoder()
    assert decoder.feed(encode([b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"])) == b"data: 1\n\ndata: 2\n\ndata: 3\n\n"
    assert decoder.done


def test_bare_lf_line_ends_are_taken():
    decoder = ChunkedDecoder()
    assert decoder.feed(b"3\nabc\n0\n\n") == b"abc" and decoder.done


@pytest.mark.parametrize("data", [b"zz\r\nab\r\n", b"-1\r\n", b"\r\n", b"3\r\nabcd\r\n", b"1" * 5000,
                                  b"0x3\r\nabc\r\n", b"11111111111111111\r\n"])
def test_malformed_framing_is_an_error(data):
    with pytest.raises(ValueError):
        ChunkedDecoder().feed(data)


# ---- over sockets --------------------------------------------------------------------------

EVENTS = [b"data: {\"n\": %d}\n\n" % i for i in range(5)]


class OneWriteServer(socketserver.ThreadingTCPServer):
    """Answers every request on a connection with a chunked body of ``EVENTS`` sent in one
    write (or cut short: ``cut``); records each request's head and body, counts connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, cut: bool = False) -> None:
        self.cut = cut
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        super().__init__(("127.0.0.1", 0), OneWriteHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class OneWriteHandler(socketserver.StreamRequestHandler):
    def handle(self):
        self.server.connections += 1
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = self.rfile.readline()
                if not line:
                    return
                head += line
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            self.server.requests.append((head, self.rfile.read(length)))
            body = encode(EVENTS)
            if self.server.cut:
                body = body[:len(body) // 2]
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n" + body)
            if self.server.cut:
                self.request.shutdown(socket.SHUT_RDWR)
                return


@pytest.fixture
def server():
    with OneWriteServer() as srv:
        yield srv
        srv.shutdown()


@pytest.fixture
def session(make_settings):
    return build_session(make_settings())


def test_events_that_arrive_together_leave_in_one_read_and_the_connection_is_reused(server, session):
    for _ in range(3):
        body = StreamedBody(open_stream(session, "GET", server.url + "/", {}, b"", timeout=(5, 5)))
        assert list(body.chunks()) == [b"".join(EVENTS)]
        body.release()
    assert server.connections == 1 and len(server.requests) == 3


def test_a_cut_answer_is_an_upstream_error_and_its_connection_dropped(session):
    with OneWriteServer(cut=True) as srv:
        body = StreamedBody(open_stream(session, "GET", srv.url + "/", {}, b"", timeout=(5, 5)))
        with pytest.raises(UpstreamUnavailable):
            list(body.chunks())
        body.close()
        body = StreamedBody(open_stream(session, "GET", srv.url + "/", {}, b"", timeout=(5, 5)))
        with pytest.raises(UpstreamUnavailable):
            list(body.chunks())
        assert srv.connections == 2
        srv.shutdown()


def test_a_prepared_request_is_the_request_session_request_sends(server, session):
    url = server.url + "/api/chat/completions?token=a.b.c&title=Z.ai+Chat+-+GLM+%26+more&local_time=21%3A00%2B08%3A00"
    headers = {"Accept": "*/*", "User-Agent": "Mozilla/5.0 (X11)", "X-Signature": "abc", "Content-Type": "application/json"}
    body = '{"prompt": "héllo"}'.encode()
    send(session, "POST", url, data=body, headers=headers, timeout=5).close()  # read whole
    StreamedBody(open_stream(session, "POST", url, headers, body, timeout=(5, 5))).release()
    (head_a, body_a), (head_b, body_b) = server.requests
    assert head_a == head_b and body_a == body_b == body
    assert b"&title=Z.ai+Chat+-+GLM+%26+more&" in head_b and b"Accept-Encoding:" in head_b


def test_a_request_leaves_in_one_write(session, server):
    """Each write on a SOCK_SEQPACKET socket is one message: the first message the
    server side receives must be the whole request, head and body."""
    pool = session.get_adapter(server.url).poolmanager.connection_from_url(server.url)
    conn = pool._get_conn()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        conn.sock = ours
        body = b'{"messages": [{"role": "user", "content": "hi"}]}'
        conn.request("POST", "/api/chat/completions?x=1", body=body, headers={"Content-Type": "application/json"})
        first = theirs.recv(65536)
        assert first.startswith(b"POST /api/chat/completions?x=1 HTTP/1.1\r\n") and first.endswith(b"\r\n\r\n" + body)


def test_the_target_is_sent_as_the_caller_encoded_it(server, session):
    """urllib3 re-quotes a request target character by character (80 µs on the web
    chat's query); ``open_stream`` goes around it, so a lower-case escape, which urllib3
    would have upper-cased, reaches the server unchanged."""
    url = server.url + "/api/chat/completions?x=%2fa+b&y=%e4%bd%a0"
    StreamedBody(open_stream(session, "POST", url, {}, b"{}", timeout=(5, 5))).release()
    (head, _), = server.requests
    assert head.startswith(b"POST /api/chat/completions?x=%2fa+b&y=%e4%bd%a0 HTTP/1.1\r\n")


GEVENT_CHECK = r"""
from gevent import monkey
monkey.patch_all()
import socket, sys, gevent
sys.path.insert(0, ".")
from zto.http import OneWriteHTTPConnection

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
conn = OneWriteHTTPConnection("127.0.0.1", server.getsockname()[1])
conn.connect()
peer, _ = server.accept()
others_ran = []
gevent.spawn(others_ran.append, True)
open_now = conn.is_connected
ran_meanwhile = bool(others_ran)
peer.close()
gevent.sleep(0.05)
print(open_now, ran_meanwhile, conn.is_connected)
"""


def test_reusing_a_pooled_connection_does_not_wait_a_turn_of_the_event_loop():
    """urllib3 checks a pooled connection with select.poll, which under gevent yields to
    the event loop and so waits behind every other stream's pending work; ours asks the
    kernel. An open connection is connected, one the server closed is not."""
    out = subprocess.run([sys.executable, "-c", GEVENT_CHECK], capture_output=True, text=True, timeout=30,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.split() == ["True", "False", "False"], out.stderr


def test_a_connection_closed_before_any_answer_cannot_connect_as_requests_had_it(session):
    """The server reads the request and closes: urllib3's ProtocolError, which requests
    reported as a ConnectionError; the client is told Z.ai could not be reached."""
    listener = socket.create_server(("127.0.0.1", 0))

    def close_after_request():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.close()

    threading.Thread(target=close_after_request, daemon=True).start()
    with listener, pytest.raises(UpstreamUnavailable, match="Cannot connect to Z.ai"):
        open_stream(session, "POST", f"http://127.0.0.1:{listener.getsockname()[1]}/api/chat/completions?x=1",
                    {}, b"{}", timeout=(5, 5))


def test_https_answers_are_checked_against_certifis_authorities_as_requests_checks_them(session):
    port = socket.create_server(("127.0.0.1", 0)).getsockname()[1]  # closed at once: nothing listens
    url = f"https://127.0.0.1:{port}/api/paas/v4/chat/completions"
    with pytest.raises(UpstreamUnavailable):
        open_stream(session, "POST", url, {}, b"{}", timeout=(2, 2))
    where = requests.PreparedRequest()
    where.url = url
    pool = session.get_adapter(url).get_connection_with_tls_context(where, True, {}, None)  # the pool it used
    assert pool.ca_certs == requests.certs.where() and pool.cert_reqs == "CERT_REQUIRED"


def test_configured_urls_are_sent_percent_encoded(make_settings):
    """open_stream sends a URL as it is given: the configured parts are encoded once."""
    settings = make_settings(upstream_url="http://127.0.0.1:9/api/chat completions/é",
                             api_base="http://127.0.0.1:9/api/paas v4", zai_api_keys=("0" * 32 + ".key",))
    url, _, _ = WebRequestBuilder(settings).build(
        build_chat_request({"model": "GLM-4.6", "messages": [{"role": "user", "content": "hi"}]}, settings=settings),
        "a.b.c", "prod-fe-1.1.93")
    assert url.startswith("http://127.0.0.1:9/api/chat%20completions/%C3%A9?")
    assert OfficialUpstream(settings, build_session(settings), Metrics())._url == \
        "http://127.0.0.1:9/api/paas%20v4/chat/completions"


# ---- the read timeout while a body is read (SilentBodies) -------------------------------------

def paced_server(pieces: list[tuple[float, bytes]]):
    """A server answering each request with a chunked head, then each (pause, chunk) in
    turn; the body ends after the last. Connections are kept alive."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    while conn.recv(65536):  # one request per read: they are small
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n")
                        for pause, chunk in pieces:
                            time.sleep(pause)
                            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        conn.sendall(b"0\r\n\r\n")
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_an_upstream_silent_mid_answer_for_the_read_timeout_is_cut_as_a_timeout(session):
    with paced_server([(0, b"data: 1\n\n"), (5, b"data: 2\n\n")]) as listener:
        started = time.monotonic()
        body = StreamedBody(open_stream(session, "POST", f"http://127.0.0.1:{listener.getsockname()[1]}/x", {},
                                        b"{}", timeout=(5, 0.5)))
        chunks = body.chunks()
        assert next(chunks) == b"data: 1\n\n"
        with pytest.raises(UpstreamTimeout, match="UPSTREAM_READ_TIMEOUT"):
            next(chunks)
        assert 0.5 <= time.monotonic() - started < 2.5
        body.close()
    assert not session.get_adapter("http://x").silent_bodies._bodies


def test_a_client_slow_to_take_the_chunks_is_not_an_upstream_silence(session):
    """Only a read waiting for the upstream counts: time spent writing to a slow client
    between two reads does not, however long."""
    with paced_server([(0, b"data: 1\n\n"), (0.2, b"data: 2\n\n")]) as listener:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x"
        for _ in range(2):  # the second time on the pooled connection, its timeout given back
            body = StreamedBody(open_stream(session, "POST", url, {}, b"{}", timeout=(5, 0.5)))
            chunks = body.chunks()
            assert next(chunks) == b"data: 1\n\n"
            time.sleep(1.0)  # twice the read timeout, "writing"
            assert b"".join(chunks) == b"data: 2\n\n"
            body.release()
    assert not session.get_adapter(url).silent_bodies._bodies


def test_a_stream_silent_mid_answer_ends_with_a_timeout_event(client_with):
    client = client_with(read_timeout_s=0.5)
    started = time.monotonic()
    response = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                           json={"messages": [{"role": "user", "content": "scenario:long transport:delay=3"}],
                                 "stream": True})
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and '"code":"upstream_timeout"' in text.replace(" ", "")
    assert text.rstrip().endswith("data: [DONE]") and time.monotonic() - started < 2.9


GEVENT_SILENCE = r"""
from gevent import monkey
monkey.patch_all()
import socket, sys, tempfile, gevent
sys.path.insert(0, ".")
from zto.errors import UpstreamTimeout
from zto.http import StreamedBody, build_session, open_stream
from zto.settings import load_settings

listener = socket.create_server(("127.0.0.1", 0))

def serve():
    conn, _ = listener.accept()
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
    gevent.sleep(5)

gevent.spawn(serve)
session = build_session(load_settings({}, env_dir=tempfile.mkdtemp()))
body = StreamedBody(open_stream(session, "POST", f"http://127.0.0.1:{listener.getsockname()[1]}/x", {}, b"{}",
                                timeout=(5, 0.5)))
chunks = body.chunks()
print(next(chunks) == b"data: 1\n\n")
try:
    next(chunks)
except UpstreamTimeout as error:
    print("UpstreamTimeout")
except Exception as error:
    print(type(error).__name__, error)
"""


def test_under_gevent_a_silent_upstream_is_a_timeout_too():
    """gevent's shutdown wakes the blocked read with an error (not an end of file): it is
    a timeout all the same, a 504 or an upstream_timeout event, not a broken connection."""
    out = subprocess.run([sys.executable, "-c", GEVENT_SILENCE], capture_output=True, text=True, timeout=30,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.split("\n")[:2] == ["True", "UpstreamTimeout"], out.stdout + out.stderr


def test_one_body_that_cannot_be_cut_does_not_end_the_watch_of_the_others():
    class Body:
        read_timeout = 0.1

        def __init__(self, fails: bool) -> None:
            self.waiting_since, self.fails, self.cut_done = time.monotonic(), fails, threading.Event()

        def cut(self) -> None:
            self.cut_done.set()
            if self.fails:
                raise AttributeError("'SSLTransport' object has no attribute 'shutdown'")

    watch = SilentBodies()
    first = Body(fails=True)
    watch.add(first)
    assert first.cut_done.wait(5)
    second = Body(fails=False)
    watch.add(second)
    assert second.cut_done.wait(5)


def test_the_watcher_ends_when_idle_and_starts_again(monkeypatch):
    monkeypatch.setattr(SilentBodies, "IDLE_S", 0.3)

    class Body:
        read_timeout = 0.1

        def __init__(self) -> None:
            self.waiting_since, self.cut_done = time.monotonic(), threading.Event()

        def cut(self) -> None:
            self.cut_done.set()

    watch = SilentBodies()
    first = Body()
    watch.add(first)
    assert first.cut_done.wait(5)
    watcher = watch._watcher
    watcher.join(5)
    assert not watcher.is_alive() and watch._watcher is None
    second = Body()
    watch.add(second)
    assert second.cut_done.wait(5)


@pytest.mark.parametrize("content_type, body, text", [
    ("text/plain; charset=gbk", "服务繁忙".encode("gbk"), "服务繁忙"),
    ("application/json", b'{"error": "bad"}', '{"error": "bad"}'),
    ("text/plain; charset=no-such-charset", "café".encode(), "café"),
])
def test_an_error_answer_is_read_in_its_charset(session, content_type, body, text):
    """Z.ai's error text reaches the client's message readable: decoded as its
    Content-Type says (as requests' Response.text does), UTF-8 if Python does not know it."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 503 Busy\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                         % (content_type.encode(), len(body), body))

    threading.Thread(target=answer, daemon=True).start()
    with listener:
        response = open_stream(session, "POST", f"http://127.0.0.1:{listener.getsockname()[1]}/x", {}, b"{}",
                               timeout=(5, 5))
        assert response.status_code == 503 and error_text(response) == text
