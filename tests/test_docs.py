"""Every curl line of the README and docs/api.md, and the README's Python and JavaScript
examples, run as written against `chatsessions serve`, but for its port."""

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
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from redis_process import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "docs" / "api.md"]
# Where the documents send every request. The service under test listens on a free port
# instead (port 8000 may be taken here), and that port is the one thing rewritten.
DOCUMENTED_ORIGIN = "http://localhost:8000"
# The documents' own line that puts the printed token where curl, node and Python see it.
TOKEN_LINE = "export TOKEN=cs_paste_the_printed_token_here"
START_TIMEOUT = 30.0

pytestmark = pytest.mark.real


@dataclass(frozen=True)
class Served:
    token: str
    port: int

    def on_port(self, text: str) -> str:
        """``text`` as the documents write it, sent to the port the service listens on."""
        assert DOCUMENTED_ORIGIN in text, text
        return text.replace(DOCUMENTED_ORIGIN, f"http://localhost:{self.port}")

    def token_line(self, document: Path) -> str:
        """The document's own export line, with the printed token pasted in."""
        lines = [
            line
            for block in shell_blocks(document)
            for line in block.splitlines()
            if line.startswith("export TOKEN=")
        ]
        assert lines == [TOKEN_LINE], f"{document.name} exports the token once, as {TOKEN_LINE}"
        return TOKEN_LINE.replace("cs_paste_the_printed_token_here", self.token)


def environment() -> dict[str, str]:
    """The test's environment without TOKEN: only the documents' export line sets it."""
    return {k: v for k, v in os.environ.items() if k != "TOKEN"}


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
def served(tmp_path: Path) -> Iterator[Served]:
    """`chatsessions serve` as the README starts it (embedded Redis, generated token), on a
    free port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSESSIONS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve"],
        cwd=tmp_path,
        env={**env, "CHATSESSIONS_PORT": str(port)},
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
        yield Served(token, port)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@pytest.mark.parametrize("document", DOCS, ids=lambda p: p.name)
def test_curl_lines_run_as_written(document: Path, served: Served, tmp_path: Path) -> None:
    commands = curl_commands(document)
    assert commands, f"{document.name} has no curl lines"
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for command in commands:
        assert shlex.split(command)[0] == "curl"
        # The command as written but for the port, after the document's export line, plus
        # a trailer that reports the HTTP status.
        script = (
            f"{served.token_line(document)}\n{served.on_port(command)} -s -w '\\n%{{http_code}}'"
        )
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=downloads,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (command, result.stderr)
        status = int(result.stdout.rsplit("\n", 1)[-1])
        # A conditional request sends the ETag its inner curl just read: nothing changed
        # in between, so the documented answer is 304.
        if "If-None-Match" in command:
            assert status == 304, (command, status, result.stdout)
        else:
            assert 200 <= status < 300, (command, status, result.stdout)
    # curl -OJ names a download by the answer's plain filename=: each format its own file.
    saved = sorted(downloads.iterdir())
    assert len(saved) == sum(" -OJ " in command for command in commands), saved
    for path in saved:
        assert path.stat().st_size > 0, path
        if path.suffix == ".json":
            assert orjson.loads(path.read_bytes())["messages"], path
        else:
            assert path.suffix == ".md" and path.read_text().startswith("# "), path


def test_readme_python_and_javascript_examples_run(served: Served, tmp_path: Path) -> None:
    readme = ROOT / "README.md"
    (python_example,) = blocks(readme, "python")
    (js_example,) = blocks(readme, "js")
    node = shutil.which("node")
    assert node, "node runs the README's fetch example"
    # Each example as written but for the port, in a shell that ran the README's export line.
    runs = {
        "python": f'"{sys.executable}" -c "$EXAMPLE"',
        "js": f'"{node}" --input-type=module -e "$EXAMPLE"',
    }
    for language, example in (("python", python_example), ("js", js_example)):
        result = subprocess.run(
            ["bash", "-c", f"{served.token_line(readme)}\n{runs[language]}"],
            env={**environment(), "EXAMPLE": served.on_port(example)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (language, result.stderr)
        if language == "python":
            assert "'sessions': [" in result.stdout and "'total': " in result.stdout
        else:
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
