"""schemathesis against a live serve on a real redis-server: no 5xx, every answer as documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_process import TEST_TOKEN, ServeProcess, token_env

from redis_process import RedisProcess

pytestmark = [pytest.mark.real, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


@pytest.fixture
def live_service(tmp_path: Path) -> Iterator[ServeProcess]:
    redis = RedisProcess(tmp_path / "redis").start()
    service = ServeProcess(
        tmp_path / "serve",
        env={**token_env(), "CHATSESSIONS_REDIS_URL": redis.url, "CHATSESSIONS_LOG_FORMAT": "json"},
    )
    try:
        yield service.start()
    finally:
        service.stop()
        redis.stop()


def test_schemathesis_finds_no_server_error_and_no_mismatch(
    live_service: ServeProcess, tmp_path: Path
) -> None:
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary, "schemathesis is a dev dependency"
    # schemathesis keeps its state (.schemathesis/) in the folder it runs in: a temporary
    # one, so that a run leaves nothing in the checkout.
    workdir = tmp_path / "schemathesis"
    workdir.mkdir()
    result = subprocess.run(
        [
            binary,
            "run",
            str(ROOT / "service" / "openapi.json"),
            "--url",
            live_service.url,
            "-H",
            f"Authorization: Bearer {TEST_TOKEN}",
            "--checks",
            CHECKS,
            "--max-examples",
            "40",
            # Fuzzing repeats until this budget is spent: it bounds the run.
            "--max-time",
            "60",
            "--seed",
            "20261128",
            # A stream that answers 200 stays open: each would spend the request timeout.
            "--exclude-path",
            "/api/events",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:]
    assert "unhandled error" not in live_service.log()
