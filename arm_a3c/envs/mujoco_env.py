"""An arm environment whose physics is MuJoCo's (`sim.mujoco_twin.MujocoArm`): the policy trained in PyBullet,
played on the same goals in a second, independent simulator.

`MujocoArmEnv` wraps an `ArmEnv` and keeps everything of it but the physics: a reset with a seed samples the goal
in PyBullet as ever (so a seed gives the same goal in both), then the arm starts at home in MuJoCo; each step the
`ArmEnv` checks the action and gives the joints' targets (`begin_step`), MuJoCo runs the substeps, and the
`ArmEnv` makes the observation from MuJoCo's state (`observation`: the same layout, noise and speed figure) and
judges it (`end_step`). The self-contact and floor-contact figures count the link pairs that `sim.contacts`
finds in PyBullet, measured on MuJoCo's shapes.
"""

from __future__ import annotations

import gymnasium
import numpy as np

from arm_a3c.envs.arm_env import ArmEnv
from arm_a3c.errors import UserError
from arm_a3c.sim.contacts import ContactPairs
from arm_a3c.sim.mujoco_twin import MujocoArm

# Tasks whose goal and judgement depend on the end-effector point alone. Not yet: pose (its orientation is read
# from PyBullet's link) and avoid (its obstacles are PyBullet bodies).
TASKS_IN_MUJOCO = ("reach", "track")
SIMULATORS = ("pybullet", "mujoco")  # what plays a checkpoint's episodes (`in_simulator`)


class MujocoArmEnv(gymnasium.Env):
    """`env`'s task and goals with MuJoCo's physics. Closing it closes `env`."""

    def __init__(self, env: ArmEnv, motor: str = "constraint"):
        if env.config.task not in TASKS_IN_MUJOCO:
            raise UserError(f"task {env.config.task} is not supported in MuJoCo yet (only "
                            f"{', '.join(TASKS_IN_MUJOCO)}): its goal is read from PyBullet's state")
        self.pybullet = env
        self.arm = MujocoArm(env.robot, env.speeds.clamp, motor)
        self.task = env.task
        self.config = env.config
        self.action_space, self.observation_space = env.action_space, env.observation_space
        self.contact_pairs: ContactPairs | None = None
        self._contact_geoms: tuple | None = None

    @property
    def notes(self) -> list[str]:
        """What MuJoCo left out of the arm (`MujocoArm.notes`)."""
        return self.arm.notes

    def watch_contacts(self) -> ContactPairs:
        """Check every step for self-contacts and floor contacts (as `ArmEnv.watch_contacts`)."""
        if self.contact_pairs is None:
            self.contact_pairs = self.pybullet.watch_contacts()
            self._contact_geoms = self.arm.contact_geoms(self.contact_pairs)
        return self.contact_pairs

    def _observe(self) -> np.ndarray:
        arm = self.arm
        q, velocities = arm.joint_state()
        ee = arm.ee_position()
        return self.pybullet.observation(q, velocities, ee, lambda: arm.ee_jacobian_products(ee),
                                         lambda: self.pybullet.clearance_at(q))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        _, info = self.pybullet.reset(seed=seed, options=options)  # the goal, sampled in PyBullet
        self.arm.reset(self.pybullet.robot.home)
        return self._observe(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        env, arm = self.pybullet, self.arm
        action, targets = env.begin_step(action)
        arm.command(targets)
        for _ in range(self.config.substeps):
            arm.step()
            self.task.after_substep()
        obs = self._observe()
        contacts = arm.contacts_now(*self._contact_geoms) if self._contact_geoms is not None else None
        return env.end_step(action, obs, contacts)

    def close(self) -> None:
        self.pybullet.close()


def in_simulator(env: ArmEnv, sim: str, motor: str = "constraint") -> gymnasium.Env:
    """`env` itself for PyBullet, or its twin in MuJoCo with motor model `motor` (which closes `env` when closed)."""
    if sim not in SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(SIMULATORS)}, not {sim!r:.40}")
    return env if sim == "pybullet" else MujocoArmEnv(env, motor)
