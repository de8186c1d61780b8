"""What a task is: the `Task` base class every task file implements, and the shapes a task asks the viewer to draw.

An environment (`envs.arm_env.ArmEnv`) owns the simulation, the robot and the control loop; its task owns the
goal. Each episode the environment restores the home state, calls `reset` (the task samples a goal that is
reachable by construction, and may move the arm to find it), and puts the arm at its home pose. Each step it
commands the joints, calls `advance` (a moving goal moves), steps the physics, and asks the task for its part of
the observation (`observe`) and for the step's reward, `terminated` and info (`judge`).

A task's info always holds `is_success` and `distance` (m, end-effector point to the goal's position), and the
task's own figures: `metrics` maps each episode figure's name to the info key that holds it on the last step
(every task reports `final_distance_m`; pose adds `orientation_error_deg`, and so on). Evaluations average them as
`mean_<name>`.

For the viewer a task writes a few floats per step (`draw_size`, `draw_data`), which a training's workers put on
the live board beside the joint positions; `shapes` turns one step's floats back into spheres, boxes, frames and
paths, and `hud` into a line of text. So the viewer draws any task without knowing which it is.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from arm_a3c.errors import UserError
from arm_a3c.sim.render import add_marker, move_marker
from arm_a3c.sim.robot import EndEffectorJacobian, Robot

TARGET_SAMPLING_TRIES = 1000  # random configurations tried before giving up on a robot's workspace
TARGET_RGBA = (0.1, 0.85, 0.2, 0.9)  # the goal's marker in PyBullet pictures
GOAL_RGB = (26, 217, 51)
# A goal coordinate beyond this (m) is a slip (millimetres given as metres, say); a far larger one (1e300)
# overflows the distance to it.
MAX_TARGET_M = 1000.0
# Goals lie where the arm can get in time: each joint of a goal's configuration within this fraction of the
# travel an episode allows at that joint's speed (steps x largest step per control period) of its home position,
# the rest of the episode left to settle and hold. A revolute joint that travels half a turn in that time
# reaches every angle, and a wider range than the joint's limits changes nothing: such joints are drawn over their
# whole range, as before (the KUKA, the Panda and the xArm6 keep every goal they had); an arm whose URDF limits
# its speed to a crawl (0.63 rad/s: 1.3 rad per episode) no longer gets goals no episode is long enough for.
GOAL_TRAVEL_FRACTION = 0.75


@dataclass(frozen=True)
class Sphere:
    centre: np.ndarray  # (3,) m
    radius: float  # m
    rgb: tuple[int, int, int] = GOAL_RGB
    ring: bool = True  # the viewer also outlines it over everything drawn: a goal stays seen behind the robot


@dataclass(frozen=True)
class Box:
    centre: np.ndarray  # (3,) m
    half_extents: np.ndarray  # (3,) m, axis-aligned
    rgb: tuple[int, int, int] = (200, 90, 60)


@dataclass(frozen=True)
class Frame:
    """Coordinate axes: x red, y green, z blue."""

    origin: np.ndarray  # (3,) m
    rotation: np.ndarray  # (3, 3): the axes as columns
    length: float  # m
    width: int = 3  # pixels


@dataclass(frozen=True)
class Polyline:
    points: np.ndarray  # (n, 3) m
    rgb: tuple[int, int, int] = (60, 160, 80)


Shape = Sphere | Box | Frame | Polyline


@dataclass(frozen=True)
class Setting:
    """One of a task's own settings, declared once, in the task's file: it becomes a field of `EnvConfig` and of
    `TrainConfig` (so a saved run holds it) and a flag (`--name-with-dashes`), checked by `valid`."""

    name: str
    default: float | int  # its type is the setting's: an int default makes a whole-number setting
    help: str  # the flag's line in --help, starting with the task's name
    valid: Callable[[Any], bool]  # called with a finite number (a whole one for an int default)
    requirement: str  # what `valid` asks for, in words: "in (0, 180]"


class Task(ABC):
    """A skill for any arm. Subclasses set the class attributes, implement the abstract methods, and are
    registered in `arm_a3c.tasks` (one file per task)."""

    name: ClassVar[str]  # the --task value
    gym_id: ClassVar[str]  # its gymnasium ID
    summary: ClassVar[str]  # one line for --help and error messages
    orientation: ClassVar[bool] = False  # the task sets the end effector's orientation: wrist rolls are controlled
    metrics: ClassVar[dict[str, str]] = {"final_distance_m": "distance"}  # episode figure -> info key (last step)
    draw_size: ClassVar[int] = 3  # floats of `draw_data` per step
    placeable: ClassVar[bool] = False  # `reset(options={"target": (x, y, z)})` places the goal (the viewer's click)
    marker_rgba: ClassVar[tuple[float, float, float, float]] = TARGET_RGBA
    settings: ClassVar[tuple[Setting, ...]] = ()  # the task's own settings (read as `self.config.NAME`)
    # the observation's clearance part (`sim.clearance`) when `--clearance-observation` is "task" (the default)
    clearance: ClassVar[bool] = False

    def __init__(self, env):
        """`env`: the `envs.arm_env.ArmEnv` being built (its client, robot, config and reach are ready)."""
        self.env = env
        self.robot: Robot = env.robot
        self.config = env.config
        self.target = np.zeros(3)  # the goal's position (m): every task has one
        self.min_target_radius_m = self.config.min_target_radius_fraction * env.reach_m  # goals this far off the axis
        # The goal's marker, and every PyBullet body that only shows the goal in pictures (no collision).
        self.marker = add_marker(env.client, self.config.success_radius_m, self.marker_rgba)
        self.markers: list[int] = [self.marker]
        # The goal's position as a list, and its distance from the end-effector point as of `observe_target`:
        # plain Python, for the per-step arithmetic on 3-vectors, where numpy costs more than the sums.
        self._target_list, self._distance, self._to_target = [0.0, 0.0, 0.0], 0.0, [0.0, 0.0, 0.0]
        # The error (m) of the goal's position as the next observation sees it (`EnvConfig.goal_noise`; None:
        # seen as it is). Set by the environment before each observation; judged goals are always the true ones.
        self.goal_error: list[float] | None = None
        # With self-collision, whether the arm where it is now touches neither itself nor the floor: goals come
        # from such configurations only (`sample_configuration`'s `free`). None: contacts are not the task's.
        self.contact_free: Callable[[], bool] | None = env.contacts.free if env.contacts is not None else None
        # The joint box goals are drawn from (`goal_box`): None where it is the joints' whole range.
        self.goal_low, self.goal_high = goal_box(self.robot, env.max_joint_step, self.config.episode_steps)

    def sample_goal(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(q, end-effector point) of a goal: `sample_configuration` within the goal box, with this task's height,
        radius and contact rules. Moves the arm: the caller resets it afterwards."""
        return sample_configuration(self.robot, rng, self.config.min_target_height_m, self.min_target_radius_m,
                                    low=self.goal_low, high=self.goal_high, free=self.contact_free)

    # What the scripted oracle (`envs.oracle`) reads of a goal besides `target` (tasks that have one set it):
    target_orientation: list[float] | None = None  # the end effector's goal orientation, xyzw quaternion (pose)
    goal_configuration: np.ndarray | None = None  # the joint configuration the goal was sampled from (pose, avoid)
    obstacle_bodies: Sequence[int] = ()  # PyBullet bodies the arm must not touch (avoid)

    @property
    def next_target(self) -> np.ndarray:
        """Where the goal will be after the next step (a moving goal's; the oracle aims there)."""
        return self.target

    @property
    def obs_size(self) -> int:
        """Floats of `observe`: the sizes of `observation_parts`."""
        return sum(size for _, size, _ in self.observation_parts())

    @classmethod
    def check_robot(cls, robot: Robot) -> None:
        """Refuse a robot that cannot do this task (`UserError` naming the problem and the fix)."""

    # ---- an episode -------------------------------------------------------------------------------------

    @abstractmethod
    def reset(self, rng: np.random.Generator, options: dict | None) -> None:
        """Sample a new goal with `rng` (the episode's generator). May move the arm: the environment puts it at
        home afterwards. `options` are `env.reset`'s (the viewer's `{"target": (x, y, z)}`, say)."""

    def start(self) -> None:
        """After the arm is at home and before the first observation (a task that remembers the start)."""

    def advance(self, step: int) -> None:
        """Before the physics of control step `step` (1-based): a moving goal moves to where it is after it."""

    def after_substep(self) -> None:
        """After each physics substep of a control step (a task that must see contacts between observations)."""

    def observation_parts(self) -> list[tuple[str, int, str]]:
        """The task's part of the observation as (name, size, meaning) in order, what `observe` returns (its sizes
        are `obs_size`; exported policies' descriptions list them)."""
        return [("target_m", 3, "the goal's position, world frame"),
                ("target_minus_end_effector_m", 3, "goal position minus end-effector point")]

    def jacobian_parts(self) -> list[tuple[str, int, str]]:
        """The parts that `jacobian_observe` adds after `observe`'s when the observation holds them
        (`EnvConfig.jacobian_observation`): name, size, meaning."""
        return [("jacobian_t_position_error", self.robot.dof,
                 "J^T (goal - end-effector point), J the end-effector point's Jacobian over the controlled joints: "
                 "per joint, how fast moving it closes the distance (m^2/rad or m^2/m)")]

    def jacobian_observe(self, jacobian: EndEffectorJacobian) -> list[float]:
        """The Jacobian parts, after `observe` (it keeps the goal's error), given the end effector's Jacobian."""
        return jacobian.linear_t(self._to_target)

    @abstractmethod
    def observe(self, ee: list[float]) -> list[float]:
        """The task's part of the observation (`obs_size` floats), given the end-effector point (m)."""

    @abstractmethod
    def judge(self, action: list[float], step: int) -> tuple[float, bool, dict]:
        """(reward, terminated, info) of the step just observed; info holds `is_success`, `distance` and the
        keys `metrics` names."""

    def set_target(self, target: np.ndarray) -> None:
        """Move the goal's position (m) and its marker for the rest of the episode (scripted demos, the viewer's
        click, a moving goal)."""
        self.target = np.array(target, dtype=np.float64)
        self._target_list = self.target.tolist()
        move_marker(self.env.client, self.marker, self.target)

    def observe_target(self, ee: list[float]) -> list[float]:
        """The goal's position and the goal minus the end-effector point (6 floats, m), the first part of every
        task's observation, as a sensor sees the goal (`goal_error`); keeps the true distance for `judge`."""
        tx, ty, tz = self._target_list
        to_target = [tx - ee[0], ty - ee[1], tz - ee[2]]
        self._distance = math.sqrt(to_target[0] ** 2 + to_target[1] ** 2 + to_target[2] ** 2)
        if self.goal_error is None:
            self._to_target = to_target
            return self._target_list + to_target
        seen = [tx + self.goal_error[0], ty + self.goal_error[1], tz + self.goal_error[2]]  # a noisy sensor's goal
        self._to_target = [seen[0] - ee[0], seen[1] - ee[1], seen[2] - ee[2]]
        return seen + self._to_target

    def action_penalty(self, action: list[float]) -> float:
        """`action_cost` times the mean squared action: the reward every task subtracts for moving."""
        return self.config.action_cost * sum(a * a for a in action) / len(action)

    # ---- what the viewer draws --------------------------------------------------------------------------

    def draw_data(self) -> list[float]:
        """`draw_size` floats describing this step for the viewer (default: the goal's position)."""
        return self._target_list

    def shapes(self, draw: np.ndarray, index: int, ee: np.ndarray) -> list[Shape]:
        """What to draw at step `index` of an episode whose draw data is `draw` (steps, draw_size), with the
        end-effector point at `ee` (m; the viewer draws the point itself)."""
        return [Sphere(draw[index, :3], self.config.success_radius_m)]

    def hud(self, draw: np.ndarray, index: int, ee: np.ndarray) -> str:
        """The task's figures at step `index`, one line for the viewer's heads-up display."""
        return f"distance {float(np.linalg.norm(ee - draw[index, :3])):.3f} m"


def sample_configuration(robot: Robot, rng: np.random.Generator, min_height_m: float, min_radius_m: float,
                         low: np.ndarray | None = None, high: np.ndarray | None = None,
                         free: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(q, end-effector point): a random configuration (uniform within the joint limits, or within [low, high])
    whose end-effector point is at least `min_height_m` above the floor and `min_radius_m` from the vertical axis
    through the base, with every moving link above the floor, and `free()` with the arm there (with
    self-collision: no link touching another or the floor, `Task.contact_free`). Leaves the arm there (the caller
    resets it)."""
    for _ in range(TARGET_SAMPLING_TRIES):
        q = robot.random_configuration(rng) if low is None else rng.uniform(low, high)
        point = robot.forward_kinematics(q)
        off_axis = np.linalg.norm(point[:2] - robot.base_position[:2])
        if (point[2] >= min_height_m and off_axis >= min_radius_m and robot.lowest_point() >= 0.0
                and (free is None or free())):
            return q, point
    raise UserError(
        f"robot '{robot.name}': no reachable point at least {min_height_m} m above the floor and "
        f"{min_radius_m:.2f} m from its base" + (" with no link touching another" if free is not None else "")
        + f" in {TARGET_SAMPLING_TRIES} random poses; check its joint limits and that its base sits on the floor "
        "at z = 0" + (" (--no-self-collision lets links overlap)" if free is not None else "")
    )


def goal_box(robot: Robot, max_step: Sequence[float], episode_steps: int
             ) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """(low, high): the controlled joints' positions a goal may have, within `GOAL_TRAVEL_FRACTION` of an
    episode's travel at each joint's largest step per control period (`max_step`, rad or m) of the home pose, and
    within the limits; a revolute joint that travels half a turn or more keeps its whole range. (None, None)
    when every joint keeps its whole range (the goals are drawn as `Robot.random_configuration` draws them)."""
    travel = GOAL_TRAVEL_FRACTION * episode_steps * np.asarray(max_step, dtype=np.float64)
    revolute = np.array([j.type != "prismatic" for j in robot.controlled])
    free = revolute & (travel >= math.pi)
    low = np.where(free, robot.lower, np.maximum(robot.lower, robot.home - travel))
    high = np.where(free, robot.upper, np.minimum(robot.upper, robot.home + travel))
    if (low == robot.lower).all() and (high == robot.upper).all():
        return None, None
    return low, high


def goal_position(value, what: str) -> np.ndarray:
    """`value` (a goal placed by the user: `env.set_target`, `reset(options={"target": ...})`) as a position (3,)
    m; anything else is a `ValueError` that says what `what` must be."""
    try:
        point = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        point = None
    if point is None or point.shape != (3,) or not (np.abs(point) <= MAX_TARGET_M).all():  # NaN fails too
        raise ValueError(f"{what} must be 3 finite numbers (x, y, z in m, each within ±{MAX_TARGET_M:,g}), not "
                         f"{value!r:.60}")
    return point
