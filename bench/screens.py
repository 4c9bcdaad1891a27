"""The kiosk page's event stream (`GET /events`), watched with a deadline on every wait.

The stream sends a keepalive every 15 s, so a blocking read on it never times
out while the kiosk sits idle on a screen nobody expected (issue 20). The
stream is therefore read on a thread of its own into a queue, and each wait
takes from the queue with what is left of its deadline.

    with ScreenWatch(url) as screens:
        http.post("/sim/scan", json={"payload": card})
        screens.wait("villager", after="scan 3 (villager 张家 K0001-0003)")
"""

from __future__ import annotations

import json
import queue
import threading
import time
from types import TracebackType
from typing import Any

import httpx

from bench.waits import BenchError

SCREEN_TIMEOUT_S = 15.0  # a card read, a weighing, a commit: each takes a second or two
# Longer than the page's 15 s keepalive, so only a stream that went silent times out.
READ_TIMEOUT_S = 30.0

View = dict[str, Any]
_Item = View | BaseException | None  # a view; why the stream failed; None: it ended


def describe(view: View | None) -> str:
    """The screen, and why when it is a refusal: what a technician would read off the page."""
    if view is None:
        return "no view yet"
    text = f"the {view.get('screen')!r} screen"
    if view.get("refusal"):
        text += f" (reason {view['refusal']!r})"
    if view.get("hint"):
        text += f", hint {view['hint']!r}"
    status = view.get("status") or {}
    trouble = [f"{k} {status[k]}" for k in ("scale", "scanner") if status.get(k, "ok") != "ok"]
    if trouble:
        text += f", {', '.join(trouble)}"
    return text


class ScreenWatch:
    """Reads the kiosk's views as they change; `wait(screen)` returns the first that shows it."""

    def __init__(self, url: str, *, timeout_s: float = SCREEN_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.last: View | None = None
        self._views: queue.Queue[_Item] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="bench-events", daemon=True)

    def __enter__(self) -> ScreenWatch:
        self._thread.start()
        # The stream opens with the current view: once it is here, no later change is missed.
        self._next(self.timeout_s, "the event stream's first view")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The reader notices at its next line (a keepalive at the latest); as a daemon
        # thread it never holds up the benchmark's exit.
        self._stop.set()

    def _read(self) -> None:
        timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_S)
        try:
            with (
                httpx.Client(timeout=timeout) as client,
                client.stream("GET", self.url + "/events") as response,
            ):
                response.raise_for_status()
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("data: "):
                        self._views.put(json.loads(line[6:]))
            self._views.put(None)
        except (httpx.HTTPError, ValueError) as exc:
            self._views.put(exc)

    def _next(self, timeout_s: float, what: str) -> View:
        try:
            item = self._views.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            raise BenchError(
                f"no {what} within {self.timeout_s:g} s; the kiosk shows {describe(self.last)}"
            ) from None
        if item is None:
            raise BenchError(
                f"the kiosk's event stream ended while waiting for {what}; "
                f"last seen: {describe(self.last)}"
            )
        if isinstance(item, BaseException):
            raise BenchError(
                f"the kiosk's event stream failed while waiting for {what} ({item!r}); "
                f"last seen: {describe(self.last)}"
            ) from item
        self.last = item
        return item

    def wait(self, screen: str, *, after: str) -> View:
        """The first view showing `screen`; fails at the deadline, or at once on a refusal
        (a refused screen goes back to idle, never on to the one awaited)."""
        what = f"{screen!r} screen after {after}"
        deadline = time.monotonic() + self.timeout_s
        while True:
            view = self._next(deadline - time.monotonic(), what)
            if view.get("screen") == screen:
                return view
            if view.get("screen") == "refused":
                raise BenchError(f"waited for the {what}; the kiosk showed {describe(view)}")
