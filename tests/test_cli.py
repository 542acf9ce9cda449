"""The command line: its version and help, token making and hashing, and config errors
with exit code 2."""

from __future__ import annotations

import argparse
import ast
import hashlib
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from service.cli import build_parser, main
from service.progress import plural
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


def test_version_is_the_installed_package_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"chatsessions {metadata.version('chatsessions')}"


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parser and every subcommand's parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from parsers(child)


def test_every_option_of_every_command_has_help() -> None:
    seen = []
    for parser in parsers(build_parser()):
        for action in parser._actions:
            if action.option_strings:
                seen.append((parser.prog, action.option_strings[-1]))
                assert action.help and action.help.strip(), (parser.prog, action.option_strings)
    assert ("chatsessions migrate", "--namespace") in seen
    assert ("chatsessions token reset-generated", "--redis-url") in seen


def test_help_is_plain_text() -> None:
    for parser in parsers(build_parser()):
        text = parser.format_help()
        for markup in ("``", ":meth:", ":class:", ":func:", ".. "):
            assert markup not in text, (parser.prog, markup)


@pytest.mark.parametrize(
    ("count", "word", "expected"),
    [(0, "session", "0 sessions"), (1, "session", "1 session"), (2, "problem", "2 problems")],
)
def test_counts_agree_with_their_nouns(count: int, word: str, expected: str) -> None:
    assert plural(count, word) == expected


def imports_of(package: Path) -> dict[str, set[str]]:
    """Each module of ``package`` and the modules of the package it imports, anywhere in
    its body."""
    root = package.parent
    graph: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        here = name.split(".") if is_package else name.split(".")[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 0:
                if node.module and node.module.split(".")[0] == package.name:
                    found.add(node.module)
                continue
            base = here[: len(here) - (node.level - 1)]
            if node.module:
                found.add(".".join([*base, *node.module.split(".")]))
            else:
                found.update(".".join([*base, alias.name]) for alias in node.names)
        graph[name] = found
    return {name: {d for d in deps if d in graph} for name, deps in graph.items()}


def test_the_package_has_no_import_cycle() -> None:
    graph = imports_of(Path(__file__).resolve().parents[1] / "service")
    assert "service.server" in graph["service.workers"]
    assert "service.cli" not in graph["service.workers"]
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        for dependency in sorted(graph[name]):
            assert dependency not in path, " -> ".join([*path, dependency])
            if dependency not in done:
                visit(dependency, [*path, dependency])
        done.add(name)

    for name in sorted(graph):
        visit(name, [name])
