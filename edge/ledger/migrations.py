"""Numbered schema migrations of the kiosk ledger, applied in order, recorded in
`schema_migrations`. Never edit a released migration: add the next number.

Tables:
- `meta`: this ledger's identity (device id, village) and the active rules version.
- `chain_head`: the last seq and hash, kept by a trigger on `entries`.
- `entries`: the append-only, hash-chained ledger (triggers refuse UPDATE and DELETE).
- `villagers`, `staff`, `catalogue`: current state. Villagers and stock are kept
  in step with entries in the same transaction; balances and stock are always
  derived from entries, never stored.
- `rules`: every rules file ever installed, by version, so any entry's pricing
  can be audited.
- `snapshot`, `snapshot_balances`: central's balances as of `included_seq` of
  this device (docs/design.md §3).

Migration 2 (sync):
- `outbox`: the highest seq central has acknowledged. Unsynced entries are simply
  `seq > acked_seq`, so sending needs no per-entry state and nothing is ever
  evicted or expired.
- `issuer_keys`: public keys trusted to sign passbook cards, pushed by central.
- `central_state`: the version of the last state central pushed, so an older,
  re-delivered state is ignored.

Migration 3 (item pictures):
- `catalogue.picture`: the item's JPEG thumbnail from central's catalogue (NULL: none;
  the staff screen then shows the coloured initial tile).

Migration 4 (replaced cards):
- `passbook_links`: a lost card replaced at this kiosk, old passbook → new one, and the
  seq of the new one's `enrol` entry (whose `data.replaces` names the old). Kept in
  step with those entries, like `villagers`; the balance of the new passbook counts
  the old one's until central's snapshot does (`queries.balance`).

Migration 6 (log check, `sync.log_check`, `edge.ledger.log_record`):
- `log_check`: the last checkpoint of central's transparency log this kiosk accepted
  (as central signed it; its origin is pinned from the first), how far its own
  entries are proven in it (`checked_seq`), and since when central has owed proofs
  of entries it acknowledged (`owed_ms`). No row: no checkpoint accepted yet.
- `log_faults`: every failed check, the current one with `cleared_ms` NULL (at most
  one), with the checkpoint that failed as evidence. Reset by a technician
  (`greenpass sync log --reset`), never deleted.

Migration 7 (cross-kiosk reversals, docs/ledger.md):
- `entries.ref_device`: the device whose entry `ref_seq` is, set only on a reversal of
  another kiosk's entry (reserved at central first); NULL on every other entry, whose
  canonical bytes therefore stay as they were.
- `entries_reversed_once` now covers (ref_device, ref_seq): one reversal per target,
  this kiosk's own (NULL, seq) and another's (device, seq) alike.

Migration 8: `reversed_elsewhere`, this kiosk's entries another kiosk holds central's
reservation to reverse (seq → that kiosk), from central's state. Only ever added to:
a reservation always ends in that kiosk's reversal. This kiosk then refuses to
reverse them itself.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "ledger",
        """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE entries (
    seq           INTEGER PRIMARY KEY,
    entry_id      TEXT NOT NULL UNIQUE,
    device_id     TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('enrol', 'deposit', 'redeem', 'award',
                      'reversal', 'restock', 'adjust_stock', 'villager_status')),
    passbook_id   TEXT,
    category      TEXT,
    grams         INTEGER,
    points        INTEGER NOT NULL DEFAULT 0,
    co2e_g        INTEGER NOT NULL DEFAULT 0,
    item_id       TEXT,
    qty           INTEGER,
    ref_seq       INTEGER,
    staff_id      TEXT,
    reason        TEXT,
    rules_version TEXT,
    wall_ms       INTEGER NOT NULL,
    clock_ok      INTEGER NOT NULL CHECK (clock_ok IN (0, 1)),
    boot_id       TEXT NOT NULL,
    mono_ms       INTEGER NOT NULL,
    flags         TEXT NOT NULL DEFAULT '',
    data          TEXT NOT NULL DEFAULT '{}',
    h             BLOB NOT NULL CHECK (length(h) = 32)
) STRICT;

CREATE INDEX entries_passbook ON entries (passbook_id, seq) WHERE passbook_id IS NOT NULL;
CREATE INDEX entries_item ON entries (item_id) WHERE item_id IS NOT NULL;
CREATE UNIQUE INDEX entries_reversed_once ON entries (ref_seq) WHERE kind = 'reversal';

CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only: post a reversal instead');
END;

CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only: post a reversal instead');
END;

-- The chain head, kept by the database itself: verify compares it with the entries
-- to find a truncated tail or rows appended behind the ledger's back.
CREATE TABLE chain_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    h   BLOB NOT NULL
) STRICT;

INSERT INTO chain_head VALUES (1, 0, zeroblob(32));

CREATE TRIGGER entries_head AFTER INSERT ON entries
BEGIN
    UPDATE chain_head SET seq = NEW.seq, h = NEW.h WHERE id = 1;
END;

CREATE TABLE villagers (
    passbook_id    TEXT PRIMARY KEY,
    household_name TEXT NOT NULL,
    village        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'revoked')),
    enrolled_seq   INTEGER,
    updated_ms     INTEGER NOT NULL
) STRICT;

CREATE TABLE staff (
    staff_id        TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('staff', 'admin', 'technician')),
    pin_hash        TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until_ms INTEGER NOT NULL DEFAULT 0,
    active          INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
) STRICT;

CREATE TABLE catalogue (
    item_id      TEXT PRIMARY KEY,
    name_zh      TEXT NOT NULL,
    name_en      TEXT NOT NULL,
    points_price INTEGER NOT NULL CHECK (points_price > 0),
    active       INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
) STRICT;

CREATE TABLE rules (
    version      TEXT PRIMARY KEY,
    text         TEXT NOT NULL,
    installed_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE snapshot (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    version      INTEGER NOT NULL,
    included_seq INTEGER NOT NULL CHECK (included_seq >= 0),
    received_ms  INTEGER NOT NULL
) STRICT;

CREATE TABLE snapshot_balances (
    passbook_id TEXT PRIMARY KEY,
    points      INTEGER NOT NULL
) STRICT;
""",
    ),
    (
        2,
        "sync",
        """
CREATE TABLE outbox (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    acked_seq INTEGER NOT NULL CHECK (acked_seq >= 0),
    acked_ms  INTEGER NOT NULL
) STRICT;

INSERT INTO outbox VALUES (1, 0, 0);

CREATE TABLE issuer_keys (
    key_id     TEXT PRIMARY KEY,
    public_key BLOB NOT NULL CHECK (length(public_key) = 32)
) STRICT;

CREATE TABLE central_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    version     INTEGER NOT NULL,
    received_ms INTEGER NOT NULL
) STRICT;
""",
    ),
    (
        3,
        "item pictures",
        """
ALTER TABLE catalogue ADD COLUMN picture BLOB;
""",
    ),
    (
        4,
        "replaced cards",
        """
CREATE TABLE passbook_links (
    old_passbook_id TEXT PRIMARY KEY,
    new_passbook_id TEXT NOT NULL UNIQUE,
    enrol_seq       INTEGER NOT NULL
) STRICT;
""",
    ),
    (
        5,
        "personal data",
        """
ALTER TABLE villagers ADD COLUMN salt BLOB;
""",
    ),
    (
        6,
        "log check",
        """
CREATE TABLE log_check (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    origin      TEXT NOT NULL,
    size        INTEGER NOT NULL CHECK (size > 0),
    root        BLOB NOT NULL CHECK (length(root) = 32),
    note        TEXT NOT NULL,
    checked_seq INTEGER NOT NULL CHECK (checked_seq >= 0),
    accepted_ms INTEGER NOT NULL,
    owed_ms     INTEGER
) STRICT;

CREATE TABLE log_faults (
    id         INTEGER PRIMARY KEY,
    code       TEXT NOT NULL,
    message    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    since_ms   INTEGER NOT NULL,
    evidence   TEXT NOT NULL DEFAULT '',
    cleared_ms INTEGER
) STRICT;

CREATE UNIQUE INDEX log_faults_one_current ON log_faults ((cleared_ms IS NULL))
    WHERE cleared_ms IS NULL;
""",
    ),
    (
        7,
        "cross-kiosk reversals",
        """
ALTER TABLE entries ADD COLUMN ref_device TEXT;

DROP INDEX entries_reversed_once;
CREATE UNIQUE INDEX entries_reversed_once ON entries (ifnull(ref_device, ''), ref_seq)
    WHERE kind = 'reversal';
""",
    ),
    (
        8,
        "entries reversed at another kiosk",
        """
CREATE TABLE reversed_elsewhere (
    seq       INTEGER PRIMARY KEY,
    by_device TEXT NOT NULL
) STRICT;
""",
    ),
]
