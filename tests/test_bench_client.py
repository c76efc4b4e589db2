"""The benchmark's direct requests to Z.ai are signed by zto's own signing code, and
the test fake (with its independent copy of the check) accepts them."""

from __future__ import annotations

import socket

from bench.client import ZaiTarget, make_jwt
from fake_zai import FakeZai


def send(host: str, port: int, request: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                break
            head += data
    return head.split(b"\r\n", 1)[0]


def test_the_bench_signs_as_zto_does():
    token = make_jwt("bench-user")
    with FakeZai(scheme="hmac") as fake:
        fake.accepted_tokens = (token,)
        host, port = fake.origin.removeprefix("http://").split(":")
        target = ZaiTarget(host, int(port), fake.secret)
        assert send(host, int(port), target.request("hi", token)).startswith(b"HTTP/1.1 200")
        wrong = ZaiTarget(host, int(port), "another secret")
        assert send(host, int(port), wrong.request("hi", token)).split()[1] != b"200"
