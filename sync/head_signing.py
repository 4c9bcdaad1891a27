"""Whether the uplink signs its batches' chain heads (`greenpass.heads`, `BatchBody.head_sig`).

Central says in every ack whether it takes them (`Ack.accepts`, `ACCEPT_HEADS`); until
one has, no batch carries a head, since a central from before them decodes exactly ten
elements and refuses a batch with an eleventh. Learnt as personal records are
(`sync.personal_sender`), and kept in the ledger's `meta` so a restarted kiosk does not
start over unsigned: while it is set, every batch carries the head of its last entry.
"""

from __future__ import annotations

from edge.ledger.store import Store
from sync import protocol as p

_ACCEPTS = "central_accepts_heads"


class HeadSigning:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._on: bool | None = None  # read once: the uplink is its only writer

    def enabled(self) -> bool:
        if self._on is None:
            row = self.store.conn.execute(
                "SELECT value FROM meta WHERE key = ?", (_ACCEPTS,)
            ).fetchone()
            self._on = row is not None and row[0] == "1"
        return self._on

    def on_ack(self, ack: p.Ack) -> None:
        if p.ACCEPT_HEADS in ack.accepts:
            self._set(True)
        elif ack.status in ("ok", "rejected"):
            # A central that does not take them (an older one, or one rolled back): an
            # `ok` says it without a doubt, a refusal may be of a batch that carried a
            # head. Sign none, so that it does not refuse the next batches.
            self._set(False)

    def _set(self, on: bool) -> None:
        if self.enabled() != on:
            with self.store.write() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    (_ACCEPTS, "1" if on else "0"),
                )
            self._on = on
