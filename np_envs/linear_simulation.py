"""The learning rules on the linear student-teacher task, as a configuration of the engine.

The paper's linear panels compare the mean-field map (np_envs/theory.py) with simulated runs:
plain NP (Figs. 1A, 3A, 3B), SGD on the same stream (Fig. 2), NP with every hidden neuron's
incoming weights held at a fixed norm (Fig. 3D), and first passages of the error through a
threshold (training time, Fig. 2; return to the initial error, Fig. 3B).

There is no learning loop here. A run is the product's agent (``np``, ``wn-np`` with
``normalize="first"``, or ``sgd``) with ``hidden_sizes=(Lh,)``, ``activation="linear"``,
``bias=False``, ``dtype="float64"`` and ``sigma=1e-6`` on ``NPLinearTeacher-v0`` (float64, one
sample per step), trained by the population engine (agents/population.py). A grid of seeds x
learning rates is ONE population: one batched program, members that share a seed share the data
stream. This module only cuts training into chunks that end at the record steps, measures
``eps = ||W2 W1 - A||^2 / (Lx Ly)`` and ``a = ||W1||^2 / (Lx Lh^(1/3))`` for every member at
once from ``agent.weights`` and the env's teacher, and freezes members that are finished
(an early stop, or divergence); it stops when every member is.

What a seed means (the engine's convention): the student's initial weights, the perturbation
noise and the data stream (inputs and teacher noise). The teacher ``A`` is the environment's,
drawn from ``teacher_seed`` (``TEACHER_SEED``, a seed no member uses) and shared by every
member of a population, so seed-means are conditional on that one teacher. Draws: W1 and W2 are the
engine's Xavier-Glorot normal draw, the distribution NOTES.md gives (``init_scale`` r multiplies
W1's variance, i.e. ``init_scales=(sqrt(r), 1)``).

Everything here is imported lazily: ``np_envs.theory`` imports this module and must not pay for
torch or the agents.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from np_envs._checks import (
    check_count,
    check_nonnegative,
    check_positive,
    check_size,
    check_sizes,
)

__all__ = [
    "LinearRun",
    "simulate_linear",
    "simulate_linear_grid",
    "simulate_linear_np",
    "LINEAR_SIGMA",
    "DIVERGED_FACTOR",
    "TEACHER_SEED",
]

#: Perturbation amplitude of the authors' linear runs (NOTES.md): small enough for the finite
#: difference to be a directional derivative, large enough for float64.
LINEAR_SIGMA = 1e-6
#: A simulated error this many times its initial value has blown up: NP's error cannot come back
#: from there (||W1|| only grows), and well before 1e100 the float64 finite difference loses the
#: perturbation (l~ == l), so the weights freeze at a huge error that never reaches inf.
DIVERGED_FACTOR = 1e10
RULES = ("np", "sgd")
ENV_ID = "NPLinearTeacher-v0"
#: The teacher's seed, kept apart from the members' seeds. (Before commit 6c9ca54 the env drew
#: the teacher with the same construction as a stream reset with the same seed, so a member
#: seeded like the teacher saw the teacher's rows as its first inputs; the env now draws the
#: teacher from its own seed stream, and the reproduction numbers use this seed.)
TEACHER_SEED = 1_000_000


@dataclass
class LinearRun:
    """One simulated run: a = ||W1||^2/(Lx Lh^(1/3)) and the error eps recorded at ``steps``.

    ``stopped`` says why the run ended: "budget" (all steps done), "below" (eps fell to
    ``stop_below``), "above" (eps rose past ``stop_above``) or "diverged". Records after an
    early stop are nan ("below"/"above"); a diverged run's records from the one that saw the
    blow-up on are +inf (so log plots keep their scale). ``last`` is the last step run.
    """

    steps: np.ndarray
    a: np.ndarray
    eps: np.ndarray
    stopped: str = "budget"
    last: int = 0
    params: dict = field(default_factory=dict)


def _record_steps(steps: int, record_every: int, record_steps: Sequence[int] | None) -> list[int]:
    if record_steps is None:
        record_at = list(range(0, steps + 1, record_every))
    else:
        wanted = {int(t) for t in record_steps}
        bad = [t for t in wanted if not 0 <= t <= steps]
        if bad:
            raise ValueError(f"record_steps must lie in [0, steps={steps}], got {sorted(bad)[:5]}")
        record_at = sorted(wanted | {0})
    if record_at[-1] != steps:
        record_at.append(steps)
    return record_at


def _optional_threshold(name: str, value: float | None) -> float | None:
    return None if value is None else check_positive(name, value)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def simulate_linear_grid(
    Lx: int,
    Lh: int,
    Ly: int,
    learning_rates: Sequence[float],
    steps: int,
    *,
    seeds: Sequence[int] = (0,),
    rule: str = "np",
    sigma_t: float = 0.0,
    teacher_seed: int = TEACHER_SEED,
    record_every: int = 100,
    record_steps: Sequence[int] | None = None,
    sigma: float = LINEAR_SIGMA,
    init_scale: float = 1.0,
    normalize_w1: bool = False,
    stop_below: float | None = None,
    stop_above: float | None = None,
    device: str = "cpu",
) -> list[list[LinearRun]]:
    """Every seed x learning rate on the teacher y* = A x + sigma_t zeta, as one population.

    Returns ``runs[i][j]``: learning rate i, seed j (the layout the panels slice). Member
    ``(seed, lr)`` is exactly ``simulate_linear(..., learning_rate=lr, seed=seed)``: the engine
    gives each member its own weights, noise and data stream from its seed; members sharing a
    seed see the same inputs (paired comparisons across rates). All members share the teacher
    ``A`` (``teacher_seed``, which must differ from every member's seed: see
    ``TEACHER_SEED``).

    ``rule="np"``: the engine's ``np`` (``wn-np`` with ``normalize="first"`` when
    ``normalize_w1``: after each step, and once before the first, every row of W1 is rescaled to
    its initial RMS sqrt(2 r/(Lx+Lh)), which holds ||W1|| and a; Fig. 3D). ``rule="sgd"``: the
    engine's SGD oracle on the revealed targets, one evaluation per input.

    a and eps are measured at step 0, every ``record_every`` steps (or at the sorted
    ``record_steps``) and at ``steps``; eps only there, since W2 W1 costs O(Lx Lh Ly) while a
    step costs O(Lh (Lx + Ly)). ``stop_below`` / ``stop_above`` end a member at the first record
    with eps <= / > the value, so the records set the resolution of these first passages. An
    error past ``DIVERGED_FACTOR`` times the member's initial value, or non-finite answers (the
    engine freezes such a member at once), end it as diverged. An ended member leaves the
    population (``agent.select`` of the others, with their data streams); the population
    stops when every member has ended.
    """
    Lx, Lh, Ly = check_sizes(Lx, Lh, Ly)
    rates = [check_positive("learning_rate", lr) for lr in learning_rates]
    seed_list = [_check_seed(s) for s in seeds]
    if not rates or not seed_list:
        raise ValueError("learning_rates and seeds must be non-empty")
    if len(set(seed_list)) != len(seed_list):
        raise ValueError(f"seeds must be distinct, got {seed_list}")
    steps = check_count("steps", steps)
    sigma_t = check_nonnegative("sigma_t", sigma_t)
    teacher_seed = _check_seed(teacher_seed)
    if teacher_seed in seed_list:
        raise ValueError(
            f"teacher_seed {teacher_seed} is also a member's seed: that member's first inputs "
            "would be the teacher's rows (the env draws both with the same generator)"
        )
    record_every = check_size("record_every", record_every)
    sigma = check_positive("sigma", sigma)
    r = check_positive("init_scale", init_scale)
    stop_below = _optional_threshold("stop_below", stop_below)
    stop_above = _optional_threshold("stop_above", stop_above)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if normalize_w1 and rule != "np":
        raise ValueError("normalize_w1 is weight-normalised NP (wn-np); rule must be 'np'")
    record_at = _record_steps(steps, record_every, record_steps)

    import gymnasium as gym  # local: keep np_envs.theory free of torch and the agents
    import torch

    import np_envs  # noqa: F401  (registers the environments)
    from agents import make_agent
    from agents.population import GroupLayout
    from agents.populations import population_grid
    from np_envs.envs.population import PopulationEnv

    members = population_grid(seed_list, rates)  # seed-major: p = seed index * R + rate index
    P, R = len(members["seed"]), len(rates)
    sgd = rule == "sgd"
    template = gym.make_vec(
        ENV_ID, num_envs=1, Lx=Lx, Ly=Ly, sigma_t=sigma_t, teacher_seed=teacher_seed,
        dtype="float64", evals_per_input=1 if sgd else 2, reveal_target=sgd,
    )
    # always the population env, also for one member: a member whose answers turn inf is then
    # frozen and reported (the ordinary env would raise on them)
    env = PopulationEnv(template, GroupLayout.from_seeds(members["seed"]).member_groups)
    kwargs: dict = dict(
        hidden_sizes=(Lh,), activation="linear", bias=False, dtype="float64", device=device,
        init_scales=(math.sqrt(r), 1.0),
        learning_rate=members["learning_rate"] if P > 1 else members["learning_rate"][0],
        seed=members["seed"] if P > 1 else members["seed"][0],
    )
    name = "sgd"
    if not sgd:
        name = "wn-np" if normalize_w1 else "np"
        kwargs["sigma"] = sigma
        if normalize_w1:
            kwargs["normalize"] = "first"
    try:
        agent = make_agent(name, env, **kwargs)
        k = 1 if sgd else 2  # env steps per input
        teacher = torch.as_tensor(np.asarray(env.unwrapped.teacher), dtype=torch.float64,
                                  device=agent.device)
        cbrt_lh = float(np.cbrt(float(Lh)))
        n_rec = len(record_at)
        a_rec = np.full((P, n_rec), np.nan)
        eps_rec = np.full((P, n_rec), np.nan)

        live = np.arange(P)  # the member of the grid that each of the agent's members is

        def measure(i: int) -> np.ndarray:
            """a and eps of every member the population still holds (all still running)."""
            with torch.no_grad():
                W1, W2 = agent.weights[0], agent.weights[1]  # (P', Lh, Lx), (P', Ly, Lh)
                a = (W1 * W1).sum(dim=(1, 2)).cpu().numpy() / (Lx * cbrt_lh)
                D = torch.bmm(W2, W1).sub_(teacher)
                e = (D * D).sum(dim=(1, 2)).cpu().numpy() / (Lx * Ly)
            a_rec[live, i] = a
            eps_rec[live, i] = e
            return e

        bound = DIVERGED_FACTOR * measure(0)
        stopped = ["budget"] * P
        last = [steps] * P
        done = 0  # inputs seen by every running member
        for i in range(1, n_rec):
            agent.learn(k * (record_at[i] - done), reset_num_timesteps=(done == 0))
            done = record_at[i]
            e = measure(i)
            ended = []
            for q, p in enumerate(live):
                why = None
                if not agent.active[q]:  # the engine froze it: non-finite answers
                    why = "diverged"
                    last[p] = int(agent.diverged_at[q] or 0) // k
                elif not e[q] <= bound[p]:  # also catches nan
                    why = "diverged"
                elif stop_below is not None and e[q] <= stop_below:
                    why = "below"
                elif stop_above is not None and e[q] > stop_above:
                    why = "above"
                if why is None:
                    continue
                ended.append(q)
                stopped[p] = why
                if why == "diverged":
                    a_rec[p, i:] = np.inf
                    eps_rec[p, i:] = np.inf
                    if agent.active[q]:
                        last[p] = done
                else:
                    last[p] = done
            if len(ended) == len(live):
                break
            if ended:  # go on without them: the others continue exactly, at less cost
                keep = [q for q in range(len(live)) if q not in ended]
                agent = agent.select(keep, carry_streams=True)
                live = live[keep]
    finally:
        env.close()
        template.close()
    recorded = np.asarray(record_at, dtype=np.int64)
    runs: list[list[LinearRun]] = [[None] * len(seed_list) for _ in range(R)]  # type: ignore
    for p in range(P):
        si, ri = divmod(p, R)
        params = dict(Lx=Lx, Lh=Lh, Ly=Ly, learning_rate=rates[ri], rule=rule, sigma_t=sigma_t,
                      seed=seed_list[si], teacher_seed=teacher_seed,
                      normalize_w1=bool(normalize_w1), engine=name)
        runs[ri][si] = LinearRun(recorded.copy(), a_rec[p], eps_rec[p], stopped[p], last[p],
                                 params)
    return runs


def simulate_linear(
    Lx: int,
    Lh: int,
    Ly: int,
    learning_rate: float,
    steps: int,
    *,
    rule: str = "np",
    sigma_t: float = 0.0,
    seed: int = 0,
    teacher_seed: int = TEACHER_SEED,
    record_every: int = 100,
    record_steps: Sequence[int] | None = None,
    sigma: float = LINEAR_SIGMA,
    init_scale: float = 1.0,
    normalize_w1: bool = False,
    stop_below: float | None = None,
    stop_above: float | None = None,
    device: str = "cpu",
) -> LinearRun:
    """Train y = W2 W1 x on the teacher y* = A x + sigma_t zeta, one sample a step.

    A population of one of :func:`simulate_linear_grid` (see there for the rules, draws, records
    and stops): teacher A ~ N(0, 2/(Lx+Ly)) from ``teacher_seed``, student W1 ~
    N(0, 2 r/(Lx+Lh)) (r = ``init_scale``) and W2 ~ N(0, 2/(Lh+Ly)) from ``seed``.
    """
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
        raise ValueError(f"learning_rate must be a positive real number, got {learning_rate!r}")
    return simulate_linear_grid(
        Lx, Lh, Ly, [learning_rate], steps, seeds=[_check_seed(seed)], rule=rule,
        sigma_t=sigma_t, teacher_seed=teacher_seed, record_every=record_every,
        record_steps=record_steps, sigma=sigma, init_scale=init_scale,
        normalize_w1=normalize_w1, stop_below=stop_below, stop_above=stop_above, device=device,
    )[0][0]


def simulate_linear_np(
    Lx: int,
    Lh: int,
    Ly: int,
    learning_rate: float,
    steps: int,
    sigma_t: float = 0.0,
    seed: int = 0,
    record_every: int = 100,
    *,
    record_steps: Sequence[int] | None = None,
    sigma: float = LINEAR_SIGMA,
    init_scale: float = 1.0,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain node perturbation on the linear task: ``(steps_recorded, a, eps)``.

    The same run as ``simulate_linear(..., rule="np")``; see there for the model, the draws and
    the records. A diverged run's records from the blow-up on read +inf.
    """
    run = simulate_linear(
        Lx, Lh, Ly, learning_rate, steps, sigma_t=sigma_t, seed=seed, record_every=record_every,
        record_steps=record_steps, sigma=sigma, init_scale=init_scale, device=device,
    )
    return run.steps, run.a, run.eps
