"""The reduction registry (issue 14) on SQLite and PostgreSQL: a village's month issued
once from verified deposits, with its evidence pack; units transferred and retired
exactly once; reversals after issuance covered from the buffer pool; bad requests
refused with nothing changed."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from central import cli_registry, registry, registry_certificate
from central.api import create_app
from central.registry_db import Serials, parse_serials, registry_blocks, registry_issued_entries
from central.store import CentralStore
from greenpass import certificate
from greenpass.cli import main
from greenpass.errors import CentralError, ConfigError, ConflictError
from greenpass.evidence_verify import verify_pack
from greenpass.record.methodology import (
    DEFAULT_METHODOLOGY_PATH,
    Methodology,
    default_methodology,
    load_methodology,
    parse_methodology,
)
from sync.keys import Ed25519PrivateKey, public_bytes, save_private_key
from tests.central.conftest import Kiosk, populate
from tests.central.test_api import ADMIN, SETTINGS
from tests.central.test_evidence import sync

# Fixed, not generated: the race tests (test_registry_model) issue from processes that
# each import this module, and central has one key. A key per process made one issuer
# sign the log's checkpoint and another pack it, which then did not verify.
KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"central key of the tests").digest())
TZ = ZoneInfo("Asia/Shanghai")
LATER = 1_770_000_000_000  # 2026-02-02: January has ended
PERIOD = "2026-01"
IID = "GP-V1-202601"


def a_month(k: Kiosk) -> dict[str, str]:
    """Several days of deposits at one kiosk, all in January 2026."""
    ids = populate(k)
    for _day in range(6):
        k.clock.advance(86_400_000)
        for who, cat in (("li", "paper"), ("wang", "cardboard"), ("li", "plastic_pet")):
            k.ledger.deposit(ids[who], cat, 9_000)
            k.clock.advance(60_000)
    return ids


# The version before already-recycled shares (docs/methodology.md, "Versions").
OLD_METHOD = DEFAULT_METHODOLOGY_PATH.with_name("methodology-gp-recyclables-2026.12.toml")


def issue(
    store: CentralStore, tmp_path: Path, now_ms: int = LATER, method: Methodology | None = None
) -> registry.Issued:
    return registry.issue(
        store, KEY, "V1", PERIOD, method or default_methodology(), tmp_path / "registry",
        actor="county", now_ms=now_ms, default_tz=TZ,
    )  # fmt: skip


def gross_by(method: Methodology, k: Kiosk) -> int:
    """The month's issuable grams by `method`, recomputed from the kiosk's own ledger."""
    entries = [e for e, _ in k.ledger.iter_entries()]
    reversed_ = {e.ref_seq for e in entries if e.kind == "reversal"}
    return sum(
        method.reduction_g(e.category or "", "V1", e.grams or 0)
        for e in entries
        if e.kind == "deposit" and e.seq not in reversed_
    )


def counts(store: CentralStore) -> tuple[int, int]:
    with store.read() as conn:
        return (
            int(conn.scalar(select(func.count()).select_from(registry_blocks)) or 0),
            int(conn.scalar(select(func.count()).select_from(registry_issued_entries)) or 0),
        )


def blocks(store: CentralStore) -> list[tuple[int, int, str, int | None]]:
    b = registry_blocks
    with store.read() as conn:
        rows = conn.execute(
            select(b.c.first, b.c.last, b.c.account_id, b.c.retirement_id).order_by(b.c.first)
        ).all()
    return [(int(r[0]), int(r[1]), str(r[2]), r[3]) for r in rows]


def assert_whole(store: CentralStore, units: int) -> None:
    """Every unit 1..units is in exactly one block."""
    expected = 1
    for first, last, _a, _r in blocks(store):
        assert first == expected and last >= first
        expected = last + 1
    assert expected == units + 1


@pytest.fixture
def issued(store: CentralStore, k1: Kiosk, tmp_path: Path) -> registry.Issued:
    a_month(k1)
    sync(store, k1)
    return issue(store, tmp_path)


def test_a_month_is_issued_once_with_its_evidence(
    store: CentralStore, issued: registry.Issued, tmp_path: Path, k1: Kiosk
) -> None:
    assert issued.issuance_id == IID and issued.issued is not None and issued.buffer is not None
    assert issued.issued.first == 1 and issued.buffer.first == issued.issued.last + 1
    report, _ = verify_pack(issued.pack, public_bytes(KEY).hex())
    assert not report.failed and not report.unproven
    # The reversed cardboard deposit is not issued; every other deposit of January is.
    deposits = [e for e, _ in k1.ledger.iter_entries() if e.kind == "deposit"]
    reversed_ = {e.ref_seq for e, _ in k1.ledger.iter_entries() if e.kind == "reversal"}
    assert issued.entries == len([e for e in deposits if e.seq not in reversed_])
    method = default_methodology()
    gross = sum(
        method.reduction_g(e.category or "", "V1", e.grams or 0)
        for e in deposits
        if e.seq not in reversed_
    )
    assert issued.gross_g == gross
    total, buffer_n, issued_n = method.split(gross)
    assert (issued.issued.count, issued.buffer.count) == (issued_n, buffer_n)
    assert_whole(store, total)

    before = counts(store)
    with pytest.raises(ConflictError, match="issued already"):
        issue(store, tmp_path)
    assert counts(store) == before
    with pytest.raises(ConfigError, match="has not ended"):
        registry.issue(store, KEY, "V1", "2026-02", default_methodology(), tmp_path,
                       actor="x", now_ms=LATER, default_tz=TZ)  # fmt: skip


def test_shares_already_recycled_lower_the_units(
    store: CentralStore, issued: registry.Issued, k1: Kiosk
) -> None:
    """Each entry is priced at ⌊grams × ⌊avoided × (1000 − share) / 1000⌋ / 1000⌋: the
    issuance's gross is that sum, and below what the version without shares gives."""
    new, old = default_methodology(), load_methodology(OLD_METHOD)
    # 9 kg of cardboard: 162 g/kg kept from disposal, 0.8 already recycled → 32 g/kg
    avoided = new.categories["cardboard"].avoided_per_kg_g(new.default_mix)
    assert avoided == old.reduction_per_kg_g("cardboard", "V1") == 162
    assert (
        new.reduction_g("cardboard", "V1", 9_000)
        == 9 * 32
        < old.reduction_g("cardboard", "V1", 9_000)
        == 9 * 162
    )
    gross = gross_by(new, k1)
    assert issued.gross_g == gross < gross_by(old, k1)
    assert issued.issued is not None and issued.buffer is not None
    units = issued.issued.count + issued.buffer.count
    assert (units, issued.buffer.count) == new.split(gross)[:2]
    assert units < old.split(gross_by(old, k1))[0]


def test_a_certificate_under_the_old_version_still_recomputes(
    store: CentralStore, k1: Kiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Units issued under gp-recyclables-2026.12, whose text has no already-recycled
    share: the certificate carries that text, which still parses (shares 0) and gives
    the same units offline. Its version can never be reused with another text."""
    a_month(k1)
    sync(store, k1)
    old = load_methodology(OLD_METHOD)
    done = issue(store, tmp_path, method=old)
    assert done.gross_g == gross_by(old, k1) > gross_by(default_methodology(), k1)
    registry.add_account(store, "acme", "Acme Cement", actor="county", now_ms=LATER)
    registry.transfer(store, Serials(IID, 1, 3), "acme", actor="county", now_ms=LATER)
    rid = registry.retire(store, Serials(IID, 1, 2), beneficiary="Acme Cement",
                          purpose="2026 offset", actor="acme", now_ms=LATER)  # fmt: skip
    doc = registry_certificate.document(store, KEY, rid, "https://central.test")
    assert doc["issuance"]["methodology"] == "gp-recyclables-2026.12"
    assert doc["issuance"]["methodology_text"] == OLD_METHOD.read_text(encoding="utf-8")
    cert = tmp_path / "cert.json"
    cert.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    central = public_bytes(KEY).hex()
    argv = ["verify-evidence", str(done.pack), "--central-key", central, "--certificate", str(cert)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "by methodology gp-recyclables-2026.12\n" in out and "verdict: VERIFIED" in out
    # The same certificate with the new shares' text in it would not: the units differ.
    swapped = {k: v for k, v in doc.items() if k != "signature"}
    swapped["issuance"] = {**doc["issuance"], "methodology_text": old.text.replace(
        "[categories.cardboard]\n", "[categories.cardboard]\nalready_recycled = 0.8\n"
        'already_recycled_source = "x"\n')}  # fmt: skip
    cert.write_text(json.dumps(certificate.sign(swapped, KEY)), encoding="utf-8")
    report, _ = verify_pack(done.pack, central, certificates=[cert])
    assert any(x.startswith("FAIL   certificate") and "certificate says" in x for x in report.lines)

    # The new shares under the old version's name: refused, whatever month it is for.
    relabelled = parse_methodology(
        DEFAULT_METHODOLOGY_PATH.read_text(encoding="utf-8").replace(
            'version = "gp-recyclables-2026.12.1"', 'version = "gp-recyclables-2026.12"'
        )
    )
    assert relabelled.version == old.version and relabelled.text != old.text
    with pytest.raises(ConfigError, match="another text"):
        registry.issue(store, KEY, "V1", "2025-12", relabelled, tmp_path / "registry",
                       actor="county", now_ms=LATER, default_tz=TZ)  # fmt: skip


def test_units_move_and_retire_exactly_once(store: CentralStore, issued: registry.Issued) -> None:
    assert issued.issued is not None and issued.issued.count >= 4
    registry.add_account(store, "acme", "Acme Cement", actor="county", now_ms=LATER)
    with pytest.raises(ConflictError):
        registry.add_account(store, "acme", "again", actor="county", now_ms=LATER)
    first_two = Serials(IID, 1, 2)
    assert registry.transfer(store, first_two, "acme", actor="county", now_ms=LATER) == "village:V1"
    before = blocks(store)
    # Units one does not hold as one account, unknown accounts, the buffer: refused.
    with pytest.raises(ConfigError, match="several accounts"):
        registry.transfer(store, Serials(IID, 1, 3), "acme", actor="x", now_ms=LATER)
    with pytest.raises(ConfigError, match="no registry account"):
        registry.transfer(store, Serials(IID, 3, 3), "nobody", actor="x", now_ms=LATER)
    assert issued.buffer is not None
    with pytest.raises(ConfigError, match="buffer pool"):
        registry.transfer(store, issued.buffer, "acme", actor="x", now_ms=LATER)
    with pytest.raises(ConfigError, match="no such serials"):
        registry.transfer(store, Serials(IID, 1, 10**9), "acme", actor="x", now_ms=LATER)
    assert blocks(store) == before

    rid = registry.retire(store, Serials(IID, 2, 2), beneficiary="Acme Cement",
                          purpose="2026 Q1 offset", actor="acme", now_ms=LATER)  # fmt: skip
    with pytest.raises(ConflictError, match="retired once"):
        registry.retire(store, Serials(IID, 2, 2), beneficiary="Acme", purpose="again",
                        actor="acme", now_ms=LATER)  # fmt: skip
    with pytest.raises(ConflictError, match="retired"):
        registry.transfer(store, Serials(IID, 1, 2), "village:V1", actor="x", now_ms=LATER)
    assert (2, 2, "acme", rid) in blocks(store)
    assert (1, 1, "acme", None) in blocks(store)
    total = issued.buffer.last
    assert_whole(store, total)
    shown = registry.summary(store)
    assert shown["retirements"][0]["serials"] == f"{IID}-2-2"
    assert shown["issuances"][0]["units"] == total


def test_a_reversal_after_issuance_is_covered_from_the_buffer(
    store: CentralStore, issued: registry.Issued, k1: Kiosk, tmp_path: Path
) -> None:
    assert issued.buffer is not None
    paper = next(e for e, _ in k1.ledger.iter_entries() if e.category == "paper")
    k1.ledger.reverse(paper.seq, staff_id="S1", reason="found to be wet cardboard")
    sync(store, k1)
    done = registry.cover_reversals(store, actor="county", now_ms=LATER)
    reduction = default_methodology().reduction_g("paper", "V1", paper.grams or 0)
    need = -(-reduction // 1000)
    assert done and f"K1:{paper.seq}" in done[0] and f"{need} buffer unit" in done[0]
    retired = [b for b in blocks(store) if b[2] == "buffer:V1" and b[3] is not None]
    assert sum(b[1] - b[0] + 1 for b in retired) == need
    assert registry.cover_reversals(store, actor="county", now_ms=LATER) == []  # once


def test_an_entry_outside_the_checkpoint_is_left_out(store: CentralStore, k1: Kiosk) -> None:
    a_month(k1)
    sync(store, k1)
    start, end = 1_767_196_800_000, 1_769_875_200_000  # January 2026 in Shanghai
    with store.read() as conn:
        rows, left_out, _ = registry._eligible(conn, "V1", start, end, size=0)
    assert rows == [] and left_out and left_out[0].startswith("K1:")


def test_serials_parse_and_refuse() -> None:
    s = parse_serials("GP-dong-cun-202611-3-250")
    assert (s.issuance_id, s.first, s.last, s.count) == ("GP-dong-cun-202611", 3, 250, 248)
    assert str(s) == "GP-dong-cun-202611-3-250"
    for bad in ("GP-V1-202611-5-4", "V1-202611-1-2", "GP-V1-2026-1-2", "GP-V1-202611-0-2"):
        with pytest.raises(ConfigError):
            parse_serials(bad)


def test_the_command_line_issues_transfers_and_retires(
    store: CentralStore, k1: Kiosk, tmp_path: Path, central_url: str,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    a_month(k1)
    sync(store, k1)
    home = tmp_path / "home"
    home.mkdir()
    save_private_key(home / "central.key", KEY)
    monkeypatch.setattr(cli_registry, "now_ms", lambda: LATER)
    base = ["central", "registry"]
    db = ["--db", central_url, "--home", str(home)]
    assert main([*base, "issue", *db, "--village", "V1", "--period", PERIOD]) == 0
    out = capsys.readouterr().out
    assert f"issued {IID}" in out and "to village:V1: GP-V1-202601-1-" in out
    assert (home / "registry" / f"{IID}.zip").exists()
    assert main([*base, "issue", *db, "--village", "V1", "--period", PERIOD]) == 2
    assert "issued already" in capsys.readouterr().err
    assert main([*base, "account", "add", *db, "acme", "--name", "Acme Cement"]) == 0
    assert main([*base, "transfer", *db, f"{IID}-1-3", "--to", "acme"]) == 0
    assert "3 unit(s) GP-V1-202601-1-3 moved from village:V1 to acme" in capsys.readouterr().out
    assert main([*base, "retire", *db, f"{IID}-1-2", "--beneficiary", "Acme Cement",
                 "--purpose", "2026 offset"]) == 0  # fmt: skip
    assert "retired for Acme Cement: retirement 1" in capsys.readouterr().out
    assert main([*base, "retire", *db, f"{IID}-2-3", "--beneficiary", "x", "--purpose", "y"]) == 2
    assert "retired once" in capsys.readouterr().err
    assert main([*base, "transfer", *db, "GP-V1-2026-1", "--to", "acme"]) == 2
    assert "not a serial range" in capsys.readouterr().err
    assert main([*base, "reconcile", *db]) == 0
    assert "0 reversal(s)" in capsys.readouterr().out
    assert main([*base, "show", *db, "--account", "acme", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(h["serials"], h["retirement"]) for h in shown["holdings"]] == [
        (f"{IID}-1-2", 1), (f"{IID}-3-3", None)
    ]  # fmt: skip
    assert main([*base, "show", *db]) == 0
    assert "acme" in capsys.readouterr().out


def test_a_retirement_certificate_verifies_against_its_evidence_pack(
    store: CentralStore, issued: registry.Issued, tmp_path: Path
) -> None:
    registry.add_account(store, "acme", "Acme Cement", actor="county", now_ms=LATER)
    registry.transfer(store, Serials(IID, 1, 5), "acme", actor="county", now_ms=LATER)
    rid = registry.retire(store, Serials(IID, 2, 4), beneficiary="Acme Cement 安可水泥",
                          purpose="2026 offset", actor="acme", now_ms=LATER)  # fmt: skip
    doc = registry_certificate.document(store, KEY, rid, "https://central.test")
    cert = tmp_path / "cert.json"
    cert.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    central = public_bytes(KEY).hex()
    report, _ = verify_pack(issued.pack, central, certificates=[cert])
    assert not report.failed, report.lines
    assert any(x.startswith("ok     certificate") and f"{IID}-2-4" in x for x in report.lines)
    pdf = tmp_path / "cert.pdf"
    registry_certificate.write_pdf(doc, pdf)
    assert pdf.read_bytes().startswith(b"%PDF")

    def check(changed: dict[str, object], key: object = KEY) -> str:
        forged = tmp_path / "forged.json"
        forged.write_text(json.dumps(certificate.sign(changed, key)), encoding="utf-8")  # type: ignore[arg-type]
        report, _ = verify_pack(issued.pack, central, certificates=[forged])
        return next(x for x in report.lines if x.startswith("FAIL   certificate"))

    # Altered after signing: the signature no longer holds.
    edited = json.loads(json.dumps(doc))
    edited["retirement"]["units"] = 999
    cert.write_text(json.dumps(edited), encoding="utf-8")
    report, _ = verify_pack(issued.pack, central, certificates=[cert])
    assert any("not signed by the key given" in x for x in report.lines)
    # A dishonest central signing more units than the deposits make: recomputed, caught.
    more = json.loads(json.dumps(doc))
    more["issuance"]["gross_g"] += 50_000
    more["issuance"]["units"] += 45
    assert "certificate says" in check({k: v for k, v in more.items() if k != "signature"})
    beyond = json.loads(json.dumps(doc))
    beyond["retirement"]["last"] = beyond["issuance"]["units"] + 1
    assert "are not units" in check({k: v for k, v in beyond.items() if k != "signature"})
    other_pack = json.loads(json.dumps(doc))
    other_pack["issuance"]["pack_sha256"] = "00" * 32
    assert "another evidence pack" in check(
        {k: v for k, v in other_pack.items() if k != "signature"}
    )


def test_the_public_registry_needs_no_login_and_names_no_household(
    store: CentralStore, issued: registry.Issued
) -> None:
    registry.add_account(store, "acme", "Acme Cement", actor="county", now_ms=LATER)
    registry.transfer(store, Serials(IID, 1, 3), "acme", actor="county", now_ms=LATER)
    rid = registry.retire(store, Serials(IID, 1, 2), beneficiary="Acme Cement",
                          purpose="2026 offset", actor="acme", now_ms=LATER)  # fmt: skip
    client = TestClient(create_app(store, admin_token=ADMIN, enrolment=SETTINGS,
                                   registry_packs=issued.pack.parent))  # fmt: skip
    found = client.get("/registry/json").json()
    assert [i["issuance_id"] for i in found["issuances"]] == [IID]
    assert found["retirements"][0]["serials"] == f"{IID}-1-2"
    page = client.get("/registry")
    assert page.status_code == 200 and f"id=retirement-{rid}" in page.text
    assert "Acme Cement" in page.text and f"/registry/packs/{IID}.zip" in page.text
    for name in ("Li household", "Wang household"):
        assert name not in page.text and name not in json.dumps(found)
    # Each issuance links the checkpoint it was issued against, which central serves
    # by its size for good (the newest moves on).
    size = found["issuances"][0]["checkpoint_size"]
    assert f'href="/log/checkpoint?size={size}"' in page.text
    note = client.get(f"/log/checkpoint?size={size}")
    assert note.status_code == 200 and note.text.split("\n")[1] == str(size)
    with zipfile.ZipFile(issued.pack) as z:
        packed = [n for n in z.namelist() if "checkpoint" in n]
        assert packed and z.read(packed[0]).decode() == note.text
    assert client.get(f"/log/checkpoint?size={size + 1}").status_code == 404
    got = client.get(f"/registry/packs/{IID}.zip")
    assert got.status_code == 200 and got.content == issued.pack.read_bytes()
    for bad in ("..%2Fcentral.db", "GP-V1-202601.txt", "GP-V2-202601.zip"):
        assert client.get(f"/registry/packs/{bad}").status_code == 404


def test_bad_requests_are_refused_and_change_nothing(
    store: CentralStore, issued: registry.Issued, tmp_path: Path
) -> None:
    before = (blocks(store), counts(store))
    for period in ("2026-13", "26-01", "2026-1"):
        with pytest.raises(ConfigError, match="YYYY-MM"):
            registry.issue(store, KEY, "V1", period, default_methodology(), tmp_path,
                           actor="x", now_ms=LATER, default_tz=TZ)  # fmt: skip
    with pytest.raises(CentralError, match="no retirement 99"):
        registry_certificate.document(store, KEY, 99, "https://c.test")
    with pytest.raises(ConfigError, match="beneficiary"):
        registry.retire(store, Serials(IID, 1, 1), beneficiary=" ", purpose="p", actor="x",
                        now_ms=LATER)  # fmt: skip
    with pytest.raises(ConfigError, match="account id"):
        registry.add_account(store, "buffer:V1", "sneaky", actor="x", now_ms=LATER)
    assert (blocks(store), counts(store)) == before
    assert main(["verify-evidence", str(issued.pack), "--central-key", "not-hex"]) == 2
