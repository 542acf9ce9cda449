"""The request path's shortcuts give what the plain definitions give: times formatted
from a table of endings, ids checked for control characters without a regex when they
are printable ASCII; and a time sent in milliseconds is refused with the fix."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.models import (
    MAX_PLAUSIBLE_SECONDS,
    MAX_TIME_MS,
    InvalidInput,
    check_session_id,
    format_time,
    parse_time,
)

CONTROL_CHARACTERS = [chr(code) for code in (*range(32), 127)]


@given(st.integers(min_value=0, max_value=MAX_TIME_MS))
def test_times_are_rfc_3339_with_milliseconds_only_when_there_are_any(ms: int) -> None:
    expected = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    expected += f".{ms % 1000:03d}Z" if ms % 1000 else "Z"
    assert format_time(ms) == expected


def test_time_endings() -> None:
    assert format_time(1_705_314_600_000) == "2024-01-15T10:30:00Z"
    assert format_time(1_705_314_600_001) == "2024-01-15T10:30:00.001Z"
    assert format_time(1_705_314_600_999) == "2024-01-15T10:30:00.999Z"


@given(st.text(min_size=1, max_size=40), st.sampled_from(CONTROL_CHARACTERS), st.data())
def test_an_id_with_a_control_character_is_refused(
    text: str, control: str, data: st.DataObject
) -> None:
    at = data.draw(st.integers(0, len(text)))
    with pytest.raises(InvalidInput, match="control characters"):
        check_session_id(text[:at] + control + text[at:])


@given(st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40))
def test_an_id_is_refused_for_control_characters_exactly_when_it_holds_one(text: str) -> None:
    if text in (".", ".."):
        return
    if any(c in CONTROL_CHARACTERS for c in text):
        with pytest.raises(InvalidInput, match="control characters"):
            check_session_id(text)
    else:
        assert check_session_id(text) == text


@pytest.mark.parametrize(
    ("milliseconds", "seconds"),
    [(1_705_314_600_000, "1705314600"), (1_705_314_600_123.5, "1705314600.124")],
)
def test_a_time_in_milliseconds_says_seconds_not_milliseconds(
    milliseconds: float, seconds: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_time(milliseconds)
    assert "seconds, not milliseconds" in caught.value.detail
    assert f"({seconds} here)" in caught.value.detail


def test_the_milliseconds_hint_starts_where_seconds_cannot_be_meant() -> None:
    # Up to MAX_PLAUSIBLE_SECONDS a number is seconds (refused only as too far ahead);
    # past 9999 in milliseconds it is neither, and the range is what is said.
    with pytest.raises(InvalidInput, match="24 hours in the future"):
        parse_time(MAX_PLAUSIBLE_SECONDS)
    with pytest.raises(InvalidInput, match="seconds, not milliseconds"):
        parse_time(MAX_PLAUSIBLE_SECONDS + 1)
    with pytest.raises(InvalidInput, match="seconds, not milliseconds"):
        parse_time(MAX_TIME_MS)
    with pytest.raises(InvalidInput, match="between 1970 and 9999"):
        parse_time(MAX_TIME_MS + 1)
    assert parse_time(1_705_314_600) == 1_705_314_600_000
