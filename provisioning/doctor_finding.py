"""One line of `greenpass doctor`'s report: a check, how it went, and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[self.level]
        text = f"{mark}  {self.check:<11} {self.detail}"
        return text + (f"\n      fix: {self.fix}" if self.fix else "")
