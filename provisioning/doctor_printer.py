"""`greenpass doctor`'s checks of the receipt printer and the receipts' statement QR.

The running kiosk holds the printer, so its state comes from the kiosk's page
(`/api/view`, `status.printer`, the same word the status topic carries); with the
kiosk stopped the doctor asks the printer itself (DLE EOT). The statement check
says when receipts print without their QR: no `[kiosk] statement_url`, or no
device key to sign the link with.
"""

from __future__ import annotations

from typing import Any

from edge.kiosk.config import KioskConfig
from greenpass.errors import GreenPassError
from provisioning.doctor_finding import Finding, Level

PRINTER_FIX = {
    "paper_out": "put in a new paper roll, then reprint the last receipt from the staff menu",
    "jammed": "open the printer's cover, clear the paper, close it firmly",
    "timeout": "the printer stopped taking bytes: clear a paper jam, switch it off and on",
    "offline": "check the printer's power and cable; `ls -l {device}` (or `lsusb`) should show it",
    "unknown": "the printer answers no status queries (kind = file?): a missing roll goes "
    "unnoticed",
    "paper_low": "the roll is nearly empty: have a new one ready",
}


def _finding(state: str, cfg: KioskConfig, source: str) -> Finding:
    pr = cfg.hardware.printer
    where = f"{pr.kind} {pr.device}"
    if state == "ok":
        return Finding("printer", "ok", f"ready ({where}, {source})")
    fix = PRINTER_FIX.get(state, "check the printer").format(device=pr.device)
    level: Level = "warn" if state in ("paper_low", "unknown") else "fail"
    return Finding("printer", level, f"printer {state} ({where}, {source})", fix)


def check_printer(cfg: KioskConfig, view: dict[str, Any] | None, timeout_s: float) -> Finding:
    pr = cfg.hardware.printer
    if not pr.enabled:
        return Finding("printer", "ok", "no receipt printer configured ([hardware.printer])")
    if view is not None:
        return _finding(str(view.get("status", {}).get("printer", "unknown")), cfg, "running kiosk")
    if cfg.hardware.backend == "sim":
        return Finding("printer", "ok", "simulated (backend = sim); nothing to probe")
    from hardware.printer import open_printer  # noqa: PLC0415

    try:
        with open_printer(pr.kind, pr.device, baud=pr.baud, timeout_s=timeout_s) as printer:
            state = printer.status().value
    except GreenPassError as exc:
        return Finding("printer", "fail", str(exc), "check [hardware.printer] in the config")
    return _finding(state, cfg, "probed")


def check_statement(cfg: KioskConfig) -> Finding:
    """Whether receipts carry the statement QR (docs/villager.md)."""
    if not cfg.hardware.printer.enabled:
        return Finding("statement", "ok", "no receipts printed here")
    if not cfg.kiosk.statement_url:
        return Finding(
            "statement",
            "warn",
            "receipts print without the statement QR: [kiosk] statement_url is not set",
            "set [kiosk] statement_url to central's public HTTPS address "
            '(e.g. statement_url = "https://central.county.example")',
        )
    key = cfg.device_key_file
    if key is None or not key.exists():
        return Finding(
            "statement",
            "warn",
            "receipts print without the statement QR: no device key to sign it with",
            "enrol the kiosk (greenpass provision), or set [kiosk] key_file",
        )
    return Finding("statement", "ok", f"receipts carry a statement QR to {cfg.kiosk.statement_url}")


def printer_findings(
    cfg: KioskConfig, view: dict[str, Any] | None, timeout_s: float
) -> list[Finding]:
    return [check_printer(cfg, view, timeout_s), check_statement(cfg)]
