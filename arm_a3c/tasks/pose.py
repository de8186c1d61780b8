"""`pose` (`ArmPose-v0`): bring the end-effector point within `success_radius_m` of a target position and the
end effector's orientation within `orientation_tolerance_deg` of a target orientation (geodesic angle), and hold.

Goal: the end-effector pose of a random configuration (reachable by construction, sampled as reach's targets
are). Joints that turn the end effector without moving its point (a wrist roll, the KUKA's joint 7) are
controlled for this task. Refused for an arm whose controlled joints cannot set a full pose (fewer than six
independent directions of motion, measured from the pose Jacobian).

Observation (21 floats): target position (3, m), target minus end-effector point (3, m), the end effector's and
the target's orientations as their rotation matrices' first two columns (6 + 6: a continuous representation,
Zhou et al. 2019, unlike Euler angles) and the rotation from the end effector's orientation to the target's as an
axis-angle vector in the world frame (3, rad); then (with `jacobian_observation`, the default) the Jacobian
transposes J_p^T (position error) and J_w^T (rotation error), one value per controlled joint each: the joint-space
directions that close the two errors, which made pose learnable within a run's budget (KUKA, seed 1, 2.2 M steps:
77.5% held-out success against 2% without them). Reward: minus the distance d (m), minus
`orientation_cost_m_per_rad` times the angle (rad) times n / (n + d) with n = ORIENTATION_NEAR_FRACTION of the reach
(the orientation counts fully at the target position and fades away from it), minus the action cost, plus half of
`success_bonus` on every step within the position tolerance and the other half when the orientation is within
its tolerance too. Success is judged on the last step.
"""

from __future__ import annotations

import math

import numpy as np

from arm_a3c.errors import UserError
from arm_a3c.limits import MAX_REWARD_WEIGHT
from arm_a3c.sim.client import pybullet as pb
from arm_a3c.sim.robot import EndEffectorJacobian
from arm_a3c.tasks.base import Frame, Setting, Sphere, Task

RANK_PROBES = 8  # random configurations at which the pose Jacobian's rank is measured
RANK_TOLERANCE = 1e-3  # singular values below this fraction of the largest count as zero
JACOBIAN_STEP = 1e-4
# The orientation's cost weighs fully at the target position and fades with the distance from it (half at this
# fraction of the reach): far away, turning the hand first would only fight the big joints' motion.
ORIENTATION_NEAR_FRACTION = 0.1


def quaternion_multiply(a, b) -> list[float]:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return [aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz]


def rotation_vector(target, current) -> tuple[list[float], float]:
    """The rotation that takes orientation `current` to `target` (unit quaternions x, y, z, w), as an axis-angle
    vector in the world frame (3, rad), and its angle (rad, 0..pi: the geodesic distance)."""
    x, y, z, w = quaternion_multiply(target, [-current[0], -current[1], -current[2], current[3]])
    if w < 0.0:  # q and -q are the same orientation: take the short way round
        x, y, z, w = -x, -y, -z, -w
    sine = math.sqrt(x * x + y * y + z * z)
    angle = 2.0 * math.atan2(sine, w)
    scale = angle / sine if sine > 1e-12 else 2.0
    return [x * scale, y * scale, z * scale], angle


def six_d(quaternion) -> list[float]:
    """The first two columns of the rotation matrix (6 floats)."""
    m = pb.getMatrixFromQuaternion(quaternion)  # row-major 3x3
    return [m[0], m[3], m[6], m[1], m[4], m[7]]


class PoseTask(Task):
    name = "pose"
    gym_id = "ArmPose-v0"
    summary = "match a random end-effector position (5 cm) and orientation (15 degrees) and hold them"
    orientation = True
    metrics = {"final_distance_m": "distance", "orientation_error_deg": "orientation_error_deg"}
    draw_size = 11  # target position (3), target orientation (4), end-effector orientation (4)
    marker_rgba = (0.1, 0.85, 0.2, 0.6)
    settings = (
        Setting("orientation_tolerance_deg", 15.0, "pose: success also needs the orientation within this angle "
                "(geodesic)", lambda v: 0 < v <= 180, "in (0, 180]"),
        Setting("orientation_cost_m_per_rad", 0.5, "pose: a radian of orientation error costs as much as this "
                "distance", lambda v: 0 <= v <= MAX_REWARD_WEIGHT, f"between 0 and {MAX_REWARD_WEIGHT:g}"),
    )

    def __init__(self, env):
        super().__init__(env)
        self.tolerance_rad = math.radians(self.config.orientation_tolerance_deg)
        self.target_orientation = [0.0, 0.0, 0.0, 1.0]
        self.goal_configuration = self.robot.home.copy()  # the configuration the goal was sampled from
        self._target_6d = six_d(self.target_orientation)
        self._ee_orientation = [0.0, 0.0, 0.0, 1.0]
        self._angle, self._rotation_error = 0.0, [0.0, 0.0, 0.0]

    @classmethod
    def check_robot(cls, robot) -> None:
        rng = np.random.default_rng(0)
        rank = 0
        for _ in range(RANK_PROBES):
            singular = np.linalg.svd(pose_jacobian(robot, robot.random_configuration(rng)), compute_uv=False)
            rank = max(rank, int(np.sum(singular > RANK_TOLERANCE * singular[0])))
        robot.reset(robot.home)
        if rank < 6:
            raise UserError(
                f"--task pose: {robot.name}'s controlled joints ({robot.dof}: "
                f"{', '.join(j.name for j in robot.controlled)}) can move its end effector in only {rank} of the 6 "
                f"directions a pose needs (3 of position, 3 of orientation); use --task reach, or an arm with at "
                f"least 6 independent joints"
            )

    def reset(self, rng: np.random.Generator, options: dict | None) -> None:
        self.goal_configuration, point = self.sample_goal(rng)
        self.target_orientation = list(self.robot.ee_link_pose()[1])
        self._target_6d = six_d(self.target_orientation)
        self.set_target(point)

    def observation_parts(self) -> list[tuple[str, int, str]]:
        return super().observation_parts() + [
            ("end_effector_orientation_6d", 6, "first two columns of the end effector's rotation matrix"),
            ("target_orientation_6d", 6, "first two columns of the target's rotation matrix"),
            ("rotation_error_rad", 3, "rotation from the end effector's orientation to the target's, axis-angle, "
                                      "world frame")]

    def observe(self, ee: list[float]) -> list[float]:
        position = self.observe_target(ee)
        self._ee_orientation = list(self.robot.ee_link_pose()[1])
        self._rotation_error, self._angle = rotation_vector(self.target_orientation, self._ee_orientation)
        return position + six_d(self._ee_orientation) + self._target_6d + self._rotation_error

    def jacobian_parts(self) -> list[tuple[str, int, str]]:
        return super().jacobian_parts() + [
            ("jacobian_t_rotation_error", self.robot.dof, "J_w^T (rotation error), J_w the end effector's angular "
                                                          "Jacobian: per joint, how fast moving it closes the angle")]

    def jacobian_observe(self, jacobian: EndEffectorJacobian) -> list[float]:
        return super().jacobian_observe(jacobian) + jacobian.angular_t(self._rotation_error)

    def judge(self, action: list[float], step: int) -> tuple[float, bool, dict]:
        cfg, d, angle = self.config, self._distance, self._angle
        placed = d < cfg.success_radius_m
        success = placed and angle < self.tolerance_rad
        near = ORIENTATION_NEAR_FRACTION * self.env.reach_m
        reward = (-d - cfg.orientation_cost_m_per_rad * angle * near / (near + d) - self.action_penalty(action)
                  + 0.5 * cfg.success_bonus * (placed + success))
        return reward, False, {"is_success": success, "distance": d, "orientation_error_deg": math.degrees(angle)}

    def draw_data(self) -> list[float]:
        return self._target_list + self.target_orientation + self._ee_orientation

    def shapes(self, draw: np.ndarray, index: int, ee: np.ndarray) -> list:
        row = draw[index]
        length = max(0.08, 0.15 * self.env.reach_m)
        return [Sphere(row[:3], self.config.success_radius_m, (26, 217, 51)),
                Frame(row[:3], rotation_matrix(row[3:7]), length, 4),
                Frame(np.asarray(ee), rotation_matrix(row[7:11]), 0.8 * length, 2)]

    def hud(self, draw: np.ndarray, index: int, ee: np.ndarray) -> str:
        row = draw[index]
        _, angle = rotation_vector(row[3:7], row[7:11])
        return f"distance {float(np.linalg.norm(ee - row[:3])):.3f} m   orientation error {math.degrees(angle):.1f} deg"


def rotation_matrix(quaternion) -> np.ndarray:
    return np.array(pb.getMatrixFromQuaternion(list(quaternion))).reshape(3, 3)


def pose_jacobian(robot, q: np.ndarray) -> np.ndarray:
    """(6, dof) Jacobian of the end-effector point (m) and orientation (rad, world-frame rotation vector) over the
    controlled joints at `q`, by central differences. Moves the arm."""
    columns = []
    for k in range(robot.dof):
        ends = []
        for sign in (1.0, -1.0):
            dq = np.array(q, dtype=np.float64)
            dq[k] += sign * JACOBIAN_STEP
            ends.append((robot.forward_kinematics(dq), list(robot.ee_link_pose()[1])))
        (p1, o1), (p2, o2) = ends
        turn, _ = rotation_vector(o1, o2)
        columns.append(np.concatenate([(p1 - p2), turn]) / (2 * JACOBIAN_STEP))
    return np.stack(columns, axis=1)
