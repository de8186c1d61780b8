"""`reach` (`ArmReach-v0`): put the end-effector point within `success_radius_m` of a target and stay there.

Target: the end-effector point of a random configuration whose moving links all stay above the floor, at least
`min_target_height_m` high and `min_target_radius_fraction` of the reach off the base's axis (reachable by
construction; a slow joint's position within what an episode's travel reaches from home: `Task.goal_low`).
Observation: the target (3, m) and target minus end-effector point (3, m) (then the environment's Jacobian part,
J^T times that difference: see `Task.jacobian_parts`). Reward: minus the distance (m), minus `action_cost` times
the mean squared action, plus `success_bonus` on every step inside the radius. No terminal state; success is
judged on the last step.
"""

from __future__ import annotations

import numpy as np

from arm_a3c.tasks.base import Task, goal_position


class ReachTask(Task):
    name = "reach"
    gym_id = "ArmReach-v0"
    summary = "put the end effector within 5 cm of a random target and hold it there"
    placeable = True

    def __init__(self, env):
        super().__init__(env)

    def sample_target(self, rng: np.random.Generator) -> np.ndarray:
        """A reachable target (3,) m. Moves the arm: the caller resets it afterwards."""
        return self.sample_goal(rng)[1]

    def reset(self, rng: np.random.Generator, options: dict | None) -> None:
        target = self.sample_target(rng)  # sampled even when options place it: the seed's stream stays the same
        if options and options.get("target") is not None:
            target = goal_position(options["target"], "options['target']")
        self.set_target(target)

    def observe(self, ee: list[float]) -> list[float]:
        return self.observe_target(ee)

    def reward(self, distance_m: float, action: list[float]) -> float:
        bonus = self.config.success_bonus if distance_m < self.config.success_radius_m else 0.0
        return -distance_m - self.action_penalty(action) + bonus

    def judge(self, action: list[float], step: int) -> tuple[float, bool, dict]:
        d = self._distance
        return self.reward(d, action), False, {"is_success": d < self.config.success_radius_m, "distance": d}
