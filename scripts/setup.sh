#!/usr/bin/env bash
# Creates .venv (if needed) and installs np-envs into it. Sourced by main.sh and test.sh.
# torch is pinned and installed first: an unpinned torch can pull a multi-gigabyte CUDA build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${1:-}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    "$PYTHON" -m venv "$ROOT/.venv"
fi
PIP=("$ROOT/.venv/bin/python" -m pip install --disable-pip-version-check -q)
"${PIP[@]}" "torch==2.13.0"
if [ -n "$EXTRAS" ]; then
    "${PIP[@]}" -e "$ROOT[$EXTRAS]"
else
    "${PIP[@]}" -e "$ROOT"
fi
