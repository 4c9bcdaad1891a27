"""The uplink's side of households' personal records (`greenpass.record.personal`): which records
go with a batch, when central takes them at all, and how far its acks confirm them.

Central says in every ack whether it takes personal records (`Ack.accepts`); until one
has, none is sent, since a central from before them refuses a batch that carries any.
A batch carries the records of enrolments in it or before it, never after: central
checks each against the commitment of an enrolment it already holds. Progress is
`PersonalOutbox.synced_seq`, moved by the `ok` acks of the batches that carried them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edge.ledger.personal_outbox import PersonalOutbox
from edge.ledger.store import Store
from sync import protocol as p
from sync.keys import Ed25519PrivateKey

Rows = Sequence[tuple[tuple[Any, ...], bytes]]


class PersonalSender:
    def __init__(self, store: Store, device_id: str, key: Ed25519PrivateKey) -> None:
        self.outbox = PersonalOutbox(store)
        self.device_id, self.key = device_id, key
        # A sent batch's last seq → the enrolment seq its personal records went up to.
        self._covers: dict[int, int] = {}
        # (acked_seq, synced_seq) when nothing was due: asked on every idle poll, and
        # only an ack, a confirmation or an erasure changes the answer.
        self._none_due: tuple[int, int] | None = None

    def encode(
        self,
        rows: Rows,
        n: int,
        payload: bytes,
        prev_h: bytes,
        now_ms: int,
        *,
        sign_head: bool = False,
    ) -> tuple[bytes, int]:
        """The batch of `rows[:n]` (already encoded as `payload`, with the signed head
        if `sign_head`) with the personal records it should carry; (payload, entries
        taken). Every re-encoding keeps `sign_head`, so no batch loses its head."""
        if not self.outbox.central_accepts():
            return payload, n
        last: int = rows[n - 1][0][1]
        records = self.outbox.pending(last, p.MAX_PERSONAL)
        # How far an `ok` for this batch confirms them: to its end, unless there were
        # more than a batch takes (then to the last one sent).
        covered = last if len(records) < p.MAX_PERSONAL else records[-1].seq
        while records:
            wire = [p.WirePersonal(r.passbook_id, r.fields, r.salt) for r in records]
            payload, n = p.encode_rows(
                self.device_id, rows[:n], prev_h, self.key, now_ms,
                personal=wire, sign_head=sign_head,
            )  # fmt: skip
            if rows[n - 1][0][1] == last:
                break
            # The records took an entry's room: only those of enrolments still in.
            last = rows[n - 1][0][1]
            covered = min(covered, last)
            records = [r for r in records if r.seq <= last]
            if not records:
                payload, n = p.encode_rows(
                    self.device_id, rows[:n], prev_h, self.key, now_ms, sign_head=sign_head
                )
        self._covers[last] = covered
        return payload, n

    def due(self, acked_seq: int) -> bool:
        """Records of enrolments central already holds, not yet confirmed."""
        if not self.outbox.central_accepts():
            return False
        key = (acked_seq, self.outbox.synced_seq())
        if key == self._none_due:
            return False
        if self.outbox.pending(acked_seq, 1):
            return True
        self._none_due = key
        return False

    def on_ack(self, ack: p.Ack) -> None:
        if p.ACCEPT_PERSONAL in ack.accepts:
            self.outbox.set_central_accepts(True)
        elif ack.status == "ok" or (ack.status == "rejected" and self._covers):
            # A central that does not take them (an older one, or one rolled back):
            # send none, so that it does not refuse the batches that carried them.
            self.outbox.set_central_accepts(False)
            self._covers.clear()
        if ack.status == "ok":
            done = [k for k in self._covers if k <= ack.acked_seq]
            if done:
                self.outbox.mark_synced(max(self._covers.pop(k) for k in done))
