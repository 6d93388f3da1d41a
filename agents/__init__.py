"""Learning rules that see only observations and scalar rewards, plus the SGD oracle and SB3.

``make_agent(name, env, **kwargs)`` builds any of them; ``register_agent(name, cls)`` adds a
plug-in (a subclass of ``RewardAgent``: perturb, then update from the reward difference).
"""

from agents.base import RewardAgent
from agents.network import MLP
from agents.node_perturbation import NodePerturbation
from agents.registry import available_agents, make_agent, register_agent, resolve_agent
from agents.reinforce import BackpropReinforce
from agents.sgd import SGDOracle
from agents.weight_normalised import WeightNormalisedNP

__all__ = [
    "MLP",
    "BackpropReinforce",
    "NodePerturbation",
    "RewardAgent",
    "SGDOracle",
    "WeightNormalisedNP",
    "available_agents",
    "make_agent",
    "register_agent",
    "resolve_agent",
]
