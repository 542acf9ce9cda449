"""The script titles a session from ASCII content exactly as models.auto_title does."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.models import DEFAULT_TITLE, MessageIn, auto_title
from service.store import SessionStore

NOW = 1_700_000_000_000
session_numbers = itertools.count()

ascii_text = st.text(alphabet=st.characters(max_codepoint=127), max_size=300)
# Words and separators that reach the 80-character cut, the 40-word limit, the
# punctuation trimmed before the ellipsis, and the bytes JSON escapes.
wordy_text = st.lists(
    st.one_of(
        st.text(alphabet="abc,.;:-", min_size=1, max_size=12),
        st.sampled_from([" ", "  ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1f", " - "]),
        st.sampled_from(['"', "\\", "\x00", "\x08", "\x1b", "\x7f", "/"]),
    ),
    max_size=120,
).map("".join)

EXAMPLES = [
    "",
    "   ",
    "\x1c\x1d\x1e\x1f",
    "  hello   world  ",
    "a" * 79,
    "a" * 80,
    "a" * 81,
    "x" * 300,
    " ".join(["word"] * 50),
    ("abc " * 19) + "defghij, ...",
    'say "hi" \\ back\\slash',
    "nul\x00byte bell\x07 del\x7f back\x08space esc\x1b",
]


async def title_of(store: SessionStore, content: str) -> str:
    session_id = f"t{next(session_numbers)}"
    message = MessageIn(
        id="m1", role="user", content=content, timestamp_ms=NOW, metadata=None, channel="web"
    )
    await store.add_message("default", session_id, message, now=NOW)
    return (await store.get_session("default", session_id, now=NOW)).title


async def test_examples_are_titled_as_python_titles_them(store: SessionStore) -> None:
    for content in EXAMPLES:
        assert await title_of(store, content) == (auto_title(content) or DEFAULT_TITLE), content


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(content=st.one_of(ascii_text, wordy_text))
async def test_any_ascii_content_is_titled_as_python_titles_it(
    store: SessionStore, content: str
) -> None:
    assert await title_of(store, content) == (auto_title(content) or DEFAULT_TITLE)
