"""Open central's database, waiting while its server cannot be reached.

`greenpass central` started (by a deploy, or after a crash) while PostgreSQL is
restarting or failing over used to exit at once with "cannot prepare the central
database", and stayed down unless something restarted it. It now waits for the
server, with capped and jittered backoff, as it waits for the broker. Only an
unreachable server is waited for: a wrong password, a missing database or a SQLite
file that cannot be opened are mistakes to fix, and still stop it at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from central.store import CentralStore
from greenpass.errors import StorageError
from sync.transport import Backoff

log = logging.getLogger(__name__)

# SQLSTATEs of a server that is there but not taking connections yet (or any more).
_NOT_NOW = frozenset({"57P01", "57P02", "57P03"})  # admin/crash shutdown, cannot connect now


def unreachable(exc: BaseException) -> bool:
    """True if `exc` (or what caused it) says PostgreSQL could not be reached or is not
    taking connections now; False for every other failure, SQLite's included."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg.OperationalError):
            # No SQLSTATE: the connection itself failed (refused, reset, timed out);
            # a server that answered says why with one.
            return seen.sqlstate is None or seen.sqlstate in _NOT_NOW
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def open_when_reachable(
    url: str,
    stop: threading.Event,
    *,
    backoff: Backoff | None = None,
    opener: Callable[[str], CentralStore] = CentralStore.open,
) -> CentralStore | None:
    """The store at `url`, once its server answers; None if `stop` is set first.
    Any other failure raises its `StorageError` at once."""
    backoff = backoff or Backoff(base_s=0.5, cap_s=15)
    while True:
        try:
            return opener(url)
        except StorageError as exc:
            if not unreachable(exc):
                raise
            delay = backoff.next_delay()
            log.warning("central database not reachable (%s); trying again in %.1f s", exc, delay)
        if stop.wait(delay):
            return None
