"""The village state central pushes to one kiosk (`gp/v1/dev/<D>/down/state`, retained).

A kiosk's balance is this snapshot plus its own entries after `included_seq`
(docs/design.md §3), so the snapshot must hold exactly this device's entries up to
`included_seq`: both are read in one snapshot (SQLite's WAL read transaction;
REPEATABLE READ on PostgreSQL). Ingest moves `acked_seq` and inserts the entries in
one transaction, so any snapshot sees both or neither.

`version` comes from a per-village counter bumped in its own short write, so two
central workers never publish one version with different content, and a kiosk
(which ignores a state not newer than its last) always takes the next one. The
counter is taken before the snapshot is read: of two states built at once, the
higher version may hold the slightly older snapshot. Both are correct for the kiosk
(each is consistent with its own `included_seq`); the next push brings it up to date.

A kiosk that names `FEATURE_LOG_PROOFS` also gets, read in the same snapshot, central's
newest log checkpoint and the proofs to check it by (`central.log_proofs`).
"""

from __future__ import annotations

import msgspec
from sqlalchemy import Connection, func, select, update

from central import db, log_proofs, passbooks, personal_db, reservations, tlog_proofs
from central.node_cache import NodeCache
from central.store import CentralStore, Device, device_from_row
from greenpass.errors import CentralError, ProtocolError
from sync import protocol
from sync.protocol import StateBody, StateLog, Status, WireItem, WireVillager


def status_of(device: Device) -> Status | None:
    """The kiosk's last status, or None (none yet, or one this version cannot read)."""
    if not device.status_json:
        return None
    try:
        return protocol.decode_status(device.status_json.encode())
    except ProtocolError:
        return None


def next_state_version(store: CentralStore, village_id: str) -> int:
    """Take the next value of the village's state counter (committed at once)."""
    v = db.villages
    with store.write("taking a state version") as conn:
        conn.execute(
            update(v)
            .where(v.c.village_id == village_id)
            .values(state_version=v.c.state_version + 1)
        )
        version = conn.scalar(select(v.c.state_version).where(v.c.village_id == village_id))
    if version is None:
        raise CentralError(f"no village {village_id!r}")
    return int(version)


def build_state(store: CentralStore, device_id: str, now_ms: int) -> StateBody:
    """The state for `device_id`: its village's balances, villagers, catalogue, rules,
    issuer keys and revoked passbooks, consistent with the device's `acked_seq`."""
    dev = store.device(device_id)
    if dev is None:
        raise CentralError(f"no device {device_id!r}")
    if dev.status != "active":
        raise CentralError(f"device {device_id!r} is revoked: it gets no state")
    (state,) = build_village_states(store, dev.village_id, now_ms, only=device_id)
    return state


def build_village_states(
    store: CentralStore,
    village: str,
    now_ms: int,
    *,
    only: str | None = None,
    seen: list[int] | None = None,
) -> list[StateBody]:
    """The states of every active kiosk of `village` (or just `only`), from ONE read of
    the village: a push after a change costs one balance query per village, not one per
    kiosk — a village with fifty kiosks would otherwise read its ledger fifty times.
    `seen`, if given, gets the village's `changed_ms` as that read saw it."""
    version = next_state_version(store, village)
    e, vl, cat, d = db.entries, db.villagers, db.catalogue, db.devices
    with store.read("reading a village state", snapshot=True) as conn:
        if seen is not None:
            v = db.villages
            seen.append(
                int(conn.scalar(select(v.c.changed_ms).where(v.c.village_id == village)) or 0)
            )
        q = select(d).where((d.c.village_id == village) & (d.c.status == "active"))
        if only is not None:
            q = q.where(d.c.device_id == only)
        devices = [device_from_row(r) for r in conn.execute(q.order_by(d.c.device_id))]
        if not devices:
            return []
        balances = {
            pid: int(total)
            for pid, total in conn.execute(
                select(e.c.passbook_id, func.sum(e.c.points))
                .where((e.c.village_id == village) & e.c.passbook_id.is_not(None))
                .group_by(e.c.passbook_id)
            )
        }
        villagers = [
            WireVillager(r.passbook_id, r.household_name, r.village_id, r.status)
            for r in conn.execute(
                select(vl).where(vl.c.village_id == village).order_by(vl.c.passbook_id)
            )
        ]
        # A replaced card's points belong to the household's newest passbook.
        balances = passbooks.fold_balances(balances, passbooks.links(conn, village))
        # Central's revocations hold whatever a kiosk's villager_status entries said.
        central_revoked = passbooks.revoked_at_central(conn, village)
        villagers = [
            WireVillager(v.passbook_id, v.household_name, v.village, "revoked")
            if v.passbook_id in central_revoked
            else v
            for v in villagers
        ]
        pic = db.item_pictures
        rows = list(
            conn.execute(
                select(cat, pic.c.jpeg.label("picture"))
                .select_from(
                    cat.outerjoin(
                        pic,
                        (pic.c.village_id == cat.c.village_id) & (pic.c.item_id == cat.c.item_id),
                    )
                )
                .where(cat.c.village_id == village)
                .order_by(cat.c.item_id)
            )
        )
        plain = [
            WireItem(r.item_id, r.name_zh, r.name_en, int(r.points_price), bool(r.active))
            for r in rows
        ]
        # Pictures go only to kiosks that say they take them: one older than WireItem's
        # sixth field would refuse the whole state if an item carried one.
        pictured = [
            msgspec.structs.replace(item, picture=None if r.picture is None else bytes(r.picture))
            for item, r in zip(plain, rows, strict=True)
        ]
        rules_text = conn.scalar(
            select(db.village_rules.c.text).where(db.village_rules.c.village_id == village)
        )
        keys = {
            r.key_id: bytes(r.public_key)
            for r in conn.execute(
                select(db.issuer_keys).where(db.issuer_keys.c.village_id == village)
            )
        }
        # What each kiosk's last status says it takes beyond version 1's fields.
        statuses = {d.device_id: status_of(d) for d in devices}
        takes = {k: frozenset(st.features if st else ()) for k, st in statuses.items()}
        logs = _logs(conn, statuses, store.log_nodes)
        pe = personal_db.personal
        erased = sorted(
            conn.scalars(
                select(pe.c.passbook_id).where(
                    (pe.c.village_id == village) & pe.c.erased_ms.is_not(None)
                )
            )
        )
        # Each kiosk's entries another kiosk reserved to reverse: that kiosk then refuses
        # to reverse them itself (a reservation always ends in that reversal).
        rr = reservations.reversal_reservations
        elsewhere: dict[str, dict[int, str]] = {}
        for target, seq, by in conn.execute(
            select(rr.c.target_device, rr.c.target_seq, rr.c.device_id).where(
                rr.c.village_id == village
            )
        ):
            elsewhere.setdefault(target, {})[int(seq)] = by
    revoked = [v.passbook_id for v in villagers if v.status == "revoked"]
    return [
        StateBody(
            village=village,
            device_id=dev.device_id,
            version=version,
            included_seq=dev.acked_seq,
            issued_ms=now_ms,
            balances=balances,
            villagers=villagers,
            catalogue=(
                pictured if protocol.FEATURE_ITEM_PICTURES in takes[dev.device_id] else plain
            )
            or None,
            rules_text=rules_text,
            issuer_keys=keys,
            revoked=revoked,
            erased=erased if protocol.FEATURE_ERASURES in takes[dev.device_id] else [],
            log=logs.get(dev.device_id),
            reversed_elsewhere=elsewhere.get(dev.device_id, {})
            if protocol.FEATURE_REVERSED_ELSEWHERE in takes[dev.device_id]
            else {},
        )
        for dev in devices
    ]


def _logs(
    conn: Connection, statuses: dict[str, Status | None], shared: NodeCache
) -> dict[str, StateLog]:
    """The log proofs of each kiosk that takes them (central.log_proofs), once the log
    has a checkpoint."""
    takers = {
        device: status
        for device, status in statuses.items()
        if status is not None and protocol.FEATURE_LOG_PROOFS in status.features
    }
    newest = log_proofs.newest_checkpoint(conn) if takers else None
    if newest is None:
        return {}
    nodes = tlog_proofs.Nodes(conn, shared)
    return {
        device: log_proofs.state_log(conn, nodes, newest, device, status)
        for device, status in takers.items()
    }
