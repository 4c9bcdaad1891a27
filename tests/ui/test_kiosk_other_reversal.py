"""Staff reverse another kiosk's entry, found by its id (issue 17).

A real kiosk online with a real Mosquitto; central is played by a paho client logged
in as central: its ack says it takes `ref_device_v1`, and it answers the kiosk's
`up/reverse` requests on `down/reverse` as `central.reservations` does (or, for the
last part, does not answer at all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from devkit.mqtt_broker import Broker
from greenpass.record.entries import Kind
from sync import protocol as p
from sync import reserve_wire as rw
from tests.kiosk.conftest import RunningKiosk
from tests.kiosk.synced import DEVICE, head_of
from tests.sync.status_watch import StatusWatch, forged_ack
from tests.ui import synced_fixtures
from tests.ui.kiosk_pages import assert_fits, open_page, passbook_of, text, wait_screen
from tests.ui.test_kiosk_staff import deposit, open_task, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

broker, kiosk = synced_fixtures.broker, synced_fixtures.kiosk


def _central_answers(watch: StatusWatch, passbook: str, points: int) -> list[rw.ReserveRequest]:
    """Answer every request with a reservation of K9#7, a 2 kg paper deposit."""
    asked: list[rw.ReserveRequest] = []
    client = watch.client

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        if not msg.topic.endswith(rw.REQUEST):
            return
        req = rw.decode_request(msg.payload)
        asked.append(req)
        target = rw.WireTarget(
            device_id=req.target_device, seq=req.target_seq, kind=Kind.DEPOSIT.value,
            passbook_id=passbook, category="paper", grams=2000, points=points, co2e_g=3000,
            item_id=None, qty=None, rules_version="default", wall_ms=0,
        )  # fmt: skip
        reply = rw.ReserveReply(
            device_id=req.device_id, request_id=req.request_id, status="reserved", target=target
        )
        client.publish(p.topic(req.device_id, rw.REPLY), rw.encode(reply), qos=1)

    client.on_message = on_message
    assert not client.subscribe_wait(p.topic("+", rw.REQUEST))[0].is_failure
    return asked


def test_staff_find_confirm_and_reverse_another_kiosks_entry(
    page_800x480: Page, kiosk: RunningKiosk, broker: Broker
) -> None:
    points = deposit(kiosk, "王家", "paper", 2000)  # points to take back at this kiosk
    passbook = passbook_of(kiosk.home, "王家")
    watch = StatusWatch(broker, DEVICE)
    head = head_of(kiosk.home)
    accepts = [p.ACCEPT_PERSONAL, p.ACCEPT_HEADS, p.ACCEPT_REF_DEVICE]
    watch.forge(forged_ack(DEVICE, "ok", head, first_seq=1, last_seq=head, accepts=accepts))  # type: ignore[arg-type]
    page = open_page(page_800x480, kiosk)
    wait_screen(page, "idle")
    sign_in(page, kiosk)
    open_task(page, "reverse")
    page.wait_for_selector("#other-entry")  # offered: central takes it
    asked = _central_answers(watch, passbook, points)
    page.fill("#other-entry", "K9#7")
    page.click("#find-other")
    page.wait_for_function("document.querySelector('#picked-entry').textContent.includes('K9#7')")
    assert "废纸" in text(page, "#picked-entry")
    page.click("button.chip-btn:has-text('记错了')")
    page.click("#reverse")
    page.wait_for_selector("#reverse-confirm")
    assert text(page, "#confirm-title") == "撤销第 K9#7 条记录？"
    assert text(page, "#confirm-who") == f"村民：王* · {passbook}"
    assert text(page, "#confirm-what") == "投放 · 废纸 · 2 公斤"
    assert text(page, "#confirm-undoes") == f"从余额扣回 {points} 分"
    assert head_of(kiosk.home) == head  # nothing written before the confirmation
    assert_fits(page)
    page.click("#reverse-do")
    page.wait_for_selector("#outcome.msg-ok")
    assert text(page, "#outcome") == "已撤销第 K9#7 条"
    assert head_of(kiosk.home) == head + 1
    # Looked up when found (nothing reserved), reserved only once staff confirmed.
    assert [(r.target_device, r.target_seq, r.peek) for r in asked] == [
        ("K9", 7, True),
        ("K9", 7, False),
    ]


def test_no_answer_from_central_says_it_needs_the_network(
    page_800x480: Page, kiosk: RunningKiosk, broker: Broker
) -> None:
    watch = StatusWatch(broker, DEVICE)
    head = head_of(kiosk.home)
    accepts = [p.ACCEPT_REF_DEVICE]
    watch.forge(forged_ack(DEVICE, "ok", head, first_seq=1, last_seq=head, accepts=accepts))  # type: ignore[arg-type]
    page = open_page(page_800x480, kiosk)
    wait_screen(page, "idle")
    sign_in(page, kiosk)
    open_task(page, "reverse")
    page.wait_for_selector("#other-entry")
    page.fill("#other-entry", "K9#7")
    page.click("#find-other")  # nobody answers on down/reverse
    page.wait_for_selector("#outcome.msg-bad", timeout=15_000)
    assert text(page, "#outcome") == "需要联网：连上网络后再试"
    assert page.locator("#reverse-confirm").count() == 0
    assert head_of(kiosk.home) == head
