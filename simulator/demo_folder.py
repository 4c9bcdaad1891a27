"""The demo's folder: where it is, what the demo writes down in it, when it may be recreated.

`demo.json` (`DemoInfo`) records the URLs of a running demo; `greenpass simulate
scenario --demo-dir` reads its kiosks from it. `check_folder` and `fresh_folder`
keep the demo off folders it did not make and off a demo that still runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from greenpass.errors import GreenPassError

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_SCENARIO = Path(__file__).parent / "scenarios" / "village-day.toml"
VILLAGE = "dongcun"
OFFICE_KEY_ID = "dongcun-office"
MARKER = ".greenpass-demo"


class DemoError(GreenPassError):
    """The demo could not be set up or one of its processes failed."""


def say(text: str) -> None:
    print(text, flush=True)


# --- what the demo writes down ------------------------------------------------------------


@dataclass
class KioskInfo:
    url: str
    control: str
    folder: str
    log: str


@dataclass
class DemoInfo:
    """`demo.json`: where everything is; the scenario runner reads `kiosks` from it."""

    folder: str
    village: str
    pid: int
    central: str
    docs: str
    admin_token: str
    broker: str
    staff_pin: str
    kiosks: dict[str, KioskInfo] = field(default_factory=dict)
    central_ca: str = ""  # the CA central's HTTPS certificate chains to

    def write(self) -> None:
        path = Path(self.folder) / "demo.json"
        path.write_text(json.dumps(asdict(self), indent=1, ensure_ascii=False) + "\n", "utf-8")


def load_demo_info(folder: Path) -> DemoInfo:
    path = folder / "demo.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        kiosks = {name: KioskInfo(**k) for name, k in data.pop("kiosks").items()}
        return DemoInfo(**data, kiosks=kiosks)
    except OSError as exc:
        raise DemoError(f"{path}: no demo there ({exc.strerror}); start `make demo`") from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DemoError(f"{path}: not a demo.json this version understands ({exc})") from exc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_folder(folder: Path) -> None:
    """Refuse a folder with files a demo did not make, or whose demo still runs."""
    if not folder.exists():
        return
    pid = 0
    if (folder / "demo.json").exists():
        with contextlib.suppress(DemoError):
            pid = load_demo_info(folder).pid
    if pid and pid != os.getpid() and _pid_alive(pid):
        raise DemoError(
            f"a demo is already running in {folder} (pid {pid}): stop it first "
            "(Ctrl-C in its terminal), or give another --dir"
        )
    entries = list(folder.iterdir())
    # The one-kiosk demo this replaces left only kiosk-*.db files here.
    ours = (folder / MARKER).exists() or all(p.name.startswith("kiosk-") for p in entries)
    if entries and not ours:
        raise DemoError(
            f"{folder} holds files the demo did not make; give another --dir (the demo "
            "deletes and recreates its folder)"
        )


def fresh_folder(folder: Path) -> None:
    """Empty `folder` for a new demo: only a folder a demo made (or an empty one)."""
    check_folder(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by `greenpass demo`; the next demo recreates it\n", "utf-8")
