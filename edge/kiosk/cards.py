"""Passbook and staff cards: what their QR code says and how a kiosk checks it offline.

A card's QR code is one line of text (colon-separated, so ids may hold '.', '_'
and '-'):

    GP1:P:<village>:<passbook id>:<key id>:<signature>     a villager's passbook
    GP1:S:<village>:<staff id>:<key id>:<signature>        a staff card

The signature is Ed25519 by an issuer key over the UTF-8 bytes of everything
before the last colon, written in unpadded RFC 4648 base32 (upper case and
digits, so the whole line fits QR's compact alphanumeric mode when the ids are
upper case). The kiosk holds only public keys — central's list of the village's
issuers plus its own device key for cards it printed itself — so a stolen kiosk
cannot mint cards for other kiosks (docs/design.md §6). A card carries an id, never a
balance.

`read_card` refuses with a reason code the screen turns into plain words:
not_a_card, unknown_issuer, forged, foreign_village. Whether the passbook is
known, active or revoked is the ledger's question, asked next.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from greenpass.errors import Refused

PREFIX = "GP1"
MAX_PAYLOAD = 400  # a card's line is ~150 characters; anything far longer is not ours
_ID = r"[A-Za-z0-9._-]{1,64}"
_CARD_RE = re.compile(rf"GP1:([PS]):({_ID}):({_ID}):({_ID}):([A-Z2-7]{{103}})")

CardKind = Literal["passbook", "staff"]
_KIND_CODE: dict[CardKind, str] = {"passbook": "P", "staff": "S"}
_CODE_KIND: dict[str, CardKind] = {"P": "passbook", "S": "staff"}


@dataclass(frozen=True)
class Card:
    kind: CardKind
    village: str
    holder_id: str  # passbook id or staff id
    key_id: str


def _signed_part(kind: CardKind, village: str, holder_id: str, key_id: str) -> str:
    return f"{PREFIX}:{_KIND_CODE[kind]}:{village}:{holder_id}:{key_id}"


def _b32(sig: bytes) -> str:
    return base64.b32encode(sig).decode("ascii").rstrip("=")


def _unb32(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


def make_card(
    kind: CardKind, village: str, holder_id: str, *, key_id: str, key: Ed25519PrivateKey
) -> str:
    """The QR text of a card signed by `key` (an issuer's private key)."""
    for what, value in (("village", village), (f"{kind} id", holder_id), ("key id", key_id)):
        if not re.fullmatch(_ID, value):
            raise Refused("bad_id", f"{what} {value!r} must be 1-64 letters, digits, '.', '_', '-'")
    body = _signed_part(kind, village, holder_id, key_id)
    return f"{body}:{_b32(key.sign(body.encode()))}"


def read_card(
    payload: str, issuer_keys: Mapping[str, bytes], village: str, *, kind: CardKind | None = None
) -> Card:
    """The card `payload` names, checked against `issuer_keys` (key id → raw public key).

    Raises `Refused` with code not_a_card, unknown_issuer, forged or foreign_village.
    `kind` restricts which kind of card is acceptable here (not_a_card otherwise).
    """
    text = payload.strip()
    m = _CARD_RE.fullmatch(text) if len(text) <= MAX_PAYLOAD else None
    if m is None:
        raise Refused("not_a_card", "this code is not a Green Passbook card")
    card = Card(_CODE_KIND[m[1]], m[2], m[3], m[4])
    if kind is not None and card.kind != kind:
        raise Refused("not_a_card", f"this is a {card.kind} card, not a {kind} card")
    raw = issuer_keys.get(card.key_id)
    if raw is None:
        raise Refused("unknown_issuer", f"card signed by key {card.key_id!r}, which is not trusted")
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(
            _unb32(m[5]),
            _signed_part(card.kind, card.village, card.holder_id, card.key_id).encode(),
        )
    except (InvalidSignature, ValueError) as exc:
        raise Refused("forged", "the card's signature does not match: forged or damaged") from exc
    if card.village != village:
        raise Refused("foreign_village", f"this card belongs to village {card.village!r}")
    return card
