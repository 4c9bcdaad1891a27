"""Scale set-up with reference masses: find the scale, zero it, calibrate, verify.

The technician carries two certified masses (e.g. 5 kg and 2 kg). The wizard:

1. finds the scale when asked (`detect_scale`): each candidate port is listened
   to with each protocol until one yields weight readings;
2. empty platform → zero (when the protocol can zero over the wire);
3. the calibration mass → calibrate the span: our Pico firmware keeps it in its
   flash; for an indicator that takes no calibrate command the kiosk corrects
   its readings itself by a span factor (`[hardware.scale] span_ppm`, written to
   the config) — the indicator's own calibration stays as its maker set it;
4. the check mass → the reading must be within the tolerance, else the scale
   is not accepted.

What the technician must do is said through `prompt(text, grams)`, `grams` being
the load that should then be on the platform: the command line prints the text
and waits for Enter; with the simulated scale the masses are placed for them.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from greenpass.errors import GreenPassError, HardwareError
from greenpass.files import write_public
from hardware.scale import Scale, ScaleStatus
from hardware.scale.errors import Unsupported
from hardware.scale.factory import PROTOCOLS, open_scale
from hardware.scale.units import PPM, SPAN_LIMITS_PPM, apply_span

# prompt(what to tell the technician, grams that should be on the platform afterwards)
Prompt = Callable[[str, int], None]


class CalibrationFailed(HardwareError):
    """The scale could not be set up; the message says what to do."""


@dataclass(frozen=True)
class CalibrationResult:
    zeroed: bool
    calibrated: bool  # True: the scale itself took the calibration (our firmware)
    span_ppm: int  # the kiosk's own correction (PPM when the scale calibrated itself)
    check_grams: int
    read_grams: int  # the check mass as the kiosk will see it (span applied)
    tolerance_grams: int

    @property
    def error_grams(self) -> int:
        return self.read_grams - self.check_grams

    @property
    def ok(self) -> bool:
        return abs(self.error_grams) <= self.tolerance_grams


def candidate_ports() -> list[str]:
    """Serial ports worth probing, stable names first."""
    found = sorted(glob.glob("/dev/greenpass-scale")) + sorted(glob.glob("/dev/serial/by-id/*"))
    found += sorted(glob.glob("/dev/ttyACM*")) + sorted(glob.glob("/dev/ttyUSB*"))
    return list(dict.fromkeys(found))


def detect_scale(
    ports: Iterable[str], protocols: Iterable[str] = PROTOCOLS, listen_s: float = 1.5
) -> tuple[str, str] | None:
    """The first (port, protocol) that yields weight readings, or None."""
    for port in ports:
        for protocol in protocols:
            try:
                with open_scale(protocol, port, reconnect_max_s=0.2) as scale:
                    deadline = time.monotonic() + listen_s
                    while time.monotonic() < deadline:
                        try:
                            r = scale.read(timeout=0.5)
                        except GreenPassError:
                            continue
                        if r.status is ScaleStatus.OK and scale.counters.ok >= 2:
                            return port, protocol
                        if r.status is ScaleStatus.DISCONNECTED:
                            break
            except GreenPassError:
                continue
    return None


def wait_stable(
    scale: Scale, accept: Callable[[int], bool], what: str, timeout_s: float = 30.0
) -> int:
    """Grams of the first stable reading `accept` takes; CalibrationFailed after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last = "no reading"
    while time.monotonic() < deadline:
        try:
            r = scale.read(timeout=1.0)
        except GreenPassError as exc:
            last = str(exc)
            continue
        if r.status is not ScaleStatus.OK or r.grams is None:
            last = f"scale {r.status.value}"
            continue
        last = f"{r.grams} g{'' if r.stable else ' (moving)'}"
        if r.stable and accept(r.grams):
            return r.grams
    raise CalibrationFailed(f"waited {timeout_s:g} s for {what}; last: {last}")


def calibrate(
    scale: Scale,
    *,
    known_grams: int,
    check_grams: int,
    tolerance_grams: int,
    prompt: Prompt,
    zero_band_grams: int = 50,
    timeout_s: float = 30.0,
) -> CalibrationResult:
    if known_grams <= 0 or check_grams <= 0 or tolerance_grams < 0:
        raise CalibrationFailed("reference masses must be positive and the tolerance ≥ 0")

    def empty(what: str) -> None:
        prompt(f"{what}: take everything off the scale", 0)
        wait_stable(
            scale, lambda g: abs(g) <= max(zero_band_grams, known_grams // 2), what, timeout_s
        )

    empty("zero")
    zeroed = True
    try:
        scale.zero()
    except Unsupported:
        zeroed = False
    prompt(f"calibrate: place the {known_grams} g reference mass", known_grams)
    raw_known = wait_stable(scale, lambda g: g > known_grams // 2, "the reference mass", timeout_s)
    calibrated = True
    span_ppm = PPM
    try:
        scale.calibrate(known_grams)
    except Unsupported:
        calibrated = False
        span_ppm = (known_grams * PPM + raw_known // 2) // raw_known
    low, high = SPAN_LIMITS_PPM
    if not low <= span_ppm <= high:
        raise CalibrationFailed(
            f"the {known_grams} g reference mass reads {raw_known} g: far beyond a "
            "calibration error; check the mass, the scale's unit and its load cell"
        )
    empty("after calibrating")
    prompt(f"verify: place the {check_grams} g check mass", check_grams)
    raw = wait_stable(scale, lambda g: g > check_grams // 2, "the check mass", timeout_s)
    prompt("done: take the check mass off", 0)
    read = apply_span(raw, span_ppm)
    return CalibrationResult(zeroed, calibrated, span_ppm, check_grams, read, tolerance_grams)


def save_span(config: Path, span_ppm: int) -> None:
    """Set `[hardware.scale] span_ppm` in the kiosk's config file, keeping the rest as it is."""
    lines = config.read_text(encoding="utf-8").splitlines()
    entry = f"span_ppm = {span_ppm}"
    table = next((i for i, line in enumerate(lines) if line.strip() == "[hardware.scale]"), None)
    if table is None:
        lines += ["", "[hardware.scale]", entry]
    else:
        end = next(
            (i for i in range(table + 1, len(lines)) if lines[i].lstrip().startswith("[")),
            len(lines),
        )
        for i in range(table + 1, end):
            if lines[i].split("=", 1)[0].strip() == "span_ppm":
                lines[i] = entry
                break
        else:
            lines.insert(table + 1, entry)
    write_public(config, ("\n".join(lines) + "\n").encode("utf-8"))
