"""The README and .env.example document every setting, with its real default."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from conftest import API_KEY
from zto.settings import load_settings, setting_docs

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", [name for name, _, _ in setting_docs()])
def test_every_setting_is_documented(name):
    assert f"`{name}`" in (ROOT / "README.md").read_text()
    assert f"# {name}=" in (ROOT / ".env.example").read_text()


def test_env_example_defaults_are_the_real_defaults(tmp_path):
    """Uncommenting every line of .env.example must change nothing."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    settings_lines = [line[2:] for line in lines if line.startswith("# ") and "=" in line.split()[1]]
    (tmp_path / ".env").write_text("\n".join(settings_lines) + "\n")
    assert set(dotenv_values(tmp_path / ".env")) == {name for name, _, _ in setting_docs()}
    assert load_settings({}, env_dir=tmp_path) == load_settings({}, env_dir=tmp_path / "none")


def test_readme_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make run") < readme.index("## Using it")
    assert readme.index("make test") < readme.index("## Using it")


def test_readme_says_which_upstream_works_before_the_quick_start():
    readme = (ROOT / "README.md").read_text()
    which, start = readme.index("## Which upstream?"), readme.index("## Quick start")
    assert which < start < readme.index("## Using it")
    section = readme[which:start]
    for words in ("captcha", "12 May 2026", "ZAI_API_KEY", "glm-4.5-flash", "`web,api`", "X-Zto-Warning"):
        assert words in section, words
    quick_start = readme[start:readme.index("## Using it")]
    assert "\nmake run " in quick_start and "\nZAI_API_KEY=your-key make run" in quick_start


def readme_block(language: str, after: str) -> str:
    """The first ``language`` code block of the README after the heading ``after``."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"```{language}\n", readme.index(after)) + len(f"```{language}\n")
    return readme[start:readme.index("```", start)]


def test_the_quick_start_names_the_pages():
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "/docs" in quick_start and "/dashboard" in quick_start


@pytest.mark.e2e
def test_the_readme_python_example_runs_as_printed(live):
    """Pasted against a running server, the README's Python example prints each answer
    on its own line: the streamed one ends with a newline too."""
    code = readme_block("python", "### Python").replace("http://localhost:9090/v1", live.base_url)
    code = code.replace('api_key="sk-your-key"', f'api_key="{API_KEY}"')
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["Hello, world!", "Hello, world!"], lines  # whole, then streamed
    assert len(lines) == 4


ROLE_CANDIDATES = ("system", "developer", "user", "assistant", "tool", "function", "robot", "critic")


def test_the_readme_lists_every_role_the_api_accepts(client, auth):
    """A role is accepted when the API does not refuse the message for its role."""
    accepted = set()
    for role in ROLE_CANDIDATES:
        message = {"role": role, "content": "x", "tool_call_id": "call_1", "name": "f"}
        response = client.post("/v1/chat/completions", headers=auth,
                               json={"messages": [message, {"role": "user", "content": "hi"}]})
        error = (response.get_json() or {}).get("error") or {}
        if not (response.status_code == 400 and "role" in error.get("message", "")):
            accepted.add(role)
    assert {"user", "assistant"} <= accepted and "robot" not in accepted
    readme = " ".join((ROOT / "README.md").read_text().split())
    sentence = readme[readme.index("roles `system`"):].split(")", 1)[0]
    assert set(re.findall(r"`(\w+)`", sentence)) & set(ROLE_CANDIDATES) == accepted


def test_the_quick_start_checks_with_a_real_answer():
    """Listing models asks nothing of Z.ai: the quick start checks with the doctor and a
    chat request, and says what the web chat alone answers."""
    readme = (ROOT / "README.md").read_text()
    quick_start = readme[readme.index("## Quick start"):readme.index("## Using it")]
    check = quick_start[quick_start.index("Then check it"):]
    assert "make doctor" in check and "/v1/chat/completions" in check
    assert "curl http://localhost:9090/v1/models\n" not in quick_start
    assert "403 `upstream_captcha_required`" in " ".join(check.split())
