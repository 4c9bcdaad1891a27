"""HX711 24-bit load-cell ADC, bit-banged on two GPIOs (the only hardware layer).

Timing rules from the HX711 datasheet that this driver keeps:

- DOUT goes low when a conversion is ready (10 or 80 per second, chosen by
  the RATE pin: low = 10, high = 80). Reading before that returns garbage.
- Each PD_SCK pulse shifts out one bit, MSB first; 24 pulses give a 24-bit
  two's-complement value. 1, 2 or 3 more pulses (25, 26, 27 in total) choose
  the channel and gain of the *next* conversion: 25 = A/128, 26 = B/32,
  27 = A/64.
- PD_SCK high for more than 60 us powers the chip down. An interrupt (USB,
  a timer) landing between our rising and falling edge could stretch a pulse
  that far, so the pulse train runs with interrupts disabled (~27 pulses,
  well under a millisecond on an RP2040; nothing in it allocates, so the
  garbage collector cannot run either).
- PD_SCK low again after power-down resets the chip to channel A, gain 128;
  the first conversion after that takes ~400 ms at 10 samples/s.

DOUT gets the internal pull-up: with its wire off it reads high, which looks
like "never ready", so a missing HX711 ends as a timeout (status ER) rather
than a stream of plausible zeros.
"""

import time

import machine
from micropython import const

GAIN_PULSES = {128: 25, 32: 26, 64: 27}  # total pulses per read -> next gain
RATES = (10, 80)

_POWER_DOWN_US = const(80)  # > 60 us high = power down (datasheet)


class HX711:
    def __init__(
        self,
        sck_pin: int,
        dout_pin: int,
        gain: int = 128,
        rate_pin: int | None = None,
        rate: int = 10,
    ) -> None:
        if gain not in GAIN_PULSES:
            raise ValueError("gain must be 128, 64 or 32")
        if rate not in RATES:
            raise ValueError("rate must be 10 or 80")
        self._sck = machine.Pin(sck_pin, machine.Pin.OUT, value=0)
        self._dout = machine.Pin(dout_pin, machine.Pin.IN, machine.Pin.PULL_UP)
        # Bound methods cached once: looking them up per bit would allocate.
        self._sck_set = self._sck.value
        self._dout_get = self._dout.value
        self.rate = rate
        self._rate_pin = None
        if rate_pin is not None:
            # A breakout whose RATE pad is soldered to a level ignores this.
            self._rate_pin = machine.Pin(rate_pin, machine.Pin.OUT, value=1 if rate == 80 else 0)
        self.gain = gain
        self._extra = GAIN_PULSES[gain] - 24

    def ready(self) -> bool:
        """True when a conversion waits to be read (DOUT low)."""
        return self._dout_get() == 0

    def read_now(self) -> int:
        """Clock out one conversion; call only when ready(). Signed 24-bit.

        0 is a perfectly good reading (a balanced bridge); "no reading" is
        None from read(), never 0.
        """
        sck = self._sck_set
        dout = self._dout_get
        value = 0
        state = machine.disable_irq()
        for _ in range(24):
            sck(1)
            sck(0)
            # DOUT is valid from 0.1 us after the rising edge until the next
            # one; sampling after the falling edge keeps the high phase short.
            value = (value << 1) | dout()
        for _ in range(self._extra):
            sck(1)
            sck(0)
        machine.enable_irq(state)
        if value & 0x800000:
            value -= 0x1000000
        return value

    def read(self, timeout_ms: int) -> int | None:
        """Wait up to ``timeout_ms`` for a conversion; None on timeout."""
        start = time.ticks_ms()
        while not self.ready():
            if time.ticks_diff(time.ticks_ms(), start) >= timeout_ms:
                return None
            time.sleep_us(200)
        return self.read_now()

    def set_gain(self, gain: int, timeout_ms: int = 500) -> bool:
        """Select gain/channel; the conversion already under way still has the
        old setting, so one reading is made and thrown away. False on timeout.
        """
        if gain not in GAIN_PULSES:
            raise ValueError("gain must be 128, 64 or 32")
        self.gain = gain
        self._extra = GAIN_PULSES[gain] - 24
        return self.read(timeout_ms) is not None

    def power_down(self) -> None:
        self._sck_set(0)
        self._sck_set(1)
        time.sleep_us(_POWER_DOWN_US)

    def power_up(self) -> None:
        """Leave power-down; the chip restarts at channel A, gain 128."""
        self._sck_set(0)
        self._extra = GAIN_PULSES[128] - 24
        if self.gain != 128:
            self.set_gain(self.gain)

    def reset(self) -> None:
        """Power-cycle the chip's logic: the cure for a stuck or confused HX711."""
        self.power_down()
        self.power_up()
