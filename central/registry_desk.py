"""The registry for logged-in accounts: what each role sees and may do, for the API
(`central.api_registry_ops`) and the console (`central.console.registry_pages`).

    county   sees everything; issues a village's month; moves and retires the units
             the villages' issuer accounts hold (never an enterprise's)
    village  sees its own village's issuances, holdings and retirements; changes nothing
    buyer    sees its own registry account's holdings and retirements and the
             issuances they come from; moves and retires only its own units

The public registry (`central.api_registry`) shows every holding by account, as
registries do; this is where an account *acts*. Every change is audited under the
caller's account name (`central.audit`), as the command line's are under
``cli:<user>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from central import registry, registry_certificate
from central.auth import Actor
from central.operations import DEFAULT_TIMEZONE
from central.registry_db import Serials, parse_serials
from central.registry_units import Mandate, NotYours, buffer_account, issuer_account
from central.store import CentralStore
from greenpass.errors import CentralError, ConfigError
from greenpass.record.methodology import Methodology, default_methodology
from sync.keys import Ed25519PrivateKey

MAX_TEXT = 200  # a beneficiary or purpose: a name and a sentence, printed on a certificate


class RegistryUnavailable(CentralError):
    """This central process cannot sign (it has no key): HTTP 503."""


def _clean(text: str, what: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise ConfigError(f"a retirement names its {what}")
    if len(text) > MAX_TEXT:
        raise ConfigError(f"the {what} has at most {MAX_TEXT} characters")
    return text


@dataclass(frozen=True)
class RegistryDesk:
    store: CentralStore
    clock: Callable[[], int]
    packs: Path | None = None  # where issuances' evidence packs are kept
    key: Ed25519PrivateKey | None = None  # central's signing key: issue, certificates
    methodology: Methodology = field(default_factory=default_methodology)
    default_tz: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))

    # --- what an account sees ----------------------------------------------------------------

    def accounts_of(self, actor: Actor) -> set[str] | None:
        """The registry accounts `actor` may see; None: all of them."""
        if actor.county:
            return None
        if actor.buyer:
            return {actor.registry_account or ""}
        village = actor.village or ""
        return {issuer_account(village), buffer_account(village)}

    def view(self, actor: Actor) -> dict[str, Any]:
        """`central.registry.summary`, cut to what `actor` may see."""
        found = registry.summary(self.store)
        mine = self.accounts_of(actor)
        if mine is None:
            return found
        holdings = [h for h in found["holdings"] if h["account"] in mine]
        if actor.buyer:
            sources = {parse_serials(h["serials"]).issuance_id for h in holdings}
            issuances = [i for i in found["issuances"] if i["issuance_id"] in sources]
            retirements = [r for r in found["retirements"] if r["account_id"] in mine]
        else:
            issuances = [i for i in found["issuances"] if i["village_id"] == actor.village]
            ids = {i["issuance_id"] for i in issuances}
            retirements = [r for r in found["retirements"] if r["issuance_id"] in ids]
        return {
            "issuances": issuances,
            "holdings": holdings,
            "retirements": retirements,
            "totals": {
                "issuances": len(issuances),
                "units": sum(int(i["units"]) for i in issuances),
                "held": sum(h["units"] for h in holdings if not h["retirement"]),
                "retired": sum(h["units"] for h in holdings if h["retirement"]),
            },
        }

    # --- what an account does ----------------------------------------------------------------

    def _mandate(self, actor: Actor) -> Mandate:
        if actor.buyer:
            return Mandate(account=actor.registry_account)
        if actor.county:
            return Mandate(issuers=True)
        raise NotYours(f"account {actor.name!r} is a village's: it sees its units, moves none")

    def _signing_key(self) -> Ed25519PrivateKey:
        if self.key is None:
            raise RegistryUnavailable("this central process holds no signing key")
        return self.key

    def issue(self, actor: Actor, village_id: str, period: str) -> registry.Issued:
        if not actor.county:
            raise NotYours("only a county account issues units")
        if self.packs is None:
            raise RegistryUnavailable("this central process keeps no evidence packs")
        return registry.issue(
            self.store, self._signing_key(), village_id, period, self.methodology, self.packs,
            actor=actor.name, now_ms=self.clock(), default_tz=self.default_tz,
        )  # fmt: skip

    def transfer(self, actor: Actor, serials: str, to: str) -> tuple[Serials, str]:
        """Move `serials` to account `to`; (the serials, who held them)."""
        s = parse_serials(serials)
        mandate = self._mandate(actor)
        holder = registry.transfer(
            self.store, s, to.strip(), actor=actor.name, now_ms=self.clock(), mandate=mandate
        )
        return s, holder

    def retire(self, actor: Actor, serials: str, beneficiary: str, purpose: str) -> int:
        s = parse_serials(serials)
        mandate = self._mandate(actor)
        return registry.retire(
            self.store, s, beneficiary=_clean(beneficiary, "beneficiary"),
            purpose=_clean(purpose, "purpose"), actor=actor.name, now_ms=self.clock(),
            mandate=mandate,
        )  # fmt: skip

    def certificate(self, actor: Actor, retirement_id: int, public_url: str) -> dict[str, Any]:
        """Retirement `retirement_id`'s signed certificate, if `actor` may see it (else
        "no retirement", as for one that does not exist: an account learns nothing of
        others' retirements beyond the public registry)."""
        visible = {int(r["retirement_id"]) for r in self.view(actor)["retirements"]}
        if retirement_id not in visible:
            raise CentralError(f"no retirement {retirement_id}")
        return registry_certificate.document(
            self.store, self._signing_key(), retirement_id, public_url
        )

    def certificate_pdf(self, doc: dict[str, Any]) -> bytes:
        return registry_certificate.pdf_bytes(doc)
