"""The multi-layer perceptron every built-in rule trains, initialised as the paper's code did.

The weights live in ordinary ``nn.Linear`` layers so anyone can measure norms, cosines or
representations from outside (``agent.network.layers[k].weight``). The learning rules never call
autograd on it (except the SGD oracle); they read and update the parameters in place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

Activation = Literal["relu", "tanh", "linear"]
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "linear")
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32"`` / ``"float64"`` (or the torch dtype itself) -> torch dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {tuple(DTYPES)}")
    return DTYPES[dtype]


def dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in DTYPES.items()}[dtype]


def xavier_std(fan_in: int, fan_out: int) -> float:
    """Xavier-Glorot normal std, sqrt(2 / (fan_in + fan_out))."""
    return math.sqrt(2.0 / (fan_in + fan_out))


class MLP(nn.Module):
    """``x_k = f_k(W_k x_{k-1} + b_k)``; hidden layers use ``activation``, the read-out is linear.

    The read-out nonlinearity of a task (softmax for MNIST) belongs to the environment, which
    scores logits, so the network always ends linearly.

    ``init_scales`` multiplies each layer's initial weights (Fig. 4F scales the first layer by
    10); ``init_stds[k]`` records the resulting std per layer, which weight normalisation holds.
    Biases are drawn with std sqrt(2/(n+n)) = sqrt(1/n) for a bias of length n (NOTES.md) and are
    never scaled. The initial draw is on the CPU from a seeded ``torch.Generator`` so the same
    seed gives the same network on every device.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: Activation = "relu",
        bias: bool = True,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        init_scales: Sequence[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"layer sizes must be >= 2 positive ints, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {ACTIVATIONS}")
        n_layers = len(sizes) - 1
        scales = [1.0] * n_layers if init_scales is None else [float(s) for s in init_scales]
        if len(scales) != n_layers:
            raise ValueError(f"init_scales needs one factor per layer ({n_layers}), got {scales}")
        self.sizes = tuple(sizes)
        self.activation = activation
        self.has_bias = bool(bias)
        self.init_scales = tuple(scales)
        self.init_stds = tuple(
            xavier_std(sizes[k], sizes[k + 1]) * scales[k] for k in range(n_layers)
        )
        self.layers = nn.ModuleList(
            nn.Linear(sizes[k], sizes[k + 1], bias=bias, dtype=dtype, device=device)
            for k in range(n_layers)
        )
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Xavier-Glorot normal weights (times their scale) and biases, from ``generator``."""
        for layer, std in zip(self.layers, self.init_stds, strict=True):
            w = torch.randn(layer.weight.shape, generator=generator, dtype=torch.float64)
            layer.weight.copy_(w * std)
            if layer.bias is not None:
                n = layer.bias.shape[0]
                b = torch.randn(n, generator=generator, dtype=torch.float64)
                layer.bias.copy_(b * xavier_std(n, n))

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = self.n_layers - 1
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if k < last:
                x = activate(x, self.activation)
        return x


def activate(z: torch.Tensor, activation: str) -> torch.Tensor:
    """The hidden nonlinearity, out of place (autograd-friendly)."""
    if activation == "relu":
        return torch.relu(z)
    if activation == "tanh":
        return torch.tanh(z)
    return z


def activate_(z: torch.Tensor, activation: str) -> torch.Tensor:
    """The hidden nonlinearity in place (the no-grad fast path of the rules)."""
    if activation == "relu":
        return z.clamp_(min=0.0)
    if activation == "tanh":
        return z.tanh_()
    return z


def activation_derivative_(h: torch.Tensor, activation: str, out: torch.Tensor) -> torch.Tensor:
    """f'(z) written from the CLEAN activity h = f(z) into ``out`` (relu: h > 0; tanh: 1 - h^2).

    Using h rather than z avoids keeping the pre-activations: relu's derivative is sign(h) and
    tanh's is 1 - h^2 exactly.
    """
    if activation == "relu":
        return torch.sign(h, out=out)  # h = relu(z) >= 0, so sign(h) = 1[z > 0]
    if activation == "tanh":
        return torch.mul(h, h, out=out).neg_().add_(1.0)
    return out.fill_(1.0)
