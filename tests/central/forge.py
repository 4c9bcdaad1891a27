"""What a stolen or modified kiosk sends: entries its rules would never write, correctly
chained and signed with its own enrolled key (docs/design.md §6, issue 11).

`forged_batch` builds them in memory after the kiosk's real head, so anything can be
forged, even what the kiosk's own database would refuse to hold (a second reversal of
one entry); `write_forged` puts one in the kiosk's ledger file through the ledger's own
appender, skipping every rule, for tests that sync through the real uplink.
"""

from __future__ import annotations

from typing import Any

import msgspec

from central import reports
from central.ingest import IngestResult, ingest
from central.state import build_state
from central.store import CentralStore
from edge.ledger.appender import Appender
from greenpass.record.entries import Entry, Kind, chain_hash
from greenpass.record.ids import uuid7
from sync import protocol
from sync.batch import BatchBody
from sync.envelope import inflate, pack
from tests.central.conftest import NOW, Kiosk


def sync(store: CentralStore, k: Kiosk) -> None:
    """Send everything the kiosk has not had acked, as its uplink would, and mark it."""
    result = ingest(store, k.topic, k.batch(k.ledger.outbox.acked_seq() + 1), NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    k.ledger.outbox.mark_acked(result.ack.acked_seq, NOW)


def forged_entries(k: Kiosk, *forged: dict[str, Any]) -> list[tuple[Entry, bytes]]:
    """`forged` (Entry fields; `kind` a Kind) as entries after the kiosk's head, chained."""
    seq, h_hex = k.ledger.head()
    h = bytes.fromhex(h_hex)
    out = []
    for fields in forged:
        seq += 1
        k.clock.advance(30_000)
        wall = k.clock.wall_ms()
        entry = Entry(
            device_id=k.device_id,
            seq=seq,
            entry_id=str(uuid7(wall)),
            wall_ms=wall,
            clock_ok=True,
            boot_id=k.clock.boot_id,
            mono_ms=k.clock.mono_ms(),
            **fields,
        )
        h = chain_hash(h, entry)
        out.append((entry, h))
    return out


def forged_batch(k: Kiosk, *forged: dict[str, Any]) -> bytes:
    """The kiosk's unacked entries, then `forged`, in one batch signed with its key."""
    first = k.ledger.outbox.acked_seq() + 1
    rows = [*k.rows(first), *forged_entries(k, *forged)]
    prev = k.ledger.outbox.hash_at(first - 1)
    assert prev is not None
    payload, n = protocol.encode_batch(k.device_id, rows, prev, k.key, NOW, max_bytes=1 << 30)
    assert n == len(rows)
    # Chained and signed as the kiosk's uplink would: only the meaning is wrong.
    env = protocol.open_envelope(payload, "batch")
    protocol.check_signature(env, k.key.public_key())
    assert protocol.decode_batch(env).last_seq == rows[-1][0].seq
    return payload


def with_kind_code(k: Kiosk, payload: bytes, n: int, code: int) -> bytes:
    """`payload` with entry `n`'s kind set to the wire code `code`, signed again."""
    env = protocol.open_envelope(payload, "batch")
    body = msgspec.msgpack.decode(inflate(env), type=BatchBody)
    body.entries[n].kind = code
    return protocol.seal("batch", k.device_id, pack.encode(body), k.key)


def write_forged(k: Any, kind: Kind, **fields: Any) -> Entry:
    """Write an entry into a kiosk's ledger file with the ledger's own appender and
    none of its rules: a kiosk whose software was modified."""
    appender = Appender(k.ledger.device_id, k.clock)
    with k.ledger.store.write() as conn:
        return appender.append(conn, kind, appender.now(), **fields)


def village_view(store: CentralStore, device_id: str = "K1") -> tuple[Any, ...]:
    """What a refused batch must leave unchanged: the village totals, every balance,
    the entries stored and the device's acked seq."""
    dev = store.device(device_id)
    assert dev is not None
    balances = build_state(store, device_id, NOW).balances
    return reports.village_totals(store, "V1"), balances, store.count_entries(), dev.acked_seq


def assert_rejected(store: CentralStore, result: IngestResult, reason: str) -> None:
    """Refused as `rejected`, and dead-lettered with the same reason."""
    assert result.ack is not None
    assert (result.ack.status, result.stored) == ("rejected", 0), result.ack
    assert reason in result.ack.reason, result.ack.reason
    letters = reports.dead_letters(store, 1)
    assert letters and letters[0].status == "rejected"
    assert letters[0].reason == result.ack.reason
