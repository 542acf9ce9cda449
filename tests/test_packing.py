"""Commands packed in parts (a fixed start once, the rest per call) are the bytes hiredis
packs for the whole command."""

from __future__ import annotations

from typing import Any

import hiredis
from hypothesis import given
from hypothesis import strategies as st

from service.redis_link import pack_rest, pack_start

argument = st.one_of(st.text(), st.binary(), st.integers(-(2**63), 2**63 - 1))


@given(st.lists(argument, min_size=1, max_size=12), st.binary(), st.binary())
def test_a_command_packed_in_two_parts_is_packed_whole(
    fixed: list[Any], first: bytes, second: bytes
) -> None:
    start = pack_start(fixed, 2)
    assert pack_rest(start, first, second) == hiredis.pack_command((*fixed, first, second))


def test_the_length_counts_every_argument_past_nine() -> None:
    start = pack_start(["EVALSHA", "0" * 40, 1, *"abcdefgh"], 2)
    assert start.startswith(b"*13\r\n$7\r\nEVALSHA\r\n")
    assert pack_rest(start, b"", b"\r\n") == hiredis.pack_command(
        ("EVALSHA", "0" * 40, 1, *"abcdefgh", b"", b"\r\n")
    )
