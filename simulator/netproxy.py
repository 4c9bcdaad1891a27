"""A loopback TCP proxy that can cut, stall and delay a link (the network's twin).

Put it between a kiosk and the broker and drive the faults a village uplink
really has::

    with NetProxy("127.0.0.1", broker_port) as proxy:
        kiosk.connect("127.0.0.1", proxy.port)
        proxy.stall()        # link up, nothing moves (a congested 3G cell)
        proxy.resume()       # everything held is delivered, in order
        proxy.cut()          # both ends see a reset (router reboot); new
                             # connections are reset at once until restore()
        proxy.restore()
        proxy.set_delay(800) # every chunk arrives 800 ms after it was sent

One asyncio loop in a background thread carries every connection; each direction
of a connection is a reader and a writer joined by a bounded queue, so a delay is
a latency (each chunk is due at its arrival time plus the delay), not a
throughput cap, and a stalled writer pushes back on the sender through TCP once
the queue is full. Every control method returns once the change has taken effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from greenpass.errors import GreenPassError

_T = TypeVar("_T")
_CHUNK = 64 * 1024
_QUEUE_CHUNKS = 256  # held per direction before the sender feels back-pressure
_CONTROL_TIMEOUT = 10.0
_CONNECT_TIMEOUT = 5.0


class NetProxyError(GreenPassError, OSError):
    """The proxy could not listen, or was used before `start()` / after `close()`."""


class ControlError(GreenPassError, ValueError):
    """A control line was not understood."""


@dataclass(frozen=True)
class ProxyState:
    """What the proxy is doing now, and what it has carried so far."""

    cut: bool
    stalled: bool
    delay_ms: int
    connections: int
    open: int
    refused: int
    bytes_up: int
    bytes_down: int

    def __str__(self) -> str:
        link = "+".join(n for n, on in (("cut", self.cut), ("stalled", self.stalled)) if on)
        return (
            f"link={link or 'up'} delay={self.delay_ms}ms connections={self.connections} "
            f"open={self.open} refused={self.refused} up={self.bytes_up}B down={self.bytes_down}B"
        )


class _Link:
    """One proxied connection: both sides, its two directions, and the task serving it."""

    def __init__(self, client: asyncio.StreamWriter, target: asyncio.StreamWriter) -> None:
        self.client = client
        self.target = target
        self.pipes: list[asyncio.Task[None]] = []
        self.served: asyncio.Task[Any] | None = None

    def reset(self) -> None:
        _reset(self.client)
        _reset(self.target)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST, not a FIN: the peer sees 'connection reset', as when a link dies."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed by the peer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class NetProxy:
    """Forward TCP connections from `listen_host:listen_port` to the target, with faults."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self._listen_port = listen_port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._links: set[_Link] = set()
        self._cut = False
        self._delay_s = 0.0
        self._connections = 0
        self._refused = 0
        self._bytes_up = 0
        self._bytes_down = 0

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> NetProxy:
        if self._loop is not None:
            raise NetProxyError("the proxy is already started")
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"netproxy->{self.target_port}", daemon=True
        )
        self._loop = loop
        self._thread.start()
        try:
            self._port = self._call(self._listen())
        except OSError as exc:
            self.close()
            raise NetProxyError(
                f"cannot listen on {self.listen_host}:{self._listen_port}: {exc.strerror or exc}"
            ) from exc
        return self

    def close(self) -> None:
        """Reset every connection, stop listening and stop the thread. Safe to repeat."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if loop.is_running():
            with contextlib.suppress(TimeoutError):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_CONTROL_TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(_CONTROL_TIMEOUT)
        loop.close()

    def __enter__(self) -> NetProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        """The port the proxy listens on (chosen by the system when 0 was asked)."""
        if self._port is None:
            raise NetProxyError("the proxy is not started")
        return self._port

    # --- controls ------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every open connection now; reset new ones as they arrive until `restore()`."""
        self._call(self._cut_links())

    def restore(self) -> None:
        """Accept and forward new connections again (the cut ones stay gone)."""
        self._cut = False

    def stall(self) -> None:
        """Keep connections open but forward nothing either way; bytes are held, not lost."""
        self._call(self._set_flowing(False))

    def resume(self) -> None:
        """Deliver everything held during the stall, in order, and carry on."""
        self._call(self._set_flowing(True))

    def set_delay(self, ms: int) -> None:
        """Add `ms` milliseconds of one-way latency to every chunk, in both directions."""
        if ms < 0:
            raise ValueError("a delay cannot be negative")
        self._delay_s = ms / 1000

    # --- counters --------------------------------------------------------------------

    @property
    def bytes_up(self) -> int:
        """Bytes delivered from clients to the target."""
        return self._bytes_up

    @property
    def bytes_down(self) -> int:
        """Bytes delivered from the target to clients."""
        return self._bytes_down

    @property
    def connections(self) -> int:
        """Connections forwarded to the target so far (not those reset by a cut)."""
        return self._connections

    @property
    def state(self) -> ProxyState:
        flowing = self._flowing
        return ProxyState(
            cut=self._cut,
            stalled=flowing is not None and not flowing.is_set(),
            delay_ms=round(self._delay_s * 1000),
            connections=self._connections,
            open=len(self._links),
            refused=self._refused,
            bytes_up=self._bytes_up,
            bytes_down=self._bytes_down,
        )

    # --- inside the loop thread ----------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._loop is None:
            coro.close()
            raise NetProxyError("the proxy is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_CONTROL_TIMEOUT)

    async def _listen(self) -> int:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(
            self._accept, self.listen_host, self._listen_port, limit=_CHUNK
        )
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _cut_links(self) -> None:
        self._cut = True
        await self._reset_all()

    async def _reset_all(self) -> None:
        links, self._links = list(self._links), set()
        for link in links:
            link.reset()
            # Cancel the two directions, never the serving task itself: asyncio
            # 3.11 logs an error for a cancelled client_connected_cb task.
            for pipe in link.pipes:
                pipe.cancel()
        served = [link.served for link in links if link.served is not None]
        if served:
            await asyncio.wait(served, timeout=_CONTROL_TIMEOUT)
        # abort() closes the sockets on the loop's next turns; let that happen
        # before cut() returns, so the caller's next step sees them closed.
        for _ in range(3):
            await asyncio.sleep(0)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self._refused += 1
            _reset(writer)
            return
        try:
            target_reader, target_writer = await asyncio.wait_for(
                asyncio.open_connection(self.target_host, self.target_port, limit=_CHUNK),
                _CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError):  # target down: the client sees what it would directly
            self._refused += 1
            _reset(writer)
            return
        if self._cut:  # cut while we were connecting
            self._refused += 1
            _reset(writer)
            _reset(target_writer)
            return
        self._connections += 1
        link = _Link(writer, target_writer)
        link.served = asyncio.current_task()
        up = asyncio.create_task(self._pipe(reader, target_writer, up=True))
        down = asyncio.create_task(self._pipe(target_reader, writer, up=False))
        link.pipes = [up, down]
        self._links.add(link)
        try:
            done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_EXCEPTION)
            if any(t.cancelled() or t.exception() is not None for t in done):
                # One side reset or failed, or the link was cut: reset the other too.
                link.reset()
            else:
                writer.close()
                target_writer.close()
        finally:
            up.cancel()
            down.cancel()
            self._links.discard(link)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(_QUEUE_CHUNKS)

        async def receive() -> None:
            while data := await reader.read(_CHUNK):
                await queue.put((loop.time() + self._delay_s, data))
            await queue.put(None)

        async def deliver() -> None:
            assert self._flowing is not None
            while (item := await queue.get()) is not None:
                due, data = item
                await self._flowing.wait()
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                    await self._flowing.wait()  # a stall may have begun during the delay
                # Counted when handed to the socket, before drain(): a reader that has
                # every byte must also see the counters complete.
                if up:
                    self._bytes_up += len(data)
                else:
                    self._bytes_down += len(data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():  # half-close: pass the sender's FIN on
                writer.write_eof()

        receiving = asyncio.create_task(receive())
        delivering = asyncio.create_task(deliver())
        try:
            # Either half failing (a reset, a broken pipe) ends the direction at once;
            # otherwise the writer finishes after the reader's end-of-stream.
            done, _ = await asyncio.wait(
                {receiving, delivering}, return_when=asyncio.FIRST_EXCEPTION
            )
            for task in done:
                if (exc := task.exception()) is not None:
                    raise exc
        finally:
            receiving.cancel()
            delivering.cancel()


def parse_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``) → (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


CONTROLS_HELP = "controls: cut, restore, stall, resume, delay MS, status, help, quit"


def apply_control(proxy: NetProxy, line: str) -> str:
    """Carry out one control line (as typed on the CLI's stdin); return the new state."""
    words = line.split()
    if not words:
        return str(proxy.state)
    verb, args = words[0].lower(), words[1:]
    simple: dict[str, Callable[[], None]] = {
        "cut": proxy.cut,
        "restore": proxy.restore,
        "stall": proxy.stall,
        "resume": proxy.resume,
        "status": lambda: None,
    }
    if verb in simple and not args:
        simple[verb]()
    elif verb == "delay" and len(args) == 1 and args[0].isdigit():
        proxy.set_delay(int(args[0]))
    elif verb == "help":
        return CONTROLS_HELP
    else:
        raise ControlError(f"not understood: {line.strip()!r}; {CONTROLS_HELP}")
    return str(proxy.state)
