"""The store's Lua scripts, one ``.lua`` file each, read by one loader.

A script names the fragments it shares with others on ``--! include FILE`` lines and
the Python constants it needs as ``${NAME}``: :func:`script_text` puts both in, so
that a bound or a rule is written once, in Python or in one fragment.
"""

from __future__ import annotations

import functools
from importlib import resources

from ...models import AUTO_TITLE_LENGTH, MAX_TAGS
from ..fold import lua_fold_table
from ..limits import EVENTS_RETENTION, OPERATION_TTL_MS
from ..record import DERIVE_TITLE

INCLUDE = "--! include "


def constants(events_retention: int = EVENTS_RETENTION) -> dict[str, str]:
    return {
        "EVENTS_RETENTION": str(events_retention),
        "OPERATION_TTL_MS": str(OPERATION_TTL_MS),
        "AUTO_TITLE_LENGTH": str(AUTO_TITLE_LENGTH),
        "MAX_TAGS": str(MAX_TAGS),
        "DERIVE_TITLE": DERIVE_TITLE,
        "FOLD_TABLE": lua_fold_table(),
    }


def _source(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _with_includes(source: str) -> str:
    parts = []
    for line in source.splitlines(keepends=True):
        if line.startswith(INCLUDE):
            parts.append(_with_includes(_source(line[len(INCLUDE) :].strip())))
        else:
            parts.append(line)
    return "".join(parts)


def assembled(source: str, events_retention: int = EVENTS_RETENTION) -> str:
    """Lua ``source`` with its includes and constants put in."""
    text = _with_includes(source)
    for key, value in constants(events_retention).items():
        text = text.replace("${" + key + "}", value)
    if "${" in text:
        raise ValueError("a script names a constant the loader does not know")
    return text


@functools.cache
def script_text(name: str, events_retention: int = EVENTS_RETENTION) -> str:
    """The script ``name`` (``"ingest"`` for ingest.lua) as Redis runs it; the events a
    namespace's feed keeps is a setting, and a write script trims the feed to it."""
    return assembled(_source(f"{name}.lua"), events_retention)
