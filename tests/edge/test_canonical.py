"""The canonical bytes are the contract between kiosk and central: they must stay
exactly the documented JSON form whatever encoder produces them."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import given
from hypothesis import strategies as st

from greenpass.record.entries import CANONICAL_VERSION, Entry, Kind, canonical_bytes

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)


def reference(entry: Entry) -> bytes:
    payload = {**entry.fields(), "v": CANONICAL_VERSION}
    if payload["ref_device"] is None:  # added later: present only when set
        del payload["ref_device"]
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


@given(
    passbook=st.none() | text,
    reason=st.none() | text,
    data=st.dictionaries(text, text, max_size=3),
    grams=st.none() | st.integers(-(2**53), 2**53),
    wall=st.integers(0, 2**50),
    ref_device=st.none() | text,
)
def test_canonical_bytes_are_sorted_compact_utf8_json(
    passbook: str | None,
    reason: str | None,
    data: dict[str, str],
    grams: int | None,
    wall: int,
    ref_device: str | None,
) -> None:
    entry = Entry(
        device_id="K1",
        seq=1,
        entry_id="0192c0e0-0000-7000-8000-000000000000",
        kind=Kind.AWARD,
        wall_ms=wall,
        clock_ok=True,
        boot_id="b",
        mono_ms=0,
        passbook_id=passbook,
        grams=grams,
        reason=reason,
        data=data,
        ref_device=ref_device,
    )
    assert canonical_bytes(entry) == reference(entry)


def test_canonical_bytes_of_a_known_entry() -> None:
    entry = Entry("K1", 1, "e", Kind.DEPOSIT, 5, False, "b", 7, passbook_id="P", grams=3)
    assert canonical_bytes(entry) == (
        b'{"boot_id":"b","category":null,"clock_ok":false,"co2e_g":0,"data":{},'
        b'"device_id":"K1","entry_id":"e","flags":"","grams":3,"item_id":null,'
        b'"kind":"deposit","mono_ms":7,"passbook_id":"P","points":0,"qty":null,'
        b'"reason":null,"ref_seq":null,"rules_version":null,"seq":1,"staff_id":null,"v":1,'
        b'"wall_ms":5}'
    )


def test_ref_device_is_in_the_bytes_only_when_set() -> None:
    """Entries from before `ref_device` (and every entry without one) hash as they did;
    a reversal of another kiosk's entry carries it, between `reason` and `ref_seq`."""
    own = Entry("K2", 3, "e", Kind.REVERSAL, 5, True, "b", 7, points=-4, ref_seq=2)
    assert b"ref_device" not in canonical_bytes(own)
    other = dataclasses.replace(own, ref_device="K1")
    assert b'"reason":null,"ref_device":"K1","ref_seq":2,' in canonical_bytes(other)
    assert canonical_bytes(other) != canonical_bytes(own)


def test_fields_are_exactly_the_entrys_fields() -> None:
    entry = Entry("K1", 1, "e", Kind.DEPOSIT, 5, False, "b", 7, data={"a": "b"})
    fields = entry.fields()
    assert list(fields) == [f.name for f in dataclasses.fields(Entry)]
    assert fields["kind"] == "deposit" and type(fields["kind"]) is str
    fields["data"]["a"] = "changed"  # a copy: the entry stays as it was
    assert entry.data == {"a": "b"}
