"""The arm in a second physics engine, MuJoCo: the same URDF, motors that do what arm-a3c's PyBullet motors do, and
the state an observation is made of. Built from a `sim.robot.Robot` (the URDF it checked, its joints and end
effector), so every arm arm-a3c can load is one this can try; an arm MuJoCo cannot compile is one `UserError`.

What is the same as in PyBullet: the URDF's kinematics, masses and inertias (the file's, as PyBullet is told to
use), joint limits and damping, gravity, the 1/240 s physics step, the floor at z = 0, and no collisions of the
arm with itself (PyBullet loads arms without them; here the arm's shapes collide with the floor alone).

The motor. PyBullet's POSITION_CONTROL is not a spring: each physics step it asks the joint for the velocity
`kp * (q_target - q) / dt + kd * (0 - qdot) + qdot` (kp = `POSITION_GAIN`, kd = `VELOCITY_GAIN` = 1: the
velocity `kp * error / dt`), a constraint its solver meets with at most the URDF's effort, and the arm's clamp cuts
every joint's speed after the solve. The default motor model here, "constraint", does the same: each physics step
it solves for the torques that give those velocities from MuJoCo's inertia and forces, within the efforts
(`constraint_torques`), applies them through torque actuators and cuts the speeds after the step. The other two
models, a stiff velocity servo and a stiff position servo, were measured beside it (`MOTOR_MODELS`;
docs/transfer.md has the figures).

Meshes: MuJoCo reads .obj, .stl and .msh. Visual shapes are not loaded (MuJoCo's URDF compiler discards them:
the collision shapes are the arm's shape here); a collision mesh of another format (.dae) is left out, and
`MujocoArm.notes` says which.
"""

from __future__ import annotations

import importlib
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

import numpy as np

from arm_a3c.errors import UserError
from arm_a3c.sim.client import GRAVITY_MS2, PHYSICS_HZ
from arm_a3c.sim.contacts import CONTACT_DEPTH_M, ContactPairs
from arm_a3c.sim.robot import POSITION_GAIN, EndEffectorJacobian, Robot

MUJOCO_MESH_SUFFIXES = (".obj", ".stl", ".msh")  # the mesh files MuJoCo reads
SOLVER_SWEEPS = 20  # projected Gauss-Seidel sweeps of the motor torques at most (10 and 50 give the same arms)
SOLVER_TOLERANCE = 1e-6  # ... stopped when no torque changes by more than this fraction of its effort
HELD_POSITION_GAIN = 0.1  # PyBullet's default position gain, which holds the held joints (`Robot._classify_joints`)
# The "velocity" model's gain, as a multiple of the joint's largest inertia (kg m^2 over the arm's configurations,
# at least MIN_INERTIA) per physics step: the joint is within about 1/STIFFNESS of the commanded velocity after a
# step, as PyBullet's constraint meets it within its step (when the effort suffices).
VELOCITY_STIFFNESS = 20.0
MIN_INERTIA = 1e-4  # kg m^2 (kg for a prismatic joint)
INERTIA_SAMPLES = 32  # random configurations over which a joint's largest inertia is taken
MOTOR_MODELS = ("constraint", "velocity", "position")  # see the module's docstring
POSITION_SERVO_KP = 0.2 * PHYSICS_HZ ** 2  # the "position" model, N m/rad per kg m^2 of inertia: a 20% step correction
POSITION_SERVO_KV = 2.0 * PHYSICS_HZ * 0.45  # and its damping, N m s/rad per kg m^2: about critical


class MujocoMissing(UserError):
    """The `mujoco` package is not installed."""


def import_mujoco():
    """The `mujoco` module, or `MujocoMissing` saying how to install it. Its warnings go to stderr, once each, and
    not into a MUJOCO_LOG.TXT in the user's folder (MuJoCo's own handler appends them there)."""
    try:
        mujoco = importlib.import_module("mujoco")
    except ImportError:
        raise MujocoMissing("the second simulator needs the mujoco package: pip install 'arm-a3c[mujoco]' (or pip "
                            "install mujoco)") from None
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_say_warning)
    return mujoco


_WARNED: set[str] = set()


def _say_warning(text: str) -> None:
    """MuJoCo's warning handler: each warning once on stderr."""
    kind = text.split(" at ")[0].split(". ")[0]  # without its DOF, time or count
    if kind not in _WARNED:
        _WARNED.add(kind)
        print(f"MuJoCo warning: {text.strip()}", file=sys.stderr, flush=True)


def mujoco_urdf(robot: Robot) -> tuple[str, list[str]]:
    """The text MuJoCo compiles for `robot`'s URDF (mesh names are already the checked files' absolute paths), and
    notes for the user on the meshes MuJoCo cannot read: visual ones (the collision shapes stand for them, as for
    every visual here) and collision ones (left out)."""
    root = ET.fromstring(robot.urdf.checked_xml)
    notes, dropped = [], []
    for link in root.findall("link"):
        for visual in link.findall("visual"):
            link.remove(visual)
        for collision in link.findall("collision"):
            mesh = collision.find("geometry/mesh")
            if mesh is not None and Path(mesh.get("filename", "")).suffix.lower() not in MUJOCO_MESH_SUFFIXES:
                link.remove(collision)
                file = Path(mesh.get("filename", ""))
                dropped.append((f"{link.get('name')} ({file.name})", file.suffix.lower()))
    if dropped:
        notes.append(f"MuJoCo reads no {', '.join(sorted({suffix for _, suffix in dropped}))} meshes: the collision "
                     f"meshes of {', '.join(named for named, _ in dropped)} are left out (the link keeps "
                     f"its mass; its contacts are not checked); convert them to .obj or .stl")
    unread = sorted({v.mesh_path.name for v in robot.urdf.visuals
                     if v.mesh_path is not None and v.mesh_path.suffix.lower() not in MUJOCO_MESH_SUFFIXES})
    if unread:
        notes.append(f"MuJoCo reads no {', '.join(sorted({Path(n).suffix for n in unread}))} meshes: the visual meshes "
                     f"{', '.join(unread)} are replaced by the links' collision shapes")
    # MuJoCo's own URDF settings: keep every link a body of its own (the end effector may be a fixed link) and
    # the absolute mesh paths as they are
    extension = ET.Element("mujoco")
    ET.SubElement(extension, "compiler", discardvisual="true", fusestatic="false", strippath="false",
                  balanceinertia="true")
    root.insert(0, extension)
    return ET.tostring(root, encoding="unicode"), notes


class MujocoArm:
    """`robot`'s URDF in MuJoCo: its controlled joints driven to position targets as PyBullet's motors drive
    them, its held joints held at rest, its end-effector point and Jacobian, its contacts."""

    def __init__(self, robot: Robot, speed_clamp: float | None, motor: str = "constraint"):
        """`speed_clamp`: the joints' speed cap, rad/s (the environment's `JointSpeeds.clamp`; None: none).
        `motor`: one of `MOTOR_MODELS`."""
        mujoco = self.mujoco = import_mujoco()
        self.robot = robot
        self.motor = motor
        self.dt = 1.0 / PHYSICS_HZ
        xml, self.notes = mujoco_urdf(robot)
        try:
            spec = mujoco.MjSpec.from_string(xml)
            spec.option.timestep = self.dt
            spec.option.gravity = [0.0, 0.0, GRAVITY_MS2]
            for geom in spec.geoms:  # the arm's shapes touch the floor, not each other (contype & conaffinity)
                geom.contype, geom.conaffinity = 1, 0
            spec.worldbody.add_geom(name="arm_a3c_floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0.0, 0.0, 1.0],
                                    contype=0, conaffinity=1)
            root = spec.worldbody.first_body()
            root.pos = (np.asarray(root.pos) + robot.base_position).tolist()
            self.model = spec.compile()
        except Exception as err:  # MuJoCo's compiler says why in its message (a mesh, an inertia, a joint)
            reason = " ".join(str(err).split()).removeprefix("Error: ")
            raise UserError(f"MuJoCo cannot load {robot.spec.urdf_path}: {reason}") from None
        model = self.model
        self.data = mujoco.MjData(model)
        self.floor_geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "arm_a3c_floor")

        def joint_id(name: str) -> int:
            found = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
            if found < 0:
                raise UserError(f"MuJoCo cannot load {robot.spec.urdf_path} as PyBullet does: it has no joint {name}")
            return found

        controlled = [joint_id(j.name) for j in robot.controlled]
        held_joints = [j for j in robot.joints if j.role == "held"]
        held = [joint_id(j.name) for j in held_joints]
        self.qpos_ctrl = model.jnt_qposadr[controlled].copy()
        self.dof_ctrl = model.jnt_dofadr[controlled].copy()
        self.qpos_held = model.jnt_qposadr[held].copy()
        self.dof_held = model.jnt_dofadr[held].copy()
        self.held_rest = np.array([j.rest for j in held_joints])
        self.lower, self.upper = robot.lower, robot.upper
        self.gains = np.array([POSITION_GAIN] * robot.dof + [HELD_POSITION_GAIN] * len(held))
        self.dofs = np.concatenate([self.dof_ctrl, self.dof_held]).astype(int)
        self.qpos_all = np.concatenate([self.qpos_ctrl, self.qpos_held]).astype(int)
        self.efforts = np.array([j.effort for j in robot.controlled] + [j.effort for j in held_joints])
        self.speed_clamp = speed_clamp
        self.ee_body = self.body_of(robot.ee_link)
        self.ee_offset = robot.ee_offset.copy()
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._mass = np.zeros((model.nv, model.nv))
        self._dof_qpos = model.jnt_qposadr[model.dof_jntid]  # hinge and slide joints: one position per velocity
        self.model = self._with_motors(spec)
        self.data = mujoco.MjData(self.model)
        self.reset(robot.home)

    def body_of(self, link: int) -> int:
        """The MuJoCo body of PyBullet link `link` (-1: the base), by the URDF link's name."""
        name = self.robot.base_link_name if link < 0 else self.robot.link_names[link]
        body = self.mujoco.mj_name2id(self.model, self.mujoco.mjtObj.mjOBJ_BODY, name)
        if body < 0:
            raise UserError(f"MuJoCo cannot load {self.robot.spec.urdf_path} as PyBullet does: it has no link {name}")
        return body

    def _largest_inertias(self) -> np.ndarray:
        """Each driven joint's largest diagonal inertia (kg m^2, kg) over random configurations."""
        mujoco, model, data = self.mujoco, self.model, self.data
        rng = np.random.default_rng(0)
        largest = np.full(len(self.dofs), MIN_INERTIA)
        dense = np.zeros((model.nv, model.nv))
        for _ in range(INERTIA_SAMPLES):
            data.qpos[self.qpos_ctrl] = rng.uniform(self.lower, self.upper)
            data.qpos[self.qpos_held] = self.held_rest
            mujoco.mj_forward(model, data)
            mujoco.mj_fullM(model, data, dense)
            largest = np.maximum(largest, dense[self.dofs, self.dofs])
        return largest

    def _with_motors(self, spec) -> object:
        """The model again with an actuator on every driven joint (controlled, then held) of `self.motor`'s kind."""
        mujoco = self.mujoco
        inertia = self._largest_inertias()
        names = [j.name for j in self.robot.controlled] + [j.name for j in self.robot.joints if j.role == "held"]
        for name, effort, mass in zip(names, self.efforts, inertia):
            actuator = spec.add_actuator(name=f"arm_a3c_{name}", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
            if self.motor == "constraint":  # a torque motor; `step` solves for the torque
                actuator.set_to_motor()
            elif self.motor == "velocity":
                actuator.set_to_velocity(kv=VELOCITY_STIFFNESS * mass * PHYSICS_HZ)
                # no force limit: MuJoCo's integration leaves a clamped servo out of its implicit part, and it chatters
                spec.joint(name).actfrclimited = mujoco.mjtLimited.mjLIMITED_FALSE
            else:
                actuator.set_to_position(kp=POSITION_SERVO_KP * mass, kv=POSITION_SERVO_KV * mass)
            if self.motor != "velocity":
                actuator.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
                actuator.forcerange = [-effort, effort]
        # Euler's step is Bullet's (the velocity first, then the position with it); MuJoCo's Euler integrates joint
        # damping implicitly. The velocity servo needs the implicit integrator for its stiffness.
        spec.option.integrator = (mujoco.mjtIntegrator.mjINT_IMPLICITFAST if self.motor == "velocity"
                                  else mujoco.mjtIntegrator.mjINT_EULER)
        try:
            return spec.compile()
        except Exception as err:
            raise UserError(f"MuJoCo cannot load {self.robot.spec.urdf_path}: "
                            f"{' '.join(str(err).split()).removeprefix('Error: ')}") from None

    # ---- state -------------------------------------------------------------------------------------------

    def reset(self, q: Sequence[float]) -> None:
        """Controlled joints at `q` (rad or m), held joints at rest, all at rest, targets there."""
        data = self.data
        data.qpos[:] = self.model.qpos0
        data.qvel[:] = 0.0
        data.qpos[self.qpos_ctrl] = q
        data.qpos[self.qpos_held] = self.held_rest
        self.targets = np.concatenate([np.asarray(q, dtype=np.float64), self.held_rest])
        self.mujoco.mj_forward(self.model, data)

    def command(self, q_target: Sequence[float]) -> None:
        """Position targets (rad or m) of the controlled joints, clipped to their limits."""
        self.targets[:len(self.lower)] = np.clip(q_target, self.lower, self.upper)

    def motor_velocities(self) -> np.ndarray:
        """The velocity PyBullet's motor asks of each driven joint this step: `kp * (target - q) / dt`."""
        return self.gains * (self.targets - self.data.qpos[self.qpos_all]) / self.dt

    def step(self) -> None:
        """One physics step of 1/240 s, the motors driving each joint towards its target as PyBullet's do."""
        mujoco, model, data = self.mujoco, self.model, self.data
        if self.motor == "position":
            data.ctrl[:] = self.targets
            mujoco.mj_step(model, data)
        elif self.motor == "velocity":
            velocity = self.motor_velocities()
            clamp = self.speed_clamp
            data.ctrl[:] = velocity if clamp is None else np.clip(velocity, -clamp, clamp)
            mujoco.mj_step(model, data)
        else:
            mujoco.mj_step1(model, data)
            data.ctrl[:] = self.constraint_torques(self.motor_velocities())
            mujoco.mj_step2(model, data)
            if self.speed_clamp is not None:
                self._clamp_speeds(self.speed_clamp)

    def _clamp_speeds(self, clamp: float) -> None:
        """Every joint's speed cut to `clamp` after the step, the position moved with the cut speed, as PyBullet
        clamps a body's joints after its solver (the torques that drove the joint past it still moved the rest)."""
        data = self.data
        speeds = data.qvel
        if np.abs(speeds).max() <= clamp:
            return
        cut = np.clip(speeds, -clamp, clamp)
        data.qpos[self._dof_qpos] -= self.dt * (speeds - cut)
        data.qvel[:] = cut

    def constraint_torques(self, wanted: np.ndarray) -> np.ndarray:
        """The torques (N m, N) that bring the driven joints to the velocities `wanted` at the end of this step,
        each within its effort: PyBullet's motor constraint, solved as its solver does (a joint whose torque runs
        out gets its effort, the others what it leaves them). After `mj_step1`: the step's inertia and forces."""
        mujoco, model, data, h = self.mujoco, self.model, self.data, self.dt
        mujoco.mj_fullM(model, data, self._mass)
        # Euler's velocity update with implicit damping: v' = v + h (M + h D)^-1 (tau + f)
        inverse = np.linalg.inv(self._mass + h * np.diag(model.dof_damping))
        dofs = self.dofs
        reach = h * inverse[np.ix_(dofs, dofs)]  # how each driven joint's velocity answers their torques
        free_motion = data.qvel[dofs] + h * (inverse @ (data.qfrc_passive - data.qfrc_bias))[dofs]
        needed = wanted - free_motion
        torque = np.linalg.solve(reach, needed)  # every joint exactly at its wanted velocity
        if (np.abs(torque) <= self.efforts).all():
            return torque
        # Some joint's effort runs out: projected Gauss-Seidel over the joints, as Bullet's solver does, from the
        # clipped exact torques. The order of the joints and more sweeps change nothing measurable.
        torque = np.clip(torque, -self.efforts, self.efforts)
        rows, efforts = reach.tolist(), self.efforts.tolist()
        missing = (needed - reach @ torque).tolist()  # velocity each joint still lacks
        t = torque.tolist()
        for _ in range(SOLVER_SWEEPS):
            largest = 0.0
            for i, row in enumerate(rows):
                new = min(max(t[i] + missing[i] / row[i], -efforts[i]), efforts[i])
                change = new - t[i]
                if change:
                    t[i] = new
                    largest = max(largest, abs(change) / efforts[i])
                    for k, reach_k in enumerate(rows):
                        missing[k] -= reach_k[i] * change
            if largest < SOLVER_TOLERANCE:
                break
        return np.array(t)

    def joint_state(self) -> tuple[list[float], list[float]]:
        """Positions (rad or m) and velocities (rad/s or m/s) of the controlled joints."""
        return self.data.qpos[self.qpos_ctrl].tolist(), self.data.qvel[self.dof_ctrl].tolist()

    def ee_position(self) -> list[float]:
        """The end-effector point (the link's origin or its tool point), world frame, m."""
        data, body = self.data, self.ee_body
        return (data.xpos[body] + data.xmat[body].reshape(3, 3) @ self.ee_offset).tolist()

    def ee_jacobian_products(self, ee_point: Sequence[float]) -> EndEffectorJacobian:
        """The end-effector point's Jacobian at the present state (`mj_jac` at the point itself, so no offset),
        over the controlled joints' columns."""
        self.mujoco.mj_jac(self.model, self.data, self._jacp, self._jacr, np.asarray(ee_point, dtype=np.float64),
                           self.ee_body)
        return EndEffectorJacobian(self._jacp.tolist(), self._jacr.tolist(), self.dof_ctrl.tolist(), (0.0, 0.0, 0.0))

    def forward_kinematics(self, q: Sequence[float]) -> list[float]:
        """The end-effector point (m) at controlled-joint positions `q`, held joints at rest. Moves the arm."""
        self.reset(q)
        return self.ee_position()

    # ---- contacts ----------------------------------------------------------------------------------------

    def contact_geoms(self, pairs: ContactPairs) -> tuple[list[tuple[int, int]], list[int]]:
        """The geom pairs whose overlap is a self-contact (from `pairs`, found in PyBullet, by link name), and the
        geoms whose touching the floor is a floor contact."""
        model = self.model
        geoms = {}
        for body in range(model.nbody):
            geoms[body] = [g for g in range(model.ngeom) if model.geom_bodyid[g] == body and g != self.floor_geom]
        self_pairs = [(ga, gb) for a, b in pairs.checked
                      for ga in geoms[self.body_of(a)] for gb in geoms[self.body_of(b)]]
        floor = [g for link in pairs.floor_links for g in geoms[self.body_of(link)]]
        return self_pairs, floor

    def contacts_now(self, self_pairs: list[tuple[int, int]], floor: list[int]) -> tuple[bool, bool]:
        """(a self-contact, a floor contact) now: two shapes of a checked pair overlapping by more than
        `CONTACT_DEPTH_M`, a floor link's shape touching the floor (as `sim.contacts` counts them in PyBullet)."""
        mujoco, model, data = self.mujoco, self.model, self.data
        self_contact = any(mujoco.mj_geomDistance(model, data, a, b, 0.0, None) < -CONTACT_DEPTH_M
                           for a, b in self_pairs)
        floor_contact = any(mujoco.mj_geomDistance(model, data, g, self.floor_geom, 0.0, None) < 0.0 for g in floor)
        return self_contact, floor_contact
