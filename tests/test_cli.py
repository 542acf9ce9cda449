"""The command line: token making and hashing, and config errors with exit code 2."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from service.cli import main
from service.settings import load_settings


def run(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_token_new_prints_a_token_and_a_loadable_entry(tmp_path: Path) -> None:
    result = run("token", "new", "--name", "bot", "--scopes", "read,write", "--namespace", "tg")
    assert result.returncode == 0
    token = re.search(r"(cs_[A-Za-z0-9_-]+)", result.stdout)
    assert token
    entry = result.stdout[result.stdout.index("[[tokens]]") :]
    config = tmp_path / "c.toml"
    config.write_text(entry)
    (loaded,) = load_settings(config, environ={}).tokens
    assert loaded.sha256 == hashlib.sha256(token.group(1).encode()).hexdigest()
    assert loaded.scopes == frozenset({"sessions:read", "sessions:write"})
    assert (loaded.name, loaded.namespace) == ("bot", "tg")
    assert token.group(1) not in entry
    assert tomllib.loads(entry)["tokens"][0]["name"] == "bot"


def test_token_entry_stays_valid_toml_whatever_the_name(tmp_path: Path) -> None:
    result = run("token", "new", "--name", 'bot "quoted" \\ name', "--scopes", "delete")
    entry = result.stdout[result.stdout.index("[[tokens]]") :]
    (tmp_path / "c.toml").write_text(entry)
    (loaded,) = load_settings(tmp_path / "c.toml", environ={}).tokens
    assert loaded.name == 'bot "quoted" \\ name'
    assert run("token", "new", "--name", "x", "--namespace", "Bad NS").returncode == 2


def test_token_hash_reads_stdin() -> None:
    result = run("token", "hash", stdin="cs_secret\n")
    assert result.stdout.strip() == hashlib.sha256(b"cs_secret").hexdigest()
    assert run("token", "hash", stdin="").returncode == 2


def test_token_new_refuses_unknown_scope(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "new", "--name", "x", "--scopes", "read,admin"]) == 2
    assert "unknown scope 'admin'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config", "key"),
    [("port = -1\n", "port"), ("colour = 'red'\n", "colour"), ("log_format = 3\n", "log_format")],
)
def test_serve_with_a_bad_config_exits_2_naming_the_key(
    tmp_path: Path, config: str, key: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(config)
    result = run("serve", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"config error: {key}: ")
