"""End to end through real processes: a card revoked in the console (Chromium) is
refused at a kiosk that gets central's state over a real Mosquitto (`greenpass sync
run`), as issue 12 asks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from devkit.mqtt_broker import Broker
from tests.central_process import ROOT, running_central
from tests.console.test_console_browser import BROKER_USERS, PW, Offline, login
from tests.sync.harness import wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_a_card_revoked_in_the_console_is_refused_at_the_kiosk(
    tmp_path: Path, browser: Browser
) -> None:
    with (
        Broker(tmp_path / "broker", BROKER_USERS) as broker,
        running_central(tmp_path, broker, GREENPASS_DB=str(tmp_path / "kiosk.db")) as c,
    ):

        def gp(*args: str, stdin: str = "", ok: bool = True) -> subprocess.CompletedProcess[str]:
            return c.gp(*args, stdin=stdin, ok=ok)

        token = c.token("KT", "V9")  # the admin token, before a county account retires it
        gp("ledger", "init", "--device-id", "KT", "--village", "V9")
        gp("ledger", "staff-add", "--id", "wang", "--name", "Wang", "--role", "admin",
           stdin="2468\n")  # fmt: skip
        gp("sync", "enrol", "--central", c.url, "--central-ca", str(c.ca), "--token", token,
           "--out", str(tmp_path / "kt"))  # fmt: skip
        gp("ledger", "enrol", "--staff", "wang", "--household", "张家", stdin="2468\n")
        (tmp_path / "pw").write_text(PW + "\n")
        gp("central", "account", "add", "ops", "--role", "county",
           "--password-file", str(tmp_path / "pw"))  # fmt: skip
        uplink = subprocess.Popen(
            [sys.executable, "-m", "greenpass", "sync", "run", "--config",
             str(tmp_path / "kt" / "sync.toml")],
            env=c.env, cwd=ROOT, stderr=subprocess.PIPE,
        )  # fmt: skip
        o = Offline(browser, {"width": 1280, "height": 900})
        try:
            wait_for(
                "the enrolment at central",
                lambda: "backlog     0 entries" in gp("sync", "status").stdout,
                timeout=30,
            )
            page = o.page
            login(page, c, "ops")
            page.goto(f"{c.url}/villages/V9/passbooks/KT-00001")
            page.fill("form.revoke input[name=reason]", "card lost")
            page.click("[data-testid=revoke]")
            page.wait_for_selector("[data-testid=done]")

            def refused() -> bool:
                r = gp("ledger", "deposit", "--passbook", "KT-00001", "--category", "paper",
                       "--grams", "1000", ok=False)  # fmt: skip
                return r.returncode != 0 and "revoked" in (r.stderr + r.stdout)

            wait_for("the kiosk to refuse the revoked card", refused, timeout=30)
            assert not o.blocked and not o.dialogs
        finally:
            o.context.close()
            uplink.terminate()
            uplink.wait(10)
