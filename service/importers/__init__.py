"""Readers that turn data from elsewhere into neutral records an import writes.

Each reader yields :class:`SessionRecord`\\ s, one session at a time with its messages in
order, and keeps a list of problems: one line per odd input it skipped (or changed),
naming the file and what was done, so that a run never stops on bad data.
"""

from .records import MessageRecord, SessionRecord

__all__ = ["MessageRecord", "SessionRecord"]
