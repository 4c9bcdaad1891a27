"""Scale arithmetic with no hardware: spike filter, stability, calibration.

Everything is in integers. On the RP2040 a float is a heap object and single
precision; raw ADC counts are 24-bit and fit MicroPython's small ints, so the
per-sample path (median, stability) allocates nothing. Only the conversion to
grams (``counts * 1000``, done once per report at ~10 Hz) may exceed a small
int.

Units: raw = signed 24-bit HX711 counts; factor = counts per kilogram (so a
cell giving 14.3 counts/g keeps three significant digits as 14300); grams are
integers.
"""

from micropython import const

# HX711 output clamps here when the input is out of its range.
RAW_MAX = const(0x7FFFFF)
RAW_MIN = const(-0x800000)

# A calibration must move the reading by at least this many counts, so that a
# CAL with nothing on the platform (or a disconnected cell) is refused instead
# of producing a factor near zero.
MIN_CAL_COUNTS = const(1000)

DEFAULT_FACTOR = const(1000)  # 1 count per gram: obviously wrong, and flagged ER

# The stability band never gets narrower than this many counts: the HX711's
# own noise (datasheet: 50 nV rms at gain 128 and 10 SPS, some 20-30 counts)
# would otherwise keep an uncalibrated board (1 count = "1 g") from ever
# reading stable, and ZERO / CAL need stable. An estimate, to confirm on the
# bench; at 100 counts/g it is 4 g.
MIN_BAND_COUNTS = const(400)

OK = "OK"
OVERLOAD = "OL"
UNDERLOAD = "UL"
ERROR = "ER"


def counts_to_grams(counts: int, factor: int) -> int:
    """counts * 1000 / factor, rounded half away from zero (symmetric around 0)."""
    num = counts * 1000
    den = factor if factor > 0 else -factor
    q = ((num if num >= 0 else -num) + den // 2) // den
    return q if (num >= 0) == (factor > 0) else -q


def grams_to_counts(grams: int, factor: int) -> int:
    """Inverse of counts_to_grams, rounded half away from zero."""
    num = grams * factor
    q = ((num if num >= 0 else -num) + 500) // 1000
    return q if num >= 0 else -q


class MedianFilter:
    """Running median over the last ``size`` samples (odd size, e.g. 5).

    A single spike (a knock on the platform, an SPI glitch) can never be the
    median of three or more samples, so it never reaches the display. Buffers
    are allocated once; each ``add`` sorts a copy by insertion (size is tiny).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._ring = [0] * size
        self._sorted = [0] * size
        self._count = 0
        self._next = 0

    def reset(self) -> None:
        self._count = 0
        self._next = 0

    def add(self, value: int) -> int:
        """Add a sample; return the median of the samples held so far."""
        self._ring[self._next] = value
        self._next = (self._next + 1) % self._size
        if self._count < self._size:
            self._count += 1
        n = self._count
        s = self._sorted
        ring = self._ring
        for i in range(n):
            v = ring[i]
            j = i - 1
            while j >= 0 and s[j] > v:
                s[j + 1] = s[j]
                j -= 1
            s[j + 1] = v
        # With an even count (only while filling) the lower middle is taken.
        return s[(n - 1) // 2]


class Stability:
    """Stable once the last ``hold`` values all lie within ``band`` of each other.

    Fewer than ``hold`` values since the last reset is never stable, so a
    fresh load has to settle for the whole hold time before it reads ``S``.
    """

    def __init__(self, hold: int, band: int) -> None:
        self._hold = hold
        self.band = band
        self._ring = [0] * hold
        self._count = 0
        self._next = 0

    def reset(self) -> None:
        self._count = 0
        self._next = 0

    def add(self, value: int) -> bool:
        self._ring[self._next] = value
        self._next = (self._next + 1) % self._hold
        if self._count < self._hold:
            self._count += 1
            if self._count < self._hold:
                return False
        lo = hi = value
        for v in self._ring:
            if v < lo:
                lo = v
            elif v > hi:
                hi = v
        return hi - lo <= self.band


class ScaleModel:
    """Zero, tare and calibration state, and the rules for changing them.

    ``offset``: raw counts of the empty platform (the zero), saved in flash.
    ``cal_zero``: the zero at the last calibration; ZERO may move ``offset``
    only within ``zero_range_pct`` of capacity from it, so zero cannot creep
    by repeated ZEROs. ``tare``: raw counts of a container, RAM only.
    The command methods return None on success or an ``ERR`` reason.
    """

    def __init__(self, capacity_g: int, zero_range_pct: int = 2) -> None:
        self.capacity_g = capacity_g
        self.zero_range_g = capacity_g * zero_range_pct // 100
        self.factor = DEFAULT_FACTOR
        self.offset = 0
        self.cal_zero = 0
        self.tare = 0
        self.calibrated = False
        # Why ER is shown while not calibrated: "cal" none saved, "calfile" corrupt.
        self.cal_error = "cal"

    # -- persistence helpers (calstore.py does the file I/O) --------------

    def to_dict(self) -> dict[str, int]:
        return {"v": 1, "factor": self.factor, "offset": self.offset, "cal_zero": self.cal_zero}

    def apply(self, data: dict[str, int]) -> None:
        """Take a validated calibration record (see calstore.validate)."""
        self.factor = data["factor"]
        self.offset = data["offset"]
        self.cal_zero = data["cal_zero"]
        self.tare = 0
        self.calibrated = True
        self.cal_error = "none"

    def snapshot(self) -> tuple[int, int, int, int, bool, str]:
        """Everything a command may change, to roll back when saving fails."""
        return (self.factor, self.offset, self.cal_zero, self.tare, self.calibrated, self.cal_error)

    def restore(self, snap: tuple[int, int, int, int, bool, str]) -> None:
        self.factor, self.offset, self.cal_zero, self.tare, self.calibrated, self.cal_error = snap

    def set_defaults(self, reason: str) -> None:
        self.factor = DEFAULT_FACTOR
        self.offset = 0
        self.cal_zero = 0
        self.tare = 0
        self.calibrated = False
        self.cal_error = reason

    # -- readings ---------------------------------------------------------

    def net_grams(self, raw: int) -> int:
        return counts_to_grams(raw - self.offset - self.tare, self.factor)

    def gross_grams(self, raw: int) -> int:
        return counts_to_grams(raw - self.offset, self.factor)

    def status(self, raw: int) -> str:
        if not self.calibrated:
            return ERROR
        if raw >= RAW_MAX:
            return OVERLOAD if self.factor > 0 else UNDERLOAD
        if raw <= RAW_MIN:
            return UNDERLOAD if self.factor > 0 else OVERLOAD
        gross = self.gross_grams(raw)
        if gross > self.capacity_g:
            return OVERLOAD
        if gross < -self.zero_range_g:
            return UNDERLOAD
        return OK

    def band_counts(self, band_g: int) -> int:
        """A stability band in grams as raw counts, at least MIN_BAND_COUNTS."""
        c = grams_to_counts(band_g, self.factor)
        c = c if c >= 0 else -c
        return c if c > MIN_BAND_COUNTS else MIN_BAND_COUNTS

    # -- commands ---------------------------------------------------------

    def do_tare(self, raw: int) -> str | None:
        gross = self.gross_grams(raw)
        if gross > self.capacity_g or gross < -self.zero_range_g:
            return "range"
        self.tare = raw - self.offset
        return None

    def do_zero(self, raw: int) -> str | None:
        if self.calibrated:
            drift = counts_to_grams(raw - self.cal_zero, self.factor)
            if drift > self.zero_range_g or drift < -self.zero_range_g:
                return "range"
        else:
            self.cal_zero = raw
        self.offset = raw
        self.tare = 0
        return None

    def do_calibrate(self, raw: int, grams: int) -> str | None:
        if grams <= 0:
            return "arg"
        if grams > self.capacity_g:
            return "range"
        reference = self.offset + self.tare  # what reads 0 right now
        delta = raw - reference
        if -MIN_CAL_COUNTS < delta < MIN_CAL_COUNTS:
            return "range"
        # counts per kg, rounded half away from zero
        num = delta * 1000
        q = ((num if num >= 0 else -num) + grams // 2) // grams
        self.factor = q if num >= 0 else -q
        self.offset = reference
        self.cal_zero = reference
        self.tare = 0
        self.calibrated = True
        self.cal_error = "none"
        return None
