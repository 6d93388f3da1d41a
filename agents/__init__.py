"""Learning rules that see only observations and scalar rewards, plus the SGD oracle and SB3.

``make_agent(name, env, **kwargs)`` builds any of them; ``make_population(name, env,
learning_rates=[...], seeds=[...])`` builds a grid of learners of one rule, trained as one
batched program (agents/population.py); ``register_agent(name, cls)`` adds a plug-in (a
subclass of ``RewardAgent``: perturb, then update from the reward difference).
"""

from agents.base import RewardAgent
from agents.network import MLP
from agents.node_perturbation import NodePerturbation, PerturbationRule
from agents.population import PopulationAgent
from agents.populations import SequentialPopulation, make_population
from agents.registry import available_agents, make_agent, register_agent, resolve_agent
from agents.reinforce import BackpropReinforce
from agents.sgd import SGDOracle
from agents.weight_normalised import WeightNormalisedNP
from agents.weight_perturbation import WeightPerturbation

__all__ = [
    "MLP",
    "BackpropReinforce",
    "NodePerturbation",
    "PerturbationRule",
    "PopulationAgent",
    "RewardAgent",
    "SGDOracle",
    "SequentialPopulation",
    "WeightNormalisedNP",
    "WeightPerturbation",
    "available_agents",
    "make_agent",
    "make_population",
    "register_agent",
    "resolve_agent",
]
