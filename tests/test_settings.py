"""Settings: defaults < TOML < environment, and every bad value named with its key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from service.auth import TOKEN_PREFIX, new_token
from service.settings import RAW_TOKEN_PREFIX, ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "chatsessions.example.toml"
SHA = "a" * 64


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert (settings.port, settings.active_window_ms, settings.redis_url) == (8000, 900_000, None)


def test_example_documents_every_key_and_loads() -> None:
    text = EXAMPLE.read_text()
    for field in dataclasses.fields(Settings):
        assert re.search(rf"^#? ?\[?\[?{field.name}\b", text, re.MULTILINE), field.name
    assert load_settings(EXAMPLE, environ={}) == Settings()


def test_file_then_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'port = 9000\nworkers = 3\nredis_url = "redis://r:6379/1"\ncors_origins = ["https://a"]\n'
        f'[[tokens]]\nname = "bot"\nsha256 = "{SHA}"\nscopes = ["read", "sessions:write"]\n',
    )
    settings = load_settings(
        path, environ={"CHATSESSIONS_PORT": "9100", "CHATSESSIONS_LOG_FORMAT": "json"}
    )
    assert (settings.port, settings.workers, settings.log_format) == (9100, 3, "json")
    assert settings.redis_url == "redis://r:6379/1"
    assert settings.cors_origins == ("https://a",)
    (token,) = settings.tokens
    assert token.scopes == frozenset({"sessions:read", "sessions:write"})
    assert token.namespace == "default"
    from_env = load_settings(environ={"CHATSESSIONS_CONFIG": str(path)})
    assert from_env.port == 9000


def test_tokens_from_environment_json() -> None:
    env = {
        "CHATSESSIONS_TOKENS": f'[{{"name": "ci", "sha256": "{SHA}", "scopes": "read", "namespace": "t1"}}]',
        "CHATSESSIONS_CORS_ORIGINS": "https://a, https://b",
        "CHATSESSIONS_REDIS_URL": "",
    }
    settings = load_settings(environ=env)
    assert settings.tokens[0].namespace == "t1"
    assert settings.cors_origins == ("https://a", "https://b")
    assert settings.redis_url is None


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        ("port = 70000\n", {}, "port"),
        ('port = "http"\n', {}, "port"),
        ("workers = 0\n", {}, "workers"),
        ("nonsense = 1\n", {}, "nonsense"),
        ('redis_url = "http://x"\n', {}, "redis_url"),
        ('log_format = "xml"\n', {}, "log_format"),
        ('default_namespace = "Bad Name"\n', {}, "default_namespace"),
        ("active_window = true\n", {}, "active_window"),
        ('[[tokens]]\nname = "x"\nsha256 = "short"\nscopes = ["read"]\n', {}, "tokens[0].sha256"),
        (f'[[tokens]]\nname = "x"\nsha256 = "{SHA}"\nscopes = ["admin"]\n', {}, "tokens[0].scopes"),
        (
            f'[[tokens]]\nname = "x"\nsha256 = "{SHA}"\nscopes = ["read"]\nextra = 1\n',
            {},
            "tokens[0].extra",
        ),
        ("port = [\n", {}, "config"),
        ("", {"CHATSESSIONS_PORT": "eighty"}, "CHATSESSIONS_PORT"),
        ("", {"CHATSESSIONS_TOKENS": "not json"}, "CHATSESSIONS_TOKENS"),
        ("", {"CHATSESSIONS_WHATEVER": "1"}, "CHATSESSIONS_WHATEVER"),
    ],
)
def test_bad_values_name_their_key(
    tmp_path: Path, text: str, env: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ=env)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize("where", ["file", "environment"])
def test_a_raw_token_pasted_as_its_hash_points_to_token_hash(tmp_path: Path, where: str) -> None:
    token = new_token()
    if where == "file":
        path = write(tmp_path, f'[[tokens]]\nname = "bot"\nsha256 = "{token}"\nscopes = ["read"]\n')
        env: dict[str, str] = {}
        key = "tokens[0].sha256"
    else:
        path = None
        env = {"CHATSESSIONS_TOKENS": f'[{{"name": "bot", "sha256": "{token}", "scopes": "read"}}]'}
        key = "CHATSESSIONS_TOKENS[0].sha256"
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=env)
    assert caught.value.key == key
    assert "`chatsessions token hash`" in str(caught.value)
    assert token not in str(caught.value)


def test_the_raw_token_check_knows_how_tokens_start() -> None:
    assert new_token().startswith(RAW_TOKEN_PREFIX)
    assert TOKEN_PREFIX == RAW_TOKEN_PREFIX
