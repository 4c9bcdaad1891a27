"""A whole simulated kiosk's hardware, and the control page that plays the villager.

`open_simulated_devices(cfg)` (reached through `[hardware] backend = "sim"`)
starts a simulated scale and a simulated serial scanner on pseudo-terminals and
opens the kiosk's real drivers on them, so the kiosk runs its production code
path; LEDs, buzzer and button are gpiozero's MockFactory. With sync configured
and `[simulator] network_proxy`, the uplink's broker connection passes through
a `NetProxy` the page can cut.

The control page (`/sim`) and its JSON routes:

    POST /sim/scale    {"action": "place", "grams": 1250}   place / remove / unplug /
                       replug / overload / noise (grams) / torn / garbage
    POST /sim/scan     {"payload": "GP1:P:…"}   or {"card": 0}  (index in the cards file);
                       with `[hardware.scanner] kind = "camera"` the card is held in
                       front of a simulated camera for 1.5 s and decoded from frames
                       or {"forged": 0} (that card with its signature damaged)
    POST /sim/scanner  {"action": "unplug" | "replug"}
    POST /sim/network  {"action": "cut" | "restore" | "stall" | "resume"}
    POST /sim/button   {}
    POST /sim/printer  {"action": "paper_out" | "load_paper" | "open_cover" | "close_cover" |
                       "jam" | "clear_jam" | "unplug" | "replug" | "hold" | "release" |
                       "vanish" (unplugged a few bytes into the next receipt)}
    GET  /sim/receipt/N.png   the N-th receipt the simulated printer printed (1 = first)
    GET  /sim/state    displayed weight, plug states, network, LEDs, the printer
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from edge.kiosk.config import KioskConfig
from edge.kiosk.devices import Devices, printer_of, register_backend
from hardware.scale.factory import open_scale
from hardware.scale.stability import StabilityRule
from hardware.scanner import Scanner, SerialScanner, open_scanner
from simulator.gpio import SimulatedGpio
from simulator.netproxy import NetProxy
from simulator.printer import SimulatedPrinter
from simulator.scale import SimulatedScale
from simulator.serial_scanner import SimulatedSerialScanner

HERE = Path(__file__).parent


class PacedCamera:
    """A simulated camera that delivers frames in real time (`fps`), like a webcam.

    `show(payload, seconds)` holds a card in view for a while, as a villager does.
    `SimulatedCamera` itself renders as fast as it is asked; pacing keeps an idle
    kiosk's CPU at what a real camera would cost.
    """

    def __init__(self, fps: float = 15.0) -> None:
        from simulator.camera import Scene, SimulatedCamera  # noqa: PLC0415 - numpy, OpenCV

        self._scene = Scene
        # Two noise fields, not eight: this twin should weigh about what a webcam does.
        self.camera = SimulatedCamera(size=(640, 480), fps=fps, noise_frames=2)
        self.period = 1.0 / fps
        self._next = time.monotonic()
        self._hide_at = 0.0
        self._lock = threading.Lock()

    def show(self, payload: str, seconds: float = 1.5) -> None:
        with self._lock:
            self.camera.set_scene(self._scene(payload=payload, code_px=220.0))
            self._hide_at = time.monotonic() + seconds

    def read(self) -> Any:
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(self._next + self.period, time.monotonic())
        with self._lock:
            if self._hide_at and time.monotonic() >= self._hide_at:
                self.camera.set_scene(self._scene())
                self._hide_at = 0.0
            return self.camera.read()

    def close(self) -> None:
        self.camera.close()


def _damage(payload: str) -> str:
    """The same card with one signature character changed: what a forger produces."""
    head, _, sig = payload.rpartition(":")
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    return f"{head}:{flipped}"


class SimKiosk:
    def __init__(self, cfg: KioskConfig) -> None:
        hw = cfg.hardware
        self.scale_sim = SimulatedScale(
            hw.scale.protocol, capacity_grams=hw.scale.capacity_grams, settle_ms=400
        ).start()
        self.scanner_sim = SimulatedSerialScanner()
        self.camera: PacedCamera | None = None
        if hw.scanner.kind == "camera":
            self.camera = PacedCamera()
        self.gpio = SimulatedGpio(hw.pins)
        self.printer_sim: SimulatedPrinter | None = None
        if hw.printer.enabled:  # its receipts are kept beside the ledger, as PNGs
            db = cfg.kiosk.db
            folder = db.with_name(f"{db.stem}-receipts")
            self.printer_sim = SimulatedPrinter(hw.printer.width, folder).start()
        self.proxy: NetProxy | None = None
        self.want_proxy = cfg.simulator.network_proxy
        self.cards: list[dict[str, str]] = []
        if cfg.simulator.cards_file is not None and cfg.simulator.cards_file.exists():
            self.cards = json.loads(cfg.simulator.cards_file.read_text(encoding="utf-8"))

    def broker_url(self, url: str) -> str:
        """Route the uplink through a proxy the control page can cut (when asked to)."""
        if not self.want_proxy:
            return url
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 8883
        self.proxy = NetProxy(host, port).start()
        netloc = f"127.0.0.1:{self.proxy.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def close(self) -> None:
        self.scanner_sim.close()
        self.scale_sim.stop()
        self.gpio.close()
        if self.printer_sim is not None:
            self.printer_sim.stop()
        if self.proxy is not None:
            self.proxy.close()

    # --- controls -----------------------------------------------------------------------

    def scale(self, action: str, grams: int = 0) -> str:
        s = self.scale_sim
        if action == "place":
            s.noise(0)
            s.place(grams)
        elif action == "wobble":  # a bag still swinging: the reading never settles
            s.place(grams)
            s.noise(max(50, grams // 20))
        elif action == "remove":
            s.noise(0)
            s.remove()
        elif action in ("unplug", "replug", "overload"):
            getattr(s, action)()
        elif action == "torn":
            s.inject_torn()
        elif action == "garbage":
            s.inject_garbage()
        else:
            raise ValueError(f"unknown scale action {action!r}")
        return action

    def scan(self, payload: str) -> None:
        if self.camera is not None:
            self.camera.show(payload)
        else:
            self.scanner_sim.scan(payload)

    def press_button(self) -> None:
        self.gpio.press()

    PRINTER_ACTIONS = (
        "paper_out",
        "load_paper",
        "open_cover",
        "close_cover",
        "unplug",
        "replug",
        "hold",
        "release",
    )

    def printer(self, action: str) -> str:
        if self.printer_sim is None:
            raise ValueError("this kiosk has no printer ([hardware.printer] enabled = false)")
        if action == "jam":
            self.printer_sim.jam_cutter()
        elif action == "vanish":  # the cable is pulled a few bytes into the next receipt
            self.printer_sim.vanish_after(64)
        elif action == "clear_jam":
            self.printer_sim.clear_jam()
        elif action in self.PRINTER_ACTIONS:
            getattr(self.printer_sim, action)()
        else:
            raise ValueError(f"unknown printer action {action!r}")
        return action

    def network(self, action: str) -> str:
        if self.proxy is None:
            raise ValueError("this kiosk's network is not simulated (no sync, or no proxy)")
        if action not in ("cut", "restore", "stall", "resume"):
            raise ValueError(f"unknown network action {action!r}")
        getattr(self.proxy, action)()
        return action

    def state(self) -> dict[str, Any]:
        d = self.scale_sim.platform.display()
        return {
            "grams": d.grams,
            "stable": d.stable,
            "scale_plugged": self.scale_sim.plugged,
            "scanner_plugged": self.scanner_sim.plugged,
            "network": str(self.proxy.state) if self.proxy else "direct",
            "leds": {n: self.gpio.pin_state(n) for n in ("green", "amber", "red")},
            "cards": self.cards,
            "printer": None if self.printer_sim is None else self.printer_sim.controls(),
        }

    # --- the control page ---------------------------------------------------------------

    def routes(self) -> Sequence[BaseRoute]:
        async def page(request: Request) -> Response:
            return HTMLResponse((HERE / "control.html").read_text(encoding="utf-8"))

        async def state(request: Request) -> Response:
            return JSONResponse(self.state())

        async def receipt(request: Request) -> Response:
            n = int(request.path_params["n"])
            found = [] if self.printer_sim is None else self.printer_sim.receipts
            if not 1 <= n <= len(found):
                return JSONResponse({"error": f"no receipt {n}"}, status_code=404)
            return Response(found[n - 1].read_bytes(), media_type="image/png")

        async def post(request: Request) -> Response:
            try:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                what = request.path_params["what"]
                if what == "scale":
                    done = self.scale(str(body.get("action")), int(body.get("grams", 0)))
                elif what == "scan":
                    done = self._scan_request(body)
                elif what == "scanner":
                    action = body.get("action")
                    if action not in ("unplug", "replug"):
                        raise ValueError("scanner action is unplug or replug")
                    getattr(self.scanner_sim, action)()
                    done = action
                elif what == "network":
                    done = self.network(str(body.get("action")))
                elif what == "printer":
                    done = self.printer(str(body.get("action")))
                elif what == "button":
                    self.press_button()
                    done = "pressed"
                else:
                    return JSONResponse({"error": f"unknown control {what!r}"}, status_code=404)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return JSONResponse({"ok": True, "done": done})

        return [
            Route("/sim", page),
            Route("/sim/state", state),
            Route("/sim/receipt/{n:int}.png", receipt),
            Route("/sim/{what}", post, methods=["POST"]),
        ]

    def _scan_request(self, body: dict[str, Any]) -> str:
        if "card" in body:
            payload = self.cards[int(body["card"])]["payload"]
        elif "forged" in body:
            payload = _damage(self.cards[int(body["forged"])]["payload"])
        else:
            payload = str(body.get("payload", ""))
        if not payload:
            raise ValueError("nothing to scan")
        self.scan(payload)
        return "scanned"


def open_simulated_devices(cfg: KioskConfig) -> Devices:
    sim = SimKiosk(cfg)
    hw = cfg.hardware
    try:
        scale = open_scale(
            hw.scale.protocol,
            str(sim.scale_sim.port),
            hw.scale.baud or None,
            capacity_grams=hw.scale.capacity_grams,
            stability=StabilityRule(step_grams=5, hold_ms=500),
            unit=hw.scale.unit,
        )
        scanner: Scanner
        if sim.camera is not None:  # the real CameraScanner and decoder, on simulated frames
            scanner = open_scanner(hw.scanner, source=sim.camera)
        else:
            scanner = SerialScanner(str(sim.scanner_sim.path), baud=hw.scanner.baud)
        printer = None
        if sim.printer_sim is not None:  # the real ESC/POS driver, on the simulated printer
            printer = printer_of(cfg, str(sim.printer_sim.path))
    except BaseException:
        sim.close()
        raise
    return Devices(scale, scanner, sim.gpio.indicator, sim=sim, printer=printer)


# In this process the simulator needs no installed entry point (a fresh checkout, tests);
# elsewhere `greenpass kiosk` finds it through pyproject.toml's `greenpass.backends`.
register_backend("sim", open_simulated_devices)
