"""The bounds of the store's work, shared by Python and the scripts."""

from __future__ import annotations

# How long a write's operation id is kept: longer than the service's one retry can
# come after the first try (a round-trip deadline and a reconnect), short enough that
# the ids of a busy namespace stay a small part of its memory.
OPERATION_TTL_MS = 10_000

# Bytes of stored messages one history page or export step reads at most (always one
# message at least): with messages of up to 64 KiB, a page bounded by count alone could
# hold Redis for tens of milliseconds and the process for tens of megabytes.
PAGE_BYTES = 256 * 1024

# Messages per INGEST_MANY call: long enough to save commands, short enough that one
# call holds Redis for a few milliseconds at most.
BATCH_CHUNK = 100

# One search step's bounds: each step is one script call, and these keep it to about a
# millisecond of Redis time whatever the messages hold (64 KiB each at most).
SEARCH_STEP_SESSIONS = 50

SEARCH_STEP_MESSAGES = 400

SEARCH_STEP_BYTES = 64 * 1024

# A query beyond ASCII folds the case of every two-byte character it reads, in Lua, so
# its step reads fewer bytes within the same bound.
SEARCH_STEP_BYTES_FOLDED = 8 * 1024

# Steps one request may take before it answers with a next_cursor.
SEARCH_STEPS = 16

# Sessions one list request under several filters walks at most (scripts/filter.lua):
# a page of few matches ends there, with a cursor that goes on.
LIST_SCAN_BOUND = 500

# Sessions one bulk or erasure script call changes at most: each session's change costs
# about as much as a PATCH, so a call stays within a few milliseconds.
BULK_CHUNK = 100

# Events an erasure looks through per script call when it takes away a person's events.
EVENTS_SCRUB_STEP = 2000

# Events a namespace's change feed keeps at least, unless the settings say otherwise.
EVENTS_RETENTION = 100_000

FIELDS_SEPARATOR = "\0"
