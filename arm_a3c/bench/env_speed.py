"""Environment speed: `ArmReachEnv` steps per second beside the raw physics rate of the same robot.

"Raw" replays, in the same client, exactly the motion the environment produced: per control step one bare
`setJointMotorControlArray` call with the recorded motor targets and the same number of `stepSimulation` calls,
with no observation, action mapping, reward or target sampling. (A motionless arm is not a fair baseline: the
solver converges early when nothing moves, so its physics is about half as expensive.) Rounds alternate raw and
env so that both see the same machine load; the ratio is the median of the rounds' ratios.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np

from arm_a3c.envs.arm_env import ArmEnv, make_env
from arm_a3c.sim.client import pybullet as pb


@dataclass(frozen=True)
class EnvSpeed:
    robot: str
    env_steps_per_s: float  # control steps per second through reset/step with random actions
    raw_steps_per_s: float  # the same motion, bare motor commands and stepSimulation calls only
    ratio: float  # env / raw, median over rounds (1.0 would mean no overhead at all)
    substeps: int  # physics steps per control step

    def as_dict(self) -> dict:
        return asdict(self)


def _run_env(env: ArmEnv, actions: np.ndarray, seed: int) -> tuple[float, list[list[float] | None]]:
    """Time `len(actions)` env steps; also return the motor targets sent (None marks an episode start)."""
    commands: list[list[float] | None] = []
    start = time.perf_counter()
    env.reset(seed=seed)
    commands.append(None)
    for action in actions:
        truncated = env.step(action)[3]
        commands.append(env.robot.q_target)
        if truncated:
            env.reset()
            commands.append(None)
    return time.perf_counter() - start, commands


def _run_raw(env: ArmEnv, commands: list[list[float] | None]) -> float:
    robot, client, substeps = env.robot, env.client, env.config.substeps
    home = robot.home
    start = time.perf_counter()
    for q_target in commands:
        if q_target is None:
            robot.reset(home)
            continue
        robot.send_motor_targets(q_target)
        for _ in range(substeps):
            pb.stepSimulation(physicsClientId=client)
    return time.perf_counter() - start


def measure_env_speed(robot: str, steps: int = 3000, rounds: int = 5, seed: int = 0) -> EnvSpeed:
    """Steps per second of the environment and of raw physics for one robot, over `rounds` alternations."""
    env = make_env(robot=robot)
    try:
        actions = np.random.default_rng(seed).uniform(-1.0, 1.0, (steps, env.robot.dof)).astype(np.float32)
        env_times, raw_times = [], []
        for r in range(rounds):
            env_time, commands = _run_env(env, actions, seed + r)
            env_times.append(env_time)
            raw_times.append(_run_raw(env, commands))
        return EnvSpeed(
            robot=env.robot.name,
            env_steps_per_s=steps / statistics.median(env_times),
            raw_steps_per_s=steps / statistics.median(raw_times),
            ratio=statistics.median(raw / t for raw, t in zip(raw_times, env_times)),
            substeps=env.config.substeps,
        )
    finally:
        env.close()
