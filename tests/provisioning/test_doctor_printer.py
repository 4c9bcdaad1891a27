"""`greenpass doctor` on the receipt printer (issue 16): the running kiosk's printer
fault with its fix, and receipts that would print without their statement QR."""

from __future__ import annotations

from pathlib import Path

from edge.kiosk.config import load_kiosk_config
from provisioning.doctor import DoctorOptions, run
from provisioning.doctor_printer import PRINTER_FIX
from simulator.kiosk_home import make_kiosk_home
from tests.kiosk.conftest import start_kiosk, stop_kiosk
from tests.kiosk.test_daemon import deposit, done
from tests.provisioning.test_doctor import OK_CLOCK, _with_port, by_check


def test_paper_out_on_a_running_kiosk_and_no_statement_address(tmp_path: Path) -> None:
    home = make_kiosk_home(tmp_path / "K0001", "K0001", "dongcun", printer=True)
    k = start_kiosk(home, tmp_path / "kiosk.log")
    try:
        k.sim("printer", action="paper_out")
        assert deposit(k, "villager 张家", "cardboard", 2000)["screen"] == "confirmed"
        k.wait_view("printer fault", lambda v: v["status"]["printer"] == "paper_out")
        done(k)
        cfg = load_kiosk_config(_with_port(home, int(k.url.rsplit(":", 1)[1])))
        found = by_check(run(cfg, DoctorOptions(clock=OK_CLOCK, min_free_mb=1)))
    finally:
        stop_kiosk(k)
    assert found["printer"].level == "fail"
    assert "paper_out" in found["printer"].detail and "running kiosk" in found["printer"].detail
    assert found["printer"].fix == PRINTER_FIX["paper_out"]
    st = found["statement"]
    assert st.level == "warn" and "statement_url" in st.detail and "statement_url" in st.fix


def test_a_kiosk_without_a_printer_is_fine(tmp_path: Path) -> None:
    home = make_kiosk_home(tmp_path / "K0001", "K0001", "dongcun")
    found = by_check(
        run(load_kiosk_config(home.config), DoctorOptions(clock=OK_CLOCK, min_free_mb=1))
    )
    assert found["printer"].level == "ok" and "no receipt printer" in found["printer"].detail
    assert found["statement"].level == "ok"


def test_with_an_address_and_a_key_receipts_carry_the_qr(tmp_path: Path) -> None:
    home = make_kiosk_home(
        tmp_path / "K0001",
        "K0001",
        "dongcun",
        printer=True,
        extra_kiosk_keys='statement_url = "https://central.county.example"',
    )
    found = by_check(
        run(load_kiosk_config(home.config), DoctorOptions(clock=OK_CLOCK, min_free_mb=1))
    )
    assert found["statement"].level == "ok"
    assert "https://central.county.example" in found["statement"].detail
