"""arm-a3c: teach simulated robot arms skills with Asynchronous Advantage Actor-Critic (A3C)."""

import gymnasium

from arm_a3c.tasks import TASKS

__version__ = "0.1.0"

for _task in TASKS.values():  # ArmReach-v0, and one ID per task
    gymnasium.register(id=_task.gym_id, entry_point="arm_a3c.envs.arm_env:ArmEnv", kwargs={"task": _task.name})
