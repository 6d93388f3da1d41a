#!/usr/bin/env bash
# The main job: installs np-envs into .venv, then compares NP, weight-normalised NP, REINFORCE,
# SGD and PPO on the linear student-teacher task (generated data: no download), 3 seeds each.
# Prints the summary table; rows, tables and PNG plots go to runs/main (rerun to resume).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec .venv/bin/np-envs compare --env NPLinearTeacher-v0 \
    --agents np,wn-np,reinforce,sgd,ppo --trials 5000 --seeds 3 --jobs 2 \
    --target 0.01 --out "${OUT:-runs/main}" "$@"
