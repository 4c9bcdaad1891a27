"""The reduction registry's public routes: no login, for buyers, auditors and anyone
(`central.registry`, docs/registry.md).

    GET /registry                  the registry as a page (Chinese and English)
    GET /registry/json             issuances, holdings and retirements, as JSON
    GET /registry/packs/{name}     an issuance's evidence pack (when central keeps them)

A retirement certificate's QR code points at `/registry#retirement-ID`. Nothing here
names a household: issuances count deposits, holdings are accounts of villages and
enterprises.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from central import registry
from central.api_models import Problem
from central.store import CentralStore

PACK_NAME = re.compile(r"GP-[A-Za-z0-9._-]{1,64}-\d{6}\.zip")


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _page(found: dict[str, Any], packs: bool) -> str:
    def pack(i: dict[str, Any]) -> str:
        name = escape(i["pack_name"])
        link = f'<a href="/registry/packs/{name}">{name}</a>' if packs else name
        return f"{link}<br><small>SHA-256 {escape(i['pack_sha256'])}</small>"

    issuances = "".join(
        f"<tr><td>{escape(i['issuance_id'])}</td><td class=n>{i['units']:,}</td>"
        f"<td class=n>{i['buffer_units']:,}</td><td class=n>{i['entries']:,}</td>"
        f'<td>{escape(i["methodology"])}</td><td class=n><a href="/log/checkpoint?size='
        f'{i["checkpoint_size"]}">{i["checkpoint_size"]:,}</a></td>'
        f"<td>{pack(i)}</td></tr>"
        for i in found["issuances"]
    )
    holdings = "".join(
        f"<tr><td>{escape(h['account'])}</td><td>{escape(h['serials'])}</td>"
        f"<td class=n>{h['units']:,}</td>"
        f"<td>{'注销 retired' if h['retirement'] else '持有 held'}</td></tr>"
        for h in found["holdings"]
    )
    retirements = "".join(
        f"<tr id=retirement-{r['retirement_id']}><td>{r['retirement_id']}</td>"
        f"<td>{escape(r['serials'])}</td><td class=n>{r['last'] - r['first'] + 1:,}</td>"
        f"<td>{escape(r['beneficiary'])}</td><td>{escape(r['purpose'])}</td>"
        f"<td>{_when(r['made_ms'])}</td></tr>"
        for r in found["retirements"]
    )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>碳普惠减排量登记簿 Reduction registry</title>
<style>
body{{font:16px/1.5 sans-serif;margin:1em;color:#123}}
table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border-bottom:1px solid #ccd;padding:.3em .6em;text-align:left;vertical-align:top}}
.n{{text-align:right;font-variant-numeric:tabular-nums}}small{{color:#456;word-break:break-all}}
tr:target{{background:#ffd}}
</style></head><body>
<h1>碳普惠减排量登记簿<br><small>Reduction registry — 1 单位 unit = 1 kg CO2e</small></h1>
<p>每批签发来自一个村一个月的已核验投放，附证据包，可用 <code>greenpass verify-evidence</code>
离线核验。<br><small>Each issuance comes from one village's month of verified deposits, with its
evidence pack, checkable offline with <code>greenpass verify-evidence</code>.</small></p>
<h2>签发 Issuances</h2>
<table><tr><th>编号 Issuance</th><th class=n>单位 Units</th><th class=n>缓冲 Buffer</th>
<th class=n>投放 Deposits</th><th>方法学 Methodology</th><th class=n>检查点 Checkpoint</th>
<th>证据包 Evidence pack</th></tr>{issuances}</table>
<h2>持有 Holdings</h2>
<table><tr><th>账户 Account</th><th>序列号 Serials</th><th class=n>单位 Units</th>
<th>状态 State</th></tr>{holdings}</table>
<h2>注销 Retirements</h2>
<table><tr><th>编号 No.</th><th>序列号 Serials</th><th class=n>单位 Units</th>
<th>受益方 Beneficiary</th><th>用途 Purpose</th><th>时间 When</th></tr>{retirements}</table>
</body></html>
"""


def registry_router(store: CentralStore, packs: Path | None) -> APIRouter:
    r = APIRouter(prefix="/registry", tags=["reduction registry"])

    @r.get("", response_class=HTMLResponse, summary="The registry, as a page")
    def page() -> HTMLResponse:
        return HTMLResponse(_page(registry.summary(store), packs is not None))

    @r.get("/json", summary="Issuances, holdings and retirements")
    def as_json() -> dict[str, Any]:
        return registry.summary(store)

    @r.get(
        "/packs/{name}",
        response_class=FileResponse,
        summary="An issuance's evidence pack",
        responses={
            200: {"content": {"application/zip": {}}, "description": "The evidence pack"},
            404: {"model": Problem, "description": "No such pack here"},
        },
    )
    def pack(name: str) -> FileResponse:
        if packs is None or not PACK_NAME.fullmatch(name) or not (packs / name).is_file():
            raise HTTPException(404, f"no evidence pack {name!r} here")
        return FileResponse(packs / name, media_type="application/zip", filename=name)

    return r
