"""np-envs: supervised tasks as reward-only Gymnasium environments.

Importing the package registers ``NPLinearTeacher-v0``, ``NPSarcos-v0``, ``NPMNIST-v0`` and
``NPDataset-v0`` (your own arrays; see ``make_dataset_env``), single and natively batched.
``evaluate`` scores any agent on a whole split, ``evaluate_members`` every member of a
population at once.

Environments, data and losses need numpy only: importing the package or making an env never
loads torch (only ``agents`` and the experiment tools do), so a fresh process has its first env
in a fraction of a second.
"""

from np_envs.envs.dataset import make_dataset_env
from np_envs.evaluation import evaluate, evaluate_members
from np_envs.registration import ENV_IDS, register_envs

register_envs()

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "evaluate", "evaluate_members", "make_dataset_env", "register_envs",
           "__version__"]
