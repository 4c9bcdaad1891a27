"""The kiosk daemon end to end through its HTTP API, with the simulated hardware."""

from __future__ import annotations

from tests.kiosk.conftest import RunningKiosk


def test_a_villager_deposit_is_confirmed_only_after_commit(kiosk: RunningKiosk) -> None:
    assert kiosk.view()["screen"] == "idle"
    kiosk.scan("villager 张家")
    v = kiosk.wait_view("villager screen", lambda v: v["screen"] == "villager")
    assert v["villager"]["name"] == "张*"
    assert v["villager"]["balance"] == 0
    r = kiosk.post("/api/category", {"category": "cardboard"})
    assert r.status_code == 200, r.text
    kiosk.wait_view("weighing", lambda v: v["screen"] == "weighing" and v["hint"] == "place_bag")
    kiosk.sim("scale", action="place", grams=3250)
    v = kiosk.wait_view("confirmed", lambda v: v["screen"] == "confirmed")
    assert v["result"]["grams"] == 3250
    assert v["result"]["points"] > 0
    assert v["villager"]["balance"] == v["result"]["points"]
    assert v["villager"]["today"][0]["grams"] == 3250
