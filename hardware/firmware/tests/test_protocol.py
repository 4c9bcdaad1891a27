"""Wire protocol: checksums, line formats, command parsing, bounded input."""

import protocol as p
from protocol import LineReader
from support import eq


def test_checksum_hand_computed_vectors():
    # Worked out by hand, byte by byte (see the protocol docstring):
    # W^,^+^0^,^S^,^O^K = 0x37
    eq(p.checksum("W,+0,S,OK"), 0x37)
    eq(p.weight_line(0, True, "OK"), "W,+0,S,OK*37\n")
    eq(p.weight_line(-3, False, "OL"), "W,-3,U,OL*33\n")
    eq(p.reply_err("?", "unknown"), "R,?,ERR,unknown*6C\n")
    eq(p.checksum("TARE"), 0x02)
    eq(p.checksum("CAL 5000"), 0x6B)


def test_checksum_is_two_uppercase_hex_digits():
    # "R,X" = 0x52^0x2C^0x58 = 0x26; "J" alone = 0x4A: letters must be uppercase
    eq(p.seal("R,X"), "R,X*26\n")
    eq(p.seal("J"), "J*4A\n")
    eq(p.seal(""), "*00\n")


def test_grams_always_carry_a_sign():
    eq(p.signed(1250), "+1250")
    eq(p.signed(-3), "-3")
    eq(p.signed(0), "+0")
    eq(p.weight_line(1250, True, "OK"), p.seal("W,+1250,S,OK"))


def test_reply_and_info_formats():
    eq(p.reply_ok("ZERO"), p.seal("R,ZERO,OK"))
    eq(p.reply_ok("CAL", "429497"), p.seal("R,CAL,OK,429497"))
    eq(p.reply_err("ZERO", "range"), p.seal("R,ZERO,ERR,range"))
    eq(p.info_line([("fw", "1.0.0"), ("cal", "no")]), p.seal("I,fw=1.0.0,cal=no"))


def test_parse_valid_commands():
    eq(p.parse_command("TARE"), (p.CMD_TARE, 0))
    eq(p.parse_command("ZERO"), (p.CMD_ZERO, 0))
    eq(p.parse_command("zero"), (p.CMD_ZERO, 0))
    eq(p.parse_command("INFO"), (p.CMD_INFO, 0))
    eq(p.parse_command("  CAL   5000 "), (p.CMD_CAL, 5000))
    eq(p.parse_command("CAL +250"), (p.CMD_CAL, 250))
    eq(p.parse_command(""), (p.CMD_NONE, 0))
    eq(p.parse_command("   "), (p.CMD_NONE, 0))


def test_parse_with_good_checksum():
    eq(p.parse_command("TARE*02"), (p.CMD_TARE, 0))
    eq(p.parse_command("CAL 5000*6B"), (p.CMD_CAL, 5000))
    eq(p.parse_command("CAL 5000*6b"), (p.CMD_CAL, 5000))


def test_parse_with_bad_checksum_is_unknown():
    for line in ("TARE*03", "TARE*0", "TARE*002", "TARE*G2", "CAL 5001*6B", "*02", "TARE*"):
        eq(p.parse_command(line), (p.CMD_UNKNOWN, 0))


def test_parse_unknown_and_bad_arguments():
    for line in ("FOO", "TARE NOW", "TAREX", "INFO 1", "W,+0,S,OK"):
        eq(p.parse_command(line), (p.CMD_UNKNOWN, 0))
    # CAL with a missing or bad mass is understood as CAL, argument -1 (ERR,arg)
    for line in ("CAL", "CAL abc", "CAL -5", "CAL 1_000", "CAL 5.5", "CAL 1 2", "CAL 1234567890"):
        eq(p.parse_command(line), (p.CMD_CAL, -1))


def feed_all(reader, data):
    lines = []
    for b in data:
        line = reader.feed(b)
        if line is not None:
            lines.append(line)
    return lines


def test_reader_splits_lf_cr_and_crlf_and_skips_empty_lines():
    r = LineReader()
    eq(feed_all(r, b"TARE\nZERO\rINFO\r\n\n\nCAL 5\n"), ["TARE", "ZERO", "INFO", "CAL 5"])


def test_reader_drops_control_bytes_such_as_ctrl_c():
    r = LineReader()
    eq(feed_all(r, b"\x03\x03TA\x04RE\n\x03\n"), ["TARE"])


def test_reader_marks_non_ascii_lines_garbled():
    r = LineReader()
    eq(feed_all(r, b"TA\xffRE\nINFO\n"), [LineReader.GARBLED, "INFO"])


def test_reader_discards_overlong_lines_with_a_fixed_buffer():
    r = LineReader()
    exact = b"C" * p.MAX_LINE
    eq(feed_all(r, exact + b"\n"), ["C" * p.MAX_LINE])
    eq(feed_all(r, b"X" * 5000 + b"\nINFO\n"), [LineReader.OVERLONG, "INFO"])
    eq(len(r._buf), p.MAX_LINE)
