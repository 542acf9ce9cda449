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


def test_cluster_stack_parses_and_wires_the_api_to_the_cluster() -> None:
    stack: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text())
    services = stack["services"]
    nodes = [name for name in services if name.startswith("redis-")]
    assert len(nodes) == 6
    for name in nodes:
        command = " ".join(services[name]["command"])
        assert "--cluster-enabled yes" in command and "--appendonly yes" in command
        assert "redis-cli" in " ".join(services[name]["healthcheck"]["test"])
        assert services[name]["volumes"][0].split(":")[0] in stack["volumes"]
    create = services["cluster-create"]
    assert set(create["depends_on"]) == set(nodes)
    assert "--cluster-replicas 1" in " ".join(create["command"])
    api = services["api"]
    assert api["depends_on"]["cluster-create"]["condition"] == "service_completed_successfully"
    assert api["environment"]["CHATSESSIONS_REDIS_URL"].startswith("redis+cluster://")
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
