"""The receipt printer: a sample deposit's ESC/POS bytes (code page, QR, cut), Chinese on
paper by both paths (GB18030 text, an image of the text), and the driver against the
simulated printer on a pty: paper out, cover open, unplugged, gone mid-receipt."""

from __future__ import annotations

import select
import termios
import time
from collections.abc import Iterator

import pytest
import zxingcpp
from PIL import Image

from edge.kiosk.receipt import Receipt, ReceiptLine, blocks, statement_url
from greenpass import statement_link
from hardware.printer import (
    EscposPrinter,
    Paper,
    PaperOut,
    PrinterJammed,
    PrinterOffline,
    PrinterStatus,
    render,
)
from hardware.printer.escpos_driver import judge, open_printer
from simulator.printer import EscPosModel, PrinterState, SimulatedPrinter
from sync.keys import generate_key

KEY = generate_key()
BASE = "https://central.county.example"
NOW_MS = 1_772_000_000_000  # 2026-02-25
SAMPLE = Receipt(
    kind="deposit",
    village="dongcun",
    device_id="K0001",
    passbook_id="K0001-00042",
    seqs=(17,),
    entry_id="0190c6d2-3c4e-7a1b-8c9d-0e1f2a3b4c5d",
    wall_ms=NOW_MS,
    clock_ok=True,
    timezone="Asia/Shanghai",
    lines=(ReceiptLine("纸板箱", "cardboard", 3250, None, 32),),
    points=32,
    co2e_g=11_213,
    balance=412,
)


def sample_url() -> str:
    url = statement_url(BASE, KEY, "K0001", "K0001-00042", now_ms=NOW_MS, days=366)
    assert url is not None
    return url


def test_the_sample_deposits_bytes() -> None:
    url = sample_url()
    job = render(blocks(SAMPLE, url), Paper(58), "gb18030")
    assert job.startswith(b"\x1b@\x1c&")  # initialise, then Chinese character mode
    assert "纸板箱 cardboard".encode("gb18030") in job
    assert "余额 Balance".encode("gb18030") in job and b"412" in job
    assert "减排 CO2e".encode("gb18030") in job and b" 11.2 kg" in job
    assert b"K0001-17" in job and SAMPLE.entry_id.replace("-", "").encode() in job
    # The QR code is the printer's own: GS ( k store (fn 80) with the link, then print (81).
    data = url.encode()
    store = b"\x1d(k" + (len(data) + 3).to_bytes(2, "little") + b"1P0" + data
    assert store in job
    assert job.index(store) < job.index(b"\x1d(k\x03\x001Q0")
    assert job.endswith(b"\x1bd\x06\x1dV\x01")  # feed six lines, then the partial cut
    assert "时间未校准".encode("gb18030") not in job


def test_a_receipt_marks_an_unsynchronised_clock() -> None:
    from dataclasses import replace  # noqa: PLC0415

    job = render(blocks(replace(SAMPLE, clock_ok=False), None), Paper(58))
    assert "时间未校准 clock not set".encode("gb18030") in job
    assert b"\x1d(k" not in job  # no statement address: no QR


def test_the_link_on_a_receipt_verifies_and_names_the_passbook() -> None:
    url = sample_url()
    assert url.startswith(f"{BASE}/s/d")
    link = statement_link.parse(url.removeprefix(f"{BASE}/s/"))
    assert link.verifies(KEY.public_key())
    assert (link.kind, link.signer, link.passbook_id) == ("d", "K0001", "K0001-00042")
    assert link.expires_day == statement_link.day_of(NOW_MS) + 366
    # A kiosk whose clock says 1970 still prints a link that works.
    early = statement_url(BASE, KEY, "K0001", "K0001-00042", now_ms=0, days=366)
    assert early is not None and not statement_link.parse(early.split("/s/")[1]).expired(NOW_MS)
    assert statement_url("", KEY, "K0001", "P", now_ms=NOW_MS, days=1) is None
    assert statement_url(BASE, None, "K0001", "P", now_ms=NOW_MS, days=1) is None


def model_png(job: bytes, width: int = 384) -> tuple[EscPosModel, list[Image.Image]]:
    out: list[Image.Image] = []
    m = EscPosModel(width, PrinterState(), out.append, lambda b: None)
    m.feed(job)
    return m, out


def dark_in(img: Image.Image, box: tuple[int, int, int, int]) -> int:
    return sum(1 for p in img.crop(box).convert("L").tobytes() if p < 128)


@pytest.mark.parametrize("width", [58, 80])
def test_chinese_by_the_gb18030_code_page(width: int) -> None:
    url = sample_url()
    m, pages = model_png(render(blocks(SAMPLE, url), Paper(width), "gb18030"), Paper(width).dots)
    assert len(pages) == 1  # one cut, one receipt
    assert "绿色存折 Green Passbook" in m.lines  # the printer read hanzi, not mojibake
    assert any(line.startswith("纸板箱 cardboard") and "3.25 kg" in line for line in m.lines)
    assert m.qr_codes == [url]
    img = pages[0]
    assert img.width == Paper(width).dots
    assert dark_in(img, (0, 0, img.width, 30)) > 200  # the title line has glyphs
    found = [b.text for b in zxingcpp.read_barcodes(img)]
    assert found == [url]


def test_gb18030_without_chinese_mode_would_be_mojibake() -> None:
    """Why FS & is sent: a printer left in its code page reads the bytes as cp437."""
    m, _ = model_png(b"\x1b@" + "绿色存折\n".encode("gb18030") + b"\x1dV\x01")
    assert m.lines and "绿色存折" not in m.lines[0]


def test_chinese_as_an_image_of_the_text() -> None:
    url = sample_url()
    job = render(blocks(SAMPLE, url), Paper(58), "image")
    assert b"\x1dv0" in job  # raster image
    assert b"\x1c&" not in job and "纸板".encode("gb18030") not in job  # no text at all
    assert job.endswith(b"\x1dV\x01")
    m, pages = model_png(job)
    assert m.lines == [] and len(pages) == 1
    img = pages[0]
    assert dark_in(img, (0, 0, img.width, 30)) > 200  # the title, drawn on the kiosk
    assert [b.text for b in zxingcpp.read_barcodes(img)] == [url]


def test_the_status_bytes() -> None:
    assert judge(0x12, 0x12, 0x12) is PrinterStatus.OK
    assert judge(0x32, 0x12, 0x72) is PrinterStatus.PAPER_OUT
    assert judge(0x16, 0x12, 0x12) is PrinterStatus.JAMMED  # cover open
    assert judge(0x12, 0x1A, 0x12) is PrinterStatus.JAMMED  # cutter error
    assert judge(0x12, 0x12, 0x1E) is PrinterStatus.PAPER_LOW
    assert judge(None, None, None) is PrinterStatus.UNKNOWN
    assert judge(0xFF, 0xFF, 0xFF) is PrinterStatus.UNKNOWN  # not a status byte


@pytest.fixture
def rig() -> Iterator[tuple[SimulatedPrinter, EscposPrinter]]:
    with SimulatedPrinter() as sim, open_printer("serial", str(sim.path)) as printer:
        yield sim, printer


def job() -> bytes:
    return render(blocks(SAMPLE, sample_url()), Paper(58))


def test_the_driver_prints_on_the_simulated_printer(
    rig: tuple[SimulatedPrinter, EscposPrinter],
) -> None:
    sim, printer = rig
    assert printer.status() is PrinterStatus.OK
    printer.print_job(job())
    assert len(sim.wait_receipts(1)) == 1


def test_paper_out_and_cover_open_are_refused_before_printing(
    rig: tuple[SimulatedPrinter, EscposPrinter],
) -> None:
    sim, printer = rig
    sim.paper_out()
    assert printer.status() is PrinterStatus.PAPER_OUT
    with pytest.raises(PaperOut):
        printer.print_job(job())
    sim.load_paper()
    sim.open_cover()
    with pytest.raises(PrinterJammed):
        printer.print_job(job())
    sim.close_cover()
    printer.print_job(job())
    assert len(sim.wait_receipts(1)) == 1 and sim.received > 0


def test_unplugged_then_back(rig: tuple[SimulatedPrinter, EscposPrinter]) -> None:
    sim, printer = rig
    sim.unplug()
    assert printer.status() is PrinterStatus.OFFLINE
    with pytest.raises(PrinterOffline):
        printer.print_job(job())
    sim.replug()
    printer.print_job(job())  # the driver opens the device afresh
    assert len(sim.wait_receipts(1)) == 1


def test_a_printer_that_vanishes_mid_receipt(rig: tuple[SimulatedPrinter, EscposPrinter]) -> None:
    sim, printer = rig
    sim.vanish_after(100)
    with pytest.raises(PrinterOffline):
        printer.print_job(job())
    assert sim.receipts == [] and not sim.plugged
    sim.replug()
    printer.print_job(job())
    assert len(sim.wait_receipts(1)) == 1


def test_a_printer_unplugged_while_its_port_is_open(
    rig: tuple[SimulatedPrinter, EscposPrinter],
) -> None:
    """The port stays open between jobs: once the printer is gone, pyserial's flush and
    input reset raise termios.error, which is no OSError. It once escaped the driver and
    left the kiosk's receipt "printing", and the dead port open, for good."""
    sim, printer = rig
    printer.print_job(job())  # the port is open now
    unplug_and_hang_up(sim, printer)
    with pytest.raises(PrinterOffline):
        printer.print_job(job())
    sim.replug()
    printer.print_job(job())  # opened afresh
    unplug_and_hang_up(sim, printer)
    assert printer.status() is PrinterStatus.OFFLINE
    sim.replug()
    assert printer.status() is PrinterStatus.OK
    printer.print_job(job())
    assert len(sim.wait_receipts(3)) == 3


def unplug_and_hang_up(sim: SimulatedPrinter, printer: EscposPrinter) -> None:
    """Unplug, then wait until the kernel has hung up the driver's open port (it does so
    a moment later): from then on tcflush and tcdrain fail, as on a pulled USB cable."""
    fd = printer._conn.device.fileno()
    sim.unplug()
    poll = select.poll()
    poll.register(fd, select.POLLHUP)
    deadline = time.monotonic() + 5
    while not any(ev & select.POLLHUP for _, ev in poll.poll(50)):
        assert time.monotonic() < deadline, "the port was not hung up"


def test_a_printer_whose_port_fails_its_setup_is_offline() -> None:
    """pyserial's open sets the line up with tcsetattr, whose termios.error it lets
    through (a port that hung up as it opened): offline, as any printer not reachable."""

    def hung_up() -> object:
        raise termios.error(5, "Input/output error")

    printer = EscposPrinter("serial", hung_up)
    assert printer.status() is PrinterStatus.OFFLINE
    with pytest.raises(PrinterOffline, match="not reachable"):
        printer.print_job(job())
