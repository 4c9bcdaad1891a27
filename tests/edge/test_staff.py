"""Staff sign-in: slow salted PIN hashes and a lockout that survives a restart."""

from __future__ import annotations

import pytest

from edge.ledger.ledger import Ledger
from edge.ledger.staff import hash_pin, pin_matches
from greenpass.errors import Refused
from tests.conftest import PIN


def test_pin_hash_is_salted_and_checked() -> None:
    a, b = hash_pin("1234"), hash_pin("1234")
    assert a != b and a.startswith("scrypt$16384$8$1$")
    assert pin_matches("1234", a) and pin_matches("1234", b)
    assert not pin_matches("1235", a)
    assert not pin_matches("1234", "garbage")
    with pytest.raises(Refused) as info:
        hash_pin("12")
    assert info.value.code == "bad_pin_format"


def test_pin_is_never_stored_in_clear(ledger: Ledger) -> None:
    row = ledger.store.query("SELECT pin_hash FROM staff WHERE staff_id = 'S1'")[0]
    assert PIN not in row["pin_hash"]


def test_lockout_after_wrong_pins_survives_restart(ledger: Ledger, clock) -> None:
    assert ledger.authenticate("S1", PIN).role == "admin"
    for left in (4, 3, 2, 1):
        with pytest.raises(Refused, match=f"{left} tries left") as info:
            ledger.authenticate("S1", "0000")
        assert info.value.code == "bad_pin"
    with pytest.raises(Refused) as info:
        ledger.authenticate("S1", "0000")
    assert info.value.code == "staff_locked"
    path = ledger.store.path
    ledger.close()
    again = Ledger.open(path, clock)
    with pytest.raises(Refused) as info:
        again.authenticate("S1", PIN)  # right PIN, but still locked after the restart
    assert info.value.code == "staff_locked"
    clock.advance(5 * 60_000)
    assert again.authenticate("S1", PIN).staff_id == "S1"
    again.close()


def test_only_an_admin_adds_staff(ledger: Ledger) -> None:
    with pytest.raises(Refused) as info:
        ledger.add_staff("S2", name="New", role="staff", pin="1111")
    assert info.value.code == "not_allowed"
    ledger.add_staff("S2", name="New", role="staff", pin="1111", by_staff_id="S1")
    with pytest.raises(Refused) as info:
        ledger.add_staff("S3", name="Newer", role="admin", pin="1111", by_staff_id="S2")
    assert info.value.code == "not_allowed"
    with pytest.raises(Refused) as info:
        ledger.authenticate("nobody", "1111")
    assert info.value.code == "unknown_staff"
