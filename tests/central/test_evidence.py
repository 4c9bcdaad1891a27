"""Evidence packs (issue 13): `greenpass central evidence` writes one from central's real
database (SQLite and PostgreSQL), `greenpass verify-evidence` checks it with nothing
but the pack and central's public key, and every kind of tampering the issue names is
caught and the entry named. No household name is ever in a pack, erased or not."""

from __future__ import annotations

import json
import shlex
import zipfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from central import evidence, exports, personal, tlog
from central.ingest import ingest
from central.store import CentralStore
from greenpass import checkpoint
from greenpass import evidence as ev
from greenpass.cli import main
from greenpass.errors import CentralError, ConfigError
from greenpass.evidence_verify import EXIT_DISCREPANCY, EXIT_OK, EXIT_UNPROVEN, verify_pack
from greenpass.record.entries import Kind
from sync.keys import generate_key, public_bytes, save_private_key
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk, populate
from tests.central.forge import forged_batch

KEY = generate_key()
CENTRAL_HEX = public_bytes(KEY).hex()
TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 1, 1)  # the test clock's first day
NAMES = ("Li household", "Wang household", "Zhao household")


def sync(store: CentralStore, k: Kiosk, *, heads: bool = True) -> None:
    first = k.ledger.outbox.acked_seq() + 1
    result = ingest(store, k.topic, k.batch(first, sign_head=heads), NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    k.ledger.outbox.mark_acked(result.ack.acked_seq, NOW)


def write(store: CentralStore, out: Path, first: date = DAY, last: date = DAY) -> evidence.Written:
    return evidence.write_pack(
        store, KEY, "V1", first, last, out, origin="central.test/log", default_tz=TZ, now_ms=NOW
    )


def verdict(path: Path, *others: Path) -> tuple[int, list[str]]:
    report, _ = verify_pack(path, CENTRAL_HEX, others)
    code = EXIT_DISCREPANCY if report.failed else EXIT_UNPROVEN if report.unproven else EXIT_OK
    return code, report.lines


def failed(lines: list[str], check: str) -> str:
    found = [line for line in lines if line.startswith("FAIL") and line.split()[1] == check]
    assert found, f"no failed {check} check in {lines}"
    return found[0]


def edited(src: Path, dst: Path, member: str, change: Callable[[str], str]) -> Path:
    """A copy of the pack with one member rewritten."""
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for info in z.infolist():
            data = z.read(info)
            if info.filename == member:
                data = change(data.decode()).encode()
            out.writestr(info, data)
    return dst


def entry_lines(pack: Path) -> list[dict[str, object]]:
    with zipfile.ZipFile(pack) as z:
        return [json.loads(x) for x in z.read(ev.ENTRIES).decode().splitlines()]


def rewrite_entries(change: Callable[[list[dict[str, object]]], None]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        rows = [json.loads(x) for x in text.splitlines()]
        change(rows)
        return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)

    return apply


@pytest.fixture
def pack(store: CentralStore, k1: Kiosk, tmp_path: Path) -> Path:
    ids = populate(k1)
    sync(store, k1)
    k1.clock.advance(60_000)
    k1.ledger.deposit(ids["li"], "paper", 800)
    sync(store, k1)
    return write(store, tmp_path / "v1.zip").path


def test_a_pack_verifies_offline_and_its_totals_are_centrals(
    store: CentralStore, pack: Path, k1: Kiosk
) -> None:
    code, lines = verdict(pack)
    assert code == EXIT_OK, lines
    assert [line.split()[1] for line in lines] == [
        "checkpoint", "chains", "origin", "log", "rules", "pricing", "totals"
    ]  # fmt: skip
    _, totals = verify_pack(pack, CENTRAL_HEX)
    want = exports.totals_as_api(store, "V1", exports.Period(DAY, DAY, TZ))
    assert {k: v for k, v in totals.as_json().items()} == {k: want[k] for k in totals.as_json()}
    assert totals.deposits == 5  # six deposits, one reversed
    with zipfile.ZipFile(pack) as z:
        names = set(z.namelist())
        summary = z.read(ev.SUMMARY).decode()
    assert set(ev.REQUIRED) | {ev.SUMMARY, ev.README} <= names
    assert any(n.startswith(ev.RULES_DIR) for n in names)
    assert "减排证据包" in summary and "Evidence pack" in summary and CENTRAL_HEX in summary
    # Every entry of the kiosk is in the pack (its whole day), with its own hash.
    own = {(e.seq, h.hex()) for e, h in k1.ledger.iter_entries()}
    assert {(int(str(r["seq"])), str(r["h"])) for r in entry_lines(pack)} == own


def test_the_command_line_writes_a_pack_and_its_printed_line_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], k1: Kiosk, store: CentralStore,
    central_url: str,
) -> None:  # fmt: skip
    populate(k1)
    sync(store, k1)
    home = tmp_path / "home"
    home.mkdir()
    save_private_key(home / "central.key", KEY)
    out = tmp_path / "cli.zip"
    args = ["central", "evidence", "--db", central_url, "--home", str(home), "--village", "V1",
            "--from", "2026-01-01", "--to", "2026-01-01", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("verify: "))
    command = shlex.split(line.removeprefix("verify: "))
    assert command[0] == "greenpass"
    assert main(command[1:]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "verdict: VERIFIED" in shown and "points issued" in shown
    # Without central's key there is nothing to sign the catch-up checkpoint with.
    assert main([*args[:4], "--home", str(tmp_path / "none"), *args[6:]]) == 2
    assert "no central key" in capsys.readouterr().err
    # Another key: the checkpoint is not central's.
    other = public_bytes(generate_key()).hex()
    assert main(["verify-evidence", str(out), "--central-key", other]) == EXIT_DISCREPANCY


def test_grams_changed_is_caught_and_named(pack: Path, tmp_path: Path) -> None:
    def change(rows: list[dict[str, object]]) -> None:
        row = next(r for r in rows if r["kind"] == "deposit")
        row["grams"] = int(str(row["grams"])) + 1000
        change.seq = row["seq"]  # type: ignore[attr-defined]

    bad = edited(pack, tmp_path / "t.zip", ev.ENTRIES, rewrite_entries(change))
    code, lines = verdict(bad)
    assert code == EXIT_DISCREPANCY
    assert f"K1:{change.seq}: does not hash" in failed(lines, "chains")  # type: ignore[attr-defined]
    failed(lines, "log")  # and its leaf is no longer the logged one


def test_an_entry_dropped_or_duplicated_is_caught_and_named(pack: Path, tmp_path: Path) -> None:
    rows = entry_lines(pack)
    middle = rows[len(rows) // 2]
    dropped = edited(
        pack, tmp_path / "d.zip", ev.ENTRIES,
        rewrite_entries(lambda rs: rs.remove(next(r for r in rs if r["seq"] == middle["seq"]))),
    )  # fmt: skip
    code, lines = verdict(dropped)
    assert code == EXIT_DISCREPANCY
    assert f"K1:{middle['seq']} follows" in failed(lines, "chains")
    doubled = edited(
        pack, tmp_path / "x.zip", ev.ENTRIES,
        rewrite_entries(lambda rs: rs.insert(rs.index(middle), dict(middle))),
    )  # fmt: skip
    code, lines = verdict(doubled)
    assert f"K1:{middle['seq']} appears twice" in failed(lines, "chains")


def test_a_changed_factor_is_caught_and_named(pack: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(pack) as z:
        rules = next(n for n in z.namelist() if n.startswith(ev.RULES_DIR))
    bad = edited(pack, tmp_path / "f.zip", rules, lambda t: t.replace("3.913", "4.913"))
    code, lines = verdict(bad)
    assert code == EXIT_DISCREPANCY
    paper = next(r for r in entry_lines(pack) if r["category"] == "paper")
    assert f"K1:{paper['seq']}: " in failed(lines, "pricing")
    assert "factors.csv: cn-default-2026.11/paper differs" in failed(lines, "rules")


def test_points_from_another_rules_version_are_caught(pack: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(pack) as z:
        name = next(n for n in z.namelist() if n.startswith(ev.RULES_DIR))
        text = z.read(name).decode()
    richer = text.replace('version = "cn-default-2026.11"', 'version = "richer"').replace(
        "points_per_kg = 8\n", "points_per_kg = 16\n"
    )
    with_second = tmp_path / "r.zip"
    with zipfile.ZipFile(pack) as z, zipfile.ZipFile(with_second, "w") as out:
        for info in z.infolist():
            out.writestr(info, z.read(info))
        out.writestr(f"{ev.RULES_DIR}richer.toml", richer)

    def reprice(rows: list[dict[str, object]]) -> None:
        row = next(r for r in rows if r["category"] == "paper" and r["kind"] == "deposit")
        row["rules_version"] = "richer"
        row["points"] = int(str(row["grams"])) * 16 // 1000
        reprice.seq = row["seq"]  # type: ignore[attr-defined]

    bad = edited(with_second, tmp_path / "p.zip", ev.ENTRIES, rewrite_entries(reprice))
    code, lines = verdict(bad)
    assert code == EXIT_DISCREPANCY
    assert f"K1:{reprice.seq}: does not hash" in failed(lines, "chains")  # type: ignore[attr-defined]


def test_a_checkpoint_signed_by_another_key_is_refused(pack: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(pack) as z:
        note = z.read(ev.CHECKPOINT)
    body = note.split(b"\n\n", 1)[0] + b"\n"
    cp = checkpoint.parse_body(body, "central.test/log")
    forged = checkpoint.sign(cp, "central.test/log", generate_key()).decode()
    bad = edited(pack, tmp_path / "k.zip", ev.CHECKPOINT, lambda _t: forged)
    code, lines = verdict(bad)
    assert code == EXIT_DISCREPANCY
    assert "the key given" in failed(lines, "checkpoint")
    failed(lines, "log")  # nothing is proven against an untrusted checkpoint


def test_a_forked_log_is_caught_by_comparing_checkpoints(pack: Path, tmp_path: Path) -> None:
    """Central showed another kiosk another tree of the same size: both signed by central,
    so each alone verifies; side by side they prove the fork."""
    with zipfile.ZipFile(pack) as z:
        note = z.read(ev.CHECKPOINT)
    cp = checkpoint.parse_body(note.split(b"\n\n", 1)[0] + b"\n", "central.test/log")
    other = checkpoint.Checkpoint(cp.origin, cp.size, bytes(32))
    kiosk_k2 = tmp_path / "k2.checkpoint"
    kiosk_k2.write_bytes(checkpoint.sign(other, cp.origin, KEY))
    same = tmp_path / "k3.checkpoint"
    same.write_bytes(note)
    code, lines = verdict(pack, same)
    assert code == EXIT_OK and any(x.startswith("ok     forks") for x in lines)
    code, lines = verdict(pack, same, kiosk_k2)
    assert code == EXIT_DISCREPANCY
    assert "forked" in failed(lines, "forks")
    # Two kiosks' checkpoints of another size than the pack's are compared with each other.
    bigger = checkpoint.Checkpoint(cp.origin, cp.size + 5, bytes(32))
    k4, k5 = tmp_path / "k4.checkpoint", tmp_path / "k5.checkpoint"
    k4.write_bytes(checkpoint.sign(bigger, cp.origin, KEY))
    k5.write_bytes(checkpoint.sign(checkpoint.Checkpoint(cp.origin, cp.size + 5, b"\1" * 32),
                                   cp.origin, KEY))  # fmt: skip
    code, lines = verdict(pack, k4)
    assert code == EXIT_OK and any("consistency" in x for x in lines)
    code, lines = verdict(pack, k4, k5)
    assert f"two trees of size {cp.size + 5}" in failed(lines, "forks")


def test_head_signatures_prove_origin(pack: Path, tmp_path: Path) -> None:
    stripped = edited(pack, tmp_path / "h.zip", ev.HEADS, lambda _t: json.dumps({"K1": []}))
    code, lines = verdict(stripped)
    assert code == EXIT_UNPROVEN  # nothing wrong, but the device's word is missing
    assert any(x.startswith("note   origin") for x in lines)

    def garble(text: str) -> str:
        heads = json.loads(text)
        seq, sig, key = heads["K1"][0]
        heads["K1"][0] = [seq, sig[:-2] + ("00" if sig[-2:] != "00" else "11"), key]
        return json.dumps(heads)

    code, lines = verdict(edited(pack, tmp_path / "g.zip", ev.HEADS, garble))
    assert code == EXIT_DISCREPANCY
    assert "signed head does not verify" in failed(lines, "origin")


def test_a_kiosk_re_enrolled_with_a_new_key_keeps_its_older_heads(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    ids = populate(k1)
    sync(store, k1)
    old = public_bytes(k1.key).hex()
    k1.key = generate_key()  # the kiosk's disk replaced: a new key, the same ledger
    enrol(store, k1)
    k1.clock.advance(60_000)
    k1.ledger.deposit(ids["wang"], "paper", 1200)
    sync(store, k1)
    path = write(store, tmp_path / "rekeyed.zip").path
    with zipfile.ZipFile(path) as z:
        (device,) = json.loads(z.read(ev.DEVICES))
    assert device["public_keys"] == [public_bytes(k1.key).hex(), old]
    code, lines = verdict(path)
    assert code == EXIT_OK, lines

    def foreign(text: str) -> str:  # a head's key that is not the device's
        heads = json.loads(text)
        heads["K1"][0][2] = public_bytes(generate_key()).hex()
        return json.dumps(heads)

    _, lines = verdict(edited(path, tmp_path / "f.zip", ev.HEADS, foreign))
    assert "key is not the device's" in failed(lines, "origin")


def test_changed_totals_and_proofs_are_caught(pack: Path, tmp_path: Path) -> None:
    def more(text: str) -> str:
        t = json.loads(text)
        t["co2e_g"] += 1
        return json.dumps(t)

    _, lines = verdict(edited(pack, tmp_path / "t.zip", ev.TOTALS, more))
    assert "co2e_g: central says" in failed(lines, "totals")

    def moved(text: str) -> str:  # the entries claimed one leaf later
        p = json.loads(text)
        p["K1"]["runs"][0][1] += 1
        return json.dumps(p)

    _, lines = verdict(edited(pack, tmp_path / "q.zip", ev.PROOFS, moved))
    assert "device K1" in failed(lines, "log")


def test_a_village_among_others_is_proven_by_shared_hashes(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    """Another village's kiosk syncs between K1's batches: K1's leaves are scattered, its
    proof has hashes, and bending any of them is caught."""
    k2 = new_kiosk(tmp_path / "k2", "K2", village="V2")
    store.create_village("V2")
    enrol(store, k2, "V2")
    ids = populate(k1)
    other = populate(k2)
    for n in range(3):
        for k, who in ((k1, ids), (k2, other)):
            k.clock.advance(40_000)
            k.ledger.deposit(who["li"], "paper", 900 + n)
            sync(store, k)
            tlog.append_pending(store, KEY, tlog.LogSettings("central.test/log", 1000, 3600), NOW)
    path = write(store, tmp_path / "mixed.zip").path
    code, lines = verdict(path)
    assert code == EXIT_OK, lines
    assert not any(r["device_id"] == "K2" for r in entry_lines(path))
    with zipfile.ZipFile(path) as z:
        proofs = json.loads(z.read(ev.PROOFS))
    assert list(proofs) == ["K1"] and len(proofs["K1"]["runs"]) > 1 and proofs["K1"]["hashes"]

    def bend(text: str) -> str:
        p = json.loads(text)
        p["K1"]["hashes"][-1] = "00" * 32
        return json.dumps(p)

    code, lines = verdict(edited(path, tmp_path / "b.zip", ev.PROOFS, bend))
    assert "device K1" in failed(lines, "log")
    k2.ledger.close()


def test_no_household_name_is_in_a_pack_before_or_after_erasure(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    ids = populate(k1)
    sync(store, k1)

    def all_bytes(path: Path) -> bytes:
        with zipfile.ZipFile(path) as z:
            return b"".join(z.read(n) for n in z.namelist())

    before = all_bytes(write(store, tmp_path / "before.zip").path)
    personal.erase(store, ids["li"], actor="op", now_ms=NOW + 1)
    after_pack = write(store, tmp_path / "after.zip").path
    after = all_bytes(after_pack)
    for name in NAMES:
        assert name.encode() not in before and name.encode() not in after
    assert verdict(after_pack)[0] == EXIT_OK


def test_an_old_enrolment_with_a_name_is_in_the_pack_by_hash_alone(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    """A kiosk from before enrol data version 2 chained the name; central keeps no copy of
    it, so the pack gives that entry's hash and no fields to recompute it from."""
    populate(k1)
    sync(store, k1)
    payload = forged_batch(
        k1, {"kind": Kind.ENROL, "passbook_id": "K1-OLD", "staff_id": "S1",
             "data": {"household_name": "Old-style household", "village": "V1"}},
    )  # fmt: skip
    result = ingest(store, k1.topic, payload, NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    path = write(store, tmp_path / "old.zip").path
    rows = entry_lines(path)
    assert [r["passbook_id"] for r in rows if r.get("redacted")] == ["K1-OLD"]
    with zipfile.ZipFile(path) as z:
        assert not any(b"Old-style" in z.read(n) for n in z.namelist())
    code, lines = verdict(path)
    # The entries before it are under the earlier batch's head; it has none of its own
    # (the forged batch carried none), so it alone rests on central's word.
    assert code == EXIT_UNPROVEN, lines
    assert "K1:" in next(x for x in lines if x.startswith("note   origin"))


def test_a_pack_needs_a_village_and_an_ordered_period(store: CentralStore, tmp_path: Path) -> None:
    with pytest.raises(CentralError, match="no village"):
        evidence.write_pack(store, KEY, "NOPE", DAY, DAY, tmp_path / "n.zip",
                            origin="o", default_tz=TZ, now_ms=NOW)  # fmt: skip
    with pytest.raises(ConfigError, match="after"):
        write(store, tmp_path / "n.zip", date(2026, 2, 1), DAY)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="evidence pack"):
        verify_pack(tmp_path / "junk.zip", CENTRAL_HEX)
