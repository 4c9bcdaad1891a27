"""Whether a statement link opens a passbook's statement (issue 16; docs/villager.md).

The link (`greenpass.statement_link`) says who signed it; central trusts

- ``c``: its own key (the one that signs the kiosks' states: monthly statements and
  `greenpass central statement-link`);
- ``d``: an enrolled kiosk's device key, while the kiosk is not revoked, and only for
  passbooks of the kiosk's own village (its receipts);
- ``i``: a card-issuer key (`issuer_keys`), only for passbooks of its own village (the
  card sheets).

`check` decides in this order, so a refusal tells a stranger no more than they knew:
the link's shape, the signature (a forged or altered link learns nothing else), the
expiry, whether central knows the passbook, whether the signer may speak for that
passbook's village, whether the passbook is revoked. Every refusal carries no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from central import db, passbooks
from central.store import CentralStore
from greenpass import statement_link
from greenpass.errors import CentralError
from sync.keys import public_key


class Refusal(Enum):
    """Why a link opens nothing (the page's words and status follow from it)."""

    MALFORMED = "malformed"  # not a statement link at all
    FORGED = "forged"  # the signature does not verify, or there is no such signer
    UNTRUSTED = "untrusted"  # a revoked kiosk, or a signer of another village
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # a good signature, but central has no such passbook
    REVOKED = "revoked"  # the passbook was revoked (a lost card, replaced or not)

    @property
    def status(self) -> int:
        return STATUS[self]


STATUS = {
    Refusal.MALFORMED: 403,
    Refusal.FORGED: 403,
    Refusal.UNTRUSTED: 403,
    Refusal.EXPIRED: 410,
    Refusal.UNKNOWN: 404,
    Refusal.REVOKED: 410,
}


@dataclass(frozen=True)
class Granted:
    """The link opens `passbook_id`'s statement, of `village_id`."""

    link: statement_link.StatementLink
    passbook_id: str
    village_id: str


@dataclass(frozen=True)
class _Signer:
    key: Ed25519PublicKey
    village_id: str | None  # None: central, which speaks for every village
    revoked: bool = False


def _signer(
    store: CentralStore, link: statement_link.StatementLink, central: bytes
) -> _Signer | None:
    if link.kind == "c":
        return _Signer(public_key(central), None)
    if link.kind == "d":
        device = store.device(link.signer)
        if device is None:
            return None
        return _Signer(public_key(device.public_key), device.village_id, device.status == "revoked")
    k = db.issuer_keys
    with store.read("reading an issuer key") as conn:
        row = conn.execute(
            select(k.c.public_key, k.c.village_id).where(k.c.key_id == link.signer)
        ).first()
    return None if row is None else _Signer(public_key(bytes(row.public_key)), row.village_id)


def check(store: CentralStore, token: str, central_key: bytes, now_ms: int) -> Granted | Refusal:
    """What the link `token` (the path after ``/s/``) opens, on central's clock `now_ms`;
    `central_key` is central's raw Ed25519 public key."""
    try:
        link = statement_link.parse(token)
    except statement_link.BadLink:
        return Refusal.MALFORMED
    signer = _signer(store, link, central_key)
    if signer is None or not link.verifies(signer.key):
        return Refusal.FORGED
    if link.expired(now_ms):
        return Refusal.EXPIRED
    try:
        status = passbooks.status(store, link.passbook_id)
    except CentralError:
        return Refusal.UNKNOWN
    village = str(status["village_id"])
    if signer.revoked or signer.village_id not in (None, village):
        return Refusal.UNTRUSTED
    if status["status"] == "revoked":
        return Refusal.REVOKED
    return Granted(link, link.passbook_id, village)
