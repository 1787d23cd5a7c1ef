#!/usr/bin/env bash
# Install everything ocrwatch needs on a fresh Debian/Ubuntu machine, idempotently:
# Debian packages (Tesseract + language packs, poppler, Python venv), then a virtualenv in
# .venv with ocrwatch installed from this checkout. Usage: scripts/setup.sh [--test]
#   --test   also install what the test suite needs (qpdf, systemd-analyze, handwriting fonts,
#            redis-server, chromium, promtool)
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) WITH_TEST=1 ;;
    *) echo "usage: scripts/setup.sh [--test]" >&2; exit 2 ;;
  esac
done

PKGS=(python3 python3-venv python3-pip tesseract-ocr tesseract-ocr-eng tesseract-ocr-spa
      poppler-utils fonts-dejavu-core fonts-dkg-handwriting)
if [ "$WITH_TEST" = 1 ]; then
  # qpdf: makes password-protected PDFs and checks searchable ones; systemd:
  # systemd-analyze verify/security; handwriting fonts: the tests render notes in them (no
  # evaluation data in the repo); fonts-liberation: bench/smallprint.py prints pages in it;
  # redis-server: the broker of the many-hosts tests (the
  # tests start their own on 127.0.0.1; the Debian service itself is not needed); chromium:
  # the tests read the status page in headless Chromium; prometheus: promtool checks and
  # tests docs/prometheus-alerts.yml (the Prometheus service itself is not needed).
  PKGS+=(qpdf systemd fonts-breip fonts-femkeklaver fonts-humor-sans fonts-liberation
         redis-server chromium prometheus)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: ocrwatch needs Python >= 3.11 ($PY is $("$PY" -V 2>&1))" >&2
  exit 4
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating virtualenv .venv"
  "$PY" -m venv .venv
fi
# Every extra (Celery, the Aspose SDK): `pip install ocrwatch` alone is the embedded default.
EXTRAS=".[all]"
[ "$WITH_TEST" = 1 ] && EXTRAS=".[all,test]"
echo "setup: installing ocrwatch into .venv"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e "$EXTRAS"
.venv/bin/ocrwatch check
