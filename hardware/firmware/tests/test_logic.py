"""Filter, stability and calibration arithmetic (scale_logic)."""

import micropython_stub
from scale_logic import (
    ERROR,
    MIN_BAND_COUNTS,
    OK,
    OVERLOAD,
    RAW_MAX,
    RAW_MIN,
    UNDERLOAD,
    MedianFilter,
    ScaleModel,
    Stability,
    counts_to_grams,
    grams_to_counts,
)
from support import eq


def test_median_rejects_a_single_spike():
    f = MedianFilter(5)
    out = [f.add(v) for v in (1000, 1002, 1001, 900000, 1003, 1001)]
    eq(out, [1000, 1000, 1001, 1001, 1002, 1002])
    assert 900000 not in out


def test_median_rejects_a_negative_spike_in_a_full_window():
    f = MedianFilter(5)
    for v in (50, 51, 52, 53, 54):
        f.add(v)
    eq(f.add(-8000000), 52)  # window 51,52,53,54,-8000000


def test_median_reset_forgets_old_samples():
    f = MedianFilter(3)
    f.add(7)
    f.add(7)
    f.reset()
    eq(f.add(100), 100)


def test_filter_and_stability_allocate_nothing_per_sample():
    # heap_lock() makes any allocation raise MemoryError: the per-sample path
    # must not feed the garbage collector (a GC pause is what we avoid).
    f = MedianFilter(5)
    s = Stability(40, 3)
    out = 0
    stable = False
    micropython_stub.real.heap_lock()
    try:
        for i in range(100):
            out = f.add(1000 + (i & 3))
            stable = s.add(out)
    finally:
        micropython_stub.real.heap_unlock()
    eq((out, stable), (1002, True))  # last five: 1003 1000 1001 1002 1003


def test_stable_only_after_hold_samples_within_band():
    s = Stability(5, 2)
    eq([s.add(v) for v in (100, 101, 102, 100)], [False, False, False, False])
    eq(s.add(101), True)  # the 5th steady sample
    eq(s.add(110), False)  # moved outside the band: the hold starts again
    eq([s.add(v) for v in (110, 111, 110)], [False, False, False])
    eq(s.add(111), True)  # 5 samples within the band since the move


def test_stability_reset_starts_the_hold_again():
    s = Stability(3, 0)
    eq([s.add(5) for _ in range(3)], [False, False, True])
    s.reset()
    eq([s.add(5) for _ in range(3)], [False, False, True])


def test_counts_to_grams_rounds_symmetrically():
    eq(counts_to_grams(0, 1000), 0)
    eq(counts_to_grams(1500, 1000000), 2)  # 1.5 g -> 2
    eq(counts_to_grams(-1500, 1000000), -2)
    eq(counts_to_grams(1499, 1000000), 1)
    eq(counts_to_grams(2147483, 429497), 5000)
    eq(counts_to_grams(2147483, -429497), -5000)
    eq(grams_to_counts(10, 429497), 4295)
    eq(grams_to_counts(-10, 429497), -4295)


def calibrated(capacity=30000, factor=1000000, offset=0):
    m = ScaleModel(capacity)
    m.apply({"factor": factor, "offset": offset, "cal_zero": offset})
    return m


def test_raw_zero_is_a_reading_and_negative_values_work():
    m = calibrated(factor=1000000, offset=-2000)  # 1000 counts per gram
    eq(m.net_grams(0), 2)
    eq(m.status(0), OK)
    eq(m.net_grams(-2000), 0)
    eq(m.net_grams(-5000), -3)


def test_status_overload_underload_saturation_and_uncalibrated():
    m = calibrated(capacity=1000, factor=1000000)
    eq(m.status(1000 * 1000), OK)
    eq(m.status(1001 * 1000), OVERLOAD)
    eq(m.status(-20 * 1000), OK)  # 2 % of 1000 g = 20 g below zero allowed
    eq(m.status(-21 * 1000), UNDERLOAD)
    eq(m.status(RAW_MAX), OVERLOAD)
    eq(m.status(RAW_MIN), UNDERLOAD)
    m.factor = -1000000  # cell wired the other way round
    eq(m.status(RAW_MAX), UNDERLOAD)
    m.set_defaults("cal")
    eq(m.status(0), ERROR)


def test_stability_band_in_counts_has_a_noise_floor():
    eq(calibrated(factor=1000000).band_counts(10), 10000)  # 1000 counts/g
    eq(ScaleModel(30000).band_counts(10), MIN_BAND_COUNTS)  # uncalibrated: 10 counts


def test_tare_subtracts_the_present_load():
    m = calibrated(factor=1000000)
    eq(m.do_tare(1200 * 1000), None)  # a 1.2 kg basket
    eq(m.net_grams(1200 * 1000), 0)
    eq(m.net_grams(3700 * 1000), 2500)
    eq(m.gross_grams(3700 * 1000), 3700)
    eq(m.do_tare(31000 * 1000), "range")  # beyond capacity
    eq(m.net_grams(3700 * 1000), 2500)  # refused tare changed nothing


def test_zero_allowed_within_two_percent_and_clears_tare():
    m = calibrated(capacity=30000, factor=1000000)
    m.do_tare(500 * 1000)
    eq(m.do_zero(600 * 1000), None)  # 600 g of drift: within 2 % (600 g)
    eq(m.tare, 0)
    eq(m.net_grams(600 * 1000), 0)


def test_zero_refused_outside_range_and_cannot_creep():
    m = calibrated(capacity=30000, factor=1000000)
    eq(m.do_zero(601 * 1000), "range")
    eq(m.do_zero(-601 * 1000), "range")
    eq(m.offset, 0)
    eq(m.do_zero(400 * 1000), None)
    # the range is measured from the calibrated zero, not the last ZERO
    eq(m.do_zero(800 * 1000), "range")


def test_zero_unrestricted_before_calibration():
    m = ScaleModel(30000)
    eq(m.do_zero(5000000), None)
    eq(m.offset, 5000000)


def test_calibrate_from_a_known_mass():
    m = ScaleModel(30000)
    m.do_zero(-12345)  # empty platform
    raw_5kg = -12345 + 2147483  # 5 kg at ~429.5 counts/g
    eq(m.do_calibrate(raw_5kg, 5000), None)
    eq(m.factor, 429497)  # 2147483000 / 5000 = 429496.6 -> 429497
    eq(m.calibrated, True)
    eq(m.offset, -12345)
    eq(m.net_grams(raw_5kg), 5000)
    eq(m.net_grams(-12345 + 429497), 1000)  # factor = counts per kilogram
    eq(m.net_grams(-12345 + 430), 1)


def test_calibrate_uses_tare_as_reference_and_reversed_wiring():
    m = ScaleModel(30000)
    m.do_tare(777)
    eq(m.do_calibrate(777 - 100000, 1000), None)  # reading falls with load
    eq(m.factor, -100000)
    eq(m.offset, 777)
    eq(m.tare, 0)
    eq(m.net_grams(777 - 250000), 2500)


def test_calibrate_refusals():
    m = ScaleModel(30000)
    eq(m.do_calibrate(500000, 0), "arg")
    eq(m.do_calibrate(500000, 30001), "range")
    eq(m.do_calibrate(999, 5000), "range")  # nothing on the platform
    eq(m.calibrated, False)
