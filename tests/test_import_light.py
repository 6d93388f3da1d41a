"""Making an environment never imports torch, and the env packages never import the agents.

Environments, data and losses are numpy-only (torch takes seconds to import; the first env of a
fresh process should be ready in a fraction of one). Dependencies run one way: ``agents`` uses
``np_envs``, never the reverse. Checked twice: by running a fresh interpreter that makes every
registered env, and by reading the source, which also catches imports hidden in functions.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import _data_present

import np_envs

ROOT = Path(__file__).resolve().parents[1]
NUMPY_ONLY = sorted(
    [*(ROOT / "np_envs" / "envs").glob("*.py"), *(ROOT / "np_envs" / "data").glob("*.py"),
     ROOT / "np_envs" / "losses.py", ROOT / "np_envs" / "registration.py",
     ROOT / "np_envs" / "__init__.py"]
)

MAKE_EVERY_ENV = r"""
import json, sys
import numpy as np
import gymnasium as gym

if "{first}" == "np_envs:":  # the id form that imports np_envs through Gymnasium
    env = gym.make("np_envs:NPLinearTeacher-v0")
else:
    import np_envs
report = {{"after_import": sorted(m for m in ("torch", "agents") if m in sys.modules)}}
import np_envs
rng = np.random.default_rng(0)
kwargs = {{
    "NPLinearTeacher-v0": {{}},
    "NPSarcos-v0": {{"split_scheme": "test-file"}},
    "NPMNIST-v0": {{"split": "test"}},
    "NPDataset-v0": {{"train": (rng.normal(size=(9, 4)), rng.normal(size=(9, 2))),
                      "test": (rng.normal(size=(3, 4)), rng.normal(size=(3, 2)))}},
}}
skip = set(json.loads('{skip}'))
for env_id in np_envs.ENV_IDS:
    if env_id in skip:
        continue
    for vector in (False, True):
        env = (gym.make_vec(env_id, num_envs=2, **kwargs[env_id]) if vector
               else gym.make(env_id, **kwargs[env_id]))
        env.reset(seed=0)
        env.step(env.action_space.sample() * 0)
        report[env_id + (" vec" if vector else "")] = sorted(
            m for m in ("torch", "agents") if m in sys.modules
        )
print(json.dumps(report))
"""


def run_fresh(first: str, skip: list[str]) -> dict[str, list[str]]:
    code = MAKE_EVERY_ENV.format(first=first, skip=json.dumps(skip))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), capture_output=True,
        text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_making_every_env_in_a_fresh_process_never_imports_torch() -> None:
    skip = []
    if not _data_present("sarcos/sarcos_inv_test.mat"):
        skip.append("NPSarcos-v0")
    if not _data_present("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"):
        skip.append("NPMNIST-v0")
    report = run_fresh("import", skip)
    made = [key for key in report if key != "after_import"]
    assert len(made) == 2 * (len(np_envs.ENV_IDS) - len(skip))
    assert report == {key: [] for key in report}, report  # neither torch nor agents anywhere


def test_gym_make_by_module_prefix_stays_torch_free() -> None:
    report = run_fresh("np_envs:", ["NPSarcos-v0", "NPMNIST-v0"])
    assert report["after_import"] == [] and report["NPDataset-v0 vec"] == []


def _imports(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    """Every imported module name, with the node it occurs in."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node))
    return found


def test_env_and_data_sources_import_neither_torch_nor_agents() -> None:
    assert len(NUMPY_ONLY) > 15  # the globs found the packages
    offenders = []
    for path in NUMPY_ONLY:
        tree = ast.parse(path.read_text(), filename=str(path))
        allowed = set()  # torch inside losses.loss_torch only: the SGD oracle's door
        if path.name == "losses.py":
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and node.name == "loss_torch":
                    allowed |= {id(n) for n in ast.walk(node)}
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                    allowed |= {id(n) for n in ast.walk(node)}
        for name, node in _imports(tree):
            top = name.split(".")[0]
            if top in ("torch", "agents", "stable_baselines3") and id(node) not in allowed:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert offenders == []
