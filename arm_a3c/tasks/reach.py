"""The reach task: where the target goes, what the reward is, what success means. It asks the robot for
random configurations and forward kinematics, and knows nothing about which URDF is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from arm_a3c.errors import UserError
from arm_a3c.sim.robot import Robot

TARGET_SAMPLING_TRIES = 1000  # random configurations tried before giving up on a robot's workspace


@dataclass(frozen=True)
class ReachTask:
    success_radius_m: float  # end effector within this distance of the target counts as success
    min_target_height_m: float  # targets at least this high above the floor (the base sits on it)
    min_target_radius_m: float  # targets at least this far from the vertical axis through the base
    action_cost: float  # reward penalty per unit of mean squared action
    success_bonus: float  # reward added on every step spent within the success radius

    def sample_target(self, robot: Robot, rng: np.random.Generator) -> np.ndarray:
        """A reachable target (3,) m: the end-effector position of a random configuration whose moving links
        all stay above the floor. Moves the arm: the caller resets it afterwards."""
        for _ in range(TARGET_SAMPLING_TRIES):
            target = robot.forward_kinematics(robot.random_configuration(rng))
            off_axis = np.linalg.norm(target[:2] - robot.base_position[:2])
            if (target[2] >= self.min_target_height_m and off_axis >= self.min_target_radius_m
                    and robot.lowest_point() >= 0.0):
                return target
        raise UserError(
            f"robot '{robot.name}': no reachable point at least {self.min_target_height_m} m above the floor and "
            f"{self.min_target_radius_m:.2f} m from its base in {TARGET_SAMPLING_TRIES} random poses; "
            "check its joint limits and that its base sits on the floor at z = 0"
        )

    def reward(self, distance_m: float, action: Sequence[float]) -> float:
        """Dense reward: minus the distance in metres, minus a small action cost (mean squared action in
        [-1, 1]), plus a bonus inside the success radius."""
        bonus = self.success_bonus if distance_m < self.success_radius_m else 0.0
        return -distance_m - self.action_cost * sum(a * a for a in action) / len(action) + bonus

    def is_success(self, distance_m: float) -> bool:
        return distance_m < self.success_radius_m
