"""A kiosk's signed chain head: what proves, to anyone, that a device wrote its entries.

Every batch a kiosk sends carries, beside the envelope's signature, an Ed25519
signature over its last entry's place in the device's chain:

    head message = "greenpass-head-v1" ‖ 0x00 ‖ device id ‖ 0x00 ‖ seq (8 bytes, big-endian) ‖ h

`h` is that entry's chain hash, which commits to the entry and to every entry of the
device before it: one signed head proves the device's origin of its whole history up
to `seq`. Central keeps these (a few dozen bytes per batch) where it cannot keep the
envelopes: a batch's signed body also carries households' names (personal records,
docs/privacy.md), which must never reach an evidence pack. Pure; both ends and the
offline verifier (`greenpass verify-evidence`) import it.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HEAD_PREFIX = b"greenpass-head-v1\x00"
SIGNATURE_SIZE = 64


def head_message(device_id: str, seq: int, h: bytes) -> bytes:
    return HEAD_PREFIX + device_id.encode() + b"\x00" + seq.to_bytes(8, "big") + h


def sign_head(key: Ed25519PrivateKey, device_id: str, seq: int, h: bytes) -> bytes:
    return key.sign(head_message(device_id, seq, h))


def head_verifies(
    public_key: Ed25519PublicKey, device_id: str, seq: int, h: bytes, sig: bytes
) -> bool:
    if len(sig) != SIGNATURE_SIZE or len(h) != 32:
        return False
    try:
        public_key.verify(sig, head_message(device_id, seq, h))
    except InvalidSignature:
        return False
    return True
