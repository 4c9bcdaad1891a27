"""Statements from the command line (issue 16), on SQLite and PostgreSQL:
`central statement-link` prints a link that opens the passbook's page, and
`central statements` writes one A5 page per household not revoked, whose QR code
decodes to a central-signed link that opens that household's statement, with the
month's opening and closing balances, and no name for an erased household."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest

from central import passbooks, personal, reports, statement_access, statements_pdf
from central.ingest import ingest
from central.store import CentralStore
from greenpass import statement_link as sl
from greenpass.cli import main
from hardware.scanner.decoder_factory import open_decoder
from sync.keys import generate_key, public_bytes, save_private_key
from tests.central.conftest import NOW, SQLITE_ONLY, Kiosk, populate

CENTRAL = generate_key()
URL = "https://central.example"
DPI = 200
FEB = 31 * 86_400_000  # from the kiosk's first entries (1 January) into February


def sync(store: CentralStore, k: Kiosk) -> None:
    done = ingest(store, k.topic, k.batch(k.ledger.outbox.acked_seq() + 1), NOW)
    assert done.ack is not None and done.ack.status == "ok", done.ack
    k.ledger.outbox.mark_acked(done.ack.acked_seq, NOW)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    save_private_key(tmp_path / "home" / "central.key", CENTRAL)
    return tmp_path / "home"


def gp(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["central", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_statement_link_opens_the_page(
    store: CentralStore, central_url: str, k1: Kiosk, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = populate(k1)
    sync(store, k1)
    common = ("--db", central_url, "--home", home, "--public-url", URL + "/")
    code, out, err = gp(capsys, "statement-link", "--passbook", ids["li"], "--days", "7", *common)
    assert code == 0, err
    url = out.strip()
    assert url.startswith(f"{URL}/s/c~{ids['li']}~")
    link = sl.parse(url.rsplit("/s/", 1)[1])
    assert link.expires_day == sl.day_of(now_ms()) + 7
    found = statement_access.check(store, link.token, public_bytes(CENTRAL), now_ms())
    assert isinstance(found, statement_access.Granted) and found.passbook_id == ids["li"]
    # No link for a passbook whose page would open nothing.
    for passbook, why in ((ids["zhao"], "revoked"), ("K1-99999", "unknown")):
        code, out, err = gp(capsys, "statement-link", "--passbook", passbook, *common)
        assert code == 2 and why in err and not out
    code, _, err = gp(capsys, "statement-link", "--passbook", "../x", *common)
    assert code == 2 and "not a passbook id" in err
    code, _, err = gp(capsys, "statement-link", "--passbook", ids["li"], "--days", "0", *common)
    assert code == 2 and "--days" in err


def scan(pdf: Path) -> list[str]:
    """Each page's QR code, decoded by the kiosk's decoder from the top right corner."""
    decoder = open_decoder("zxing")
    found = []
    px = DPI / 25.4
    for page in pdfium.PdfDocument(pdf):
        grey = np.asarray(page.render(scale=DPI / 72).to_pil().convert("L"), dtype=np.uint8)
        left = statements_pdf.PAGE_W - statements_pdf.MARGIN - statements_pdf.QR_SIZE - 6
        corner = grey[round(22 * px) : round(68 * px), round(left * px) :]
        codes = decoder.decode(np.ascontiguousarray(corner))
        assert len(codes) == 1, codes
        found.append(codes[0])
    decoder.close()
    return found


def page_texts(pdf: Path) -> list[str]:
    doc = pdfium.PdfDocument(pdf)
    return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]


@SQLITE_ONLY  # the PDF; test_statement_page.py runs its queries on both
def test_monthly_statements(
    store: CentralStore,
    central_url: str,
    k1: Kiosk,
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = populate(k1)  # li, wang, zhao (revoked at the kiosk) on 1 January
    sun = k1.ledger.enrol("Sun household", staff_id="S1").passbook_id
    assert sun
    k1.ledger.deposit(sun, "glass", 4000)
    sync(store, k1)
    jan_li = reports.statement(store, ids["li"])[-1].balance
    k1.clock.advance(FEB)
    k1.ledger.deposit(ids["li"], "paper", 1000)
    sync(store, k1)
    feb_li = reports.statement(store, ids["li"])[-1].balance
    assert feb_li > jan_li
    new_wang = passbooks.replace(store, ids["wang"], actor="test", now_ms=NOW)
    personal.erase(store, sun, actor="test", now_ms=NOW)

    out = tmp_path / "jan.pdf"
    common = ("--db", central_url, "--home", home, "--public-url", URL)
    code, stdout, err = gp(
        capsys, "statements", "--village", "V1", "--month", "2026-01", "--out", out, *common
    )
    assert code == 0, err
    assert "3 statement(s) of V1 for 2026-01" in stdout and "left out 1 revoked" in stdout
    assert os.stat(out).st_mode & 0o777 == 0o600  # it holds households' names
    # One page per household: Li, Sun (erased), Wang's new card; not Zhao's revoked one.
    expected = sorted([ids["li"], sun, new_wang])
    urls = scan(out)
    assert len(urls) == len(expected)
    for url, passbook in zip(urls, expected, strict=True):
        assert url.startswith(f"{URL}/s/c~{passbook}~")
        found = statement_access.check(
            store, url.rsplit("/s/", 1)[1], public_bytes(CENTRAL), now_ms()
        )
        assert isinstance(found, statement_access.Granted) and found.passbook_id == passbook
    texts = page_texts(out)
    li_page = texts[expected.index(ids["li"])]
    assert "Li household" in li_page and ids["li"] in li_page
    assert "上月结余 Opening" in li_page and f"{jan_li} 分" in li_page
    assert "Wang household" in texts[expected.index(new_wang)]  # the new card, named
    assert "Sun household" not in "".join(texts)  # erased
    assert "Zhao" not in "".join(texts)
    assert "4 公斤" in texts[expected.index(sun)]  # the erased household's glass, kept

    # February: January's closing is the opening, the February deposit is the month's.
    feb = tmp_path / "feb.pdf"
    code, stdout, err = gp(
        capsys, "statements", "--village", "V1", "--month", "2026-02", "--out", feb, *common
    )
    assert code == 0, err
    li_feb = page_texts(feb)[expected.index(ids["li"])]
    assert f"{jan_li} 分" in li_feb and f"{feb_li} 分" in li_feb and "1 公斤" in li_feb
    assert "本月没有记录" in page_texts(feb)[expected.index(sun)]


def test_a_bad_month_or_village_is_refused(
    store: CentralStore, central_url: str, home: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    common = ("--db", central_url, "--home", home, "--public-url", URL, "--out", tmp_path / "x")
    code, _, err = gp(capsys, "statements", "--village", "V1", "--month", "2026-13", *common)
    assert code == 2 and "YYYY-MM" in err
    code, _, err = gp(capsys, "statements", "--village", "V9", "--month", "2026-01", *common)
    assert code == 2 and "no village 'V9'" in err
    assert not (tmp_path / "x").exists()
    code, _, err = gp(
        capsys, "statements", "--village", "V1", "--month", "2026-01", "--db", central_url,
        "--home", tmp_path / "nowhere", "--public-url", URL, "--out", tmp_path / "x",
    )  # fmt: skip
    assert code == 2 and "no central key" in err
