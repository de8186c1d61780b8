"""`ArmReach-v0`: a gymnasium environment that composes a PyBullet client, a `Robot` and a `ReachTask`.

Control: each action in [-1, 1] per controlled joint moves that joint's position target by at most
`max_joint_step_rad` (or `max_joint_step_m` for prismatic joints) from where the joint is now; the motors then
track it for `substeps` physics steps of 1/240 s. With the defaults that is 24 control steps per second (as
panda-gym's 25) and episodes of 50 steps, 2.08 seconds. Episodes end only by the time limit, reported as `truncated=True` (the task itself has no
terminal state), and success is judged at the end: the end effector within `success_radius_m` of the target.

Observation (float32): controlled-joint positions scaled to [-1, 1] by their limits (dof), joint velocities
in rad/s or m/s (dof), end-effector point (3, m: the link's origin or its tool point), target position (3, m),
target minus end-effector point (3, m). Every episode starts at the robot's home pose (`Robot.home`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import gymnasium
import numpy as np

from arm_a3c.sim.assets import resolve_robot
from arm_a3c.sim.client import PHYSICS_HZ, connect, disconnect, load_floor
from arm_a3c.sim.client import pybullet as pb
from arm_a3c.sim.render import Camera, add_marker, move_marker, render_rgb
from arm_a3c.sim.robot import Robot
from arm_a3c.tasks.reach import ReachTask

WORKSPACE_SAMPLES = 2000  # random configurations used to estimate the reach and workspace
TARGET_RGBA = (0.1, 0.85, 0.2, 0.9)


@dataclass(frozen=True)
class EnvConfig:
    substeps: int = 10  # physics steps of 1/240 s per control step (10 -> 24 Hz control)
    episode_steps: int = 50  # control steps per episode (50 at 24 Hz -> 2.08 s)
    max_joint_step_rad: float = 0.1  # largest position-target change per control step, revolute joints
    max_joint_step_m: float = 0.02  # the same for prismatic joints
    success_radius_m: float = 0.05  # success: end effector this close to the target at the episode's end
    min_target_height_m: float = 0.05  # targets at least this high above the floor
    min_target_radius_fraction: float = 0.15  # targets at least this fraction of the reach from the base axis
    action_cost: float = 1.0  # reward penalty per unit of mean squared action
    success_bonus: float = 1.0  # reward added on each step within the success radius

    @property
    def control_hz(self) -> float:
        return PHYSICS_HZ / self.substeps


class ArmReachEnv(gymnasium.Env):
    """Reach a random target with the end effector of any fixed-base URDF arm."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": EnvConfig().control_hz}

    def __init__(self, robot: str | Path | None = None, ee_link: str | None = None,
                 config: EnvConfig | None = None, render_mode: str | None = None,
                 render_size: tuple[int, int] = (320, 240), *, home: object = None, ee_offset_m: object = None):
        """`robot`: a name in assets/ or a URDF path (None: the default). `ee_link`, `home` (numbers, one per
        controlled joint, or "auto" or "zero") and `ee_offset_m` (x, y, z in the end-effector link's frame)
        override the robot's settings file; None keeps it."""
        self.config = config or EnvConfig()
        self.render_mode = render_mode
        self.render_size = render_size
        self.metadata = {**self.metadata, "render_fps": self.config.control_hz}
        self.client = connect()
        try:
            self.floor = load_floor(self.client)
            self.robot = Robot(self.client, resolve_robot(robot, ee_link, home=home, ee_offset_m=ee_offset_m))
        except BaseException:
            disconnect(self.client)
            raise
        workspace = self.robot.workspace_samples(np.random.default_rng(0), WORKSPACE_SAMPLES)
        self.workspace_min, self.workspace_max = workspace.min(axis=0), workspace.max(axis=0)
        self.reach_m = float(np.max(np.linalg.norm(workspace - self.robot.base_position, axis=1)))
        cfg = self.config
        self.task = ReachTask(
            success_radius_m=cfg.success_radius_m, min_target_height_m=cfg.min_target_height_m,
            min_target_radius_m=cfg.min_target_radius_fraction * self.reach_m,
            action_cost=cfg.action_cost, success_bonus=cfg.success_bonus,
        )
        self.marker = add_marker(self.client, cfg.success_radius_m, TARGET_RGBA)
        self.camera = Camera(
            look_at=tuple(float(v) for v in (self.robot.base_position + [0.0, 0.0, 0.4 * self.reach_m])),
            distance=2.0 * self.reach_m, pitch=-20.0,
        )

        dof = self.robot.dof
        self.max_joint_step = [
            cfg.max_joint_step_m if j.type == "prismatic" else cfg.max_joint_step_rad for j in self.robot.controlled
        ]
        self._q_mid = ((self.robot.upper + self.robot.lower) / 2).tolist()
        self._q_inv_half = (2.0 / (self.robot.upper - self.robot.lower)).tolist()
        self.obs_dim = 2 * dof + 9
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (dof,), np.float32)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)
        self.target = np.zeros(3)
        self._target_list = [0.0, 0.0, 0.0]
        self._q = self.robot.home.tolist()
        self._steps = 0
        # The solver warm-starts from the previous step; restoring this snapshot on reset makes an episode
        # depend only on its seed, not on the episodes before it.
        self._home_state = pb.saveState(physicsClientId=self.client)

    @classmethod
    def from_settings(cls, settings: object, **kwargs) -> "ArmReachEnv":
        """The environment for anything with `robot`, `ee_link`, `home` and `ee_offset_m` attributes, and any of
        `EnvConfig`'s fields (a `TrainConfig`, parsed command-line arguments); a missing attribute means the
        robot's own setting or `EnvConfig`'s default."""
        if "config" not in kwargs:
            fields = {f.name: getattr(settings, f.name) for f in dataclasses.fields(EnvConfig)
                      if getattr(settings, f.name, None) is not None}
            kwargs["config"] = EnvConfig(**fields)
        return cls(getattr(settings, "robot", None), ee_link=getattr(settings, "ee_link", None),
                   home=getattr(settings, "home", None), ee_offset_m=getattr(settings, "ee_offset_m", None),
                   **kwargs)

    def _observe(self) -> tuple[np.ndarray, float]:
        """The observation and the end-effector-to-target distance (m). This runs on every step: for vectors
        of a few elements, Python lists and one final conversion are cheaper than numpy operations (about a
        microsecond each), which keeps the environment's cost close to the physics'."""
        robot = self.robot
        states = pb.getJointStates(robot.body, robot.ctrl_index, physicsClientId=self.client)
        q = [s[0] for s in states]
        ee = robot.ee_position().tolist()
        tx, ty, tz = self._target_list
        to_target = [tx - ee[0], ty - ee[1], tz - ee[2]]
        scaled_q = [(qi - mid) * inv for qi, mid, inv in zip(q, self._q_mid, self._q_inv_half)]
        obs = np.array(scaled_q + [s[1] for s in states] + ee + self._target_list + to_target, dtype=np.float32)
        self._q = q
        return obs, math.sqrt(to_target[0] ** 2 + to_target[1] ** 2 + to_target[2] ** 2)

    def _info(self, distance: float) -> dict:
        return {"is_success": self.task.is_success(distance), "distance": distance}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """A new episode from the home pose. `options={"target": (x, y, z)}` (m) places its target there instead
        of at a sampled point (the viewer's click); the sampling still runs, so the seed's stream is the same."""
        super().reset(seed=seed)
        # Restore first: target sampling runs forward kinematics, and the joints it does not move (a held
        # flange, say) must be at their home values too, or the target differs in the 8th digit with history.
        pb.restoreState(stateId=self._home_state, physicsClientId=self.client)
        target = self.task.sample_target(self.robot, self.np_random)
        self.robot.reset(self.robot.home)
        if options and options.get("target") is not None:
            target = np.asarray(options["target"], dtype=np.float64)
            if target.shape != (3,) or not np.isfinite(target).all():
                raise ValueError(f"options['target'] must be 3 finite numbers (m), not {options['target']!r}")
        self.set_target(target)
        self._steps = 0
        obs, distance = self._observe()
        return obs, self._info(distance)

    @property
    def joint_positions(self) -> list[float]:
        """Controlled-joint positions (rad or m) as of the last observation."""
        return self._q

    def set_target(self, target: np.ndarray) -> None:
        """Move the current episode's target (3,) m, for scripted demos and the viewer."""
        self.target = np.array(target, dtype=np.float64)
        self._target_list = self.target.tolist()
        move_marker(self.client, self.marker, self.target)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = [min(max(a, -1.0), 1.0) for a in np.asarray(action, dtype=np.float64).tolist()]
        if any(a != a for a in action):  # NaN: it would poison the simulation state for good
            raise ValueError(f"action contains NaN: {action}")
        self.robot.command([q + a * step for q, a, step in zip(self._q, action, self.max_joint_step)])
        for _ in range(self.config.substeps):
            pb.stepSimulation(physicsClientId=self.client)
        self._steps += 1
        obs, distance = self._observe()
        truncated = self._steps >= self.config.episode_steps
        return obs, self.task.reward(distance, action), False, truncated, self._info(distance)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return render_rgb(self.client, self.camera, *self.render_size)

    def close(self) -> None:
        disconnect(self.client)
