"""Receipts at the kiosk (issue 16): printed after the commit, never before, off the
screen's path; a printer fault loses nothing and shows; staff reprint.

A real `greenpass kiosk` process with the simulated printer: the production ESC/POS
driver writes to a pseudo-terminal, and the simulator draws each receipt as a PNG.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from greenpass import statement_link
from simulator.kiosk_home import STAFF_PIN, make_kiosk_home
from sync.keys import load_private_key
from tests.kiosk.conftest import RunningKiosk, start_kiosk, stop_kiosk
from tests.kiosk.test_daemon import deposit, done, ledger_of, screen_is

BASE = "https://central.county.example"


@pytest.fixture(scope="module")
def pk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningKiosk]:
    """A kiosk with a receipt printer and central's public address."""
    folder = tmp_path_factory.mktemp("printing")
    home = make_kiosk_home(
        folder / "K0001",
        "K0001",
        "dongcun",
        printer=True,
        extra_kiosk_keys=f'result_s = 1.5\nstatement_url = "{BASE}"',
    )
    k = start_kiosk(home, folder / "kiosk.log")
    try:
        yield k
    finally:
        stop_kiosk(k)


def receipts(k: RunningKiosk) -> int:
    return int(k.http.get("/sim/state").json()["printer"]["receipts"])


def wait_receipts(k: RunningKiosk, n: int, timeout: float = 10.0) -> None:
    """Wait for the simulated printer to have drawn `n` receipts. The driver may report a
    receipt printed before the paper is out (a printer too busy to answer its status
    query in time is trusted, as a real one must be), so the PNG can come a moment later."""
    deadline = time.monotonic() + timeout
    while receipts(k) < n:
        assert time.monotonic() < deadline, f"{receipts(k)} receipts, waited for {n}"
        time.sleep(0.05)
    assert receipts(k) == n


def receipt_png(k: RunningKiosk, n: int, tmp_path: Path) -> Image.Image:
    r = k.http.get(f"/sim/receipt/{n}.png")
    assert r.status_code == 200
    path = tmp_path / f"receipt-{n}.png"
    path.write_bytes(r.content)
    return Image.open(path)


def receipt_is(seq: int, state: str):  # type: ignore[no-untyped-def]
    return lambda v: (v["receipt"] or {}).get("seq") == seq and v["receipt"]["state"] == state


def test_a_deposit_prints_a_receipt_whose_link_verifies(pk: RunningKiosk, tmp_path: Path) -> None:
    before = receipts(pk)
    v = deposit(pk, "villager 张家", "cardboard", 3250)
    assert v["screen"] == "confirmed"
    seq = v["result"]["seq"]
    pk.wait_view("receipt printed", receipt_is(seq, "printed"))
    wait_receipts(pk, before + 1)
    assert pk.view()["status"]["printer"] == "ok"
    img = receipt_png(pk, before + 1, tmp_path)
    # The QR on the paper is a statement link signed by this kiosk for this passbook.
    found = zxingcpp.read_barcodes(img.convert("L"))
    urls = [b.text for b in found if b.text.startswith(BASE)]
    assert len(urls) == 1, [b.text for b in found]
    link = statement_link.parse(urls[0].removeprefix(f"{BASE}/s/"))
    key = load_private_key(pk.home.folder / "device.key").public_key()
    assert link.verifies(key)
    assert (link.kind, link.signer, link.passbook_id) == ("d", "K0001", "K0001-0001")
    with ledger_of(pk) as ledger:
        assert ledger.entry(seq).passbook_id == "K0001-0001"
    done(pk)


def test_a_refused_deposit_prints_nothing(pk: RunningKiosk) -> None:
    printed = receipts(pk) + 1
    assert deposit(pk, "villager 陈家", "textiles", 800)["screen"] == "confirmed"
    pk.wait_view("receipt printed", lambda v: (v["receipt"] or {}).get("state") == "printed")
    wait_receipts(pk, printed)
    with ledger_of(pk) as ledger:
        head = ledger.head()[0]
    pk.post("/api/category", {"category": "textiles"})
    pk.wait_view("empty scale seen", lambda v: v["hint"] == "place_bag")
    pk.sim("scale", action="place", grams=900)
    assert pk.wait_view("refused", screen_is("refused"))["refusal"] == "cooldown"
    pk.sim("scale", action="remove")
    done(pk)
    with ledger_of(pk) as ledger:
        assert ledger.head()[0] == head  # the ledger wrote nothing …
    assert receipts(pk) == printed  # … and nothing was printed


def test_a_slow_printer_does_not_hold_the_confirmation(pk: RunningKiosk) -> None:
    printed = receipts(pk)
    pk.sim("printer", action="hold")  # the printer takes no bytes until released
    try:
        v = deposit(pk, "villager 李家", "paper", 2000)
        assert v["screen"] == "confirmed"
        assert v["receipt"]["seq"] == v["result"]["seq"]
        assert receipts(pk) == printed  # confirmed while the receipt is still held
    finally:
        pk.sim("printer", action="release")
    pk.wait_view("receipt printed", receipt_is(v["result"]["seq"], "printed"))
    wait_receipts(pk, printed + 1)
    done(pk)


def test_a_printer_that_vanishes_mid_receipt_loses_no_entry(pk: RunningKiosk) -> None:
    printed = receipts(pk)
    pk.sim("printer", action="vanish")
    v = deposit(pk, "villager 王家", "cardboard", 1500)
    assert v["screen"] == "confirmed"  # confirmed as always: the entry is kept
    seq = v["result"]["seq"]
    v = pk.wait_view("receipt failed", receipt_is(seq, "failed"))
    assert v["receipt"]["code"] == "offline"
    assert v["status"]["printer"] == "offline"
    with ledger_of(pk) as ledger:
        e = ledger.entry(seq)
        assert (e.kind, e.passbook_id, e.grams) == ("deposit", "K0001-0003", 1500)
        assert ledger.balance("K0001-0003") == e.points
    assert receipts(pk) == printed
    done(pk)

    # The cable back in, staff reprint it from the staff menu.
    pk.sim("printer", action="replug")
    pk.scan("staff 王丽")
    pk.wait_view("PIN pad", screen_is("staff_pin"))
    assert pk.post("/api/staff/pin", {"pin": STAFF_PIN}).status_code == 200
    pk.post("/api/staff/task", {"task": "reprint"})
    r = pk.post("/api/staff/reprint")
    assert r.status_code == 409 and r.json()["code"] == "no_villager"
    pk.scan("villager 王家")
    pk.wait_view("villager chosen", lambda v: (v["staff"] or {}).get("villager") is not None)
    r = pk.post("/api/staff/reprint")
    assert r.status_code == 200, r.text
    assert r.json()["seq"] == seq
    wait_receipts(pk, printed + 1)
    assert pk.view()["status"]["printer"] == "ok"
    pk.post("/api/staff/signout")
    pk.wait_view("idle", screen_is("idle"))


def test_paper_out_is_shown_and_a_reprint_says_why_not(pk: RunningKiosk) -> None:
    pk.sim("printer", action="paper_out")
    try:
        v = deposit(pk, "villager 赵家", "cardboard", 1200)
        assert v["screen"] == "confirmed"
        v = pk.wait_view("receipt failed", receipt_is(v["result"]["seq"], "failed"))
        assert v["receipt"]["code"] == "paper_out"
        assert v["status"]["printer"] == "paper_out"
        done(pk)
        pk.scan("staff 王丽")
        pk.wait_view("PIN pad", screen_is("staff_pin"))
        assert pk.post("/api/staff/pin", {"pin": STAFF_PIN}).status_code == 200
        pk.post("/api/staff/task", {"task": "reprint"})
        pk.scan("villager 赵家")
        pk.wait_view("villager chosen", lambda v: (v["staff"] or {}).get("villager") is not None)
        r = pk.post("/api/staff/reprint")
        assert r.status_code == 409
        assert (r.json()["code"], r.json()["printer"]) == ("receipt_not_printed", "paper_out")
    finally:
        pk.sim("printer", action="load_paper")
    r = pk.post("/api/staff/reprint")
    assert r.status_code == 200, r.text
    pk.post("/api/staff/signout")
    pk.wait_view("idle", screen_is("idle"))


def test_a_redemption_prints_a_receipt(pk: RunningKiosk) -> None:
    v = deposit(pk, "villager 刘家", "cardboard", 3000)  # 30 points: enough for soap
    pk.wait_view("receipt printed", receipt_is(v["result"]["seq"], "printed"))
    done(pk)
    printed = receipts(pk)
    pk.scan("staff 王丽")
    pk.wait_view("PIN pad", screen_is("staff_pin"))
    assert pk.post("/api/staff/pin", {"pin": STAFF_PIN}).status_code == 200
    pk.post("/api/staff/task", {"task": "redeem"})
    pk.scan("villager 刘家")
    pk.wait_view("villager chosen", lambda v: (v["staff"] or {}).get("villager") is not None)
    r = pk.post("/api/staff/redeem", {"cart": [["soap", 1]]})
    assert r.status_code == 200, r.text
    pk.wait_view("receipt printed", receipt_is(r.json()["seqs"][0], "printed"))
    wait_receipts(pk, printed + 1)
    pk.post("/api/staff/signout")
    pk.wait_view("idle", screen_is("idle"))


def test_without_a_statement_address_the_receipt_has_no_qr(tmp_path: Path) -> None:
    home = make_kiosk_home(tmp_path / "K0002", "K0002", "dongcun", printer=True)
    k = start_kiosk(home, tmp_path / "kiosk.log")
    try:
        v = deposit(k, "villager 张家", "cardboard", 2000)
        k.wait_view("receipt printed", receipt_is(v["result"]["seq"], "printed"))
        wait_receipts(k, 1)  # the PNG may come a moment after "printed" (wait_receipts)
        img = receipt_png(k, 1, tmp_path)
        assert not zxingcpp.read_barcodes(img.convert("L"))
    finally:
        stop_kiosk(k)
