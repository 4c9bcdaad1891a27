"""The calibration wizard on simulated scales: our firmware calibrates itself; an
indicator without a calibrate command gets the kiosk's own span correction."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.kiosk.config import load_kiosk_config
from hardware.scale.factory import open_scale
from hardware.scale.units import PPM, apply_span
from provisioning.calibrate import CalibrationFailed, calibrate, save_span
from simulator.kiosk_home import make_kiosk_home
from simulator.scale import SimulatedScale


def run_wizard(protocol: str, span_error: float, tmp_path: Path, **kw: int):  # type: ignore[no-untyped-def]
    with SimulatedScale(protocol, link=tmp_path / "tty") as sim:
        sim.miscalibrate(span_error)
        told: list[str] = []

        def prompt(text: str, grams: int) -> None:  # the technician's hands
            told.append(text)
            if grams:
                sim.place(grams)
            else:
                sim.remove()

        with open_scale(protocol, str(sim.port)) as scale:
            result = calibrate(
                scale, known_grams=kw.get("known", 5000), check_grams=2000,
                tolerance_grams=10, prompt=prompt, timeout_s=15,
            )  # fmt: skip
    return result, told


def test_our_firmware_calibrates_itself(tmp_path: Path) -> None:
    result, told = run_wizard("gpfw", 1.03, tmp_path)
    assert result.calibrated and result.span_ppm == PPM
    assert result.ok, result
    assert any("5000 g reference mass" in t for t in told)


def test_an_indicator_without_commands_gets_a_span_correction(tmp_path: Path) -> None:
    result, _ = run_wizard("and", 1.02, tmp_path)  # reads 2 % heavy
    assert not result.calibrated
    assert 975_000 <= result.span_ppm <= 985_000  # ≈ 1 / 1.02
    assert result.ok, result


def test_a_scale_far_off_is_refused_not_calibrated(tmp_path: Path) -> None:
    with pytest.raises(CalibrationFailed, match="far beyond a calibration error"):
        run_wizard("and", 1.5, tmp_path)


def test_span_is_saved_into_the_config_and_read_back(tmp_path: Path) -> None:
    home = make_kiosk_home(tmp_path / "K1", "K1", "dongcun")
    save_span(home.config, 980_392)
    assert load_kiosk_config(home.config).hardware.scale.span_ppm == 980_392
    save_span(home.config, 990_000)  # replaced, not added twice
    assert home.config.read_text().count("span_ppm") == 1
    assert load_kiosk_config(home.config).hardware.scale.span_ppm == 990_000


@pytest.mark.parametrize(
    ("grams", "ppm", "expected"),
    [
        (2040, 980_392, 2000),
        (0, 980_392, 0),
        (-51, 980_392, -50),
        (1234, PPM, 1234),
        (1, 1_500_000, 2),
    ],
)
def test_apply_span_is_integer_and_rounds_half_away_from_zero(
    grams: int, ppm: int, expected: int
) -> None:
    assert apply_span(grams, ppm) == expected
