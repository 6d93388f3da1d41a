"""np-envs: supervised tasks as reward-only Gymnasium environments.

Importing the package registers ``NPLinearTeacher-v0``, ``NPSarcos-v0`` and ``NPMNIST-v0``
(single and natively batched). ``evaluate`` scores any agent on a whole split.
"""

from np_envs.evaluation import evaluate
from np_envs.registration import ENV_IDS, register_envs

register_envs()

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "evaluate", "register_envs", "__version__"]
