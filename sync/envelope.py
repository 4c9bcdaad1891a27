"""The signed envelope every batch and state travels in (docs/design.md §5).

    Envelope = [v, signer, kind, zipped, body, sig]
    sig = Ed25519(signer's key, "greenpass/v1\\0" kind "\\0" signer "\\0" zipped body)

The body is zlib-compressed when that helps, and the signature covers the bytes
as sent, so a receiver checks it before inflating anything: an unauthenticated
sender cannot make central inflate a bomb. Pure: no network, no database.
"""

from __future__ import annotations

import zlib

import msgspec

from greenpass.errors import ProtocolError
from sync.keys import Ed25519PrivateKey, Ed25519PublicKey, verify

VERSION = 1
MAX_PAYLOAD = 256 * 1024  # the most central reads off the wire for one message
MAX_BODY = 2 * 1024 * 1024  # the most a body may inflate to
COMPRESS_ABOVE = 256  # bytes: below this zlib's header costs more than it saves
# zlib's fastest: half the CPU of its default (6) for ~3 % more bytes on a 500-entry
# batch (measured 2026-12-07); a backlog drain compresses a batch per 500 entries on
# the kiosk, and central a state per kiosk it pushes. Any level inflates the same.
COMPRESS_LEVEL = 1

# msgspec raises UnicodeDecodeError, not DecodeError, for a string that is not UTF-8.
DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError)
pack = msgspec.msgpack.Encoder()


class Envelope(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    v: int
    signer: str
    kind: str  # "batch" or "state"
    zipped: bool
    body: bytes
    sig: bytes


_envelope_decoder = msgspec.msgpack.Decoder(Envelope)


def _signed_message(kind: str, signer: str, zipped: bool, body: bytes) -> bytes:
    return b"greenpass/v1\0" + f"{kind}\0{signer}\0".encode() + bytes([zipped]) + body


def seal(kind: str, signer: str, body: bytes, key: Ed25519PrivateKey) -> bytes:
    zipped = len(body) > COMPRESS_ABOVE
    if zipped:
        packed = zlib.compress(body, COMPRESS_LEVEL)
        if len(packed) >= len(body):
            zipped = False
        else:
            body = packed
    sig = key.sign(_signed_message(kind, signer, zipped, body))
    return pack.encode(Envelope(VERSION, signer, kind, zipped, body, sig))


def open_envelope(payload: bytes, kind: str, *, max_payload: int = MAX_PAYLOAD) -> Envelope:
    """Parse the outer envelope only; nothing in it is trusted yet."""
    if len(payload) > max_payload:
        raise ProtocolError(
            "rejected", f"message of {len(payload)} bytes exceeds the {max_payload}-byte limit"
        )
    try:
        env = _envelope_decoder.decode(payload)
    except DECODE_ERRORS as exc:
        raise ProtocolError("rejected", f"malformed envelope: {exc}") from exc
    if env.v != VERSION:
        raise ProtocolError("rejected", f"protocol version {env.v} is not supported")
    if env.kind != kind:
        raise ProtocolError("rejected", f"expected a {kind} envelope, got {env.kind!r}")
    return env


def check_signature(env: Envelope, pub: Ed25519PublicKey) -> None:
    if not verify(pub, env.sig, _signed_message(env.kind, env.signer, env.zipped, env.body)):
        raise ProtocolError("bad_signature", f"signature does not verify for {env.signer!r}")


def inflate(env: Envelope, limit: int = MAX_BODY, what: str = "body") -> bytes:
    """The body of a checked envelope, refused if it would inflate past `limit`."""
    if not env.zipped:
        return env.body
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(env.body, limit)
    except zlib.error as exc:
        raise ProtocolError("rejected", f"{what} does not decompress: {exc}") from exc
    if inflater.unconsumed_tail:
        raise ProtocolError("rejected", f"{what} inflates beyond {limit} bytes")
    return body
