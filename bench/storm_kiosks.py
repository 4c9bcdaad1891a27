"""The reconnect storm's simulated kiosks (`bench.sync_storm`): many per process, on
one asyncio loop.

Each kiosk speaks exactly what a kiosk speaks — its paho client made by
`sync.transport.new_client` and connected with `connect_args` (MQTT version, clean
start, session expiry, TLS, in-flight limit), its own login: connect (jittered
backoff on refusal), subscribe to its ack, publish its status (retained, and its
offline status as its will), publish its batch at QoS 1, resend when
no ack came (the kiosk's `ack_timeout_s`, growing as the kiosk's `AckWait` does),
done on `ok` — but holds a precomputed batch and no ledger file.

Why not a thread each, as `Transport` runs: a thousand kiosk threads and their
thousand paho network threads in one Python process queue for its one GIL (the
generator then took half of two cores, and 20,000 threads for a 10,000-kiosk storm
thrashed the machine). Here paho has no network thread: the loop watches each
client's socket and calls its `loop_read`/`loop_write`, as paho's own asyncio
example does. The TCP connect and TLS handshake are paho's and block the loop for
their round trip; `Fleet` times the connect phase, so a slow one shows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import time
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from greenpass import __version__
from greenpass.errors import TransportError
from greenpass.record.entries import GENESIS_H, Entry, Kind, chain_hash
from greenpass.record.ids import uuid7
from greenpass.record.personal import PERSONAL_KEY, commitment, household_fields
from greenpass.record.rules import default_rules
from sync import protocol as p
from sync.keys import Ed25519PrivateKey
from sync.transport import AckWait, Backoff, BrokerConfig, connect_args, new_client, no_delay

T0 = 1_764_000_000_000
CONNECT_TIMEOUT_S = 30.0
ACK_TIMEOUT_S = 20.0  # the kiosk's default `ack_timeout_s`, growing as the kiosk's does
_MISC_S = 2.0  # keepalive pings and timeouts of every live client (paho's loop_misc)

# Enrol data version 2 (greenpass.record.personal): a commitment, the name kept beside the chain.
HOUSEHOLD = commitment(household_fields("H"), bytes(16))

# Deposits priced by the shipped rules, which central re-checks (central.recheck): a
# made-up rules version is refused and dead-lettered, and the storm never ends.
RULES = default_rules()
PAPER = RULES.category("paper")
assert PAPER is not None


def entries_for(device: str, village: str, n: int) -> list[tuple[Entry, bytes]]:
    """An enrolment then `n - 1` deposits of 1 kg paper, chained."""
    assert PAPER is not None
    out: list[tuple[Entry, bytes]] = []
    prev = GENESIS_H
    passbook = f"{device}-00001"
    for seq in range(1, n + 1):
        e = Entry(
            device_id=device,
            seq=seq,
            entry_id=str(uuid7(T0 + seq * 60_000)),
            kind=Kind.ENROL if seq == 1 else Kind.DEPOSIT,
            wall_ms=T0 + seq * 60_000,
            clock_ok=True,
            boot_id="b0",
            mono_ms=seq * 60_000,
            passbook_id=passbook,
            staff_id="S1" if seq == 1 else None,
            category=None if seq == 1 else "paper",
            grams=None if seq == 1 else 1000,
            points=0 if seq == 1 else PAPER.points_for(1000),
            co2e_g=0 if seq == 1 else PAPER.co2e_for(1000),
            rules_version=None if seq == 1 else RULES.version,
            data={PERSONAL_KEY: HOUSEHOLD, "village": village} if seq == 1 else {},
        )
        prev = chain_hash(prev, e)
        out.append((e, prev))
    return out


class _Connection:
    """One paho client driven by the loop: its socket watched for reading, and for
    writing while paho has bytes queued."""

    live: ClassVar[set[_Connection]] = set()  # for the process's one loop_misc task

    def __init__(
        self,
        cfg: BrokerConfig,
        loop: asyncio.AbstractEventLoop,
        will: tuple[str, bytes],
        reads: frozenset[str],
    ) -> None:
        self.cfg, self.loop = cfg, loop
        self.client = c = new_client(cfg, will=will)
        self.connack: asyncio.Future[Any] = loop.create_future()
        self.suback: asyncio.Future[list[Any]] = loop.create_future()
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()  # None: connection lost
        self._sock: Any = None
        c.on_socket_open = self._opened
        c.on_socket_close = self._closed
        c.on_socket_register_write = lambda _c, _u, sock: loop.add_writer(sock, self._write)
        c.on_socket_unregister_write = self._unregister_write
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = lambda _c, _u, _m, codes, _p: _settle(self.suback, list(codes))
        self.reads = reads  # the topics this kiosk reads; anything else is dropped
        c.on_message = self._on_message

    def _opened(self, _c: Any, _u: Any, sock: Any) -> None:
        self._sock = sock
        self.loop.add_reader(sock, self._read)
        _Connection.live.add(self)

    def _closed(self, _c: Any, _u: Any, sock: Any) -> None:
        self.loop.remove_reader(sock)
        self.loop.remove_writer(sock)
        _Connection.live.discard(self)
        self._sock = None

    def _unregister_write(self, _c: Any, _u: Any, sock: Any) -> None:
        self.loop.remove_writer(sock)

    def _read(self) -> None:
        self.client.loop_read()
        # TLS may hold decrypted bytes the socket no longer signals: read them too.
        while isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            self.client.loop_read()

    def _write(self) -> None:
        self.client.loop_write()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        # A session resumed from an earlier connection under this client id may hold
        # other subscriptions (a bench's probe of the states): a kiosk dispatches by
        # topic, and this one reads only its acks (also those the session kept).
        if msg.topic in self.reads:
            self.inbox.put_nowait(bytes(msg.payload))

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        _settle(self.connack, reason)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        _settle(self.connack, reason)
        self.inbox.put_nowait(None)

    async def connect(self) -> None:
        host, port, _ = self.cfg.host_port()
        try:
            self.client.connect(host, port, **connect_args(self.cfg))  # TCP and TLS: blocking
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"cannot reach broker {self.cfg.url}: {exc}") from exc
        no_delay(self.client)
        reason = await _within(self.connack, CONNECT_TIMEOUT_S, "no CONNACK")
        if reason.is_failure:
            raise TransportError(f"broker refused {self.cfg.username!r}: {reason}")

    async def subscribe(self, topic: str) -> None:
        if self.cfg.v5:
            rc, _ = self.client.subscribe([(topic, SubscribeOptions(qos=1))])
        else:
            rc, _ = self.client.subscribe([(topic, 1)])
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransportError(f"subscribe failed: {mqtt.error_string(rc)}")
        codes = await _within(self.suback, CONNECT_TIMEOUT_S, "no SUBACK")
        if any(c.is_failure for c in codes):
            raise TransportError(f"broker refused the subscription to {topic}")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransportError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")

    async def message(self, timeout_s: float) -> bytes | None:
        """The next message's payload; None when none came within `timeout_s`."""
        try:
            payload = await asyncio.wait_for(self.inbox.get(), timeout_s)
        except TimeoutError:
            return None
        if payload is None:
            raise TransportError("connection to the broker lost")
        return payload

    def close(self) -> None:
        self.client.disconnect()  # paho closes the socket once DISCONNECT is written


def _settle(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


async def _within(fut: asyncio.Future[Any], timeout_s: float, what: str) -> Any:
    try:
        return await asyncio.wait_for(asyncio.shield(fut), timeout_s)
    except TimeoutError:
        raise TransportError(f"{what} within {timeout_s} s") from None


async def _misc_loop() -> None:
    while True:
        await asyncio.sleep(_MISC_S)
        for conn in list(_Connection.live):
            conn.client.loop_misc()


Report = Any  # called as report(what, device, perf_counter time, detail)


class SimKiosk:
    def __init__(
        self, broker: BrokerConfig, key: Ed25519PrivateKey, rows: list[tuple[Entry, bytes]]
    ) -> None:
        self.cfg = broker
        self.payload, n = p.encode_batch(broker.username, rows, GENESIS_H, key, T0)
        assert n == len(rows)
        self.last_seq = rows[-1][0].seq
        # Its status, as the uplink publishes it on connecting (retained) and leaves as
        # its last will: central records each one (`CentralStore.record_status`).
        self.online, self.offline = (
            _status(broker.username, n, online=True),
            _status(broker.username, n, online=False),
        )
        self.done = False
        self.connects = self.resends = 0

    async def run(self, report: Report, stop: asyncio.Event) -> None:
        name, loop = self.cfg.username, asyncio.get_running_loop()
        ack_topic = p.topic(name, p.ACK)
        backoff = Backoff(0.5, 30)
        ack_wait = AckWait(ACK_TIMEOUT_S)
        while not stop.is_set() and not self.done:
            conn = _Connection(
                self.cfg, loop, (p.topic(name, p.STATUS), self.offline), frozenset({ack_topic})
            )
            try:
                await conn.connect()
                self.connects += 1
                await conn.subscribe(ack_topic)
                conn.publish(p.topic(name, p.STATUS), self.online, retain=True)
                if self.connects == 1:
                    report("sub", name, time.perf_counter(), "")
                while not self.done and not stop.is_set():
                    conn.publish(p.topic(name, p.BATCH), self.payload)
                    payload = await conn.message(ack_wait.current_s)
                    if payload is None:
                        self.resends += 1
                        ack_wait.timed_out()
                        continue
                    ack_wait.acked()
                    ack = p.decode_ack(payload)
                    if ack.status == "ok" and ack.acked_seq >= self.last_seq:
                        self.done = True
                        report("ack", name, time.perf_counter(), f"{self.connects} {self.resends}")
                    elif ack.status == "rejected":  # resending cannot help: say why
                        report("refused", name, 0.0, ack.reason or "rejected")
                        return
            except TransportError:
                pass
            finally:
                conn.close()
            if not self.done:
                await asyncio.sleep(backoff.next_delay())


def _status(device: str, entries: int, *, online: bool) -> bytes:
    return p.encode_status(
        p.Status(
            device_id=device, online=online, ts_ms=T0, version=__version__,
            backlog=entries, acked_seq=0, head_seq=entries, scale="ok", scanner="ok",
            features=list(p.FEATURES), clock_ok=True,
        )
    )  # fmt: skip


Sim = tuple[str, str, bytes, str, str]  # device, MQTT password, raw private key, village, url


def generate(
    broker: BrokerConfig, sims: list[Sim], entries: int, start: Any, stop: Any, events: Any
) -> None:
    """One load-generator process: its share of the kiosks, started together at
    `start`, each one's first subscription, ack or refusal put on `events`."""
    kiosks = [
        SimKiosk(
            dataclasses.replace(broker, username=d, password=pw, client_id=f"gp-{d}", url=url),
            Ed25519PrivateKey.from_private_bytes(raw),
            entries_for(d, v, entries),
        )
        for d, pw, raw, v, url in sims
    ]
    events.put(("ready", "", 0.0, ""))
    start.wait()
    asyncio.run(_storm(kiosks, stop, events))


async def _storm(kiosks: list[SimKiosk], stop: Any, events: Any) -> None:
    done = asyncio.Event()

    def report(what: str, name: str, t: float, detail: str) -> None:
        events.put((what, name, t, detail))

    async def watch() -> None:  # the parent's stop, or every kiosk done
        while not stop.is_set() and not all(k.done for k in kiosks):
            await asyncio.sleep(0.1)
        done.set()

    misc = asyncio.create_task(_misc_loop())
    runs = [asyncio.create_task(k.run(report, done)) for k in kiosks]
    await watch()
    await asyncio.wait(runs, timeout=5)
    misc.cancel()
