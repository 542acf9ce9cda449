"""``python -m bench.noevents serve …``: chatsessions serve with its write scripts' event
left out (scripts/events.lua's ``emit`` does nothing: no XADD, no version), and nothing
else changed: the "without" side of the row that measures what appending the event to
every write costs (bench/live.py). Never a way to run the service: without events its
feed, ETags and webhooks do not work."""

from __future__ import annotations

import sys

from service.store import scripts

EMIT = "local function emit("
# Defined after the real one, so every script that includes events.lua calls this one.
SILENT = "\nlocal function emit(session_key, kind, id, channel, score, item, message) end\n"

_source = scripts._source


def without_events(name: str) -> str:
    text = _source(name)
    if name == "events.lua":
        if EMIT not in text:
            raise RuntimeError("events.lua no longer defines emit: bench.noevents needs updating")
        text += SILENT
    return text


def main() -> int:
    scripts._source = without_events
    scripts.script_text.cache_clear()
    from service.cli import main as serve

    return serve()


if __name__ == "__main__":
    sys.exit(main())
