"""Every curl line of the README and docs/api.md runs as written against `chatsessions serve`."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_process import port_is_free

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "docs" / "api.md"]
PORT = 8000  # the port the documents name
START_TIMEOUT = 30.0

pytestmark = pytest.mark.real


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.DOTALL)


def shell_blocks(path: Path) -> list[str]:
    return blocks(path, "sh")


def curl_commands(path: Path) -> list[str]:
    """Each curl command of the document's sh blocks, with the lines that continue it."""
    commands: list[str] = []
    for block in shell_blocks(path):
        current: list[str] | None = None
        for line in block.splitlines():
            if line.startswith("curl "):
                current = [line]
                commands.append("")
            elif current is None or not line.strip():
                current = None
                continue
            else:
                current.append(line)
            commands[-1] = "\n".join(current)
    return commands


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """`chatsessions serve` as the README starts it: embedded Redis, generated token."""
    if not port_is_free(PORT):
        pytest.fail(f"port {PORT}, which the documents use, is taken on this machine")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSESSIONS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        token = None
        deadline = time.monotonic() + START_TIMEOUT
        assert process.stdout is not None
        while time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline()
            found = re.search(r"\b(cs_[A-Za-z0-9_-]{20,})", line)
            token = token or (found.group(1) if found else None)
            if token and "serving on" in line:
                break
        assert token, "serve printed no token"
        yield token
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@pytest.mark.parametrize("document", DOCS, ids=lambda p: p.name)
def test_curl_lines_run_as_written(document: Path, served: str, tmp_path: Path) -> None:
    commands = curl_commands(document)
    assert commands, f"{document.name} has no curl lines"
    env = {**os.environ, "TOKEN": served}
    for command in commands:
        # The command as written, plus a trailer that reports the HTTP status.
        probe = command + " -s -w '\\n%{http_code}'"
        result = subprocess.run(
            ["bash", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, (command, result.stderr)
        status = int(result.stdout.rsplit("\n", 1)[-1])
        assert 200 <= status < 300, (command, status, result.stdout)
        assert shlex.split(command)[0] == "curl"


def test_readme_python_and_javascript_examples_run(served: str, tmp_path: Path) -> None:
    readme = ROOT / "README.md"
    env = {**os.environ, "TOKEN": served}
    (python_example,) = blocks(readme, "python")
    result = subprocess.run(
        [sys.executable, "-c", python_example], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "'sessions': [" in result.stdout and "'total': " in result.stdout
    (js_example,) = blocks(readme, "js")
    node = shutil.which("node")
    assert node, "node runs the README's fetch example"
    result = subprocess.run(
        [node, "--input-type=module", "-e", js_example],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "sessions: [" in result.stdout and "total: " in result.stdout


def test_readme_token_command_runs_as_written(tmp_path: Path) -> None:
    (line,) = [
        line
        for block in shell_blocks(ROOT / "README.md")
        for line in block.splitlines()
        if line.startswith(".venv/bin/chatsessions token new")
    ]
    bin_dir = Path(sys.executable).parent
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "bin").symlink_to(bin_dir)
    result = subprocess.run(
        ["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "[[tokens]]" in result.stdout and 'name = "telegram-bot"' in result.stdout
