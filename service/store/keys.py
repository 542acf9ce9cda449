"""Key names: every key of a namespace carries its hash tag ``{ns}``, so that each
script runs on one Redis Cluster slot and namespaces spread over the shards.

``cs:{ns}:session:<id>``        hash, the session's record (see :mod:`.record`)
``cs:{ns}:index``               sorted set, session id scored by updated_at (epoch ms),
                                of the sessions not archived
``cs:{ns}:channel:<channel>``   sorted set, the same for one channel
``cs:{ns}:pinned``              sorted set, the same for pinned sessions
``cs:{ns}:tag:<tag>``           sorted set, the same for one tag
``cs:{ns}:user:<user>``         sorted set, the same for one person
``cs:{ns}:archived``            sorted set, the archived sessions, scored as the index
``cs:{ns}:archived:<set>``      each set above (channel:, pinned, tag:, user:) for the
                                archived sessions: a session is in one half of each
``cs:{ns}:messages:<id>``       list of stored messages, in the order they arrived
``cs:{ns}:seen:<id>``           hash, message id -> its position in the list
``cs:{ns}:op:<operation id>``   a write's record, kept seconds to answer its retry
``cs:{ns}:channels``            set, the channels that have sessions
``cs:{ns}:tags``                set, the tags that have sessions
``cs:{ns}:readers``             set, the readers that marked a session read
``cs:{ns}:empty``               hash, channel -> sessions (not archived) without messages
``cs:{ns}:read-through:<r>``    hash, channel -> sessions (not archived) with messages
                                that reader has read to the end
``cs:{ns}:events``              stream, the change feed (scripts/events.lua)
``cs:{ns}:version``             the id of the namespace's latest event
``cs:{ns}:layout``              the layout version its sessions were last brought to
``cs:{ns}:webhook:<name>:…``    a webhook's position and lease (:mod:`.webhook_state`)
``cs:{ns}:sweep-lease``         the retention sweeper sweeping the namespace now
                                (:mod:`.sweep_lease`)
``cs:readiness-probe``          written by /readyz, outside every namespace

Releases before 0.2 kept a session as a string ``cs:{ns}:card:<id>`` and its metadata
in ``cs:{ns}:meta:<id>``: scripts move such a session to its hash when they meet it,
and ``chatsessions migrate`` moves them all (:mod:`.migrate`)."""

from __future__ import annotations

import functools

# The readiness probe's key: outside every namespace, expiring by itself.
READY_KEY = "cs:readiness-probe"


class Keys:
    """Key names of one namespace; all share the namespace's hash tag."""

    def __init__(self, namespace: str) -> None:
        self.prefix = f"cs:{{{namespace}}}:"
        self.index = self.prefix + "index"
        self.channel_prefix = self.prefix + "channel:"
        self.session_prefix = self.prefix + "session:"
        self.item_pattern = self.sort_pattern("item")
        self.card_prefix = self.prefix + "card:"
        self.messages_prefix = self.prefix + "messages:"
        self.seen_prefix = self.prefix + "seen:"
        self.meta_prefix = self.prefix + "meta:"
        self.operation_prefix = self.prefix + "op:"
        self.channels = self.prefix + "channels"
        self.tags = self.prefix + "tags"
        self.archived = self.prefix + "archived"
        self.readers = self.prefix + "readers"
        self.empty = self.prefix + "empty"
        self.events = self.prefix + "events"
        self.version = self.prefix + "version"
        self.layout = self.prefix + "layout"

    def sort_pattern(self, field: str) -> str:
        """SORT's GET pattern of a field of each session: the first '*' takes the member
        (a namespace has none), and the field is all after the "->" that follows it."""
        return self.session_prefix + "*->" + field

    def session(self, session_id: str) -> str:
        return self.session_prefix + session_id

    def card(self, session_id: str) -> str:
        """A session's key in releases before 0.2 (see :mod:`.migrate`)."""
        return self.card_prefix + session_id

    def channel(self, channel: str) -> str:
        return self.channel_prefix + channel

    def messages(self, session_id: str) -> str:
        return self.messages_prefix + session_id

    def seen(self, session_id: str) -> str:
        return self.seen_prefix + session_id

    def meta(self, session_id: str) -> str:
        """A session's metadata key in releases before 0.2."""
        return self.meta_prefix + session_id

    def operation(self, operation_id: str) -> str:
        return self.operation_prefix + operation_id

    def listing(self, archived: bool, kind: str = "", value: str = "") -> str:
        """The sorted set of sessions (archived or not) of one filter: ``kind`` is
        ``channel``, ``pinned``, ``tag`` or ``user`` ('' for all of them)."""
        if not kind:
            return self.archived if archived else self.index
        name = kind if kind == "pinned" else f"{kind}:{value}"
        return self.prefix + ("archived:" if archived else "") + name

    def read_through(self, reader: str) -> str:
        return self.prefix + "read-through:" + reader

    def ingest_prefixes(self) -> list[str]:
        """INGEST's key prefixes, in its order."""
        return [
            self.session_prefix,
            self.messages_prefix,
            self.seen_prefix,
            self.operation_prefix,
        ]


@functools.lru_cache(maxsize=1024)
def keys_of(namespace: str) -> Keys:
    """The namespace's Keys, made once: a request would otherwise build its names anew."""
    return Keys(namespace)
