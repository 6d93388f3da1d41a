"""Weight-normalised NP (``wn-np``): NP, then every incoming-weight row held at a fixed RMS.

The paper's analysis traces NP's late instability to the growth of the input weights' norm;
neuron-wise normalisation removes that direction of drift. After every NP update each row of
W_k (the incoming weights of one neuron) is rescaled to RMS = the layer's initial std,
sqrt(2/(fan_in+fan_out)), times the layer's initial scale factor (``init_scales``, Fig. 4F).
``normalize="first"`` does the first layer only, ``"all"`` every layer. Biases are not touched.
Every member of a population is normalised at once (a norm over the last axis).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from agents.node_perturbation import NodePerturbation

NORMALIZE: tuple[str, ...] = ("first", "all")


class WeightNormalisedNP(NodePerturbation):
    """``wn-np``: NP plus row-wise weight normalisation; ``normalize`` = "first" | "all"."""

    name = "wn-np"

    def __init__(self, env: Any = None, *, normalize: str = "first", **kwargs: Any) -> None:
        if normalize not in NORMALIZE:
            raise ValueError(f"unknown normalize {normalize!r}; choose one of {NORMALIZE}")
        super().__init__(env, **kwargs)
        self.normalize = normalize
        self._record(normalize=normalize)
        n = self.n_layers if normalize == "all" else 1
        self.normalized_layers = list(range(n))
        # target row norm = target RMS * sqrt(fan_in)
        self._row_norms = {
            k: self.init_stds[k] * math.sqrt(self.sizes[k]) for k in self.normalized_layers
        }
        self.after_update()  # start on the constraint surface, too

    def target_rms(self, k: int) -> float:
        """The RMS every row of layer k is held at."""
        return self.init_stds[k]

    @torch.no_grad()
    def after_update(self) -> None:
        for k in self.normalized_layers:
            w = self.weights[k]
            norms = torch.linalg.vector_norm(w, dim=2, keepdim=True)
            w.mul_(norms.reciprocal_().mul_(self._row_norms[k]))
