"""Gaussian perturbations for one update from seeded generators, drawn in parallel or ahead.

Every buffer has a leading member axis ``(P, rows, L)``; member p owns ``streams`` generators
(``generators[p * streams + s]``), and stream s of member p fills a fixed block of rows of
member p's slice. A single agent is P = 1.

Why a class: on a CPU, torch's Mersenne-Twister normal fill costs ~5 ns per number, single
threaded. NP needs one number per hidden unit and sample: at MNIST B=1000, width 800 that is as
long as one of the big matrix products, which run on every core. So the noise is split into
``len(generators)`` fixed streams -- stream s fills a fixed block of rows of every buffer -- and
the streams can be filled at once on several threads. How they are scheduled is a speed choice
only, never a change of the numbers:

- ``"serial"``: every stream in the calling thread, in order (GPUs, tiny batches);
- ``"parallel"``: a worker fills streams 1.. from ``begin()`` on (NP calls it right after the
  clean pass, so the worker runs while the environment scores the clean answer), and stream 0
  is filled in the calling thread at ``draw()``;
- ``"prefetch"``: a worker fills all streams of the NEXT update while the caller uses this one
  (worth it when torch runs single-threaded and a core would idle); ``close()`` rewinds the
  generators over a fill drawn ahead but never used.

torch releases the GIL inside its kernels, so the worker thread really runs beside the caller.
A worker thread only pays when a core is free for it: np-envs' process pool and Ray backends
tell their workers how many cores each of them has (``NP_ENVS_CORES_PER_PROCESS``), and the
automatic choice of the rules is then "serial" where a process has one core (measured: two
pool workers with a noise thread each were ~25 % slower than without, SARCOS P=8).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import torch

NOISE_MODES: tuple[str, ...] = ("serial", "parallel", "prefetch")


def _row_blocks(rows: int, streams: int) -> list[tuple[int, int]]:
    """Fixed contiguous row blocks, one per stream (trailing ones may be empty)."""
    size = -(-rows // streams)
    return [(min(s * size, rows), min((s + 1) * size, rows)) for s in range(streams)]


class GaussianNoise:
    """Buffers of standard normal noise with fixed shapes (P, B, L), refilled on every
    ``draw()``."""

    def __init__(
        self,
        generators: Sequence[torch.Generator],
        shapes: Sequence[tuple[int, ...]],
        dtype: torch.dtype,
        device: torch.device,
        mode: str = "serial",
        members: int = 1,
    ) -> None:
        if mode not in NOISE_MODES:
            raise ValueError(f"unknown noise mode {mode!r}; choose one of {NOISE_MODES}")
        if len(generators) % members:
            raise ValueError(f"{len(generators)} generators for {members} members")
        self.generators = list(generators)
        self.shapes = [tuple(s) for s in shapes]
        self.mode = mode
        self.members = members
        streams = len(self.generators) // members
        n_sets = 2 if mode == "prefetch" else 1
        self._sets = [
            [torch.empty(s, dtype=dtype, device=device) for s in self.shapes]
            for _ in range(n_sets)
        ]
        # _blocks[set][unit]: the views unit (member p, stream s) fills, in buffer order
        self._blocks = [
            [
                [buf[p, a:b] for buf in bufs
                 for (a, b) in [_row_blocks(buf.shape[1], streams)[s]] if b > a]
                for p in range(members) for s in range(streams)
            ]
            for bufs in self._sets
        ]
        units = range(len(self.generators))
        if streams > 1:  # the caller fills every member's stream 0, a worker the others
            self._mine = [u for u in units if u % streams == 0]
        else:
            self._mine = [u for u in units if u % 2 == 0]
        self._others = [u for u in units if u not in self._mine]
        self._current = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self._states_before_pending: list[torch.Tensor] | None = None

    def _fill(self, set_index: int, streams: Sequence[int]) -> None:
        for s in streams:
            gen = self.generators[s]
            for view in self._blocks[set_index][s]:
                view.normal_(generator=gen)

    def _fill_ahead(self, set_index: int) -> None:
        self._states_before_pending = [g.get_state() for g in self.generators]
        self._fill(set_index, range(len(self.generators)))

    def _submit(self, fn, *args) -> Future:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="np-noise")
        return self._pool.submit(fn, *args)

    def _fill_others_ahead(self) -> None:
        self._states_before_pending = [g.get_state() for g in self.generators]
        self._fill(0, self._others)

    def begin(self) -> None:
        """Start the worker's share of the next ``draw()`` now ("parallel" mode only)."""
        if self.mode == "parallel" and self._others and self._pending is None:
            self._pending = self._submit(self._fill_others_ahead)

    def draw(self) -> list[torch.Tensor]:
        """Fresh noise, one tensor per shape; valid until the next ``draw()``."""
        every = range(len(self.generators))
        if self.mode == "serial" or (self.mode == "parallel" and not self._others):
            self._fill(0, every)
            return self._sets[0]
        if self.mode == "parallel":
            self.begin()
            self._fill(0, self._mine)
            self._finish_pending()
            return self._sets[0]
        if self._pending is None:
            self._fill(self._current, every)
        else:
            self._finish_pending()
        ready = self._sets[self._current]
        self._current ^= 1
        self._pending = self._submit(self._fill_ahead, self._current)
        return ready

    def _finish_pending(self) -> None:
        assert self._pending is not None
        self._pending.result()
        self._pending = None
        self._states_before_pending = None

    def consumer_states(self) -> list[torch.Tensor]:
        """Generator states as if nothing had been drawn ahead (what save() must record)."""
        if self._pending is not None:
            self._pending.result()
            assert self._states_before_pending is not None
            return [s.clone() for s in self._states_before_pending]
        return [g.get_state() for g in self.generators]

    def close(self) -> None:
        """Stop the worker; rewind the generators over the fill drawn ahead, if any."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
            assert self._states_before_pending is not None
            for gen, state in zip(self.generators, self._states_before_pending, strict=True):
                gen.set_state(state)
            self._states_before_pending = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
