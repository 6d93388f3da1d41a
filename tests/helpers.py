"""What several test files need: a sweep's committed progress, its processes, the examples.

Kept here so the kill, interrupt and plug-in tests read run folders and /proc the same way.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def committed_chunk(folder: Path) -> int:
    """The committed chunk of a population job's folder (or a single run's), -1 if none."""
    try:
        return json.loads((folder / "checkpoint" / "state.json").read_text())["chunk"]
    except (OSError, ValueError):
        return -1


def population_jobs(out: Path) -> list[Path]:
    """The population job folders of a run folder ``out``."""
    root = out / "populations"
    return sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (workers, the resource tracker, Ray's processes)."""
    found, stack = set(), [pid]
    while stack:
        for child in children(stack.pop()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def load_example(filename: str) -> ModuleType:
    """An example script of ``examples/`` imported from its file (it is not a package).

    The names it registers on import are taken back, so that no other test sees them.
    """
    from agents.registry import _REGISTRY

    before = dict(_REGISTRY)
    path = EXAMPLES / filename
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        _REGISTRY.clear()
        _REGISTRY.update(before)
    return module


class ReadoutPerturbation:
    """The forward hooks of the tests' classic-hooks plug-ins (mixed into a RewardAgent with
    one hidden layer and a ``sigma``): a clean pass, and the read-out perturbed by
    ``sigma * xi``, xi from the agent's noise generator (kept in ``self._xi``)."""

    def clean_forward(self, obs: torch.Tensor) -> torch.Tensor:
        layers = self.network.layers
        self._h = torch.relu(layers[0](obs))
        self._out = layers[1](self._h)
        return self._out

    def perturbed_forward(self, obs: torch.Tensor, index: int) -> torch.Tensor:
        self._xi = torch.randn(self._out.shape, generator=self.noise_generator,
                               dtype=self._out.dtype)
        return self._out + self.sigma * self._xi
