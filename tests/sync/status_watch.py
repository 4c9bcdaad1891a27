"""Central's side of the wire, by hand: forge acks onto a kiosk's `down/ack` topic and
read the statuses it publishes, through a paho client logged in as central."""

from __future__ import annotations

import time
from collections.abc import Callable

from devkit.mqtt_broker import Broker
from sync import protocol as p


class StatusWatch:
    def __init__(self, broker: Broker, device_id: str) -> None:
        self.device_id = device_id
        self.client = broker.client("central", "central-pw")
        # The filter central is allowed (the broker compares it as written), not D's own.
        codes = self.client.subscribe_wait(p.topic("+", p.STATUS))
        assert not codes[0].is_failure, f"the broker refused the subscription: {codes}"
        self.seen: list[p.Status] = []

    def forge(self, payload: bytes) -> None:
        """Publish `payload` on the kiosk's ack topic, as central publishes its acks."""
        code = self.client.publish_wait(p.topic(self.device_id, p.ACK), payload)
        assert not code.is_failure, f"the broker refused the ack: {code}"

    def wait(self, what: str, cond: Callable[[p.Status], bool], timeout: float = 20.0) -> p.Status:
        """The first status published (or retained) from now on that satisfies `cond`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.client.next_message(timeout=left)
            except AssertionError:
                break
            if msg.topic != p.topic(self.device_id, p.STATUS):
                continue
            status = p.decode_status(bytes(msg.payload))
            self.seen.append(status)
            if cond(status):
                return status
        raise AssertionError(f"timed out waiting for {what}; statuses seen: {self.seen[-5:]}")


def fault_is(code: str | None) -> Callable[[p.Status], bool]:
    if code is None:
        return lambda s: s.sync_fault is None
    return lambda s: s.sync_fault is not None and s.sync_fault.code == code


def forged_ack(device_id: str, status: str, acked_seq: int, **fields: int | str) -> bytes:
    """An ack encoded exactly as central encodes its own."""
    fields.setdefault("expected_seq", acked_seq + 1)
    return p.encode_ack(
        p.Ack(device_id=device_id, status=status, acked_seq=acked_seq, **fields)  # type: ignore[arg-type]
    )
