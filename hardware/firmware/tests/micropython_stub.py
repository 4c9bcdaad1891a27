"""Stand-in for the ``micropython`` module that records ``kbd_intr`` calls.

The real module is built into the interpreter and cannot be shadowed by a
file, so the runner puts this one into ``sys.modules`` before any firmware
module is imported.
"""

kbd_intr_calls = []
real = None  # the interpreter's own module (set by run.py), for heap_lock()


def const(value):
    return value


def kbd_intr(char):
    kbd_intr_calls.append(char)
