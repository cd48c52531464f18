#!/usr/bin/env bash
# Label Studio (the labeling sprints' server) in a virtualenv of its own, .venv-labelstudio:
# it pins Django and many other packages that tagloop's .venv (MLflow, Prefect, FastAPI) must not
# get. tagloop talks to it over HTTP only. Idempotent: nothing to do when that version is there.
# Measured on this project's 2-core machine, no pip cache: about 1 minute, about 1 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
LS_VENV=${LS_VENV:-.venv-labelstudio}
LS_VERSION=${LS_VERSION:-1.23.2}      # the version tagloop's client (labeling/studio.py) is tested against

exec 9>"$LS_VENV.lock"                 # two callers at once: the second waits, then finds it done
flock 9
if [ -x "$LS_VENV/bin/label-studio" ] && [ "$(cat "$LS_VENV/.tagloop-version" 2>/dev/null)" = "$LS_VERSION" ]; then
  exit 0
fi
start=$(date +%s)
rm -rf "$LS_VENV"
python3.11 -m venv "$LS_VENV" 2>/dev/null || python3 -m venv "$LS_VENV"
"$LS_VENV/bin/pip" install -q --upgrade pip
"$LS_VENV/bin/pip" install -q "label-studio==$LS_VERSION"
# importable and the version asked for (`label-studio --version` would start the app and wait)
"$LS_VENV/bin/python" -c "import sys, label_studio; sys.exit(label_studio.__version__ != '$LS_VERSION')"
echo "$LS_VERSION" > "$LS_VENV/.tagloop-version"
echo "label-studio $LS_VERSION installed in $LS_VENV in $(( $(date +%s) - start )) s ($(du -sh "$LS_VENV" | cut -f1))"
