"""Which store errors a writer may wait out, and which no retry can cure.

Errors of the store's state, not of the batch (a connection, a failover, memory, a
permission) go through once the server or the operator has fixed them, so the worker and
``insights rebuild`` retry them; any other error (a script error, a bug) would fail the same
way forever.
"""

from __future__ import annotations

from redis import exceptions as redis_errors

__all__ = ["is_transient_store_error"]

# Errors of the store's state, not of the batch: retrying loses nothing and goes through
# once the server (or the operator) has fixed it.  BusyLoadingError, AuthenticationError
# and MaxConnectionsError are ConnectionErrors; MasterDownError is a ClusterDownError.
_TRANSIENT_STORE_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # refused, reset, DNS, auth, pool exhausted, LOADING
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,  # a replica during failover
    redis_errors.ClusterDownError,  # CLUSTERDOWN, MASTERDOWN
    redis_errors.ClusterError,  # cluster redirections exhausted
    redis_errors.TryAgainError,  # slot migration
    redis_errors.AskError,  # MOVED/ASK that escaped the cluster client
    redis_errors.SlotNotCoveredError,
    redis_errors.NoScriptError,  # script cache flushed between load and call (failover)
    redis_errors.OutOfMemoryError,  # maxmemory: stalls until memory is freed
    redis_errors.NoPermissionError,  # ACL: stalls until the operator grants it
    redis_errors.InvalidResponse,  # protocol desync: the connection is dropped
    ConnectionError,  # the builtins, from the event loop's sockets
    TimeoutError,
)
# Server replies redis-py raises as a plain ResponseError: busy with a long script,
# refusing writes after a failed RDB save, or missing replicas for min-replicas-to-write.
_TRANSIENT_REPLY_CODES = frozenset({"BUSY", "MISCONF", "NOREPLICAS"})
_PIPELINE_PREFIX = "of pipeline caused error: "


def is_transient_store_error(exc: BaseException) -> bool:
    """Whether retrying the same write can succeed (see the module docstring)."""
    if isinstance(exc, _TRANSIENT_STORE_ERRORS):
        return True
    if isinstance(exc, redis_errors.ResponseError) and exc.args:
        reply = str(exc.args[0])
        # A pipeline prefixes the server's reply with the failed command.
        _, found, rest = reply.partition(_PIPELINE_PREFIX)
        if found:
            reply = rest.lstrip("('\"")
        return reply.split(" ", 1)[0] in _TRANSIENT_REPLY_CODES
    return False
