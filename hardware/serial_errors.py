"""What pyserial raises when a serial device is gone, for every serial driver here.

A read or a write raises `serial.SerialException`, an `OSError`. But `flush()`,
`reset_input_buffer()` and the line setup of `Serial()`'s own open (tcdrain, tcflush,
tcsetattr) let `termios.error` through, which is no `OSError`: a USB-serial printer,
scale or scanner pulled at that moment raised it past a driver's `except OSError`
(once out of the printer thread, the receipt stayed "printing" until a restart).
"""

from __future__ import annotations

import termios

PORT_GONE: tuple[type[Exception], ...] = (OSError, termios.error)
