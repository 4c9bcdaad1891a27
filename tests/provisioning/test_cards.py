"""`greenpass cards`: sheets printed from a real ledger scan back, through the kiosk's own
decoder, to the signed payloads the kiosk accepts; the Chinese names are real text in an
embedded font; bad input is one clear line and writes no file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest

from edge.kiosk.cards import CardKind, make_card, read_card
from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass.cli import main
from greenpass.errors import LedgerError
from greenpass.record.rules import default_rules
from hardware.scanner.decoder_factory import open_decoder
from provisioning.cards import CARD_H, CARD_W, PER_PAGE, card_origin, check_issuer
from sync.keys import Ed25519PrivateKey, generate_key, load_private_key, public_bytes
from sync.keys import save_private_key as save_key
from tests.conftest import PIN

VILLAGE = "dongcun"
KEY_ID = "dongcun-office-1"
HOUSEHOLDS = (
    "张家",
    "李家",
    "王家",
    "赵家",
    "陈家",
    "刘家",
    "杨家",
    "黄家",
    "周家",
    "吴家",
    "徐家",
    "孙家",
)
DPI = 150


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey]:
    path = tmp_path / "office.key"
    k = generate_key()
    save_key(path, k)
    return path, k


@pytest.fixture
def kiosk_db(tmp_path: Path) -> Path:
    """A ledger with 12 active households, one revoked, and two staff."""
    db = tmp_path / "kiosk.db"
    with Ledger.create(
        db, device_id="K1", village=VILLAGE, rules=default_rules(), clock=FixedClock()
    ) as ledger:
        ledger.add_staff("wang", name="王丽 Wang Li", role="admin", pin=PIN)
        ledger.add_staff("zhou", name="周强", role="staff", pin=PIN, by_staff_id="wang")
        for name in HOUSEHOLDS[:6]:
            ledger.enrol(name, staff_id="wang")
        gone = ledger.enrol("马家", staff_id="wang").passbook_id
        assert gone == "K1-00007"
        ledger.set_villager_status(gone, "revoked", staff_id="wang", reason="lost card")
        for name in HOUSEHOLDS[6:]:
            ledger.enrol(name, staff_id="wang")
    return db


def cards_cmd(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["cards", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def common(key_path: Path, out: Path) -> list[str | Path]:
    return ["--village", VILLAGE, "--key", key_path, "--key-id", KEY_ID, "--out", out]


def scan_sheet(pdf: Path, n_cards: int) -> list[list[str]]:
    """Each card's region of the rendered sheet, decoded on its own by the kiosk's decoder."""
    decoder = open_decoder("zxing")
    doc = pdfium.PdfDocument(pdf)
    assert len(doc) == -(-n_cards // PER_PAGE)
    px = DPI / 25.4
    found = []
    for i in range(n_cards):
        page = doc[i // PER_PAGE]
        grey = np.asarray(page.render(scale=DPI / 72).to_pil().convert("L"), dtype=np.uint8)
        x, y = card_origin(i)
        card = grey[
            round(y * px) : round((y + CARD_H) * px), round(x * px) : round((x + CARD_W) * px)
        ]
        found.append(decoder.decode(np.ascontiguousarray(card)))
    decoder.close()
    return found


def pdf_text(pdf: Path) -> str:
    doc = pdfium.PdfDocument(pdf)
    return "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))


def expected(kind: CardKind, ids: list[str], key: Ed25519PrivateKey) -> list[list[str]]:
    # Ed25519 signatures are deterministic: signing again gives the very same text.
    return [[make_card(kind, VILLAGE, i, key_id=KEY_ID, key=key)] for i in ids]


def test_passbook_sheet_scans_back_to_signed_cards(
    tmp_path: Path,
    kiosk_db: Path,
    key: tuple[Path, Ed25519PrivateKey],
    capsys: pytest.CaptureFixture[str],
) -> None:
    key_path, k = key
    out = tmp_path / "sheet.pdf"
    code, stdout, err = cards_cmd(
        capsys, *common(key_path, out), "--db", kiosk_db, "--village-name", "东村"
    )
    assert code == 0, err
    assert "wrote 12 passbook cards (K1-00001 … K1-00013) on 2 A4 page(s)" in stdout
    assert "does not trust key id" in err  # central has not listed the office key yet
    assert os.stat(out).st_mode & 0o777 == 0o600
    ids = [f"K1-{n:05d}" for n in range(1, 14) if n != 7]  # the revoked passbook is left out
    scanned = scan_sheet(out, 12)
    assert scanned == expected("passbook", ids, k)
    trusted = {KEY_ID: public_bytes(k)}
    cards = [read_card(s[0], trusted, VILLAGE, kind="passbook") for s in scanned]
    assert [c.holder_id for c in cards] == ids
    text = pdf_text(out)
    for name in HOUSEHOLDS:
        assert name in text
    assert "马家" not in text
    assert "绿色存折 Green Passbook" in text and "东村" in text and "K1-00013" in text
    data = out.read_bytes()
    assert b"/FontFile" in data and b"NotoSansCJKSC" in data  # embedded, not substituted


def test_chinese_names_are_drawn_not_boxes(
    tmp_path: Path,
    kiosk_db: Path,
    key: tuple[Path, Ed25519PrivateKey],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "sheet.pdf"
    assert cards_cmd(capsys, *common(key[0], out), "--db", kiosk_db, "--count", "2")[0] == 0
    page = pdfium.PdfDocument(out)[0]
    grey = np.asarray(page.render(scale=DPI / 72).to_pil().convert("L"))
    px = DPI / 25.4

    def name_area(slot: int) -> np.ndarray:  # the household name, left of its baseline
        x, y = card_origin(slot)
        return grey[
            round((y + 13) * px) : round((y + 20.5) * px),
            round((x + 40) * px) : round((x + 60) * px),
        ]

    zhang, li = name_area(0), name_area(1)
    assert (zhang < 128).sum() > 200 and (li < 128).sum() > 200  # ink, not blank
    assert np.abs(zhang.astype(int) - li.astype(int)).sum() > 50_000  # 张家 ≠ 李家: no tofu


def test_from_and_count_pick_a_slice(
    tmp_path: Path,
    kiosk_db: Path,
    key: tuple[Path, Ed25519PrivateKey],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "two.pdf"
    code, _, err = cards_cmd(
        capsys, *common(key[0], out), "--db", kiosk_db, "--from", "11", "--count", "2"
    )
    assert code == 0, err
    assert scan_sheet(out, 2) == expected("passbook", ["K1-00012", "K1-00013"], key[1])


def test_staff_cards_from_the_ledger(
    tmp_path: Path,
    kiosk_db: Path,
    key: tuple[Path, Ed25519PrivateKey],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "staff.pdf"
    code, _, err = cards_cmd(capsys, *common(key[0], out), "--db", kiosk_db, "--staff")
    assert code == 0, err
    scanned = scan_sheet(out, 2)
    assert scanned == expected("staff", ["wang", "zhou"], key[1])
    trusted = {KEY_ID: public_bytes(key[1])}
    assert read_card(scanned[1][0], trusted, VILLAGE, kind="staff").holder_id == "zhou"
    with pytest.raises(LedgerError):  # a staff card is no passbook
        read_card(scanned[1][0], trusted, VILLAGE, kind="passbook")
    text = pdf_text(out)
    assert "工作人员 STAFF" in text and "王丽 Wang Li" in text and "周强" in text


def test_cards_from_a_csv_saved_by_a_chinese_spreadsheet(
    tmp_path: Path, key: tuple[Path, Ed25519PrivateKey], capsys: pytest.CaptureFixture[str]
) -> None:
    people = tmp_path / "people.csv"
    people.write_bytes("staff_id,name,phone\nli,李梅,123\n\nfan,范文,\n".encode("gb18030"))
    out = tmp_path / "csv.pdf"
    code, _, err = cards_cmd(capsys, *common(key[0], out), "--csv", people, "--staff")
    assert code == 0, err
    assert err == ""  # no ledger, no trust warning
    assert scan_sheet(out, 2) == expected("staff", ["li", "fan"], key[1])
    assert "李梅" in pdf_text(out)


def test_keygen_then_cards(
    tmp_path: Path, kiosk_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_path = tmp_path / "new.key"
    code, stdout, err = cards_cmd(
        capsys, "keygen", "--out", key_path, "--village", VILLAGE, "--key-id", KEY_ID
    )
    assert code == 0, err
    assert os.stat(key_path).st_mode & 0o777 == 0o600
    pub = public_bytes(load_private_key(key_path)).hex()
    assert (
        f"greenpass central issuer-key --village {VILLAGE} --key-id {KEY_ID} --public-key {pub}"
    ) in stdout
    code, _, err = cards_cmd(
        capsys, "keygen", "--out", key_path, "--village", VILLAGE, "--key-id", KEY_ID
    )
    assert code == 2 and "already exists" in err
    out = tmp_path / "sheet.pdf"
    assert cards_cmd(capsys, *common(key_path, out), "--db", kiosk_db, "--count", "1")[0] == 0


def test_a_key_id_the_kiosk_knows_for_another_key_is_refused(kiosk_db: Path) -> None:
    k, other = generate_key(), generate_key()
    with Ledger.open(kiosk_db) as ledger:
        assert check_issuer(ledger, "K1", k) is None  # the kiosk's own id: trusts itself
        ledger.store.conn.execute(
            "INSERT INTO issuer_keys(key_id, public_key) VALUES (?, ?)",
            (KEY_ID, public_bytes(other)),
        )
        assert check_issuer(ledger, KEY_ID, other) is None
        with pytest.raises(LedgerError, match="refused as forged"):
            check_issuer(ledger, KEY_ID, k)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("open key", "readable by others"),
        ("other village", "is the ledger of village 'dongcun', not 'xicun'"),
        ("no villagers", "no active villagers in"),
        ("count too far", "--from 5 --count 9 goes past the end: there are 12 active villagers"),
        ("from too far", "--from 13 is past the end"),
        ("csv columns", "must name the columns passbook_id,household_name"),
        ("csv bad id", "people.csv:3: passbook id 'K 2' must be"),
        ("no source", "give --db LEDGER or --csv FILE"),
        ("no key", "give --key, --key-id"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(
    tmp_path: Path,
    kiosk_db: Path,
    key: tuple[Path, Ed25519PrivateKey],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    message: str,
) -> None:
    monkeypatch.delenv("GREENPASS_DB", raising=False)
    out = tmp_path / "sheet.pdf"
    args: list[str | Path] = [*common(key[0], out), "--db", kiosk_db]
    if case == "open key":
        key[0].chmod(0o644)
    elif case == "other village":
        args[1] = "xicun"
    elif case == "no villagers":
        empty = tmp_path / "empty.db"
        Ledger.create(empty, device_id="K2", village=VILLAGE, rules=default_rules()).close()
        args[-1] = empty
    elif case == "count too far":
        args += ["--from", "5", "--count", "9"]
    elif case == "from too far":
        args += ["--from", "13"]
    elif case.startswith("csv"):
        people = tmp_path / "people.csv"
        rows = (
            "id,name\n"
            if case == "csv columns"
            else "passbook_id,household_name\nK1,张家\nK 2,李家\n"
        )
        people.write_text(rows, encoding="utf-8")
        args = [*common(key[0], out), "--csv", people]
    elif case == "no source":
        args = common(key[0], out)
    elif case == "no key":
        args = ["--village", VILLAGE, "--db", kiosk_db, "--out", out]
    code, _, err = cards_cmd(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("greenpass: error: "), err
    assert message in lines[0]
    assert (
        not out.exists() and not list(tmp_path.glob("*.pdf*")) and not list(tmp_path.glob(".*tmp"))
    )


def test_statement_slips_beside_new_cards(
    tmp_path: Path,
    kiosk_db: Path,
    key: tuple[Path, Ed25519PrivateKey],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With central's public address, each passbook card has a statement slip beside it:
    a link for a phone signed with the same issuer key, labelled so that it is not taken
    for the passbook."""
    from greenpass import statement_link  # noqa: PLC0415

    key_path, k = key
    out = tmp_path / "sheet.pdf"
    base = "https://central.county.example"
    code, stdout, err = cards_cmd(
        capsys, *common(key_path, out), "--db", kiosk_db, "--count", "3",
        "--statement-url", base + "/",
    )  # fmt: skip
    assert code == 0, err
    assert "wrote 3 passbook cards (K1-00001 … K1-00003) on 1 A4 page(s)" in stdout
    decoder = open_decoder("zxing")
    doc = pdfium.PdfDocument(out)
    assert len(doc) == 1
    grey = np.asarray(doc[0].render(scale=DPI / 72).to_pil().convert("L"), dtype=np.uint8)
    px = DPI / 25.4
    trusted = {KEY_ID: public_bytes(k)}
    for row, passbook in enumerate(["K1-00001", "K1-00002", "K1-00003"]):
        found = []
        for col in (0, 1):  # the card, then its slip
            x, y = card_origin(row * 2 + col)
            region = grey[
                round(y * px) : round((y + CARD_H) * px), round(x * px) : round((x + CARD_W) * px)
            ]
            found.append(decoder.decode(np.ascontiguousarray(region)))
        card, slip = found
        assert read_card(card[0], trusted, VILLAGE, kind="passbook").holder_id == passbook
        assert len(slip) == 1 and slip[0].startswith(f"{base}/s/i{KEY_ID}~")
        link = statement_link.parse(slip[0].removeprefix(f"{base}/s/"))
        assert link.verifies(k.public_key())
        assert (link.kind, link.signer, link.passbook_id) == ("i", KEY_ID, passbook)
    decoder.close()
    text = pdf_text(out)
    assert text.count("手机查积分 statement on your phone") == 3
    assert "这不是存折，回收机不认" in text and "valid until" in text
