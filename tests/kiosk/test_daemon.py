"""The kiosk daemon end to end through its HTTP API, with the simulated hardware.

A real `greenpass kiosk` process: the simulated scale and scanner sit on
pseudo-terminals read by the production drivers; the ledger is a real file.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.kiosk.cards import make_card, read_card
from edge.ledger.central_state import CentralState
from edge.ledger.ledger import Ledger
from simulator.kiosk_home import STAFF_PIN, make_kiosk_home
from sync.keys import load_private_key, public_bytes
from tests.kiosk.conftest import RunningKiosk, start_kiosk, stop_kiosk


def screen_is(name: str):  # type: ignore[no-untyped-def]
    return lambda v: v["screen"] == name


def deposit(k: RunningKiosk, card: str, category: str, grams: int) -> dict:  # type: ignore[type-arg]
    k.scan(card)
    k.wait_view("villager screen", screen_is("villager"))
    r = k.post("/api/category", {"category": category})
    assert r.status_code == 200, r.text
    k.wait_view("empty scale seen", lambda v: v["hint"] == "place_bag")
    k.sim("scale", action="place", grams=grams)
    v = k.wait_view("an answer", lambda v: v["screen"] in ("confirmed", "refused"))
    k.sim("scale", action="remove")
    return v


def done(k: RunningKiosk) -> None:
    k.post("/api/cancel")
    k.post("/api/cancel")
    k.wait_view("idle", screen_is("idle"))


def ledger_of(k: RunningKiosk) -> Ledger:
    return Ledger.open(k.home.folder / "kiosk.db")


def test_a_villager_deposit_is_confirmed_only_after_commit(shared_kiosk: RunningKiosk) -> None:
    k = shared_kiosk
    assert k.view()["screen"] == "idle"
    k.scan("villager 张家")
    v = k.wait_view("villager screen", screen_is("villager"))
    assert v["villager"]["name"] == "张*"
    assert v["villager"]["balance"] == 0
    assert k.post("/api/category", {"category": "cardboard"}).status_code == 200
    k.wait_view("weighing", lambda v: v["screen"] == "weighing" and v["hint"] == "place_bag")
    k.sim("scale", action="place", grams=3250)
    v = k.wait_view("confirmed", screen_is("confirmed"))
    assert v["result"]["grams"] == 3250
    assert v["result"]["points"] == 32  # 10 points per kg, floored
    assert v["result"]["co2e_g"] > 0
    assert v["villager"]["balance"] == 32
    assert v["villager"]["today"][0]["grams"] == 3250
    with ledger_of(k) as ledger:
        last = ledger.entry(ledger.head()[0])
        assert (last.kind, last.passbook_id, last.grams) == ("deposit", "K0001-0001", 3250)
    # The same bag left on the scale is not weighed twice: a new category asks to remove it.
    assert k.post("/api/category", {"category": "paper"}).status_code == 200
    k.wait_view("remove the bag", lambda v: v["hint"] == "remove_bag")
    k.sim("scale", action="remove")
    k.wait_view("scale empty", lambda v: v["hint"] == "place_bag")
    done(k)


def test_an_unstable_bag_waits_and_a_light_one_is_refused(shared_kiosk: RunningKiosk) -> None:
    k = shared_kiosk
    k.scan("villager 李家")
    k.wait_view("villager", screen_is("villager"))
    k.post("/api/category", {"category": "glass"})
    k.sim("scale", action="wobble", grams=2000)
    k.wait_view("hold still", lambda v: v["hint"] == "hold_still")
    assert k.view()["screen"] == "weighing"
    k.sim("scale", action="place", grams=150)  # glass needs 300 g
    k.wait_view("too light", lambda v: v["hint"] == "too_light")
    k.sim("scale", action="remove")
    done(k)


def test_a_bag_that_never_settles_must_come_off_and_go_back(tmp_path: Path) -> None:
    """The simulated scale wobbles for longer than `settle_timeout_s`: the villager is
    told what to do, nothing is weighed until the scale was empty, then all is as usual."""
    home = make_kiosk_home(
        tmp_path / "K0001", "K0001", "dongcun", extra_kiosk_keys="settle_timeout_s = 2"
    )
    k = start_kiosk(home, tmp_path / "kiosk.log")
    try:
        k.scan("villager 张家")
        k.wait_view("villager", screen_is("villager"))
        assert k.post("/api/category", {"category": "paper"}).status_code == 200
        k.wait_view("empty scale seen", lambda v: v["hint"] == "place_bag")
        k.sim("scale", action="wobble", grams=2000)
        k.wait_view("hold still", lambda v: v["hint"] == "hold_still")
        v = k.wait_view("told to take the bag off", lambda v: v["hint"] == "unsettled")
        assert v["screen"] == "weighing" and v["villager"]["passbook"] == "K0001-0001"
        # It settles at last, but the villager was told to take it off: not weighed.
        k.sim("scale", action="place", grams=2000)
        steady = {"grams": 2000, "stable": True}
        v = k.wait_view("a steady reading", lambda v: v["weight"] == steady)
        assert (v["screen"], v["hint"]) == ("weighing", "unsettled")
        with ledger_of(k) as ledger:
            assert ledger.today_deposits("K0001-0001") == []
        k.sim("scale", action="remove")
        k.wait_view("a clean start", lambda v: v["hint"] == "place_bag")
        k.sim("scale", action="place", grams=2000)
        v = k.wait_view("confirmed", screen_is("confirmed"))
        assert (v["result"]["grams"], v["result"]["points"]) == (2000, 16)
        k.sim("scale", action="remove")
        done(k)
    finally:
        stop_kiosk(k)


def test_scale_unplugged_is_shown_and_recovers(shared_kiosk: RunningKiosk) -> None:
    k = shared_kiosk
    k.scan("villager 王家")
    k.wait_view("villager", screen_is("villager"))
    k.post("/api/category", {"category": "metal"})
    k.sim("scale", action="unplug")
    v = k.wait_view("disconnected", lambda v: v["hint"] == "scale_disconnected")
    assert v["status"]["scale"] == "disconnected"
    k.sim("scale", action="replug")
    k.wait_view("reconnected", lambda v: v["status"]["scale"] == "ok", timeout=15)
    k.sim("scale", action="place", grams=1000)
    k.wait_view("confirmed", screen_is("confirmed"))
    k.sim("scale", action="remove")
    done(k)


@pytest.mark.parametrize(
    ("make_payload", "code"),
    [
        (lambda home: "https://example.com/not-ours", "not_a_card"),
        (lambda home: _forged(home.card("villager 赵家")), "forged"),
        (
            lambda home: make_card(
                "passbook", "dongcun", "K0001-0004", key_id="stranger",
                key=Ed25519PrivateKey.generate(),
            ),
            "unknown_issuer",
        ),
        (lambda home: _own_card(home, "xicun", "X-0001"), "foreign_village"),
        (lambda home: _own_card(home, "dongcun", "K0001-9999"), "unknown_passbook"),
    ],
)  # fmt: skip
def test_bad_cards_are_refused_in_plain_words(
    shared_kiosk: RunningKiosk,
    make_payload,
    code: str,  # type: ignore[no-untyped-def]
) -> None:
    k = shared_kiosk
    k.sim("scan", payload=make_payload(k.home))
    v = k.wait_view("refused", screen_is("refused"))
    assert v["refusal"] == code
    assert v["villager"] is None
    k.wait_view("back to idle", screen_is("idle"), timeout=10)


def _forged(card: str) -> str:
    """The card with one signature character changed. Not its last three set to "AAA":
    base32's last character carries only 2 bits, so one card in about 4,096 already
    ended so, and its "forgery" was the card itself (a flaky test)."""
    i = len(card) - 20  # well inside the 103-character signature
    return card[:i] + ("B" if card[i] == "A" else "A") + card[i + 1 :]


def _own_card(home, village: str, passbook: str) -> str:  # type: ignore[no-untyped-def]
    key = load_private_key(home.folder / "device.key")
    return make_card("passbook", village, passbook, key_id=home.device_id, key=key)


def test_a_revoked_passbook_is_refused(shared_kiosk: RunningKiosk) -> None:
    k = shared_kiosk
    with ledger_of(k) as ledger:
        ledger.set_villager_status("K0001-0006", "revoked", staff_id="wang", reason="card lost")
    k.scan("villager 刘家")
    assert k.wait_view("refused", screen_is("refused"))["refusal"] == "revoked_passbook"
    k.wait_view("idle", screen_is("idle"), timeout=10)


def test_cooldown_refusal_comes_from_the_ledger(shared_kiosk: RunningKiosk) -> None:
    k = shared_kiosk
    assert deposit(k, "villager 陈家", "textiles", 800)["screen"] == "confirmed"
    k.post("/api/category", {"category": "textiles"})
    k.wait_view("empty scale seen", lambda v: v["hint"] == "place_bag")
    k.sim("scale", action="place", grams=900)
    v = k.wait_view("refused", screen_is("refused"))
    assert v["refusal"] == "cooldown"
    k.sim("scale", action="remove")
    done(k)


def test_staff_sign_in_redeem_enrol_reverse_restock_report(shared_kiosk: RunningKiosk) -> None:
    k = shared_kiosk
    assert k.post("/api/staff/redeem", {"cart": [["soap", 1]]}).status_code == 403
    k.scan("staff 王丽")
    k.wait_view("PIN pad", screen_is("staff_pin"))
    r = k.post("/api/staff/pin", {"pin": "0000"})
    assert r.status_code == 409 and r.json()["code"] == "bad_pin"
    assert k.post("/api/staff/pin", {"pin": STAFF_PIN}).status_code == 200
    v = k.wait_view("staff menu", screen_is("staff"))
    assert v["staff"]["id"] == "wang" and v["staff"]["task"] == "menu"

    # Redeem for 张家, who earned 32 points above: soap costs 25.
    k.post("/api/staff/task", {"task": "redeem"})
    r = k.post("/api/staff/redeem", {"cart": [["soap", 1]]})
    assert r.json()["code"] == "no_villager"
    k.scan("villager 张家")
    v = k.wait_view("villager chosen", lambda v: (v["staff"] or {}).get("villager") is not None)
    assert v["staff"]["villager"]["balance"] == 32
    r = k.post("/api/staff/redeem", {"cart": [["rice-5kg", 1]]})
    assert r.status_code == 409 and r.json()["code"] == "insufficient_points"
    r = k.post("/api/staff/redeem", {"cart": [["soap", 1]]})
    assert r.status_code == 200, r.text
    assert r.json()["balance"] == 7
    soap = next(i for i in k.http.get("/api/catalogue").json()["items"] if i["id"] == "soap")
    assert soap["stock"] == 39

    k.post("/api/staff/task", {"task": "enrol"})
    r = k.post("/api/staff/enrol", {"household": "孙家"})
    assert r.status_code == 200, r.text
    card = r.json()["card"]
    with ledger_of(k) as ledger:
        assert read_card(card, _own_keys(k), "dongcun").holder_id == r.json()["passbook"]
        assert ledger.villager(r.json()["passbook"]) is not None
    svg = k.http.get("/api/card.svg", params={"text": card})
    assert svg.status_code == 200 and svg.text.lstrip().startswith("<?xml")

    entries = k.http.get("/api/staff/entries").json()["entries"]
    redeem_seq = next(e["seq"] for e in entries if e["kind"] == "redeem")
    k.post("/api/staff/task", {"task": "reverse"})
    r = k.post("/api/staff/reverse", {"seq": redeem_seq, "reason": "wrong item"})
    assert r.status_code == 200, r.text
    r = k.post("/api/staff/reverse", {"seq": redeem_seq, "reason": "again"})
    assert r.status_code == 409 and r.json()["code"] == "already_reversed"

    # A deposit another kiosk holds central's reservation to reverse (the state's
    # reversed_elsewhere): listed as reversed, and refused here, naming that kiosk.
    deposit_seq = next(e["seq"] for e in entries if e["kind"] == "deposit")
    with ledger_of(k) as ledger:
        keys = {r["key_id"]: bytes(r["public_key"]) for r in ledger.store.query(
            "SELECT key_id, public_key FROM issuer_keys")}  # fmt: skip
        version = int(ledger.store.query("SELECT coalesce(max(version), 0) AS v FROM "
                                         "central_state")[0]["v"])  # fmt: skip
        assert ledger.apply_state(
            CentralState(
                version=version + 1, included_seq=0, issuer_keys=keys,
                reversed_elsewhere={deposit_seq: "K2"},
            )
        )  # fmt: skip
    listed = k.http.get("/api/staff/entries").json()["entries"]
    assert next(e for e in listed if e["seq"] == deposit_seq)["reversed_by"] == "K2"
    r = k.post("/api/staff/reverse", {"seq": deposit_seq, "reason": "wrong passbook"})
    assert r.status_code == 409 and r.json()["code"] == "already_reversed", r.text
    assert r.json()["by"] == "K2", r.text

    r = k.post("/api/staff/restock", {"item": "vinegar", "qty": 5})
    assert r.json()["stock"] == 25
    report = k.http.get("/api/staff/report").json()["report"]
    assert {"categories", "points_in", "points_out", "co2e_g", "stock"} <= set(report)
    assert any(c["category"] == "cardboard" and c["grams"] == 3250 for c in report["categories"])

    with ledger_of(k) as ledger:  # every staff action carries the staff id
        staff_entries = [
            e
            for e, _ in ledger.iter_entries()
            if e.kind in ("redeem", "reversal", "restock", "enrol")
        ]
        assert staff_entries and all(e.staff_id == "wang" for e in staff_entries[-4:])
        assert ledger.verify().ok
    assert k.post("/api/staff/signout").status_code == 200
    k.wait_view("idle", screen_is("idle"))


def _own_keys(k: RunningKiosk) -> dict[str, bytes]:
    return {k.home.device_id: public_bytes(load_private_key(k.home.folder / "device.key"))}


def test_bad_requests_get_clear_errors(shared_kiosk: RunningKiosk) -> None:
    k = shared_kiosk
    r = k.http.post("/api/category", content=b"not json")
    assert r.status_code == 400 and r.json()["code"] == "bad_request"
    r = k.post("/api/language", {"lang": "fr"})
    assert r.status_code == 409 and r.json()["code"] == "bad_language"
    r = k.post("/api/staff/pin", {"pin": 1234})
    assert r.status_code == 400
    assert k.post("/api/category", {"category": "gold"}).json()["code"] == "unknown_category"
    assert k.view()["screen"] == "idle"


def test_language_switch(shared_kiosk: RunningKiosk) -> None:
    k = shared_kiosk
    assert k.post("/api/language", {"lang": "en"}).status_code == 200
    assert k.wait_view("english", lambda v: v["lang"] == "en")["lang"] == "en"
    k.post("/api/language", {"lang": "zh"})
    k.wait_view("chinese", lambda v: v["lang"] == "zh")


def test_staff_lockout_after_wrong_pins(kiosk: RunningKiosk) -> None:
    k = kiosk
    k.scan("staff 周强")
    k.wait_view("PIN pad", screen_is("staff_pin"))
    answers = [k.post("/api/staff/pin", {"pin": "1111"}).json() for _ in range(5)]
    assert [a.get("tries_left") for a in answers[:4]] == [4, 3, 2, 1]  # for the screen
    assert answers[-1]["code"] == "staff_locked"
    v = k.wait_view("signed out", lambda v: v["screen"] != "staff_pin")
    assert v["staff"]["message"] == "staff_locked"
    k.scan("staff 周强")
    k.wait_view("PIN pad", screen_is("staff_pin"))
    r = k.post("/api/staff/pin", {"pin": STAFF_PIN})  # the right PIN, but locked
    assert r.json()["code"] == "staff_locked"


def test_leds_follow_the_kiosk(kiosk: RunningKiosk) -> None:
    k = kiosk
    k.wait_view("ready", lambda v: v["status"]["scale"] == "ok")
    assert k.http.get("/sim/state").json()["leds"] == {"green": True, "amber": False, "red": False}
    k.sim("scale", action="unplug")
    k.wait_view("fault", lambda v: v["status"]["scale"] == "disconnected")
    # red blinks at 1 Hz: within 1.5 s it is seen lit, and green is off
    seen_red = False
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline and not seen_red:
        leds = k.http.get("/sim/state").json()["leds"]
        seen_red = leds["red"]
        time.sleep(0.05)
    assert seen_red and not leds["green"]


def test_a_card_held_to_the_camera_opens_the_villager_screen(tmp_path: Path) -> None:
    """The camera path: simulated frames, the real CameraScanner and zxing decoder."""
    home = make_kiosk_home(tmp_path / "K0001", "K0001", "dongcun")
    text = home.config.read_text(encoding="utf-8")
    home.config.write_text(
        text.replace("[simulator]", '[hardware.scanner]\nkind = "camera"\n\n[simulator]'), "utf-8"
    )
    k = start_kiosk(home, tmp_path / "kiosk.log")
    try:
        k.scan("villager 张家")
        v = k.wait_view("villager screen", screen_is("villager"))
        assert v["villager"]["passbook"] == "K0001-0001"
    finally:
        stop_kiosk(k)


def test_cancel_signs_staff_out_like_the_button(shared_kiosk: RunningKiosk) -> None:
    k = shared_kiosk
    k.scan("staff 王丽")
    k.wait_view("PIN pad", screen_is("staff_pin"))
    assert k.post("/api/staff/pin", {"pin": STAFF_PIN}).status_code == 200
    k.wait_view("staff menu", screen_is("staff"))
    assert k.post("/api/cancel").status_code == 200
    v = k.wait_view("signed out", screen_is("idle"))
    assert v["staff"] is None


def test_sigterm_with_a_page_open_stops_promptly(tmp_path: Path) -> None:
    home = make_kiosk_home(tmp_path / "K0001", "K0001", "dongcun")
    k = start_kiosk(home, tmp_path / "kiosk.log")
    with httpx.Client(base_url=k.url, timeout=10) as client, client.stream("GET", "/events") as ev:
        lines = ev.iter_lines()
        assert next(lines) == "retry: 1000"
        t0 = time.monotonic()
        k.proc.terminate()
        for _ in lines:  # until the server ends the stream itself
            pass
        k.proc.wait(10)
    assert time.monotonic() - t0 < 5
    assert k.proc.returncode in (0, -15)
    assert "ERROR" not in (tmp_path / "kiosk.log").read_text()
    k.http.close()


def test_the_span_correction_applies_to_deposits(tmp_path: Path) -> None:
    home = make_kiosk_home(tmp_path / "K0001", "K0001", "dongcun")
    text = home.config.read_text(encoding="utf-8")
    home.config.write_text(text.replace("[hardware.scale]", "[hardware.scale]\nspan_ppm = 980392"))
    k = start_kiosk(home, tmp_path / "kiosk.log")
    try:
        v = deposit(k, "villager 张家", "paper", 2040)  # an indicator reading 2 % heavy
        assert v["screen"] == "confirmed"
        assert v["villager"]["today"][0]["grams"] == 2000
    finally:
        stop_kiosk(k)
