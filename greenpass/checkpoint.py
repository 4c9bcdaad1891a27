"""Signed checkpoints of the transparency log: C2SP tlog-checkpoint bodies in C2SP
signed-note format, signed with Ed25519 (https://c2sp.org/tlog-checkpoint,
https://c2sp.org/signed-note; key strings as golang.org/x/mod/sumdb/note).

    greenpass.example/log                         origin
    20852163                                      tree size, canonical decimal
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=  root hash, standard base64
                                                  blank line
    — greenpass.example/log <base64(key ID ‖ Ed25519 signature)>

The signature covers the body (the text up to and including its last newline).
A verifier knows one key (name and public key, or the `verifier_key` string) and
the origin; `open_checkpoint` accepts a note only if that key signed it, ignores
signatures by other keys (witness cosignatures, a rotated key), and refuses
everything else with `ProtocolError("rejected", reason)`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from greenpass.errors import ConfigError, ProtocolError
from greenpass.merkle import HASH_SIZE

# The spec asks verifiers to bound the work a note can cause, and to accept at least
# 16 signatures. A checkpoint body is three short lines; 1 KiB leaves room for a long
# origin. A signature line is ~100 bytes for Ed25519; 512 leaves room for long names.
MAX_BODY_BYTES = 1024
MAX_SIGNATURES = 16
MAX_NOTE_BYTES = MAX_BODY_BYTES + 1 + MAX_SIGNATURES * 512

ED25519 = 0x01  # the signed-note signature type byte
_SIGNATURE_PREFIX = "— "  # U+2014 em dash, space
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")  # ASCII only: str.isdigit() takes other digits
_KEY_ID = re.compile(r"[0-9a-f]{8}")


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: `size` leaves with root `root_hash`, from log `origin`.

    `extensions` are the spec's optional opaque lines after the root; the log emits
    none, and they are kept only so a checkpoint read back formats to the same bytes."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


def _refuse(reason: str) -> ProtocolError:
    return ProtocolError("rejected", f"checkpoint refused: {reason}")


def _valid_name(name: str) -> bool:
    """signed-note key names: non-empty, no Unicode spaces, no plus."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _has_control(text: str) -> bool:
    """Any ASCII control character other than newline (CR and tab included)."""
    return any(c < " " and c != "\n" for c in text)


def _b64decode(text: str) -> bytes | None:
    """Standard padded base64 in its one canonical spelling, else None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def _public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes_raw()


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte key ID: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]."""
    material = bytes([ED25519]) + _public_bytes(public_key)
    return hashlib.sha256(name.encode("utf-8") + b"\n" + material).digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The vkey string `<name>+<hex key ID>+<base64(0x01 ‖ public key)>` to publish."""
    if not _valid_name(name):
        raise ValueError(f"key name {name!r} is empty or has a space or '+'")
    material = bytes([ED25519]) + _public_bytes(public_key)
    return f"{name}+{key_id(name, public_key).hex()}+{base64.b64encode(material).decode()}"


def parse_verifier_key(vkey: str) -> tuple[str, Ed25519PublicKey]:
    """The name and public key in a vkey string; ConfigError if it is not a valid
    Ed25519 vkey or its key ID does not match its name and key."""
    parts = vkey.split("+", 2)  # base64 has '+' too; names have none
    if len(parts) != 3 or not _valid_name(parts[0]) or not _KEY_ID.fullmatch(parts[1]):
        raise ConfigError(f"{vkey!r} is not a verifier key (name+keyid+base64key)")
    name, hex_id, encoded = parts
    material = _b64decode(encoded)
    if material is None or len(material) != 33 or material[0] != ED25519:
        raise ConfigError(f"verifier key {name}+{hex_id}: not an Ed25519 public key")
    public_key = Ed25519PublicKey.from_public_bytes(material[1:])
    if key_id(name, public_key).hex() != hex_id:
        raise ConfigError(f"verifier key {name}+{hex_id}: key ID does not match name and key")
    return name, public_key


def format_body(cp: Checkpoint) -> bytes:
    """The checkpoint's note text: origin, size, root, any extension lines, each + '\\n'."""
    lines = [cp.origin, str(cp.size), base64.b64encode(cp.root_hash).decode(), *cp.extensions]
    if not cp.origin or cp.size < 0 or len(cp.root_hash) != HASH_SIZE:
        raise ValueError(f"not a checkpoint: {cp!r}")
    if any(not line or "\n" in line or _has_control(line) for line in lines):
        raise ValueError(f"checkpoint lines must be non-empty, without control characters: {cp!r}")
    body = "".join(line + "\n" for line in lines).encode("utf-8")
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"checkpoint body over {MAX_BODY_BYTES} bytes")
    return body


def parse_body(body: bytes, origin: str) -> Checkpoint:
    """The checkpoint in a note text (already verified), refused unless well formed
    and from `origin`."""
    if len(body) > MAX_BODY_BYTES:
        raise _refuse(f"body over {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("body is not UTF-8") from None
    if _has_control(text) or not text.endswith("\n"):
        raise _refuse("body has control characters or does not end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise _refuse("body needs origin, size and root hash lines, none empty")
    if lines[0] != origin:
        raise _refuse(f"origin {lines[0]!r}, expected {origin!r}")
    if not _SIZE.fullmatch(lines[1]) or int(lines[1]) >= 1 << 64:
        raise _refuse(f"tree size {lines[1]!r} is not a canonical decimal")
    root_hash = _b64decode(lines[2])
    if root_hash is None or len(root_hash) != HASH_SIZE:
        raise _refuse(f"root hash {lines[2]!r} is not {HASH_SIZE} bytes in base64")
    return Checkpoint(origin, int(lines[1]), root_hash, tuple(lines[3:]))


def sign_note(text: bytes, name: str, private_key: Ed25519PrivateKey) -> bytes:
    """A signed note: `text` (ending in a newline), a blank line, one signature line."""
    if not _valid_name(name):
        raise ValueError(f"key name {name!r} is empty or has a space or '+'")
    decoded = text.decode("utf-8")
    if not decoded.endswith("\n") or _has_control(decoded):
        raise ValueError("note text must end in a newline and have no control characters")
    signature = key_id(name, private_key.public_key()) + private_key.sign(text)
    line = f"{_SIGNATURE_PREFIX}{name} {base64.b64encode(signature).decode()}\n"
    return text + b"\n" + line.encode("utf-8")


def open_note(note: bytes, name: str, public_key: Ed25519PublicKey) -> bytes:
    """The text of `note` if the key (`name`, `public_key`) signed it.

    Follows the signed-note rules: signatures whose name and key ID are not both
    this key's are ignored; one of this key's that fails to verify refuses the
    whole note; a note with none is refused."""
    if len(note) > MAX_NOTE_BYTES:
        raise _refuse(f"note over {MAX_NOTE_BYTES} bytes")
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("note is not UTF-8") from None
    if _has_control(decoded):
        raise _refuse("note has a control character (CR, tab, ...)")
    # The text runs to the last blank line; signature lines follow, each ending in \n.
    split = decoded.rfind("\n\n")
    if split < 0:
        raise _refuse("note has no blank line before its signatures")
    text, signatures = decoded[: split + 1], decoded[split + 2 :]
    if not signatures.endswith("\n"):
        raise _refuse("note's signature lines do not end in a newline")
    lines = signatures[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise _refuse(f"more than {MAX_SIGNATURES} signatures")
    if len(text.encode("utf-8")) > MAX_BODY_BYTES:
        raise _refuse(f"body over {MAX_BODY_BYTES} bytes")

    wanted = key_id(name, public_key)
    signed = text.encode("utf-8")
    verified = False
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise _refuse(f"signature line {line[:40]!r} does not start with '— '")
        signer, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        raw = _b64decode(encoded)
        if not _valid_name(signer) or raw is None or len(raw) < 5:
            raise _refuse(f"signature line {line[:40]!r} is malformed")
        if signer != name or raw[:4] != wanted:
            continue  # another key's signature: not ours to judge
        try:
            public_key.verify(raw[4:], signed)
        except InvalidSignature:
            raise _refuse(f"bad signature by {name}+{wanted.hex()}") from None
        verified = True
    if not verified:
        raise _refuse(f"not signed by {name}+{wanted.hex()}")
    return signed


def sign(cp: Checkpoint, name: str, private_key: Ed25519PrivateKey) -> bytes:
    """The signed note of `cp`; the spec recommends `name` be the origin."""
    return sign_note(format_body(cp), name, private_key)


def open_checkpoint(
    note: bytes, name: str, public_key: Ed25519PublicKey, *, origin: str
) -> Checkpoint:
    """The checkpoint in `note`, if signed by key `name` and issued by log `origin`;
    otherwise `ProtocolError("rejected", reason)`."""
    return parse_body(open_note(note, name, public_key), origin)
