"""Per-task defaults of the experiment tools: widths, batch sizes, learning rates, budgets.

Why these numbers (each can be overridden: ``--hidden``, ``--num-envs``, ``--lr name=value``,
``--config agents.yaml``):

Linear teacher (``NPLinearTeacher-v0``, Lx=100, Ly=10 unless ``--env-kwargs`` says otherwise)
    Linear students without biases in float64 (the paper's setting, so eps and the mean-field
    theory apply), NP sigma 1e-6. Learning rates are fractions of the theory's critical rate
    eta*(Lx, Lh, Ly) (``np_envs.theory.critical_learning_rate``): ``np`` and ``wn-np`` 0.5 eta*,
    ``reinforce`` 0.5 eta* (its hidden update is noisier per sample than its read-out's, so we
    keep NP's margin). The rate is per sample and the batch is summed (``batch_reduction="sum"``),
    which keeps eta* meaningful for small batches: the noise that drives NP's instability adds up
    per sample whatever the batch. ``sgd`` gets SGD's optimal per-sample rate
    1/(Lx (alpha0 + beta0)) divided by the batch size, i.e. the optimal step on the batch mean.
    16 inputs per trial; budgets count trials.
SARCOS (``NPSarcos-v0``)
    The paper's setting: batch 100, NP sigma 1e-4, learning_rate 1e-4 for NP, WN-NP and
    REINFORCE (divided by the batch: ``batch_reduction="mean"``); ``sgd`` 1e-3. Width 800.
    Measured on the test-file split at width 800 (20 epochs, one seed): NP diverges at 3e-4,
    REINFORCE at 3e-3 and SGD at 1e-2 (the raw torques are large), so these defaults keep a
    factor of about 3 below the first divergent rate.
MNIST (``NPMNIST-v0``)
    Batch 1000, sigma 1e-4; NP and WN-NP 1e-4, REINFORCE 3e-4, SGD 3e-3 (middles of the ranges
    the paper reports for Fig. 5B; not divided by the batch). Width 100.
Stable-Baselines3 names (``ppo``, ``a2c``, ``sac``, ``td3``, ``ddpg``, ``ars``)
    Their own defaults (``learning_rate=None`` keeps SB3's), with the bandit settings of
    ``agents.sb3_bridge``; they get hidden_sizes, learning rate and seed only.

Evaluations per input: 2 (one clean, one perturbed answer) for NP-style rules, 1 for ``sgd`` and
the SB3 algorithms, so that budgets in inputs seen are the same for every rule.
"""

from __future__ import annotations

from typing import Any

SB3_NAMES = ("ppo", "a2c", "sac", "td3", "ddpg", "ars")
ONE_EVAL_AGENTS = ("sgd", *SB3_NAMES)
#: keys make_agent accepts from every agent (SB3 agents get no others unless configured)
SB3_KEYS = ("hidden_sizes", "learning_rate", "seed", "device")

LINEAR = "NPLinearTeacher-v0"
SARCOS = "NPSarcos-v0"
MNIST = "NPMNIST-v0"


def task_defaults(env_id: str) -> dict[str, Any]:
    """num_envs, hidden width, budget unit, metric and the agent kwargs every rule shares."""
    if env_id == LINEAR:
        return {
            "num_envs": 16,
            "hidden": (100,),
            "unit": "trials",
            "metric": "mse",
            "agent_kwargs": {"activation": "linear", "bias": False, "dtype": "float64"},
            "sigma": 1e-6,
        }
    if env_id == MNIST:
        return {"num_envs": 1000, "hidden": (100,), "unit": "epochs", "metric": "accuracy",
                "agent_kwargs": {}, "sigma": 1e-4}
    if env_id == SARCOS:
        return {"num_envs": 100, "hidden": (800,), "unit": "epochs", "metric": "mse",
                "agent_kwargs": {}, "sigma": 1e-4}
    return {"num_envs": 100, "hidden": (100,), "unit": "epochs", "metric": "mse",
            "agent_kwargs": {}, "sigma": 1e-4}


def linear_sizes(env_kwargs: dict[str, Any]) -> tuple[int, int]:
    return int(env_kwargs.get("Lx", 100)), int(env_kwargs.get("Ly", 10))


def critical_rate(env_kwargs: dict[str, Any], hidden: tuple[int, ...]) -> float:
    """eta* of the linear task at the first hidden width (the theory has one hidden layer)."""
    from np_envs.theory import critical_learning_rate

    lx, ly = linear_sizes(env_kwargs)
    return critical_learning_rate(lx, int(hidden[0]), ly)


def default_learning_rate(
    env_id: str, agent: str, hidden: tuple[int, ...], num_envs: int,
    env_kwargs: dict[str, Any] | None = None,
) -> float | None:
    """The documented default rate of ``agent`` on ``env_id`` (None: the agent's own)."""
    env_kwargs = env_kwargs or {}
    if agent in SB3_NAMES:
        return None
    if env_id == LINEAR and hidden:
        from np_envs.theory import sgd_optimal_learning_rate

        if agent == "sgd":
            lx, ly = linear_sizes(env_kwargs)
            return sgd_optimal_learning_rate(lx, int(hidden[0]), ly) / num_envs
        return 0.5 * critical_rate(env_kwargs, hidden)
    if env_id == MNIST:
        return {"sgd": 3e-3, "reinforce": 3e-4}.get(agent, 1e-4)
    if env_id == SARCOS:
        return {"sgd": 1e-3}.get(agent, 1e-4)
    return {"sgd": 1e-3}.get(agent, 1e-4)


def evals_per_input(agent: str) -> int:
    return 1 if agent in ONE_EVAL_AGENTS else 2


def agent_kwargs(env_id: str, agent: str, hidden: tuple[int, ...]) -> dict[str, Any]:
    """Default keyword arguments for ``make_agent`` (besides the rate and seed)."""
    d = task_defaults(env_id)
    if agent in SB3_NAMES:
        return {"hidden_sizes": list(hidden)}
    kwargs: dict[str, Any] = {"hidden_sizes": list(hidden), **d["agent_kwargs"]}
    if agent in ("np", "wn-np", "reinforce"):
        kwargs["sigma"] = d["sigma"]
    return kwargs
