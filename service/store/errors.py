"""The store's domain errors, and which Redis errors mean "cannot do this now"."""

from __future__ import annotations

import re

from redis import exceptions as redis_errors


class StoreError(Exception):
    """Base of the store's domain errors."""


class SessionNotFound(StoreError):
    pass


class SessionExists(StoreError):
    pass


class ChannelRequired(StoreError):
    """A message for an unknown session came without the channel to create it."""


class InvalidCursor(StoreError):
    pass


class StoreUnavailable(StoreError):
    """Redis cannot do the work now: unreachable, too slow, or refusing (``reason`` says
    which, in words an operator can act on; ``code`` is Redis's refusal, if it refused)."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class OutcomeUnknown(StoreUnavailable):
    """A write may or may not have run: its reply was lost and a retry could not tell.

    Every write carries an operation id that its script records, so repeating the
    request with the same ids never applies it twice."""


# Error codes Redis answers when it cannot do the work now, and how to say so.
REFUSALS = {
    "LOADING": "Redis is loading its data into memory (LOADING)",
    "OOM": "Redis is out of memory (OOM)",
    "NOAUTH": "Redis refused the service's credentials (NOAUTH)",
    "WRONGPASS": "Redis refused the service's credentials (WRONGPASS)",
    "NOPERM": "Redis refused the service's user this command (NOPERM)",
    "READONLY": "Redis is a read-only replica, failing over (READONLY)",
    "MASTERDOWN": "Redis lost its master (MASTERDOWN)",
    "CLUSTERDOWN": "the Redis Cluster is down (CLUSTERDOWN)",
    "TRYAGAIN": "the Redis Cluster is moving this data (TRYAGAIN)",
    "BUSY": "Redis is busy running a long script (BUSY)",
    "MISCONF": "Redis cannot persist its data (MISCONF)",
    "NOREPLICAS": "Redis has too few replicas to accept writes (NOREPLICAS)",
    "EXECABORT": "Redis refused a transaction (EXECABORT)",
}

# Redis 6.2 reports an error raised inside a script as "ERR Error running script ...
# -CODE ...", 7.0 and later as "CODE ... script: ...".
_SCRIPT_ERROR_CODE = re.compile(r"-([A-Z]+) ")

# redis-py's own parser strips the code from these and raises a class instead.
_REFUSAL_CLASSES: tuple[tuple[type[Exception], str], ...] = (
    (redis_errors.BusyLoadingError, "LOADING"),
    (redis_errors.AuthenticationError, "NOAUTH"),
    (redis_errors.AuthenticationWrongNumberOfArgsError, "NOAUTH"),
    (redis_errors.NoPermissionError, "NOPERM"),
    (redis_errors.ReadOnlyError, "READONLY"),
    (redis_errors.OutOfMemoryError, "OOM"),
    (redis_errors.ExecAbortError, "EXECABORT"),
    (redis_errors.MasterDownError, "MASTERDOWN"),
    (redis_errors.ClusterDownError, "CLUSTERDOWN"),
    (redis_errors.TryAgainError, "TRYAGAIN"),
)


def refusal_code(error: Exception) -> str | None:
    """The code of REFUSALS that ``error`` stands for, when it means "cannot now"."""
    message = str(error)
    code = message.split(" ", 1)[0]
    if code == "ERR" and "Error running script" in message:
        found = _SCRIPT_ERROR_CODE.search(message)
        code = found.group(1) if found else code
    if code in REFUSALS:
        return code
    if "Protocol error: unauthenticated" in message:
        # Redis 7 closes a connection that sends a long command before authenticating.
        return "NOAUTH"
    for kind, kind_code in _REFUSAL_CLASSES:
        if isinstance(error, kind):
            return kind_code
    return None


def refused(error: Exception) -> StoreUnavailable | None:
    """``error`` as the StoreUnavailable it means, when Redis refused for now."""
    code = refusal_code(error)
    return None if code is None else StoreUnavailable(REFUSALS[code], code)
