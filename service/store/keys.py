"""Key names: every key of a namespace carries its hash tag ``{ns}``, so that each
script runs on one Redis Cluster slot and namespaces spread over the shards.

``cs:{ns}:card:<id>``           string, the session's card (see :mod:`.record`)
``cs:{ns}:index``               sorted set, session id scored by updated_at (epoch ms)
``cs:{ns}:channel:<channel>``   sorted set, the same for one channel
``cs:{ns}:messages:<id>``       list of stored messages, in the order they arrived
``cs:{ns}:seen:<id>``           hash, message id -> its position in the list
``cs:{ns}:meta:<id>``           string, the session's metadata as JSON (only when set)
``cs:{ns}:op:<operation id>``   a write's record, kept seconds to answer its retry
``cs:readiness-probe``          written by /readyz, outside every namespace"""

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
        self.card_prefix = self.prefix + "card:"
        # SORT's GET pattern: the first '*' takes the member, and a namespace has none.
        self.card_pattern = self.card_prefix + "*"
        self.messages_prefix = self.prefix + "messages:"
        self.seen_prefix = self.prefix + "seen:"
        self.meta_prefix = self.prefix + "meta:"
        self.operation_prefix = self.prefix + "op:"

    def card(self, session_id: str) -> str:
        return self.card_prefix + session_id

    def channel(self, channel: str) -> str:
        return self.channel_prefix + channel

    def messages(self, session_id: str) -> str:
        return self.messages_prefix + session_id

    def seen(self, session_id: str) -> str:
        return self.seen_prefix + session_id

    def meta(self, session_id: str) -> str:
        return self.meta_prefix + session_id

    def operation(self, operation_id: str) -> str:
        return self.operation_prefix + operation_id

    def ingest_prefixes(self) -> list[str]:
        """INGEST's key prefixes, in its order."""
        return [
            self.card_prefix,
            self.messages_prefix,
            self.seen_prefix,
            self.meta_prefix,
            self.channel_prefix,
            self.operation_prefix,
        ]


@functools.lru_cache(maxsize=1024)
def keys_of(namespace: str) -> Keys:
    """The namespace's Keys, made once: a request would otherwise build its names anew."""
    return Keys(namespace)
