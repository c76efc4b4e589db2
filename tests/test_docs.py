"""The README and .env.example document every setting, with its real default."""

from pathlib import Path

import pytest
from dotenv import dotenv_values

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
