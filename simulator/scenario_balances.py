"""What a scenario reads of the villager on screen: who it is and their balance, counted
from the start of the run (`simulator.scenario` re-exports both names)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def shown_villager(view: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The villager on screen: the staff desk's (when staff serve one) or the session's."""
    staff = view.get("staff") or {}
    v = staff.get("villager") or view.get("villager")
    return v if isinstance(v, dict) else None


class StartBalances:
    """Each villager's balance when the run first showed them (on a villager screen or
    the staff desk), by passbook: what `expect_balance` counts from.

    One household has one balance at every kiosk, so the first sighting anywhere is the
    start; a scenario should show a villager first where their balance is up to date
    (their own kiosk, or after `retry_s` has waited for central's state).
    """

    def __init__(self) -> None:
        self._start: dict[str, int] = {}

    def since_start(self, villager: Mapping[str, Any]) -> tuple[int, int] | None:
        """(the balance at the start, what changed since), noting a first sighting."""
        passbook, balance = villager.get("passbook"), villager.get("balance")
        if not isinstance(passbook, str) or not isinstance(balance, int):
            return None
        start = self._start.setdefault(passbook, balance)
        return start, balance - start
