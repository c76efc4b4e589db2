"""A finished request leaves nothing for the cyclic garbage collector: its objects are
freed by reference counting as soon as it ends. Under 1000 streams, objects kept
alive in reference cycles until a collection had the worker's RSS some 20 MB higher,
and each collection paused every stream (issue 10)."""

from __future__ import annotations

import gc

import pytest

from conftest import API_KEY
from zto import create_app

OURS = ("zto.", "requests.", "urllib3.", "http.client", "flask.wrappers")


def garbage_of(client, body: dict, requests: int = 5) -> list[str]:
    """The types, from our code and the HTTP stack, of what ``requests`` such requests
    left in reference cycles."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    client.post("/v1/chat/completions", json=body, headers=headers).close()  # warm-up: caches, pools
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(requests):
            response = client.post("/v1/chat/completions", json=body, headers=headers)
            response.get_data()
            response.close()
        gc.collect()
        found = [f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    return sorted({name for name in found if name.startswith(OURS)})


@pytest.mark.parametrize("stream", [True, False])
def test_a_web_chat_answer_leaves_no_cycles(client, stream):
    body = {"model": "GLM-4.6", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    assert garbage_of(client, body) == []


@pytest.mark.parametrize("stream", [True, False])
def test_an_official_api_answer_leaves_no_cycles(make_settings, official, stream):
    settings = make_settings(upstreams=("api",), zai_api_keys=tuple(official.keys), api_base=official.base_url)
    body = {"model": "glm-4.6", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    assert garbage_of(create_app(settings).test_client(), body) == []
