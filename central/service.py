"""The central server process: ingest batches, ack after commit, push state down.

Batches come from `sync.receiver.Receiver` (MQTT). Each goes through
`central.ingest` — verify, store idempotently, commit — and only then is its ack
published. A village whose ledger changed gets fresh `down/state` messages for
every kiosk in it, debounced (a backlog of a hundred batches from one kiosk
makes one state push, not a hundred), and again for every device when central
connects to the broker (retained, so a kiosk that comes online later gets it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from central.ingest import ingest
from central.state import build_state
from central.store import CentralStore
from sync import protocol as p
from sync.keys import Ed25519PrivateKey
from sync.receiver import Outgoing, Receiver
from sync.transport import BrokerConfig

log = logging.getLogger(__name__)


class CentralService:
    def __init__(
        self,
        store: CentralStore,
        broker: BrokerConfig,
        key: Ed25519PrivateKey,
        *,
        debounce_s: float = 1.0,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.store = store
        self.key = key
        self.debounce_s = debounce_s
        self.now_ms = now_ms
        self._dirty: dict[str, float] = {}  # village → monotonic time of first change
        self.receiver = Receiver(
            broker,
            self.on_batch,
            self.on_status,
            tick=self.on_tick,
            on_connect=self.all_states,
        )

    def start(self) -> None:
        self.receiver.start()

    def stop(self) -> None:
        self.receiver.stop()

    def run(self) -> None:
        self.receiver.run()

    # --- handlers (the receiver's thread) -----------------------------------------------

    def on_batch(self, topic: str, payload: bytes) -> list[Outgoing]:
        result = ingest(self.store, topic, payload, self.now_ms())
        out = []
        if result.ack is not None and result.device_id is not None:
            out.append(Outgoing(p.topic(result.device_id, p.ACK), p.encode_ack(result.ack)))
        if result.stored and result.village_id is not None:
            self._dirty.setdefault(result.village_id, time.monotonic())
        return out

    def on_status(self, topic: str, payload: bytes) -> None:
        self.store.record_status(topic, payload, self.now_ms())

    def on_tick(self) -> list[Outgoing]:
        now = time.monotonic()
        due = [v for v, since in self._dirty.items() if now - since >= self.debounce_s]
        out: list[Outgoing] = []
        for village in due:
            del self._dirty[village]
            out.extend(self.village_states(village))
        return out

    def village_states(self, village_id: str) -> list[Outgoing]:
        out = []
        for device in self.store.devices(village_id):
            if device.status != "active":
                continue
            body = build_state(self.store, device.device_id, self.now_ms())
            out.append(
                Outgoing(
                    p.topic(device.device_id, p.STATE), p.encode_state(body, self.key), retain=True
                )
            )
        return out

    def all_states(self) -> list[Outgoing]:
        villages = sorted({d.village_id for d in self.store.devices() if d.status == "active"})
        out: list[Outgoing] = []
        for village in villages:
            out.extend(self.village_states(village))
        return out
