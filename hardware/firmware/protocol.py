"""Green Passbook scale firmware: the ASCII line protocol (wire format v1).

This is the contract with the kiosk's host driver (``hardware/scale/``); it is
fixed. Change it only together with that driver and bump ``FW_VERSION``.

Transport
---------
USB CDC serial (the Pico's USB port), 115200 8N1 (the baud rate is nominal on
USB CDC). ASCII only. Every line the device sends ends with a single LF.

Checksum
--------
Every device line ends in ``*CK``: two uppercase hex digits, the XOR of every
byte of the line from its first character (inclusive) up to the ``*``
(exclusive). There is no start character, so unlike NMEA the first letter
counts. Worked example: ``W,+0,S,OK`` ->
``W`` 0x57 ^ ``,`` 0x2C ^ ``+`` 0x2B ^ ``0`` 0x30 ^ ``,`` 0x2C ^ ``S`` 0x53
^ ``,`` 0x2C ^ ``O`` 0x4F ^ ``K`` 0x4B = 0x37, so the line is ``W,+0,S,OK*37``.
More: ``W,-3,U,OL*33``, ``R,?,ERR,unknown*6C``; commands ``TARE*02``,
``CAL 5000*6B``.

Device -> host
--------------
``W,<grams>,<S|U>,<ST>*CK``
    A weight report, about 10 per second. ``grams`` is the net weight as a
    signed decimal integer that always carries its sign (``+1250``, ``-3``,
    ``+0``). ``S`` = stable (the filtered reading stayed within one division
    for the hold time), ``U`` = unstable (moving, or not enough samples yet).
    ``ST`` is the status:

    ``OK``  reading valid;
    ``OL``  overload: gross weight above capacity, or the ADC is saturated;
    ``UL``  underload: gross weight below -2 % of capacity (platform lifted,
            load cell pulling the wrong way), or the ADC is saturated low;
    ``ER``  error: the HX711 does not answer (DOUT never goes low: unpowered,
            wire off) or the scale is not calibrated (no calibration in
            flash, or the file is corrupt). ``grams`` is then not to be
            trusted (``+0`` when there is no reading at all); ``INFO`` says
            which (``err=``).

``R,<CMD>,OK[,<detail>]*CK`` / ``R,<CMD>,ERR,<reason>*CK``
    The reply to one command; ``CMD`` is the command word as understood.
    Reasons: ``unstable`` (the reading is moving; retry when stable),
    ``range`` (outside the allowed range, see ZERO / TARE / CAL),
    ``nodata`` (no valid HX711 reading), ``arg`` (bad or missing argument),
    ``flash`` (calibration could not be saved; the old one is kept).

``R,?,ERR,unknown*CK``
    The reply to a line that is not a command: unknown word, bad or malformed
    ``*CK``, characters outside printable ASCII, or a line longer than
    ``MAX_LINE`` bytes (which is discarded whole, up to its end of line; the
    receive buffer never grows past ``MAX_LINE``).

``I,<key>=<value>[,<key>=<value>...]*CK``
    The reply to ``INFO``. Keys: ``fw`` firmware version, ``proto`` protocol
    version, ``rate`` HX711 samples/s, ``gain``, ``cap`` capacity in grams,
    ``factor`` scale factor in ADC counts per kilogram (integer, may be
    negative when the load cell is wired the other way round), ``offset`` the
    zero point in raw ADC counts, ``tare`` the tare in raw counts, ``cal``
    ``yes`` / ``no``, ``err`` ``none`` / ``hx711`` / ``cal`` (no calibration)
    / ``calfile`` (calibration file corrupt, defaults in use).

Host -> device
--------------
One command per line, ended by LF, CR or CR LF; optionally followed by
``*CK`` (same XOR over the bytes before ``*``), which, when present, must
verify. Command words are case-insensitive. Empty lines are ignored. Control
bytes (below 0x20, other than CR / LF) are dropped, so a terminal's stray
Ctrl-C (0x03) or Ctrl-D neither stops the firmware nor spoils the next
command.

``TARE``
    Subtract the load now on the platform (a basket, a bag) from what
    follows: afterwards the display reads +0 with the basket on it. Allowed
    for any gross load from -2 % of capacity up to capacity; kept in RAM only
    (after a power cycle the tare is gone, like a trade scale).
    Reply ``R,TARE,OK,<tared grams>``.
``ZERO``
    Re-zero an *empty* platform (drift, dust, a little water). Clears the
    tare. Unlike TARE it is only allowed within +-2 % of capacity of the zero
    found at calibration (as trade scales are limited), so it cannot hide a
    load; outside that: ``R,ZERO,ERR,range``. The new zero is saved to flash.
    Reply ``R,ZERO,OK``. On a scale that is not calibrated yet, the range
    check is skipped (there is no calibrated zero to measure from).
``CAL <grams>``
    Calibrate with a known mass (a positive integer, in grams, at most the
    capacity) now on the platform. What reads 0 now (zero and tare) is the
    reference, so the procedure is: empty platform, ``ZERO`` (or ``TARE``),
    put the mass on, wait for ``S``, ``CAL 5000``. The new factor and zero are
    saved to flash. Reply ``R,CAL,OK,<factor>`` (counts per kg).
``INFO``
    Reply with one ``I,...`` line.

TARE, ZERO and CAL need a stable reading (else ``ERR,unstable``) and a
working HX711 (else ``ERR,nodata``).
"""

from micropython import const

PROTOCOL_VERSION = "1"
# A command is at most "CAL 1000000*FF" (14 bytes); 32 leaves room for
# stray spaces while keeping the receive buffer tiny and fixed.
MAX_LINE = const(32)

# parse_command results: (CMD_*, argument). The argument is only used by CAL.
CMD_NONE = const(0)  # empty line: ignore, no reply
CMD_UNKNOWN = const(1)
CMD_TARE = const(2)
CMD_ZERO = const(3)
CMD_CAL = const(4)
CMD_INFO = const(5)

COMMAND_NAMES = ("", "?", "TARE", "ZERO", "CAL", "INFO")

_HEX = "0123456789ABCDEF"


def checksum(text: str) -> int:
    """XOR of the bytes of ``text`` (the line up to, not including, ``*``)."""
    ck = 0
    for ch in text:
        ck ^= ord(ch)
    return ck


def seal(body: str) -> str:
    """``body`` + ``*CK`` + LF: a complete device line."""
    ck = checksum(body)
    return body + "*" + _HEX[ck >> 4] + _HEX[ck & 0x0F] + "\n"


def signed(n: int) -> str:
    """An integer with an explicit sign: +0, +1250, -3."""
    return ("+" if n >= 0 else "") + str(n)


def weight_line(grams: int, stable: bool, status: str) -> str:
    return seal("W," + signed(grams) + (",S," if stable else ",U,") + status)


def reply_ok(cmd: str, detail: str | None = None) -> str:
    if detail is None:
        return seal("R," + cmd + ",OK")
    return seal("R," + cmd + ",OK," + detail)


def reply_err(cmd: str, reason: str) -> str:
    return seal("R," + cmd + ",ERR," + reason)


def info_line(pairs: list[tuple[str, str]]) -> str:
    return seal("I," + ",".join(k + "=" + v for k, v in pairs))


def _hex_value(ch: str) -> int:
    """Value of one hex digit (either case), -1 if it is not one."""
    return _HEX.find(ch.upper())


def parse_command(line: str) -> tuple[int, int]:
    """One received line (without its terminator) -> (CMD_*, argument).

    Never raises: anything that is not a well-formed command is CMD_UNKNOWN.
    """
    star = line.find("*")
    if star >= 0:
        ck_text = line[star + 1 :].strip()
        if len(ck_text) != 2:
            return CMD_UNKNOWN, 0
        hi = _hex_value(ck_text[0])
        lo = _hex_value(ck_text[1])
        if hi < 0 or lo < 0 or (hi << 4 | lo) != checksum(line[:star]):
            return CMD_UNKNOWN, 0
        line = line[:star]
    words = line.split()
    if not words:
        # A bare "*CK" is not an empty line: someone sent something.
        return (CMD_UNKNOWN if star >= 0 else CMD_NONE), 0
    word = words[0].upper()
    if word == "CAL":
        if len(words) != 2:
            return CMD_CAL, -1  # -1: "bad argument", reported as ERR,arg
        text = words[1]
        if text.startswith("+"):
            text = text[1:]
        # isdigit() first: int() would accept "1_000", " 5" and such.
        if not text or not text.isdigit() or len(text) > 9:
            return CMD_CAL, -1
        return CMD_CAL, int(text)
    if len(words) != 1:
        return CMD_UNKNOWN, 0
    if word == "TARE":
        return CMD_TARE, 0
    if word == "ZERO":
        return CMD_ZERO, 0
    if word == "INFO":
        return CMD_INFO, 0
    return CMD_UNKNOWN, 0


class LineReader:
    """Assembles bytes into command lines in a fixed buffer of MAX_LINE bytes.

    ``feed(byte)`` returns None until a line ends, then the line as a str, or
    OVERLONG / GARBLED for a line that was discarded. Nothing grows with the
    input, so a host (or noise) sending endless bytes cannot exhaust RAM.
    """

    OVERLONG = "\x00overlong"
    GARBLED = "\x00garbled"

    def __init__(self) -> None:
        self._buf = bytearray(MAX_LINE)
        self._len = 0
        self._overlong = False
        self._garbled = False

    def feed(self, byte: int) -> str | None:
        if byte in (0x0A, 0x0D):  # LF or CR ends a line; CR LF gives an empty one
            return self._finish()
        if byte < 0x20:
            return None  # control bytes (Ctrl-C, Ctrl-D, ...) are dropped
        if byte > 0x7E:
            self._garbled = True
            return None
        if self._len >= MAX_LINE:
            self._overlong = True
            return None
        self._buf[self._len] = byte
        self._len += 1
        return None

    def _finish(self) -> str | None:
        n = self._len
        overlong = self._overlong
        garbled = self._garbled
        self._len = 0
        self._overlong = False
        self._garbled = False
        if overlong:
            return self.OVERLONG
        if garbled:
            return self.GARBLED
        if n == 0:
            return None
        return bytes(self._buf[:n]).decode()
