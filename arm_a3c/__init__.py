"""arm-a3c: teach simulated robot arms to reach with Asynchronous Advantage Actor-Critic (A3C)."""

import gymnasium

__version__ = "0.1.0"

gymnasium.register(id="ArmReach-v0", entry_point="arm_a3c.envs.arm_env:ArmReachEnv")
