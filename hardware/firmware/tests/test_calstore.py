"""Calibration file: atomic save, round trip, corrupt files fall back to ER."""

import json
import os

import calstore
from scale_logic import ERROR, ScaleModel
from support import eq, tmpdir


def model_with(factor, offset, cal_zero):
    m = ScaleModel(30000)
    m.apply({"factor": factor, "offset": offset, "cal_zero": cal_zero})
    return m


def test_save_load_round_trip_through_a_temp_file():
    d = tmpdir()
    path = d + "/calibration.json"
    eq(calstore.save(path, model_with(429497, -12345, -12000)), True)
    eq(os.listdir(d), ["calibration.json"])  # the .tmp was renamed, not left behind
    m = ScaleModel(30000)
    eq(calstore.load(path, m), calstore.LOADED)
    eq(
        (m.factor, m.offset, m.cal_zero, m.calibrated, m.cal_error),
        (429497, -12345, -12000, True, "none"),
    )
    with open(path) as f:
        eq(json.loads(f.read()), {"v": 1, "factor": 429497, "offset": -12345, "cal_zero": -12000})


def test_save_replaces_the_old_file_and_ignores_a_stale_tmp():
    d = tmpdir()
    path = d + "/cal.json"
    calstore.save(path, model_with(1111, 1, 1))
    with open(path + ".tmp", "w") as f:
        f.write("half a fi")  # left by a power cut during an earlier save
    eq(calstore.save(path, model_with(2222, 2, 2)), True)
    m = ScaleModel(30000)
    calstore.load(path, m)
    eq(m.factor, 2222)
    eq(os.listdir(d), ["cal.json"])


def test_missing_file_gives_defaults_and_er():
    m = ScaleModel(30000)
    eq(calstore.load(tmpdir() + "/nope.json", m), calstore.MISSING)
    eq((m.calibrated, m.cal_error, m.status(0)), (False, "cal", ERROR))


def test_corrupt_files_fall_back_to_defaults_with_er():
    bad = (
        b"{garbage",
        b"",
        b'{"v": 1, "factor": "429497", "offset": 0, "cal_zero": 0}',
        b'{"v": 1, "factor": 0, "offset": 0, "cal_zero": 0}',
        b'{"v": 1, "factor": true, "offset": 0, "cal_zero": 0}',
        b'{"v": 2, "factor": 5, "offset": 0, "cal_zero": 0}',
        b'{"v": 1, "factor": 5, "offset": 99999999, "cal_zero": 0}',
        b'{"v": 1, "factor": 5, "offset": 0}',
        b"[1, 2, 3]",
        b"\xff\xfe\x00garbage",
        b'{"v": 1, "pad": "' + b"x" * 2000 + b'"}',
    )
    d = tmpdir()
    path = d + "/cal.json"
    for blob in bad:
        with open(path, "wb") as f:
            f.write(blob)
        m = model_with(429497, 5, 5)  # a previous good state must not survive
        eq(calstore.load(path, m), calstore.CORRUPT)
        eq((m.calibrated, m.cal_error, m.factor, m.offset), (False, "calfile", 1000, 0))
        eq(m.status(123), ERROR)


def test_save_failure_is_reported_not_raised():
    eq(calstore.save(tmpdir() + "/no/such/dir/cal.json", model_with(5, 0, 0)), False)
