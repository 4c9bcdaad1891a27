"""Serving central's HTTP API: TLS on the listener, and uvicorn's own limits.

Enrolment answers with a device's MQTT password, and the admin token travels with
every admin call, so the API is served over TLS, as the broker is:
`http_tls(folder, names)` makes (or checks) the listener's certificate in
`DevCA`'s layout — ``ca.crt``, ``server.crt``, ``server.key``, and ``ca.key`` only
for a development CA. A folder holding an operator's ``ca.crt`` without ``ca.key``
is used as it is and never overwritten (docs/broker.md, Development CA vs
production CA). Technicians verify central with that ``ca.crt``.

Plain HTTP is only for a TLS reverse proxy on the same machine: `check_plain`
refuses it on any address but loopback, and only then are the proxy's
``X-Forwarded-For`` headers believed (so enrolment attempts count against the
real client, not the proxy).

`make_server` sets uvicorn's bounds: at most `max_connections` connections and
requests at once (more get a 503 at once, never a queue), idle keep-alive
connections closed after 5 s, request line and headers within 16 KiB, h11 (whose
limits these are). The MQTT ingest runs in its own thread and never waits for
HTTP; `central.http_guard` bounds what each request may send.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from central.devca import DevCA
from greenpass.errors import ConfigError

MAX_CONNECTIONS = 100
KEEP_ALIVE_S = 5
MAX_HEADER_BYTES = 16 * 1024
_LOOPBACK_NAMES = ("localhost",)


def split_host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) → (host, port); an empty host is 127.0.0.1."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--http {value!r}: give HOST:PORT, e.g. 0.0.0.0:8443")
    return host.strip("[]") or "127.0.0.1", int(port)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK_NAMES or (_is_ip(host) and ipaddress.ip_address(host).is_loopback)


def default_names(host: str) -> list[str]:
    """Names for a development certificate: this machine's loopback, and the listening
    address when it is one (not 0.0.0.0 or ::, which no client connects to)."""
    names = ["localhost", "127.0.0.1"]
    if host not in names and not (_is_ip(host) and ipaddress.ip_address(host).is_unspecified):
        names.append(host)
    return names


def http_tls(folder: Path, names: Sequence[str]) -> DevCA:
    """The listener's TLS files in `folder`, valid for every host name and IP in `names`."""
    if not names:
        raise ConfigError("the HTTP API's certificate needs at least one host name or IP")
    return DevCA.create(
        folder,
        hostnames=[n for n in names if not _is_ip(n)],
        ips=[n for n in names if _is_ip(n)],
    )


def check_plain(host: str) -> None:
    """Plain HTTP carries the enrolment's MQTT password and the admin token in clear:
    only where no network is crossed, behind a TLS proxy on this machine."""
    if not is_loopback(host):
        raise ConfigError(
            f"--http-plain on {host!r} would send enrolment passwords and the admin token "
            "across the network in clear: serve plain HTTP only on 127.0.0.1 or ::1, behind "
            "a TLS reverse proxy on this machine, or drop --http-plain to serve HTTPS"
        )


def make_server(
    app: FastAPI,
    host: str,
    port: int,
    *,
    tls: DevCA | None,
    max_connections: int = MAX_CONNECTIONS,
    log_level: str | None = None,
) -> uvicorn.Server:
    """Uvicorn for `app` on `host`:`port`: HTTPS with `tls`, else plain (see `check_plain`)."""
    if max_connections < 1:
        raise ConfigError("--http-max-connections must be at least 1")
    if tls is None:
        check_plain(host)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http="h11",
        ws="none",
        lifespan="on",
        ssl_certfile=None if tls is None else str(tls.server_cert),
        ssl_keyfile=None if tls is None else str(tls.server_key),
        limit_concurrency=max_connections,
        timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        # Only a proxy on this machine (plain HTTP) may say who the client is.
        proxy_headers=tls is None,
        forwarded_allow_ips="127.0.0.1,::1",
        server_header=False,
        log_level=log_level,
    )
    return uvicorn.Server(config)


def serve(server: uvicorn.Server, stop: threading.Event) -> None:
    """Run `server` in this thread until `stop` is set."""

    def watch() -> None:
        stop.wait()
        server.should_exit = True

    threading.Thread(target=watch, name="http-stop", daemon=True).start()
    server.run()
