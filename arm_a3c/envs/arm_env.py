"""The arm environments (`ArmReach-v0`, and one gym ID per task): a gymnasium environment that composes a PyBullet
client, a `Robot` and a `Task` (`arm_a3c.tasks`). `make_env(settings)` builds every environment of the project.

Control: each action in [-1, 1] per controlled joint moves that joint's position target by at most its step
(`max_joint_step_rad`, or `max_joint_step_m` for prismatic joints, or less where the URDF's speed limits ask it:
`joint_speeds`) from where the joint is now; the motors then track it for `substeps` physics steps of 1/240 s.
With the defaults that is 24 control steps per second (as panda-gym's 25) and episodes of 50 steps, 2.08
seconds. An episode ends by the time limit (`truncated=True`) or when its task says it ended (`terminated=True`:
a collision, say); success is judged on the last step.

Self-collision (`self_collision`, on by default): PyBullet simulates the contacts of the arm's links with each
other (the pairs `sim.contacts` finds, less a settings file's), as it always did with the floor, and a contact between
two such links, or between a moving link and the floor, ends the episode (`terminated=True`, a real terminal) with
reward `-contact_penalty` on that step; it is never a success. Goals are sampled from configurations free of both.

Observation (float32): controlled-joint positions scaled to [-1, 1] by their limits (dof), joint velocities
in rad/s or m/s (dof), end-effector point (3, m: the link's origin or its tool point), then the task's part
(reach: target position (3, m) and target minus end-effector point (3, m)). Every episode starts at the robot's
home pose (`Robot.home`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import gymnasium
import numpy as np

from arm_a3c.errors import SettingError
from arm_a3c.limits import MAX_REWARD_WEIGHT
from arm_a3c.sim.assets import resolve_robot
from arm_a3c.sim.client import PHYSICS_HZ, connect, disconnect, load_floor
from arm_a3c.sim.client import pybullet as pb
from arm_a3c.sim.clearance import Clearance
from arm_a3c.sim.contacts import ContactPairs, SimulatedContacts, contacts_now, find_contact_pairs, simulate_pairs
from arm_a3c.sim.render import Camera, render_rgb
from arm_a3c.sim.robot import EndEffectorJacobian, Robot
from arm_a3c.tasks import DEFAULT_TASK, TASK_SETTINGS, task_class
from arm_a3c.tasks.base import Shape, Sphere, goal_position

ROBOT_SETTINGS = ("robot", "ee_link", "home", "ee_offset_m")  # make_env's settings that are not EnvConfig's
WORKSPACE_SAMPLES = 2000  # random configurations used to estimate the reach and workspace
# What the viewer is told of a step's contact (`ArmEnv.draw_data`, after the task's): its kind, where on the arm (m)
NO_CONTACT, SELF_CONTACT, FLOOR_CONTACT = 0.0, 1.0, 2.0
CONTACT_DRAW_SIZE = 4
CONTACT_MARK_FRACTION = 0.04  # the viewer's mark of a contact: a sphere this fraction of the reach across
CONTACT_MARK_RGB = (230, 20, 20)  # as avoid's contact


@dataclass(frozen=True)
class CommonEnvConfig:
    """The environment's settings that every task shares; `EnvConfig` adds each task's own (`Task.settings`)."""

    task: str = DEFAULT_TASK  # what the arm learns: a name in arm_a3c.tasks.TASKS
    substeps: int = 10  # physics steps of 1/240 s per control step (10 -> 24 Hz control)
    episode_steps: int = 50  # control steps per episode (50 at 24 Hz -> 2.08 s)
    max_joint_step_rad: float = 0.1  # largest position-target change per control step, revolute joints
    max_joint_step_m: float = 0.02  # the same for prismatic joints
    success_radius_m: float = 0.05  # success: end effector this close to the target at the episode's end
    min_target_height_m: float = 0.05  # targets at least this high above the floor
    min_target_radius_fraction: float = 0.15  # targets at least this fraction of the reach from the base axis
    action_cost: float = 1.0  # reward penalty per unit of mean squared action
    success_bonus: float = 1.0  # reward added on each step within the success radius
    # The observation ends with the Jacobian transpose of the goal's error, one value per controlled joint (and for
    # pose a second such part, of the orientation's error): the direction in joint space that closes it.
    jacobian_observation: bool = True
    # Each joint moves at most its URDF velocity limit: the simulation clamps the joints' speed at the arm's lowest
    # limit (a real arm's drives are capped; PyBullet's servo overshoots its targets' pace), and each target's step
    # per control step is paced to match (`joint_speeds`).
    urdf_speed_limits: bool = True
    # The arm's links collide with each other (and not only with the floor), and a link touching another, or a
    # moving link touching the floor, ends the episode (a real terminal) with a penalty: a real arm would break.
    self_collision: bool = True
    contact_penalty: float = 20.0  # reward of the step where the arm touches itself or the floor (self_collision)
    # The observation ends with how near the arm is to touching itself, the floor or an obstacle, and the direction
    # in joint space that takes the nearest pairs apart (`sim.clearance`): "on", "off", or "task", the task's
    # choice (`Task.clearance`: on for avoid, where it helps learning; off for the others, where it slows it)
    clearance_observation: str = "task"
    # What a real arm adds, off by default (issue 34 measures when to turn them on): its controller answers late,
    # and its encoders are noisy.
    latency_steps: int = 0  # each action takes effect this many control periods after the policy chose it ...
    latency_jitter_steps: int = 0  # ... and a random 0 to this many more, drawn per episode
    joint_noise: float = 0.0  # std of Gaussian noise on the observed joint positions (rad, m for prismatic joints)
    velocity_noise: float = 0.0  # std of Gaussian noise on the observed joint velocities (rad/s or m/s)
    # std of Gaussian noise on the observed goal position (m), drawn each step (what a camera or a tracker that
    # locates the goal adds); the goal's error in the Jacobian part is the observed one, success the true one
    goal_noise: float = 0.0
    # Nor are a real arm's dynamics its URDF's. Each episode can draw them (domain randomisation), off by default:
    mass_scale: float = 1.0  # every moving link's mass and inertia times this ...
    mass_range: float = 0.0  # ... times a factor drawn per link and episode from [1 - this, 1 + this]
    gain_scale: float = 1.0  # the motors' position gain times this ...
    gain_range: float = 0.0  # ... times a factor drawn per joint and episode from [1 - this, 1 + this]
    # each moving joint's URDF damping times a factor drawn per joint and episode from [1 - this, 1 + this]. (Added
    # damping, not scaled, made PyBullet's explicit damping blow up on light links: 50 N m s/rad on the light arm
    # sent its joints to 95 rad/s.)
    damping_range: float = 0.0

    def __post_init__(self) -> None:
        self.check_values(dataclasses.asdict(self), lambda name: f"EnvConfig.{name}")

    @staticmethod
    def check_values(values: dict, spell: Callable[[str], str]) -> None:
        """Refuse what the environment cannot use (`SettingError` naming the setting as `spell(field)` spells it:
        `EnvConfig.substeps`, or `--substeps` for a flag). Only the fields present in `values` are checked."""
        def number(name: str) -> bool:
            value = values[name]
            return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)

        for name, ok, requirement in _RULES:
            if name not in values:
                continue
            if name in _WHOLE_NUMBERS and (not isinstance(values[name], numbers.Integral)
                                           or isinstance(values[name], bool)):
                raise SettingError(f"{spell(name)} must be a whole number, not {values[name]!r:.40}")
            if name not in _WHOLE_NUMBERS and name not in _NOT_NUMBERS and not number(name):
                raise SettingError(f"{spell(name)} must be a finite number, not {values[name]!r:.40}")
            if not ok(values[name]):
                raise SettingError(f"{spell(name)} must be {requirement}, not {values[name]!r:.40}")

    @property
    def control_hz(self) -> float:
        return PHYSICS_HZ / self.substeps


# Every environment setting: the shared ones, then each task's own, declared in its file (`Task.settings`).
EnvConfig = dataclasses.make_dataclass(
    "EnvConfig", [(setting.name, type(setting.default), dataclasses.field(default=setting.default))
                  for setting in TASK_SETTINGS],
    bases=(CommonEnvConfig,), frozen=True,
    namespace={"__module__": __name__, "__doc__": "Every environment setting: those every task shares "
                                                  "(`CommonEnvConfig`), then each task's own (`Task.settings`)."})

CLEARANCE_CHOICES = ("task", "on", "off")


def clearance_on(choice: str, task_type) -> bool:
    """Whether the observation holds the clearance part: `EnvConfig.clearance_observation`, "task" being the
    task's own choice."""
    return choice == "on" or (choice == "task" and task_type.clearance)


_NOT_NUMBERS = ("task", "jacobian_observation", "urdf_speed_limits", "self_collision", "clearance_observation")
_WHOLE_NUMBERS = ("substeps", "episode_steps", "latency_steps", "latency_jitter_steps") + tuple(
    s.name for s in TASK_SETTINGS if type(s.default) is int)
MAX_SUBSTEPS, MAX_EPISODE_STEPS = 1000, 100_000
MAX_LATENCY_STEPS = 100  # control periods (4 s at 24 Hz)
MAX_JOINT_NOISE, MAX_VELOCITY_NOISE = 1.0, 10.0  # rad (m), rad/s (m/s): noise beyond them is no encoder's
MAX_GOAL_NOISE = 0.5  # m: beyond it, no sensor locates the goal at all
# The bounds of max_joint_step_rad and _m: half a turn, or a metre, per control step. A larger step is no longer
# control (1e300 rad was accepted: every action but 0 sent the joints to their limits).
MAX_JOINT_STEP_RAD, MAX_JOINT_STEP_M = math.pi, 1.0
MAX_RENDER_SIZE = 4096  # pixels per side of render()
# (field, test, what the test asks for): the ranges an `EnvConfig` holds
_RULES = (
    ("task", lambda v: isinstance(v, str), "a task's name"),
    ("jacobian_observation", lambda v: isinstance(v, bool), "true or false"),
    ("urdf_speed_limits", lambda v: isinstance(v, bool), "true or false"),
    ("self_collision", lambda v: isinstance(v, bool), "true or false"),
    ("clearance_observation", lambda v: v in CLEARANCE_CHOICES, "one of " + ", ".join(CLEARANCE_CHOICES)),
    ("contact_penalty", lambda v: 0 <= v <= MAX_REWARD_WEIGHT, f"between 0 and {MAX_REWARD_WEIGHT:g}"),
    ("substeps", lambda v: 1 <= v <= MAX_SUBSTEPS, f"between 1 and {MAX_SUBSTEPS}"),
    ("episode_steps", lambda v: 1 <= v <= MAX_EPISODE_STEPS, f"between 1 and {MAX_EPISODE_STEPS:,}"),
    ("max_joint_step_rad", lambda v: 0 < v <= MAX_JOINT_STEP_RAD,
     f"above 0 and at most pi ({MAX_JOINT_STEP_RAD:.4f}) rad per control step"),
    ("max_joint_step_m", lambda v: 0 < v <= MAX_JOINT_STEP_M,
     f"above 0 and at most {MAX_JOINT_STEP_M:g} m per control step"),
    ("success_radius_m", lambda v: v > 0, "positive"),
    ("min_target_height_m", lambda v: v >= 0, "0 or positive"),
    ("min_target_radius_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("action_cost", lambda v: 0 <= v <= MAX_REWARD_WEIGHT, f"between 0 and {MAX_REWARD_WEIGHT:g}"),
    ("success_bonus", lambda v: 0 <= v <= MAX_REWARD_WEIGHT, f"between 0 and {MAX_REWARD_WEIGHT:g}"),
    ("latency_steps", lambda v: 0 <= v <= MAX_LATENCY_STEPS, f"between 0 and {MAX_LATENCY_STEPS}"),
    ("latency_jitter_steps", lambda v: 0 <= v <= MAX_LATENCY_STEPS, f"between 0 and {MAX_LATENCY_STEPS}"),
    ("joint_noise", lambda v: 0 <= v <= MAX_JOINT_NOISE, f"between 0 and {MAX_JOINT_NOISE:g}"),
    ("velocity_noise", lambda v: 0 <= v <= MAX_VELOCITY_NOISE, f"between 0 and {MAX_VELOCITY_NOISE:g}"),
    ("goal_noise", lambda v: 0 <= v <= MAX_GOAL_NOISE, f"between 0 and {MAX_GOAL_NOISE:g} m"),
    ("mass_scale", lambda v: 0.1 <= v <= 10, "between 0.1 and 10"),
    ("mass_range", lambda v: 0 <= v <= 0.9, "between 0 and 0.9"),
    ("gain_scale", lambda v: 0.1 <= v <= 5, "between 0.1 and 5 (the gain is then at most 1: PyBullet's servo "
                                            "corrects at most the whole error per physics step)"),
    ("gain_range", lambda v: 0 <= v <= 0.9, "between 0 and 0.9"),
    ("damping_range", lambda v: 0 <= v <= 0.9, "between 0 and 0.9"),
) + tuple((setting.name, setting.valid, setting.requirement) for setting in TASK_SETTINGS)


@dataclass(frozen=True)
class JointSpeeds:
    """How fast each controlled joint may move (`joint_speeds`)."""

    steps: list[float]  # each joint's largest position-target change per control step, rad or m
    sources: list[str]  # what set each step: "URDF" (its own limit), "clamp" (the arm's clamp), "step" (the cap)
    clamp: float | None  # the simulation's clamp of every joint's speed, rad/s; None: PyBullet's own


def joint_speeds(joints: Sequence, cfg: CommonEnvConfig) -> JointSpeeds:
    """With `urdf_speed_limits`: the simulation clamps the joints' speed at the lowest URDF velocity limit of the
    revolute joints (PyBullet clamps a whole body, not each joint), and each joint's target moves per control
    step at most `max_joint_step_rad` (`_m` for a prismatic joint), its own limit times the control period, and
    the clamp times the period. Without: the cap alone, and PyBullet's own clamp."""
    hz = cfg.control_hz
    revolute = [j.velocity for j in joints if j.type != "prismatic" and j.velocity > 0.0]
    clamp = min(revolute) if cfg.urdf_speed_limits and revolute else None
    steps, sources = [], []
    for joint in joints:
        step, source = (cfg.max_joint_step_m if joint.type == "prismatic" else cfg.max_joint_step_rad), "step"
        if cfg.urdf_speed_limits and 0.0 < joint.velocity / hz < step:
            step, source = joint.velocity / hz, "URDF"
        if clamp is not None and joint.type != "prismatic" and clamp / hz < step:
            step, source = clamp / hz, "clamp"
        steps.append(step)
        sources.append(source)
    return JointSpeeds(steps, sources, clamp)


def speed_notes(joints: Sequence, speeds: JointSpeeds, control_hz: float) -> list[str]:
    """Lines for the user: the joints whose URDF gives no velocity limit, and those the arm's clamp holds below
    their own limit, each with the speed it gets instead (rad/s, or m/s for a prismatic joint)."""
    def listed(chosen) -> str:
        return ", ".join(f"{j.name} at {step * control_hz:.4g} {'m/s' if j.type == 'prismatic' else 'rad/s'}"
                         for j, step, source in zip(joints, speeds.steps, speeds.sources) if chosen(j, source))

    notes = []
    missing = listed(lambda joint, source: joint.velocity <= 0.0)
    if missing:
        notes.append(f"no velocity limit in the URDF for {missing} (max_joint_step_rad/_m per control step, or the "
                     f"arm's clamp); give <limit velocity=...> for a joint's real limit")
    held = listed(lambda joint, source: joint.velocity > 0.0 and source == "clamp")
    if held:
        notes.append(f"below their own URDF limit: {held}, the lowest limit of the arm's joints (PyBullet clamps "
                     f"the speed of a whole arm, not of each joint)")
    return notes


class ArmEnv(gymnasium.Env):
    """Any task (`config.task`, or `task`) with the end effector of any fixed-base URDF arm."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": EnvConfig().control_hz}

    def __init__(self, robot: str | Path | None = None, ee_link: str | None = None,
                 config: EnvConfig | None = None, render_mode: str | None = None,
                 render_size: tuple[int, int] = (320, 240), *, task: str | None = None, home: object = None,
                 ee_offset_m: object = None):
        """`robot`: a name in assets/ or a URDF path (None: the default). `ee_link`, `home` (numbers, one per
        controlled joint, or "auto" or "zero") and `ee_offset_m` (x, y, z in the end-effector link's frame)
        override the robot's settings file; None keeps it. `task` (a name) overrides `config.task`."""
        if config is None:
            config = EnvConfig()
        elif not isinstance(config, EnvConfig):
            raise ValueError(f"config must be an EnvConfig (EnvConfig(task='reach', ...)), not {config!r:.60}; name a "
                            f"task with task=")
        self.config = config if task is None else dataclasses.replace(config, task=task)
        if not (len(render_size) == 2 and all(isinstance(v, numbers.Integral) and 1 <= v <= MAX_RENDER_SIZE
                                              for v in render_size)):
            raise ValueError(f"render_size must be (width, height) in pixels, each 1 to {MAX_RENDER_SIZE}, not "
                             f"{render_size!r:.60}")
        task_type = task_class(self.config.task)  # an unknown task fails before PyBullet starts
        self.render_mode = render_mode
        self.render_size = render_size
        self.metadata = {**self.metadata, "render_fps": self.config.control_hz}
        self.client = connect()
        try:
            self.floor = load_floor(self.client)
            self.robot = Robot(self.client, resolve_robot(robot, ee_link, home=home, ee_offset_m=ee_offset_m),
                               orientation=task_type.orientation, self_collision=self.config.self_collision)
            task_type.check_robot(self.robot)
            # Contacts of the arm with itself and the floor (`sim.contacts`): with self-collision, simulated, and
            # checked every step (the goals avoid them too); without, checked only while `watch_contacts` (every
            # evaluation: `envs.episodes.run_episodes`), not in training: a check costs a few PyBullet queries
            self.contact_pairs: ContactPairs | None = None
            self.contacts: SimulatedContacts | None = None
            if self.config.self_collision:
                self.contact_pairs = find_contact_pairs(self.robot, self.floor)
                simulate_pairs(self.robot, self.contact_pairs)
                self.contacts = SimulatedContacts(self.robot, self.floor, self.contact_pairs)
            workspace = self.robot.workspace_samples(np.random.default_rng(0), WORKSPACE_SAMPLES)
            self.workspace_min, self.workspace_max = workspace.min(axis=0), workspace.max(axis=0)
            self.reach_m = float(np.max(np.linalg.norm(workspace - self.robot.base_position, axis=1)))
            # Each controlled joint's largest target change per control step (rad or m), and the speed clamp
            self.speeds = joint_speeds(self.robot.controlled, self.config)
            self.max_joint_step = self.speeds.steps
            self.robot.clamp_speeds(self.speeds.clamp)
            self.task = task_type(self)
            self.clearance: Clearance | None = None
            if clearance_on(self.config.clearance_observation, task_type):
                pairs = self.contact_pairs or find_contact_pairs(self.robot, self.floor)
                self.clearance = Clearance(self.robot, self.floor, pairs, self.task.obstacle_bodies, self.reach_m)
        except BaseException:
            disconnect(self.client)
            raise
        cfg = self.config
        self.camera = Camera(
            look_at=tuple(float(v) for v in (self.robot.base_position + [0.0, 0.0, 0.4 * self.reach_m])),
            distance=2.0 * self.reach_m, pitch=-20.0,
        )

        dof = self.robot.dof
        # (joint's place, 1 / its URDF velocity limit) for the joints that have one: `speed_fraction`
        self._inverse_speed_limits = [(k, 1.0 / j.velocity) for k, j in enumerate(self.robot.controlled)
                                      if j.velocity > 0.0]
        self.speed_fraction = 0.0  # the episode's largest joint speed as a fraction of its URDF limit, so far
        self.self_contact = self.floor_contact = False  # in the episode so far
        self._contact_draw = [NO_CONTACT, 0.0, 0.0, 0.0]  # this step's contact, for the viewer
        self._q_mid = ((self.robot.upper + self.robot.lower) / 2).tolist()
        self._q_inv_half = (2.0 / (self.robot.upper - self.robot.lower)).tolist()
        self._jacobian_size = sum(size for _, size, _ in self.task.jacobian_parts()) if cfg.jacobian_observation else 0
        self._clearance_size = 1 + dof if self.clearance is not None else 0
        self.obs_dim = 2 * dof + 3 + self.task.obs_size + self._jacobian_size + self._clearance_size
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (dof,), np.float32)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)
        self._q = self.robot.home.tolist()
        self.ee = self.robot.ee_position().tolist()  # the end-effector point (m) as of the last observation
        self._steps: int | None = None  # None until the first reset
        self.latency = 0  # this episode's action latency, control periods (`latency_steps`, `latency_jitter_steps`)
        self._pending: deque = deque()
        self._noise: np.random.Generator | None = None  # the episode's noise stream, when noise is on
        # The solver warm-starts from the previous step; restoring this snapshot on reset makes an episode
        # depend only on its seed, not on the episodes before it.
        self._home_state = pb.saveState(physicsClientId=self.client)

    def watch_contacts(self) -> ContactPairs:
        """Check every step for self-contacts and floor contacts from now on (info's `self_contact` and
        `floor_contact`: in the episode so far); the pairs checked, found on the first call. Call it between
        episodes: finding the pairs moves the arm."""
        if self.contact_pairs is None:
            self.contact_pairs = find_contact_pairs(self.robot, self.floor)
            pb.restoreState(stateId=self._home_state, physicsClientId=self.client)
        return self.contact_pairs

    @property
    def draw_size(self) -> int:
        """Floats of `draw_data` per step."""
        return self.task.draw_size + CONTACT_DRAW_SIZE

    def draw_data(self) -> list[float]:
        """What the viewer draws of this step: the task's draw data (`Task.draw_data`), then the step's contact
        (`contact_shapes` reads it)."""
        return self.task.draw_data() + self._contact_draw

    def contact_shapes(self, draw: np.ndarray, index: int) -> tuple[list[Shape], str]:
        """What the viewer shows of a contact at step `index` of an episode whose draw data (`draw_data`) is
        `draw`: a red mark where it is, and words for its heads-up display ('' if none)."""
        kind, *point = draw[index, self.task.draw_size:self.task.draw_size + CONTACT_DRAW_SIZE]
        if kind == NO_CONTACT:
            return [], ""
        mark = Sphere(np.array(point), CONTACT_MARK_FRACTION * self.reach_m, CONTACT_MARK_RGB, ring=False)
        return [mark], "   SELF-CONTACT" if kind == SELF_CONTACT else "   FLOOR CONTACT"

    def speed_notes(self) -> list[str]:
        """What the user should know of the joints' speeds: `speed_notes` of this arm (none with the limits off)."""
        if not self.config.urdf_speed_limits:
            return []
        return speed_notes(self.robot.controlled, self.speeds, self.config.control_hz)

    def observation_layout(self) -> list[dict]:
        """The observation's parts in order: name, first index, size, meaning (what `_observe` writes)."""
        dof = self.robot.dof
        parts = [("joint_positions_scaled", dof, "controlled joints' positions mapped from [lower, upper] to [-1, 1]"),
                 ("joint_velocities", dof, "controlled joints' velocities (rad/s or m/s)"),
                 ("end_effector_m", 3, "end-effector point (the tool point), world frame")]
        layout, start = [], 0
        jacobian = self.task.jacobian_parts() if self._jacobian_size else []
        clearance = [("clearance", 1, "the nearest distance between the arm and itself, the floor or an obstacle "
                                      "as a fraction of the band seen (1: none within it, 0: touching)"),
                     ("clearance_push", dof, "per joint, the direction that takes the nearest pairs apart, "
                                             "weighted by their nearness (zero: nothing near)")
                     ] if self._clearance_size else []
        for name, size, meaning in parts + self.task.observation_parts() + jacobian + clearance:
            layout.append({"name": name, "start": start, "size": size, "meaning": meaning})
            start += size
        return layout

    def _observe(self) -> np.ndarray:
        """The observation of the arm in PyBullet (`observation`)."""
        robot = self.robot
        states = pb.getJointStates(robot.body, robot.ctrl_index, physicsClientId=self.client)
        q = [s[0] for s in states]
        ee = robot.ee_position().tolist()
        return self.observation(q, [s[1] for s in states], ee, lambda: robot.ee_jacobian_products(ee, q),
                                lambda: self.clearance.measure(robot.movable_positions(q)))

    def clearance_at(self, q: list[float]) -> list[float]:
        """The clearance part (`sim.clearance`) of the arm with its controlled joints at `q`: the PyBullet arm is
        put there (a second simulator's arm is measured on its PyBullet twin)."""
        self.robot.reset(q)
        return self.clearance.measure(self.robot.movable_positions(q))

    def observation(self, q: list[float], velocities: list[float], ee: list[float],
                    jacobian: Callable[[], EndEffectorJacobian],
                    clearance: Callable[[], list[float]] | None = None) -> np.ndarray:
        """The observation of an arm whose controlled joints are at `q` (rad or m) moving at `velocities`, its
        end-effector point at `ee` (m), `jacobian()` its Jacobian and `clearance()` its clearance part (with
        `clearance_observation`): the robot's part, then the task's. Also keeps the
        episode's largest speed and what the task judges. A second simulator's arm is observed through it too
        (`envs.mujoco_env`). This runs on every step: for vectors of a few elements, Python lists and one final
        conversion are cheaper than numpy operations (about a microsecond each), which keeps the environment's
        cost close to the physics'."""
        for k, inverse_limit in self._inverse_speed_limits:  # sampled at the control rate, as observed
            self.speed_fraction = max(self.speed_fraction, abs(velocities[k]) * inverse_limit)
        seen_q, seen_velocities = q, velocities
        if self._noise is not None:  # what noisy sensors report (the arm, its commands and success go by the truth)
            cfg, dof = self.config, len(q)
            if cfg.joint_noise or cfg.velocity_noise:
                seen_q = (np.asarray(q) + self._noise.normal(0.0, cfg.joint_noise, dof)).tolist()
                seen_velocities = (np.asarray(seen_velocities)
                                   + self._noise.normal(0.0, cfg.velocity_noise, dof)).tolist()
            if cfg.goal_noise:
                self.task.goal_error = self._noise.normal(0.0, cfg.goal_noise, 3).tolist()
        scaled_q = [(qi - mid) * inv for qi, mid, inv in zip(seen_q, self._q_mid, self._q_inv_half)]
        values = scaled_q + seen_velocities + ee + self.task.observe(ee)
        if self._jacobian_size:
            values += self.task.jacobian_observe(jacobian())
        if self._clearance_size:
            values += clearance()
        obs = np.array(values, dtype=np.float32)
        self._q, self.ee = q, ee
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """A new episode from the home pose. `options={"target": (x, y, z)}` (m) places a reach target there
        instead of at a sampled point (the viewer's click); the sampling still runs, so the seed's stream is the
        same."""
        if options is not None and not isinstance(options, dict):
            raise ValueError(f"options must be a dict such as {{'target': (x, y, z)}}, not {options!r:.60}")
        super().reset(seed=seed)
        # Restore first: goal sampling runs forward kinematics, and the joints it does not move (a held flange,
        # say) must be at their home values too, or the goal differs in the 8th digit with history.
        pb.restoreState(stateId=self._home_state, physicsClientId=self.client)
        self.task.reset(self.np_random, options)
        self.robot.reset(self.robot.home)
        self._steps = 0
        self.task.start()
        cfg = self.config
        # Drawn after the goal, so a seed's goals are the same with and without them
        self.latency = cfg.latency_steps + (int(self.np_random.integers(cfg.latency_jitter_steps + 1))
                                            if cfg.latency_jitter_steps else 0)
        self._pending = deque([[0.0] * self.robot.dof for _ in range(self.latency)])  # chosen, not yet applied
        self._noise = (np.random.default_rng(int(self.np_random.integers(2**63)))
                       if cfg.joint_noise or cfg.velocity_noise or cfg.goal_noise else None)
        self._draw_dynamics()
        self.speed_fraction = 0.0
        self.self_contact = self.floor_contact = False
        self._contact_draw = [NO_CONTACT, 0.0, 0.0, 0.0]
        obs = self._observe()
        _, _, info = self.task.judge([0.0] * self.robot.dof, 0)
        self._safety(info)
        return obs, info

    def _draw_dynamics(self) -> None:
        """This episode's masses, damping and motor gains (`mass_scale` ... `damping_range`), drawn after everything
        else, so a seed's goals, latency and noise are the same with and without them; left alone when they are
        the URDF's (no draw, no call: the episodes are bit for bit those of before)."""
        cfg, robot = self.config, self.robot
        if (cfg.mass_scale, cfg.mass_range, cfg.gain_scale, cfg.gain_range, cfg.damping_range) == (1.0, 0.0, 1.0, 0.0,
                                                                                                0.0):
            return
        random = cfg.mass_range or cfg.gain_range or cfg.damping_range
        rng = np.random.default_rng(int(self.np_random.integers(2**63))) if random else None
        links = len(robot.moving_links)

        def factors(scale: float, spread: float, n: int) -> np.ndarray:
            return scale * (rng.uniform(1 - spread, 1 + spread, n) if spread else np.ones(n))

        masses = factors(cfg.mass_scale, cfg.mass_range, links)
        gains = factors(cfg.gain_scale, cfg.gain_range, robot.dof)
        damping = factors(1.0, cfg.damping_range, links)
        self.dynamics = {"mass_factors": masses.tolist(), "gain_factors": gains.tolist(),
                         "damping_factors": damping.tolist()}
        robot.set_dynamics(masses.tolist(), damping.tolist(), gains.tolist())

    def _safety(self, info: dict) -> None:
        """The episode's safety figures so far, into a step's info."""
        info["speed_fraction"] = self.speed_fraction  # the largest joint speed / URDF limit so far
        if self.contact_pairs is not None:
            info["self_contact"], info["floor_contact"] = self.self_contact, self.floor_contact

    @property
    def joint_positions(self) -> list[float]:
        """Controlled-joint positions (rad or m) as of the last observation."""
        return self._q

    @property
    def target(self) -> np.ndarray:
        """The goal's position (3,) m in the current episode."""
        return self.task.target

    def set_target(self, target: np.ndarray) -> None:
        """Move the current episode's goal position (3,) m, for scripted demos and the viewer."""
        self.task.set_target(goal_position(target, "a target"))

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action, targets = self.begin_step(action)
        self.robot.command(targets)
        for _ in range(self.config.substeps):
            pb.stepSimulation(physicsClientId=self.client)
            self.task.after_substep()
        obs = self._observe()
        contacts = None
        if self.contacts is not None:
            self_point, floor_point = self.contacts.now()
            contacts = self_point is not None, floor_point is not None
            self._contact_draw = ([SELF_CONTACT, *self_point] if self_point is not None else
                                  [FLOOR_CONTACT, *floor_point] if floor_point is not None else
                                  [NO_CONTACT, 0.0, 0.0, 0.0])
        elif self.contact_pairs is not None:
            contacts = contacts_now(self.robot, self.floor, self.contact_pairs)
        return self.end_step(action, obs, contacts)

    def begin_step(self, action: np.ndarray) -> tuple[list[float], list[float]]:
        """The first half of a step, before the physics: `action` checked and clipped, and the position targets
        (rad or m) of the controlled joints it gives (the one chosen `latency` periods ago, with latency); the
        step counted and a moving goal moved. A second simulator's arm is stepped through it too."""
        if self._steps is None:  # what gymnasium.make's wrapper says; an env made directly has no wrapper
            raise gymnasium.error.ResetNeeded("Cannot call env.step() before calling env.reset()")
        try:
            values = np.asarray(action)
            if values.dtype.kind == "c":  # numpy would drop the imaginary part with only a ComplexWarning
                raise TypeError
            values = values.astype(np.float64, copy=False)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"an action must be {self.action_space.shape[0]} numbers in [-1, 1], not "
                             f"{action!r:.60}") from None
        if values.shape != self.action_space.shape:
            raise ValueError(f"action of shape {values.shape}: expected {self.action_space.shape}, one value in "
                             f"[-1, 1] per controlled joint ({', '.join(j.name for j in self.robot.controlled)})")
        action = values.tolist()
        if not all(map(math.isfinite, action)):  # NaN or infinity: it would poison the simulation state for good
            raise ValueError(f"action holds a value that is not finite: {action}")
        action = [min(max(a, -1.0), 1.0) for a in action]
        applied = action
        if self.latency:  # the action chosen `latency` periods ago takes effect now (zero: hold, at the start)
            self._pending.append(action)
            applied = self._pending.popleft()
        targets = [q + a * step for q, a, step in zip(self._q, applied, self.max_joint_step)]
        self._steps += 1
        self.task.advance(self._steps)
        return action, targets

    def end_step(self, action: list[float], obs: np.ndarray, contacts: tuple[bool, bool] | None
                 ) -> tuple[np.ndarray, float, bool, bool, dict]:
        """The second half of a step, after the physics and the observation `obs`: the task's judgement, the
        contacts seen (a self-contact, a floor contact; None: not watched), which with `self_collision` end the
        episode, and the time limit, as `step` returns them."""
        reward, terminated, info = self.task.judge(action, self._steps)
        if contacts is not None:
            self.self_contact, self.floor_contact = self.self_contact or contacts[0], self.floor_contact or contacts[1]
            if self.config.self_collision and (contacts[0] or contacts[1]):
                reward -= self.config.contact_penalty
                terminated, info["is_success"] = True, False
        self._safety(info)
        truncated = not terminated and self._steps >= self.config.episode_steps
        return obs, reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return render_rgb(self.client, self.camera, *self.render_size)

    def close(self) -> None:
        disconnect(self.client)


class ArmReachEnv(ArmEnv):
    """`ArmReach-v0`: the reach task (the class older code and checkpoints' users name)."""

    def __init__(self, robot: str | Path | None = None, ee_link: str | None = None, config: EnvConfig | None = None,
                 render_mode: str | None = None, render_size: tuple[int, int] = (320, 240), **kwargs):
        kwargs.setdefault("task", "reach")
        super().__init__(robot, ee_link, config, render_mode, render_size, **kwargs)


# Every setting make_env reads from a settings object: what an exported policy's description records, for example.
ENVIRONMENT_SETTINGS = ROBOT_SETTINGS + tuple(f.name for f in dataclasses.fields(EnvConfig))
# An environment saved (a run's config, an exported policy.json) before a setting existed had this instead
ENVIRONMENT_SAVED_BEFORE_FIELD_EXISTED = {"urdf_speed_limits": False, "self_collision": False,
                                          "clearance_observation": "off"}


def make_env(settings: object = None, /, **kwargs) -> ArmEnv:
    """The environment for anything with `robot`, `ee_link`, `home`, `ee_offset_m` and any of `EnvConfig`'s
    fields (`task` among them) as attributes: a `TrainConfig`, parsed command-line arguments, a checkpoint's
    config. A missing or None attribute means the robot's own setting or `EnvConfig`'s default; keyword arguments
    of those names override the settings' (`make_env(robot="panda", task="pose")`), and the others go to `ArmEnv`
    (`render_mode`, say). Every environment of the project (workers, evaluator, viewer, `evaluate.py`, benchmarks)
    is built here."""
    if isinstance(settings, (str, Path)):
        raise TypeError(f"make_env's first argument is a settings object (a TrainConfig, say); name a robot with "
                        f"make_env(robot={str(settings)!r})")
    values = {name: getattr(settings, name, None) for name in ENVIRONMENT_SETTINGS}
    values.update({name: kwargs.pop(name) for name in ENVIRONMENT_SETTINGS if name in kwargs})
    values = {name: value for name, value in values.items() if value is not None}
    config = kwargs.pop("config", None) or EnvConfig(**{k: v for k, v in values.items() if k not in ROBOT_SETTINGS})
    return ArmEnv(values.get("robot"), ee_link=values.get("ee_link"), config=config, home=values.get("home"),
                  ee_offset_m=values.get("ee_offset_m"), **kwargs)
