"""Keep the running broker's logins equal to central's active devices.

Central's database is the truth; the broker's dynamic-security plugin holds a copy
(`central.dynsec`). `BrokerSync.sync_now` compares the two over ``$CONTROL`` and
mends the copy: a device enrolled while the broker was away is created, a
re-enrolled one gets its new password, a revoked one is deleted (and disconnected).
`start` runs it in the background on request (after each enrolment and revocation)
and every `period_s` seconds, retrying with backoff while the broker is away, so a
broker that lost its plugin file heals itself once central reaches it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Protocol

from central.broker import password_matches
from central.dynsec import (
    BrokerAdmin,
    DeviceLogin,
    SyncReport,
    device_password,
    load_or_create_secret,
)
from central.store import CentralStore
from greenpass.errors import CentralError, StorageError, TransportError
from sync.transport import Backoff, BrokerConfig

log = logging.getLogger(__name__)


class Admin(Protocol):
    """What keeps a broker's logins: `central.dynsec.BrokerAdmin`, or
    `central.rabbit_admin.RabbitAdmin` on a cluster."""

    def __enter__(self) -> Admin: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...
    def sync(self, devices: Sequence[DeviceLogin]) -> SyncReport: ...


BROKER_SECRET_FILE = "broker.secret"  # in central's home


def active_logins(store: CentralStore, secret: bytes | None) -> list[DeviceLogin]:
    """Every active device, with its password in clear where central can derive it.

    A derived password is used only when it matches the hash stored at enrolment, so a
    device enrolled before central had a broker secret is never given a wrong one.
    """
    logins = store.broker_logins()
    if secret is None:
        return logins
    out = []
    for login in logins:
        candidate = device_password(secret, login.device_id, login.public_key)
        known = password_matches(candidate, login.password_hash)
        out.append(replace(login, password=candidate) if known else login)
    return out


class BrokerSync:
    """Brings the broker in step with `store`, now (`sync_now`) or in the background."""

    def __init__(
        self,
        store: CentralStore,
        broker: BrokerConfig,
        secret: bytes | None,
        *,
        period_s: float = 300.0,
        backoff: Backoff | None = None,
        admin: Callable[[], Admin] | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        # Mosquitto's dynamic-security plugin, or a RabbitMQ cluster's management API
        # (`central.rabbit_admin`): the same `sync` either way.
        self._admin: Callable[[], Admin] = admin or (lambda: BrokerAdmin(self.broker))
        self.secret = secret
        self.period_s = period_s
        self.backoff = backoff or Backoff(base_s=1.0, cap_s=60.0)
        self.last: SyncReport | None = None
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Condition()
        self._generation = 0  # completed syncs, for `wait`
        self._thread: threading.Thread | None = None

    def sync_now(self) -> SyncReport:
        """One sync; raises `TransportError` (broker away) or `CentralError` (refused)."""
        logins = active_logins(self.store, self.secret)
        with self._admin() as admin:
            report = admin.sync(logins)
        if report.created or report.updated or report.deleted:
            log.info("broker logins: %s", report)
        self.last, self.last_error = report, None
        return report

    def request(self) -> None:
        """Ask the background thread for a sync soon (after an enrolment or revocation)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="broker-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(15)

    def wait(self, timeout_s: float) -> bool:
        """Wait for the next successful sync to finish (tests, the CLI)."""
        with self._done:
            start = self._generation
            return self._done.wait_for(lambda: self._generation > start, timeout_s)

    def _loop(self) -> None:
        delay = 0.0
        while not self._stop.is_set():
            self._wake.wait(delay)
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.sync_now()
            except (TransportError, CentralError, StorageError) as exc:
                self.last_error = str(exc)
                delay = self.backoff.next_delay()
                log.warning("broker logins not synced (%s); again in %.0f s", exc, delay)
                continue
            self.backoff.reset()
            delay = self.period_s
            with self._done:
                self._generation += 1
                self._done.notify_all()


def load_secret(home: Path) -> bytes:
    """Central's broker secret in its home folder, made on first use."""
    return load_or_create_secret(home / BROKER_SECRET_FILE)
