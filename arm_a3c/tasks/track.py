"""`track` (`ArmTrack-v0`): keep the end-effector point on a target that moves along a smooth random path.

Path: forward kinematics of a smooth joint-space curve, q(t) = q_a + (q_b - q_a) (1 - cos(pi t / T)) / 2 over the
episode's T steps, from a random configuration q_a to a nearby one q_b. Each joint's peak speed on the curve is at
most `track_speed_fraction` of its largest step, so an arm that is on the path can follow it; every point of the
path is reachable by construction, above the floor with every moving link above it too. The arm starts at home
and must first catch the target: q_a lies within CATCH_FRACTION of what each joint can travel in the first half
of the episode from home (a target behind the base of an arm that needs all its time to turn round would make
the task unfair, not harder).

Observation (9 floats): target position (3, m), target minus end-effector point (3, m), target velocity (3, m/s).
Reward: minus the distance (m), minus the action cost, plus `success_bonus` on every step within
`success_radius_m`. Success: the mean distance over the episode's second half (steps after T/2) is below
`success_radius_m`; `tracking_distance_m` is that mean.
"""

from __future__ import annotations

import math

import numpy as np

from arm_a3c.tasks.base import Polyline, Setting, Sphere, Task, sample_configuration

PATH_TRIES = 50  # end configurations tried for a path whose every point is valid
PATH_CHECKS = 8  # points along a candidate path checked for the floor
CATCH_FRACTION = 0.5  # of the joint travel possible in the first half: how far from home the path may start


class TrackTask(Task):
    name = "track"
    gym_id = "ArmTrack-v0"
    summary = "follow a target moving along a smooth path (mean distance over the second half < 5 cm)"
    metrics = {"final_distance_m": "distance", "tracking_distance_m": "tracking_distance_m"}
    settings = (
        Setting("track_speed_fraction", 0.3, "track: the target's joints move at most this fraction of a joint step",
                lambda v: 0 < v <= 1, "in (0, 1]"),
    )

    def __init__(self, env):
        super().__init__(env)
        cfg = self.config
        self.steps = cfg.episode_steps
        steps = np.array(env.max_joint_step)
        # cosine easing: peak speed pi/2 * span / T per step
        self.max_span = 2.0 * self.steps * cfg.track_speed_fraction * steps / math.pi
        catch = CATCH_FRACTION * (self.steps / 2) * steps
        home = self.robot.home
        self.start_low = np.maximum(self.robot.lower, home - catch)
        self.start_high = np.minimum(self.robot.upper, home + catch)
        self.path = np.zeros((self.steps + 1, 3))
        self._step, self._velocity = 0, [0.0, 0.0, 0.0]
        self._second_half_sum, self._second_half_n = 0.0, 0

    def _valid(self, q: np.ndarray) -> bool:
        point = self.robot.forward_kinematics(q)
        return (point[2] >= self.config.min_target_height_m and self.robot.lowest_point() >= 0.0
                and (self.contact_free is None or self.contact_free()))

    def reset(self, rng: np.random.Generator, options: dict | None) -> None:
        robot, cfg = self.robot, self.config
        q_a, _ = sample_configuration(robot, rng, cfg.min_target_height_m, self.min_target_radius_m,
                                      low=self.start_low, high=self.start_high, free=self.contact_free)
        ease = (1.0 - np.cos(np.pi * np.arange(self.steps + 1) / self.steps)) / 2.0
        q_b = q_a
        for _ in range(PATH_TRIES):
            candidate = np.clip(q_a + rng.uniform(-self.max_span, self.max_span), robot.lower, robot.upper)
            checks = np.linspace(0.0, 1.0, PATH_CHECKS)[1:]
            if all(self._valid(q_a + (candidate - q_a) * c) for c in checks):
                q_b = candidate
                break
        self.path = np.array([robot.forward_kinematics(q_a + (q_b - q_a) * e) for e in ease])
        self._step = 0
        self._second_half_sum, self._second_half_n = 0.0, 0
        self._move_to(0)

    def _move_to(self, step: int) -> None:
        self._step = step
        self.set_target(self.path[step])
        ahead = self.path[min(step + 1, self.steps)] - self.path[step]
        self._velocity = (ahead * self.env.config.control_hz).tolist()

    @property
    def next_target(self) -> np.ndarray:
        """Where the target will be after the next step (the oracle aims there)."""
        return self.path[min(self._step + 1, self.steps)]

    def advance(self, step: int) -> None:
        self._move_to(min(step, self.steps))

    def observation_parts(self) -> list[tuple[str, int, str]]:
        return super().observation_parts() + [("target_velocity_m_per_s", 3, "the moving target's velocity")]

    def observe(self, ee: list[float]) -> list[float]:
        return self.observe_target(ee) + self._velocity

    def judge(self, action: list[float], step: int) -> tuple[float, bool, dict]:
        cfg, d = self.config, self._distance
        if step > self.steps // 2:
            self._second_half_sum += d
            self._second_half_n += 1
        tracking = self._second_half_sum / self._second_half_n if self._second_half_n else d
        reward = -d - self.action_penalty(action) + (cfg.success_bonus if d < cfg.success_radius_m else 0.0)
        success = self._second_half_n > 0 and tracking < cfg.success_radius_m
        return reward, False, {"is_success": success, "distance": d, "tracking_distance_m": tracking}

    def shapes(self, draw: np.ndarray, index: int, ee: np.ndarray) -> list:
        return [Polyline(draw[:, :3]), Sphere(draw[index, :3], self.config.success_radius_m)]

    def hud(self, draw: np.ndarray, index: int, ee: np.ndarray) -> str:
        scored = "scored (second half)" if index + 1 > self.steps // 2 else "catching up (first half)"
        return f"distance {float(np.linalg.norm(ee - draw[index, :3])):.3f} m   {scored}"
