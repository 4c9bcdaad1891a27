"""What a kiosk makes of an ack from central: act on it, let it pass, or refuse it.

Pure: the payload and what the ledger says (`acked_seq`, the head) in, a verdict
out; no network, no database. The uplink (`sync.uplink`) acts on the verdict.

An ack is refused with `BadAck` (its `code` is the sync fault the kiosk reports)
when it cannot be read, is for another device, has an unknown status, or is
impossible for this ledger:

    any status, acked_seq > head        ack_beyond_head   central holds what this file does not
    ok, acked_seq < acked, not late     ack_backwards     central's confirmed seq cannot go down
    gap, expected_seq not in 1..head+1  ack_bad_expected  there is no such entry to send
    gap, expected_seq <= acked, fresh   ack_backwards     central lost what it had confirmed

Some acks below the kiosk's `acked_seq` are normal and pass as *late*: several
central workers publish acks in the order they finish, and an ack may answer a
batch sent before the kiosk's last resend. An `ok` is late when it answers a batch
it covers (`first_seq <= last_seq <= acked_seq`); a `gap` below `acked_seq` is
late when it answers a batch sent before central's latest `ok` (the uplink knows
which batches it sent since then: `fresh`). A late ack changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from greenpass import __version__
from greenpass.errors import BadAck, ProtocolError
from sync import protocol as p

MAX_REASON = 300  # central's reason text, as far as a status line and the page show it


@dataclass(frozen=True)
class Judged:
    """An ack the kiosk may act on. `late`: overtaken by a newer answer, ignore it."""

    ack: p.Ack
    late: bool = False


def judge_ack(
    payload: bytes,
    *,
    device_id: str,
    acked_seq: int,
    head_seq: int,
    fresh: Collection[int] = (),
) -> Judged:
    """The ack in `payload`, judged against this ledger; `BadAck` if it must be refused.

    `acked_seq` and `head_seq` are the ledger's; `fresh` holds the first seq of every
    batch sent since `acked_seq` last moved."""
    try:
        ack = p.parse_ack(payload)
    except ProtocolError as exc:
        raise BadAck("ack_malformed", f"an ack from central could not be read: {exc}") from exc
    if ack.device_id != device_id:
        raise BadAck(
            "ack_wrong_device",
            f"an ack for device {_short(ack.device_id)!r} came on {device_id}'s topic",
        )
    if ack.status not in p.ACK_STATUSES:
        raise BadAck(
            "ack_unknown_status",
            f"central's ack status {_short(ack.status)!r} is unknown to this software "
            f"(version {__version__})",
        )
    if min(ack.acked_seq, ack.expected_seq, ack.first_seq, ack.last_seq) < 0:
        raise BadAck("ack_malformed", "an ack from central has a negative seq")
    if ack.acked_seq > head_seq:
        raise BadAck(
            "ack_beyond_head",
            f"central acknowledged seq {ack.acked_seq} but this ledger ends at {head_seq}: "
            "the ledger file was replaced or restored, or central confused two devices",
        )
    if ack.status == "ok":
        if ack.acked_seq >= acked_seq:
            return Judged(ack)
        if 1 <= ack.first_seq <= ack.last_seq <= ack.acked_seq:
            return Judged(ack, late=True)
        raise BadAck(
            "ack_backwards",
            f"central acknowledged up to seq {ack.acked_seq} (batch "
            f"{ack.first_seq}..{ack.last_seq}) but had already confirmed up to {acked_seq}",
        )
    if ack.status == "gap":
        if not 1 <= ack.expected_seq <= head_seq + 1:
            raise BadAck(
                "ack_bad_expected",
                f"central asks for seq {ack.expected_seq} but this ledger holds seqs 1..{head_seq}",
            )
        if ack.expected_seq > acked_seq:
            return Judged(ack)
        if ack.first_seq in fresh:
            raise BadAck(
                "ack_backwards",
                f"central asks again from seq {ack.expected_seq} but had confirmed up to "
                f"{acked_seq}: it lost entries it had stored (restored from a backup?)",
            )
        return Judged(ack, late=True)
    return Judged(ack)  # bad_chain / bad_signature / rejected: the uplink reports them


def refusal_fault(ack: p.Ack) -> BadAck:
    """Central's refusal of a batch (bad_chain, bad_signature, rejected) as a sync fault."""
    return BadAck(
        f"batch_{ack.status}",
        f"central refused batch {ack.first_seq}..{ack.last_seq}: "
        f"{ack.status}: {_short(ack.reason, MAX_REASON)}",
    )


def _short(text: str, limit: int = 60) -> str:
    """Text from the wire, cut short and on one line, for a status line and a log."""
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
