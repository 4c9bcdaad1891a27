"""Issue 14 end to end, over a real Mosquitto on SQLite and PostgreSQL: two kiosks'
deposits sync to central, enter its transparency log, are issued as units, which are
transferred and retired, and the retirement's certificate verifies offline against
the issuance's evidence pack — with nothing but the pack, the certificate and
central's public key."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from central import registry, registry_certificate
from central.heads import device_heads
from central.registry_db import Serials
from greenpass.evidence_verify import verify_pack
from greenpass.record.methodology import default_methodology
from sync.keys import public_bytes
from tests.sync.harness import Kiosk, World, wait_for

DECEMBER = 1_764_700_000_000  # 2025-12-02: the kiosks' November (harness T0) has ended


def a_day(k: Kiosk) -> None:
    """Two households, four deposits each of paper and cardboard, in November 2025."""
    people = [k.ledger.enrol(f"{k.device_id} household {n}", staff_id="S1").passbook_id or ""
              for n in range(2)]  # fmt: skip
    for _ in range(3):
        for who in people:
            for category in ("paper", "cardboard"):
                k.clock.advance(30_000)
                k.ledger.deposit(who, category, 9_000)


def head_kept(world: World, k: Kiosk) -> bool:
    last = k.ledger.head()[0]
    with world.store.read() as conn:
        kept = conn.scalar(select(func.max(device_heads.c.seq)).where(
            device_heads.c.device_id == k.device_id))  # fmt: skip
    return kept == last


def test_deposits_to_a_verified_retirement(world: World, tmp_path: Path) -> None:
    world.start_central()
    kiosks = [world.kiosk("K1"), world.kiosk("K2")]
    for k in kiosks:
        # A first entry synced teaches the kiosk that its central takes signed heads.
        k.ledger.enrol(f"{k.device_id} first household", staff_id="S1")
        uplink = k.start(world)
        wait_for("the kiosk knows central takes heads", uplink.heads.enabled)
        a_day(k)
    for k in kiosks:
        wait_for(f"{k.device_id} synced", k.synced)
        wait_for(f"{k.device_id}'s last head at central", lambda k=k: head_kept(world, k))

    done = registry.issue(
        world.store, world.central_key, "V1", "2025-11", default_methodology(),
        tmp_path / "registry", actor="county", now_ms=DECEMBER,
        default_tz=ZoneInfo("Asia/Shanghai"),
    )  # fmt: skip
    assert done.entries == 2 * 12 and not done.left_out
    assert done.issued is not None and done.issued.count >= 5
    registry.add_account(world.store, "acme", "Acme Cement", actor="county", now_ms=DECEMBER)
    registry.transfer(world.store, Serials(done.issuance_id, 1, 5), "acme", actor="county",
                      now_ms=DECEMBER)  # fmt: skip
    rid = registry.retire(world.store, Serials(done.issuance_id, 1, 4), beneficiary="Acme",
                          purpose="2025 offset", actor="acme", now_ms=DECEMBER)  # fmt: skip

    cert = tmp_path / "cert.json"
    doc = registry_certificate.document(world.store, world.central_key, rid, "https://c.test")
    cert.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    report, totals = verify_pack(
        done.pack, public_bytes(world.central_key).hex(), certificates=[cert]
    )
    assert not report.failed and not report.unproven, report.lines
    assert [line.split()[1] for line in report.lines] == [
        "checkpoint", "chains", "origin", "log", "rules", "pricing", "totals", "certificate"
    ]  # fmt: skip
    assert totals.deposits == 24 and totals.grams_by_category == {
        "paper": 12 * 9_000, "cardboard": 12 * 9_000
    }  # fmt: skip
