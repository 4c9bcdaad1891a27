"""The operator's routes (central.api_operator) over a real store, SQLite and PostgreSQL:
villages, rules, catalogue with its version check, passbooks, the audit; and
`greenpass central --no-broker` serving them from a real process."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from central import operations
from central.api import EnrolmentSettings, create_app
from central.catalogue_file import CatalogueItem, thumbnail
from central.ingest import ingest
from central.store import CentralStore
from devkit.mqtt_broker import free_port
from greenpass.record.rules import DEFAULT_RULES_PATH
from sync.keys import generate_key, public_bytes
from tests.central.conftest import NOW, SQLITE_ONLY, Kiosk
from tests.sync.harness import wait_for

# SQLite only: the operator API's routes; tests/central/test_operations.py runs their
# queries on both.
pytestmark = SQLITE_ONLY

ADMIN = "admin-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
ROOT = Path(__file__).resolve().parents[2]
SETTINGS = EnrolmentSettings(
    broker_url="mqtts://central.example:8883",
    ca_cert_pem="",
    central_public_key=public_bytes(generate_key()),
)


@pytest.fixture
def client(store: CentralStore) -> Iterator[TestClient]:
    app = create_app(store, admin_token=ADMIN, enrolment=SETTINGS, clock=lambda: NOW)
    with TestClient(app, headers=AUTH) as c:
        yield c


def rules_text(version: str) -> str:
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    return text.replace('version = "cn-default-2026.11"', f'version = "{version}"', 1)


def test_villages(client: TestClient) -> None:
    body = {"name_zh": "东村", "name_en": "East village"}
    r = client.put("/api/v1/villages/dongcun", json=body)
    assert r.status_code == 201, r.text
    assert r.json() == {
        "village_id": "dongcun", "name_zh": "东村", "name_en": "East village",
        "timezone": "Asia/Shanghai", "devices": 0, "rules_version": None, "catalogue_version": 0,
    }  # fmt: skip
    assert client.put("/api/v1/villages/dongcun", json=body).status_code == 200
    assert [v["village_id"] for v in client.get("/api/v1/villages").json()] == ["V1", "dongcun"]
    assert client.get("/api/v1/villages/nowhere").status_code == 404
    bad = client.put("/api/v1/villages/x1", json={**body, "timezone": "Nowhere/Else"})
    assert bad.status_code == 422 and "unknown time zone" in bad.json()["detail"][0]["msg"]
    extra = client.put("/api/v1/villages/x1", json={**body, "colour": "green"})
    assert extra.status_code == 422
    assert client.get("/api/v1/villages/x1").status_code == 404


def test_rules(client: TestClient) -> None:
    assert client.get("/api/v1/villages/V1/rules").json()["version"] is None
    r = client.put("/api/v1/villages/V1/rules", json={"text": rules_text("v1-a")})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == "v1-a" and r.json()["versions"] == ["v1-a"]
    bad = rules_text("v1-b").replace("min_grams = 200", 'min_grams = "x"', 1)
    r = client.put("/api/v1/villages/V1/rules", json={"text": bad})
    assert r.status_code == 422
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["body", "text"]
    assert problem["msg"].startswith("rules:") and ".min_grams'" in problem["msg"]
    reused = rules_text("v1-a").replace("cooldown_seconds = 20", "cooldown_seconds = 25")
    r = client.put("/api/v1/villages/V1/rules", json={"text": reused})
    assert r.status_code == 409 and "different text" in r.json()["detail"]
    assert client.get("/api/v1/villages/V1/rules").json()["text"] == rules_text("v1-a")
    assert client.put("/api/v1/villages/V9/rules", json={"text": reused}).status_code == 404


def test_catalogue_version_check_and_text(client: TestClient, store: CentralStore) -> None:
    cat = client.get("/api/v1/villages/V1/catalogue").json()
    assert cat == {"village_id": "V1", "version": 0, "items": []}
    items = [
        {"id": "rice", "name_zh": "大米", "name_en": "Rice", "points": 50},
        {"id": "soap", "name_zh": "肥皂", "name_en": "<script>alert(1)</script>", "points": 20},
    ]
    r = client.put("/api/v1/villages/V1/catalogue", json={"version": 0, "items": items})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1
    # Two operators read version 1; the first saves, the second is told, nothing lost.
    alice = [{**items[0], "points": 60}, items[1]]
    bob = [items[0], {**items[1], "points": 25}]
    assert client.put(
        "/api/v1/villages/V1/catalogue", json={"version": 1, "items": alice}
    ).is_success
    r = client.put("/api/v1/villages/V1/catalogue", json={"version": 1, "items": bob})
    assert r.status_code == 409 and "changed meanwhile" in r.json()["detail"]
    now = client.get("/api/v1/villages/V1/catalogue").json()
    assert now["version"] == 2
    assert {i["id"]: i["points"] for i in now["items"]} == {"rice": 60, "soap": 20}
    assert (
        '"name_en":"<script>alert(1)</script>"' in client.get("/api/v1/villages/V1/catalogue").text
    )  # JSON text, as given: nothing escaped away, nothing interpreted
    for bad in ({**items[0], "points": 0}, {**items[0], "id": "a b"}, {**items[0], "stock": 3}):
        r = client.put("/api/v1/villages/V1/catalogue", json={"version": 2, "items": [bad]})
        assert r.status_code == 422, bad
    assert client.get("/api/v1/villages/V1/catalogue").json() == now

    # A picture set from a file is kept by the API's changes and served as JPEG.
    png = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 120, 200)).save(png, "PNG")
    pic = thumbnail(png.getvalue())
    operations.set_catalogue(
        store, "V1", [CatalogueItem("rice", "大米", "Rice", 60, True, pic)], actor="cli:x",
        now_ms=NOW,
    )  # fmt: skip
    r = client.put(
        "/api/v1/villages/V1/catalogue", json={"version": 3, "items": [{**items[0], "points": 65}]}
    )
    assert r.status_code == 200 and r.json()["items"][0]["picture"] is True
    got = client.get("/api/v1/villages/V1/catalogue/rice/picture")
    assert got.headers["content-type"] == "image/jpeg" and got.content == pic
    assert client.get("/api/v1/villages/V1/catalogue/soap/picture").status_code == 404
    actors = [row["actor"] for row in client.get("/api/v1/audit?village_id=V1").json()]
    assert actors == ["admin-token", "cli:x", "admin-token", "admin-token"]


def _sync(store: CentralStore, k: Kiosk) -> None:
    result = ingest(store, k.topic, k.batch(k.ledger.outbox.acked_seq() + 1), NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    k.ledger.outbox.mark_acked(result.ack.acked_seq, NOW)


def test_passbooks_and_audit(client: TestClient, store: CentralStore, k1: Kiosk) -> None:
    li = k1.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert li
    k1.ledger.award(li, 70, staff_id="S1", reason="clean-up")
    _sync(store, k1)
    assert client.post("/api/v1/passbooks/nope/revoke", json={"reason": "x"}).status_code == 404
    assert client.post(f"/api/v1/passbooks/{li}/revoke", json={}).status_code == 422
    r = client.post(f"/api/v1/passbooks/{li}/revoke", json={"reason": "stolen"})
    assert r.json() == {"passbook_id": li, "village_id": "V1", "status": "revoked", "changed": True}
    assert (
        client.post(f"/api/v1/passbooks/{li}/revoke", json={"reason": "x"}).json()["changed"]
        is False
    )
    r = client.post(f"/api/v1/passbooks/{li}/reinstate")
    assert r.json()["status"] == "active" and r.json()["changed"] is True
    r = client.post(f"/api/v1/passbooks/{li}/replace")
    assert r.status_code == 201, r.text
    new = r.json()["new_passbook_id"]
    assert r.json() == {
        "old_passbook_id": li, "new_passbook_id": new, "village_id": "V1",
        "household_name": "Li household", "balance": 70,
    }  # fmt: skip
    assert client.post(f"/api/v1/passbooks/{li}/replace").status_code == 409
    assert client.post(f"/api/v1/passbooks/{li}/reinstate").status_code == 409
    statement = client.get(f"/api/v1/passbooks/{new}/statement").json()
    assert statement["balance"] == 70  # the old card's history, under the new passbook

    # The kiosk's own enrolment rows (device.*) come before these: not what this is about.
    rows = [r for r in client.get("/api/v1/audit").json() if not r["action"].startswith("device.")]
    assert [r["action"] for r in rows] == [
        "passbook.replace", "passbook.reinstate", "passbook.revoke"
    ]  # fmt: skip
    assert {r["actor"] for r in rows} == {"admin-token"}
    assert rows[2]["before"] == {"status": "active"}
    assert rows[0]["after"]["passbook_id"] == new
    older = client.get(f"/api/v1/audit?before_id={rows[0]['id']}&limit=2").json()
    assert [r["id"] for r in older] == [rows[1]["id"], rows[2]["id"]]
    assert client.get("/api/v1/audit?limit=0").status_code == 422


def test_no_broker_serves_the_api(central_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    log = tmp_path / "central.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "greenpass", "central", "--db", central_url, "--home",
             str(home), "--http", f"127.0.0.1:{port}", "--http-plain", "--no-broker"],
            cwd=ROOT, stderr=err, env={**os.environ},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"central exited with {proc.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for("central's API without a broker", up)
        auth = {"Authorization": f"Bearer {(home / 'admin.token').read_text().strip()}"}
        r = httpx.put(
            f"{url}/api/v1/villages/dongcun", headers=auth,
            json={"name_zh": "东村", "name_en": "East"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        listed = httpx.get(f"{url}/api/v1/villages", headers=auth).json()
        assert [v["village_id"] for v in listed] == ["dongcun"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0, log.read_text()
    with CentralStore.open(central_url) as store:
        assert [v.name_zh for v in operations.villages(store)] == ["东村"]
    refused = subprocess.run(
        [sys.executable, "-m", "greenpass", "central", "--db", central_url, "--no-broker"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "--no-broker serves only the API" in refused.stderr
