"""Request and response bodies of the operator's routes (`central.api_operator`).

Requests refuse unknown fields, like every `…In` of `central.api_models`. Text is
text: an item named `<script>…</script>` is stored and returned as those characters
(JSON-escaped by the encoder, never interpreted here).
"""

from typing import Any, Literal, Self

from pydantic import BaseModel, Field

from central import audit, operations
from central.api_models import ID_PATTERN, _In
from central.catalogue_file import CatalogueItem


class VillageIn(_In):
    name_zh: str = Field(min_length=1, max_length=64, description="The name in Chinese")
    name_en: str = Field(min_length=1, max_length=64, description="The name in English")
    timezone: str = Field("Asia/Shanghai", max_length=64, description="IANA time zone")


class VillageOut(BaseModel):
    village_id: str
    name_zh: str = Field(description="Empty for a village made by an enrolment token")
    name_en: str
    timezone: str
    devices: int = Field(description="Active kiosks")
    rules_version: str | None = Field(description="None: no rules set at central")
    catalogue_version: int = Field(description="0: no catalogue set at central")

    @classmethod
    def of(cls, v: operations.Village) -> Self:
        return cls(**v.__dict__)


class RulesIn(_In):
    text: str = Field(
        min_length=1,
        max_length=15_000,
        description="The rules file (TOML, docs/rules.md); a new version for new text",
    )


class RulesOut(BaseModel):
    village_id: str
    version: str | None = Field(description="None: no rules set; kiosks keep their own")
    text: str | None
    sha256: str | None = Field(description="Of the text, as UTF-8")
    versions: list[str] = Field(description="Every version the village has had, oldest first")

    @classmethod
    def of(cls, r: operations.RulesInForce) -> Self:
        return cls(**r.__dict__)


class ItemIn(_In):
    id: str = Field(pattern=ID_PATTERN, description="Item id, as kiosks' entries name it")
    name_zh: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)
    points: int = Field(gt=0, lt=2**31, description="Price of one unit, in points")
    active: bool = True

    def item(self) -> CatalogueItem:
        return CatalogueItem(
            self.id, self.name_zh.strip(), self.name_en.strip(), self.points, self.active
        )


class CatalogueIn(_In):
    version: int = Field(
        ge=0,
        description="The catalogue's version as read (GET); a change made meanwhile by "
        "someone else gets 409 and nothing is changed",
    )
    items: list[ItemIn] = Field(
        max_length=100,
        description="The whole catalogue (at most 100 items here, as a body is at most "
        "16 KiB; the CLI takes 500): an item not listed is made inactive. Pictures are "
        "set with the CLI (`catalogue set`) and kept here",
    )


class ItemOut(BaseModel):
    id: str
    name_zh: str
    name_en: str
    points: int
    active: bool
    picture: bool = Field(description="Whether it has a picture (GET …/picture)")


class CatalogueOut(BaseModel):
    village_id: str
    version: int = Field(description="Send it back with a change (409 if it moved)")
    items: list[ItemOut]

    @classmethod
    def of(cls, c: operations.Catalogue) -> Self:
        return cls(
            village_id=c.village_id,
            version=c.version,
            items=[
                ItemOut(
                    id=i.item_id,
                    name_zh=i.name_zh,
                    name_en=i.name_en,
                    points=i.points,
                    active=i.active,
                    picture=i.picture is not None,
                )
                for i in c.items
            ],
        )


class RevokeIn(_In):
    reason: str = Field(min_length=1, max_length=200, description="Why, for the audit")


class PassbookOut(BaseModel):
    passbook_id: str
    village_id: str
    status: Literal["active", "revoked"]
    changed: bool = Field(description="False: it was already so")


class ReplacementOut(BaseModel):
    old_passbook_id: str = Field(description="Now revoked")
    new_passbook_id: str = Field(description="Print a card for it (docs/cards.md)")
    village_id: str
    household_name: str
    balance: int = Field(description="The household's points, carried to the new passbook")


class CorrectionIn(_In):
    household_name: str = Field(
        min_length=1, max_length=64, description="The household's name as it should be"
    )


class CorrectionOut(BaseModel):
    passbook_id: str
    village_id: str
    corrected: list[str] = Field(description="The household's passbooks now under this name")


class ErasureOut(BaseModel):
    passbook_id: str
    village_id: str
    erased: list[str] = Field(description="The household's passbooks whose name was erased")


class AuditOut(BaseModel):
    id: int
    at_ms: int
    actor: str = Field(description="Who: an account name, `admin-token`, or `cli:<user>`")
    action: str = Field(description="village.add, rules.set, catalogue.set, passbook.revoke …")
    village_id: str | None
    target: str
    before: Any = Field(description="What it was (JSON), null when new")
    after: Any

    @classmethod
    def of(cls, r: audit.AuditRow) -> Self:
        return cls(**r.__dict__)
