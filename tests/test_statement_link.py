"""The statement link (issue 16): signed over the passbook, the expiry and who signed,
one spelling per link, and nothing else a key signs passes for one."""

from __future__ import annotations

import pytest

from greenpass import statement_link as sl
from greenpass.heads import sign_head
from sync.keys import generate_key

KEY = generate_key()
PUB = KEY.public_key()
DAY = 20_500  # 2026-02-16


def test_a_link_round_trips_and_verifies() -> None:
    for kind, signer in (("c", ""), ("d", "K0001"), ("i", "dongcun-office-1")):
        link = sl.sign(KEY, kind, signer, "K0001-00042", DAY)
        url = link.url("https://central.example/")
        assert url.startswith("https://central.example/s/") and len(url) < 200
        again = sl.parse(url.rsplit("/s/", 1)[1])
        assert again == link and again.verifies(PUB)
        assert not again.verifies(generate_key().public_key())


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace("K0001-00042", "K0001-00043"),
        lambda t: t.replace(f"~{DAY}~", f"~{DAY + 365}~"),
        lambda t: t.replace("dK0001~", "dK0002~"),
        lambda t: t.replace("dK0001~", "iK0001~"),
    ],
)
def test_a_changed_link_does_not_verify(change: object) -> None:
    token = sl.sign(KEY, "d", "K0001", "K0001-00042", DAY).token
    changed = change(token)  # type: ignore[operator]
    assert changed != token
    assert not sl.parse(changed).verifies(PUB)


def test_a_changed_signature_does_not_verify() -> None:
    token = sl.sign(KEY, "d", "K0001", "K0001-00042", DAY).token
    head, sig = token.rsplit("~", 1)
    # The first character carries six bits of the signature (the last only two).
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    assert not sl.parse(f"{head}~{flipped}").verifies(PUB)


def test_one_spelling_per_link() -> None:
    token = sl.sign(KEY, "c", "", "K0001-00042", DAY).token
    head, sig = token.rsplit("~", 1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # The last character's low four bits are padding: any other value with the same top
    # two bits decodes to the same signature, and is refused.
    top = alphabet.index(sig[-1]) & 0b110000
    other = alphabet[top | 0b0001]
    with pytest.raises(sl.BadLink, match="canonically"):
        sl.parse(f"{head}~{sig[:-1]}{other}")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "x" * 400,
        "cK1~P~1~" + "A" * 86,  # central signs with no signer id
        "d~P~1~" + "A" * 86,  # a kiosk's link names the kiosk
        "dK1~P~1~" + "A" * 85,
        "dK1~P~1234567~" + "A" * 86,
        "dK1~../etc~1~" + "A" * 86,
        "qK1~P~1~" + "A" * 86,
    ],
)
def test_what_is_not_a_link_is_refused(token: str) -> None:
    with pytest.raises(sl.BadLink):
        sl.parse(token)


def test_expiry_is_the_end_of_the_day_utc() -> None:
    link = sl.sign(KEY, "c", "", "P1", DAY)
    assert not link.expired((DAY + 1) * sl.DAY_MS - 1)
    assert link.expired((DAY + 1) * sl.DAY_MS)
    assert sl.day_of(DAY * sl.DAY_MS + 5) == DAY


def test_no_other_signature_passes_for_a_link() -> None:
    """A chain head signed by the same kiosk key is not a link to anything."""
    head_sig = sign_head(KEY, "K0001", 7, bytes(32))
    forged = sl.StatementLink("d", "K0001", "K0001-00042", DAY, head_sig)
    assert not forged.verifies(PUB)
    with pytest.raises(ValueError, match="signer"):
        sl.sign(KEY, "c", "K0001", "P1", DAY)
