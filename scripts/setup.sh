#!/usr/bin/env bash
# Installs everything tagloop needs on a fresh Debian machine: system fonts (synthetic rendering)
# through apt, then a virtualenv with the package (EXTRAS, default the full install + dev tools).
# With TEST_TOOLS=1 it also installs what only the tests and benchmarks use: Tesseract (the
# benchmark peer) and Chromium (the report browser test, only when no Chromium/Chrome is on PATH);
# `make test` and `make bench` set it, `make demo` does not.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

APT_PKGS="fonts-urw-base35 fonts-liberation2 fonts-liberation fonts-ocr-b fonts-croscore fonts-dejavu-core fonts-dejavu-extra"
[ "${TEST_TOOLS:-0}" = 1 ] && APT_PKGS="$APT_PKGS tesseract-ocr"
missing=""
for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
# headless Chromium for the report browser test (tests/test_monitoring_reports.py); any browser on PATH will do
if [ "${TEST_TOOLS:-0}" = 1 ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
   && ! command -v google-chrome >/dev/null 2>&1; then
  missing="$missing chromium"
fi
if [ -n "$missing" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "installing system packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  else
    echo "warning: apt-get not found; install$missing by hand for full font coverage" >&2
  fi
fi
[ "${APT_ONLY:-0}" = 1 ] && exit 0

[ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q torch==2.13.0
EXTRAS=${EXTRAS:-full,dev}
"$VENV/bin/pip" install -q -e ".[$EXTRAS]"
"$VENV/bin/pip" install -q --no-deps trdg==1.8.0
"$VENV/bin/python" -c "import trdg, torch, cv2, onnxruntime, evidently; print('setup ok: torch', torch.__version__, 'evidently', evidently.__version__)"
