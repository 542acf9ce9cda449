"""docker-compose.yml and the Dockerfile, checked without a Docker engine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_redis_service_is_durable_and_health_checked() -> None:
    redis = compose()["services"]["redis"]
    assert re.match(r"^redis:\d", redis["image"]), "the official redis image"
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in compose()["volumes"]


def test_api_is_built_here_and_waits_for_healthy_redis() -> None:
    api = compose()["services"]["api"]
    assert api["build"] == "."
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert "8000:8000" in api["ports"]
    env = api["environment"]
    assert env["CHATSESSIONS_REDIS_URL"] == "redis://redis:6379/0"
    assert env["CHATSESSIONS_HOST"] == "0.0.0.0"
    assert env["CHATSESSIONS_TOKENS"].startswith("${CHATSESSIONS_TOKENS")
    assert any(v.endswith(":/config:ro") for v in api["volumes"])


def test_dockerfile_installs_the_package_and_runs_serve_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install [^\n]*\s\.\s", text), "installs this repo like the Makefile"
    assert "install --quiet -e '.[dev,embedded]'" in (ROOT / "Makefile").read_text()
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["chatsessions"]' in text and 'CMD ["serve"]' in text
    assert "/readyz" in text
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for name in copied.split():
            assert (ROOT / name).exists(), name
