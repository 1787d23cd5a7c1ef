#!/usr/bin/env bash
# Install ocrwatch as a systemd service on Debian/Ubuntu. Run as root from a checkout:
#
#   sudo scripts/install-service.sh [--worker] [--no-start] [--no-apt] [--prefix /opt/ocrwatch]
#
# Idempotent: rerun it to upgrade. It never overwrites /etc/ocrwatch/ocrwatch.toml, and keeps
# your drop-ins (/etc/systemd/system/ocrwatch.service.d/); it does replace the unit itself.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/opt/ocrwatch
START=1
APT=1
UNIT=ocrwatch
USER_NAME=ocrwatch
CONF_DIR=/etc/ocrwatch
CONF_FILE="$CONF_DIR/ocrwatch.toml"
DATA_DIR=/srv/ocrwatch
UNIT_DIR=/etc/systemd/system
# The system Python (from python3-venv), not a pyenv/conda one in root's home that the
# ocrwatch user cannot read. Override with PYTHON=/path/to/python3.11+.
PYTHON="${PYTHON:-/usr/bin/python3}"
APT_PACKAGES=(tesseract-ocr tesseract-ocr-eng tesseract-ocr-spa poppler-utils python3-venv)

usage() {
    cat <<EOF
Usage: $(basename "$0") [--worker] [--no-start] [--no-apt] [--prefix DIR]

Install ocrwatch from this checkout ($REPO) as the systemd service 'ocrwatch'.

  --worker       install 'ocrwatch-worker' instead: a recognition host for a coordinator
                 with executor = "celery" (docs/scale-out.md)
  --prefix DIR   install the virtualenv in DIR/venv (default: /opt/ocrwatch)
  --no-start     do not enable or start the service (daemon-reload only)
  --no-apt       do not apt-get install ${APT_PACKAGES[*]}
  -h, --help     show this help

Environment: PYTHON=/usr/bin/python3 (3.11+) builds the virtualenv.

Creates: system user/group '$USER_NAME', DIR/venv, $CONF_FILE (from
config/ocrwatch.example.toml, only if absent), $DATA_DIR/{inbox,outbox,archive,quarantine},
$UNIT_DIR/ocrwatch.service, /usr/local/bin/ocrwatch (a symlink into the venv).
EOF
}

die() { echo "install-service: $*" >&2; exit 1; }
say() { echo "==> $*"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-start) START=0 ;;
        --worker) UNIT=ocrwatch-worker ;;
        --no-apt) APT=0 ;;
        --prefix)
            [[ $# -ge 2 && -n "$2" ]] || { echo "install-service: --prefix needs a directory" >&2; exit 2; }
            PREFIX="$2"; shift ;;
        --prefix=*) PREFIX="${1#--prefix=}" ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-service: unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ "$PREFIX" == /* ]] || die "--prefix must be an absolute path, got: $PREFIX"
PREFIX="${PREFIX%/}"
VENV="$PREFIX/venv"

[[ $EUID -eq 0 ]] || die "run as root (sudo $0 $*)"
[[ -f "$REPO/pyproject.toml" && -f "$REPO/systemd/ocrwatch.service" ]] \
    || die "run from an ocrwatch checkout (no pyproject.toml or systemd/ocrwatch.service in $REPO)"

# --- system packages -----------------------------------------------------------------------
if [[ $APT -eq 1 ]]; then
    command -v apt-get >/dev/null || die "apt-get not found: install ${APT_PACKAGES[*]} yourself and pass --no-apt"
    say "apt packages: ${APT_PACKAGES[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"
fi

# --- account -------------------------------------------------------------------------------
if ! getent group "$USER_NAME" >/dev/null; then
    say "group $USER_NAME"
    groupadd --system "$USER_NAME"
fi
if ! getent passwd "$USER_NAME" >/dev/null; then
    say "user $USER_NAME"
    useradd --system --gid "$USER_NAME" --home-dir /var/lib/ocrwatch --no-create-home \
        --shell /usr/sbin/nologin --comment "ocrwatch OCR daemon" "$USER_NAME"
fi

# --- virtualenv ----------------------------------------------------------------------------
say "virtualenv $VENV"
install -d -m 0755 "$PREFIX"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is older than Python 3.11 (set PYTHON=/path/to/python3.11)"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# A plain (non-editable) install: the service must not depend on this checkout staying put.
"$VENV/bin/python" -m pip install --quiet --upgrade "$REPO[all]"  # every extra, as setup.sh
# On PATH for admins (`ocrwatch status`, `ocrwatch check`); the unit uses the full path.
ln -sfn "$VENV/bin/ocrwatch" /usr/local/bin/ocrwatch
install -d -m 0755 "$PREFIX/docs"
for doc in systemd.md scale-out.md; do
    if [[ -f "$REPO/docs/$doc" ]]; then install -m 0644 "$REPO/docs/$doc" "$PREFIX/docs/"; fi
done

# --- folders -------------------------------------------------------------------------------
# Group-writable + setgid: files made by people in the group stay in the group (UMask=0002).
say "folders under $DATA_DIR"
install -d -m 0755 "$DATA_DIR"
for sub in inbox outbox archive quarantine; do
    install -d -m 2775 -o "$USER_NAME" -g "$USER_NAME" "$DATA_DIR/$sub"
done

# --- configuration -------------------------------------------------------------------------
install -d -m 0755 "$CONF_DIR"
if [[ -e "$CONF_FILE" ]]; then
    say "keeping existing $CONF_FILE"
else
    say "creating $CONF_FILE"
    example="$REPO/config/ocrwatch.example.toml"
    tmp="$(mktemp "$CONF_DIR/.ocrwatch.toml.XXXXXX")"
    [[ -f "$example" ]] && cat "$example" >"$tmp"
    # Point the daemon at the folders made above, unless the example already sets them.
    # Top-level keys go first: TOML puts everything after a [table] header in that table.
    "$VENV/bin/python" - "$tmp" "$DATA_DIR" <<'PY'
import sys, tomllib
from pathlib import Path

path, data = Path(sys.argv[1]), sys.argv[2]
text = path.read_text(encoding="utf-8")
have = tomllib.loads(text)
wanted = {
    "inbox": f"{data}/inbox",
    "outbox": f"{data}/outbox",
    "archive": f"{data}/archive",
    "quarantine": f"{data}/quarantine",
    "state_dir": "/var/lib/ocrwatch",  # StateDirectory= of the unit
}
head = "".join(f'{k} = "{v}"\n' for k, v in wanted.items() if k not in have)
if head:
    head = "# Added by scripts/install-service.sh\n" + head + "\n"
path.write_text(head + text, encoding="utf-8")
PY
    chmod 0640 "$tmp"
    chown root:"$USER_NAME" "$tmp"
    mv "$tmp" "$CONF_FILE"
fi

# --- unit ----------------------------------------------------------------------------------
say "unit $UNIT_DIR/$UNIT.service"
sed "s#/opt/ocrwatch/venv/#$VENV/#g; s#/opt/ocrwatch/docs/#$PREFIX/docs/#g" \
    "$REPO/systemd/$UNIT.service" >"$UNIT_DIR/.$UNIT.service.tmp"
chmod 0644 "$UNIT_DIR/.$UNIT.service.tmp"
mv "$UNIT_DIR/.$UNIT.service.tmp" "$UNIT_DIR/$UNIT.service"

# --- systemd -------------------------------------------------------------------------------
if [[ "$(ps -p 1 -o comm= 2>/dev/null)" == systemd ]]; then
    systemctl daemon-reload
    if [[ $START -eq 1 ]]; then
        say "enabling and (re)starting $UNIT"
        systemctl enable "$UNIT"
        systemctl restart "$UNIT"
        systemctl --no-pager --lines=0 status "$UNIT" || true
    else
        echo "Installed. Start it with: systemctl enable --now $UNIT"
    fi
else
    cat <<EOF
Installed, but systemd is not PID 1 here (a container?), so nothing was started.
On a systemd host run:  systemctl daemon-reload && systemctl enable --now $UNIT
To run it in the foreground instead:
  runuser -u $USER_NAME -- $VENV/bin/ocrwatch run --config $CONF_FILE
EOF
fi
echo "Next: check the folders in $CONF_FILE, then drop a scan into $DATA_DIR/inbox."
