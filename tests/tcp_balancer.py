"""A TCP front for a broker cluster: the load balancer (or DNS name) a province puts
before its nodes, so a kiosk keeps one `broker_url` whichever node is up.

    with Balancer([port1, port2, port3]) as front:   # prefers port1, then the next
        url = f"mqtts://127.0.0.1:{front.port}"

Each new connection goes to the first backend, in order, that accepts it; bytes are
copied both ways unchanged (TLS passes through end to end). When either side
closes, so does the other: a killed node ends its kiosks' connections, and their
reconnects land on the next node.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Sequence
from types import TracebackType


class Balancer:
    def __init__(self, backends: Sequence[int]) -> None:
        self.backends = list(backends)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="balancer", daemon=True)

    def start(self) -> Balancer:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            backend = self._connect()
            if backend is None:
                client.close()
                continue
            with self._lock:
                self._socks += [client, backend]
            for a, b in ((client, backend), (backend, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _connect(self) -> socket.socket | None:
        for port in self.backends:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                continue  # that node is down: the next
            s.settimeout(None)
            return s
        return None

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass  # either side gone: close both below
        for s in (src, dst):
            with contextlib.suppress(OSError):  # already closed by the other pump
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for s in self._socks:
                s.close()
        self._thread.join(5)

    def __enter__(self) -> Balancer:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
