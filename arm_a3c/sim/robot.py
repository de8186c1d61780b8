"""A fixed-base robot arm built from a URDF alone. It knows its joints and how to move them; it knows
nothing about reaching (that is `arm_a3c.tasks`).

End-effector choice (unless a sidecar file or `--ee-link` names one): the deepest link of the kinematic tree,
depth counted in joints from the base. When the deepest leaves branch from one link, as a gripper's fingers do,
the end effector is the link where they meet (leaves within one joint of the deepest count as such a branch).

The end-effector point is the end-effector link's origin, or a tool point fixed in that link (`ee_offset_m`, for
example the centre between a gripper's fingertips).

Controlled joints are the movable joints on the chain from the base to the end effector, except those that
cannot move the end-effector point (such as a wrist roll whose axis passes through it), which only make a
position-reaching task harder. Every other movable joint (fingers, side branches, sidecar `hold_joints`) is held
still at its rest position by its motor.

Home pose: where every episode starts, chosen by `arm_a3c.sim.home` (the rule is explained there).
"""

from __future__ import annotations

import os
import tempfile
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from arm_a3c.errors import UserError
from arm_a3c.sim.assets import RobotSpec
from arm_a3c.sim.client import pybullet as pb
from arm_a3c.sim.client import quiet_c_output
from arm_a3c.sim.home import choose_home
from arm_a3c.sim.urdf import UrdfModel, read_urdf

# A joint is "inert" when moving it by PROBE_STEP (rad or m) moves the end effector by less than INERT_MOTION_M
# at every one of INERT_PROBES random configurations.
PROBE_STEP = 0.05
INERT_MOTION_M = 1e-5
INERT_PROBES = 16
FLOOR_PROBES = 16  # configurations that find the links below the floor whatever the joints
INERT_ARM_M = 0.1  # with orientation: a turn of the end effector counts as motion of a point this far away
JACOBIAN_STEP = 1e-4  # rad or m: central differences of forward kinematics
POSITION_GAIN = 0.2  # PyBullet position-control gain: fraction of the error corrected per physics step
VELOCITY_GAIN = 1.0
PYBULLET_MAX_JOINT_VELOCITY = 100.0  # rad/s or m/s: PyBullet's default clamp of every joint's speed


@dataclass(frozen=True)
class Joint:
    """One movable joint as the controller sees it."""

    index: int  # PyBullet joint index (also the index of its child link)
    name: str
    type: str  # revolute | continuous | prismatic
    lower: float  # rad or m
    upper: float
    effort: float  # N·m or N
    role: str  # controlled | held
    note: str  # why held, or how the limits were obtained
    velocity: float = 0.0  # the URDF's velocity limit, rad/s or m/s; 0: the URDF gives none

    @property
    def rest(self) -> float:
        """Rest position: zero if within limits, else the nearest limit."""
        return float(np.clip(0.0, self.lower, self.upper))


def quaternion_angle(a: Sequence[float], b: Sequence[float]) -> float:
    """The geodesic angle (rad, 0..pi) between two orientations given as unit quaternions (x, y, z, w)."""
    dot = abs(float(np.dot(a, b)))
    return 2.0 * float(np.arccos(min(dot, 1.0)))


def end_effector_from_tree(parent: list[int]) -> int:
    """The end-effector link index from `parent[i]` (parent link of link i, -1 for the base).

    The deepest leaf, or where several deepest leaves (within one joint of the deepest) meet.
    """
    depth: list[int] = []
    for p in parent:  # PyBullet orders links so that a parent comes before its children
        depth.append(0 if p < 0 else depth[p] + 1)
    has_child = {p for p in parent if p >= 0}
    leaves = [i for i in range(len(parent)) if i not in has_child]
    deepest = max(depth[i] for i in leaves)
    tips = [i for i in leaves if depth[i] >= deepest - 1]

    def ancestors(i: int) -> list[int]:
        chain = [i]
        while chain[-1] >= 0:
            chain.append(parent[chain[-1]])
        return chain

    common = set(ancestors(tips[0])).intersection(*(ancestors(t) for t in tips[1:]))
    return max(common, key=lambda i: depth[i] if i >= 0 else -1)


@dataclass(frozen=True)
class EndEffectorJacobian:
    """PyBullet's Jacobians at the end-effector link's frame origin (3 rows over every movable joint), the columns
    of the controlled joints, and the offset r (m) from that origin to the end-effector point. The point's linear
    Jacobian is J_v + [w x r] columns, so its transposed product is J_v^T e + J_w^T (r x e): no matrix is built."""

    linear: Sequence[Sequence[float]]
    angular: Sequence[Sequence[float]]
    columns: Sequence[int]
    offset: Sequence[float]

    def linear_t(self, e: Sequence[float]) -> list[float]:
        """J^T e for the end-effector point's (3, dof) linear Jacobian J and a 3-vector e: (dof,) floats."""
        rx, ry, rz = self.offset
        e0, e1, e2 = e
        c0, c1, c2 = ry * e2 - rz * e1, rz * e0 - rx * e2, rx * e1 - ry * e0  # r x e
        (v0, v1, v2), (w0, w1, w2) = self.linear, self.angular
        return [v0[j] * e0 + v1[j] * e1 + v2[j] * e2 + w0[j] * c0 + w1[j] * c1 + w2[j] * c2 for j in self.columns]

    def angular_t(self, e: Sequence[float]) -> list[float]:
        """J_w^T e for the link's (3, dof) angular Jacobian J_w and a 3-vector e: (dof,) floats."""
        e0, e1, e2 = e
        w0, w1, w2 = self.angular
        return [w0[j] * e0 + w1[j] * e1 + w2[j] * e2 for j in self.columns]


PROBE_LOAD_BOUND_S = 120.0  # a copy of the process loading a URDF this long has hung: it counts as a crash


def _loads_in_a_copy(checked: Path) -> bool:
    """Whether PyBullet survives loading `checked` in a forked copy of this process (a client of its own). Its
    COLLADA reader crashes the whole process on some .dae files that are well-formed XML, with no message; a
    copy crashing costs nothing. Where there is no fork (Windows), loading is not tried first."""
    if not hasattr(os, "fork"):
        return True
    pid = os.fork()
    if pid == 0:  # the copy: load, and leave at once whatever happens (no cleanup of the parent's state)
        try:
            client = pb.connect(pb.DIRECT)
            pb.loadURDF(str(checked), useFixedBase=True, flags=pb.URDF_USE_INERTIA_FROM_FILE, physicsClientId=client)
        finally:
            os._exit(0)
    deadline = time.monotonic() + PROBE_LOAD_BOUND_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return not os.WIFSIGNALED(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return False
        time.sleep(0.005)


# PyBullet's self-collision between every two links but a link and its parent (the joint between them keeps them
# touching). Measured on a hand folded back onto its upper arm: with _EXCLUDE_ALL_PARENTS instead, the hand passed
# through (a link never collides with its ancestors, and on a serial arm every pair is a link and an ancestor:
# all 44 pairs `sim.contacts` checks on the Panda, 15 on the xArm6); with _EXCLUDE_PARENT it stopped against it.
SELF_COLLISION_FLAGS = pb.URDF_USE_SELF_COLLISION | pb.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT


class Robot:
    """A URDF arm loaded into one PyBullet client with its base fixed at `base_position` (m)."""

    def __init__(self, client: int, spec: RobotSpec, base_position: tuple[float, float, float] = (0, 0, 0), *,
                 orientation: bool = False, self_collision: bool = False):
        """`orientation`: the task sets the end effector's orientation too, so joints that turn it without moving
        its point (a wrist roll) are controlled, not held. `self_collision`: PyBullet simulates the links' contacts
        with each other (but a link's with its parent); which pairs then exert no force is `sim.contacts`' to say."""
        self.client = client
        self.spec = spec
        self.orientation = orientation
        self.self_collision = self_collision
        self.urdf: UrdfModel = read_urdf(spec.urdf_path)
        # PyBullet loads the checked text, whose mesh and texture names are the checked files' absolute paths
        with quiet_c_output(), tempfile.TemporaryDirectory(prefix="arm_a3c_") as folder:
            checked = Path(folder) / spec.urdf_path.name
            checked.write_text(self.urdf.checked_xml)
            collada = sorted({v.mesh_path.name for v in self.urdf.visuals if v.mesh_path is not None
                              and v.mesh_path.suffix.lower() == ".dae"})
            if (collada or ".dae" in self.urdf.checked_xml.lower()) and not _loads_in_a_copy(checked):
                raise UserError(f"PyBullet crashed loading {spec.urdf_path}: its COLLADA reader cannot read a .dae mesh "
                                f"of it ({', '.join(collada) or 'a collision mesh'}); convert the .dae meshes to .obj "
                                f"or .stl (a mesh tool such as Blender or meshlab does it)")
            try:
                self.body = pb.loadURDF(
                    str(checked), basePosition=base_position, useFixedBase=True,
                    flags=pb.URDF_USE_INERTIA_FROM_FILE | (SELF_COLLISION_FLAGS if self_collision else 0),
                    physicsClientId=client,
                )
            except pb.error:
                raise UserError(
                    f"PyBullet could not load {spec.urdf_path} although its XML passed arm-a3c's checks; "
                    "check that its mesh files (.obj, .stl, .dae) open in a mesh viewer"
                ) from None
        self.base_position = np.asarray(base_position, dtype=np.float64)
        infos = [pb.getJointInfo(self.body, i, physicsClientId=client) for i in range(self._num_joints)]
        self.link_names = [info[12].decode() for info in infos]
        self.joint_names = [info[1].decode() for info in infos]
        self.base_link_name = pb.getBodyInfo(self.body, physicsClientId=client)[0].decode()
        self._parent = [info[16] for info in infos]
        self._movable = [i for i, info in enumerate(infos) if info[2] in (pb.JOINT_REVOLUTE, pb.JOINT_PRISMATIC)]

        self.ee_link = self._choose_end_effector()
        self.sidecar_disable = self._sidecar_link_pairs("self_collision_disable")  # link index pairs
        self.sidecar_enable = self._sidecar_link_pairs("self_collision_enable")
        self.ee_offset = np.asarray(spec.ee_offset_m, dtype=np.float64)
        self._ee_offset_list = self.ee_offset.tolist() if np.any(self.ee_offset != 0.0) else None
        self.joints = self._classify_joints()
        self.controlled = [j for j in self.joints if j.role == "controlled"]
        if not self.controlled:
            raise UserError(
                f"{spec.urdf_path}: no joint between the base and the end effector "
                f"'{self.ee_link_name}' moves it; choose another end-effector link with --ee-link"
            )
        self.ctrl_index = [j.index for j in self.controlled]
        self._ctrl_columns = [self._movable.index(i) for i in self.ctrl_index]  # in PyBullet's Jacobians
        self.lower = np.array([j.lower for j in self.controlled])
        self.upper = np.array([j.upper for j in self.controlled])
        self.max_force = [j.effort for j in self.controlled]
        self.zero_home = np.array([j.rest for j in self.controlled])
        self._position_gains = [POSITION_GAIN] * self.dof
        self._velocity_gains = [VELOCITY_GAIN] * self.dof
        self._lower, self._upper = self.lower.tolist(), self.upper.tolist()
        self._moving_links = self._links_moved_by_controlled_joints()
        self._leave_floor = self._links_that_can_leave_the_floor()
        self.home, self.home_reason = choose_home(self)
        self.q_target = self.home.tolist()
        self.reset(self.home)

    @property
    def _num_joints(self) -> int:
        return pb.getNumJoints(self.body, physicsClientId=self.client)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ee_link_name(self) -> str:
        return self.base_link_name if self.ee_link < 0 else self.link_names[self.ee_link]

    @property
    def dof(self) -> int:
        return len(self.controlled)

    def _choose_end_effector(self) -> int:
        if self.spec.ee_link is None:
            ee = end_effector_from_tree(self._parent)
            is_leaf = ee >= 0 and ee not in self._parent
            self.ee_link_reason = "deepest link" if is_leaf else "where the deepest branches (fingers) meet"
            return ee
        self.ee_link_reason = {"override": "--ee-link", "sidecar": self.spec.urdf_path.with_suffix(".toml").name}[
            self.spec.ee_link_source]
        names = [self.base_link_name, *self.link_names]
        if self.spec.ee_link not in names:
            where = "--ee-link" if self.spec.ee_link_source == "override" else str(self.spec.settings_file)
            raise UserError(
                f"{where}: ee_link '{self.spec.ee_link}' is not a link of {self.spec.urdf_path.name}; "
                f"use one of: {', '.join(names)}"
            )
        return names.index(self.spec.ee_link) - 1

    def link_name(self, link: int) -> str:
        """The URDF name of link `link` (PyBullet's index; -1 the base)."""
        return self.base_link_name if link < 0 else self.link_names[link]

    def _sidecar_link_pairs(self, key: str) -> tuple[tuple[int, int], ...]:
        """The settings file's `key` (pairs of link names) as pairs of link indices, each in ascending order."""
        names = [self.base_link_name, *self.link_names]
        pairs = []
        for pair in getattr(self.spec, key):
            unknown = [name for name in pair if name not in names]
            if unknown:
                raise UserError(f"{self.spec.settings_file}: {key} names '{unknown[0]}', which is not a link of "
                                f"{self.spec.urdf_path.name}; use one of: {', '.join(names)}")
            pairs.append(tuple(sorted(names.index(name) - 1 for name in pair)))
        return tuple(pairs)

    def _chain_to_end_effector(self) -> set[int]:
        chain, link = set(), self.ee_link
        while link >= 0:
            chain.add(link)  # joint index == index of its child link
            link = self._parent[link]
        return chain

    def _classify_joints(self) -> list[Joint]:
        chain = self._chain_to_end_effector()
        unknown = sorted(set(self.spec.hold_joints) - {self.joint_names[i] for i in self._movable})
        if unknown:
            raise UserError(
                f"{self.spec.urdf_path.with_suffix('.toml')}: hold_joints names {', '.join(unknown)}, "
                f"which are not movable joints of {self.spec.urdf_path.name}"
            )
        joints = []
        for i in self._movable:
            name = self.joint_names[i]
            urdf_joint = self.urdf.joint(name)
            limits = urdf_joint.limits
            if i not in chain:
                role, note = "held", "not on the chain to the end effector"
            elif name in self.spec.hold_joints:
                role, note = "held", "held by the sidecar file"
            else:
                role, note = "controlled", limits.note
            joints.append(Joint(i, name, urdf_joint.type, limits.lower, limits.upper, limits.effort, role, note,
                                limits.velocity))
        joints = self._hold_inert_joints(joints)
        for j in joints:
            if j.role == "held":
                pb.resetJointState(self.body, j.index, j.rest, 0.0, physicsClientId=self.client)
                pb.setJointMotorControl2(self.body, j.index, pb.POSITION_CONTROL, targetPosition=j.rest,
                                         force=j.effort, physicsClientId=self.client)
        return joints

    def _hold_inert_joints(self, joints: list[Joint]) -> list[Joint]:
        """Hold controlled joints that cannot move the end effector's position (measured, not guessed); with
        `orientation`, only those that move neither its position nor its orientation."""
        rng = np.random.default_rng(0)
        ctrl = [j for j in joints if j.role == "controlled"]
        lower, upper = np.array([j.lower for j in ctrl]), np.array([j.upper for j in ctrl])
        motion, moved = np.zeros(len(ctrl)), np.zeros(len(ctrl))  # moved: of the point alone
        for _ in range(INERT_PROBES):
            q = rng.uniform(lower, upper)
            for j, qj in zip(ctrl, q):
                pb.resetJointState(self.body, j.index, qj, 0.0, physicsClientId=self.client)
            before, turn_before = self.ee_position(), self.ee_link_pose()[1]
            for k, j in enumerate(ctrl):
                step = PROBE_STEP if q[k] + PROBE_STEP <= j.upper else -PROBE_STEP
                pb.resetJointState(self.body, j.index, q[k] + step, 0.0, physicsClientId=self.client)
                shift = float(np.linalg.norm(self.ee_position() - before))
                motion[k], moved[k] = max(motion[k], shift), max(moved[k], shift)
                if self.orientation:  # a turn of the end effector by PROBE_STEP rad, in metres at INERT_ARM_M
                    turned = quaternion_angle(turn_before, self.ee_link_pose()[1])
                    motion[k] = max(motion[k], turned * INERT_ARM_M)
                pb.resetJointState(self.body, j.index, q[k], 0.0, physicsClientId=self.client)
        inert = {j.index for j, m in zip(ctrl, motion) if m < INERT_MOTION_M}
        # Joints controlled only because the task sets the orientation (held for a position task): a home written
        # for the position-controlled joints alone still fits, with these at their rest values.
        self.orientation_only = {j.index for j, m in zip(ctrl, moved) if m < INERT_MOTION_M} - inert
        if len(inert) == len(ctrl):
            return joints
        return [
            dataclasses.replace(j, role="held", note="does not move the end effector" if self.orientation else
                                "does not move the end effector's position") if j.index in inert else j
            for j in joints
        ]

    def movable_positions(self, q: Sequence[float] | None = None) -> list[float]:
        """Every movable joint's position (what PyBullet's Jacobian takes): `q`, the controlled joints' positions
        just read, when they are all of them; else read."""
        if q is None or len(self._movable) != len(self.ctrl_index):
            return [s[0] for s in pb.getJointStates(self.body, self._movable, physicsClientId=self.client)]
        return list(q)

    def parent_link(self, link: int) -> int | None:
        """The link a joint joins `link` to (-1: the base; None for the base itself)."""
        return None if link < 0 else self._parent[link]

    @property
    def moving_links(self) -> list[int]:
        """The links a controlled joint moves (the ones that can hit the floor)."""
        return self._moving_links

    def _links_moved_by_controlled_joints(self) -> list[int]:
        """Links downstream of a controlled joint: the ones that can hit the floor."""
        moved, ctrl = [], set(self.ctrl_index)
        for link in range(self._num_joints):
            up = link
            while up >= 0 and up not in ctrl:
                up = self._parent[up]
            if up >= 0:
                moved.append(link)
        return moved

    def _links_that_can_leave_the_floor(self) -> list[int]:
        """The moving links whose collision shapes are not below the floor whatever the joints: `lowest_point` looks
        at these only, as the contact check leaves out a link that touches the floor at home. A collision model can
        give the first link a shape that reaches under the base (example-robot-data's panda_collision.urdf: a
        sphere 9 cm into the floor), which kept every goal out of reach. Probed at the zero configuration and at
        random ones from a fixed seed (the same links on every machine); for an arm whose zero configuration has no
        link below the floor, at the zero configuration alone (every moving link)."""
        below, rng = set(self._moving_links), np.random.default_rng(0)
        for k in range(FLOOR_PROBES):
            self.reset(self.zero_home if k == 0 else self.random_configuration(rng))
            pb.performCollisionDetection(physicsClientId=self.client)
            below = {link for link in below if pb.getAABB(self.body, link, physicsClientId=self.client)[0][2] < 0.0}
            if not below:
                break
        return [link for link in self._moving_links if link not in below]

    def _link_position(self, link: int) -> np.ndarray:
        """World position (3,) m of a link's URDF frame. Both stepSimulation and resetJointState update the
        link frames, so PyBullet's forward-kinematics option is not needed (it would cost time per step)."""
        if link < 0:
            return self.base_position.copy()
        return np.array(pb.getLinkState(self.body, link, physicsClientId=self.client)[4])

    # ---- kinematics the home rule measures -------------------------------------------------------------------

    def position_jacobian(self, q: np.ndarray) -> np.ndarray:
        """(3, dof) Jacobian of the end-effector point over the controlled joints at `q`, by central differences
        of forward kinematics (exact to about JACOBIAN_STEP squared; no assumption about PyBullet's frames).
        Moves the arm."""
        q = np.asarray(q, dtype=np.float64)
        columns = []
        for k in range(self.dof):
            dq = np.zeros(self.dof)
            dq[k] = JACOBIAN_STEP
            columns.append((self.forward_kinematics(q + dq) - self.forward_kinematics(q - dq)) / (2 * JACOBIAN_STEP))
        self.forward_kinematics(q)
        return np.stack(columns, axis=1)

    def manipulability(self, q: np.ndarray) -> float:
        """Yoshikawa's position manipulability sqrt(det(J J^T)) at `q` (0 at a singularity; for an arm with fewer
        than 3 controlled joints, the product of J's singular values). Moves the arm."""
        return float(np.prod(np.linalg.svd(self.position_jacobian(q), compute_uv=False)))

    # ---- state -------------------------------------------------------------------------------------------

    def reset(self, q: np.ndarray) -> None:
        """Teleport the controlled joints to `q` (rad or m) at rest, and have the motors hold it."""
        for idx, qj in zip(self.ctrl_index, q):
            pb.resetJointState(self.body, idx, float(qj), 0.0, physicsClientId=self.client)
        self.command(np.asarray(q, dtype=np.float64).tolist())

    def command(self, q_target: Sequence[float]) -> None:
        """Position targets (rad or m) for the controlled joints, clipped to their limits; kept as a list in
        `self.q_target`. Plain Python: for a handful of joints it is several times cheaper than numpy."""
        self.q_target = [min(max(q, lo), hi) for q, lo, hi in zip(q_target, self._lower, self._upper)]
        self.send_motor_targets(self.q_target)

    def clamp_speeds(self, clamp: float | None) -> None:
        """Clamp every joint's speed at `clamp` (rad/s, m/s for a prismatic joint; None: PyBullet's own safety
        clamp) in the simulation itself, as a real arm's drives are capped: PyBullet's position servo otherwise
        overshoots the pace of its targets (measured under bang-bang actions: the Panda's joints at 2.7 times
        their URDF limit; the servo's own maxVelocity left them at 2.4 times). PyBullet clamps a whole body."""
        pb.changeDynamics(self.body, -1, maxJointVelocity=clamp or PYBULLET_MAX_JOINT_VELOCITY,
                          physicsClientId=self.client)

    def nominal_dynamics(self) -> dict:
        """The URDF's masses and inertias of the links the controlled joints move, and their joints' damping."""
        cached = self.__dict__.get("_nominal")
        if cached is None:
            infos = {link: pb.getDynamicsInfo(self.body, link, physicsClientId=self.client)
                     for link in self.moving_links}
            damping = {info[0]: info[6] for info in
                       (pb.getJointInfo(self.body, link, physicsClientId=self.client) for link in self.moving_links)}
            cached = self._nominal = {link: (info[0], tuple(info[2]), damping[link]) for link, info in infos.items()}
        return cached

    def set_dynamics(self, mass_factors: Sequence[float], damping_factors: Sequence[float],
                     gain_factors: Sequence[float]) -> None:
        """Scale each moving link's mass and inertia, and its joint's damping, by their factors (in `moving_links`
        order), and each controlled joint's position gain: what a real arm's dynamics differ from the URDF's by.
        Factors of 1 restore the URDF's."""
        for (link, (mass, inertia, damping)), factor, damped in zip(self.nominal_dynamics().items(), mass_factors,
                                                                   damping_factors):
            pb.changeDynamics(self.body, link, mass=mass * factor,
                              localInertiaDiagonal=[i * factor for i in inertia], jointDamping=damping * damped,
                              physicsClientId=self.client)
        self._position_gains = [POSITION_GAIN * factor for factor in gain_factors]

    def send_motor_targets(self, q_target: list[float]) -> None:
        """The bare PyBullet call behind `command` (also what the raw-physics benchmark replays)."""
        pb.setJointMotorControlArray(
            self.body, self.ctrl_index, pb.POSITION_CONTROL, targetPositions=q_target, forces=self.max_force,
            positionGains=self._position_gains, velocityGains=self._velocity_gains, physicsClientId=self.client,
        )

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions (rad or m) and velocities (rad/s or m/s) of the controlled joints: two (dof,) arrays."""
        states = pb.getJointStates(self.body, self.ctrl_index, physicsClientId=self.client)
        return np.array([s[0] for s in states]), np.array([s[1] for s in states])

    def ee_position(self) -> np.ndarray:
        """End-effector point (the link's origin or its tool point) in the world frame: (3,) metres."""
        if self._ee_offset_list is None:
            return self._link_position(self.ee_link)
        if self.ee_link < 0:
            return self.base_position + self.ee_offset
        state = pb.getLinkState(self.body, self.ee_link, physicsClientId=self.client)
        return np.array(pb.multiplyTransforms(state[4], state[5], self._ee_offset_list, (0.0, 0.0, 0.0, 1.0))[0])

    def ee_jacobian(self, ee_point: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """At the current state: (3, dof) Jacobian of the end-effector point (m/rad or m/m) and (3, dof) angular
        Jacobian of its link (rad/rad), over the controlled joints, world frame. PyBullet's analytic Jacobian
        (given the positions of every movable joint), moved from the link frame's origin, where PyBullet puts it,
        to the tool point: v_point = v_origin + w x r. Agrees with central differences of forward kinematics
        (tested). `ee_point`: the end-effector point if the caller has it already."""
        if self.ee_link < 0:
            return np.zeros((3, self.dof)), np.zeros((3, self.dof))
        jacobian = self.ee_jacobian_products(ee_point)
        linear, angular = np.array(jacobian.linear)[:, self._ctrl_columns], np.array(jacobian.angular)[:, self._ctrl_columns]
        rx, ry, rz = jacobian.offset
        return linear - np.array([[0.0, -rz, ry], [rz, 0.0, -rx], [-ry, rx, 0.0]]) @ angular, angular

    def ee_jacobian_products(self, ee_point: Sequence[float] | None = None,
                             q: Sequence[float] | None = None) -> EndEffectorJacobian:
        """The end-effector Jacobian at the current state as `EndEffectorJacobian`, whose transposed products
        are what the observation needs, in plain Python (the observation's fast path: building the numpy
        matrices of `ee_jacobian` cost about four times PyBullet's own Jacobian call, measured on the KUKA).
        `q`: the controlled joints' positions if the caller has just read them (used when they are all the
        movable joints)."""
        if self.ee_link < 0:
            zero = [[0.0] * self.dof] * 3
            return EndEffectorJacobian(zero, zero, list(range(self.dof)), (0.0, 0.0, 0.0))
        point = None  # the link's origin: no offset to measure
        if self._ee_offset_list is not None:
            point = self.ee_position() if ee_point is None else ee_point
        return self.point_jacobian_products(self.ee_link, point, self.movable_positions(q))

    def point_jacobian_products(self, link: int, point: Sequence[float] | None,
                                q_movable: Sequence[float]) -> EndEffectorJacobian:
        """The Jacobian of a point fixed on moving `link` as `EndEffectorJacobian`: at `point` (world, m; None: the
        link's frame origin), every movable joint at `q_movable` (`movable_positions`)."""
        zeros = [0.0] * len(q_movable)
        linear, angular = pb.calculateJacobian(self.body, link, [0.0, 0.0, 0.0], list(q_movable), zeros, zeros,
                                               physicsClientId=self.client)
        offset = (0.0, 0.0, 0.0)
        if point is not None:
            origin = pb.getLinkState(self.body, link, physicsClientId=self.client)[4]
            offset = (point[0] - origin[0], point[1] - origin[1], point[2] - origin[2])
        return EndEffectorJacobian(linear, angular, self._ctrl_columns, offset)

    def ee_link_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """World position (3,) m and orientation quaternion (x, y, z, w) of the end-effector link's frame."""
        if self.ee_link < 0:
            return self.base_position.copy(), np.array([0.0, 0.0, 0.0, 1.0])
        state = pb.getLinkState(self.body, self.ee_link, physicsClientId=self.client)
        return np.array(state[4]), np.array(state[5])

    def ee_link_rotation(self) -> np.ndarray:
        """The end-effector link frame's rotation matrix (3, 3) in the world: its columns are the link's axes."""
        return np.array(pb.getMatrixFromQuaternion(self.ee_link_pose()[1])).reshape(3, 3)

    def forward_kinematics(self, q: np.ndarray) -> np.ndarray:
        """End-effector position (3,) m for controlled-joint positions `q`. Moves the arm there: callers
        that need the old state must `reset` it afterwards."""
        for idx, qj in zip(self.ctrl_index, q):
            pb.resetJointState(self.body, idx, float(qj), 0.0, physicsClientId=self.client)
        return self.ee_position()

    def random_configuration(self, rng: np.random.Generator) -> np.ndarray:
        """Controlled-joint positions drawn uniformly within their limits."""
        return rng.uniform(self.lower, self.upper)

    def lowest_point(self) -> float:
        """Lowest z (m) of the bounding boxes of the links that the controlled joints move (but those that are below
        the floor whatever the joints: `_links_that_can_leave_the_floor`); +inf if there are none."""
        pb.performCollisionDetection(physicsClientId=self.client)  # refreshes the boxes after a teleport
        return min((pb.getAABB(self.body, link, physicsClientId=self.client)[0][2] for link in self._leave_floor),
                   default=float("inf"))

    def workspace_samples(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """End-effector positions (n, 3) m of `n` random configurations; leaves the arm at home."""
        points = np.array([self.forward_kinematics(self.random_configuration(rng)) for _ in range(n)])
        self.reset(self.home)
        return points
