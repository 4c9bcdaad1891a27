"""The scale's main loop: sample the HX711, filter, report, obey commands.

``ScaleApp`` holds no hardware of its own: it gets an HX711-like object
(``ready()`` / ``read_now()`` / ``reset()``), a ``write(str)`` callable and
the time in milliseconds, so the whole loop runs on the host under the
MicroPython unix port with a simulated chip. ``SerialPort`` is the thin USB
CDC adapter; ``run`` is the forever loop that ``board.main`` starts.
"""

import select
import time

import calstore
import machine
import micropython
import protocol
from hx711 import HX711
from micropython import const
from protocol import LineReader
from scale_logic import ERROR, MedianFilter, ScaleModel, Stability, counts_to_grams

try:  # only for mypy; MicroPython never evaluates annotations, and has no typing
    from collections.abc import Callable
    from typing import BinaryIO

    # The stubs' opaque ticks type: no arithmetic, only time.ticks_diff().
    from _mpy_shed.time_mp import _TicksMs as Ticks
except ImportError:
    pass

FW_VERSION = "1.0.0"
REPORT_MS = const(100)  # ~10 Hz weight lines
HOLD_MS = const(500)  # a reading must stay within the band this long to be "S"
MAX_BYTES_PER_LOOP = const(64)  # bounded input work per loop: sampling stays on time


class ScaleApp:
    def __init__(
        self,
        hx: HX711,
        model: ScaleModel,
        write: "Callable[[str], object]",
        cal_path: str,
        now_ms: "Ticks",
        rate: int = 10,
        band_g: int = 10,
        median_size: int = 5,
    ) -> None:
        self.hx = hx
        self.model = model
        self.write = write
        self.cal_path = cal_path
        self.rate = rate
        self.band_g = band_g
        self.reader = LineReader()
        self.median = MedianFilter(median_size)
        hold = rate * HOLD_MS // 1000
        self.stability = Stability(hold if hold > 2 else 2, model.band_counts(band_g))
        # Several sample periods without DOUT going low = the chip is gone.
        # 400 ms covers the HX711's settling time after a reset at 10 SPS.
        self.timeout_ms = 3 * 1000 // rate + 400
        self.raw: int | None = None  # latest median-filtered raw; None = no reading
        self.stable = False
        self.hx_error = False
        self.last_sample_ms = now_ms
        self.last_report_ms = now_ms

    # -- sampling and reporting -------------------------------------------

    def step(self, now_ms: "Ticks") -> None:
        """One pass of the loop: take a sample if ready, report if due."""
        if self.hx.ready():
            filtered = self.median.add(self.hx.read_now())
            self.stable = self.stability.add(filtered)
            self.raw = filtered
            self.hx_error = False
            self.last_sample_ms = now_ms
        elif time.ticks_diff(now_ms, self.last_sample_ms) > self.timeout_ms:
            if not self.hx_error:
                self.hx_error = True
                self.raw = None
                self.stable = False
                self.median.reset()
                self.stability.reset()
            # Power-cycle the chip, then give it a full timeout to come back.
            self.hx.reset()
            self.last_sample_ms = now_ms
        if time.ticks_diff(now_ms, self.last_report_ms) >= REPORT_MS:
            self.last_report_ms = now_ms
            self.write(self.weight_line())

    def weight_line(self) -> str:
        raw = self.raw
        if raw is None:  # "is None": a raw reading of 0 is a reading
            return protocol.weight_line(0, False, ERROR)
        status = self.model.status(raw)
        return protocol.weight_line(self.model.net_grams(raw), self.stable, status)

    # -- commands ---------------------------------------------------------

    def feed(self, byte: int) -> None:
        line = self.reader.feed(byte)
        if line is not None:
            self.handle_line(line)

    def handle_line(self, line: str) -> None:
        if line in (LineReader.OVERLONG, LineReader.GARBLED):
            self.write(protocol.reply_err("?", "unknown"))
            return
        cmd, arg = protocol.parse_command(line)
        if cmd == protocol.CMD_NONE:
            return
        if cmd == protocol.CMD_UNKNOWN:
            self.write(protocol.reply_err("?", "unknown"))
        elif cmd == protocol.CMD_INFO:
            self.write(self.info_line())
        else:
            self.write(self._change(cmd, arg))

    def _change(self, cmd: int, arg: int) -> str:
        """TARE / ZERO / CAL: the commands that need a steady, valid reading."""
        name = protocol.COMMAND_NAMES[cmd]
        if cmd == protocol.CMD_CAL and arg < 0:
            return protocol.reply_err(name, "arg")
        raw = self.raw
        if raw is None or self.hx_error:
            return protocol.reply_err(name, "nodata")
        if not self.stable:
            return protocol.reply_err(name, "unstable")
        model = self.model
        before = model.snapshot()
        if cmd == protocol.CMD_TARE:
            reason = model.do_tare(raw)
            if reason is not None:
                return protocol.reply_err(name, reason)
            # TARE lives in RAM only: nothing to save.
            return protocol.reply_ok(
                name, protocol.signed(counts_to_grams(model.tare, model.factor))
            )
        zero = cmd == protocol.CMD_ZERO
        reason = model.do_zero(raw) if zero else model.do_calibrate(raw, arg)
        if reason is not None:
            return protocol.reply_err(name, reason)
        if not calstore.save(self.cal_path, model):
            model.restore(before)
            return protocol.reply_err(name, "flash")
        if zero:
            return protocol.reply_ok(name)
        self.stability.band = model.band_counts(self.band_g)  # the factor changed
        return protocol.reply_ok(name, str(model.factor))

    def info_line(self) -> str:
        m = self.model
        err = "hx711" if self.hx_error or self.raw is None else m.cal_error
        return protocol.info_line(
            [
                ("fw", FW_VERSION),
                ("proto", protocol.PROTOCOL_VERSION),
                ("rate", str(self.rate)),
                ("gain", str(self.hx.gain)),
                ("cap", str(m.capacity_g)),
                ("factor", str(m.factor)),
                ("offset", str(m.offset)),
                ("tare", str(m.tare)),
                ("cal", "yes" if m.calibrated else "no"),
                ("err", err),
            ]
        )


class SerialPort:
    """USB CDC as non-blocking bytes: ``read_byte()`` is -1 when nothing waits.

    Uses the ``.buffer`` streams: binary in, and binary out so that LF is
    sent as LF (the text ``sys.stdout`` turns it into CR LF on the Pico).
    """

    def __init__(self, stream_in: "BinaryIO", stream_out: "BinaryIO") -> None:
        self._in = stream_in
        self._out = stream_out
        self._poll = select.poll()
        self._poll.register(stream_in, select.POLLIN)
        self._byte = bytearray(1)

    def read_byte(self) -> int:
        # ipoll(0): the allocation-free form of poll(0); no waiting.
        for _ in self._poll.ipoll(0):
            if self._in.readinto(self._byte) == 1:
                return self._byte[0]
        return -1

    def write(self, line: str) -> None:
        self._out.write(line.encode())


def run(
    app: ScaleApp, port: SerialPort, wdt: "machine.WDT | None" = None, max_loops: int = -1
) -> None:
    """The forever loop (``max_loops`` bounds it for tests).

    ``kbd_intr(-1)`` first: the USB serial line is our data channel, and a
    0x03 byte on it must reach the parser, not raise KeyboardInterrupt.
    """
    micropython.kbd_intr(-1)
    loops = 0
    while max_loops < 0 or loops < max_loops:
        for _ in range(MAX_BYTES_PER_LOOP):
            byte = port.read_byte()
            if byte < 0:
                break
            app.feed(byte)
        app.step(time.ticks_ms())
        if wdt is not None:
            wdt.feed()
        loops += 1
        time.sleep_ms(1)
