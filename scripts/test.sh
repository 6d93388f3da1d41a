#!/usr/bin/env bash
# Installs np-envs with its test tools into .venv, lints, and runs the fast test suite.
# Data: NP_ENVS_DATA (default ../shared/data beside the repository). Extra pytest args pass through,
# e.g. `bash scripts/test.sh -m slow` for the slow tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" "dev,ray"
if [ -z "${NP_ENVS_DATA:-}" ] && [ -d "$ROOT/../shared/data" ]; then
    export NP_ENVS_DATA="$(cd "$ROOT/../shared/data" && pwd)"
fi
cd "$ROOT"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
