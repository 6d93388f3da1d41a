"""Where a task's samples come from: a finite data set read in epochs, or an endless generator.

Both the single and the batched environment draw their inputs from a stream, so that they see
exactly the same samples in the same order: sub-environment ``i`` of batch ``j`` holds stream
element ``j * B + i``. A data set's training stream is the concatenation of one permutation per
epoch, so every training sample appears exactly once per epoch whatever the batch size; when
``B`` does not divide the set size the batch that straddles an epoch boundary simply holds the
last samples of one epoch and the first of the next (``info["epoch"]`` tells them apart).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from np_envs.threads import for_row_blocks

#: measured cost of gathering and decoding one stored byte (MNIST, one core): ~0.9 ns
DECODE_NS_PER_NUMBER = 1.0

Shuffle = Literal["epoch", "once", "none"]
SHUFFLES: tuple[str, ...] = ("epoch", "once", "none")


@dataclass
class Batch:
    """One draw of ``count`` consecutive stream elements."""

    inputs: np.ndarray  # (count, obs_dim), the observation dtype
    targets: np.ndarray  # (count, target_dim), float64
    epochs: np.ndarray  # (count,), int64
    indices: np.ndarray  # (count,), int64 row numbers in the data set (-1 for generated samples)


class SampleStream:
    """Interface of a sample stream; ``restart`` rewinds it with a fresh random generator."""

    obs_dim: int
    target_dim: int
    obs_dtype: np.dtype
    size: int | None  # number of distinct samples per epoch, None for an endless stream
    _rng: np.random.Generator

    def restart(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def next(self, count: int, out: np.ndarray | None = None) -> Batch:
        """The next ``count`` elements; ``out`` (count, obs_dim) receives the inputs if given
        (a population writes each stream's batch straight into its (G, B, obs) array)."""
        raise NotImplementedError

    def clone(self) -> SampleStream:
        """A new stream over the same data arrays (shared, not copied) and the same settings.

        Several data orders over one data set (one per seed, as a population of learners needs)
        then cost no extra memory: MNIST alone is 188 MB. The clone has its own position and
        random state, rewound as by a fresh construction; call ``restart(rng)`` before drawing.
        ``restart`` must rebind every piece of per-run state (never mutate it in place), since
        the shallow copy shares everything else with the original.
        """
        clone = copy.copy(self)
        clone.restart(np.random.default_rng(0))
        return clone

    def state_dict(self) -> dict[str, Any]:
        """Where the stream is and its random state (no data), to resume a run exactly."""
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put the stream back where :meth:`state_dict` found it."""
        rng_state = copy.deepcopy(state["rng"])
        bit_generator = getattr(np.random, rng_state["bit_generator"])()
        bit_generator.state = rng_state
        self._rng = np.random.Generator(bit_generator)


class DatasetStream(SampleStream):
    """A finite data set read in epochs.

    ``shuffle="epoch"``: a fresh permutation every epoch (the default for training);
    ``"once"``: one permutation, reused every epoch (what the paper's SARCOS code did);
    ``"none"``: the data set's own order (the test split).

    ``input_divisor``: the inputs are integer codes (MNIST's pixel bytes) and an observation is
    ``float32(code) / float32(input_divisor)``, computed when a batch is drawn -- the numbers a
    float32 copy of the whole set divided once would hold, from a quarter of the memory (and a
    quarter of the bytes to gather per batch).
    """

    def __init__(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        shuffle: Shuffle = "epoch",
        obs_dtype: np.dtype | type = np.float32,
        input_divisor: float | None = None,
    ) -> None:
        if shuffle not in SHUFFLES:
            raise ValueError(f"unknown shuffle {shuffle!r}; choose one of {SHUFFLES}")
        if len(inputs) != len(targets) or len(inputs) == 0:
            raise ValueError(
                f"inputs and targets must be non-empty and of equal length, got {len(inputs)} "
                f"and {len(targets)} rows"
            )
        if input_divisor is None:
            self.inputs = np.ascontiguousarray(inputs, dtype=obs_dtype)
            self.obs_dtype = self.inputs.dtype
            self._divisor = None
        else:
            if np.asarray(inputs).dtype.kind not in "iu":
                raise ValueError("input_divisor needs integer input codes, got dtype "
                                 f"{np.asarray(inputs).dtype}")
            self.inputs = np.ascontiguousarray(inputs)
            self.obs_dtype = np.dtype(np.float32)
            self._divisor = np.float32(input_divisor)
        self.targets = np.ascontiguousarray(targets, dtype=np.float64)
        self.obs_dim = self.inputs.shape[1]
        self.target_dim = self.targets.shape[1]
        self.size = len(self.inputs)
        self.shuffle = shuffle
        self._rng = np.random.default_rng(0)
        self._position = 0
        self._orders: dict[int, np.ndarray] = {}
        self._fixed_order: np.ndarray | None = None

    def restart(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._position = 0
        self._orders = {}
        self._fixed_order = None

    def _order(self, epoch: int) -> np.ndarray:
        """Row order of one epoch, drawn lazily and in sequence: it depends on the seed only."""
        if self.shuffle != "epoch":
            if self._fixed_order is None:
                none = self.shuffle == "none"
                self._fixed_order = (
                    np.arange(self.size) if none else self._rng.permutation(self.size)
                )
            return self._fixed_order
        order = self._orders.get(epoch)
        if order is None:
            # keep at most the previous epoch's order besides the new one
            self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
            order = self._orders[epoch] = self._rng.permutation(self.size)
        return order

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["position"] = self._position
        state["orders"] = {epoch: order.copy() for epoch, order in self._orders.items()}
        state["fixed_order"] = None if self._fixed_order is None else self._fixed_order.copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._position = int(state["position"])
        self._orders = {int(e): np.asarray(o).copy() for e, o in state["orders"].items()}
        fixed = state["fixed_order"]
        self._fixed_order = None if fixed is None else np.asarray(fixed).copy()

    def next(self, count: int, out: np.ndarray | None = None) -> Batch:
        rows, epochs = self.next_rows(count)
        return Batch(self.read_inputs(rows, out), self.targets[rows], epochs, rows)

    @property
    def input_divisor(self) -> np.float32 | None:
        """What decodes a stored code (``float32(code) / input_divisor``); None: no codes."""
        return self._divisor

    def read_codes(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` as stored (integer codes where there is an ``input_divisor``): a
        population hands these over and its learners decode them on their own device."""
        return self.inputs.take(rows, axis=0)

    def decode(self, codes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Stored codes as observations (into ``out`` if given): the one decoding rule, which
        :meth:`read_inputs` applies to the rows it reads."""
        if self._divisor is not None:
            return np.divide(codes, self._divisor, out=out, dtype=np.float32)
        if out is None:
            return np.array(codes, dtype=self.obs_dtype)
        out[...] = codes
        return out

    def read_inputs(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The observations of data-set rows ``rows`` (any shape of row numbers), written into
        ``out`` when given (no temporary of the observations' size).

        Stored bytes are decoded (``/ divisor``) block by block of rows, on several threads
        for a big batch (a population's G x B MNIST images: see np_envs/threads.py); each row
        is the same numbers either way."""
        if self._divisor is None:
            return self.inputs.take(rows, axis=0, out=out)
        if out is None:
            out = np.empty(rows.shape + self.inputs.shape[1:], np.float32)
        elif not out.flags.c_contiguous:  # its flat view below would be a copy
            out[...] = self.read_inputs(rows)
            return out
        flat_rows = rows.reshape(-1)
        flat_out = out.reshape((flat_rows.size,) + self.inputs.shape[1:])

        def decode(lo: int, hi: int) -> None:
            self.decode(self.inputs.take(flat_rows[lo:hi], axis=0), out=flat_out[lo:hi])

        for_row_blocks(decode, flat_rows.size, DECODE_NS_PER_NUMBER * flat_out.size)
        return out

    def next_rows(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The row numbers and epochs of the next ``count`` elements (what :meth:`next` reads);
        a population gathers several streams' rows in one indexing call."""
        start = self._position
        first_epoch, offset = divmod(start, self.size)
        if offset + count <= self.size:  # the common case: one epoch, one slice
            rows = self._order(first_epoch)[offset : offset + count]
            epochs = np.full(count, first_epoch, dtype=np.int64)
        else:
            positions = np.arange(start, start + count, dtype=np.int64)
            epochs, offsets = np.divmod(positions, self.size)
            rows = np.empty(count, dtype=np.int64)
            for epoch in np.unique(epochs):
                mask = epochs == epoch
                rows[mask] = self._order(int(epoch))[offsets[mask]]
        self._position = start + count
        return np.asarray(rows, np.int64), epochs


class TeacherStream(SampleStream):
    """An endless stream from a linear teacher: ``x ~ N(0, I)``, ``y = A x + sigma_t z``.

    The target is computed from the input as the learner sees it (after the cast to the
    observation dtype), so that float32 rounding never shows up as label noise.
    """

    size = None

    def __init__(self, teacher: np.ndarray, sigma_t: float, obs_dtype: np.dtype | type) -> None:
        self.teacher = teacher
        self.sigma_t = float(sigma_t)
        self.target_dim, self.obs_dim = teacher.shape
        self.obs_dtype = np.dtype(obs_dtype)
        self._rng = np.random.default_rng(0)

    def restart(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def next(self, count: int, out: np.ndarray | None = None) -> Batch:
        inputs = self._rng.standard_normal((count, self.obs_dim)).astype(self.obs_dtype)
        if out is not None:
            out[...] = inputs
            inputs = out
        targets = inputs.astype(np.float64) @ self.teacher.T
        if self.sigma_t > 0.0:
            targets += self.sigma_t * self._rng.standard_normal((count, self.target_dim))
        zeros = np.zeros(count, dtype=np.int64)
        return Batch(inputs, targets, zeros, zeros - 1)
