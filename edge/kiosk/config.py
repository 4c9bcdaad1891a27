"""The kiosk's config file (`greenpass kiosk --config kiosk.toml`), loaded once into typed objects.

    [kiosk]
    db = "kiosk.db"               # the ledger; relative paths are relative to this file
    language = "zh"               # the screen's default language: zh or en
    idle_timeout_s = 60           # back to "scan your passbook" after this long untouched
    settle_timeout_s = 15         # a bag still moving after this long: take it off, put it back
    result_s = 6                  # how long "done" / "refused" stays on screen
    staff_timeout_s = 120         # a signed-in staff member is signed out after this long
    zero_band_grams = 50          # the scale reads "empty" at or below this
    key_file = "device.key"       # optional: this kiosk's Ed25519 key, to sign cards it prints
    statement_url = "https://central.county.example"  # central's public address: receipt QRs
    statement_days = 366          # how long a receipt's statement link works

    [ui]
    host = "127.0.0.1"            # the touchscreen page, for Chromium in kiosk mode
    port = 8080
    spoken_prompts = false        # read the main prompts aloud (the browser's speech)

    [hardware]
    backend = "real"              # real, or sim: simulated scale, scanner and GPIO

    [hardware.scale]
    protocol = "gpfw"             # gpfw, mtsics, and, cas, xk3190
    port = "/dev/greenpass-scale" # a device path or a pyserial URL (hwgrep://2e8a:000a)
    baud = 0                      # 0: the protocol's factory default
    capacity_grams = 150000       # readings above this are refused
    unit = "kg"                   # xk3190 only: its frames carry no unit
    span_ppm = 1000000            # the kiosk's span correction (greenpass calibrate writes it)

    [hardware.scanner]
    kind = "serial"               # serial or camera
    port = "/dev/greenpass-scanner"
    baud = 9600
    camera_index = 0
    decoder = "zxing"             # zxing or pyzbar

    [hardware.gpio]
    pin_factory = ""              # "" (gpiozero's choice: lgpio on a Pi), lgpio, rpigpio, mock
    green = 17                    # BCM pin numbers
    amber = 27
    red = 22
    buzzer = 23
    button = 24                   # -1: no button

    [hardware.printer]            # the receipt printer (docs/hardware-printer.md)
    enabled = false
    kind = "serial"               # serial, usb (device = "0416:5011") or file (/dev/usb/lp0)
    device = "/dev/greenpass-printer"
    baud = 9600                   # serial only
    width = 58                    # paper width, mm: 58 or 80
    chinese = "gb18030"           # gb18030 (the printer's Chinese font) or image
    timeout_s = 10                # a printer that takes no bytes this long is jammed

    [simulator]                   # only read with backend = "sim"
    cards_file = "cards.json"     # cards the control page can "scan": [{"label", "payload"}]
    network_proxy = true          # route sync through a proxy the control page can cut

    [sync]                        # optional; see sync/config.py and docs/sync.md

Every key is documented in docs/kiosk.md; an unknown key or a wrong type is
refused with its line and its dotted name (`greenpass.tomlfile`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from greenpass.tomlfile import Table, TableReader
from hardware.gpio import GpioPins
from hardware.printer.document import CHINESE_MODES, WIDTHS_MM, ChineseMode
from hardware.printer.escpos_driver import KINDS as PRINTER_KINDS
from hardware.scanner import DECODER_NAMES, ScannerConfig
from sync.config import SyncConfig, parse_sync_config

SCALE_PROTOCOLS = ("gpfw", "mtsics", "and", "cas", "xk3190")


@dataclass(frozen=True)
class KioskSection:
    db: Path
    language: Literal["zh", "en"] = "zh"
    idle_timeout_s: float = 60.0
    settle_timeout_s: float = 15.0
    result_s: float = 6.0
    staff_timeout_s: float = 120.0
    zero_band_grams: int = 50
    key_file: Path | None = None
    statement_url: str = ""  # central's public HTTPS address; "" = receipts carry no QR
    statement_days: int = 366


@dataclass(frozen=True)
class UiSection:
    host: str = "127.0.0.1"
    port: int = 8080
    spoken_prompts: bool = False


@dataclass(frozen=True)
class ScaleSection:
    protocol: str = "gpfw"
    port: str = "/dev/greenpass-scale"
    baud: int = 0
    capacity_grams: int = 150_000
    unit: str = "kg"
    span_ppm: int = 1_000_000


@dataclass(frozen=True)
class PrinterSection:
    enabled: bool = False
    kind: str = "serial"
    device: str = "/dev/greenpass-printer"
    baud: int = 9600
    width: int = 58
    chinese: ChineseMode = "gb18030"
    timeout_s: float = 10.0


@dataclass(frozen=True)
class HardwareSection:
    backend: Literal["real", "sim"] = "real"
    scale: ScaleSection = field(default_factory=ScaleSection)
    scanner: ScannerConfig = field(default_factory=lambda: ScannerConfig(kind="serial"))
    pins: GpioPins = field(default_factory=GpioPins)
    pin_factory: str = ""
    printer: PrinterSection = field(default_factory=PrinterSection)


@dataclass(frozen=True)
class SimulatorSection:
    cards_file: Path | None = None
    network_proxy: bool = True


@dataclass(frozen=True)
class KioskConfig:
    path: Path
    kiosk: KioskSection
    ui: UiSection = field(default_factory=UiSection)
    hardware: HardwareSection = field(default_factory=HardwareSection)
    simulator: SimulatorSection = field(default_factory=SimulatorSection)
    sync: SyncConfig | None = None

    @property
    def device_key_file(self) -> Path | None:
        """This kiosk's Ed25519 key: `[kiosk] key_file`, else the one sync signs with."""
        return self.kiosk.key_file or (self.sync.key_file if self.sync else None)


def _kiosk(t: Table) -> KioskSection:
    db = t.path("db")
    if db is None:
        raise t.fail("db", "missing (the ledger file)")
    lang = t.choice("language", ("zh", "en"), "zh")
    section = KioskSection(
        db=db,
        language="en" if lang == "en" else "zh",
        idle_timeout_s=t.positive("idle_timeout_s", float, 60.0),
        settle_timeout_s=t.positive("settle_timeout_s", float, 15.0),
        result_s=t.positive("result_s", float, 6.0),
        staff_timeout_s=t.positive("staff_timeout_s", float, 120.0),
        zero_band_grams=t.positive("zero_band_grams", int, 50),
        key_file=t.path("key_file"),
        statement_url=_statement_url(t),
        statement_days=t.positive("statement_days", int, 366),
    )
    t.done()
    return section


def _statement_url(t: Table) -> str:
    url: str = t.get("statement_url", str, "").strip().rstrip("/")
    # A villager's phone opens it from a paper QR: only HTTPS, never a path or a query
    # (the link appends /s/<token>). http:// is for a central on this machine (the demo).
    local = url.startswith(("http://127.0.0.1", "http://localhost"))
    if url and (not (url.startswith("https://") or local) or "?" in url or "#" in url):
        raise t.fail(
            "statement_url",
            f"must be central's public address, e.g. https://central.county.example; got {url!r}",
        )
    return url


def _ui(t: Table) -> UiSection:
    port = t.get("port", int, 8080)
    if not 0 <= port <= 65535:
        raise t.fail("port", f"must be 0..65535, got {port}")
    section = UiSection(
        host=t.get("host", str, "127.0.0.1"),
        port=port,
        spoken_prompts=t.get("spoken_prompts", bool, False),
    )
    t.done()
    return section


def _hardware(t: Table) -> HardwareSection:
    backend = t.choice("backend", ("real", "sim"), "real")
    s = t.sub("scale")
    scale = ScaleSection(
        protocol=s.choice("protocol", SCALE_PROTOCOLS, "gpfw"),
        port=s.get("port", str, "/dev/greenpass-scale"),
        baud=s.get("baud", int, 0),
        capacity_grams=s.positive("capacity_grams", int, 150_000),
        unit=s.choice("unit", ("kg", "g"), "kg"),
        span_ppm=s.positive("span_ppm", int, 1_000_000),
    )
    s.done()
    c = t.sub("scanner")
    decoder = c.choice("decoder", DECODER_NAMES, "zxing")
    scanner = ScannerConfig(
        kind="camera" if c.choice("kind", ("serial", "camera"), "serial") == "camera" else "serial",
        port=c.get("port", str, "/dev/greenpass-scanner"),
        baud=c.positive("baud", int, 9600),
        camera_index=c.get("camera_index", int, 0),
        decoder="pyzbar" if decoder == "pyzbar" else "zxing",
    )
    c.done()
    g = t.sub("gpio")
    defaults = GpioPins()
    pins: dict[str, Any] = {}
    for f in fields(GpioPins):
        if f.name == "buzzer_active_high":
            pins[f.name] = g.get(f.name, bool, defaults.buzzer_active_high)
            continue
        number = g.get(f.name, int, getattr(defaults, f.name))
        if f.name == "button" and number == -1:
            pins[f.name] = None
        elif not 0 <= number <= 27:
            raise g.fail(f.name, "must be a BCM pin 0..27")
        else:
            pins[f.name] = number
    pin_factory = g.choice("pin_factory", ("", "lgpio", "rpigpio", "mock"), "")
    g.done()
    printer = _printer(t.sub("printer"))
    t.done()
    return HardwareSection(
        backend="sim" if backend == "sim" else "real",
        scale=scale,
        scanner=scanner,
        pins=GpioPins(**pins),
        pin_factory=pin_factory,
        printer=printer,
    )


def _printer(p: Table) -> PrinterSection:
    width = p.get("width", int, 58)
    if width not in WIDTHS_MM:
        raise p.fail("width", f"must be 58 or 80 (mm), got {width}")
    chinese = p.choice("chinese", CHINESE_MODES, "gb18030")
    section = PrinterSection(
        enabled=p.get("enabled", bool, False),
        kind=p.choice("kind", PRINTER_KINDS, "serial"),
        device=p.get("device", str, "/dev/greenpass-printer"),
        baud=p.positive("baud", int, 9600),
        width=width,
        chinese="image" if chinese == "image" else "gb18030",
        timeout_s=p.positive("timeout_s", float, 10.0),
    )
    p.done()
    return section


def _simulator(t: Table) -> SimulatorSection:
    section = SimulatorSection(
        cards_file=t.path("cards_file"),
        network_proxy=t.get("network_proxy", bool, True),
    )
    t.done()
    return section


SECTIONS = ("kiosk", "ui", "hardware", "simulator", "sync")


def parse_kiosk_config(reader: TableReader, data: dict[str, Any]) -> KioskConfig:
    top = reader.at(data, "")
    for name in data:
        if name not in SECTIONS:
            raise top.fail(name, f"unknown table (known: {', '.join(f'[{s}]' for s in SECTIONS)})")
    if "kiosk" not in data:
        raise top.fail("kiosk", "no [kiosk] table")
    sync = data.get("sync")
    return KioskConfig(
        path=Path(reader.path),
        kiosk=_kiosk(reader.at(data["kiosk"], "kiosk")),
        ui=_ui(reader.at(data.get("ui", {}), "ui")),
        hardware=_hardware(reader.at(data.get("hardware", {}), "hardware")),
        simulator=_simulator(reader.at(data.get("simulator", {}), "simulator")),
        sync=parse_sync_config(reader.at(sync, "sync")) if sync is not None else None,
    )


def load_kiosk_config(path: Path) -> KioskConfig:
    return parse_kiosk_config(*TableReader.load(path))
