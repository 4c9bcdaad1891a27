#!/usr/bin/env bash
# Install, update or roll back Green Passbook on a Raspberry Pi (docs/technician.md).
#
#   sudo provisioning/deploy/install.sh                 install or update from this checkout
#   sudo provisioning/deploy/install.sh --rollback      back to the previous release
#   provisioning/deploy/install.sh --status             which release is current
#
# Each release lives in /opt/greenpass/releases/<version> with its own virtual
# environment; /opt/greenpass/current is a symlink switched atomically, and
# /opt/greenpass/previous remembers the one before. The ledger
# (/var/lib/greenpass) and config (/etc/greenpass) are never touched: ledger
# migrations only go forward, so a rollback to a release that cannot read the
# ledger's schema is refused (roll forward with a fixed release instead).
#
# Options for tests and image builds: --root DIR (install under DIR),
# --no-systemctl, --no-apt, --no-venv, --version V.
set -euo pipefail

ROOT=""; SYSTEMCTL=1; APT=1; VENV=1; VERSION=""; ACTION=install
SRC=$(cd "$(dirname "$0")/../.." && pwd)
while (($#)); do
    case $1 in
        --root) ROOT=$2; shift ;;
        --no-systemctl) SYSTEMCTL=0 ;;
        --no-apt) APT=0 ;;
        --no-venv) VENV=0 ;;
        --version) VERSION=$2; shift ;;
        --rollback) ACTION=rollback ;;
        --status) ACTION=status ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

OPT=$ROOT/opt/greenpass
DB=$ROOT/var/lib/greenpass/kiosk.db
say() { printf 'install.sh: %s\n' "$*"; }
sysctl() { if ((SYSTEMCTL)); then systemctl "$@"; else say "(skipped) systemctl $*"; fi; }

switch_to() {  # atomically point `current` at release $1, remembering the old one
    local old=""
    [ -L "$OPT/current" ] && old=$(readlink "$OPT/current")
    ln -sfn "releases/$1" "$OPT/current.new"
    mv -T "$OPT/current.new" "$OPT/current"
    if [ -n "$old" ] && [ "$old" != "releases/$1" ]; then
        ln -sfn "$old" "$OPT/previous.new" && mv -T "$OPT/previous.new" "$OPT/previous"
    fi
}

case $ACTION in
status)
    say "current:  $(readlink "$OPT/current" 2>/dev/null || echo none)"
    say "previous: $(readlink "$OPT/previous" 2>/dev/null || echo none)"
    exit 0 ;;
rollback)
    prev=$(readlink "$OPT/previous" 2>/dev/null || true)
    [ -n "$prev" ] || { echo "install.sh: no previous release to roll back to" >&2; exit 1; }
    if [ -f "$DB" ] && [ -x "$OPT/$prev/.venv/bin/greenpass" ]; then
        # The older release must be able to open the ledger (no newer schema).
        if ! out=$("$OPT/$prev/.venv/bin/greenpass" verify "$DB" 2>&1); then
            echo "install.sh: refusing to roll back: $out" >&2; exit 1
        fi
    fi
    sysctl stop greenpass-kiosk.service
    switch_to "${prev#releases/}"
    sysctl start greenpass-kiosk.service
    say "rolled back to ${prev#releases/}"
    exit 0 ;;
esac

# --- install or update ----------------------------------------------------------------
if ((APT)); then
    say "Debian packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        python3-venv python3-dev chromium fonts-noto-cjk curl sqlite3 libusb-1.0-0
fi
if [ -z "$VERSION" ]; then
    VERSION=$(git -C "$SRC" describe --always --dirty 2>/dev/null || date +%Y%m%d%H%M%S)
fi
REL=$OPT/releases/$VERSION
if [ -z "$ROOT" ] && ! id greenpass >/dev/null 2>&1; then
    say "system user greenpass"
    useradd --system --home-dir /var/lib/greenpass --shell /usr/sbin/nologin greenpass
    for g in dialout gpio video; do getent group "$g" >/dev/null && usermod -aG "$g" greenpass; done
fi
say "release $VERSION → $REL"
mkdir -p "$REL" "$ROOT/etc/greenpass" "$ROOT/var/lib/greenpass"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # The project's own files only: no venv, caches, demo data or local databases.
    (cd "$SRC" && git ls-files -z | tar --null -T - -cf -) | tar -C "$REL" -xf -
else  # an unpacked release tarball
    tar -C "$SRC" --exclude=.venv --exclude=demo-data --exclude=build -cf - . | tar -C "$REL" -xf -
fi
if ((VENV)); then
    python3 -m venv "$REL/.venv"
    "$REL/.venv/bin/pip" install -q --upgrade pip
    "$REL/.venv/bin/pip" install -q "$REL[pi,camera]"
fi
say "systemd units, udev rules, journald limits"
install -D -m 0644 "$SRC/provisioning/deploy/greenpass-kiosk.service" \
    "$ROOT/etc/systemd/system/greenpass-kiosk.service"
install -D -m 0644 "$SRC/provisioning/deploy/greenpass-chromium.service" \
    "$ROOT/etc/systemd/user/greenpass-chromium.service"
install -D -m 0644 "$SRC/provisioning/deploy/99-greenpass.rules" \
    "$ROOT/etc/udev/rules.d/99-greenpass.rules"
install -D -m 0644 "$SRC/provisioning/deploy/journald-greenpass.conf" \
    "$ROOT/etc/systemd/journald.conf.d/greenpass.conf"
if [ -z "$ROOT" ]; then
    chown greenpass:greenpass /var/lib/greenpass && chmod 0750 /var/lib/greenpass
    chgrp greenpass /etc/greenpass && chmod 0750 /etc/greenpass
    udevadm control --reload 2>/dev/null && udevadm trigger 2>/dev/null || true
fi
sysctl stop greenpass-kiosk.service 2>/dev/null || true
switch_to "$VERSION"
sysctl daemon-reload
sysctl restart systemd-journald
sysctl enable --now greenpass-kiosk.service
say "done. Next: sudo greenpass provision …; as the desktop user: systemctl --user enable --now greenpass-chromium"
