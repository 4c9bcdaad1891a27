"""The project's one exception tree.

    GreenPassError                      root: `except GreenPassError` catches all of ours
    ├── ConfigError (ValueError)        a config or rules file is wrong; names the key and line
    │   ├── RulesError                  a village rules file (greenpass.record.rules)
    │   └── MethodologyError            a reduction-unit methodology (greenpass.record.methodology)
    ├── LedgerError                     the ledger cannot do what was asked
    │   ├── Refused                     a business rule said no; carries a `code` the UI shows
    │   ├── StorageError (OSError)      the database file could not be read or written
    │   └── IntegrityError              the stored chain or schema is not what it must be
    ├── HardwareError (OSError)         a device failed; hardware/ subclasses it
    └── SyncError                       sync with central failed
        ├── ProtocolError (ValueError)  a message is malformed, oversized, forged…; carries
        │                               the `code` central puts in its ack
        ├── BadAck (ValueError)         an ack the kiosk refuses; carries the sync fault
        │                               `code` the kiosk reports (ack_beyond_head, …)
        ├── TransportError (OSError)    the broker is unreachable or refused us
        └── CentralError                the central server cannot do what was asked
            └── ConflictError           changed meanwhile by someone else (HTTP 409)

Each class is also the matching built-in where one fits, so callers that only
know Python's own errors still catch ours (the gpiozero habit).
"""

from __future__ import annotations


class GreenPassError(Exception):
    """Root of every error raised on purpose by this project."""


class ConfigError(GreenPassError, ValueError):
    """A configuration file is invalid. `key` and `line` say where, when known."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        where = []
        if path:
            where.append(str(path) + (f":{line}" if line else ""))
        if key:
            where.append(f"key '{key}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.path = path
        self.key = key
        self.line = line


class RulesError(ConfigError):
    """A village rules file is invalid."""


class MethodologyError(ConfigError):
    """A methodology file (what a deposit earns in reduction units) is invalid."""


class LedgerError(GreenPassError):
    """The ledger could not carry out an operation."""


class Refused(LedgerError):
    """A business rule refused the operation; nothing was written.

    `code` is a stable machine-readable reason (e.g. ``too_light``, ``daily_cap``)
    that the kiosk UI maps to a picture and plain words; `details` carries the
    numbers those words need (e.g. ``tries_left`` for ``bad_pin``), so no screen
    has to parse the English message.
    """

    def __init__(self, code: str, message: str, **details: int | str) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class StorageError(LedgerError, OSError):
    """The ledger database could not be opened, read or written (disk full, locked, I/O)."""


class IntegrityError(LedgerError):
    """The stored ledger is damaged or was changed outside the ledger."""


class HardwareError(GreenPassError, OSError):
    """A device (scale, scanner, GPIO) failed or sent something we cannot use."""


class SyncError(GreenPassError):
    """Sync between a kiosk and central failed."""


class ProtocolError(SyncError, ValueError):
    """A sync message is malformed, oversized, unsigned, forged or from the wrong sender.

    `code` is the ack status central replies with: `bad_signature`, `bad_chain`,
    `rejected` (schema, size, sender, unknown or revoked device)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class BadAck(SyncError, ValueError):
    """An ack from central that the kiosk refuses to act on: unreadable, for another
    device, or impossible for this ledger (`sync.acks`). Nothing is marked synced.

    `code` is the sync fault the kiosk reports in its status, on its page and in
    `doctor` (docs/sync.md lists them); the message says it for a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TransportError(SyncError, OSError):
    """The MQTT broker could not be reached, or refused the connection."""


class CentralError(SyncError):
    """The central server refused or could not do what was asked (enrolment, tokens)."""


class ConflictError(CentralError):
    """A change was made against an older version than the one stored: someone else
    changed it meanwhile (two operators editing one catalogue). Nothing was changed."""
