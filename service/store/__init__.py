"""The Redis store: the only package that knows key names and Lua scripts.

Handlers and the CLI see one API, :class:`SessionStore`, and the domain errors and
types it answers with. Inside, one module per concern: :mod:`.keys` (key names),
:mod:`.record` (the session record and its JSON), :mod:`.cursor`, :mod:`.errors`,
:mod:`.types`, :mod:`.limits`, :mod:`.fold`, ``scripts/`` (the Lua scripts and
their loader), :mod:`.transport` (the one way to Redis), :mod:`.events` (the change
feed's events), the store API (:mod:`.sessions`, made of :mod:`.base`,
:mod:`.live` and :mod:`.organise`), :mod:`.check`, :mod:`.migrate`, and the leases
of webhooks and the sweep (:mod:`.webhook_state`, :mod:`.sweep_lease`).
"""

from .check import CheckReport, InvariantChecker
from .cursor import Cursor, SearchCursor, decode_cursor, encode_cursor
from .errors import (
    ChannelRequired,
    InvalidCursor,
    OutcomeUnknown,
    SessionExists,
    SessionNotFound,
    StoreError,
    StoreUnavailable,
)
from .fold import fold_case
from .keys import Keys, keys_of
from .limits import (
    BATCH_CHUNK,
    PAGE_BYTES,
    SEARCH_STEP_BYTES,
    SEARCH_STEP_BYTES_FOLDED,
    SEARCH_STEP_MESSAGES,
    SEARCH_STEP_SESSIONS,
    SEARCH_STEPS,
)
from .migrate import migrate_legacy_cards, move_cards
from .record import IngestResult, parse_time
from .sessions import SessionStore
from .types import (
    NO_FILTER,
    BatchOutcome,
    BulkOutcome,
    ListFilter,
    Message,
    MessagePage,
    RedisClient,
    RestoreOutcome,
    SearchHit,
    SearchPage,
    Session,
    SessionChange,
    SessionPage,
)

__all__ = [
    "BATCH_CHUNK",
    "NO_FILTER",
    "PAGE_BYTES",
    "SEARCH_STEPS",
    "SEARCH_STEP_BYTES",
    "SEARCH_STEP_BYTES_FOLDED",
    "SEARCH_STEP_MESSAGES",
    "SEARCH_STEP_SESSIONS",
    "BatchOutcome",
    "BulkOutcome",
    "ChannelRequired",
    "CheckReport",
    "Cursor",
    "IngestResult",
    "InvalidCursor",
    "InvariantChecker",
    "Keys",
    "ListFilter",
    "Message",
    "MessagePage",
    "OutcomeUnknown",
    "RedisClient",
    "RestoreOutcome",
    "SearchCursor",
    "SearchHit",
    "SearchPage",
    "Session",
    "SessionChange",
    "SessionExists",
    "SessionNotFound",
    "SessionPage",
    "SessionStore",
    "StoreError",
    "StoreUnavailable",
    "decode_cursor",
    "encode_cursor",
    "fold_case",
    "keys_of",
    "migrate_legacy_cards",
    "move_cards",
    "parse_time",
]
