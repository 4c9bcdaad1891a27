"""The main loop end to end: simulated HX711 in, protocol lines out."""

import app
import calstore
import machine
import micropython_stub
from fake_hx711 import FakeHX711
from hx711 import HX711
from protocol import MAX_LINE
from scale_logic import ScaleModel
from support import FakePort, body_of, eq, tmpdir

SCK, DOUT = 3, 2
COUNTS_PER_G = 100  # factor 100000 counts/kg: a 30 kg cell at 2 mV/V, 3.3 V


class Rig:
    """App + simulated chip + captured output, on a clock the test moves."""

    def __init__(self, calibrated=True, cal_path=None):
        self.hx = HX711(SCK, DOUT)
        self.chip = FakeHX711(SCK, DOUT)
        self.model = ScaleModel(30000)
        if calibrated:
            self.model.apply({"factor": COUNTS_PER_G * 1000, "offset": 0, "cal_zero": 0})
        self.out = []
        self.path = cal_path or tmpdir() + "/cal.json"
        self.now = 0
        self.app = app.ScaleApp(self.hx, self.model, self.out.append, self.path, 0, rate=10)

    def run_ms(self, ms, grams=None, raw=None):
        """Advance time in 10 ms steps; a new conversion every 100 ms (10 SPS)."""
        for _ in range(ms // 10):
            self.now += 10
            if self.now % 100 == 0 and (grams is not None or raw is not None):
                self.chip.push(raw if raw is not None else grams * COUNTS_PER_G)
            self.app.step(self.now)

    def send(self, text):
        for b in text.encode():
            self.app.feed(b)

    def bodies(self, prefix):
        """Bodies of the lines sent with ``prefix``, which are then forgotten."""
        found = [body_of(line) for line in self.out if line.startswith(prefix)]
        self.out[:] = [line for line in self.out if not line.startswith(prefix)]
        return found


def test_reports_about_ten_times_a_second():
    rig = Rig()
    rig.run_ms(2000, grams=1250)
    lines = rig.bodies("W,")
    assert 19 <= len(lines) <= 21, len(lines)
    eq(lines[-1], "W,+1250,S,OK")


def test_stable_flag_needs_the_hold_time():
    rig = Rig()
    rig.run_ms(300, grams=100)
    eq(rig.bodies("W,")[-1], "W,+100,U,OK")  # 3 samples: not yet
    rig.run_ms(300, grams=100)
    eq(rig.bodies("W,")[-1], "W,+100,S,OK")  # 5 samples in the band (0.5 s)
    rig.run_ms(300, grams=700)  # a load arrives
    eq(rig.bodies("W,")[-1], "W,+700,U,OK")


def test_raw_zero_reading_reports_ok_not_error():
    rig = Rig()
    rig.run_ms(1000, raw=0)
    eq(rig.bodies("W,")[-1], "W,+0,S,OK")


def test_negative_weight_and_overload():
    rig = Rig()
    rig.run_ms(1000, grams=-3)
    eq(rig.bodies("W,")[-1], "W,-3,S,OK")
    rig.run_ms(1000, grams=30001)
    eq(rig.bodies("W,")[-1], "W,+30001,S,OL")


def test_hx711_timeout_reports_er_and_resets_the_chip():
    rig = Rig()
    rig.run_ms(1000, grams=50)
    eq(rig.bodies("W,")[-1], "W,+50,S,OK")
    rig.run_ms(1500)  # DOUT never goes low again
    eq(rig.bodies("W,")[-1], "W,+0,U,ER")
    assert rig.chip.power_downs >= 1
    rig.send("INFO\n")
    assert rig.bodies("I,")[0].endswith(",err=hx711")
    rig.send("TARE\n")
    eq(rig.bodies("R,"), ["R,TARE,ERR,nodata"])
    rig.run_ms(1000, grams=50)  # the chip is back
    eq(rig.bodies("W,")[-1], "W,+50,S,OK")


def test_tare_then_net_weight():
    rig = Rig()
    rig.run_ms(1000, grams=1200)
    rig.send("TARE\n")
    eq(rig.bodies("R,"), ["R,TARE,OK,+1200"])
    rig.run_ms(1000, grams=3700)
    eq(rig.bodies("W,")[-1], "W,+2500,S,OK")


def test_commands_refused_while_unstable():
    rig = Rig()
    rig.run_ms(200, grams=10)
    rig.send("TARE\nZERO*02\nCAL 5000\n")  # ZERO checksum: 0x5A^0x45^0x52^0x4F = 0x02
    eq(rig.bodies("R,"), ["R,TARE,ERR,unstable", "R,ZERO,ERR,unstable", "R,CAL,ERR,unstable"])


def test_zero_in_range_saved_and_out_of_range_refused():
    rig = Rig()
    rig.run_ms(1000, grams=601)  # 2 % of 30 kg is 600 g
    rig.send("ZERO\n")
    eq(rig.bodies("R,"), ["R,ZERO,ERR,range"])
    rig.run_ms(1000, grams=12)
    rig.send("ZERO\n")
    eq(rig.bodies("R,"), ["R,ZERO,OK"])
    rig.run_ms(200, grams=12)
    eq(rig.bodies("W,")[-1], "W,+0,S,OK")
    m = ScaleModel(30000)
    eq(calstore.load(rig.path, m), calstore.LOADED)
    eq(m.offset, 12 * COUNTS_PER_G)


def test_calibrate_end_to_end_and_info():
    rig = Rig(calibrated=False)
    rig.run_ms(1000, raw=-5000)
    eq(rig.bodies("W,")[-1], "W,-5000,S,ER")  # default 1 count/g, flagged as not calibrated
    rig.send("ZERO\n")
    eq(rig.bodies("R,"), ["R,ZERO,OK"])
    rig.run_ms(1000, raw=-5000 + 2147483)  # 5 kg
    rig.send("CAL 5000\n")
    eq(rig.bodies("R,"), ["R,CAL,OK,429497"])
    rig.run_ms(200, raw=-5000 + 2147483)
    eq(rig.bodies("W,")[-1], "W,+5000,S,OK")
    rig.send("INFO\n")
    eq(
        rig.bodies("I,"),
        [
            "I,fw=1.0.0,proto=1,rate=10,gain=128,cap=30000,factor=429497,offset=-5000,tare=0,cal=yes,err=none"
        ],
    )
    m = ScaleModel(30000)
    calstore.load(rig.path, m)
    eq((m.factor, m.offset), (429497, -5000))


def test_a_noisy_uncalibrated_board_still_settles_so_it_can_be_zeroed():
    rig = Rig(calibrated=False)
    for i in range(10):  # HX711 noise of +-60 counts; 1 count = "1 g" before CAL
        rig.run_ms(100, raw=777 + (60 if i % 2 else -60))
    assert rig.bodies("W,")[-1].endswith(",S,ER")
    rig.send("ZERO\n")
    eq(rig.bodies("R,"), ["R,ZERO,OK"])


def test_calibration_kept_when_flash_write_fails():
    rig = Rig(cal_path=tmpdir() + "/missing-dir/cal.json")
    rig.run_ms(1000, grams=5000)
    rig.send("CAL 2500\n")
    eq(rig.bodies("R,"), ["R,CAL,ERR,flash"])
    eq(rig.model.factor, COUNTS_PER_G * 1000)
    rig.send("CAL\nCAL 0\nCAL 99999\n")
    eq(rig.bodies("R,"), ["R,CAL,ERR,arg", "R,CAL,ERR,arg", "R,CAL,ERR,range"])


def test_unknown_garbled_and_overlong_lines():
    rig = Rig()
    rig.run_ms(1000, grams=1)
    # INFO's checksum is 0x49^0x4E^0x46^0x4F = 0x0E, so *1D is wrong
    rig.send("HELLO\nTARE*99\n" + "A" * (MAX_LINE + 1) + "\nTA\u00e9RE\nINFO*1D\nINFO*0E\n")
    eq(rig.bodies("R,"), ["R,?,ERR,unknown"] * 5)
    eq(len(rig.bodies("I,")), 1)


def test_corrupt_calibration_file_boots_into_er_not_a_crash():
    path = tmpdir() + "/cal.json"
    with open(path, "w") as f:
        f.write('{"v": 1, "factor": ')
    rig = Rig(calibrated=False, cal_path=path)
    eq(calstore.load(path, rig.model), calstore.CORRUPT)
    rig.run_ms(1000, grams=2)
    eq(rig.bodies("W,")[-1][-2:], "ER")
    rig.send("INFO\n")
    assert rig.bodies("I,")[0].endswith(",cal=no,err=calfile")


def test_run_loop_disables_ctrl_c_and_treats_0x03_as_data():
    rig = Rig()
    port = FakePort()
    wdt = machine.WDT()

    def loops(n):
        for _ in range(n):
            rig.chip.push(1000 * COUNTS_PER_G)
            app.run(rig.app, port, wdt, max_loops=1)

    loops(10)  # steady load: stable
    port.incoming = bytearray(b"\x03\x03INFO\n\x03TARE*02\n\x03\x03\x03")
    loops(3)
    eq(micropython_stub.kbd_intr_calls, [-1] * 13)
    eq(wdt.fed, 13)
    eq(port.incoming, bytearray())  # every byte consumed, none stopped the loop
    bodies = [body_of(line) for line in rig.out if not line.startswith("W,")]
    eq(len(bodies), 2)
    assert bodies[0].startswith("I,fw=1.0.0,"), bodies[0]
    eq(bodies[1], "R,TARE,OK,+1000")
    rig.send("INFO\n")  # the trailing 0x03s did not spoil the next command
    eq(len(rig.bodies("I,")), 2)


def test_serial_port_reads_raw_bytes_including_0x03():
    path = tmpdir() + "/in.bin"
    with open(path, "wb") as f:
        f.write(b"\x03ZERO\n")
    out = FakePort()
    with open(path, "rb") as stream:
        port = app.SerialPort(stream, out)
        got = []
        while True:
            b = port.read_byte()
            if b < 0:
                break
            got.append(b)
    eq(bytes(got), b"\x03ZERO\n")
    port.write("W,+0,S,OK*37\n")
    eq(out.sent, [b"W,+0,S,OK*37\n"])
