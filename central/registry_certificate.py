"""A retirement's certificate: the signed JSON anyone checks against the issuance's
evidence pack (`greenpass.certificate`), and an A4 PDF for people, in Chinese and
English, with a QR code to the retirement's public entry (docs/registry.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import segno
from fpdf import FPDF
from sqlalchemy import select

from central.registry_db import (
    Serials,
    registry_issuances,
    registry_methodologies,
    registry_retirements,
)
from central.store import CentralStore
from greenpass import certificate
from greenpass.errors import CentralError
from greenpass.fonts import find_cjk_fonts
from greenpass.pdf_qr import draw_qr
from sync.keys import Ed25519PrivateKey, public_bytes


def document(
    store: CentralStore, key: Ed25519PrivateKey, retirement_id: int, public_url: str
) -> dict[str, Any]:
    """The signed certificate of retirement `retirement_id`."""
    r, i, m = registry_retirements, registry_issuances, registry_methodologies
    with store.read("reading a retirement", snapshot=True) as conn:
        ret = conn.execute(select(r).where(r.c.retirement_id == retirement_id)).first()
        if ret is None:
            raise CentralError(f"no retirement {retirement_id}")
        iss = conn.execute(select(i).where(i.c.issuance_id == ret.issuance_id)).one()
        text = conn.scalar(select(m.c.text).where(m.c.version == iss.methodology))
    url = f"{public_url.rstrip('/')}/registry#retirement-{retirement_id}"
    doc = {
        "retirement": {
            "id": retirement_id,
            "serials": str(Serials(ret.issuance_id, ret.first, ret.last)),
            "first": int(ret.first),
            "last": int(ret.last),
            "units": int(ret.last) - int(ret.first) + 1,
            "unit": "1 kg CO2e",
            "account": ret.account_id,
            "beneficiary": ret.beneficiary,
            "purpose": ret.purpose,
            "retired_ms": int(ret.made_ms),
        },
        "issuance": {
            "id": iss.issuance_id,
            "village": iss.village_id,
            "period": iss.period,
            "methodology": iss.methodology,
            "methodology_text": text,
            "units": int(iss.units),
            "buffer_units": int(iss.buffer_units),
            "entries": int(iss.entries),
            "gross_g": int(iss.gross_g),
            "excluded": json.loads(iss.excluded),
            "checkpoint_size": int(iss.checkpoint_size),
            "pack": iss.pack_name,
            "pack_sha256": iss.pack_sha256,
        },
        "central_key": public_bytes(key.public_key()).hex(),
        "url": url,
    }
    return certificate.sign(doc, key)


def write_pdf(doc: dict[str, Any], path: Path) -> None:
    path.write_bytes(pdf_bytes(doc))


def pdf_bytes(doc: dict[str, Any]) -> bytes:
    """The certificate's A4 page, for people."""
    fonts = find_cjk_fonts()
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=False)
    for style, face in fonts.items():
        pdf.add_font("cjk", style=style, fname=face.path, collection_font_number=face.index)
    pdf.add_page()
    ret, iss = doc["retirement"], doc["issuance"]
    when = datetime.fromtimestamp(ret["retired_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    pdf.set_text_color(27, 122, 58)
    pdf.set_font("cjk", style="B", size=22)
    pdf.text(20, 30, "碳普惠减排量注销证明")
    pdf.set_font("cjk", size=14)
    pdf.text(20, 39, "Certificate of retirement — Green Passbook reduction units")
    pdf.set_text_color(0, 0, 0)
    lines = [
        ("注销数量 Units retired", f"{ret['units']:,} × 1 kg CO2e = {ret['units']:,} kg CO2e"),
        ("序列号 Serials", ret["serials"]),
        ("受益方 Beneficiary", ret["beneficiary"]),
        ("用途 Purpose", ret["purpose"]),
        ("注销时间 Retired", when),
        ("持有账户 Account", ret["account"]),
        ("来源 Issued from", f"{iss['village']}, {iss['period']} ({iss['entries']:,} deposits)"),
        ("方法学 Methodology", iss["methodology"]),
        ("证据包 Evidence pack", f"{iss['pack']}  SHA-256 {iss['pack_sha256'][:32]}…"),
        ("编号 Certificate", f"{ret['id']}"),
    ]
    y = 56.0
    for label, value in lines:
        pdf.set_font("cjk", style="B", size=10)
        pdf.text(20, y, label)
        pdf.set_font("cjk", size=11)
        pdf.text(72, y, str(value)[:70])
        y += 9
    draw_qr(pdf, 145, 160, 45.0, list(segno.make(doc["url"], error="m").matrix))
    pdf.set_font("cjk", size=8)
    pdf.text(20, 170, "公开登记簿 Public registry:")
    pdf.text(20, 175, doc["url"][:90])
    pdf.text(20, 190, "离线核验 Check offline, with the certificate's JSON and the evidence pack:")
    pdf.text(
        20, 195, f"greenpass verify-evidence {iss['pack']} --central-key {doc['central_key'][:16]}…"
    )
    pdf.text(20, 200, "    --certificate CERTIFICATE.json")
    pdf.text(20, 280, "1 单位 = 1 千克二氧化碳当量的可签发减排量（扣除不确定性与缓冲池之后）。")
    pdf.text(
        20,
        285,
        "1 unit = 1 kg CO2e of issuable reduction, after uncertainty deduction and buffer share.",
    )
    return bytes(pdf.output())
