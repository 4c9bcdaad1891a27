"""Judging an ack against the ledger (`sync.acks`): pure, every way an ack can be wrong.

The ledger here has confirmed up to seq 10 and holds up to 13. The same acks
travel through a real broker to a real uplink in test_bad_acks.py.
"""

from __future__ import annotations

import msgspec
import pytest

from greenpass.errors import BadAck
from sync import protocol as p
from sync.acks import judge_ack

ACKED, HEAD = 10, 13


def ack(acked_seq: int = 13, **fields: object) -> bytes:
    """An ack as central encodes it (JSON), with any field set to anything."""
    base = {"device_id": "K1", "status": "ok", "acked_seq": acked_seq}
    return msgspec.json.encode({**base, "expected_seq": acked_seq + 1, **fields})


def judge(payload: bytes, fresh: tuple[int, ...] = ()) -> tuple[str, bool]:
    j = judge_ack(payload, device_id="K1", acked_seq=ACKED, head_seq=HEAD, fresh=fresh)
    return j.ack.status, j.late


def refused(payload: bytes, fresh: tuple[int, ...] = ()) -> str:
    with pytest.raises(BadAck) as exc:
        judge_ack(payload, device_id="K1", acked_seq=ACKED, head_seq=HEAD, fresh=fresh)
    assert str(exc.value)  # a message for a person, too
    return exc.value.code


def test_sane_acks_are_acted_on() -> None:
    assert judge(ack(acked_seq=13, first_seq=11, last_seq=13)) == ("ok", False)
    assert judge(ack(acked_seq=10, first_seq=10, last_seq=10)) == ("ok", False)  # a probe
    assert judge(ack(status="gap", acked_seq=11, expected_seq=12)) == ("gap", False)
    assert judge(ack(status="gap", acked_seq=13, expected_seq=14)) == ("gap", False)
    assert judge(ack(status="bad_chain", acked_seq=10, reason="x")) == ("bad_chain", False)


def test_acks_overtaken_by_newer_ones_pass_as_late() -> None:
    # Several central workers publish in the order they finish: an ok for an earlier
    # batch, or a gap for a batch sent before central's latest ok, may come last.
    assert judge(ack(acked_seq=5, first_seq=1, last_seq=5)) == ("ok", True)
    gap = ack(status="gap", acked_seq=0, expected_seq=1, first_seq=6, last_seq=9)
    assert judge(gap, fresh=(11,)) == ("gap", True)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", "ack_malformed"),
        (b'{"device_id":"K1","status":"ok","acked_seq":"9"}', "ack_malformed"),
        (b"x" * (p.MAX_ACK_PAYLOAD + 1), "ack_malformed"),
        (ack(acked_seq=-1), "ack_malformed"),
        (ack(device_id="K2"), "ack_wrong_device"),
        (ack(status="fine"), "ack_unknown_status"),
        (ack(acked_seq=14, first_seq=11, last_seq=14), "ack_beyond_head"),
        (ack(status="rejected", acked_seq=99), "ack_beyond_head"),
        (ack(acked_seq=7), "ack_backwards"),  # answers no batch: central went down
        (ack(acked_seq=7, first_seq=11, last_seq=13), "ack_backwards"),
        (ack(status="gap", acked_seq=13, expected_seq=40), "ack_bad_expected"),
        (ack(status="gap", acked_seq=0, expected_seq=0), "ack_bad_expected"),
    ],
)
def test_impossible_acks_are_refused_with_their_code(payload: bytes, code: str) -> None:
    assert refused(payload) == code
    assert code in p.SYNC_FAULTS


def test_a_gap_below_the_acked_point_for_a_fresh_batch_means_central_went_back() -> None:
    # Answering a batch sent after central had confirmed 10, central asks for 4 again.
    gap = ack(status="gap", acked_seq=3, expected_seq=4, first_seq=11, last_seq=13)
    assert refused(gap, fresh=(11,)) == "ack_backwards"


def test_the_status_stays_compatible_both_ways() -> None:
    """An older central decodes a new status (it skips `sync_fault`); a new central
    decodes an older kiosk's status (no fault)."""

    class OldStatus(msgspec.Struct, kw_only=True):  # the status before sync_fault
        device_id: str
        online: bool
        last_error: str = ""

    fault = p.SyncFault(code="ack_beyond_head", message="central acknowledged 9", since_ms=5)
    new = p.encode_status(p.Status(device_id="K1", online=True, sync_fault=fault))
    old = msgspec.json.decode(new, type=OldStatus)
    assert (old.device_id, old.online) == ("K1", True)
    assert p.decode_status(new).sync_fault == fault
    older = msgspec.json.encode(OldStatus(device_id="K1", online=False))
    assert p.decode_status(older).sync_fault is None
