"""A bounded soak: mixed traffic against one worker, then memory, errors and invariants."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis
from serve_process import TEST_TOKEN, ServeProcess, token_env

from service.store import InvariantChecker

from redis_process import RedisProcess

pytestmark = [pytest.mark.real, pytest.mark.slow]

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
WARM_UP_SECONDS = min(10.0, SOAK_SECONDS / 4)
CLIENTS = 6
HEADERS = {"Authorization": f"Bearer {TEST_TOKEN}"}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def mixed_traffic(url: str, seed: int, deadline: float, statuses: dict[int, int]) -> None:
    chooser = random.Random(seed)
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            session_id = f"soak{chooser.randrange(200)}"
            roll = chooser.random()
            if roll < 0.45:
                request = session.post(
                    f"{url}/api/sessions/{session_id}/messages",
                    json={
                        "role": chooser.choice(["user", "assistant"]),
                        "content": "x" * chooser.randrange(300),
                        "channel": "web",
                        "id": f"{seed}-{n}",
                    },
                )
            elif roll < 0.75:
                request = session.get(
                    f"{url}/api/sessions?limit={chooser.randrange(1, 100)}&offset={chooser.randrange(50)}"
                )
            elif roll < 0.85:
                request = session.get(f"{url}/api/sessions/{session_id}/messages?limit=20")
            elif roll < 0.93:
                request = session.patch(
                    f"{url}/api/sessions/{session_id}", json={"title": f"renamed {n}"}
                )
            elif roll < 0.97:
                request = session.get(f"{url}/api/sessions/search?q=renamed&limit=5")
            else:
                request = session.delete(f"{url}/api/sessions/{session_id}")
            async with request as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1


async def test_soak(tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path / "redis").start()
    service = ServeProcess(
        tmp_path / "serve", env={**token_env(), "CHATSESSIONS_REDIS_URL": redis.url}
    ).start()
    statuses: dict[int, int] = {}
    try:
        started = time.monotonic()
        warm_up = [
            asyncio.create_task(mixed_traffic(service.url, s, started + WARM_UP_SECONDS, statuses))
            for s in range(CLIENTS)
        ]
        await asyncio.gather(*warm_up)
        after_warm_up = rss_kib(service.pid)
        deadline = time.monotonic() + SOAK_SECONDS - WARM_UP_SECONDS
        await asyncio.gather(
            *(mixed_traffic(service.url, 100 + s, deadline, statuses) for s in range(CLIENTS))
        )
        at_end = rss_kib(service.pid)
        client = Redis.from_url(redis.url)
        try:
            report = await InvariantChecker(client).check("default")
        finally:
            await client.aclose()
    finally:
        service.stop()
        redis.stop()
    total = sum(statuses.values())
    assert total > 1000
    assert not [s for s in statuses if s >= 500], statuses
    assert set(statuses) <= {200, 201, 404}, statuses
    log = service.log()
    assert "ERROR" not in log and "Traceback" not in log
    assert at_end <= after_warm_up * 1.10, (after_warm_up, at_end)
    assert report.ok, report.problems
    print(
        f"soak: {total} requests in {SOAK_SECONDS:.0f} s, statuses {statuses}, RSS {after_warm_up} -> {at_end} KiB"
    )
