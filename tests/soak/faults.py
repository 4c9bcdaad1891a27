"""The soak's faults: how many of each (from the environment), and doing them.

Each count is an environment variable with a small default for a quick run; the
issue's full counts are in `FULL` (docs/soak.md). The plan shuffles every fault into
one random order (`GREENPASS_FAULT_SOAK_SEED`) and `Injector.run` starts them at random
moments (a mean `gap_s` apart), each in a thread of its own, while the kiosks go on
depositing and syncing. Faults overlap, as in the field (a broker back while the
database is still down), except on one target: each thing faulted (the broker,
PostgreSQL, its disk, each worker, kiosk and link) takes one fault at a time.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from devkit.mqtt_broker import Broker
from tests.soak.fleet import CentralWorker, SoakKiosk
from tests.soak.postgres import PostgresCluster

ENV = "GREENPASS_FAULT_SOAK_"


@dataclass(frozen=True)
class Plan:
    kiosks: int = 5
    broker_restarts: int = 4  # half SIGTERM, half SIGKILL; every third loses its sessions
    central_kills: int = 2
    postgres_faults: int = 2  # in turn: a crash, a fast restart, every connection killed
    kiosk_kills: int = 5
    link_faults: int = 4  # half cut, half stalled
    disk_full: int = 1  # windows of a few seconds in which every write is refused
    bad_batches: int = 2  # forged and garbled batches sent after the faults
    gap_s: float = 2.0  # mean seconds between two faults
    deposit_s: float = 0.3  # mean seconds between two deposits through a kiosk's ledger
    page_deposit_s: float = 1.0  # mean pause between two villagers at a kiosk's page
    sync_timeout_s: float = 240.0  # for full sync after the last fault
    seed: int = 1

    @classmethod
    def from_env(cls) -> Plan:
        """`FULL` if GREENPASS_FAULT_SOAK_FULL=1, else the defaults; then each field from
        GREENPASS_FAULT_SOAK_<FIELD> (upper case) when set."""
        base = FULL if os.environ.get(ENV + "FULL") == "1" else cls()
        values: dict[str, int | float] = dict(base.__dict__)
        for name, default in base.__dict__.items():
            raw = os.environ.get(ENV + name.upper())
            if raw is not None:
                values[name] = type(default)(raw)
        plan = cls(**values)  # type: ignore[arg-type]
        if plan.kiosks < 5:
            raise ValueError(f"{ENV}KIOSKS: the soak needs at least 5 kiosks, got {plan.kiosks}")
        return plan

    def faults(self) -> list[str]:
        kinds: list[str] = []
        for n in range(self.broker_restarts):
            kinds.append(("broker_sigterm", "broker_sigkill")[n % 2])
        kinds += ["central_sigkill"] * self.central_kills
        for n in range(self.postgres_faults):
            kinds.append(("postgres_crash", "postgres_restart", "postgres_kill_connections")[n % 3])
        kinds += ["kiosk_sigkill"] * self.kiosk_kills
        for n in range(self.link_faults):
            kinds.append(("link_cut", "link_stall")[n % 2])
        kinds += ["disk_full"] * self.disk_full
        random.Random(self.seed).shuffle(kinds)
        return kinds

    def timeout_s(self) -> float:
        """A generous bound for the whole test, for pytest-timeout."""
        n = len(self.faults())
        return 300 + n * (2 * self.gap_s + 15) + 2 * self.sync_timeout_s


# The counts (`make soak` with these is the full run; about 8-10 minutes).
FULL = Plan(
    broker_restarts=50, central_kills=20, postgres_faults=10, kiosk_kills=100,
    link_faults=40, disk_full=3, bad_batches=4,
)  # fmt: skip


class Injector:
    """Does the faults, counting each by kind; `between()` runs after each (the test's
    systemd: workers that exited by themselves are started again)."""

    def __init__(
        self,
        plan: Plan,
        broker: Broker,
        pg: PostgresCluster,
        workers: list[CentralWorker],
        kiosks: list[SoakKiosk],
        between: Callable[[], None],
        entries_stored: Callable[[], int],
    ) -> None:
        self.plan = plan
        self.broker = broker
        self.pg = pg
        self.workers = workers
        self.kiosks = kiosks
        self.between = between
        self.entries_stored = entries_stored
        self.rng = random.Random(plan.seed + 1)
        self.counts: Counter[str] = Counter()
        self.stored_while_full: list[int] = []  # entries central gained in each window
        self.last_fault_end = time.monotonic()
        self.failures: list[str] = []
        self.broker_n = 0
        self._count = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def run(self) -> None:
        threads = []
        for n, kind in enumerate(self.plan.faults()):
            time.sleep(self.rng.uniform(0, 2 * self.plan.gap_s))
            self.between()
            t = threading.Thread(target=self._do, args=(kind, n), name=f"fault-{n}-{kind}")
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        self.between()
        if self.failures:
            raise AssertionError(f"faults that could not be made: {self.failures}")

    def _do(self, kind: str, n: int) -> None:
        rng = random.Random(self.plan.seed * 1_000_003 + n)  # its own: threads interleave
        try:
            if kind.startswith("broker_"):
                with self._lock("broker"):
                    self.broker_n += 1
                    lose = self.broker_n % 3 == 0
                    self.broker_restart(rng, kind == "broker_sigkill", lose_sessions=lose)
            else:
                getattr(self, kind)(rng)
        except Exception as exc:  # noqa: BLE001 - the test fails with it after the rest
            self.failures.append(f"{kind}: {type(exc).__name__}: {exc}")
            return
        with self._count:
            self.counts[kind] += 1
            self.last_fault_end = time.monotonic()

    def _lock(self, target: str) -> threading.Lock:
        with self._count:
            return self._locks.setdefault(target, threading.Lock())

    def broker_restart(self, rng: random.Random, kill: bool, *, lose_sessions: bool) -> None:
        (self.broker.kill if kill else self.broker.stop)()
        if lose_sessions:  # a crash before the first autosave, or a new disk
            (self.broker.files.data_dir / "mosquitto.db").unlink(missing_ok=True)
            with self._count:
                self.counts["broker_sessions_lost"] += 1
        time.sleep(rng.uniform(0, 1.5))
        self.broker.start()

    def central_sigkill(self, rng: random.Random) -> None:
        worker = rng.choice(self.workers)
        with worker.lock:
            worker.kill()
            time.sleep(rng.uniform(0, 2))
            worker.start()

    def postgres_crash(self, _rng: random.Random) -> None:
        with self._lock("postgres"):
            self.pg.restart(immediate=True)

    def postgres_restart(self, _rng: random.Random) -> None:
        with self._lock("postgres"):
            self.pg.restart()

    def postgres_kill_connections(self, _rng: random.Random) -> None:
        with self._lock("postgres"):
            self.pg.terminate_backends()

    def kiosk_sigkill(self, rng: random.Random) -> None:
        kiosk = rng.choice(self.kiosks)
        with self._lock(f"kiosk {kiosk.device_id}"):
            kiosk.kill()
            time.sleep(rng.uniform(0, 1))
            kiosk.start()

    def link_cut(self, rng: random.Random) -> None:
        kiosk = rng.choice(self.kiosks)
        with self._lock(f"link {kiosk.device_id}"):
            kiosk.proxy.cut()
            time.sleep(rng.uniform(0.5, 4))
            kiosk.proxy.restore()

    def link_stall(self, rng: random.Random) -> None:
        kiosk = rng.choice(self.kiosks)
        with self._lock(f"link {kiosk.device_id}"):
            kiosk.proxy.stall()
            time.sleep(rng.uniform(1, 6))  # longer than the kiosks' 3 s ack timeout
            kiosk.proxy.resume()

    def disk_full(self, rng: random.Random) -> None:
        with self._lock("disk"), self.pg.disk_full():
            time.sleep(1)  # what was committed before the disk filled may still be acked
            before = self._until_up(self.entries_stored)
            time.sleep(rng.uniform(4, 8))
            gained = self._until_up(self.entries_stored) - before
            with self._count:
                self.stored_while_full.append(gained)

    @staticmethod
    def _until_up(read: Callable[[], int]) -> int:
        """`read()`, retried while PostgreSQL is restarting (another fault)."""
        for _ in range(120):
            try:
                return read()
            except psycopg.OperationalError:
                time.sleep(0.5)
        return read()
