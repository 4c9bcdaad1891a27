"""Retirement certificates: what central signs when units are retired, and what
`greenpass verify-evidence PACK --certificate CERT.json` checks offline against the
evidence pack the units were issued from (docs/registry.md, "Certificates").

A certificate is a JSON object signed with central's key (the key of its log's
checkpoints): `signature` is Ed25519 over the UTF-8 JSON of every other field, keys
sorted, no whitespace. It names the retirement (serials, beneficiary, purpose, when),
and the issuance: village, month, the methodology's version and full text, the units
(issued and buffer), the deposits' gross reduction, the deposits of the month left
out (`excluded`), and the SHA-256 of the evidence pack.

From the pack alone and the methodology text, the verifier recomputes the issuance:
every deposit of the month in the pack, not reversed in it and not excluded, priced by
the methodology, summed, split into units — which must be the certificate's, and the
retired serials must be among them. The pack's own checks prove those deposits are
the kiosks' and in central's public log.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from greenpass.errors import ConfigError, GreenPassError
from greenpass.record.entries import Kind
from greenpass.record.methodology import parse_methodology

FORMAT = "greenpass-retirement/1"


def _signed_bytes(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def sign(doc: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    return {
        **doc,
        "format": FORMAT,
        "signature": key.sign(_signed_bytes({**doc, "format": FORMAT})).hex(),
    }


def read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the certificate {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a retirement certificate ({FORMAT})")
    return doc


def signed_by(doc: dict[str, Any], key: Ed25519PublicKey) -> bool:
    try:
        key.verify(bytes.fromhex(str(doc.get("signature", ""))), _signed_bytes(doc))
    except (InvalidSignature, ValueError):
        return False
    return True


def check_against_pack(
    doc: dict[str, Any], pack_path: Path, manifest: dict[str, Any], deposits: list[Any],
    reversed_in_pack: set[tuple[str, int]],
) -> list[str]:  # fmt: skip
    """What does not hold between the certificate and the pack (empty: all holds).
    `deposits` are the pack's deposit entries of the month (the verifier's own choice
    of which entries are in the period)."""
    problems: list[str] = []
    try:
        iss = doc["issuance"]
        ret = doc["retirement"]
        first, last = int(ret["first"]), int(ret["last"])
        units, buffer_units = int(iss["units"]), int(iss["buffer_units"])
        excluded = set(iss["excluded"])
    except (KeyError, TypeError, ValueError) as exc:
        return [f"the certificate lacks a field: {exc}"]
    digest = hashlib.sha256(pack_path.read_bytes()).hexdigest()
    if iss.get("pack_sha256") != digest:
        problems.append("it was issued from another evidence pack (SHA-256 differs)")
    if (iss.get("village"), iss.get("period")) != (
        manifest.get("village"),
        manifest.get("from", "")[:7],
    ):
        problems.append(f"it is of {iss.get('village')} {iss.get('period')}, not this pack's month")
    try:
        method = parse_methodology(str(iss["methodology_text"]), "<certificate>")
    except (KeyError, GreenPassError) as exc:
        return [*problems, f"its methodology does not parse: {exc}"]
    if method.version != iss.get("methodology"):
        problems.append(
            f"its methodology text is version {method.version}, not {iss.get('methodology')}"
        )
    names = {f"{e.device_id}:{e.seq}" for e in deposits if e.kind == Kind.DEPOSIT}
    problems += [
        f"{x} is excluded but is not a deposit of the month in the pack"
        for x in sorted(excluded - names)
    ][:5]
    gross = sum(
        method.reduction_g(e.category or "", str(iss["village"]), e.grams or 0)
        for e in deposits
        if e.kind == Kind.DEPOSIT
        and (e.device_id, e.seq) not in reversed_in_pack
        and f"{e.device_id}:{e.seq}" not in excluded
    )
    total, buffer_n, _issued = method.split(gross)
    if gross != int(iss.get("gross_g", -1)):
        problems.append(
            f"the pack's deposits reduce {gross} g CO2e by {method.version}, "
            f"the certificate says {iss.get('gross_g')}"
        )
    if (total, buffer_n) != (units, buffer_units):
        problems.append(
            f"they make {total} units ({buffer_n} buffer), "
            f"the certificate says {units} ({buffer_units})"
        )
    if not 1 <= first <= last <= units:
        problems.append(f"serials {first}-{last} are not units 1-{units} of the issuance")
    return problems
