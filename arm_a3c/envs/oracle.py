"""A scripted reacher that uses PyBullet's inverse kinematics (no learning). It proves the task solvable: if
this oracle cannot reach a target in time, no policy can be expected to."""

from __future__ import annotations

import numpy as np

from arm_a3c.envs.arm_env import ArmReachEnv
from arm_a3c.envs.episodes import run_episodes
from arm_a3c.sim.client import pybullet as pb

IK_ITERATIONS = 100
IK_RESIDUAL_M = 1e-4
IK_STARTS = 8  # random start poses besides the present one
IK_REACHED_M = 0.01
IK_TOOL_ROUNDS = 3


class IKReacher:
    """Once per target, solve IK for a joint goal (several starts); every step, move toward it."""

    def __init__(self, env: ArmReachEnv):
        self.env = env
        robot = env.robot
        movable = robot.joints  # every movable joint, by joint index: the order of PyBullet's IK solution
        self._dof_of_controlled = [movable.index(j) for j in robot.controlled]
        self._goal, self._goal_for = np.zeros(robot.dof), None
        self._ik_limits = dict(
            lowerLimits=[j.lower for j in movable], upperLimits=[j.upper for j in movable],
            jointRanges=[j.upper - j.lower for j in movable], restPoses=[j.rest for j in movable],
        )

    def act(self) -> np.ndarray:
        env, robot = self.env, self.env.robot
        key = tuple(env.target.tolist())
        if key != self._goal_for:  # a new target: choose the joint goal once, then track it
            self._goal, self._goal_for = self._joint_goal(), key
        q_now, _ = robot.joint_state()
        return np.clip((self._goal - q_now) / np.asarray(env.max_joint_step), -1.0, 1.0)

    def _ik_from_here(self) -> np.ndarray:
        """PyBullet's IK from the arm's present pose, for the controlled joints, within their limits."""
        env, robot = self.env, self.env.robot
        # PyBullet's IK places the link's frame; with a tool point, aim the frame where it puts the point
        # given the link's present orientation, and repeat from the pose that gives.
        for _ in range(IK_TOOL_ROUNDS if robot.ee_offset.any() else 1):
            link_origin, _ = robot.ee_link_pose()
            solution = pb.calculateInverseKinematics(
                robot.body, robot.ee_link, (env.target - (robot.ee_position() - link_origin)).tolist(),
                maxNumIterations=IK_ITERATIONS, residualThreshold=IK_RESIDUAL_M, physicsClientId=env.client,
                **self._ik_limits,
            )
            goal = np.clip(np.asarray(solution)[self._dof_of_controlled], robot.lower, robot.upper)
            robot.forward_kinematics(goal)
        return goal

    def _joint_goal(self) -> np.ndarray:
        """The controlled-joint goal for the present target: IK from the present pose and from IK_STARTS seeded
        random poses (local IK alone cannot turn the base round to a target behind the arm); the goal that reaches
        the target and needs the fewest control steps from here wins."""
        env, robot = self.env, self.env.robot
        saved = [pb.getJointState(robot.body, j.index, physicsClientId=env.client)[:2] for j in robot.joints]
        q_now = np.array([saved[robot.joints.index(j)][0] for j in robot.controlled])
        rng = np.random.default_rng(0)
        best, best_cost = q_now, (True, np.inf)
        for start in [q_now] + [robot.random_configuration(rng) for _ in range(IK_STARTS)]:
            robot.forward_kinematics(start)
            goal = self._ik_from_here()
            misses = bool(np.linalg.norm(robot.forward_kinematics(goal) - env.target) > IK_REACHED_M)
            cost = (misses, float(np.max(np.abs(goal - q_now) / np.asarray(env.max_joint_step))))
            if cost < best_cost:
                best, best_cost = goal, cost
        for j, (position, velocity) in zip(robot.joints, saved):
            pb.resetJointState(robot.body, j.index, position, velocity, physicsClientId=env.client)
        return best


def oracle_success_rate(env: ArmReachEnv, episodes: int, seed: int = 0) -> tuple[float, float]:
    """(success rate, mean final distance in m) of the IK oracle over seeded episodes."""
    oracle = IKReacher(env)
    result = run_episodes(env, lambda obs: oracle.act(), episodes, seed)
    return result["success_rate"], result["mean_final_distance_m"]
