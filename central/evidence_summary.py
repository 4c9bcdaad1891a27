"""The people's pages of an evidence pack: `summary.html` (Chinese and English, one
file, no script, nothing fetched) and `README.txt` (how to check the pack)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from greenpass.evidence import kg
from greenpass.record.rules import Rules


def _names(rules: Sequence[Rules]) -> dict[str, tuple[str, str]]:
    names: dict[str, tuple[str, str]] = {}
    for r in rules:
        for key, cat in r.categories.items():
            names.setdefault(key, (cat.name_zh, cat.name_en))
    return names


def verify_line(central_key: str, pack_name: str) -> str:
    return f"greenpass verify-evidence {pack_name} --central-key {central_key}"


def summary_html(
    manifest: dict[str, Any],
    totals: dict[str, Any],
    rules: Sequence[Rules],
    devices: Sequence[dict[str, Any]],
) -> str:
    names = _names(rules)
    made = datetime.fromtimestamp(manifest["made_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "".join(
        f"<tr><td>{escape(names.get(k, (k, k))[0])}<br><small>{escape(names.get(k, (k, k))[1])}"
        f"</small></td><td class=n>{kg(g)}</td></tr>"
        for k, g in totals["grams_by_category"].items()
    )
    sources = "".join(
        f"<li><b>{escape(r.version)}</b>: {escape(r.factors_source)}<ul>"
        + "".join(
            f"<li>{escape(c.name_zh)} / {escape(c.name_en)}: {c.co2e_g_per_kg / 1000:.3f} "
            f"kg CO2e/kg — {escape(c.factor_source)}"
            + (f" (proxy: {escape(c.proxy)})" if c.proxy else "")
            + "</li>"
            for c in r.categories.values()
        )
        + "</ul></li>"
        for r in rules
    )
    kiosks = ", ".join(escape(str(d["device_id"])) for d in devices) or "—"
    v, f, t = (escape(str(manifest[k])) for k in ("village", "from", "to"))
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>减排证据包 Evidence pack — {v} {f} – {t}</title>
<style>
body{{font:17px/1.5 sans-serif;max-width:46em;margin:1em auto;padding:0 1em;color:#123}}
table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ccd;padding:.3em .8em}}
.n{{text-align:right;font-variant-numeric:tabular-nums}}small{{color:#456}}
code{{background:#eef;padding:.1em .3em;word-break:break-all}}
</style></head><body>
<h1>减排证据包<br><small>Evidence pack</small></h1>
<p>村 Village: <b>{v}</b><br>时段 Period: <b>{f}</b> – <b>{t}</b>
（{escape(str(manifest["timezone"]))}，含首尾 both days included）<br>
生成 Made: {made}<br>自助回收机 Kiosks: {kiosks}</p>
<h2>合计 Totals</h2>
<table><tr><th>类别 Category</th><th class=n>公斤 kg</th></tr>{rows}</table>
<p>投放次数 Deposits: <b>{totals["deposits"]:,}</b><br>
发放积分 Points issued: <b>{totals["points_issued"]:,}</b><br>
兑换积分 Points redeemed: <b>{totals["points_redeemed"]:,}</b><br>
减排 CO2e: <b>{kg(totals["co2e_g"])} kg</b></p>
<p>撤销已抵扣：每笔撤销计入其当天、原条目的类别。<br>
<small>Net of reversals: a reversal counts on its own day, under what it cancels.</small></p>
<h2>如何核验 How to check</h2>
<p>本包含有该村该时段的全部账目条目、每台机器的公钥和签名、中心透明日志的签名检查点及每条目的包含证明。
任何人无需联网、无需信任运营方，即可用下列命令复核全部签名、哈希链、积分、减排量与合计：<br>
<small>This pack holds every entry of the village and period, each kiosk's key and signatures,
a signed checkpoint of central's public log and a proof that every entry is in it. Anyone can
recompute signatures, chains, points, CO2e and totals offline with:</small></p>
<p><code>{escape(verify_line(manifest["central_key"], "THIS-FILE.zip"))}</code></p>
<p>请通过可信渠道（而非本包）核对中心公钥。<br><small>Check central's key through a channel
you trust, not from this pack.</small></p>
<p>检查点 Checkpoint: 日志 log <code>{escape(str(manifest["log_origin"]))}</code>,
大小 size {manifest["checkpoint_size"]:,}</p>
<h2>排放因子及来源 Emission factors and sources</h2><ul>{sources}</ul>
<p>本包不含任何户名：存折号为化名。<br><small>No household name is in this pack: passbook ids
are pseudonyms.</small></p>
<p><small>不能证明的：袋中确为所选材料（秤只证明重量）、因子本身正确、机器时钟准确。
Not proven: that a bag held the material chosen (a scale proves weight), that the factors
are right, that a kiosk's clock was.</small></p>
</body></html>
"""


def readme(manifest: dict[str, Any]) -> str:
    return f"""Green Passbook evidence pack ({manifest["format"]})
village {manifest["village"]}, {manifest["from"]} to {manifest["to"]} ({manifest["timezone"]}),
{manifest["entries_in_period"]} entries in the period, {manifest["devices"]} kiosk(s),
checkpoint of log {manifest["log_origin"]} at size {manifest["checkpoint_size"]}.

Check it offline, with the Green Passbook package alone:

    {verify_line(manifest["central_key"], "THIS-FILE.zip")}

Take central's public key from its operator by a channel you trust, not from this
pack (the manifest repeats it only for reading). summary.html is for people; the
files are described in docs/trust.md ("Evidence packs").
"""
