"""A simulated HX711 wired to stand-in pins: answers the driver bit by bit.

``push(raw)`` makes a conversion ready (DOUT low); the driver's PD_SCK rising
edges then shift it out MSB first, as the chip does. The fake records how many
pulses each read used (25/26/27 = next gain), whether interrupts were off at
every rising edge, and notices power-down (PD_SCK high > 60 us).
"""

import time

import machine


class FakeHX711:
    def __init__(self, sck_id, dout_id):
        self.sck = machine.pins[sck_id]
        self.dout = machine.pins[dout_id]
        self.sck.attach(self._on_sck)
        self.dout.drive(1)  # no conversion ready yet
        self._word = 0
        self._bit = 0
        self._reading = False
        self.pulses = []  # pulses per completed read
        self.edges_with_irq_on = 0
        self.power_downs = 0
        self._rise_us = 0
        self._high = False

    def push(self, raw):
        """A conversion of ``raw`` (signed) is ready: DOUT goes low."""
        if self._reading:
            self.end_read()
        # The chip clamps out-of-range inputs, then sends 24-bit two's complement.
        raw = max(-0x800000, min(0x7FFFFF, raw))
        self._word = raw & 0xFFFFFF
        self._bit = 0
        self._reading = True
        self.dout.drive(0)

    def _on_sck(self, pin, level):
        if level:
            self._high = True
            self._rise_us = time.ticks_us()
            if machine.irq_disabled == 0:
                self.edges_with_irq_on += 1
            if self._reading:
                self._bit += 1
                if self._bit <= 24:
                    self.dout.drive((self._word >> (24 - self._bit)) & 1)
                else:
                    self.dout.drive(1)  # after bit 24 DOUT returns high
            return
        if not self._high:
            return
        self._high = False
        # A high phase > 60 us is a power-down. Not judged during the 24 data
        # bits: the host OS may pause this interpreter at any moment, so the
        # timing would make tests flaky there. (On the chip the pulse train
        # runs with interrupts off; see edges_with_irq_on.)
        if 1 <= self._bit <= 24:
            return
        if time.ticks_diff(time.ticks_us(), self._rise_us) > 60:
            self.power_downs += 1
            if self._reading:
                self.end_read()

    def end_read(self):
        """Close the bookkeeping of the read just made; return its pulses."""
        self.pulses.append(self._bit)
        self._reading = False
        n = self._bit
        self._bit = 0
        return n
