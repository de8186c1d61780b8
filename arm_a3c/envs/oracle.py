"""A scripted reacher that uses PyBullet's inverse kinematics (no learning). It proves a task solvable: if
this oracle cannot reach a goal in time, no policy can be expected to. It aims at the task's `target` (m), and
at its `target_orientation` (a quaternion) too where the task has one (pose)."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from arm_a3c.envs.arm_env import ArmEnv
from arm_a3c.envs.episodes import run_episodes
from arm_a3c.sim.client import pybullet as pb
from arm_a3c.sim.robot import quaternion_angle
from arm_a3c.tasks.push import AXES

IK_ITERATIONS = 100
IK_RESIDUAL_M = 1e-4
IK_STARTS = 8  # random start poses besides the present one
IK_REACHED_M = 0.01
IK_TOOL_ROUNDS = 3
IK_FOLLOW_M = 0.1  # a target that moved less than this since the last goal is followed from the present pose
IK_REACHED_RAD = 0.03
VIA_CHECKS = 16  # configurations checked along each straight joint-space segment
VIA_CLEARANCE_M = 0.02  # a checked segment keeps this far from every obstacle
VIA_DISTANCES = (1.5, 2.5)  # via-points this many obstacle radii (plus VIA_MARGIN_M) from its centre
VIA_MARGIN_M = 0.05
VIA_REACHED_M = 0.03  # IK must put the end-effector point this close to a via-point
VIA_PASSED_STEPS = 0.5  # a via-point counts as passed within this many joint steps
VIA_RANDOM = 200  # seeded random configurations tried as via-points after the Cartesian ones
VIA_SPARE_STEPS = 5  # a plan must leave this many of the episode's steps for the motors to settle  # with an orientation goal: the solution's orientation error must be below this too


class IKReacher:
    """Once per target, solve IK for a joint goal (several starts); every step, move toward it. A target that
    moves (track) is followed: each step, IK from the present pose to where it will be next."""

    def __init__(self, env: ArmEnv):
        self.env = env
        robot = env.robot
        movable = robot.joints  # every movable joint, by joint index: the order of PyBullet's IK solution
        self._dof_of_controlled = [movable.index(j) for j in robot.controlled]
        self._goal, self._goal_for = np.zeros(robot.dof), None
        self._aim = np.zeros(3)
        self._ik_limits = dict(
            lowerLimits=[j.lower for j in movable], upperLimits=[j.upper for j in movable],
            jointRanges=[j.upper - j.lower for j in movable], restPoses=[j.rest for j in movable],
        )

    def act(self) -> np.ndarray:
        env, robot = self.env, self.env.robot
        orientation = env.task.target_orientation
        # A moving target (track): aim where it will be after this step.
        self._aim = np.asarray(env.task.next_target, dtype=np.float64)
        key = tuple(self._aim.tolist()) + tuple(orientation or ())
        if key != self._goal_for:
            last = np.asarray(self._goal_for[:3]) if self._goal_for is not None else None
            if last is not None and np.linalg.norm(self._aim - last) < IK_FOLLOW_M:  # moved a little: follow it
                self._goal = self._follow()
            else:  # a new target: choose the joint goal once (several starts), then track it
                self._goal = self._joint_goal()
            self._goal_for = key
        q_now, _ = robot.joint_state()
        return np.clip((self._goal - q_now) / np.asarray(env.max_joint_step), -1.0, 1.0)

    def _ik_from_here(self) -> np.ndarray:
        """PyBullet's IK from the arm's present pose, for the controlled joints, within their limits."""
        env, robot = self.env, self.env.robot
        orientation = env.task.target_orientation
        if orientation is not None:  # the link's frame goes where the goal's orientation puts the tool point
            rotation = np.array(pb.getMatrixFromQuaternion(orientation)).reshape(3, 3)
            solution = pb.calculateInverseKinematics(
                robot.body, robot.ee_link, (self._aim - rotation @ robot.ee_offset).tolist(), list(orientation),
                maxNumIterations=IK_ITERATIONS, residualThreshold=IK_RESIDUAL_M, physicsClientId=env.client,
                **self._ik_limits,
            )
            goal = np.clip(np.asarray(solution)[self._dof_of_controlled], robot.lower, robot.upper)
            robot.forward_kinematics(goal)
            return goal
        # PyBullet's IK places the link's frame; with a tool point, aim the frame where it puts the point
        # given the link's present orientation, and repeat from the pose that gives.
        for _ in range(IK_TOOL_ROUNDS if robot.ee_offset.any() else 1):
            link_origin, _ = robot.ee_link_pose()
            solution = pb.calculateInverseKinematics(
                robot.body, robot.ee_link, (self._aim - (robot.ee_position() - link_origin)).tolist(),
                maxNumIterations=IK_ITERATIONS, residualThreshold=IK_RESIDUAL_M, physicsClientId=env.client,
                **self._ik_limits,
            )
            goal = np.clip(np.asarray(solution)[self._dof_of_controlled], robot.lower, robot.upper)
            robot.forward_kinematics(goal)
        return goal

    def _nearest_turn(self, goal: np.ndarray, q_now: np.ndarray) -> np.ndarray:
        """The same pose with each revolute joint whose range exceeds a full turn turned by whole turns to the
        value nearest to where it is now (a wrist with +-2 pi limits need not unwind)."""
        robot, goal = self.env.robot, goal.copy()
        for k, joint in enumerate(robot.controlled):
            if joint.type == "revolute" and joint.upper - joint.lower > 2 * np.pi:
                turns = np.round((q_now[k] - goal[k]) / (2 * np.pi))
                for n in (turns, turns - np.sign(turns)):
                    if robot.lower[k] <= goal[k] + 2 * np.pi * n <= robot.upper[k]:
                        goal[k] += 2 * np.pi * n
                        break
        return goal

    @contextmanager
    def _arm_kept(self) -> Iterator[np.ndarray]:
        """Search with the arm (IK and forward kinematics move it), then put every movable joint back where it
        was, velocities too; yields the controlled joints' present positions."""
        robot, client = self.env.robot, self.env.client
        saved = [pb.getJointState(robot.body, j.index, physicsClientId=client)[:2] for j in robot.joints]
        try:
            yield np.array([saved[robot.joints.index(j)][0] for j in robot.controlled])
        finally:
            for j, (position, velocity) in zip(robot.joints, saved):
                pb.resetJointState(robot.body, j.index, position, velocity, physicsClientId=client)

    def _steps(self, q_a: np.ndarray, q_b: np.ndarray) -> float:
        """Control steps from q_a to q_b at full speed (the slowest joint's)."""
        return float(np.max(np.abs(q_b - q_a) / np.asarray(self.env.max_joint_step)))

    def _follow(self) -> np.ndarray:
        """The joint goal for a target that moved a little: IK from the arm's present pose only (restarts could
        jump to another branch mid-path)."""
        with self._arm_kept() as q_now:
            return self._nearest_turn(self._ik_from_here(), q_now)

    def _joint_goal(self) -> np.ndarray:
        """The controlled-joint goal for the present target: IK from the present pose and from IK_STARTS seeded
        random poses (local IK alone cannot turn the base round to a target behind the arm); the goal that reaches
        the target and needs the fewest control steps from here wins."""
        env, robot = self.env, self.env.robot
        orientation = env.task.target_orientation
        with self._arm_kept() as q_now:
            rng = np.random.default_rng(0)
            best, best_cost = q_now, (True, np.inf)
            starts = [q_now] + [robot.random_configuration(rng) for _ in range(IK_STARTS)]
            sampled_from = env.task.goal_configuration  # the configuration the goal came from
            if sampled_from is not None:
                starts.append(np.asarray(sampled_from))
            for start in starts:
                robot.forward_kinematics(start)
                goal = self._nearest_turn(self._ik_from_here(), q_now)
                misses = bool(np.linalg.norm(robot.forward_kinematics(goal) - self._aim) > IK_REACHED_M)
                if orientation is not None:
                    misses = misses or quaternion_angle(orientation, robot.ee_link_pose()[1]) > IK_REACHED_RAD
                cost = (misses, self._steps(q_now, goal))
                if cost < best_cost:
                    best, best_cost = goal, cost
        return best


class ViaPointReacher(IKReacher):
    """For a task with obstacles (avoid): the IK goal, reached along a straight line in joint space that is checked
    against the obstacles, or through a via-point beside, above or below an obstacle when the straight motion would
    touch it (the first via-point whose two straight segments are both free wins)."""

    def __init__(self, env: ArmEnv):
        super().__init__(env)
        self._plan: list[np.ndarray] = []
        self._plan_for: tuple | None = None

    def act(self) -> np.ndarray:
        env, robot = self.env, self.env.robot
        key = tuple(env.target.tolist())
        if key != self._plan_for:
            self._plan, self._plan_for = self._make_plan(), key
        q_now, _ = robot.joint_state()
        step = np.asarray(env.max_joint_step)
        while len(self._plan) > 1 and np.max(np.abs(self._plan[0] - q_now) / step) < VIA_PASSED_STEPS:
            self._plan.pop(0)
        delta = (self._plan[0] - q_now) / step
        return delta / max(1.0, float(np.max(np.abs(delta))))  # all joints arrive together: the checked line

    def _free(self, q_a: np.ndarray, q_b: np.ndarray) -> bool:
        """Whether the straight joint-space segment from q_a to q_b keeps VIA_CLEARANCE_M from every obstacle."""
        robot, client = self.env.robot, self.env.client
        for s in np.linspace(0.0, 1.0, VIA_CHECKS):
            robot.forward_kinematics(q_a + s * (q_b - q_a))
            if any(pb.getClosestPoints(robot.body, body, VIA_CLEARANCE_M, physicsClientId=client)
                   for body in self.env.task.obstacle_bodies):
                return False
        return True

    def _via_points(self) -> list[np.ndarray]:
        """Points beside each obstacle, off the line from the end effector's start to the target."""
        task = self.env.task
        line = self.env.target - task.home_point
        side = np.cross(line, [0.0, 0.0, 1.0])
        side = side / np.linalg.norm(side) if np.linalg.norm(side) > 1e-9 else np.array([1.0, 0.0, 0.0])
        up = np.array([0.0, 0.0, 1.0])
        directions = [up, side, -side, (up + side) / np.sqrt(2), (up - side) / np.sqrt(2), -up]
        points = []
        for scale in VIA_DISTANCES:
            for centre in task.centres:
                for direction in directions:
                    points.append(centre + (task.radius_m * scale + VIA_MARGIN_M) * direction)
        return points

    def _make_plan(self) -> list[np.ndarray]:
        """Waypoints to the target: the IK goal (or the configuration the target was sampled from, which is free of
        the obstacles by construction), straight if that is free, else through the first via-point that makes both
        segments free and fits the episode: Cartesian points beside the obstacles, then seeded random
        configurations."""
        env, robot = self.env, self.env.robot
        self._aim = env.target.copy()
        with self._arm_kept() as q_now:
            goals = [self._joint_goal(), self._nearest_turn(np.asarray(env.task.goal_configuration), q_now)]
            budget = env.config.episode_steps - VIA_SPARE_STEPS
            plan = next(([goal] for goal in goals if self._steps(q_now, goal) <= budget
                         and self._free(q_now, goal)), None)
            if plan is None:
                vias = []
                for point in self._via_points():
                    if point[2] >= env.config.min_target_height_m:
                        robot.forward_kinematics(q_now)
                        self._aim = point
                        via = self._nearest_turn(self._ik_from_here(), q_now)
                        if np.linalg.norm(robot.forward_kinematics(via) - point) < VIA_REACHED_M:
                            vias.append(via)
                rng = np.random.default_rng(0)
                vias += [robot.random_configuration(rng) for _ in range(VIA_RANDOM)]
                plan = next(([via, goal] for via in vias for goal in goals
                             if self._steps(q_now, via) + self._steps(via, goal) <= budget
                             and self._free(q_now, via) and self._free(via, goal)), [goals[0]])
        self._aim = env.target.copy()
        return plan


PUSH_LINE_M = 0.3  # of the cube's side: the hand is on the line behind the cube within this
PUSH_AHEAD_M = 0.03  # how far the hand aims beyond where it touches the cube, per step at most: a steady push
PUSH_GAIN = 0.3  # ... and this fraction of the cube's way left: slower near the goal, where a fast push sent the
# cube sliding past it
PUSH_ABOVE_M = 0.05  # the approach comes down from this high above the cube's top
PUSH_DONE_M = 0.02  # the cube this near its goal (well inside the success radius): the hand stops
PUSH_CLEAR_M = 0.02  # the hand comes down this far behind the cube's back face, beyond its own size
PUSH_TRAVEL_M = 0.06  # the hand's way to the cube: this much of the straight line each step
PUSH_DESCENT_M = 0.03  # the hand comes down this much a step at most
PUSH_SAME_AIM_M = 0.005  # an aim that moved less than this since the last step keeps its joint goal
PUSH_LONG_HAND = 1.5  # a hand this many times longer than thick pushes with its long side across the push
PUSH_TURN_RAD = 0.3  # ... and turns about the vertical this much a step at most


class PushOracle(IKReacher):
    """For push: come down behind the cube on the line from it to the goal, then push along that line, aiming a
    little ahead of the cube each step until the cube is at the goal. Poses from `tasks.push.PushPoses` (the
    hand's pushing orientation, every link above the floor, no contact)."""

    def __init__(self, env: ArmEnv):
        super().__init__(env)
        self._done_in: tuple | None = None  # the episode (cube's start and goal) whose cube is at its goal
        self._coming_down_to: np.ndarray | None = None  # the place behind the cube the hand is coming down to
        self._solved: tuple = (None, None)  # the last aim and its joint goal
        with self._arm_kept():
            self._long_axis, self._thickness_m = self._hand_shape()

    def _turned_toward(self, side: np.ndarray) -> np.ndarray:
        """The direction (horizontal) the hand's long axis is turned to this step: toward `side` or its opposite,
        whichever is nearer, by `PUSH_TURN_RAD` at most (a hand turned at once swung its arm into the floor)."""
        now = self.env.robot.ee_link_rotation() @ np.asarray(self._long_axis)
        now_angle = math.atan2(now[1], now[0])
        wanted = math.atan2(side[1], side[0])
        turn = math.remainder(wanted - now_angle, math.pi)  # the long axis has no front: half a turn is no turn
        turn = max(-PUSH_TURN_RAD, min(PUSH_TURN_RAD, turn))
        return np.array([math.cos(now_angle + turn), math.sin(now_angle + turn), 0.0])

    def _hand_shape(self) -> tuple[tuple | None, float]:
        """The end-effector link's long horizontal axis (its own, as it points down to push) and its half
        thickness across that axis from the tool point (m), if the hand is long enough to be worth turning
        (`PUSH_LONG_HAND`): a hand pushes with its long side across the push, so it comes down nearer the cube and
        covers more of its face. (None, the task's `hand_m`) otherwise. Measured at a pushing pose turned so that
        the link's horizontal axes lie along the world's x and y (its box along the world's axes then)."""
        env, task, robot = self.env, self.env.task, self.env.robot
        down = np.asarray(task.poses.axis, dtype=np.float64)
        horizontal = [a for a in AXES if abs(float(np.dot(a, down))) < 0.5][::2]  # two axes, one sign each
        cells = task.workspace["cells"]  # {(radius, angle) index: a pushing pose there}
        cell = cells[sorted(cells)[len(cells) // 2]]
        point = robot.forward_kinematics(cell)
        q = task.poses.solve(point, cell, across=(horizontal[0], (1.0, 0.0, 0.0)))
        if q is None:
            return None, task.hand_m
        robot.forward_kinematics(q)
        low, high = (np.asarray(v) for v in pb.getAABB(robot.body, robot.ee_link, physicsClientId=env.client))
        half = [max(abs(high[k] - point[k]), abs(point[k] - low[k])) for k in (0, 1)]  # along horizontal[0], [1]
        if max(half) < PUSH_LONG_HAND * min(half):
            return None, task.hand_m
        long = int(np.argmax(half))
        return horizontal[long], float(half[1 - long])

    def act(self) -> np.ndarray:
        env, robot, task = self.env, self.env.robot, self.env.task
        cube, goal = task.object_position, np.asarray(task.target)
        ee = robot.ee_position()
        line = goal[:2] - cube[:2]
        distance = float(np.linalg.norm(line))
        episode = tuple(task.start_position.tolist()) + tuple(goal.tolist())
        if distance < PUSH_DONE_M or self._done_in == episode:
            self._done_in = episode  # the cube is at its goal: hold still for the rest of the episode
            return np.zeros(robot.dof)
        direction = line / distance if distance > 1e-6 else np.array([1.0, 0.0])
        offset = ee[:2] - cube[:2]
        along, across = float(offset @ direction), float(direction[0] * offset[1] - direction[1] * offset[0])
        # where the hand comes down: just behind the cube (its hand clear of it), within the place the task made
        # sure the arm reaches; a push from further back spends the episode's steps before it touches the cube
        back = min(task.approach_m, task.side_m / 2 + self._thickness_m + PUSH_CLEAR_M)
        behind = np.append(cube[:2] - direction * back, task.push_height_m)
        if (-back - 0.03 < along < -task.side_m / 2 and abs(across) < PUSH_LINE_M * task.side_m
                and ee[2] < task.push_height_m + 0.02):
            # on the line behind the cube and low: push, a little further each step, back onto the line, until the
            # cube is at the goal
            ahead = min(PUSH_GAIN * distance, PUSH_AHEAD_M)
            side = np.array([-direction[1], direction[0]])
            aim = np.append(ee[:2] + direction * ahead - side * across * 0.5, task.push_height_m)
        elif (np.linalg.norm(ee[:2] - behind[:2]) < 0.03
              or (self._coming_down_to is not None and np.linalg.norm(behind - self._coming_down_to) < 0.02)):
            # above the place behind the cube (or on the way down to it, which may swing): come down, a few
            # centimetres a step (a fast descent overshoots into the floor)
            aim = np.append(behind[:2], max(behind[2], ee[2] - PUSH_DESCENT_M))
            self._coming_down_to = behind
        else:  # to the place above it, along a straight line a few centimetres a step (a joint-space line dips)
            above = behind + [0.0, 0.0, task.side_m + PUSH_ABOVE_M]
            way = above - ee
            length = float(np.linalg.norm(way))
            aim = above if length <= PUSH_TRAVEL_M else ee + way * (PUSH_TRAVEL_M / length)
        last_aim, last_q = self._solved
        if last_aim is not None and np.linalg.norm(aim - last_aim) < PUSH_SAME_AIM_M:
            goal_q = last_q  # the same place as last step: the same joint goal (IK from each new pose dithers)
            q_now, _ = robot.joint_state()
        else:
            turns = [None]  # the hand as it comes; a long hand first turned toward lying across the push
            if self._long_axis:
                turns.insert(0, (self._long_axis, self._turned_toward(np.array([-direction[1], direction[0], 0.0]))))
            with self._arm_kept() as q_now:
                goal_q = None
                for target in (aim, behind):  # (the place above may be out of reach where the place is not)
                    for start in (q_now, robot.home):
                        for across in turns:
                            goal_q = task.poses.solve(target, start, across=across) if goal_q is None else goal_q
            self._solved = (aim, goal_q)
        if goal_q is None:  # no pushing pose there: hold
            return np.zeros(robot.dof)
        return np.clip((goal_q - q_now) / np.asarray(env.max_joint_step), -1.0, 1.0)


def oracle_for(env: ArmEnv) -> IKReacher:
    """The scripted oracle for the environment's task: via-points round obstacles where it has them; pushing for
    push."""
    if env.task.name == "push":
        return PushOracle(env)
    return ViaPointReacher(env) if env.task.obstacle_bodies else IKReacher(env)


def oracle_episodes(env: ArmEnv, episodes: int, seed: int = 0) -> dict:
    """`run_episodes`' figures for the task's IK oracle over seeded episodes."""
    oracle = oracle_for(env)
    return run_episodes(env, lambda obs: oracle.act(), episodes, seed)


def oracle_success_rate(env: ArmEnv, episodes: int, seed: int = 0) -> tuple[float, float]:
    """(success rate, mean final distance in m) of the IK oracle over seeded episodes."""
    result = oracle_episodes(env, episodes, seed)
    return result["success_rate"], result["mean_final_distance_m"]
