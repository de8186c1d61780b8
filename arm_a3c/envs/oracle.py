"""A scripted reacher that uses PyBullet's inverse kinematics (no learning). It proves the task solvable: if
this oracle cannot reach a target in time, no policy can be expected to."""

from __future__ import annotations

import numpy as np

from arm_a3c.envs.arm_env import ArmReachEnv
from arm_a3c.envs.episodes import run_episodes
from arm_a3c.sim.client import pybullet as pb

IK_ITERATIONS = 100
IK_RESIDUAL_M = 1e-4


class IKReacher:
    """Closed-loop: every step, solve IK for the target from the current pose and step toward it."""

    def __init__(self, env: ArmReachEnv):
        self.env = env
        robot = env.robot
        movable = robot.joints  # every movable joint, by joint index: the order of PyBullet's IK solution
        self._dof_of_controlled = [movable.index(j) for j in robot.controlled]
        self._ik_limits = dict(
            lowerLimits=[j.lower for j in movable], upperLimits=[j.upper for j in movable],
            jointRanges=[j.upper - j.lower for j in movable], restPoses=[j.rest for j in movable],
        )

    def act(self) -> np.ndarray:
        env, robot = self.env, self.env.robot
        solution = pb.calculateInverseKinematics(
            robot.body, robot.ee_link, env.target.tolist(), maxNumIterations=IK_ITERATIONS,
            residualThreshold=IK_RESIDUAL_M, physicsClientId=env.client, **self._ik_limits,
        )
        q_goal = np.clip(np.asarray(solution)[self._dof_of_controlled], robot.lower, robot.upper)
        q_now, _ = robot.joint_state()
        return np.clip((q_goal - q_now) / np.asarray(env.max_joint_step), -1.0, 1.0)


def oracle_success_rate(env: ArmReachEnv, episodes: int, seed: int = 0) -> tuple[float, float]:
    """(success rate, mean final distance in m) of the IK oracle over seeded episodes."""
    oracle = IKReacher(env)
    result = run_episodes(env, lambda obs: oracle.act(), episodes, seed)
    return result["success_rate"], result["mean_final_distance_m"]
