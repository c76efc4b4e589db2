"""Whatever stands for an upstream answer or an upstream, in zto and in the tests, has
every member of the ``Answer`` / ``Upstream`` protocol of ``zto/upstreams.py``: a member
added to a protocol but forgotten in a stand-in fails here, not at run time."""

from __future__ import annotations

import pytest
from test_anthropic_api import Stopped, Ticking
from test_completions import Reads
from test_upstreams import Refusing, StandInAnswer, StandInApi

from zto.http import build_session
from zto.metrics import Metrics
from zto.official import OfficialAnswer, OfficialUpstream
from zto.settings import load_settings
from zto.shutdown import WatchedAnswer
from zto.upstreams import Answer, Upstream
from zto.web_chat import WebAnswer, WebChat


def members(protocol: type) -> set[str]:
    """The attributes a protocol declares and the methods and properties it defines."""
    names = set(protocol.__annotations__)
    names |= {name for name, value in vars(protocol).items()
              if not name.startswith("_") and (callable(value) or isinstance(value, property))}
    return names


def test_the_protocols_have_members():
    assert members(Answer) == {"upstream", "fell_back", "usage", "finish_reason", "pieces", "close"}
    assert members(Upstream) == {"name", "models", "serves", "unsupported", "drops", "start"}


def answers() -> list:
    return [StandInAnswer([], "stop"), Ticking(0), Stopped(0), WebAnswer(Reads(), "prod-fe-1.0.94", lambda: None),
            OfficialAnswer(Reads(), "glm-4.6", lambda: None), WatchedAnswer(Ticking(0), iter)]


@pytest.mark.parametrize("answer", answers(), ids=lambda answer: type(answer).__name__)
def test_every_answer_has_the_answer_protocol(answer):
    assert {name for name in members(Answer) if not hasattr(answer, name)} == set()


def test_every_upstream_has_the_upstream_protocol(tmp_path):
    settings = load_settings({}, env_dir=tmp_path, zai_api_keys=("key-for-the-check",))
    session = build_session(settings)
    upstreams = [StandInApi(), Refusing("web", fallback=True), WebChat(settings, session, Metrics()),
                 OfficialUpstream(settings, session, Metrics())]
    for upstream in upstreams:
        assert {name for name in members(Upstream) if not hasattr(upstream, name)} == set(), type(upstream).__name__
