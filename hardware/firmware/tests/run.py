"""Tiny test runner for the firmware logic under the MicroPython unix port.

Usage: micropython hardware/firmware/tests/run.py [test_module ...]
Every ``test_*`` function of every ``test_*.py`` here is one test. Prints a
line per failure with its traceback, then ``N passed, N failed`` as the last
line; exits 1 if anything failed (or nothing ran), else 0.
"""

import os
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
# Tests folder first (stand-in machine module), then the firmware itself.
sys.path.insert(0, HERE)
sys.path.insert(1, HERE + "/..")

import micropython  # noqa: E402 - the built-in one, kept for heap_lock() in tests
import micropython_stub  # noqa: E402 - must be in sys.modules before the firmware

micropython_stub.real = micropython
sys.modules["micropython"] = micropython_stub

import machine  # noqa: E402 - the stand-in, from HERE
import support  # noqa: E402


def main(argv):
    names = argv or sorted(
        n[:-3] for n in os.listdir(HERE) if n.startswith("test_") and n.endswith(".py")
    )
    passed = failed = 0
    for name in names:
        try:
            module = __import__(name)
        except Exception as exc:  # noqa: BLE001 - a module that will not import is a failure
            failed += 1
            print(f"FAIL {name} (import)")
            sys.print_exception(exc)
            continue
        for attr in sorted(dir(module)):
            fn = getattr(module, attr)
            if not attr.startswith("test_") or not callable(fn):
                continue
            machine.reset_stub()
            micropython_stub.kbd_intr_calls.clear()
            try:
                fn()
                passed += 1
            except Exception as exc:  # noqa: BLE001 - a runner reports every failure and goes on
                failed += 1
                print(f"FAIL {name}.{attr}")
                sys.print_exception(exc)
            finally:
                support.cleanup()
    if passed + failed == 0:
        print("no tests found")
        failed = 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
