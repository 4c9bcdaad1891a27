"""Calibration in flash: one small JSON file, replaced atomically.

A power cut while saving must leave either the old or the new calibration,
never half a file: the record is written to ``<path>.tmp``, closed, and then
``os.rename``d over ``<path>`` (littlefs on the Pico, like POSIX, replaces the
target in one step). A missing, unreadable or implausible file is reported,
not raised: the firmware then runs on defaults and shows ``ER`` until a
technician calibrates.
"""

import json
import os

from scale_logic import ScaleModel

KEYS = ("factor", "offset", "cal_zero")

# Bounds that a real record can never exceed: 24-bit offsets, and a factor of
# at most 2^24 counts per gram.
_RAW_LIMIT = 1 << 24
_FACTOR_LIMIT = 1 << 34
_MAX_FILE = 512

# load() results
LOADED = "none"
MISSING = "cal"
CORRUPT = "calfile"


def validate(data: object) -> dict[str, int] | None:
    """The record if it is well formed and plausible, else None."""
    if not isinstance(data, dict) or data.get("v") != 1:
        return None
    out: dict[str, int] = {}
    for key in KEYS:
        value = data.get(key)
        # bool is an int subclass on CPython; reject it explicitly anyway.
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        out[key] = value
    if out["factor"] == 0 or not -_FACTOR_LIMIT < out["factor"] < _FACTOR_LIMIT:
        return None
    for key in ("offset", "cal_zero"):
        if not -_RAW_LIMIT < out[key] < _RAW_LIMIT:
            return None
    return out


def load(path: str, model: ScaleModel) -> str:
    """Load ``path`` into ``model``; return LOADED, MISSING or CORRUPT.

    On MISSING / CORRUPT the model is set to defaults with that reason, so
    the weight lines say ``ER`` and INFO says ``err=cal`` / ``err=calfile``.
    """
    try:
        with open(path, "rb") as f:
            # Bounded read: a record is ~60 bytes; a huge file is corrupt,
            # and must not exhaust the Pico's RAM on the way to finding out.
            blob = f.read(_MAX_FILE + 1)
    except OSError:
        model.set_defaults(MISSING)
        return MISSING
    record = None
    if len(blob) <= _MAX_FILE:
        try:
            record = validate(json.loads(blob.decode()))
        except ValueError:  # bad JSON, or bytes that are not UTF-8 (UnicodeError)
            record = None
    if record is None:
        model.set_defaults(CORRUPT)
        return CORRUPT
    model.apply(record)
    return LOADED


def save(path: str, model: ScaleModel) -> bool:
    """Write the model's calibration atomically; False if the flash refused."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(model.to_dict()))
        os.rename(tmp, path)
    except OSError:
        try:  # noqa: SIM105 - MicroPython has no contextlib
            os.remove(tmp)
        except OSError:
            pass  # nothing was written, or the filesystem is gone: keep going
        return False
    return True
