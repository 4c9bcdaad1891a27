"""Central's API on a real uvicorn over HTTPS, configured as `greenpass central --http`
configures it (`central.http_server`), in this process: for tests that need real
sockets but a store or limits of their own."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

from central.http_server import default_names, http_tls, make_server

ADMIN = "admin-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@dataclass
class Served:
    url: str
    ca: Path

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, verify=ssl.create_default_context(cafile=str(self.ca)), timeout=10
        )

    def token(self, device: str) -> str:
        with self.client() as c:
            body = {"device_id": device, "village_id": "V1"}
            r = c.post("/api/v1/enrol-tokens", headers=AUTH, json=body)
        assert r.status_code == 201, r.text
        token: str = r.json()["token"]
        return token


@contextlib.contextmanager
def serving(app: FastAPI, tls_dir: Path, *, max_connections: int = 100) -> Iterator[Served]:
    """`app` on a free port over HTTPS, as `greenpass central --http 127.0.0.1:PORT`."""
    tls = http_tls(tls_dir, default_names("127.0.0.1"))
    server = make_server(
        app, "127.0.0.1", 0, tls=tls, max_connections=max_connections, log_level="warning"
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Served(f"https://127.0.0.1:{port}", tls.ca_cert)
    finally:
        server.should_exit = True
        thread.join(10)
