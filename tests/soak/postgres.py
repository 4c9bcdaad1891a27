"""A PostgreSQL instance of the test's own (`initdb` / `pg_ctl` on a free port), so the
soak can stop it, crash it, kill its connections and fill its "disk".

    with PostgresCluster.start_new() as pg:
        url = pg.url            # postgresql://soak@127.0.0.1:PORT/greenpass
        pg.restart(immediate=True)   # a crash: recovery from the WAL on start
        pg.terminate_backends()      # every client connection killed mid-statement
        with pg.disk_full():         # every write refused as by a full disk
            ...

`initdb` refuses to run as root. Started as root (as in many CI containers), the
cluster runs as the system's unprivileged `postgres` account (Debian's package
creates it) in a folder that account owns; without that account the test is skipped
with the reason. The binaries are the newest under /usr/lib/postgresql/*/bin, or
whatever `initdb` is on PATH.

fsync is off: the soak crashes PostgreSQL's processes, never the machine, and a
crashed server still recovers everything the kernel was handed; on a shared two-core
machine fsync would only slow ingest down.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import psycopg
import pytest

from devkit.mqtt_broker import free_port

SUPERUSER = "soak"
DATABASE = "greenpass"
RUN_AS_WHEN_ROOT = "postgres"

# What a full disk looks like to a client: PostgreSQL's own SQLSTATE 53100 and message.
# A trigger on every table raises it, for every session at once, until it is dropped.
_DISK_FULL_FUNCTION = """
CREATE OR REPLACE FUNCTION soak_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'could not extend file "base/soak": No space left on device'
    USING ERRCODE = 'disk_full', HINT = 'Check free disk space.';
END $$
"""


def _binaries() -> Path:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path is None:
        pytest.skip("PostgreSQL's initdb is not installed (Debian: apt-get install postgresql)")
    return Path(on_path).parent


class PostgresCluster:
    def __init__(self, folder: Path, port: int, bindir: Path, run_as: str | None) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.logfile = folder / "postgres.log"
        self.port = port
        self.bindir = bindir
        self.run_as = run_as

    @classmethod
    def start_new(cls) -> PostgresCluster:
        run_as = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(RUN_AS_WHEN_ROOT)
            except KeyError:
                pytest.skip(
                    "running as root, and initdb refuses root: the soak runs PostgreSQL as "
                    f"the unprivileged {RUN_AS_WHEN_ROOT!r} account, which does not exist here"
                )
            run_as = RUN_AS_WHEN_ROOT
        # Not under pytest's tmp_path: as root that is private to root, and the
        # postgres account could not reach its own data folder.
        folder = Path(tempfile.mkdtemp(prefix="gp-soak-pg-"))
        folder.chmod(0o755)
        cluster = cls(folder, free_port(), _binaries(), run_as)
        try:
            cluster._init()
            cluster.start()
            with cluster.admin() as conn:
                conn.execute(f"CREATE DATABASE {DATABASE}")
        except BaseException:
            cluster.close()
            raise
        return cluster

    # --- commands ---------------------------------------------------------------------

    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        return ["runuser", "-u", self.run_as, "--", *cmd] if self.run_as else cmd

    def _run(self, *args: str, timeout: float = 60) -> None:
        r = subprocess.run(
            self._cmd(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if r.returncode != 0:
            raise AssertionError(f"{' '.join(args[:2])} failed:\n{r.stdout}\n{r.stderr}")

    def _init(self) -> None:
        if self.run_as:
            shutil.chown(self.folder, self.run_as)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8")
        options = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.folder}'",
            "fsync": "off",
            "max_connections": "60",
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
        }
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as f:
            f.writelines(f"{k} = {v}\n" for k, v in options.items())

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60",
                  "start")  # fmt: skip

    def stop(self, *, immediate: bool = False) -> None:
        """`immediate`: every server process quits at once, no checkpoint (a crash)."""
        mode = "immediate" if immediate else "fast"
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, *, immediate: bool = False) -> None:
        self.stop(immediate=immediate)
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    # --- as a client ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=dbname,
            autocommit=True, connect_timeout=5,
        )  # fmt: skip

    def terminate_backends(self) -> int:
        """Kill every client connection to the database (central's, mid-ingest)."""
        killed: list[int] = []

        def kill() -> None:
            with self.admin() as conn:
                row = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (DATABASE,),
                ).fetchone()
            killed.append(int(str(row[0])) if row else 0)

        self._until_up(kill)
        return killed[0]

    @contextlib.contextmanager
    def disk_full(self) -> Iterator[None]:
        """Every insert, update and delete in the database fails as on a full disk
        (SQLSTATE 53100) until the block ends; reads go on working, as they do.

        One table at a time, each in its own transaction: creating a trigger locks its
        table, and holding one lock while waiting for the next deadlocks with ingest,
        which writes several tables in one transaction. (Retried while the server is
        down: another fault may be restarting it.)"""
        tables: list[str] = []

        def fill() -> None:
            with self.admin(DATABASE) as conn:
                conn.execute(_DISK_FULL_FUNCTION)
                tables[:] = [
                    str(r[0])
                    for r in conn.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                    )
                ]
                for t in tables:
                    conn.execute(f'DROP TRIGGER IF EXISTS soak_disk_full ON "{t}"')
                    conn.execute(
                        f"CREATE TRIGGER soak_disk_full BEFORE INSERT OR UPDATE OR DELETE "
                        f'ON "{t}" FOR EACH STATEMENT EXECUTE FUNCTION soak_disk_full()'
                    )

        self._until_up(fill)
        try:
            yield
        finally:
            self._until_up(self._free_disk)

    def _free_disk(self) -> None:
        with self.admin(DATABASE) as conn:
            tables = conn.execute(
                "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE t.tgname = 'soak_disk_full'"
            ).fetchall()
            for (t,) in tables:
                conn.execute(f'DROP TRIGGER IF EXISTS soak_disk_full ON "{t}"')

    @staticmethod
    def _until_up(step: Callable[[], None], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                step()
                return
            except (psycopg.OperationalError, psycopg.errors.DeadlockDetected):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    # --- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop the server (if it runs) and delete its folder."""
        try:
            if self.running():
                self.stop(immediate=True)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
