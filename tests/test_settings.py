"""Settings: the seed's defaults, the load order, and a clear error for every bad value."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zto.settings import Settings, SettingsError, load_settings, setting_docs

ROOT = Path(__file__).resolve().parent.parent


def load(tmp_path, environ=None, **files: str) -> Settings:
    """Settings from ``environ`` and the given ``.env`` / ``.env.local`` texts (keys env, env_local)."""
    for key, text in files.items():
        (tmp_path / {"env": ".env", "env_local": ".env.local"}[key]).write_text(text)
    return load_settings(environ or {}, env_dir=tmp_path)


def test_defaults_are_the_seeds(tmp_path):
    s = load(tmp_path)
    assert s.zai_tokens == ()
    assert s.api_keys == ("sk-your-key",)
    assert s.model_name == "GLM-4.6"
    assert s.port == 9090
    assert s.debug is True
    assert s.default_stream is False
    assert s.dashboard_enabled is True
    assert s.enable_thinking is False
    assert s.upstream_url == "https://chat.z.ai/api/v2/chat/completions"
    assert s.thinking_mode == "reasoning"
    assert s.signature_scheme == "hmac"
    assert s.signature_secret == "key-@@@@)))()((9))-xxxx&&&%%%%%"
    assert s.fe_version == "prod-fe-1.1.93"
    assert s.max_body_bytes == 8 * 1024 * 1024
    assert s.upstream_proxy == ""
    assert s.models == {"GLM-4.6": "glm-4.6", "GLM-4.7": "glm-4.7", "GLM-4.6V": "glm-4.6v", "GLM-5": "glm-5",
                        "GLM-4.5": "glm-4.5", "GLM-4.5-Air": "glm-4.5-air"}


def test_settings_are_frozen(tmp_path):
    with pytest.raises(dataclasses.FrozenInstanceError):
        load(tmp_path).port = 1


def test_every_setting_is_documented_with_a_default():
    docs = setting_docs()
    names = [name for name, _, _ in docs]
    assert len(set(names)) == len(names)
    for name, default, doc in docs:
        assert name.isupper() and isinstance(default, str) and doc


def test_reads_os_environ_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("PORT", "8123")
    assert load_settings(env_dir=tmp_path).port == 8123


def test_reads_the_working_directory_by_default(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("PORT=8124\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).port == 8124


# ---- load order --------------------------------------------------------------------

def test_dotenv_over_defaults(tmp_path):
    assert load(tmp_path, env="PORT=1111\n").port == 1111


def test_dotenv_local_over_dotenv(tmp_path):
    s = load(tmp_path, env="PORT=1111\nMODEL_NAME=FromEnv\n", env_local="PORT=2222\n")
    assert s.port == 2222
    assert s.model_name == "FromEnv"  # .env still fills what .env.local leaves out


def test_environment_over_both_files(tmp_path):
    s = load(tmp_path, {"PORT": "3333"}, env="PORT=1111\nDEBUG_MODE=false\n", env_local="PORT=2222\n")
    assert s.port == 3333
    assert s.debug is False


def test_dotenv_syntax(tmp_path):
    s = load(tmp_path, env='# comment\nexport MODEL_NAME="GLM 4.6 quoted"\nDEFAULT_KEY=\'sk-a,sk-b\'\nEMPTY_ONE\n')
    assert s.model_name == "GLM 4.6 quoted"
    assert s.api_keys == ("sk-a", "sk-b")


def test_overrides_take_parsed_values(tmp_path):
    assert load_settings({"PORT": "1"}, env_dir=tmp_path, port=4444, debug=False).port == 4444
    with pytest.raises(TypeError, match="nope"):
        load_settings({}, env_dir=tmp_path, nope=1)


# ---- values ------------------------------------------------------------------------

def test_comma_lists(tmp_path):
    s = load(tmp_path, {"ZAI_TOKEN": "tok1, tok2,,tok3 ,", "DEFAULT_KEY": "sk-1,sk-2"})
    assert s.zai_tokens == ("tok1", "tok2", "tok3")
    assert s.api_keys == ("sk-1", "sk-2")


@pytest.mark.parametrize(("raw", "value"), [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True),
    ("false", False), ("False", False), ("0", False), ("no", False), (" off ", False),
])
def test_booleans(tmp_path, raw, value):
    assert load(tmp_path, {"DEBUG_MODE": raw}).debug is value


@pytest.mark.parametrize("mode", ["reasoning", "think", "strip", "hide", "THINK"])
def test_thinking_modes(tmp_path, mode):
    assert load(tmp_path, {"THINKING_MODE": mode}).thinking_mode == mode.lower()


def test_valid_values(tmp_path):
    s = load(tmp_path, {"PORT": " 65535 ", "SIGNATURE_SCHEME": "sha256", "UPSTREAM_PROXY": "socks5h://127.0.0.1:1080",
                        "MODEL_MAP": "A=a-id, B = b-id", "MODEL_NAME": "B", "UPSTREAM_READ_TIMEOUT": "0.5",
                        "TRUSTED_PROXIES": "0", "MAX_REQUEST_BYTES": "1024"})
    assert (s.port, s.signature_scheme, s.upstream_proxy) == (65535, "sha256", "socks5h://127.0.0.1:1080")
    assert s.model_map == (("A", "a-id"), ("B", "b-id"))
    assert s.models == {"A": "a-id", "B": "b-id"}
    assert (s.read_timeout_s, s.trusted_proxies, s.max_body_bytes) == (0.5, 0, 1024)


def test_model_name_outside_the_map_is_offered_with_the_first_id(tmp_path):
    assert load(tmp_path, {"MODEL_NAME": "Custom"}).models["Custom"] == "glm-4.6"


@pytest.mark.parametrize(("url", "origin"), [
    ("https://chat.z.ai/api/chat/completions", "https://chat.z.ai"),
    ("http://127.0.0.1:8765/api/v2/chat/completions?x=1", "http://127.0.0.1:8765"),
    ("https://user:pw@mirror.example:8443/a", "https://user:pw@mirror.example:8443"),
])
def test_upstream_origin(tmp_path, url, origin):
    assert load(tmp_path, {"UPSTREAM_URL": url}).upstream_origin == origin


@pytest.mark.parametrize(("name", "raw", "accepts"), [
    ("PORT", "abc", "port number from 1 to 65535"),
    ("PORT", "0", "port number from 1 to 65535"),
    ("PORT", "-1", "port number from 1 to 65535"),
    ("PORT", "65536", "port number from 1 to 65535"),
    ("PORT", "", "port number from 1 to 65535"),
    ("THINKING_MODE", "loud", "one of reasoning, think, strip, hide"),
    ("SIGNATURE_SCHEME", "md5", "one of hmac, sha256"),
    ("DEBUG_MODE", "maybe", "true or false"),
    ("DEFAULT_STREAM", "2", "true or false"),
    ("DASHBOARD_ENABLED", "", "true or false"),
    ("ENABLE_THINKING", "enabled", "true or false"),
    ("UPSTREAM_URL", "ftp://x", "http:// or https:// URL"),
    ("UPSTREAM_URL", "chat.z.ai/api", "http:// or https:// URL"),
    ("UPSTREAM_URL", "https://", "http:// or https:// URL"),
    ("UPSTREAM_PROXY", "bogus", "proxy URL"),
    ("UPSTREAM_PROXY", "ftp://proxy:21", "proxy URL"),
    ("MODEL_MAP", "garbage", "NAME=UPSTREAM_ID"),
    ("MODEL_MAP", "A=", "NAME=UPSTREAM_ID"),
    ("MODEL_MAP", ",", "NAME=UPSTREAM_ID"),
    ("MODEL_NAME", "  ", "non-empty"),
    ("UPSTREAM_CONNECT_TIMEOUT", "0", "seconds greater than 0"),
    ("UPSTREAM_CONNECT_TIMEOUT", "-1", "seconds greater than 0"),
    ("UPSTREAM_READ_TIMEOUT", "0", "seconds greater than 0"),
    ("UPSTREAM_READ_TIMEOUT", "-5.5", "seconds greater than 0"),
    ("UPSTREAM_READ_TIMEOUT", "soon", "seconds greater than 0"),
    ("UPSTREAM_READ_TIMEOUT", "nan", "seconds greater than 0"),
    ("UPSTREAM_READ_TIMEOUT", "inf", "seconds greater than 0"),
    ("UPSTREAM_READ_TIMEOUT", "1e999", "seconds greater than 0"),
    ("FE_VERSION_CACHE_S", "0", "seconds greater than 0"),
    ("STREAM_KEEPALIVE_S", "-1", "seconds greater than 0"),
    ("MAX_REQUEST_BYTES", "0", "whole number greater than 0"),
    ("MAX_REQUEST_BYTES", "8MB", "whole number greater than 0"),
    ("THREADS", "0", "whole number greater than 0"),
    ("WEB_CONCURRENCY", "-2", "whole number greater than 0"),
    ("TRUSTED_PROXIES", "-1", "whole number, 0 or more"),
    ("TRUSTED_PROXIES", "one", "whole number, 0 or more"),
])
def test_bad_values_name_the_variable_and_what_it_accepts(tmp_path, name, raw, accepts):
    with pytest.raises(SettingsError) as info:
        load(tmp_path, {name: raw})
    message = str(info.value)
    assert message.startswith(f"{name}={raw!r} is not valid: expected ")
    assert accepts in message
    assert "\n" not in message


def test_bad_value_in_a_dotenv_file_is_reported_too(tmp_path):
    with pytest.raises(SettingsError, match="THINKING_MODE='loud'"):
        load(tmp_path, env_local="THINKING_MODE=loud\n")


def test_environment_can_fix_a_bad_file_value(tmp_path):
    assert load(tmp_path, {"PORT": "9000"}, env="PORT=abc\n").port == 9000


@pytest.mark.parametrize("raw", ["", " , ,"])
def test_empty_default_key_is_refused(tmp_path, raw):
    with pytest.raises(SettingsError, match="DEFAULT_KEY"):
        load(tmp_path, {"DEFAULT_KEY": raw})


# ---- gunicorn.conf.py --------------------------------------------------------------

def test_gunicorn_config_with_a_bad_setting_exits_with_one_line(tmp_path):
    env = {**os.environ, "PORT": "abc", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert result.stderr.splitlines() == ["zto: PORT='abc' is not valid: expected a port number from 1 to 65535"]
    assert result.stdout == ""


def test_gunicorn_config_reads_dotenv_local_from_the_working_directory(tmp_path):
    (tmp_path / ".env.local").write_text("THINKING_MODE=loud\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        "zto: THINKING_MODE='loud' is not valid: expected one of reasoning, think, strip, hide"]
