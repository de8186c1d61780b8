"""The policy's arm as a kinematics engine: the environment the policy was trained in, rebuilt from its
description in PyBullet's DIRECT mode and never stepped. Each control period the robot's measured joint positions
are set on it (`resetJointState`: forward kinematics, no physics), and the environment's own code makes the
observation from them (`ArmEnv.observation`: the same layout, Jacobian parts and clearance part), so deploy's
observation is the environment's at the same state by construction. It also draws the goals as the environment
draws them, judges success as the task does, and checks a configuration for self-contact and floor contact with
the link pairs training checks.

What training randomised (latency, noise, dynamics) is left out: on a real arm those are the world's.
"""

from __future__ import annotations

import numpy as np

from arm_a3c.errors import UserError

# Training-time randomisation, off in the arm's model (the real arm has its own)
NOT_MODELLED = {"latency_steps": 0, "latency_jitter_steps": 0, "joint_noise": 0.0, "velocity_noise": 0.0,
                "goal_noise": 0.0, "mass_range": 0.0, "gain_range": 0.0, "damping_range": 0.0, "mass_scale": 1.0,
                "gain_scale": 1.0}
DEPLOYABLE_TASKS = ("reach", "pose", "track")


def modelled(environment: dict) -> dict:
    """A policy's environment settings (policy.json's) with training's randomisation off (`NOT_MODELLED`): the arm
    as deploy models it, simulates it (`transports.SimArm`) and replays it (`viewer.sources.DeployLogSource`)."""
    return {**environment, **{k: v for k, v in NOT_MODELLED.items() if k in environment}}  # avoid's obstacles are simulated bodies a real arm's world lacks


class ArmModel:
    """The policy's environment (`environment`: policy.json's settings) as the arm's model for deploy."""

    def __init__(self, environment: dict):
        from arm_a3c.envs.arm_env import make_env

        task = environment.get("task", "reach")
        if task not in DEPLOYABLE_TASKS:
            raise UserError(f"deploy runs policies of the tasks {', '.join(DEPLOYABLE_TASKS)}, not {task}: its "
                            f"obstacles are simulated bodies a real arm's world does not have")
        self.env = make_env(**modelled(environment))
        env, robot = self.env, self.env.robot
        self.robot = robot
        self.joint_names = [j.name for j in robot.controlled]
        self.lower, self.upper = robot.lower.tolist(), robot.upper.tolist()
        self.max_step = list(env.max_joint_step)  # per control period, rad or m
        self.control_hz = env.config.control_hz
        self.episode_steps = env.config.episode_steps
        self.home = robot.home.tolist()
        self.urdf_speed = [j.velocity or None for j in robot.controlled]  # rad/s or m/s; None: the URDF has none
        self.pairs = env.contact_pairs or env.watch_contacts()
        self._step = 0

    @property
    def dof(self) -> int:
        return self.robot.dof

    @property
    def obs_dim(self) -> int:
        return self.env.obs_dim

    def new_episode(self, seed: int | None = None, goal: list[float] | None = None) -> list[float]:
        """Start an episode: its goal drawn from `seed` as the environment draws it, or placed at `goal` (m); the
        goal (3,) m returned."""
        env = self.env
        if goal is not None:
            if not env.task.placeable:
                raise UserError(f"--goal places a goal of the reach task; a {env.config.task} policy's goals are "
                                f"drawn: use --episodes N --seed S")
            point = np.asarray(goal, dtype=np.float64)
            if np.linalg.norm(point - env.robot.base_position) > env.reach_m or point[2] < 0.0 or np.any(
                    point < env.workspace_min - 1e-9) or np.any(point > env.workspace_max + 1e-9):
                raise UserError(
                    f"--goal {' '.join(f'{v:g}' for v in goal)} is outside the arm's workspace (x "
                    f"{env.workspace_min[0]:+.2f}..{env.workspace_max[0]:+.2f}, y {env.workspace_min[1]:+.2f}.."
                    f"{env.workspace_max[1]:+.2f}, z {env.workspace_min[2]:+.2f}..{env.workspace_max[2]:+.2f} m, "
                    f"within {env.reach_m:.2f} m of the base); give a point the arm can reach")
        env.reset(seed=seed if seed is not None else 0, options={"target": goal} if goal is not None else None)
        self._step = 0
        return [float(v) for v in env.target]

    def observe(self, q: list[float], velocities: list[float]) -> np.ndarray:
        """The observation of the arm at `q` (rad or m) moving at `velocities`, as the environment makes it."""
        env, robot = self.env, self.robot
        robot.reset(q)
        ee = robot.ee_position().tolist()
        clearance = (lambda: env.clearance.measure(robot.movable_positions(q))) if env.clearance else None
        return env.observation(list(q), list(velocities), ee, lambda: robot.ee_jacobian_products(ee, q), clearance)

    def advance(self) -> None:
        """One control period on: a moving goal (track) moves, as the environment's step moves it."""
        self._step += 1
        self.env.task.advance(self._step)

    def command_for(self, q: list[float], action) -> list[float]:
        """The position targets an action gives at `q`, as the environment computes them (policy.json's
        `action_to_command`): each joint's present position plus its action in [-1, 1] times its step, within
        its limits."""
        return [min(max(qi + min(max(float(a), -1.0), 1.0) * step, lo), hi)
                for qi, a, step, lo, hi in zip(q, action, self.max_step, self.lower, self.upper)]

    def judge(self, action) -> dict:
        """The task's judgement of the last observation (`is_success`, the distance, ...)."""
        return self.env.task.judge([float(a) for a in action], self._step)[2]

    def contacts(self, q: list[float]) -> tuple[bool, bool]:
        """(a self-contact, a floor contact) of the arm at `q`, with the pairs training checks."""
        from arm_a3c.sim.contacts import contacts_now

        self.robot.reset(q)
        return contacts_now(self.robot, self.env.floor, self.pairs)

    def close(self) -> None:
        self.env.close()
