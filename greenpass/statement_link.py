"""A villager's statement link: the signed address, printed as a QR code on a receipt, a
card sheet or a monthly paper statement, that opens one passbook's statement on a phone
with no login (issue 16; docs/villager.md).

    https://CENTRAL/s/<kind><signer>~<passbook>~<expires day>~<signature>

- `kind` says whose key signed it: ``c`` central's own (monthly statements; no signer
  id), ``d`` a kiosk's device key (its receipts; signer = the device id), ``i`` a
  village's card-issuer key (card sheets; signer = the key id). Central trusts a
  kiosk or an issuer key only for passbooks of its own village, and not once the
  kiosk is revoked: a kiosk that holds a village's records may point at them, and
  nothing else.
- `expires day` is a day number (days since 1970-01-01, UTC); the link works through
  the end of that day.
- `signature` is Ed25519, base64url without padding, over

      "greenpass-statement-v1" ‖ 0x00 ‖ kind ‖ signer ‖ 0x00 ‖ passbook ‖ 0x00 ‖ day (4 bytes)

  so the passbook and the expiry cannot be changed, and no other message a key signs
  (a batch, a chain head, a card) can be passed off as a link.

The link grants reading that one passbook's statement and nothing else; revoking the
passbook ends it (central checks on every visit). Pure: the kiosk, the card printer
and central import it.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PREFIX = b"greenpass-statement-v1\x00"
KINDS = {"c": "central", "d": "kiosk", "i": "card issuer"}
DAY_MS = 86_400_000
MAX_TOKEN = 300  # a URL path segment: refuse anything longer before parsing it
_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_TOKEN = re.compile(rf"([cdi])({_ID})?~({_ID})~([0-9]{{1,6}})~([A-Za-z0-9_-]{{86}})")


class BadLink(ValueError):
    """The link is malformed (its reason is for logs, not for the page)."""


@dataclass(frozen=True)
class StatementLink:
    kind: str  # c / d / i
    signer: str  # device id or issuer key id; "" for central
    passbook_id: str
    expires_day: int
    signature: bytes

    def message(self) -> bytes:
        return message(self.kind, self.signer, self.passbook_id, self.expires_day)

    @property
    def token(self) -> str:
        sig = base64.urlsafe_b64encode(self.signature).rstrip(b"=").decode("ascii")
        return f"{self.kind}{self.signer}~{self.passbook_id}~{self.expires_day}~{sig}"

    def url(self, base: str) -> str:
        """The whole address on central `base` (e.g. https://central.county.example)."""
        return f"{base.rstrip('/')}/s/{self.token}"

    def expired(self, now_ms: int) -> bool:
        return now_ms >= (self.expires_day + 1) * DAY_MS

    def verifies(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(self.signature, self.message())
        except InvalidSignature:
            return False
        return True


def message(kind: str, signer: str, passbook_id: str, expires_day: int) -> bytes:
    return (
        PREFIX
        + kind.encode()
        + signer.encode()
        + b"\x00"
        + passbook_id.encode()
        + b"\x00"
        + expires_day.to_bytes(4, "big")
    )


def sign(
    key: Ed25519PrivateKey, kind: str, signer: str, passbook_id: str, expires_day: int
) -> StatementLink:
    """A link to `passbook_id`'s statement signed with `key`, valid through day
    `expires_day` (`day_of(ms)` gives a time's day)."""
    if kind not in KINDS or (kind == "c") != (signer == ""):
        raise ValueError(f"a {KINDS.get(kind, kind)!r} link's signer is wrong: {signer!r}")
    link = StatementLink(kind, signer, passbook_id, expires_day, b"")
    signed = StatementLink(kind, signer, passbook_id, expires_day, key.sign(link.message()))
    parse(signed.token)  # the ids must fit the link's grammar
    return signed


def parse(token: str) -> StatementLink:
    """The link in `token` (the path after ``/s/``); `BadLink` if it is not one."""
    if len(token) > MAX_TOKEN:
        raise BadLink("too long")
    found = _TOKEN.fullmatch(token)
    if found is None:
        raise BadLink("not a statement link")
    kind, signer, passbook, day, sig = found.groups()
    signer = signer or ""
    if (kind == "c") != (signer == ""):
        raise BadLink("the signer does not fit the kind")
    raw = base64.urlsafe_b64decode(sig + "==")
    if len(raw) != 64 or base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != sig:
        # 86 characters carry 516 bits: the spare 4 must be zero, or one link has 16
        # spellings.
        raise BadLink("the signature is not 64 bytes, canonically encoded")
    return StatementLink(kind, signer, passbook, int(day), raw)


def day_of(ms: int) -> int:
    return ms // DAY_MS
