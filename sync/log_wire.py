"""The cross-check of central's transparency log on the wire (docs/trust.md): what
central adds to a kiosk's state so the kiosk can check the log, and the fault a
kiosk reports in its status when the check fails. `sync.protocol` re-exports these;
`sync.log_check` is the kiosk's judgement.

A state's `log` (sent only to kiosks naming `FEATURE_LOG_PROOFS`) holds central's
newest signed checkpoint, the consistency proof from the checkpoint the kiosk last
accepted (its status's `log_size`), and range proofs for the next runs of the kiosk's
own entries after those it has already proven (its status's `log_seq`). A *run* is
the entries of one device the log's sequencer appended together: consecutive seqs at
consecutive leaves, so one proof (`greenpass.merkle.range_proof`, about 2·log2(size)
hashes) covers all of them and the kiosk computes every leaf from its own ledger.
"""

from __future__ import annotations

import msgspec

# The log fault's `code` (docs/sync.md explains each). All but `log_late` stay until a
# technician resets the check (`greenpass sync log --reset`): they are evidence.
LOG_FAULTS = {
    "log_bad_checkpoint": "central's log checkpoint is not signed by central's key, "
    "or is of another log than the one this kiosk follows",
    "log_not_extended": "central's log does not extend the checkpoint this kiosk accepted "
    "(history rewritten, or central shows kiosks different logs)",
    "log_entry_changed": "central's log holds something else where it says this kiosk's "
    "entries are",
    "log_entry_missing": "central's log skips an entry of this kiosk",
    "log_late": "entries central acknowledged are still not proven in its log a day later",
}
STICKY_LOG_FAULTS = frozenset(LOG_FAULTS) - {"log_late"}


class LogFault(msgspec.Struct, kw_only=True, frozen=True):
    """Why this kiosk distrusts central's log, in its status: `code` is one of
    `LOG_FAULTS`, `message` names the device and seq for a person, `seq` is the
    kiosk's entry concerned (0: the checkpoint itself), `size` the checkpoint's size
    concerned, `since_ms` the kiosk's wall clock when it was found."""

    code: str
    message: str = ""
    since_ms: int = 0
    seq: int = 0
    size: int = 0


class WireRun(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """This device's entries first_seq … first_seq + count - 1 are the log's leaves
    index … index + count - 1; `proof` is `merkle.range_proof` of them."""

    index: int
    first_seq: int
    count: int
    proof: list[bytes]


class StateLog(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    checkpoint: bytes  # central's newest checkpoint, the C2SP signed note as central signed it
    # The checkpoint size and proven seq this part was built for (the kiosk's status said
    # so): a kiosk that has moved on since ignores the part instead of misjudging it.
    from_size: int = 0
    from_seq: int = 0
    consistency: list[bytes] = []  # from `from_size` to the checkpoint (when 0 < from < size)
    upto_seq: int = 0  # this device's entries 1 … upto_seq are in the checkpoint's tree
    runs: list[WireRun] = []  # the next runs after `from_seq`, in seq order
