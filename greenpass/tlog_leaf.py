"""The transparency log's leaf for one ledger entry (docs/trust.md), in one place for
both ends: central appends it (`central.tlog`), and a kiosk computes it for its own
entries from its own ledger to check central's proofs (`sync.log_check`).

    leaf bytes = "greenpass-leaf-v1" ‖ 0x00 ‖ device id ‖ 0x00 ‖ seq (8 bytes, big-endian) ‖ h

`h` is the entry's chain hash: it commits to the entry and to the device's whole
history before it, and keeps every data field out of the public log.
"""

from __future__ import annotations

from greenpass import merkle

LEAF_PREFIX = b"greenpass-leaf-v1\x00"


def device_prefix(device_id: str) -> bytes:
    """The leaf bytes every entry of `device_id` starts with."""
    return LEAF_PREFIX + device_id.encode() + b"\x00"


def leaf_bytes(device_id: str, seq: int, h: bytes) -> bytes:
    return device_prefix(device_id) + seq.to_bytes(8, "big") + h


def entry_leaf_hash(device_id: str, seq: int, h: bytes) -> bytes:
    return merkle.leaf_hash(leaf_bytes(device_id, seq, h))
