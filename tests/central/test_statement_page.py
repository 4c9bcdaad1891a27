"""A villager's statement page, ``GET /s/{token}`` (issue 16), on SQLite and PostgreSQL:
a link signed by central, by the passbook's village's kiosk or by its card issuer
opens the statement; an altered, expired, untrusted or dead link opens a plain page
with no data; the "verified" mark follows central's latest signed checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from central import passbooks, reports, tlog
from central.api import EnrolmentSettings, create_app
from central.engines import open_engine
from central.ingest import ingest
from central.store import CentralStore
from greenpass import statement_link as sl
from sync.keys import Ed25519PrivateKey, generate_key, public_bytes
from tests.central.conftest import NOW, SQLITE_ONLY, Kiosk, enrol, new_kiosk, populate
from tests.central.test_api import ADMIN

# SQLite only: the phone page and its link; tests/central/test_reports.py runs the
# statement's query on both.
pytestmark = SQLITE_ONLY

CENTRAL = generate_key()
ISSUER = generate_key()
SETTINGS = EnrolmentSettings(
    broker_url="mqtts://central.example:8883",
    ca_cert_pem="",
    central_public_key=public_bytes(CENTRAL),
)
TODAY = sl.day_of(NOW)
LOG = tlog.LogSettings(origin="central.test/log", every_entries=1)
# Every answer, refused or not: the link is a credential.
HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-robots-tag": "noindex, nofollow",
}


@dataclass
class Village:
    client: TestClient
    store: CentralStore
    k1: Kiosk
    ids: dict[str, str]  # household → passbook id

    def get(self, token: str, **params: str) -> Response:
        r: Response = self.client.get(f"/s/{token}", params=params)
        for name, value in HEADERS.items():
            assert r.headers[name] == value, name
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["content-type"].startswith("text/html")
        assert "<script" not in r.text
        return r

    def sync(self) -> None:
        k = self.k1
        done = ingest(self.store, k.topic, k.batch(k.ledger.outbox.acked_seq() + 1), NOW)
        assert done.ack is not None and done.ack.status == "ok", done.ack
        k.ledger.outbox.mark_acked(done.ack.acked_seq, NOW)


@pytest.fixture
def village(store: CentralStore, k1: Kiosk) -> Iterator[Village]:
    ids = populate(k1)
    store.add_issuer_key("office-1", "V1", public_bytes(ISSUER))
    app = create_app(store, admin_token=ADMIN, enrolment=SETTINGS, clock=lambda: NOW)
    with TestClient(app) as client:
        v = Village(client, store, k1, ids)
        v.sync()
        yield v


def link(key: Ed25519PrivateKey, kind: str, signer: str, passbook: str, days: int = 30) -> str:
    return sl.sign(key, kind, signer, passbook, TODAY + days).token


def assert_no_data(r: Response, village: Village, passbook: str) -> None:
    """A refusal names no passbook, no balance, no village, no entry."""
    assert passbook not in r.text and "K1" not in r.text and "V1" not in r.text
    assert 'data-testid="balance"' not in r.text and "kg" not in r.text
    assert "household" not in r.text


def test_a_link_of_each_kind_opens_the_statement(village: Village) -> None:
    li = village.ids["li"]
    lines = reports.statement(village.store, li)
    balance = lines[-1].balance
    for token in (
        link(CENTRAL, "c", "", li),
        link(village.k1.key, "d", "K1", li),
        link(ISSUER, "i", "office-1", li),
    ):
        r = village.get(token)
        assert r.status_code == 200, r.text
        assert f'data-testid="balance">{balance} ' in r.text
        assert li in r.text and "余额" in r.text
        assert "Li household" not in r.text  # a receipt's link may be seen by others
        assert "回收机 K1" in r.text and "投放" in r.text and "兑换" in r.text
        assert "2.5 公斤" in r.text and "铝罐 · 1 公斤" in r.text  # paper, aluminium


def test_english_by_the_address_and_remembered(village: Village) -> None:
    li = village.ids["li"]
    token = link(CENTRAL, "c", "", li)
    r = village.get(token, lang="en")
    assert r.status_code == 200 and "Balance" in r.text and "余额" not in r.text
    assert "gp_lang=en" in r.headers["set-cookie"]
    again = village.get(token)  # the TestClient keeps the cookie, as a phone does
    assert "Balance" in again.text and "2.5 kg" in again.text
    assert "Balance" in village.get(token, lang="fr").text  # unknown: the remembered one
    assert "余额" in village.get(token, lang="zh-CN").text
    assert "余额" in village.get(token).text


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda t, ids: t.replace(ids["li"], ids["wang"]), id="passbook"),
        pytest.param(lambda t, _: t.replace(f"~{TODAY + 30}~", f"~{TODAY + 400}~"), id="expiry"),
        pytest.param(
            lambda t, _: t[:-86] + ("B" if t[-86] == "A" else "A") + t[-85:], id="signature"
        ),
        pytest.param(lambda t, _: t.replace("dK1~", "dK2~"), id="signer"),
        pytest.param(lambda t, _: t[:40], id="cut"),
        pytest.param(lambda t, _: "x" * 400, id="long"),
    ],
)
def test_an_altered_link_is_refused_with_no_data(village: Village, change: object) -> None:
    li = village.ids["li"]
    token = link(village.k1.key, "d", "K1", li)
    changed = change(token, village.ids)  # type: ignore[operator]
    assert changed != token
    r = village.get(changed)
    assert r.status_code == 403
    assert "这个链接无效" in r.text and "This link is not valid" in r.text
    assert_no_data(r, village, village.ids["wang"])
    assert_no_data(r, village, li)


def test_an_expired_link_is_gone(village: Village) -> None:
    li = village.ids["li"]
    assert village.get(link(CENTRAL, "c", "", li, days=0)).status_code == 200  # through today
    r = village.get(link(CENTRAL, "c", "", li, days=-1))
    assert r.status_code == 410 and "已过期" in r.text and "expired" in r.text
    assert_no_data(r, village, li)


def test_a_revoked_kiosks_links_stop(village: Village) -> None:
    li = village.ids["li"]
    token = link(village.k1.key, "d", "K1", li)
    assert village.get(token).status_code == 200
    village.store.revoke_device("K1", NOW, actor="test")
    r = village.get(token)
    assert r.status_code == 403 and "不能使用" in r.text
    assert_no_data(r, village, li)
    assert village.get(link(CENTRAL, "c", "", li)).status_code == 200  # the passbook is fine


def test_a_kiosk_or_issuer_of_another_village_is_not_trusted(
    village: Village, tmp_path: Path
) -> None:
    li = village.ids["li"]
    village.store.create_village("V2")
    k2 = new_kiosk(tmp_path / "k2", "K2", village="V2")
    other_issuer = generate_key()
    try:
        enrol(village.store, k2, "V2")
        village.store.add_issuer_key("office-2", "V2", public_bytes(other_issuer))
        for token in (
            link(k2.key, "d", "K2", li),
            link(other_issuer, "i", "office-2", li),
            link(ISSUER, "i", "office-2", li),  # V1's key under V2's id: forged
            link(generate_key(), "i", "no-such-key", li),
            link(generate_key(), "d", "K9", li),
        ):
            r = village.get(token)
            assert r.status_code == 403, token
            assert_no_data(r, village, li)
    finally:
        k2.ledger.close()


def test_an_unknown_passbook_is_404_with_no_data(village: Village) -> None:
    r = village.get(link(CENTRAL, "c", "", "K1-99999"))
    assert r.status_code == 404 and "找不到这本存折" in r.text
    assert_no_data(r, village, "K1-99999")
    # Also from a kiosk of the village: whose passbook it is, central cannot say.
    assert village.get(link(village.k1.key, "d", "K1", "K1-99999")).status_code == 404


def test_a_revoked_passbook_is_gone(village: Village) -> None:
    zhao = village.ids["zhao"]  # revoked at the kiosk (a lost card)
    r = village.get(link(CENTRAL, "c", "", zhao))
    assert r.status_code == 410 and "已停用" in r.text
    assert_no_data(r, village, zhao)
    li = village.ids["li"]
    token = link(village.k1.key, "d", "K1", li)
    passbooks.revoke(village.store, li, reason="card lost", actor="test", now_ms=NOW)
    assert village.get(token).status_code == 410
    passbooks.reinstate(village.store, li, actor="test", now_ms=NOW)
    assert village.get(token).status_code == 200


def test_a_replaced_card_shows_under_the_new_one(village: Village) -> None:
    li = village.ids["li"]
    balance = reports.statement(village.store, li)[-1].balance
    new = passbooks.replace(village.store, li, actor="test", now_ms=NOW)
    assert village.get(link(CENTRAL, "c", "", li)).status_code == 410
    r = village.get(link(CENTRAL, "c", "", new))
    assert r.status_code == 200 and f'data-testid="balance">{balance} ' in r.text
    assert "2.5 公斤" in r.text  # the old card's deposits


def test_verified_once_in_the_latest_checkpoint(village: Village) -> None:
    li = village.ids["li"]
    token = link(CENTRAL, "c", "", li)
    shown = village.get(token).text.count('<li class="entry">')
    assert shown >= 4
    assert village.get(token).text.count('data-testid="pending"') == shown  # no log yet
    assert tlog.append_pending(village.store, CENTRAL, LOG, NOW) > 0
    village.k1.clock.advance(60_000)
    village.k1.ledger.deposit(li, "paper", 1000)
    village.sync()  # stored, not yet in a checkpoint
    r = village.get(token).text
    assert r.count('<li class="entry">') == shown + 1
    assert r.count('data-testid="verified"') == shown
    assert r.count('data-testid="pending"') == 1
    # The newest entry comes first, and is the one not yet verified.
    first = r.split('<li class="entry">')[1]
    assert 'data-testid="pending"' in first
    assert tlog.append_pending(village.store, CENTRAL, LOG, NOW) == 1
    assert village.get(token).text.count('data-testid="verified"') == shown + 1


def test_no_database_is_a_plain_503_page() -> None:
    unreachable = CentralStore(open_engine("postgresql://unused@127.0.0.1:1/unused"))
    app = create_app(unreachable, admin_token=ADMIN, enrolment=SETTINGS, clock=lambda: NOW)
    with TestClient(app) as client:
        r = client.get(f"/s/{link(CENTRAL, 'c', '', 'K1-00001')}")
    assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")
    assert "暂时无法查看" in r.text and "K1-00001" not in r.text
    assert r.headers["cache-control"] == "no-store"
