"""The console and /docs in a real headless Chromium (Debian's chromium, driven by
Playwright), against a real `chatsessions serve` on a redis-server that the tests start,
both on 127.0.0.1 and free ports.

Everything waits through Playwright's own waiting (expect, wait_for) with generous
bounds: no assertion is about time. Writes made in the browser are checked afterwards
through the API. With CHATSESSIONS_SCREENSHOTS=DIR set, one more test writes the README's
screenshots (1280x800) into DIR.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import redis
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from serve_process import ServeProcess

from redis_process import RedisProcess

pytestmark = pytest.mark.real

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A bound on each wait, far above what any step takes: a guard against a hang only.
WAIT_MS = 20_000
TOKEN_KEY = "chatsessions.token"
XSS = "<img src=x onerror=window.__xss=1>"
SCREENSHOTS = os.environ.get("CHATSESSIONS_SCREENSHOTS")

expect.set_options(timeout=WAIT_MS)


def make_token(name: str) -> str:
    return f"cs_console_test_{name}_" + hashlib.sha256(name.encode()).hexdigest()[:24]


TOKENS = {
    "operator": (make_token("operator"), ["read", "write", "delete"]),
    "viewer": (make_token("viewer"), ["read"]),
}


def tokens_env() -> dict[str, str]:
    entries = [
        {
            "name": name,
            "sha256": hashlib.sha256(secret.encode()).hexdigest(),
            "scopes": scopes,
            "namespace": "default",
        }
        for name, (secret, scopes) in TOKENS.items()
    ]
    return {"CHATSESSIONS_TOKENS": orjson.dumps(entries).decode()}


@dataclass
class Service:
    """A served stack: a redis-server and `chatsessions serve` in front of it."""

    redis: RedisProcess
    serve: ServeProcess

    @property
    def url(self) -> str:
        return self.serve.url

    def call(
        self, method: str, path: str, body: Any = None, token: str = "operator"
    ) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else orjson.dumps(body),
            headers={
                "Authorization": f"Bearer {TOKENS[token][0]}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, orjson.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, orjson.loads(raw) if raw else None

    def ingest(self, session_id: str, **message: Any) -> dict[str, Any]:
        message.setdefault("role", "user")
        message.setdefault("content", "hello")
        message.setdefault("channel", "web")
        status, body = self.call(
            "POST", f"/api/sessions/{quote(session_id, safe='')}/messages", message
        )
        assert status in (200, 201), body
        result: dict[str, Any] = body
        return result

    def batch(self, messages: list[dict[str, Any]]) -> None:
        status, body = self.call("POST", "/api/messages", {"messages": messages})
        assert status == 200 and body["failed"] == 0, body

    def has(self, path: str) -> bool:
        """Whether the service has the route (it answers anything but 404 and 405); only
        the status is read, as the feed's answer never ends."""
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {TOKENS['operator'][0]}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = int(response.status)
        except urllib.error.HTTPError as error:
            status = error.code
        return status not in (404, 405)

    def patch_supports(self, name: str) -> bool:
        """Whether PATCH /api/sessions/{id} takes ``name`` (the organising issue)."""
        status, _ = self.call("POST", "/api/sessions", {"id": "probe-patch", "channel": "web"})
        assert status in (201, 409)
        value: Any = ["probe"] if name == "tags" else True
        status, body = self.call("PATCH", "/api/sessions/probe-patch", {name: value})
        self.call("DELETE", "/api/sessions/probe-patch")
        return status == 200 and name in body

    def flush(self) -> None:
        client = redis.Redis(port=self.redis.port)
        try:
            client.flushall()
        finally:
            client.close()


def start_service(directory: Path) -> Service:
    server = RedisProcess(directory / "redis").start()
    env = {**tokens_env(), "CHATSESSIONS_REDIS_URL": server.url, "CHATSESSIONS_REDIS_TIMEOUT": "1"}
    try:
        serve = ServeProcess(directory / "serve", env=env).start()
    except BaseException:
        server.stop()
        raise
    return Service(server, serve)


def stop_service(service: Service) -> None:
    service.serve.stop()
    service.redis.stop()


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_service(tmp_path_factory.mktemp("console"))
    yield service
    stop_service(service)


@pytest.fixture
def service(shared_service: Service) -> Service:
    shared_service.flush()
    return shared_service


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@dataclass
class Tab:
    """A page with the script errors it met: a test fails on any of them."""

    page: Page
    errors: list[str]


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(
        viewport={"width": 1280, "height": 800},
        locale="en-GB",
        timezone_id="UTC",
        accept_downloads=True,
    )
    yield made
    made.close()


@pytest.fixture
def tab(context: BrowserContext) -> Iterator[Tab]:
    page = context.new_page()
    found = Tab(page, [])
    page.on("pageerror", lambda error: found.errors.append(str(error)))
    yield found
    assert found.errors == [], found.errors


def sign_in(page: Page, service: Service, token: str = "operator") -> None:
    page.goto(service.url + "/")
    expect(page).to_have_url(re.compile(r"/console/$"))
    page.get_by_label("API token").fill(TOKENS[token][0])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()


def rows(page: Page) -> Any:
    return page.locator("#list-region .sessions .row")


def row(page: Page, session_id: str) -> Any:
    return page.locator(f'#list-region .row[data-id="{session_id}"]')


def iso(minutes_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return moment.isoformat().replace("+00:00", "Z")


def seed_three(service: Service) -> None:
    """Three sessions as bots write them: the newest last."""
    service.ingest(
        "123456789:topic:42",
        content="Python prime numbers",
        channel="telegram",
        id="tg-1",
        timestamp=iso(180),
    )
    service.ingest(
        "123456789:topic:42",
        role="assistant",
        content="2, 3, 5, 7",
        channel="telegram",
        id="tg-2",
        timestamp=iso(179),
    )
    service.ingest(
        "dm:987654321", content="Refund please", channel="discord", id="d-1", timestamp=iso(60)
    )
    service.ingest(
        "spaces/abc123", content="Deploy is red", channel="web", id="w-1", timestamp=iso(1)
    )


# --- sign-in, the list, tabs, filters, search ----------------------------------------------


def test_sign_in_then_the_list_shows_the_seed_fields_most_recent_first(
    service: Service, tab: Tab
) -> None:
    seed_three(service)
    page = tab.page
    sign_in(page, service)
    expect(rows(page)).to_have_count(3)
    expect(rows(page).locator(".item-id")).to_have_text(
        ["spaces/abc123", "dm:987654321", "123456789:topic:42"]
    )
    first = row(page, "123456789:topic:42")
    expect(first.locator(".item-title")).to_have_text("Python prime numbers")
    expect(first.locator(".channel")).to_have_text("telegram")
    expect(first.locator(".count")).to_have_text("2 messages")
    expect(first.locator("time")).to_have_text("3 hours ago")
    _, listed = service.call("GET", "/api/sessions")
    updated = next(s for s in listed["sessions"] if s["id"] == "123456789:topic:42")["updated_at"]
    expect(first.locator("time")).to_have_attribute("datetime", updated)
    # The active one (a minute ago) and the inactive ones say so.
    expect(row(page, "spaces/abc123").locator(".visually-hidden")).to_have_text("Active, ")
    expect(first.locator(".visually-hidden")).to_have_text("Inactive, ")
    expect(page.locator("#sessions-total")).to_have_text("(3)")
    # The token is in this tab's sessionStorage, nowhere else, and never in the address.
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") == TOKENS["operator"][0]
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert TOKENS["operator"][0] not in page.url
    # A new tab of the same browser starts signed out.
    other = page.context.new_page()
    other.goto(service.url + "/console/")
    expect(other.get_by_label("API token")).to_be_visible()
    other.close()


def test_the_list_reads_the_next_page_as_its_end_scrolls_into_view(
    service: Service, tab: Tab
) -> None:
    service.batch(
        [
            {
                "session_id": f"s{n:03}",
                "role": "user",
                "content": f"chat {n}",
                "channel": "web",
                "id": f"m{n}",
                "timestamp": iso(200 - n),
            }
            for n in range(120)
        ]
    )
    page = tab.page
    sign_in(page, service)
    expect(rows(page)).to_have_count(50)
    expect(page.get_by_role("button", name="Load more sessions")).to_be_visible()
    for count in (100, 120):
        page.locator("#list-region").evaluate("node => { node.scrollTop = node.scrollHeight; }")
        expect(rows(page)).to_have_count(count)
    expect(page.locator(".list-end")).to_have_text("That is every session.")
    # Every session once, in the API's order.
    ids = rows(page).locator(".item-id").all_text_contents()
    assert ids == [f"s{n:03}" for n in reversed(range(120))]


def test_empty_and_no_match_states_say_what_to_do(service: Service, tab: Tab) -> None:
    page = tab.page
    sign_in(page, service)
    expect(page.locator("#list-region .state.empty")).to_contain_text("No sessions yet")
    expect(page.locator("#list-region .state.empty")).to_contain_text(
        "POST /api/sessions/{id}/messages"
    )
    page.get_by_role("searchbox").fill("nothing at all")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(".search-summary")).to_have_text("No session matches “nothing at all”.")
    page.get_by_role("button", name="Back to the list").click()
    page.locator("#filters summary").click()
    page.get_by_label("Activity").select_option("true")
    expect(page.locator("#list-region .state.empty")).to_contain_text(
        "No sessions match these filters."
    )
    page.get_by_role("button", name="Show every session").click()
    expect(page.locator("#list-region .state.empty")).to_contain_text("No sessions yet")
    page.goto(service.url + "/console/#/session/gone")
    expect(page.locator(".session-title")).to_have_text("No such session")


def test_a_wrong_token_is_refused_at_sign_in(service: Service, tab: Tab) -> None:
    page = tab.page
    page.goto(service.url + "/console/")
    page.get_by_label("API token").fill("cs_not_a_token_of_this_service_0000000000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("does not accept this token")
    expect(page.locator("#app")).to_be_hidden()
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None


def test_a_401_sends_back_to_sign_in(service: Service, tab: Tab) -> None:
    seed_three(service)
    page = tab.page
    sign_in(page, service)
    expect(rows(page)).to_have_count(3)
    # The token stops being valid (as when the service's tokens change), then any request.
    page.evaluate(f"sessionStorage.setItem('{TOKEN_KEY}', 'cs_revoked_token_000000000000000000')")
    page.reload()
    expect(page.get_by_label("API token")).to_be_visible()
    expect(page.locator("#signin-error")).to_contain_text("refused the token (401)")
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None


def test_channel_tabs_show_counts_and_narrow_the_list(service: Service, tab: Tab) -> None:
    seed_three(service)
    service.ingest("tg-2", content="Second telegram chat", channel="telegram", id="tg-b")
    page = tab.page
    sign_in(page, service)
    expect(rows(page)).to_have_count(4)
    tabs = page.get_by_role("tab")
    if service.has("/api/sessions/counts"):
        expect(page.get_by_role("tab", name="All 4")).to_have_attribute("aria-selected", "true")
        expect(page.get_by_role("tab", name="telegram 2")).to_be_visible()
        expect(page.get_by_role("tab", name="discord 1")).to_be_visible()
    else:
        expect(tabs).to_have_text(["All", "discord", "telegram", "web"])
    page.locator('[role="tab"][data-channel="telegram"]').click()
    expect(rows(page).locator(".item-id")).to_have_text(["tg-2", "123456789:topic:42"])
    expect(page.locator("#sessions-total")).to_have_text("(2)")
    # Arrow keys move between tabs, as in any tab list.
    page.keyboard.press("ArrowRight")
    expect(page.locator('[role="tab"][data-channel="web"]')).to_be_focused()
    expect(rows(page).locator(".item-id")).to_have_text(["spaces/abc123"])


def test_the_activity_filter_keeps_what_the_api_keeps(service: Service, tab: Tab) -> None:
    seed_three(service)
    page = tab.page
    sign_in(page, service)
    expect(rows(page)).to_have_count(3)
    page.locator("#filters summary").click()
    page.get_by_label("Activity").select_option("true")
    _, active = service.call("GET", "/api/sessions?active=true")
    expect(rows(page).locator(".item-id")).to_have_text([s["id"] for s in active["sessions"]])
    assert [s["id"] for s in active["sessions"]] == ["spaces/abc123"]
    expect(page.locator("#filters-summary")).to_have_text("(1 in use)")
    page.get_by_label("Activity").select_option("false")
    expect(rows(page).locator(".item-id")).to_have_text(["dm:987654321", "123456789:topic:42"])
    page.get_by_role("button", name="Clear filters").click()
    expect(rows(page)).to_have_count(3)


def test_search_shows_the_match_and_searches_further_when_incomplete(
    service: Service, tab: Tab
) -> None:
    # An older session holds the word; a newer one holds more non-ASCII text than one
    # search request reads, so the first answers stop at their bound (complete: false).
    service.ingest(
        "beetle-chat",
        content="Я видел жука в саду",
        channel="telegram",
        id="b1",
        timestamp=iso(120),
    )
    filler = "Ж" * 500
    service.batch(
        [
            {
                "session_id": "filler",
                "role": "user",
                "content": f"{filler} {n}",
                "channel": "web",
                "id": f"f{n}",
                "timestamp": iso(30),
            }
            for n in range(600)
        ]
    )
    _, first = service.call("GET", "/api/sessions/search?q=%D0%B6%D1%83%D0%BA")
    assert first["complete"] is False and first["sessions"] == [], first
    page = tab.page
    sign_in(page, service)
    expect(rows(page)).to_have_count(2)
    page.get_by_role("searchbox", name="Search titles and messages").fill("жук")
    page.get_by_role("button", name="Search", exact=True).click()
    further = page.get_by_role("button", name="Search further")
    expect(further).to_be_visible()
    expect(page.locator(".search-summary")).to_contain_text("stopped at its bound")
    result = page.locator('.results .row[data-id="beetle-chat"]')
    for _ in range(50):
        if result.count():
            break
        further.click()
        expect(further.or_(result)).to_be_visible()
        expect(page.get_by_role("button", name="Searching…")).to_have_count(0)
    expect(result.locator(".match")).to_have_text("user: Я видел жука в саду")
    expect(result.locator(".match mark")).to_have_text("жук")
    result.locator("a").click()
    expect(page.locator(".session-title")).to_have_text("Я видел жука в саду")
    # Back to the list.
    page.get_by_role("button", name="Back to the list").click()
    expect(rows(page)).to_have_count(2)


# --- a session ------------------------------------------------------------------------------


def test_history_loads_older_pages_while_scrolling_up(service: Service, tab: Tab) -> None:
    service.batch(
        [
            {
                "session_id": "long",
                "role": "user" if n % 2 else "assistant",
                "content": f"message {n}",
                "channel": "slack",
                "id": f"m{n}",
                "timestamp": iso(300 - n),
            }
            for n in range(1, 131)
        ]
    )
    page = tab.page
    sign_in(page, service)
    row(page, "long").locator("a").click()
    messages = page.locator(".messages .message")
    expect(messages).to_have_count(50)
    expect(messages.last.locator(".content")).to_have_text("message 130")
    history = page.locator(".history")
    # Each scroll to the top brings the page before it, until the session's beginning.
    for count in (100, 130):
        history.evaluate("node => { node.scrollTop = 0; }")
        expect(messages).to_have_count(count)
    expect(page.locator(".history-start")).to_have_text("The beginning of the session.")
    expect(messages.first.locator(".content")).to_have_text("message 1")
    texts = messages.locator(".content").all_text_contents()
    assert texts == [f"message {n}" for n in range(1, 131)]


def test_rename_and_delete_are_done_through_the_api(service: Service, tab: Tab) -> None:
    seed_three(service)
    page = tab.page
    sign_in(page, service)
    row(page, "dm:987654321").locator("a").click()
    expect(page.locator(".session-title")).to_have_text("Refund please")
    page.get_by_role("button", name="Rename").click()
    dialog = page.get_by_role("dialog", name="Rename the session")
    dialog.get_by_label("Title").fill("Refund for order 1182")
    dialog.get_by_role("button", name="Rename").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".session-title")).to_have_text("Refund for order 1182")
    expect(row(page, "dm:987654321").locator(".item-title")).to_have_text("Refund for order 1182")
    status, body = service.call("GET", "/api/sessions/dm%3A987654321")
    assert status == 200 and body["title"] == "Refund for order 1182"
    assert body["title_source"] == "user"

    page.get_by_role("button", name="Delete").click()
    confirm = page.get_by_role("dialog", name="Delete “Refund for order 1182”?")
    expect(confirm).to_contain_text("dm:987654321")
    expect(confirm).to_contain_text("1 message")
    # Cancel first: nothing happens.
    confirm.get_by_role("button", name="Cancel").click()
    assert service.call("GET", "/api/sessions/dm%3A987654321")[0] == 200
    page.get_by_role("button", name="Delete").click()
    confirm.get_by_role("button", name="Delete session").click()
    expect(row(page, "dm:987654321")).to_have_count(0)
    expect(page.locator(".overview-title")).to_be_visible()
    assert service.call("GET", "/api/sessions/dm%3A987654321")[0] == 404
    _, listed = service.call("GET", "/api/sessions")
    assert [s["id"] for s in listed["sessions"]] == ["spaces/abc123", "123456789:topic:42"]


def test_pin_and_archive_are_done_through_the_api(service: Service, tab: Tab) -> None:
    if not (service.patch_supports("pinned") and service.patch_supports("archived")):
        pytest.fail("PATCH takes no pinned/archived on this tree yet (organising, SPEC §7)")
    seed_three(service)
    page = tab.page
    sign_in(page, service)
    row(page, "spaces/abc123").locator("a").click()
    expect(page.locator(".session-title")).to_have_text("Deploy is red")
    page.get_by_role("button", name="Pin", exact=True).click()
    expect(page.get_by_role("button", name="Unpin")).to_be_visible()
    expect(row(page, "spaces/abc123").locator(".flag.pinned")).to_be_visible()
    assert service.call("GET", "/api/sessions/spaces%2Fabc123")[1]["pinned"] is True
    page.get_by_role("button", name="Archive", exact=True).click()
    expect(page.get_by_role("button", name="Unarchive")).to_be_visible()
    assert service.call("GET", "/api/sessions/spaces%2Fabc123")[1]["archived"] is True
    # Archived sessions leave the default list.
    expect(row(page, "spaces/abc123")).to_have_count(0)
    _, listed = service.call("GET", "/api/sessions")
    assert "spaces/abc123" not in [s["id"] for s in listed["sessions"]]


def test_tags_and_the_organising_filters(service: Service, tab: Tab) -> None:
    if not service.patch_supports("tags"):
        pytest.fail("PATCH takes no tags on this tree yet (organising, SPEC §7)")
    seed_three(service)
    _, tagged = service.call("GET", "/api/sessions?tag=no-session-has-this")
    if tagged["total"]:
        pytest.fail("the list has no tag filter on this tree yet (organising, SPEC §7)")
    service.ingest("alice-chat", content="Hi, it is Alice", channel="web", id="a-1", user="alice")
    status, _ = service.call("PATCH", "/api/sessions/dm%3A987654321", {"archived": True})
    assert status == 200
    page = tab.page
    sign_in(page, service)
    # Archived sessions are left out by default, as the API leaves them out.
    expect(rows(page).locator(".item-id")).to_have_text(
        ["alice-chat", "spaces/abc123", "123456789:topic:42"]
    )
    row(page, "spaces/abc123").locator("a").click()
    page.get_by_role("button", name="Edit tags").click()
    dialog = page.get_by_role("dialog", name="Edit tags")
    dialog.get_by_label("Tags").fill("billing, vip  billing")
    dialog.get_by_role("button", name="Save tags").click()
    expect(dialog).to_be_hidden()
    assert service.call("GET", "/api/sessions/spaces%2Fabc123")[1]["tags"] == ["billing", "vip"]
    expect(row(page, "spaces/abc123").locator(".tag")).to_have_text(["billing", "vip"])
    # A tag that the API would refuse is refused in the dialog, with the reason.
    page.get_by_role("button", name="Edit tags").click()
    dialog.get_by_label("Tags").fill("no spaces? <b>")
    dialog.get_by_role("button", name="Save tags").click()
    expect(dialog.locator("#dialog-error")).to_contain_text("is not a tag")
    dialog.get_by_role("button", name="Cancel").click()
    # The session's tag lists the sessions with it.
    page.locator(".session-head .tag", has_text="billing").click()
    expect(rows(page).locator(".item-id")).to_have_text(["spaces/abc123"])
    expect(page.get_by_label("Tag", exact=True)).to_have_value("billing")
    page.get_by_role("button", name="Clear filters").click()
    expect(rows(page)).to_have_count(3)
    page.get_by_label("User").fill("alice")
    page.get_by_role("button", name="Apply").click()
    expect(rows(page).locator(".item-id")).to_have_text(["alice-chat"])
    page.get_by_role("button", name="Clear filters").click()
    page.get_by_label("Archived").select_option("true")
    expect(rows(page).locator(".item-id")).to_have_text(["dm:987654321"])
    page.get_by_label("Archived").select_option("any")
    expect(rows(page)).to_have_count(4)
    _, every = service.call("GET", "/api/sessions?archived=any")
    expect(rows(page).locator(".item-id")).to_have_text([s["id"] for s in every["sessions"]])


def test_mark_read_marks_for_the_token_s_name(service: Service, tab: Tab) -> None:
    if not service.has("/api/whoami"):
        pytest.fail("no GET /api/whoami on this tree: the console cannot name the reader")
    seed_three(service)
    page = tab.page
    sign_in(page, service)
    expect(page.locator("#whoami")).to_contain_text("operator")
    item = row(page, "123456789:topic:42")
    expect(item.locator(".flag.unread")).to_have_text("2 unread")
    item.locator("a").click()
    page.get_by_role("button", name="Mark read").click()
    expect(item.locator(".flag.unread")).to_have_count(0)
    _, listed = service.call("GET", "/api/sessions?reader=operator")
    unread = {s["id"]: s["unread_count"] for s in listed["sessions"]}
    assert unread == {"spaces/abc123": 1, "dm:987654321": 1, "123456789:topic:42": 0}
    # Unread only: what the API keeps for this reader.
    page.locator("#filters summary").click()
    page.get_by_label("Unread only").check()
    expect(rows(page).locator(".item-id")).to_have_text(["spaces/abc123", "dm:987654321"])


def test_export_downloads_the_session(service: Service, tab: Tab) -> None:
    seed_three(service)
    page = tab.page
    sign_in(page, service)
    row(page, "123456789:topic:42").locator("a").click()
    expect(page.locator(".session-title")).to_have_text("Python prime numbers")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export JSON").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".json")
    exported = orjson.loads(Path(download.path()).read_bytes())
    assert [m["content"] for m in exported["messages"]] == ["Python prime numbers", "2, 3, 5, 7"]
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export Markdown").click()
    assert Path(download_info.value.path()).read_text().startswith("# Python prime numbers")


def test_a_read_only_token_sees_write_actions_disabled_with_the_reason(
    service: Service, tab: Tab
) -> None:
    seed_three(service)
    page = tab.page
    sign_in(page, service, "viewer")
    row(page, "spaces/abc123").locator("a").click()
    expect(page.locator(".session-title")).to_have_text("Deploy is red")
    for name in ("Rename", "Delete"):
        button = page.get_by_role("button", name=name, exact=True)
        expect(button).to_be_disabled()
        expect(button).to_have_attribute("aria-describedby", "readonly-note")
    expect(page.locator("#readonly-note")).to_contain_text("lacks sessions:write")
    expect(page.locator("#readonly-note")).to_contain_text("sessions:delete")
    # Reading still works: export is on.
    expect(page.get_by_role("button", name="Export JSON")).to_be_enabled()
    expect(page.locator("#whoami")).to_contain_text("read")
    expect(page.locator("#whoami")).not_to_contain_text("write")


# --- live -----------------------------------------------------------------------------------


def test_a_message_sent_through_the_api_appears_without_a_reload(
    service: Service, tab: Tab
) -> None:
    if not service.has("/api/events"):
        pytest.fail("no GET /api/events on this tree yet (the live issue, SPEC §6)")
    seed_three(service)
    page = tab.page
    sign_in(page, service)
    expect(page.locator("#live-text")).to_have_text("Live")
    expect(rows(page).first).to_have_attribute("data-id", "spaces/abc123")
    page.evaluate("window.__notReloaded = true")
    # A message to the oldest session moves it to the top with its new count.
    service.ingest("123456789:topic:42", content="And 11?", channel="telegram", id="tg-3")
    expect(rows(page).first).to_have_attribute("data-id", "123456789:topic:42")
    expect(row(page, "123456789:topic:42").locator(".count")).to_have_text("3 messages")
    # A new session arrives, and an open session gets its new message.
    service.ingest("brand-new", content="Hello from a new chat", channel="slack", id="n-1")
    expect(rows(page).first).to_have_attribute("data-id", "brand-new")
    expect(page.locator('[role="tab"][data-channel="slack"]')).to_be_visible()
    row(page, "brand-new").locator("a").click()
    expect(page.locator(".messages .message")).to_have_count(1)
    service.ingest("brand-new", role="assistant", content="Welcome!", channel="slack", id="n-2")
    expect(page.locator(".messages .message")).to_have_count(2)
    expect(page.locator(".messages .message").last.locator(".content")).to_have_text("Welcome!")
    # A deletion elsewhere leaves the list; the open session's own says so in its place.
    assert service.call("DELETE", "/api/sessions/dm%3A987654321")[0] == 200
    expect(row(page, "dm:987654321")).to_have_count(0)
    assert service.call("DELETE", "/api/sessions/brand-new")[0] == 200
    expect(page.locator(".session-title")).to_have_text("This session was deleted")
    expect(row(page, "brand-new")).to_have_count(0)
    assert page.evaluate("window.__notReloaded") is True


def test_after_a_drop_the_feed_resumes_where_it_stopped(tmp_path: Path, tab: Tab) -> None:
    """The service the console reads goes away; meanwhile a message is written through a
    second service on the same Redis. When the first is back on its port, the console
    asks with Last-Event-ID and gets the missed event: the session moves up without the
    list being read again."""
    own = start_service(tmp_path / "a")
    other: ServeProcess | None = None
    try:
        if not own.has("/api/events"):
            pytest.fail("no GET /api/events on this tree yet (the live issue, SPEC §6)")
        env = {**tokens_env(), "CHATSESSIONS_REDIS_URL": own.redis.url}
        other = ServeProcess(tmp_path / "b", env=env).start()
        seed_three(own)
        page = tab.page
        feed_asks: list[str | None] = []
        list_reads: list[str] = []

        def seen(request: Any) -> None:
            if "/api/events" in request.url:
                feed_asks.append(request.headers.get("last-event-id"))
            elif "/api/sessions?" in request.url and "limit=50" in request.url:
                list_reads.append(request.url)

        page.on("request", seen)
        sign_in(page, own)
        expect(page.locator("#live-text")).to_have_text("Live")
        expect(rows(page)).to_have_count(3)
        # One event seen live, so the console has an id to resume from.
        own.ingest("spaces/abc123", content="still red", channel="web", id="w-2")
        expect(row(page, "spaces/abc123").locator(".count")).to_have_text("2 messages")
        reads_before = len(list_reads)
        own.serve.stop()
        expect(page.locator("#live-text")).not_to_have_text("Live")
        status, _ = Service(own.redis, other).call(
            "POST",
            "/api/sessions/123456789%3Atopic%3A42/messages",
            {"role": "user", "content": "missed while away", "channel": "telegram", "id": "tg-9"},
        )
        assert status == 201
        own.serve = ServeProcess(tmp_path / "a" / "serve", env=env, port=own.serve.port).start()
        expect(rows(page).first).to_have_attribute("data-id", "123456789:topic:42")
        expect(row(page, "123456789:topic:42").locator(".count")).to_have_text("3 messages")
        expect(page.locator("#live-text")).to_have_text("Live")
        # Resumed from an id, not started afresh, and the list was not read again.
        assert feed_asks[0] is None and feed_asks[-1]
        assert len(list_reads) == reads_before
    finally:
        if other is not None:
            other.stop()
        stop_service(own)


def test_a_position_the_stream_no_longer_keeps_resets_and_the_list_is_read_again(
    tmp_path: Path, tab: Tab
) -> None:
    """Redis loses its data while the console is away (FLUSHALL): the position it resumes
    from is no longer kept, the service answers with a reset, and the console reads the
    list again, without a reload, then follows the new events."""
    own = start_service(tmp_path)
    try:
        if not own.has("/api/events"):
            pytest.fail("no GET /api/events on this tree yet (the live issue, SPEC §6)")
        seed_three(own)
        page = tab.page
        sign_in(page, own)
        expect(page.locator("#live-text")).to_have_text("Live")
        own.ingest("spaces/abc123", content="still red", channel="web", id="w-2")
        expect(row(page, "spaces/abc123").locator(".count")).to_have_text("2 messages")
        page.evaluate("window.__notReloaded = true")
        own.serve.stop()
        own.flush()
        own.serve = ServeProcess(own.serve.directory, env=own.serve.env, port=own.serve.port)
        own.serve.start()
        expect(page.locator("#list-region .state.empty")).to_contain_text("No sessions yet")
        expect(page.locator("#live-text")).to_have_text("Live")
        own.ingest("after-reset", content="A fresh start", channel="slack", id="r-1")
        expect(rows(page).locator(".item-id")).to_have_text(["after-reset"])
        assert page.evaluate("window.__notReloaded") is True
    finally:
        stop_service(own)


def sse_event(event_id: str, kind: str, data: Any) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {orjson.dumps(data).decode()}\n\n"


def test_the_feed_resumes_with_last_event_id_and_a_reset_reads_the_list_again(
    service: Service, tab: Tab
) -> None:
    """The console's side of the feed, against answers the test gives in the service's
    place: each answer ends (a dropped connection), and the console must come back with
    the last id it saw, and read the list again on a reset."""
    seed_three(service)
    _, listed = service.call("GET", "/api/sessions")
    oldest = dict(listed["sessions"][-1])
    page = tab.page
    asked: list[str | None] = []
    list_reads: list[str] = []
    moved = {**oldest, "message_count": 7, "updated_at": iso(0)}
    answers = [
        ": hello\n\n" + sse_event("5-0", "session.updated", {"session": moved}),
        sse_event("6-0", "reset", {"detail": "the position asked for is gone"}),
    ]

    def feed(route: Any) -> None:
        asked.append(route.request.headers.get("last-event-id"))
        if len(asked) > len(answers):
            route.fulfill(status=503, json={"detail": "later"}, headers={"Retry-After": "30"})
            return
        route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
            body=answers[len(asked) - 1],
        )

    page.route("**/api/events", feed)
    page.on(
        "request",
        lambda request: list_reads.append(request.url) if "/api/sessions?" in request.url else None,
    )
    sign_in(page, service)
    # The first answer's event moved the oldest session to the top with its new count.
    expect(rows(page).first).to_have_attribute("data-id", oldest["id"])
    expect(rows(page).first.locator(".count")).to_have_text("7 messages")
    # Its stream ended; the console asked again from the last id it saw, then got a
    # reset and read the list again, which puts the session back where the service has it.
    expect(rows(page).first).to_have_attribute("data-id", "spaces/abc123")
    # The third request met a 503, which the console shows and waits out.
    expect(page.locator("#live-text")).to_have_text("Redis unavailable, retrying…")
    assert asked == [None, "5-0", "6-0"]
    assert len([url for url in list_reads if "limit=50" in url]) == 2


def test_the_sse_parser_reads_streams_as_the_standard_says(service: Service, tab: Tab) -> None:
    page = tab.page
    page.goto(service.url + "/console/")
    expect(page.get_by_label("API token")).to_be_visible()
    stream = (
        ": heartbeat\r\n\r\n"
        'id: 1-0\r\nevent: session.created\r\ndata: {"a":\r\ndata:1}\r\n\r\n'
        "event: ignored-without-data\n\n"
        "data: no id here\n\n"
        "id: 2-0\revent: reset\rdata: x\r\r"
        "retry: 100\nfield-without-colon\n"
    )
    results = page.evaluate(
        """async (stream) => {
            const { SseParser } = await import('./sse.js');
            const whole = new SseParser().push(stream);
            const parser = new SseParser();
            const bytewise = [];
            for (const ch of stream) bytewise.push(...parser.push(ch));
            return { whole, bytewise, last: parser.lastEventId };
        }""",
        stream,
    )
    expected = [
        {"type": "session.created", "data": '{"a":\n1}', "id": "1-0"},
        {"type": "message", "data": "no id here", "id": "1-0"},
        {"type": "reset", "data": "x", "id": "2-0"},
    ]
    assert results["whole"] == expected
    assert results["bytewise"] == expected
    assert results["last"] == "2-0"


def test_the_chart_draws_each_hour_and_channel(service: Service, tab: Tab) -> None:
    page = tab.page
    page.goto(service.url + "/console/")
    expect(page.get_by_label("API token")).to_be_visible()
    drawn = page.evaluate(
        """async () => {
            const { activityChart } = await import('./chart.js');
            const hours = Array.from({ length: 24 }, (_, h) =>
                new Date(Date.UTC(2026, 0, 1, h)).toISOString());
            const figure = activityChart({ hours, channels: {
                web: hours.map((_, h) => (h === 5 ? 3 : 0)),
                telegram: hours.map((_, h) => (h % 2)),
                '<b>x</b>': hours.map((_, h) => (h === 23 ? 1 : 0)),
            } });
            document.body.append(figure);
            return {
                bars: figure.querySelectorAll('rect').length,
                titles: [...figure.querySelectorAll('rect title')].map((t) => t.textContent),
                summary: figure.querySelector('figcaption').textContent,
                legend: [...figure.querySelectorAll('.legend li')].map((li) => li.textContent),
                rows: figure.querySelectorAll('tbody tr').length,
                bold: figure.querySelectorAll('b').length,
            };
        }"""
    )
    assert drawn["bars"] == 1 + 12 + 1
    assert "web, 05:00: 3 sessions" in drawn["titles"]
    assert (
        drawn["summary"]
        == "16 sessions active in the last 24 hours; busiest hour 05:00 with 4 sessions."
    )
    assert drawn["legend"] == ["telegram (12)", "web (3)", "<b>x</b> (1)"]
    assert drawn["rows"] == 24 and drawn["bold"] == 0


# --- safety ---------------------------------------------------------------------------------


def test_markup_in_titles_contents_tags_and_ids_is_shown_as_text(
    service: Service, tab: Tab
) -> None:
    status, _ = service.call("POST", "/api/sessions", {"id": XSS, "channel": "web", "title": XSS})
    assert status == 201
    stored = service.ingest(XSS, content=f"look: {XSS}", channel="web", id=XSS, user=XSS)
    # A user is any 1-256 characters, markup included, where sessions have users.
    has_user = stored["session"].get("user") == XSS
    tagged = service.patch_supports("tags")
    if tagged:
        # Tags allow only letters, digits and _-.: so markup cannot be one; the closest
        # tag is checked as text anyway.
        status, _ = service.call(
            "PATCH", f"/api/sessions/{quote(XSS, safe='')}", {"tags": ["img:x"]}
        )
        assert status == 200
    page = tab.page
    sign_in(page, service)
    item = rows(page).first
    expect(item.locator(".item-title")).to_have_text(XSS)
    expect(item.locator(".item-id")).to_have_text(XSS)
    item.locator("a").click()
    expect(page.locator(".session-title")).to_have_text(XSS)
    expect(page.locator(".session-id")).to_have_text(XSS)
    expect(page.locator(".messages .content")).to_have_text(f"look: {XSS}")
    if has_user:
        expect(page.locator(".session-head .user")).to_have_text(XSS)
    expect(page.locator(".messages .message-id")).to_have_text(XSS)
    if tagged:
        expect(page.locator(".session-head .tag")).to_have_text(["img:x"])
    # The delete confirmation names the session as text too.
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("#dialog-title")).to_have_text(f"Delete “{XSS}”?")
    page.get_by_role("button", name="Cancel").click()
    # Search results and their match, highlighted, stay text.
    page.get_by_role("searchbox").fill("onerror")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(".results .match")).to_contain_text(XSS)
    # No element was made from the markup, and its handler never ran.
    assert page.locator("img").count() == 0
    assert page.evaluate("window.__xss") is None


def test_the_policy_stops_an_inline_script(service: Service, tab: Tab) -> None:
    page = tab.page
    page.goto(service.url + "/console/")
    expect(page.get_by_label("API token")).to_be_visible()
    violated = page.evaluate(
        """() => new Promise((resolve) => {
            document.addEventListener('securitypolicyviolation',
                (event) => resolve(event.violatedDirective), { once: true });
            const script = document.createElement('script');
            script.textContent = 'window.__inline = 1';
            document.body.append(script);
        })"""
    )
    assert violated.startswith("script-src")
    assert page.evaluate("window.__inline") is None


def test_redis_down_shows_redis_unavailable_retrying_then_recovers(
    tmp_path: Path, tab: Tab
) -> None:
    own = start_service(tmp_path)
    try:
        seed_three(own)
        page = tab.page
        sign_in(page, own)
        expect(rows(page)).to_have_count(3)
        own.redis.stop()
        page.reload()
        banner = page.get_by_role("alert").filter(has_text="Redis unavailable, retrying")
        expect(banner).to_be_visible()
        expect(page.locator("#list-region")).to_have_attribute("aria-busy", "true")
        # Redis back on the same port (empty: it keeps no data), and the console recovers
        # without a reload.
        own.redis = RedisProcess(own.redis.directory, port=own.redis.port).start()
        expect(banner).to_be_hidden()
        expect(page.locator("#list-region .state.empty")).to_contain_text("No sessions yet")
    finally:
        stop_service(own)


def test_a_service_out_of_reach_is_said_and_waited_out(tmp_path: Path, tab: Tab) -> None:
    own = start_service(tmp_path)
    try:
        seed_three(own)
        page = tab.page
        sign_in(page, own)
        expect(rows(page)).to_have_count(3)
        own.serve.stop()
        row(page, "dm:987654321").locator("a").click()
        banner = page.get_by_role("alert").filter(has_text="cannot be reached, retrying")
        expect(banner).to_be_visible()
        expect(page.locator("#detail")).to_have_attribute("aria-busy", "true")
        own.serve = ServeProcess(own.serve.directory, env=own.serve.env, port=own.serve.port)
        own.serve.start()
        expect(page.locator(".session-title")).to_have_text("Refund please")
        expect(banner).to_be_hidden()
    finally:
        stop_service(own)


def test_a_rate_limited_read_waits_the_pause_the_service_asks_for(
    service: Service, tab: Tab
) -> None:
    """A 429 (answered here in the service's place, as a rate limit would) is waited out
    for its Retry-After, said in the banner, and the read then goes through."""
    seed_three(service)
    page = tab.page
    refused: list[str] = []

    def limit_once(route: Any) -> None:
        if "limit=50" in route.request.url and not refused:
            refused.append(route.request.url)
            route.fulfill(
                status=429,
                json={"detail": "Too many requests for this token."},
                headers={"Retry-After": "3"},
            )
        else:
            route.continue_()

    page.route("**/api/sessions?*", limit_once)
    sign_in(page, service)
    banner = page.get_by_role("alert").filter(has_text="Too many requests")
    expect(banner).to_be_visible()
    expect(rows(page)).to_have_count(3)
    expect(banner).to_be_hidden()
    assert len(refused) == 1


# --- accessibility --------------------------------------------------------------------------


def serious_violations(page: Page) -> list[str]:
    results = Axe().run(page)
    found = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    return found


def test_axe_finds_no_serious_violations(service: Service, tab: Tab) -> None:
    seed_three(service)
    page = tab.page
    page.goto(service.url + "/console/")
    expect(page.get_by_label("API token")).to_be_visible()
    assert serious_violations(page) == []
    sign_in(page, service)
    expect(rows(page)).to_have_count(3)
    page.locator("#filters summary").click()
    assert serious_violations(page) == []
    row(page, "123456789:topic:42").locator("a").click()
    expect(page.locator(".messages .message")).to_have_count(2)
    assert serious_violations(page) == []
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    assert serious_violations(page) == []
    page.get_by_role("button", name="Cancel").click()
    # The overview with its chart and the figures' table, and search results.
    page.get_by_role("link", name="Overview").click()
    expect(page.locator(".overview-title")).to_be_visible()
    if service.has("/api/sessions/counts"):
        expect(page.locator(".chart")).to_be_visible()
        page.locator(".chart-table summary").click()
    assert serious_violations(page) == []
    page.get_by_role("searchbox").fill("prime")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(".results .row")).to_have_count(1)
    assert serious_violations(page) == []


def test_keyboard_alone_reaches_a_session(service: Service, tab: Tab) -> None:
    seed_three(service)
    page = tab.page
    sign_in(page, service)
    expect(rows(page)).to_have_count(3)
    page.locator(".item").first.focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator(".item").nth(1)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".session-title")).to_have_text("Refund please")
    expect(page.locator(".session-title")).to_be_focused()
    # "/" jumps to search.
    page.locator("body").press("/")
    expect(page.get_by_role("searchbox")).to_be_focused()


# --- /docs ------------------------------------------------------------------------------------


def test_docs_render_without_a_token_and_ask_for_one_to_try(service: Service, tab: Tab) -> None:
    seed_three(service)
    page = tab.page
    page.goto(service.url + "/docs")
    operation = (
        page.locator("#operations-default-get_api_sessions, .opblock-get")
        .filter(has_text="/api/sessions")
        .first
    )
    expect(operation).to_be_visible()
    operation.locator(".opblock-summary").first.click()
    page.get_by_role("button", name="Try it out").first.click()
    page.get_by_role("button", name="Execute").first.click()
    # Without a token the request asks for one: the Authorize dialog opens.
    auth = page.locator(".dialog-ux .modal-ux")
    expect(auth).to_be_visible()
    expect(page.locator(".responses-wrapper .live-responses-table")).to_contain_text("401")
    auth.locator("input").first.fill(TOKENS["operator"][0])
    auth.get_by_role("button", name="Apply credentials").click()
    auth.get_by_role("button", name="Close", exact=True).click()
    page.get_by_role("button", name="Execute").first.click()
    expect(page.locator(".live-responses-table tbody .response-col_status").first).to_have_text(
        "200"
    )
    expect(page.locator(".live-responses-table")).to_contain_text("spaces/abc123")
    # The token stayed in the page: nothing was stored.
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0


# --- screenshots for the README -----------------------------------------------------------


def test_write_screenshots(service: Service, tab: Tab, tmp_path: Path) -> None:
    """The README's screenshots at 1280x800, of a list, a session and the chart: written
    to CHATSESSIONS_SCREENSHOTS when set (to make them again), else to a scratch folder,
    so that every run shows those views render."""
    out = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    channels = ["telegram", "telegram", "web", "discord", "telegram", "slack", "web", "discord"]
    topics = [
        "Python prime numbers",
        "Refund for order 1182",
        "Deploy fails on arm64",
        "Weekly report summary",
        "Password reset link does not arrive",
        "Which plan fits a team of five?",
        "Bug: login loop after the update",
        "Invoice in EUR, not USD",
        "Can I export my chat history?",
        "Booking a table for Friday",
    ]
    turns = [
        "",
        "Could you tell me a bit more about what you tried so far?",
        "I followed the guide, and it stops at the last step.",
        "Thanks. Here is how to get past that step: open the settings and retry once.",
        "That worked, thank you!",
        "Glad to hear it. Anything else I can help with?",
        "No, that is all.",
    ]
    messages = []
    for n in range(60):
        channel, topic = channels[n % len(channels)], topics[n % len(topics)]
        # More sessions in the working hours of the last day, fewer at night.
        start = 2 + int((n**1.55) * 6) % (23 * 60)
        for m in range(1 + (n * 5) % 7):
            messages.append(
                {
                    "session_id": f"{channel[:2]}-{1000 + n}",
                    "role": "user" if m % 2 == 0 else "assistant",
                    "content": topic if m == 0 else turns[m],
                    "channel": channel,
                    "id": f"s{n}-{m}",
                    "timestamp": iso(start - m * 0.5),
                }
            )
    service.batch(messages)
    if service.patch_supports("tags"):
        for session_id, change in [
            ("te-1001", {"tags": ["billing", "refund"], "pinned": True}),
            ("di-1003", {"tags": ["reports"]}),
            ("te-1004", {"tags": ["account"]}),
        ]:
            assert service.call("PATCH", f"/api/sessions/{session_id}", change)[0] == 200
    page = tab.page
    sign_in(page, service)
    expect(rows(page)).to_have_count(50)
    expect(page.locator(".chart")).to_be_visible()
    page.mouse.move(0, 0)
    page.screenshot(path=out / "console-list.png")
    row(page, "te-1001").locator("a").click()
    expect(page.locator(".messages .message")).to_have_count(6)
    page.screenshot(path=out / "console-session.png")
    page.goto(service.url + "/console/#")
    expect(page.locator(".chart")).to_be_visible()
    page.locator(".chart-table summary").click()
    page.screenshot(path=out / "console-chart.png")
    for name in ("console-list.png", "console-session.png", "console-chart.png"):
        header = (out / name).read_bytes()[:24]
        # A PNG's width and height follow its signature and the IHDR chunk's head.
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        assert (int.from_bytes(header[16:20]), int.from_bytes(header[20:24])) == (1280, 800)


def test_no_browser_was_downloaded() -> None:
    """The tests use Debian's chromium; Playwright's own browser store stays empty."""
    store = Path(
        os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache" / "ms-playwright")
    )
    assert not store.exists() or not any(store.glob("chromium*")), list(store.iterdir())
