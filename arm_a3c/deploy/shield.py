"""The safety shield between the policy and the robot, on in every deploy: each command is checked, and changed
where it must be, before it is sent.

- **Joint limits:** every position target inside the joint's limits less a margin (`margin` of its range).
- **Speed:** no joint's target moves faster than its speed limit: the URDF's velocity limit, or the policy's own
  largest step per period where the URDF gives none, and the user's `max_speed` if lower, all times
  `speed_fraction` (start a real arm at a fraction).
- **Acceleration:** a joint's target speed changes by at most its speed limit over `ramp_seconds` per second.
- **Contacts:** a command whose configuration puts two checked links into each other, or a moving link into the
  floor (the pairs training checks), is not sent: the arm holds its last command.
- **Watchdog:** a joint state older than `max_state_age` seconds, or a period that overran, and the arm holds its
  last command (`hold`).

Every intervention is counted by kind (`counts`) and named in the period's log. A hold stops the arm at once, so
it is not limited by the acceleration bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INTERVENTIONS = ("joint_limit", "speed", "acceleration", "contact", "stale_state", "overrun")


@dataclass
class ShieldSettings:
    margin: float = 0.02  # of each joint's range, kept free at both ends
    speed_fraction: float = 1.0  # of each joint's speed limit
    max_speed: float | None = None  # rad/s (m/s for a prismatic joint) for every joint, if lower than its limit
    ramp_seconds: float = 0.25  # from rest to full speed at the acceleration limit
    max_state_age: float | None = None  # s; None: two control periods
    check_contacts: bool = True


@dataclass
class Shield:
    """The shield of an arm (`model`: `kinematics.ArmModel`) with `settings`."""

    model: object
    settings: ShieldSettings = field(default_factory=ShieldSettings)

    def __post_init__(self) -> None:
        model, s = self.model, self.settings
        self.dt = 1.0 / model.control_hz
        margins = [s.margin * (hi - lo) for lo, hi in zip(model.lower, model.upper)]
        self.lower = [lo + m for lo, m in zip(model.lower, margins)]
        self.upper = [hi - m for hi, m in zip(model.upper, margins)]
        policy_speed = [step * model.control_hz for step in model.max_step]
        limits = [urdf if urdf else own for urdf, own in zip(model.urdf_speed, policy_speed)]
        if s.max_speed is not None:
            limits = [min(v, s.max_speed) for v in limits]
        self.speed = [v * s.speed_fraction for v in limits]
        self.acceleration = [v / s.ramp_seconds for v in self.speed]
        self.max_state_age = s.max_state_age if s.max_state_age is not None else 2 * self.dt
        self.counts = {kind: 0 for kind in INTERVENTIONS}
        self.last: list[float] | None = None  # the last command sent
        self.velocity = [0.0] * model.dof  # the last command's speed, per joint

    def start(self, q: list[float]) -> None:
        """From the arm's measured position `q`, at rest: the first command is checked against it."""
        self.last = [min(max(qi, lo), hi) for qi, lo, hi in zip(q, self.lower, self.upper)]
        self.velocity = [0.0] * len(q)

    def check(self, target: list[float], count: bool = True) -> tuple[list[float], list[str]]:
        """The command to send for the policy's `target`, and the interventions it took (counted with `count`;
        the drive to the home pose leans on the speed and acceleration bounds on purpose, and is not counted)."""
        assert self.last is not None, "start() first"
        done = []
        command = [min(max(t, lo), hi) for t, lo, hi in zip(target, self.lower, self.upper)]
        if command != list(target):
            done.append("joint_limit")
        dt = self.dt
        velocity = [(c - p) / dt for c, p in zip(command, self.last)]
        capped = [min(max(v, -limit), limit) for v, limit in zip(velocity, self.speed)]
        if capped != velocity:
            done.append("speed")
        ramped = [min(max(v, v0 - a * dt), v0 + a * dt) for v, v0, a in zip(capped, self.velocity, self.acceleration)]
        if ramped != capped:
            done.append("acceleration")
        # (slowing down at the acceleration bound can carry a joint on towards its limit: the limit wins)
        command = [min(max(p + v * dt, lo), hi) for p, v, lo, hi in zip(self.last, ramped, self.lower, self.upper)]
        ramped = [(c - p) / dt for c, p in zip(command, self.last)]
        if self.settings.check_contacts and any(self.model.contacts(command)):
            done.append("contact")
            command, ramped = list(self.last), [0.0] * len(command)
        for kind in done if count else ():
            self.counts[kind] += 1
        self.last, self.velocity = command, ramped
        return command, done

    def hold(self, why: str) -> list[float]:
        """The command that holds the arm where it was last commanded (`why`: stale_state or overrun)."""
        assert self.last is not None, "start() first"
        self.counts[why] += 1
        self.velocity = [0.0] * len(self.last)
        return list(self.last)
