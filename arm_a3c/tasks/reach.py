"""`reach` (`ArmReach-v0`): put the end-effector point within `success_radius_m` of a target and stay there.

Target: the end-effector point of a random configuration whose moving links all stay above the floor, at least
`min_target_height_m` high and `min_target_radius_fraction` of the reach off the base's axis (reachable by
construction). Observation: the target (3, m) and target minus end-effector point (3, m). Reward: minus the
distance (m), minus `action_cost` times the mean squared action, plus `success_bonus` on every step inside the
radius. No terminal state; success is judged on the last step.
"""

from __future__ import annotations

import math

import numpy as np

from arm_a3c.sim.render import add_marker, move_marker
from arm_a3c.tasks.base import Task, sample_configuration

TARGET_RGBA = (0.1, 0.85, 0.2, 0.9)


class ReachTask(Task):
    name = "reach"
    gym_id = "ArmReach-v0"
    summary = "put the end effector within 5 cm of a random target and hold it there"
    placeable = True

    def __init__(self, env):
        super().__init__(env)
        cfg = self.config
        self.obs_size = 6
        self.min_target_radius_m = cfg.min_target_radius_fraction * env.reach_m
        self.marker = add_marker(env.client, cfg.success_radius_m, TARGET_RGBA)
        self.markers = [self.marker]
        self._target_list = [0.0, 0.0, 0.0]
        self._distance = 0.0

    def sample_target(self, rng: np.random.Generator) -> np.ndarray:
        """A reachable target (3,) m. Moves the arm: the caller resets it afterwards."""
        return sample_configuration(self.robot, rng, self.config.min_target_height_m, self.min_target_radius_m)[1]

    def reset(self, rng: np.random.Generator, options: dict | None) -> None:
        target = self.sample_target(rng)  # sampled even when options place it: the seed's stream stays the same
        if options and options.get("target") is not None:
            target = np.asarray(options["target"], dtype=np.float64)
            if target.shape != (3,) or not np.isfinite(target).all():
                raise ValueError(f"options['target'] must be 3 finite numbers (m), not {options['target']!r}")
        self.set_target(target)

    def set_target(self, target: np.ndarray) -> None:
        super().set_target(target)
        self._target_list = self.target.tolist()
        move_marker(self.env.client, self.marker, self.target)

    def observe(self, ee: list[float]) -> list[float]:
        # Plain lists: this runs on every step, and for 3-vectors numpy costs more than the arithmetic.
        tx, ty, tz = self._target_list
        to_target = [tx - ee[0], ty - ee[1], tz - ee[2]]
        self._distance = math.sqrt(to_target[0] ** 2 + to_target[1] ** 2 + to_target[2] ** 2)
        return self._target_list + to_target

    def draw_data(self) -> list[float]:
        return self._target_list

    def reward(self, distance_m: float, action: list[float]) -> float:
        bonus = self.config.success_bonus if distance_m < self.config.success_radius_m else 0.0
        return -distance_m - self.config.action_cost * sum(a * a for a in action) / len(action) + bonus

    def judge(self, action: list[float], step: int) -> tuple[float, bool, dict]:
        d = self._distance
        return self.reward(d, action), False, {"is_success": d < self.config.success_radius_m, "distance": d}
