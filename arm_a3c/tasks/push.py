"""`push` (`ArmPush-v0`): push a cube across the floor to a goal on the floor, within `success_radius_m`, for any
arm, no gripper needed. Success is judged on the last step.

The scene: the floor is the work surface, and a cube (`object_size_fraction` of the arm's reach on a side, within
4-10 cm, taller where the hand pushes high) lies on it. Where the arm can push is measured when the environment is
built (`push_workspace`): the end-effector link's axis that, pointing down, lets the hand reach the floor in front
of the arm, the lowest height (from the cube's middle up) at which the tool point reaches a ring there with every
link above the floor and free of contacts, and the cells of a polar grid (radius, angle) where it does. The cube
starts in a reachable cell and its goal lies up to `push_distance_fraction` of the reach away (at least a third
of that, and at least twice the success radius) in another, with room behind the cube for the hand to come down.
Each episode starts with the hand pointing down above the work surface (`start`).

Observation: the goal (3, m), the cube's position (3, m), cube minus end-effector point (3), goal minus cube (3),
the cube's orientation (6: first two columns of its rotation matrix), its linear and angular velocity (6); with
the Jacobian parts, J^T (cube - end-effector point) and J^T (goal - cube). Reward: minus the cube's distance to the
goal, minus `push_reach_weight` times the hand's distance to the cube, minus the action cost, plus `success_bonus`
on every step with the cube inside the radius. No terminal state (a contact of the arm with itself or the floor
ends the episode, as in every task).
"""

from __future__ import annotations

import math

import numpy as np

from arm_a3c.errors import UserError
from arm_a3c.limits import MAX_REWARD_WEIGHT
from arm_a3c.sim.client import pybullet as pb
from arm_a3c.sim.robot import EndEffectorJacobian, Robot
from arm_a3c.tasks.base import Box, Setting, Sphere, Task

OBJECT_RGBA = (0.95, 0.55, 0.1, 1.0)
OBJECT_RGB = (240, 140, 25)
OBJECT_MASS_KG = 0.2
OBJECT_FRICTION = 0.5  # lateral, times the floor's 1.0: the cube slides under a push and stops when let go
OBJECT_SIZE_M = (0.04, 0.1)  # the cube's side, whatever the reach
PUSH_HEIGHT_OF_SIDE = 0.8  # the tool point pushes at most this high up the cube: a taller hand gets a bigger cube
SECTOR_RAD = math.pi / 3  # the work surface: the reachable places within this of home's side of the base
AXES = ((0, 0, 1), (0, 0, -1), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0))  # the end-effector link's, tried
HEIGHTS_M = tuple(np.round(np.arange(0.02, 0.161, 0.01), 3))  # the tool point's heights tried for pushing
PROBE_FRACTION = 0.45  # the ring (fraction of the reach) where axes and heights are tried
PROBE_ANGLES = 7  # of the sector's angles, every other one
RING_STEP = 0.05
RING_FRACTIONS = tuple(np.round(np.arange(0.3, 0.601, RING_STEP), 3))  # the work surface's radii (of the reach)
RING_ANGLES = 9  # over the sector in front, its edges included
IK_ITERATIONS = 60
IK_RESIDUAL_M, IK_RESIDUAL_RAD = 2e-3, 0.02
IK_DAMPING = 0.05
DAMPING = IK_DAMPING ** 2 * np.eye(6)
IK_STAY = 0.5  # of the way back toward the start configuration per iteration, in the free motions
DOWN = np.array([0.0, 0.0, -1.0])
REACHED_M = 0.01
POINTING_RAD = 0.1  # a pushing pose's axis within this of straight down
FLOOR_MARGIN_M = 0.02  # every link this far above the floor at a pushing pose (a moving hand tilts and dips)
START_TRIES = 200
APPROACH_ROOM = 2.5  # the place behind the cube, this many cube sides back, must be reachable too
START_ABOVE_M = 0.1  # an episode starts with the hand this high above the cube's top
MOVED_M = 0.01  # the cube counts as moved when it is this far from where it started


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a x b of two 3-vectors (numpy's cross, general over shapes, was a quarter of the IK's time)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


class PushPoses:
    """Pushing poses: the tool point at a point with the end-effector link's `axis` pointing straight down, its turn
    about the vertical left free (five constraints: more arms reach them than a full orientation). Solved by damped
    least squares on the end effector's Jacobian (PyBullet's own IK, given a full orientation, missed it by 0.5-0.9
    rad on the Panda), within the joints' limits."""

    def __init__(self, robot: Robot, free):
        self.robot, self.free = robot, free
        self.axis = AXES[0]

    def pointing_error(self, axis=None) -> float:
        """Angle (rad) between the link's `axis`, as the arm stands, and straight down."""
        rotation = self.robot.ee_link_rotation()
        local = np.asarray(self.axis if axis is None else axis, dtype=np.float64)
        return math.acos(max(-1.0, min(1.0, -float((rotation @ local)[2]))))

    def solve(self, point: np.ndarray, start: np.ndarray, axis=None, across=None) -> np.ndarray | None:
        """Controlled-joint positions that put the tool point at `point` with the link's axis down, from `start`,
        every link above the floor and no contact; None if there is none near `start`. Moves the arm. `across`, a
        (link axis, horizontal world direction) pair, turns the hand about the vertical too: that link axis along
        that direction, or against it, whichever is nearer from `start`."""
        robot, local = self.robot, np.asarray(self.axis if axis is None else axis, dtype=np.float64)
        point = np.asarray(point, dtype=np.float64)
        q = start_q = np.clip(np.asarray(start, dtype=np.float64), robot.lower, robot.upper)
        if across is not None:
            side_local, side = np.asarray(across[0], dtype=np.float64), np.asarray(across[1], dtype=np.float64)
        for iteration in range(IK_ITERATIONS):
            ee = robot.forward_kinematics(q)
            rotation = robot.ee_link_rotation()
            turn = _cross(rotation @ local, DOWN)
            if across is not None:
                if iteration == 0 and float((rotation @ side_local) @ side) < 0:  # (at `start`) the nearer way
                    side = -side
                turn = turn + _cross(rotation @ side_local, side)
            error = np.concatenate([point - ee, turn])
            if np.linalg.norm(error[:3]) < IK_RESIDUAL_M and np.linalg.norm(error[3:]) < IK_RESIDUAL_RAD:
                break
            linear, angular = robot.ee_jacobian(ee)
            jacobian = np.vstack([linear, angular])
            # the task's step, and in the motions the task leaves free, back toward the start (no drift along
            # them: a goal near the start in joint space, reached along a short path): with J+ = J^T (J J^T +
            # damping)^-1, J+ e + (I - J+ J) d = d + J+ (e - J d), one 6x6 solve
            back = (start_q - q) * IK_STAY
            step = back + jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + DAMPING, error - jacobian @ back)
            q = np.clip(q + step, robot.lower, robot.upper)
        robot.forward_kinematics(q)
        if np.linalg.norm(robot.ee_position() - point) > REACHED_M or self.pointing_error(local) > POINTING_RAD:
            return None
        if across is not None:
            if float((robot.ee_link_rotation() @ side_local) @ side) < math.cos(POINTING_RAD):
                return None
        if robot.lowest_point() < FLOOR_MARGIN_M or (self.free is not None and not self.free()):
            return None
        return q


def push_workspace(robot: Robot, free, reach_m: float, side_m: float) -> dict:
    """Where this arm can push (see the module's docstring): its axis, the tool point's height, the hand's
    reach beyond the tool point, and the reachable cells of the grid in front of it (`heading`, the direction from
    the base to the end effector at home; angles within `SECTOR_RAD` of it, `RING_ANGLES` of them). `UserError`
    for an arm that cannot push on the floor there."""
    poses = PushPoses(robot, free)
    home, base = robot.home, robot.base_position
    home_point = robot.forward_kinematics(home)
    heading = math.atan2(home_point[1] - base[1], home_point[0] - base[0])
    angles = heading + np.linspace(-SECTOR_RAD, SECTOR_RAD, RING_ANGLES)

    def at(fraction: float, angle: float, height: float) -> np.ndarray:
        return base + [fraction * reach_m * math.cos(angle), fraction * reach_m * math.sin(angle), height - base[2]]

    middle_i = int(np.argmin(np.abs(np.asarray(RING_FRACTIONS) - PROBE_FRACTION)))
    middle_j = RING_ANGLES // 2  # the heading

    def ring(height: float, axis=None) -> dict:
        """{angle's index: q} of the pushing poses on the probe ring, each solved from its neighbour's (as the arm
        would move round), the first from home."""
        found = {}
        first = poses.solve(at(RING_FRACTIONS[middle_i], angles[middle_j], height), home, axis)
        if first is None:
            return found
        found[middle_j] = first
        for way in (range(middle_j + 1, RING_ANGLES), range(middle_j - 1, -1, -1)):
            q = first
            for j in way:
                q = poses.solve(at(RING_FRACTIONS[middle_i], angles[j], height), q, axis)
                if q is None:
                    break
                found[j] = q
        return found

    probe_height = HEIGHTS_M[len(HEIGHTS_M) // 2]
    best = max((len(ring(probe_height, axis)), -k, axis) for k, axis in enumerate(AXES))
    if best[0] == 0:
        raise UserError(f"--task push: {robot.name}'s end effector cannot reach the floor in front of it with a "
                        f"link of it pointing down and every link above the floor ({probe_height} m up, "
                        f"{PROBE_FRACTION:.0%} of its reach out); use another task")
    poses.axis = best[2]
    # the lowest height, from the cube's middle up, where the hand reaches most of the probe ring
    height = next((h for h in HEIGHTS_M if h >= side_m / 2 and len(ring(h)) >= best[0] * 0.75), probe_height)
    cells, hands = {}, []
    for i, fraction in enumerate(RING_FRACTIONS):  # each from home: the poses of home's branch of the arm
        for j, angle in enumerate(angles):
            q = poses.solve(at(fraction, angle, height), home)
            if q is not None:
                cells[(i, j)] = q
    for (i, j), q in cells.items():
        robot.forward_kinematics(q)
        point = at(RING_FRACTIONS[i], angles[j], height)
        low, high = pb.getAABB(robot.body, robot.ee_link, physicsClientId=robot.client)
        hands.append(max(np.max(np.abs(np.asarray(low[:2]) - point[:2])),
                         np.max(np.abs(np.asarray(high[:2]) - point[:2]))))
    robot.reset(home)
    if len(cells) < 4:
        raise UserError(f"--task push: {robot.name} reaches too little of the floor in front of it to push on "
                        f"({len(cells)} places of {len(RING_FRACTIONS) * RING_ANGLES} tried); use another task")
    return {"axis": poses.axis, "height_m": float(height), "cells": cells, "heading": heading,
            "angle_step": float(angles[1] - angles[0]), "hand_m": float(np.median(hands)), "poses": poses}


class PushTask(Task):
    name = "push"
    gym_id = "ArmPush-v0"
    # the hand's turn about the vertical decides which of its sides meets the cube: wrist rolls are controlled
    orientation = True
    summary = "push a cube across the floor to a goal (within 5 cm on the last step); no gripper needed"
    metrics = {"final_distance_m": "distance", "object_moved": "object_moved"}
    draw_size = 6  # the goal (3), the cube's centre (3)
    settings = (
        Setting("object_size_fraction", 0.05, "push: the cube's side as a fraction of the arm's reach (kept within "
                "4-10 cm, and larger where the hand pushes high)", lambda v: 0 < v <= 0.2, "in (0, 0.2]"),
        Setting("push_distance_fraction", 0.2, "push: the goal's largest distance from the cube's start, as a "
                "fraction of the arm's reach (at least a third of it, and twice the success radius)",
                lambda v: 0 < v <= 0.5, "in (0, 0.5]"),
        Setting("push_reach_weight", 0.5, "push: reward weight of the hand's distance to the cube",
                lambda v: 0 <= v <= MAX_REWARD_WEIGHT, f"between 0 and {MAX_REWARD_WEIGHT:g}"),
    )

    def __init__(self, env):
        super().__init__(env)
        cfg, robot, client = self.config, self.robot, env.client
        self.side_m = float(np.clip(cfg.object_size_fraction * env.reach_m, *OBJECT_SIZE_M))
        self.workspace = push_workspace(robot, self.contact_free, env.reach_m, self.side_m)
        if self.workspace["height_m"] > PUSH_HEIGHT_OF_SIDE * self.side_m:  # a hand that pushes high: a taller cube
            self.side_m = float(min(self.workspace["height_m"] / PUSH_HEIGHT_OF_SIDE, OBJECT_SIZE_M[1]))
        self.push_height_m = self.workspace["height_m"]
        self.hand_m = self.workspace["hand_m"]
        self.approach_m = APPROACH_ROOM * self.side_m  # behind the cube's centre: a place the arm reaches
        self.poses: PushPoses = self.workspace["poses"]
        self._cells = self.workspace["cells"]  # {(radius index, angle index): a pushing pose there}
        self._cell_keys = sorted(self._cells)
        half = [self.side_m / 2] * 3
        shape = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=client)
        visual = pb.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=OBJECT_RGBA, physicsClientId=client)
        self.object = pb.createMultiBody(baseMass=OBJECT_MASS_KG, baseCollisionShapeIndex=shape,
                                         baseVisualShapeIndex=visual, basePosition=[0.0, 0.0, 10.0],
                                         physicsClientId=client)
        pb.changeDynamics(self.object, -1, lateralFriction=OBJECT_FRICTION, spinningFriction=0.001,
                          rollingFriction=0.0, physicsClientId=client)
        self.start_position = np.zeros(3)
        self._object_list = [0.0, 0.0, 0.0]
        self._to_object, self._object_to_goal = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
        self._hand_distance = 0.0
        self.start_q = self._start_pose()
        # out of the way until the first episode places it
        self.reset_object(self.robot.base_position + [10 * env.reach_m, 0.0, self.side_m / 2])

    def _start_pose(self) -> np.ndarray:
        """Where each episode starts: the hand pointing down, `START_ABOVE_M` above the cube's top, over the middle of
        the work surface on the side where home holds it (the arm's home where no such pose is found). An episode
        begins above the work surface, as a pushing robot's would, not far above it."""
        robot, base, heading = self.robot, self.robot.base_position, self.workspace["heading"]
        fractions = sorted({RING_FRACTIONS[i] for i, _ in self._cells})
        middle = fractions[len(fractions) // 2] * self.env.reach_m
        height = self.push_height_m + self.side_m + START_ABOVE_M
        q = None
        for turn in (0.0, math.pi / 4, -math.pi / 4, math.pi / 2, -math.pi / 2):
            point = base + [middle * math.cos(heading + turn), middle * math.sin(heading + turn), 0.0]
            point[2] = height
            q = self.poses.solve(point, robot.home)
            if q is not None:
                break
        robot.reset(robot.home)
        return robot.home.copy() if q is None else q

    def start(self) -> None:
        self.robot.reset(self.start_q)

    # ---- an episode ---------------------------------------------------------------------------------------

    def _cell_point(self, rng: np.random.Generator) -> np.ndarray:
        """A point on the floor within a random reachable cell."""
        w = self.workspace
        i, j = self._cell_keys[int(rng.integers(len(self._cell_keys)))]
        r = (RING_FRACTIONS[i] + rng.uniform(-RING_STEP / 2, RING_STEP / 2)) * self.env.reach_m
        a = w["heading"] - SECTOR_RAD + (j + rng.uniform(-0.5, 0.5)) * w["angle_step"]
        return self.robot.base_position + np.array([r * math.cos(a), r * math.sin(a), -self.robot.base_position[2]])

    def _cell(self, point: np.ndarray) -> np.ndarray | None:
        """The pushing pose of the reachable cell `point` (on the floor) lies in, or None."""
        w, b = self.workspace, self.robot.base_position
        r = math.hypot(point[0] - b[0], point[1] - b[1]) / self.env.reach_m
        a = math.remainder(math.atan2(point[1] - b[1], point[0] - b[0]) - w["heading"] + SECTOR_RAD, 2 * math.pi)
        return self._cells.get((round((r - RING_FRACTIONS[0]) / RING_STEP), round(a / w["angle_step"])))

    def reset(self, rng: np.random.Generator, options: dict | None) -> None:
        longest = self.config.push_distance_fraction * self.env.reach_m
        # at least two success radii away (a cube that starts nearly there teaches nothing), or a third of the most
        shortest = min(longest, max(longest / 3, 2 * self.config.success_radius_m))
        start = goal = None
        for _ in range(START_TRIES):
            start = self._cell_point(rng)
            heading = rng.uniform(-math.pi, math.pi)
            direction = np.array([math.cos(heading), math.sin(heading), 0.0])
            goal = start + rng.uniform(shortest, longest) * direction
            behind = start - self.approach_m * direction
            near_goal, near_behind = self._cell(goal), self._cell(behind)
            if (near_goal is not None and near_behind is not None
                    and self.poses.solve(goal + [0.0, 0.0, self.push_height_m], near_goal) is not None
                    and self.poses.solve(behind + [0.0, 0.0, self.push_height_m], near_behind) is not None):
                break
        else:  # (an arm that reaches only scattered places) a goal in another reachable place
            goal = self._cell_point(rng)
        self.start_position = start + [0.0, 0.0, self.side_m / 2]
        self.reset_object(self.start_position, rng.uniform(-math.pi, math.pi))
        self.set_target(goal + [0.0, 0.0, self.side_m / 2])

    def reset_object(self, position: np.ndarray, yaw: float = 0.0) -> None:
        pb.resetBasePositionAndOrientation(self.object, list(position), pb.getQuaternionFromEuler([0.0, 0.0, yaw]),
                                           physicsClientId=self.env.client)
        pb.resetBaseVelocity(self.object, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], physicsClientId=self.env.client)

    @property
    def object_position(self) -> np.ndarray:
        return np.array(pb.getBasePositionAndOrientation(self.object, physicsClientId=self.env.client)[0])

    # ---- observation, reward ------------------------------------------------------------------------------

    def observation_parts(self) -> list[tuple[str, int, str]]:
        return [("target_m", 3, "the cube's goal, world frame"),
                ("object_m", 3, "the cube's centre, world frame"),
                ("object_minus_end_effector_m", 3, "cube centre minus end-effector point"),
                ("target_minus_object_m", 3, "goal minus cube centre"),
                ("object_orientation_6d", 6, "first two columns of the cube's rotation matrix"),
                ("object_velocity", 6, "the cube's linear (m/s) and angular (rad/s) velocity")]

    def jacobian_parts(self) -> list[tuple[str, int, str]]:
        dof = self.robot.dof
        return [("jacobian_t_to_object", dof, "J^T (cube - end-effector point): per joint, how fast moving it "
                                             "brings the hand to the cube"),
                ("jacobian_t_object_to_target", dof, "J^T (goal - cube): per joint, how fast moving it moves the "
                                                     "hand the way the cube must go")]

    def jacobian_observe(self, jacobian: EndEffectorJacobian) -> list[float]:
        return jacobian.linear_t(self._to_object) + jacobian.linear_t(self._object_to_goal)

    def observe(self, ee: list[float]) -> list[float]:
        client = self.env.client
        position, orientation = pb.getBasePositionAndOrientation(self.object, physicsClientId=client)
        linear, angular = pb.getBaseVelocity(self.object, physicsClientId=client)
        self._object_list = list(position)
        goal = self.observe_target(list(position))  # the goal, and goal minus cube
        self._object_to_goal = goal[3:]
        self._to_object = [position[0] - ee[0], position[1] - ee[1], position[2] - ee[2]]
        self._hand_distance = math.sqrt(sum(d * d for d in self._to_object))
        m = pb.getMatrixFromQuaternion(orientation)
        return (goal[:3] + list(position) + self._to_object + self._object_to_goal
                + [m[0], m[3], m[6], m[1], m[4], m[7]] + list(linear) + list(angular))

    def judge(self, action: list[float], step: int) -> tuple[float, bool, dict]:
        d, cfg = self._distance, self.config
        success = d < cfg.success_radius_m
        reward = -d - cfg.push_reach_weight * self._hand_distance - self.action_penalty(action)
        if success:
            reward += cfg.success_bonus
        moved = math.hypot(self._object_list[0] - self.start_position[0],
                           self._object_list[1] - self.start_position[1]) > MOVED_M
        return reward, False, {"is_success": success, "distance": d, "object_moved": moved,
                               "hand_to_object_m": self._hand_distance}

    # ---- what the viewer draws ----------------------------------------------------------------------------

    def draw_data(self) -> list[float]:
        return self._target_list + self._object_list

    def shapes(self, draw: np.ndarray, index: int, ee: np.ndarray) -> list:
        half = np.full(3, self.side_m / 2)
        return [Sphere(draw[index, :3], self.config.success_radius_m),
                Box(draw[index, 3:6], half, OBJECT_RGB)]

    def hud(self, draw: np.ndarray, index: int, ee: np.ndarray) -> str:
        cube, goal = draw[index, 3:6], draw[index, :3]
        return (f"cube to goal {float(np.linalg.norm(cube - goal)):.3f} m, hand to cube "
                f"{float(np.linalg.norm(ee - cube)):.3f} m")
