"""/metrics counts requests by route template, and strangers cannot grow its labels."""

from __future__ import annotations

import re

from conftest import Api


async def metrics_text(api: Api) -> str:
    async with api.client.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


async def test_requests_are_counted_by_template(api: Api) -> None:
    for n in range(3):
        await api.ingest(f"id with secret {n}")
    await api.call("GET", "/api/sessions/nope")
    text = await metrics_text(api)
    created = re.search(
        r'chatsessions_requests_total\{method="POST",route="/api/sessions/\{session_id\}/messages",status="201"\} (\S+)',
        text,
    )
    assert created and float(created.group(1)) == 3.0
    assert 'route="/api/sessions/{session_id}",status="404"' in text
    assert "secret" not in text
    for counter in ("messages_ingested", "sessions_created"):
        found = re.search(rf"^chatsessions_{counter}_total (\S+)$", text, re.MULTILINE)
        assert found and found.group(1) == "3.0", counter
    assert "chatsessions_request_seconds_bucket" in text


async def test_unusual_methods_share_one_label(api: Api) -> None:
    # The HTTP parser lets through only methods it knows; these are some of those.
    strangers = ["PROPFIND", "LINK", "UNLINK", "PURGE", "MKCOL", "REPORT", "LOCK", "UNLOCK"]
    for method in strangers:
        async with api.client.request(method, "/api/sessions") as response:
            assert response.status in (401, 405)
    text = await metrics_text(api)
    assert 'method="OTHER"' in text
    assert not any(method in text for method in strangers)
