"""`greenpass doctor`: one report on a kiosk's health, each problem with its fix in one line.

Checks, in the order a technician would look: the config file (when it is missing
or invalid, that failed check is the whole report), the ledger file (SQLite's own
`integrity_check`, then the hash chain), disk space, whether that disk is encrypted
(a warning: the ledger holds households' names), the clock, the scale, the
scanner, the LEDs/buzzer pins, the receipt printer and whether receipts carry the
statement QR (`doctor_printer.py`), the broker (connecting with the device's own
credentials), the running kiosk's sync fault, its check of central's log (a log
fault, read from the ledger file), the sync backlog, and the broker CA
certificate's expiry.

When the kiosk daemon is running, its devices are busy: the doctor then asks the
kiosk's own page (`/api/view`) how the scale and scanner are, instead of opening
the ports itself; the same view carries the uplink's sync fault, which only the
running kiosk knows. The exit code is 0 when nothing failed (warnings allowed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from edge.kiosk.config import KioskConfig, load_kiosk_config
from edge.ledger.clock import Clock, SystemClock
from greenpass.errors import ConfigError, GreenPassError
from provisioning.disk_crypt import DOC, encryption_of
from provisioning.doctor_finding import Finding, Level
from provisioning.doctor_printer import printer_findings

BACKLOG_WARN_H = 24  # a kiosk that has not synced for a day is worth a look
CERT_WARN_DAYS = 30


@dataclass(frozen=True)
class DoctorOptions:
    min_free_mb: int = 200
    timeout_s: float = 3.0
    clock: Clock | None = None


def _ok(check: str, detail: str) -> Finding:
    return Finding(check, "ok", detail)


# --- config, ledger, disk, clock --------------------------------------------------------


def load_config(path: Path) -> tuple[KioskConfig | None, list[Finding]]:
    """The kiosk config, or None and the failed `config` check that says how to fix it."""
    try:
        return load_kiosk_config(path), []
    except ConfigError as exc:
        if not path.exists():
            fix = (
                "provision this kiosk (`greenpass provision` writes it), or name the "
                "kiosk's config with --config"
            )
        else:
            fix = "correct the table or key it names (docs/kiosk.md lists every key)"
        return None, [Finding("config", "fail", str(exc), fix)]


def check_database(db: Path) -> list[Finding]:
    if not db.exists():
        return [
            Finding(
                "database",
                "fail",
                f"no ledger at {db}",
                "create it with `greenpass provision` (or `greenpass ledger init`)",
            )
        ]
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        rows = [(str(exc),)]
    if [r[0] for r in rows] != ["ok"]:
        return [
            Finding(
                "database",
                "fail",
                f"SQLite integrity check failed: {rows[0][0]}",
                "stop the kiosk, copy the ledger file aside and call the operator: central "
                "holds every synced entry",
            )
        ]
    from edge.ledger.ledger import Ledger  # noqa: PLC0415 - only once the file is known sound

    try:
        with Ledger.open(db) as ledger:
            report = ledger.verify()
    except GreenPassError as exc:
        return [Finding("database", "fail", str(exc), "call the operator with this message")]
    found = [_ok("database", "SQLite integrity check ok")]
    if report.ok:
        found.append(_ok("chain", f"hash chain intact, {report.checked} entries"))
    else:
        found.append(
            Finding(
                "chain",
                "fail",
                f"hash chain broken at entry {report.first_bad_seq}: {report.problem}",
                "the ledger was altered: take the kiosk out of use and call the operator",
            )
        )
    return found


def check_disk(folder: Path, min_free_mb: int) -> Finding:
    free_mb = shutil.disk_usage(folder).free // 2**20
    if free_mb < min_free_mb:
        return Finding(
            "disk",
            "fail",
            f"{free_mb} MB free where the ledger lives (need {min_free_mb} MB)",
            "free space: `sudo journalctl --vacuum-size=50M`, delete old files in /var/log",
        )
    return _ok("disk", f"{free_mb} MB free")


def check_encryption(folder: Path) -> Finding:
    """A warning, not a failure: the kiosk works, but a stolen one gives names away."""
    try:
        found = encryption_of(folder)
    except OSError as exc:
        return Finding("encryption", "warn", f"cannot tell: {exc.strerror or exc}")
    detail = f"the ledger (with households' names) is {found.detail}"
    if found.state == "encrypted":
        return _ok("encryption", detail)
    return Finding(
        "encryption",
        "warn",
        detail + ("" if found.state == "plain" else "; it may not be encrypted"),
        f"encrypt the data partition with LUKS before the kiosk goes out: {DOC}",
    )


def check_clock(clock: Clock) -> Finding:
    if not clock.clock_ok():
        return Finding(
            "clock",
            "warn",
            "the clock is not synchronised (entries are marked clock-unsure)",
            "connect the kiosk to the network; `timedatectl` should say "
            "'System clock synchronized: yes'",
        )
    return _ok("clock", "synchronised")


# --- devices ----------------------------------------------------------------------------


def live_view(cfg: KioskConfig, timeout_s: float) -> dict[str, Any] | None:
    """The running kiosk's view, or None when no kiosk answers on its page."""
    host = "127.0.0.1" if cfg.ui.host in ("0.0.0.0", "::") else cfg.ui.host
    try:
        r = httpx.get(f"http://{host}:{cfg.ui.port}/api/view", timeout=timeout_s)
        return dict(r.json()) if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


SCALE_FIX = {
    "disconnected": "plug in the scale's USB cable; `ls -l {port}` should show it",
    "error": "the scale sends nothing usable: check [hardware.scale] protocol and baud",
    "overload": "take everything off the scale",
    "underload": "the scale reads below zero: empty it and zero it (greenpass provision)",
}


def _scale_finding(status: str, port: str, source: str) -> Finding:
    if status == "ok":
        return _ok("scale", f"reading ({source})")
    fix = SCALE_FIX.get(status, "check the scale").format(port=port)
    return Finding("scale", "fail", f"scale {status} ({source})", fix)


def probe_scale(cfg: KioskConfig, timeout_s: float) -> Finding:
    from hardware.scale import ScaleStatus  # noqa: PLC0415
    from hardware.scale.factory import open_scale  # noqa: PLC0415

    sc = cfg.hardware.scale
    try:
        scale = open_scale(sc.protocol, sc.port, sc.baud or None, capacity_grams=sc.capacity_grams)
    except GreenPassError as exc:
        return Finding("scale", "fail", str(exc), "check [hardware.scale] in the config")
    status = "disconnected"
    deadline = time.monotonic() + timeout_s
    with scale:
        while time.monotonic() < deadline:
            try:
                r = scale.read(timeout=min(1.0, timeout_s))
            except GreenPassError:
                status = "error"
                continue
            status = r.status.value
            if r.status is ScaleStatus.OK:
                break
    return _scale_finding(status, sc.port, "probed")


def probe_scanner(cfg: KioskConfig) -> Finding:
    sc = cfg.hardware.scanner
    if sc.kind == "serial":
        if not Path(sc.port).exists():
            return Finding(
                "scanner",
                "fail",
                f"no scanner at {sc.port}",
                f"plug in the QR scanner; `ls -l {sc.port}` should show it",
            )
        return _ok("scanner", f"serial scanner present at {sc.port}")
    dev = Path(f"/dev/video{sc.camera_index}")
    if not dev.exists():
        return Finding("scanner", "fail", f"no camera {dev}", "plug in the camera (USB or CSI)")
    return _ok("scanner", f"camera {dev} present")


def probe_gpio(cfg: KioskConfig) -> Finding:
    from edge.kiosk.devices import pin_factory  # noqa: PLC0415
    from hardware.gpio import Indicator  # noqa: PLC0415

    try:
        with Indicator(cfg.hardware.pins, pin_factory=pin_factory(cfg.hardware.pin_factory)):
            pass
    except (GreenPassError, OSError, RuntimeError, ImportError, ValueError) as exc:
        return Finding(
            "gpio",
            "fail",
            f"cannot drive the LED/buzzer pins: {exc}",
            "on a Pi: pip install 'green-passbook[pi]'; check [hardware.gpio]",
        )
    return _ok("gpio", "LED, buzzer and button pins available")


def check_devices(
    cfg: KioskConfig, opts: DoctorOptions, view: dict[str, Any] | None = None
) -> list[Finding]:
    """The devices as the running kiosk sees them (`view`), else probed here."""
    if view is not None:
        st = view.get("status", {})
        scanner = str(st.get("scanner", "ok"))
        return [
            _scale_finding(str(st.get("scale", "ok")), cfg.hardware.scale.port, "running kiosk"),
            _ok("scanner", "ok (running kiosk)")
            if scanner == "ok"
            else Finding(
                "scanner",
                "fail",
                f"scanner {scanner} (running kiosk)",
                f"plug in the QR scanner ({cfg.hardware.scanner.port})",
            ),
            _ok("gpio", "in use by the running kiosk"),
        ]
    if cfg.hardware.backend == "sim":
        return [_ok("hardware", "simulated (backend = sim); nothing to probe")]
    return [probe_scale(cfg, opts.timeout_s), probe_scanner(cfg), probe_gpio(cfg)]


# --- sync -------------------------------------------------------------------------------


def check_broker(
    cfg: KioskConfig, device_id: str, timeout_s: float, view: dict[str, Any] | None = None
) -> Finding:
    """Log in as the device, unless its running kiosk is connected already.

    The broker lets a device connect only with its own client id, ``gp-<device>``, so
    logging in while the kiosk is connected would knock the kiosk off; its connection
    is the proof. Otherwise the doctor logs in with a clean, non-persistent session:
    it replaces the session the kiosk left (acks queued for it are resent by central
    after the kiosk's ack timeout), and leaves none of its own behind.
    """
    from sync.protocol import device_client_id  # noqa: PLC0415
    from sync.transport import BrokerConfig, Transport  # noqa: PLC0415

    assert cfg.sync is not None
    s = cfg.sync
    if view is not None and view.get("status", {}).get("online") is True:
        return _ok("broker", f"the running kiosk is connected to {s.broker_url}")
    try:
        t = Transport(
            BrokerConfig(
                url=s.broker_url,
                username=device_id,
                password=s.password(),
                client_id=device_client_id(device_id),
                ca_cert=s.ca_cert,
                clean_start=True,
                session_expiry_s=0,
                mqtt_version=s.mqtt_version,
            )
        )
        try:
            t.connect(timeout_s=timeout_s)
        finally:
            t.close()
    except GreenPassError as exc:
        text = str(exc)
        fix = (
            "the broker refused this device's credentials: re-enrol (greenpass provision)"
            if "auth" in text.lower() or "not authorized" in text.lower()
            else f"check the network and that {s.broker_url} is reachable from here"
        )
        return Finding("broker", "fail", f"cannot connect: {text}", fix)
    return _ok("broker", f"connected to {s.broker_url} as {device_id}")


# What to do about each sync fault (`sync.protocol.SYNC_FAULTS`; docs/sync.md).
CALL = "call the operator with the device id and this line"
SYNC_FAULT_FIX = {
    "ack_beyond_head": f"was the ledger file replaced or restored? Leave it as it is; {CALL}",
    "ack_backwards": f"central lost entries it had confirmed; all are still here: {CALL}",
    "ack_bad_expected": CALL,
    "ack_wrong_device": CALL,
    "ack_malformed": f"check that kiosk and central run matching versions; {CALL}",
    "ack_unknown_status": "central is newer: update the kiosk (install.sh, docs/technician.md)",
    "batch_bad_signature": "central does not know this kiosk's key: re-enrol (greenpass provision)",
    "batch_rejected": f"central refuses this kiosk (not enrolled or revoked): {CALL}",
    "batch_bad_chain": f"this ledger's history differs from central's: {CALL}",
    "uplink_crashed": "it restarted itself; if it recurs send `journalctl -u greenpass-kiosk` "
    "to support",
    "uplink_dead": "the kiosk restarts; send `journalctl -u greenpass-kiosk` to support",
}


def check_sync_fault(view: dict[str, Any]) -> Finding:
    """The running kiosk's sync fault (only it knows one: the uplink keeps it in memory)."""
    fault = view.get("status", {}).get("sync_fault")
    if not isinstance(fault, dict):
        return _ok("sync", "no sync fault (running kiosk)")
    code = str(fault.get("code", ""))
    fix = SYNC_FAULT_FIX.get(code, CALL)
    return Finding("sync", "fail", f"{code}: {fault.get('message', '')} (running kiosk)", fix)


# What to do about each log fault (`sync.protocol.LOG_FAULTS`; docs/trust.md).
KEEP = (
    "the kiosk works on; send the operator the output of `greenpass sync log` (the "
    "evidence), and reset only when they say so: greenpass sync log --reset"
)
LOG_FAULT_FIX = {
    "log_bad_checkpoint": f"did central change its key or its log's name? {KEEP}",
    "log_not_extended": f"central's log lost or rewrote history (restored from a backup?): {KEEP}",
    "log_entry_changed": f"central holds this kiosk's entry differently: {KEEP}",
    "log_entry_missing": f"central's log leaves out this kiosk's entry: {KEEP}",
    "log_late": "central does not log what it acknowledged: the operator checks that a "
    "central worker keeps the log; it clears itself once central proves the entries",
}


def check_log(db: Path) -> Finding:
    """This kiosk's check of central's transparency log, from the ledger file (the
    uplink records it there, so this works with the kiosk stopped too)."""
    from edge.ledger.ledger import Ledger  # noqa: PLC0415
    from edge.ledger.log_record import accepted, current_fault  # noqa: PLC0415
    from sync.protocol import STICKY_LOG_FAULTS  # noqa: PLC0415

    with Ledger.open(db) as ledger, ledger.store.read() as conn:
        acc, fault = accepted(conn), current_fault(conn)
    if fault is not None:
        level: Level = "fail" if fault.code in STICKY_LOG_FAULTS else "warn"
        fix = LOG_FAULT_FIX.get(fault.code, KEEP)
        return Finding("log", level, f"{fault.code}: {fault.message}", fix)
    if acc is None:
        return _ok("log", "no checkpoint of central's log checked yet")
    return _ok(
        "log",
        f"central's log checked: checkpoint of size {acc.size} accepted, this kiosk's "
        f"entries proven up to seq {acc.checked_seq}",
    )


def check_backlog(db: Path, now_ms: int) -> Finding:
    from edge.ledger.ledger import Ledger  # noqa: PLC0415

    with Ledger.open(db) as ledger:
        b = ledger.outbox.backlog()
    if b.oldest_unsynced_ms is None:
        return _ok("backlog", f"everything synced (acked seq {b.acked_seq})")
    hours = max(0, now_ms - b.oldest_unsynced_ms) / 3.6e6
    detail = f"{b.depth} entries not yet synced, the oldest {hours:.1f} h old"
    if hours >= BACKLOG_WARN_H:
        return Finding(
            "backlog", "warn", detail, "the kiosk cannot reach central: check the network"
        )
    return _ok("backlog", detail)


def check_certificate(ca: Path, now: dt.datetime) -> Finding:
    from cryptography import x509  # noqa: PLC0415

    try:
        cert = x509.load_pem_x509_certificate(ca.read_bytes())
    except (OSError, ValueError) as exc:
        return Finding("certificate", "fail", f"{ca}: {exc}", "re-enrol to get the CA again")
    left = cert.not_valid_after_utc - now
    if left.total_seconds() <= 0:
        return Finding(
            "certificate",
            "fail",
            f"the broker CA expired on {cert.not_valid_after_utc:%Y-%m-%d}",
            "ask the operator for a new CA and re-enrol",
        )
    if left.days < CERT_WARN_DAYS:
        return Finding(
            "certificate",
            "warn",
            f"the broker CA expires in {left.days} days",
            "ask the operator for a new CA soon",
        )
    return _ok("certificate", f"broker CA valid until {cert.not_valid_after_utc:%Y-%m-%d}")


# --- all of it --------------------------------------------------------------------------


def run(cfg: KioskConfig, opts: DoctorOptions = DoctorOptions()) -> list[Finding]:
    clock = opts.clock or SystemClock()
    db = cfg.kiosk.db
    found = check_database(db)
    folder = db.parent if db.parent.exists() else Path("/")
    found.append(check_disk(folder, opts.min_free_mb))
    found.append(check_encryption(folder))
    found.append(check_clock(clock))
    view = live_view(cfg, opts.timeout_s)
    found += check_devices(cfg, opts, view)
    found += printer_findings(cfg, view, opts.timeout_s)
    db_ok = all(f.level == "ok" for f in found if f.check == "database")
    if cfg.sync is None:
        found.append(
            Finding(
                "broker",
                "warn",
                "no [sync] in the config: this kiosk never syncs",
                "enrol it: greenpass provision",
            )
        )
        return found
    device_id = _device_id(db) if db_ok else None
    if device_id is not None:
        found.append(check_broker(cfg, device_id, opts.timeout_s, view))
        if view is not None:
            found.append(check_sync_fault(view))
        found.append(check_log(db))
        found.append(check_backlog(db, clock.wall_ms()))
    if cfg.sync.ca_cert is not None:
        found.append(check_certificate(cfg.sync.ca_cert, dt.datetime.now(dt.UTC)))
    return found


def _device_id(db: Path) -> str | None:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()
    return str(row[0]) if row else None


def healthy(found: list[Finding]) -> bool:
    return all(f.level != "fail" for f in found)


def as_json(found: list[Finding]) -> dict[str, Any]:
    return {"healthy": healthy(found), "findings": [asdict(f) for f in found]}
