"""`open_scale`: a driver by protocol name, the one entry point the kiosk and the CLI use."""

from __future__ import annotations

import logging

from hardware.scale import and_ascii, cas, gpfw, mtsics, xk3190
from hardware.scale.driver import ScaleOptions, SerialScale
from hardware.scale.errors import BadSetting, UnknownProtocol
from hardware.scale.serial_port import Opener, SerialLink, open_pyserial
from hardware.scale.stability import StabilityRule

# name -> default baud rate (the device's factory setting)
PROTOCOLS: dict[str, int] = {
    "gpfw": gpfw.BAUDRATE,
    "mtsics": mtsics.BAUDRATE,
    "and": and_ascii.BAUDRATE,
    "cas": cas.BAUDRATE,
    "xk3190": xk3190.BAUDRATE,
}


def open_scale(
    protocol: str,
    port: str,
    baud: int | None = None,
    *,
    stability: StabilityRule | None = None,
    capacity_grams: int | None = None,
    unit: str = "kg",
    poll_interval: float = 0.1,
    reconnect_max_s: float = 5.0,
    opener: Opener = open_pyserial,
    logger: logging.Logger | None = None,
) -> SerialScale:
    """A scale speaking `protocol` on `port` (a device path or a pyserial URL such as
    ``hwgrep://2e8a:000a``). The port is opened on the first read; if it is absent
    the scale reports `disconnected` until it appears.

    `unit` applies to xk3190 only (its frames carry none); `poll_interval` to
    mtsics only (how often it asks SI). `reconnect_max_s` caps the wait between
    attempts to reopen a vanished port.
    """
    if protocol not in PROTOCOLS:
        raise UnknownProtocol(
            f"unknown scale protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}"
        )
    if baud is not None and baud <= 0:
        raise BadSetting(f"baud rate must be positive, got {baud}")
    link = SerialLink(
        port,
        baud or PROTOCOLS[protocol],
        opener=opener,
        backoff_max=reconnect_max_s,
        logger=logger,
    )
    options = ScaleOptions(stability=stability or StabilityRule(), capacity_grams=capacity_grams)
    if protocol == "gpfw":
        return gpfw.GpfwScale(link, options)
    if protocol == "mtsics":
        return mtsics.MtSicsScale(link, options, poll_interval=poll_interval)
    if protocol == "and":
        return and_ascii.AndScale(link, options)
    if protocol == "cas":
        return cas.CasScale(link, options)
    return xk3190.Xk3190Scale(link, options, unit=unit)
