"""Wiring and settings of one scale board (Raspberry Pi Pico + HX711).

The only place with pin numbers and site settings; docs/firmware.md has the
matching wiring diagram. ``main()`` builds the parts and runs the loop.
"""

import sys
import time

import calstore
import machine
from app import ScaleApp, SerialPort, run
from hx711 import HX711
from scale_logic import ScaleModel

DOUT_PIN = 2  # GP2, physical pin 4  <- HX711 DT
SCK_PIN = 3  # GP3, physical pin 5   -> HX711 SCK
RATE_PIN = 4  # GP4, physical pin 6  -> HX711 RATE (low 10, high 80 SPS)
MAINT_PIN = 22  # GP22, physical pin 29: jumper to GND at power-up = maintenance

RATE = 10  # samples/s: 10 is quieter (mains hum rejection), 80 settles faster
GAIN = 128  # channel A, the load cell input
CAPACITY_G = 30000  # platform capacity; above it the line says OL
BAND_G = 10  # stability band: one display division (capacity / 3000)
CAL_PATH = "/calibration.json"
ERROR_LOG = "/last_error.txt"
WDT_MS = 8000  # the watchdog reboots a hung loop (the longest it may block)


def main() -> None:
    # With kbd_intr(-1) Ctrl-C no longer reaches the REPL, so mpremote cannot
    # interrupt us; the jumper is the way back in to update the firmware.
    if machine.Pin(MAINT_PIN, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0:
        print("green-passbook scale: maintenance mode (GP22 grounded), REPL left open")
        return
    hx = HX711(SCK_PIN, DOUT_PIN, gain=GAIN, rate_pin=RATE_PIN, rate=RATE)
    model = ScaleModel(CAPACITY_G)
    calstore.load(CAL_PATH, model)
    port = SerialPort(sys.stdin.buffer, sys.stdout.buffer)
    app = ScaleApp(hx, model, port.write, CAL_PATH, time.ticks_ms(), rate=RATE, band_g=BAND_G)
    wdt = machine.WDT(timeout=WDT_MS)
    try:
        run(app, port, wdt)
    except Exception as exc:  # noqa: BLE001 - any bug: log it for the technician, then reboot
        try:
            with open(ERROR_LOG, "w") as f:
                sys.print_exception(exc, f)
        except OSError:
            pass  # flash full or gone: rebooting matters more than the log
        machine.reset()
