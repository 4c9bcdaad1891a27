"""Reversals of another kiosk's entry, reserved at central first (docs/design.md §3, §6).

Kiosk B asks on its `up/reverse` topic (`sync.reserve_wire`) to reverse entry (A, N).
`reserve` checks it in one write transaction: A's entry is stored, in B's village, of
a kind one kiosk may reverse of another's (`OTHER_REVERSIBLE`), not reversed by any
kiosk and not reserved by another; then it records the reservation for B (the primary
key on the target makes it one per entry, whoever asks at once) and answers with the
fields B's reversal must negate. B's repeated request gets the same answer. A learns
of the reservation in its next state (`StateBody.reversed_elsewhere`) and from then
on refuses to reverse the entry itself.

When B's batch brings the reversal (`ref_device` = A, `ref_seq` = N),
`central.recheck_state` holds it to this reservation. A kiosk reverses a target at
most once, and only one other kiosk ever holds its reservation: `entries` is unique on
(coalesce(ref_device, device_id), ref_seq, device_id) for reversals (migration 11), so
two workers storing the same kiosk's two reversals of one entry cannot both commit.

The race this leaves is real and is not refused: kiosk A reverses its own entry
offline while B holds central's reservation of it (or has already reversed it). A
cannot leave its reversal out of its chain, so refusing it would stall A's sync for
good. Central stores both, and both count, like two kiosks spending the same points
offline; `central.reports.double_reversals` lists the target for the village office,
which gives the points back with an award. Counting both under-states the village's
CO2e by that deposit, never over-states it, and the evidence pack's verifier recounts
the same way.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    ForeignKey,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from central import db
from greenpass.errors import ProtocolError
from greenpass.record.entries import Kind
from greenpass.record.targets import OTHER_REVERSIBLE
from sync import reserve_wire as rw

_ID = 64
_e = db.entries

reversal_reservations = Table(
    "reversal_reservations",
    db.metadata,
    Column("target_device", String(_ID), nullable=False),
    Column("target_seq", BigInteger, nullable=False),
    Column("village_id", String(_ID), ForeignKey("villages.village_id"), nullable=False),
    Column("device_id", String(_ID), ForeignKey("devices.device_id"), nullable=False),
    Column("staff_id", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("reserved_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("target_device", "target_seq", name="reversal_reservations_pk"),
)

_TARGET = ("device_id", "seq", "kind", "passbook_id", "category", "grams", "points", "co2e_g",
           "item_id", "qty", "rules_version", "wall_ms")  # fmt: skip
_OTHER_REVERSIBLE = frozenset(k.value for k in OTHER_REVERSIBLE)
_REVERSAL = Kind.REVERSAL.value


def migrate_v11(conn: Connection) -> None:
    """`entries.ref_device`, one reversal per target across kiosks, the reservations."""
    conn.execute(text("ALTER TABLE entries ADD COLUMN ref_device VARCHAR(64)"))
    conn.execute(
        text(
            "CREATE UNIQUE INDEX entries_reversed_once_per_kiosk ON entries "
            "((coalesce(ref_device, device_id)), ref_seq, device_id) WHERE kind = 'reversal'"
        )
    )
    reversal_reservations.create(conn, checkfirst=False)


# --- the request ------------------------------------------------------------------------


def reserve(engine: Engine, device_id: str, payload: bytes, now_ms: int) -> rw.ReserveReply:
    """Central's answer to `payload`, a request on device `device_id`'s `up/reverse`."""
    try:
        req = rw.decode_request(payload)
    except ProtocolError as exc:
        return _refused(device_id, "", "bad_request", str(exc))
    if req.device_id != device_id:
        return _refused(device_id, req.request_id, "bad_request", "the request names another kiosk")
    for attempt in (1, 2):
        try:
            with engine.begin() as conn:
                return _reserve(conn, req, now_ms)
        except IntegrityError:
            if attempt == 2:
                raise
            # Another worker reserved the same entry at the same moment: read it again.
    raise AssertionError("unreachable")


def _refused(
    device_id: str, request_id: str, code: str, reason: str, by: str = ""
) -> rw.ReserveReply:
    return rw.ReserveReply(
        device_id=device_id, request_id=request_id, status="refused", code=code,
        reason=reason, by_device=by,
    )  # fmt: skip


def _reserve(conn: Connection, req: rw.ReserveRequest, now_ms: int) -> rw.ReserveReply:
    me, d = req.device_id, db.devices
    village = conn.scalar(
        select(d.c.village_id).where((d.c.device_id == me) & (d.c.status == "active"))
    )
    if village is None:
        return _refused(me, req.request_id, "unknown_device", rw.REFUSALS["unknown_device"])
    where = f"{req.target_device}#{req.target_seq}"
    if req.target_device == me:
        return _refused(me, req.request_id, "own_entry", rw.REFUSALS["own_entry"])
    row = conn.execute(
        select(*(_e.c[f] for f in _TARGET), _e.c.village_id).where(
            (_e.c.device_id == req.target_device) & (_e.c.seq == req.target_seq)
        )
    ).first()
    if row is None:
        return _refused(me, req.request_id, "not_found", f"{where}: {rw.REFUSALS['not_found']}")
    if row.village_id != village:
        return _refused(
            me, req.request_id, "other_village", f"{where}: {rw.REFUSALS['other_village']}"
        )
    if row.kind not in _OTHER_REVERSIBLE:
        return _refused(
            me, req.request_id, "not_reversible",
            f"{where} is a {row.kind}: reverse it at {req.target_device}, which holds its stock",
        )  # fmt: skip
    r = reversal_reservations
    held = conn.execute(
        select(r.c.device_id).where(
            (r.c.target_device == req.target_device) & (r.c.target_seq == req.target_seq)
        )
    ).scalar()
    by = conn.execute(
        select(_e.c.device_id, _e.c.seq).where(
            (_e.c.kind == _REVERSAL)
            & (func.coalesce(_e.c.ref_device, _e.c.device_id) == req.target_device)
            & (_e.c.ref_seq == req.target_seq)
        )
    ).first()
    if held is None and by is None:
        if req.peek:  # only looking: the staff screen reserves when staff confirm
            return _reserved(me, req.request_id, row)
        conn.execute(
            insert(r).values(
                target_device=req.target_device, target_seq=req.target_seq, village_id=village,
                device_id=me, staff_id=req.staff_id, request_id=req.request_id,
                reserved_ms=now_ms,
            )
        )  # fmt: skip
        # The target's kiosk learns it in its next state (`reversed_elsewhere`), from
        # whichever worker pushes the village next.
        v = db.villages
        conn.execute(
            update(v).where(v.c.village_id == village).values(changed_ms=db.village_changed(now_ms))
        )
    elif held != me:  # reversed or reserved by another kiosk (or by A itself)
        who = by[0] if by is not None else str(held)
        return _refused(
            me, req.request_id, "already_reversed",
            f"{where} was already reversed at kiosk {who}", who,
        )  # fmt: skip
    return _reserved(me, req.request_id, row)


def _reserved(me: str, request_id: str, row: Any) -> rw.ReserveReply:
    target = rw.WireTarget(**{f: row._mapping[f] for f in _TARGET})
    return rw.ReserveReply(device_id=me, request_id=request_id, status="reserved", target=target)


# --- the reversal, when its batch arrives -----------------------------------------------


def reserved_for(
    conn: Connection, device_id: str, targets: set[tuple[str, int]]
) -> dict[tuple[str, int], tuple[str, tuple[Any, ...]]]:
    """Of `targets` (device, seq), those reserved for `device_id`, each with its stored
    target's kind and the fields `central.recheck_state` compares, in `_TARGET_FIELDS`
    order of that module (passbook … rules_version)."""
    if not targets:
        return {}
    r = reversal_reservations
    cols = ("passbook_id", "category", "grams", "points", "co2e_g", "item_id", "qty",
            "rules_version")  # fmt: skip
    q = (
        select(_e.c.device_id, _e.c.seq, _e.c.kind, *(_e.c[c] for c in cols))
        .join(r, (r.c.target_device == _e.c.device_id) & (r.c.target_seq == _e.c.seq))
        .where((r.c.device_id == device_id) & tuple_(_e.c.device_id, _e.c.seq).in_(targets))
    )
    return {(row[0], int(row[1])): (row[2], tuple(row[3:])) for row in conn.execute(q)}


def reversed_already(
    conn: Connection, targets: set[tuple[str, int]]
) -> dict[tuple[str, int], list[tuple[str, int]]]:
    """Of `targets` (device, seq), those stored reversals cancel: → their (device, seq),
    at most one per kiosk (the owner's own and one reserved by another)."""
    if not targets:
        return {}
    owner = func.coalesce(_e.c.ref_device, _e.c.device_id)
    q = select(owner, _e.c.ref_seq, _e.c.device_id, _e.c.seq).where(
        (_e.c.kind == _REVERSAL) & tuple_(owner, _e.c.ref_seq).in_(targets)
    )
    out: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for o, ref, dev, seq in conn.execute(q.order_by(_e.c.device_id, _e.c.seq)):
        out.setdefault((str(o), int(ref)), []).append((str(dev), int(seq)))
    return out
