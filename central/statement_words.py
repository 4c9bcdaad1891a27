"""Every word of the statement page and the paper statement, in Chinese and English.

For elderly villagers and the family members who read for them: short, plain, no
jargon (the kiosk's words, kiosk_ui/static/i18n.js, where the two say the same).
A refusal page shows both languages at once: whoever opens a dead link may not find
a switch, and says nothing about the passbook either way.
"""

from __future__ import annotations

from central.statement_access import Refusal

LANGS = ("zh-CN", "en")
DEFAULT = "zh-CN"

ZH = {
    "title": "绿色存折 对账单",
    "village": "村",
    "passbook": "存折号",
    "balance": "余额",
    "points": "分",
    "as_of": "截至 {time}",
    "history": "记录",
    "none": "还没有记录",
    "shown": "显示最近 {n} 条，共 {total} 条。更早的记录请看纸质对账单，或到村委会查询。",
    "kiosk": "回收机 {id}",
    "by_category": "各类回收重量",
    "co2e": "减少二氧化碳排放",
    "verified": "已核验",
    "pending": "待核验",
    "verified_note": "“已核验”：这条记录已写入中心的公开记录，谁也不能再改动。"
    "新记录要过一会儿才会核验。",
    "clock": "时间可能不准",
    "no_time": "时间未知",
    "read_only": "只能查看，不能在这里兑换。兑换请到回收机。",
    "switch": "English",
    "kind_enrol": "开户",
    "kind_deposit": "投放",
    "kind_award": "奖励",
    "kind_redeem": "兑换",
    "kind_reversal": "撤销",
}

EN = {
    "title": "Green Passbook statement",
    "village": "Village",
    "passbook": "Passbook",
    "balance": "Balance",
    "points": "points",
    "as_of": "As of {time}",
    "history": "History",
    "none": "No entries yet",
    "shown": "The latest {n} of {total} entries. For older ones, see your paper statement "
    "or ask at the village office.",
    "kiosk": "Kiosk {id}",
    "by_category": "Recycled, by kind",
    "co2e": "CO₂ saved",
    "verified": "verified",
    "pending": "not yet verified",
    "verified_note": "“Verified”: this entry is in central's public record, and nobody can "
    "change it any more. New entries are verified after a while.",
    "clock": "time may be off",
    "no_time": "time unknown",
    "read_only": "For reading only: redeem points at the kiosk.",
    "switch": "中文",
    "kind_enrol": "card opened",
    "kind_deposit": "deposit",
    "kind_award": "award",
    "kind_redeem": "redemption",
    "kind_reversal": "reversal",
}

WORDS = {"zh-CN": ZH, "en": EN}

# (title, what to do) for each refusal, in Chinese and in English.
REFUSALS: dict[Refusal | str, tuple[tuple[str, str], tuple[str, str]]] = {
    Refusal.MALFORMED: (
        ("这个链接无效", "链接不完整或被改动过。请重新扫描小票或对账单上的二维码；"
         "还不行，请到村委会询问。"),
        ("This link is not valid", "The link is incomplete or was changed. Scan the QR code "
         "on your receipt or statement again; if that fails, ask at the village office."),
    ),
    Refusal.UNTRUSTED: (
        ("这个链接已不能使用", "发出它的回收机已停用，或者它不能查看这本存折。"
         "请到村委会要一个新链接。"),
        ("This link can no longer be used", "The kiosk that printed it is out of service, "
         "or it may not show this passbook. Ask at the village office for a new link."),
    ),
    Refusal.EXPIRED: (
        ("这个链接已过期", "请扫描新小票或新对账单上的二维码，或到村委会要一个新链接。"),
        ("This link has expired", "Scan the QR code on a newer receipt or statement, or ask "
         "at the village office for a new link."),
    ),
    Refusal.UNKNOWN: (
        ("找不到这本存折", "中心还没有这本存折的记录。新开的存折要等回收机联网同步以后才能查到。"),
        ("Passbook not found", "Central has no record of this passbook yet. A new passbook "
         "shows up once its kiosk has synced."),
    ),
    Refusal.REVOKED: (
        ("这本存折已停用", "它可能已挂失或换了新卡，新卡的对账单里有全部记录。请到村委会询问。"),
        ("This passbook is no longer in use", "It may have been reported lost or replaced by "
         "a new card, whose statement shows the whole history. Ask at the village office."),
    ),
    "unavailable": (
        ("暂时无法查看", "请过几分钟再试。"),
        ("Not available right now", "Please try again in a few minutes."),
    ),
}  # fmt: skip
REFUSALS[Refusal.FORGED] = REFUSALS[Refusal.MALFORMED]  # a forger learns no more than that


def language(asked: str | None, cookie: str | None) -> str:
    """The page's language: the one asked for in the address, else the remembered one."""
    for lang in (asked, cookie):
        if lang in WORDS:
            return lang
    return DEFAULT


def kind_word(kind: str, lang: str) -> str:
    return WORDS[lang].get(f"kind_{kind}", kind)
