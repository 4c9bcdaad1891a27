"""A refused batch at central: kept as a dead letter (what arrived, why), within
`central.dead_letter_limit`'s budget, and answered with an ack that tells the device
why (`central.ingest`). Nothing of the batch enters `entries`.
"""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError

from central import db
from central.db import Device, device_from_row, storage_error
from central.dead_letter_limit import limit_for
from central.store import CentralStore
from greenpass.errors import ProtocolError
from sync import protocol


def _clean(text: str, limit: int) -> str:
    # Dead letters hold whatever arrived; PostgreSQL text cannot hold NUL, and a reason
    # must stay one line for the ack and the operator's table.
    return " ".join(text.replace("\0", "\ufffd").split())[:limit]


def dead_letter(
    store: CentralStore,
    topic: str,
    payload: bytes,
    now_ms: int,
    device_id: str | None,
    dev: Device | None,
    batch: protocol.Batch | None,
    exc: ProtocolError,
    accepts: list[str],
) -> tuple[protocol.Ack | None, Device | None]:
    """Record a refused message (within `central.dead_letter_limit`'s budget) and build
    the ack that tells the device why (None when the topic names no device), with the
    device as it is now. `accepts` is what this central takes, named in every ack."""
    reason = _clean(str(exc), 500)
    keep = limit_for(store.engine).admit(device_id, payload, now_ms)
    try:
        with store.engine.begin() as conn:
            if device_id is not None:
                # Re-read: the ack carries the device's current acked_seq.
                row = conn.execute(
                    select(db.devices).where(db.devices.c.device_id == device_id)
                ).first()
                dev = None if row is None else device_from_row(row)
            if keep:
                conn.execute(
                    insert(db.dead_letters).values(
                        received_ms=now_ms,
                        topic=_clean(topic, 1000),
                        claimed_device=None if device_id is None else _clean(device_id, 200),
                        status=exc.code,
                        reason=reason,
                        payload=payload[: protocol.MAX_PAYLOAD],
                        size=len(payload),
                    )
                )
    except SQLAlchemyError as db_exc:
        raise storage_error(db_exc, "recording a dead letter") from db_exc
    if device_id is None:
        return None, None
    acked = dev.acked_seq if dev is not None else 0
    ack = protocol.Ack(
        device_id=device_id,
        status=exc.code,
        acked_seq=acked,
        expected_seq=acked + 1,
        first_seq=batch.first_seq if batch else 0,
        last_seq=batch.last_seq if batch else 0,
        reason=reason,
        accepts=accepts,
    )
    return ack, dev
