"""The home pose: where every episode starts. `home` in the robot's sidecar or `--home` gives it (checked against the
controlled joints and their limits), `home = "zero"` keeps the URDF's zero, and otherwise this rule chooses it.

Home pose (where every episode starts; `home` in the sidecar or `--home` overrides it, `home = "zero"` keeps the
URDF's zero): zero, clipped into each joint's limits, unless that is a poor start:
  - a controlled joint's zero lies on a limit (within HOME_AT_LIMIT of its range: it can move one way only),
  - the pose is near-singular: its position manipulability (Yoshikawa's sqrt(det(J J^T)) of the end-effector
    point over the controlled joints) is below HOME_SINGULAR_FRACTION of the best found among the mid-range pose
    and HOME_SAMPLES seeded random poses (an arm stretched straight up scores 0), or
  - the end-effector point is less than HOME_MIN_EE_HEIGHT_M above the floor, or a moving link is below it.
Then the home is found by climbing from zero (moved HOME_LIMIT_MARGIN off the limits): steepest ascent of the
manipulability over single-joint steps of HOME_CLIMB_STEP of the joint's range, through safe poses only, until
it reaches HOME_GOOD_FRACTION of the best found. Joints that do not change the manipulability (a vertical base
yaw) keep their zero, so the home stays as near the URDF's zero as conditioning allows. The rule is
deterministic: every process and every machine computes the same home. Where two moves score the same (mirror
images of each other, which floating-point noise would otherwise order differently on each machine), the tie goes
to the lower joint, and to + before - (HOME_TIE_TOLERANCE).

The search's cost grows at least with the cube of the number of controlled joints, so a long chain could search
for many minutes. Past HOME_NOTICE_AFTER_S it says on stderr what it is doing, and at HOME_SEARCH_BOUND_S it stops with
a `UserError` asking for `--home` (or `home` in the sidecar). It does not fall back on the best pose found so far:
that would depend on the machine's speed and load, so one URDF would start from different poses on different
machines and runs, and a search cut short may not yet have compared the URDF's zero with anything. Within the
bound the result does not depend on time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from arm_a3c.errors import UserError, notice
from arm_a3c.sim.assets import RobotSpec

HOME_AT_LIMIT = 0.02
HOME_LIMIT_MARGIN = 0.10
HOME_SINGULAR_FRACTION = 0.05
HOME_GOOD_FRACTION = 0.8
HOME_SAMPLES = 200
HOME_MIN_EE_HEIGHT_M = 0.05
HOME_CLIMB_STEP = 0.02
HOME_CLIMB_MAX_STEPS = 200
HOME_NOTICE_AFTER_S = 2.0  # a home search still running after this long says so on stderr
HOME_SEARCH_BOUND_S = 30.0  # and one running this long stops (arms of a usual size finish far sooner)

# Manipulabilities this close (relative) are equal to the climb: mirror-image moves score the same but for
# floating-point noise, which differs between machines and libraries; the tie goes to the first move in a fixed
# order (lowest joint first, + before -), so one URDF gets one home everywhere.
HOME_TIE_TOLERANCE = 1e-6


def first_best_move(moves: list[tuple[float, np.ndarray]]) -> tuple[float, np.ndarray]:
    """The climb's next step among (score, pose) candidates listed in the fixed order: the first whose score is
    within HOME_TIE_TOLERANCE of the best, not the best by a margin of noise."""
    top = max(score for score, _ in moves)
    return next(move for move in moves if move[0] >= top - HOME_TIE_TOLERANCE * abs(top))


class Arm(Protocol):
    """What the home rule reads of a robot (`sim.robot.Robot` is one); the measuring methods move the arm."""

    name: str
    spec: RobotSpec
    dof: int
    controlled: Sequence  # the controlled joints, with name, index, lower, upper and rest
    orientation_only: set  # joint indices that turn the end effector in place (a wrist roll of a pose task)
    lower: np.ndarray
    upper: np.ndarray
    zero_home: np.ndarray  # the URDF's zero, clipped into the limits

    def manipulability(self, q: np.ndarray) -> float: ...

    def forward_kinematics(self, q: np.ndarray) -> np.ndarray: ...

    def lowest_point(self) -> float: ...

    def random_configuration(self, rng: np.random.Generator) -> np.ndarray: ...


class HomeSearchClock:
    """The automatic home search's time bound (see the module's docstring); `check` before scoring each pose."""

    def __init__(self, robot: Arm):
        self.robot = robot
        self.started = time.monotonic()
        self.noticed = False

    def check(self) -> None:
        elapsed = time.monotonic() - self.started
        robot = self.robot
        what = f"{robot.name} ({robot.dof} controlled joints)"
        if elapsed > HOME_SEARCH_BOUND_S:
            sidecar = robot.spec.settings_file or robot.spec.urdf_path.with_suffix(".toml")
            raise UserError(f"{robot.spec.urdf_path}: the automatic home search for {what} ran past its "
                            f"{HOME_SEARCH_BOUND_S:g} s bound; give the start pose with --home (one value per "
                            f"controlled joint, rad or m, or the word zero) or home = [...] in {sidecar.name}")
        if elapsed > HOME_NOTICE_AFTER_S and not self.noticed:
            notice(f"finding a home pose for {what}... (at most {HOME_SEARCH_BOUND_S:g} s; --home skips this)")
            self.noticed = True


def _is_safe(robot: Arm, q: np.ndarray) -> bool:
    """The end-effector point HOME_MIN_EE_HEIGHT_M above the floor and no moving link below it. Moves the arm."""
    return bool(robot.forward_kinematics(q)[2] >= HOME_MIN_EE_HEIGHT_M and robot.lowest_point() >= 0.0)


def _score(robot: Arm, q: np.ndarray, clock: HomeSearchClock) -> float:
    clock.check()
    return robot.manipulability(q) if _is_safe(robot, q) else -1.0


def choose_home(robot: Arm) -> tuple[np.ndarray, str]:
    """The home pose of `robot` and why (see the module's docstring): the one its settings give, checked, or the
    rule's."""
    spec, zero = robot.spec, robot.zero_home.copy()
    if isinstance(spec.home, str):
        if spec.home == "zero":
            return zero, f"zero, clipped to the limits ({_source_text(spec)})"
        return _default_home(robot, zero)
    home = np.asarray(spec.home, dtype=np.float64)
    where = "--home" if spec.home_source == "--home" else f"{spec.home_source}: home"
    names = ", ".join(j.name for j in robot.controlled)
    position_joints = [j for j in robot.controlled if j.index not in robot.orientation_only]
    if robot.orientation_only and home.shape == (len(position_joints),):
        given = iter(home)
        home = np.array([j.rest if j.index in robot.orientation_only else next(given) for j in robot.controlled])
    if home.shape != (robot.dof,):
        raise UserError(f"{where} has {home.size} values but {robot.name} has {robot.dof} controlled joints "
                        f"({names}); give one value per controlled joint, in that order")
    outside = [(j, v) for j, v in zip(robot.controlled, home) if not j.lower - 1e-9 <= v <= j.upper + 1e-9]
    if outside:
        j, v = outside[0]
        raise UserError(f"{where}: {v:g} for joint {j.name} is outside its limits {j.lower:.3f} .. "
                        f"{j.upper:.3f}; give a value within them (the controlled joints, in order: {names})")
    return home, f"given ({_source_text(spec)})"


def _source_text(spec: RobotSpec) -> str:
    return "--home" if spec.home_source == "--home" else f"home in {Path(spec.home_source).name}"


def _default_home(robot: Arm, zero: np.ndarray) -> tuple[np.ndarray, str]:
    span = robot.upper - robot.lower
    lo, hi = robot.lower + HOME_LIMIT_MARGIN * span, robot.upper - HOME_LIMIT_MARGIN * span
    clock = HomeSearchClock(robot)
    rng = np.random.default_rng(0)
    samples = [(robot.lower + robot.upper) / 2]
    samples += [lo + (1 - 2 * HOME_LIMIT_MARGIN) * (robot.random_configuration(rng) - robot.lower)
                for _ in range(HOME_SAMPLES)]
    best = max(_score(robot, q, clock) for q in samples)
    at_limit = [j.name for j, z in zip(robot.controlled, zero)
                if min(z - j.lower, j.upper - z) < HOME_AT_LIMIT * (j.upper - j.lower)]
    zero_score = _score(robot, zero, clock)
    if best <= 0.0:
        return zero, "zero (no safe, non-singular pose found to compare with)"
    if not at_limit and zero_score >= HOME_SINGULAR_FRACTION * best:
        return zero, (f"zero: manipulability {zero_score:.3g}, {zero_score / best:.0%} of the best found "
                      f"({best:.3g}), no joint near a limit")
    if at_limit:
        why = f"zero puts {', '.join(at_limit)} on a limit"
    elif zero_score < 0:
        why = "zero puts the arm at or below the floor"
    else:
        why = f"zero is near-singular (manipulability {zero_score / best:.0%} of the best found, {best:.3g})"
    q = np.clip(zero, lo, hi)
    score = _score(robot, q, clock)
    steps = HOME_CLIMB_STEP * span
    for climbed in range(HOME_CLIMB_MAX_STEPS + 1):
        if score >= HOME_GOOD_FRACTION * best:
            break
        moves = []
        for k in range(robot.dof):
            for sign in (1.0, -1.0):
                q2 = q.copy()
                q2[k] = np.clip(q2[k] + sign * steps[k], lo[k], hi[k])
                if q2[k] != q[k]:
                    moves.append((_score(robot, q2, clock), q2))
        top_score, top_q = first_best_move(moves) if moves else (score, q)
        if top_score <= score + HOME_TIE_TOLERANCE * abs(score):  # no real gain: noise must not decide
            break
        score, q = top_score, top_q
    if score < HOME_SINGULAR_FRACTION * best:  # (HOME_SINGULAR_FRACTION < HOME_GOOD_FRACTION)
        return zero, f"zero: {why}, and no better pose was found near it"
    return q, (f"{why}; climbed {climbed} steps from zero to manipulability {score:.3g} "
               f"({score / best:.0%} of the best found)")
