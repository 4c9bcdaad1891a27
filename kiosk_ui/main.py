"""`greenpass kiosk --config kiosk.toml`: the kiosk daemon and its touchscreen page, one process.

Start-up order: config (a bad key stops here, named), devices, the ledger,
then the page. The uplink runs in its own thread with its own `Ledger`.
SIGTERM (systemd stop) shuts everything down in order: the page stops taking
touches, the event task ends, the uplink says "offline", devices close.

If the uplink cannot be kept alive (its supervisor gave up, or its thread ended
unstopped: `Kiosk.fatal`), the same orderly shutdown runs and `serve` returns 1,
so `greenpass kiosk` exits non-zero and systemd (`Restart=always`) starts it again.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from edge.kiosk.config import KioskConfig
from edge.kiosk.daemon import Kiosk
from edge.kiosk.devices import Devices, open_devices
from edge.kiosk.uplink_handle import UplinkFactory
from edge.ledger.ledger import Ledger
from greenpass.files import write_public
from kiosk_ui.app import build_app

if TYPE_CHECKING:
    from collections.abc import Callable

    from sync.uplink import Uplink

log = logging.getLogger(__name__)


def make_uplink(cfg: KioskConfig, devices: Devices, health: Callable[[], dict[str, str]]) -> Uplink:
    """The sync uplink on its own `Ledger` (its own SQLite connection and thread)."""
    from sync.setup import uplink_from_config  # noqa: PLC0415 - sync only when configured

    assert cfg.sync is not None
    url = devices.sim.broker_url(cfg.sync.broker_url) if devices.sim else cfg.sync.broker_url
    return uplink_from_config(Ledger.open(cfg.kiosk.db), cfg.sync, broker_url=url, health=health)


async def serve(
    cfg: KioskConfig,
    *,
    ready_file: Path | None = None,
    uplink_factory: UplinkFactory = make_uplink,
) -> int:
    """Run the kiosk until SIGTERM / Ctrl-C (0) or until it must be restarted (1)."""
    devices = await asyncio.to_thread(open_devices, cfg)
    kiosk = Kiosk(cfg, devices, uplink_factory=uplink_factory)
    try:
        await kiosk.start()
    except BaseException:
        devices.close()
        raise
    extra = devices.sim.routes() if devices.sim is not None else ()
    app = build_app(kiosk, extra_routes=extra)
    server = uvicorn.Server(
        # The page's /events stream never ends by itself: without a timeout a SIGTERM
        # waits for Chromium to hang up, that is forever.
        uvicorn.Config(
            app,
            host=cfg.ui.host,
            port=cfg.ui.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
    )

    # uvicorn's serve() turns SIGTERM / SIGINT into a graceful exit, then re-raises them.
    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1] if server.servers else cfg.ui.port
        url = f"http://{cfg.ui.host}:{port}/"
        print(f"kiosk {kiosk.require_ledger().device_id} ready: {url}", flush=True)
        if ready_file is not None:  # whole or absent: a script polls for it to appear
            write_public(ready_file, url.encode("utf-8"))

    async def end_streams_on_exit() -> None:
        # uvicorn waits for open responses before it returns; the pages' event
        # streams never end by themselves, so end them as soon as it is told to exit.
        while not server.should_exit:
            await asyncio.sleep(0.1)
        kiosk.close_streams()

    async def exit_when_fatal() -> None:
        await kiosk.fatal_event.wait()
        server.should_exit = True

    helpers = [
        asyncio.create_task(announce()),
        asyncio.create_task(end_streams_on_exit()),
        asyncio.create_task(exit_when_fatal()),
    ]
    try:
        await server.serve()
    finally:
        for task in helpers:
            task.cancel()
        await kiosk.stop()
    if kiosk.fatal is not None:
        log.critical("kiosk stopped with an error: %s", kiosk.fatal)
        return 1
    return 0
