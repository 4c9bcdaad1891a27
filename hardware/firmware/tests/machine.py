"""Stand-in for MicroPython's ``machine`` module, for the host tests only.

Shadows nothing on the Pico (this folder is never copied there). Pins live in
``pins`` by number so a test can reach the pin a driver created, and a
simulated device can ``attach`` to it to see every level the driver writes.
"""

pins = {}
irq_disabled = 0  # nesting depth of disable_irq(); > 0 while "interrupts are off"
irq_log = []  # every disable/enable call, in order


def disable_irq():
    global irq_disabled  # noqa: PLW0603 - module-level state, as on the real chip
    irq_disabled += 1
    irq_log.append("disable")
    return irq_disabled - 1


def enable_irq(state):
    global irq_disabled  # noqa: PLW0603 - module-level state, as on the real chip
    irq_disabled = state
    irq_log.append("enable")


def reset_stub():
    global irq_disabled  # noqa: PLW0603 - module-level state, as on the real chip
    pins.clear()
    irq_disabled = 0
    irq_log.clear()


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, pin_id, mode=-1, pull=-1, value=None):
        self.id = pin_id
        self.mode = mode
        self.pull = pull
        # An unconnected input with a pull-up reads high, as on the board.
        self._level = 1 if pull == Pin.PULL_UP else 0
        if value is not None:
            self._level = 1 if value else 0
        self._listeners = []
        self.writes = 0
        pins[pin_id] = self

    def attach(self, listener):
        """Call ``listener(pin, level)`` on every write by the driver."""
        self._listeners.append(listener)

    def drive(self, level):
        """Test control: set the level an input pin reads."""
        self._level = 1 if level else 0

    def value(self, *args):
        if not args:
            return self._level
        self._level = 1 if args[0] else 0
        self.writes += 1
        for listener in self._listeners:
            listener(self, self._level)
        return None

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class WDT:
    def __init__(self, timeout=5000):
        self.timeout = timeout
        self.fed = 0

    def feed(self):
        self.fed += 1


def reset():
    raise SystemExit("machine.reset() called")
