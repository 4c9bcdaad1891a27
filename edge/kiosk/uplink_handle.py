"""What the kiosk daemon needs of its sync uplink: start it, stop it, and watch it.

`sync.uplink.Uplink` is the real one; the daemon sees it only through this
Protocol, so edge/ does not import sync/ and a test can hand the kiosk an uplink
built its own way (through `UplinkFactory`, a constructor argument).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from edge.kiosk.config import KioskConfig
from edge.kiosk.devices import Devices
from greenpass.record.targets import OtherEntry


class Fault(Protocol):
    @property
    def code(self) -> str: ...  # one of `sync.protocol.SYNC_FAULTS`
    @property
    def message(self) -> str: ...


class UplinkHandle(Protocol):
    @property
    def online(self) -> bool:
        """Connected to the broker now."""

    @property
    def sync_fault(self) -> Fault | None:
        """Why sync is stuck (refused acks, a crash), until central answers sanely."""

    @property
    def failed(self) -> str | None:
        """Why the uplink thread is gone for good: the kiosk must exit to be restarted."""

    @property
    def other_reversals(self) -> bool:
        """Central takes reversals of other kiosks' entries (staff are offered them)."""

    def reserve_reversal(
        self, target_device: str, target_seq: int, staff_id: str, *, peek: bool = False
    ) -> OtherEntry:
        """Central's reservation of another kiosk's entry for this one to reverse, with the
        fields to negate (`peek`: the same answer, nothing reserved); `Refused` otherwise
        (``needs_network`` when it cannot answer). Blocks for up to a few seconds: call
        it off the event loop."""

    def start(self) -> None: ...
    def stop(self, timeout_s: float = 10.0) -> None: ...


# Builds the uplink from the config, the devices and the kiosk's health callback.
UplinkFactory = Callable[[KioskConfig, Devices, Callable[[], dict[str, str]]], UplinkHandle]
