"""HX711 bit-banging against the stand-in pins and a simulated chip."""

import time

import machine
from fake_hx711 import FakeHX711
from hx711 import HX711
from support import eq, raises

SCK, DOUT, RATE = 3, 2, 4


def make(gain=128, rate=10):
    hx = HX711(SCK, DOUT, gain=gain, rate_pin=RATE, rate=rate)
    return hx, FakeHX711(SCK, DOUT)


def test_decodes_24_bit_twos_complement():
    hx, chip = make()
    for raw in (0, 1, -1, 123456, -123456, 0x7FFFFF, -0x800000, 0x400000, -2):
        chip.push(raw)
        assert hx.ready()
        eq(hx.read_now(), raw)
        eq(chip.end_read(), 25)


def test_raw_zero_is_returned_as_zero_not_none():
    hx, chip = make()
    chip.push(0)
    eq(hx.read(100), 0)


def test_gain_selects_pulse_count():
    for gain, pulses in ((128, 25), (32, 26), (64, 27)):
        machine.reset_stub()
        hx, chip = make(gain=gain)
        chip.push(4242)
        eq(hx.read_now(), 4242)
        eq(chip.end_read(), pulses)


def test_set_gain_discards_the_conversion_in_flight():
    hx, chip = make()
    chip.push(111)  # converted at the old gain
    eq(hx.set_gain(64, 100), True)
    eq(chip.end_read(), 27)  # the discarded read already asks for gain 64
    chip.push(222)
    eq(hx.read_now(), 222)
    eq(chip.end_read(), 27)
    raises(ValueError, hx.set_gain, 100)


def test_pulse_train_runs_with_interrupts_disabled():
    hx, chip = make()
    for raw in (5, -5, 0):
        chip.push(raw)
        hx.read_now()
    eq(chip.edges_with_irq_on, 0)
    eq(machine.irq_disabled, 0)  # and re-enabled afterwards
    eq(machine.irq_log, ["disable", "enable"] * 3)


def test_sck_idles_low_and_dout_has_a_pull_up():
    hx, _ = make()
    eq(machine.pins[SCK].value(), 0)
    eq(machine.pins[DOUT].pull, machine.Pin.PULL_UP)
    eq(hx.ready(), False)  # pulled up: nothing ready


def test_timeout_when_dout_never_goes_low():
    hx, _ = make()
    t0 = time.ticks_ms()
    eq(hx.read(30), None)
    assert time.ticks_diff(time.ticks_ms(), t0) >= 30
    eq(machine.pins[SCK].writes, 0)  # never clocked a chip that was not ready


def test_reset_holds_sck_high_long_enough_to_power_down():
    hx, chip = make()
    hx.reset()
    eq(chip.power_downs, 1)
    eq(machine.pins[SCK].value(), 0)  # and low again: powered up


def test_rate_pin_selects_10_or_80_samples_per_second():
    make(rate=10)
    eq(machine.pins[RATE].value(), 0)
    machine.reset_stub()
    make(rate=80)
    eq(machine.pins[RATE].value(), 1)
    raises(ValueError, HX711, SCK, DOUT, 128, None, 40)
    raises(ValueError, HX711, SCK, DOUT, 100)
