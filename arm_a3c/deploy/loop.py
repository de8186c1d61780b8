"""The control loop of `arm-a3c deploy`: each control period read the robot's latest joint state, make the
observation as the environment does (`kinematics.ArmModel`), run the policy, turn its action into position
targets as the environment does, pass them through the shield, send them; log the period. Episodes start at the
arm's home pose, to which the loop first drives the arm through the shield; a goal is drawn from a seed as the
environment draws it, or given. Success is judged as the task judges it, on the state after the last command.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from arm_a3c.deploy.shield import Shield
from arm_a3c.deploy.transports import TRANSPORTS, JointState, RobotInterface, SimArm
from arm_a3c.errors import UserError

LOG_FORMAT = "arm-a3c-deploy-log/1"
HOME_TOLERANCE = 0.01  # rad or m: the arm is home when every joint is this near and nearly still
HOME_STILL = 0.05  # rad/s or m/s
HOME_SECONDS = 20.0  # the arm must be home within this long, or deploy stops
FIRST_STATE_SECONDS = 5.0  # a robot that has sent no joint state by then is not there


@dataclass
class Goals:
    """The episodes to run: goals drawn from seeds `seed`, `seed + 1`, ... (`count` of them), or placed at `points`."""

    count: int = 1
    seed: int = 5_000_000
    points: list[list[float]] = field(default_factory=list)

    def __iter__(self):
        if self.points:
            return iter([(None, point) for point in self.points])
        return iter([(self.seed + k, None) for k in range(self.count)])

    def __len__(self) -> int:
        return len(self.points) or self.count


class DeployLog:
    """The log of every period as JSON lines: a header (the policy, the joints, the rate), then one object per
    period (`write`), flushed as it goes so that a killed deploy keeps what it did."""

    def __init__(self, path: Path, header: dict):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "x")  # never over a file that is there
        self._line({"format": LOG_FORMAT, **header})

    def _line(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def write(self, **record) -> None:
        self._line(record)

    def close(self) -> None:
        self.file.close()


class Deploy:
    """One deploy: `policy` (observation to action), `model` (`kinematics.ArmModel`), `robot` (a transport),
    `shield`, `log`; `realtime`: hold each period to the control rate (off only for a simulated arm)."""

    def __init__(self, policy, model, robot: RobotInterface, shield: Shield, log: DeployLog, realtime: bool = True):
        self.policy, self.model, self.robot, self.shield, self.log = policy, model, robot, shield, log
        self.realtime = realtime
        self.dt = 1.0 / model.control_hz
        self.names = model.joint_names
        self.periods: list[float] = []  # s between consecutive commands
        self.compute: list[float] = []  # s from the state read to the command ready
        self.speed_fraction = 0.0
        self._last_send: float | None = None
        self._next_tick: float | None = None
        self.overran = False

    # ---- one period ------------------------------------------------------------------------------------------

    def state(self) -> tuple[list[float], list[float]] | None:
        """The latest joint state's positions and velocities in the policy's joint order, or None when it is
        missing or older than the shield's limit."""
        state = self.robot.read_state()
        if state is None or time.monotonic() - state.stamp > self.shield.max_state_age:
            return None
        return pick(state, self.names)

    def send(self, command: list[float]) -> None:
        self.robot.send_command(self.names, command)
        now = time.monotonic()
        if self._last_send is not None:
            self.periods.append(now - self._last_send)
        self._last_send = now

    def wait(self) -> None:
        """Until the next period begins (with `realtime`); a period whose work ran past its end is an overrun."""
        if not self.realtime:
            return
        now = time.monotonic()
        self._next_tick = (self._next_tick or now) + self.dt
        if now > self._next_tick:  # late: start the next period now, and hold in it
            self.overran, self._next_tick = True, now
            return
        time.sleep(self._next_tick - now)

    # ---- the phases ------------------------------------------------------------------------------------------

    def first_state(self) -> tuple[list[float], list[float]]:
        """The robot's first joint state, its joint names checked against the policy's before any command."""
        deadline = time.monotonic() + FIRST_STATE_SECONDS
        state = self.robot.read_state()
        while state is None and time.monotonic() < deadline:
            time.sleep(0.01)
            state = self.robot.read_state()
        if state is None:
            raise UserError(f"the robot sent no joint state within {FIRST_STATE_SECONDS:g} s; check that it "
                            f"publishes its joint states and that the transport reaches it")
        missing = [name for name in self.names if name not in state.names]
        if missing:
            raise UserError(f"the robot's joints ({', '.join(state.names)}) lack the policy's "
                            f"{', '.join(missing)}: this policy is for {self.model.robot.name}, whose controlled "
                            f"joints are {', '.join(self.names)}; no command was sent")
        return pick(state, self.names)

    def go_home(self, episode: int) -> None:
        """Drive the arm to its home pose through the shield, and wait until it is there and still."""
        home = self.model.home
        deadline = time.monotonic() + HOME_SECONDS
        while True:
            state = self.state()
            if state is None:
                command = self.shield.hold("stale_state")
            else:
                q, qd = state
                if max(abs(a - b) for a, b in zip(q, home)) < HOME_TOLERANCE and max(map(abs, qd)) < HOME_STILL:
                    return
                command, _ = self.shield.check(home, count=False)
            self.send(command)
            self.log.write(episode=episode, phase="home", t=time.monotonic(), command=command)
            if time.monotonic() > deadline:
                raise UserError(f"the arm did not reach its home pose within {HOME_SECONDS:g} s (blocked, or held "
                                f"by the shield: {self.shield.counts}); deploy stopped with the arm holding")
            self.wait()

    def episode(self, number: int, seed: int | None, point: list[float] | None) -> dict:
        """One episode from home: the policy's commands for the task's steps; the task's judgement of the state
        after the last one, and whether the arm touched itself or the floor."""
        model, shield = self.model, self.shield
        goal = model.new_episode(seed, point)
        self.go_home(number)
        self_contact = floor_contact = False
        info: dict = {}
        self._action: list[float] | None = None  # the last action of this episode, which the next state is judged on
        for step in range(model.episode_steps + 1):
            started = time.monotonic()
            state = self.state()
            if state is None:
                if step == model.episode_steps:
                    break
                command, done = shield.hold("stale_state"), ["stale_state"]
                self.send(command)
                self.log.write(episode=number, phase="episode", step=step, t=started, goal=goal, command=command,
                               shield=done)
                self.wait()
                continue
            q, qd = state
            self.speed_fraction = max([self.speed_fraction] + [abs(v) / limit for v, limit in
                                                               zip(qd, model.urdf_speed) if limit])
            obs = model.observe(q, qd)
            if self._action is not None:
                info = model.judge(self._action)
            touched = model.contacts(q)
            self_contact, floor_contact = self_contact or touched[0], floor_contact or touched[1]
            if step == model.episode_steps or any(touched):
                break
            action = self.policy(obs)
            target = model.command_for(q, action)
            if self.overran:
                command, done = shield.hold("overrun"), ["overrun"]
                self.overran = False
            else:
                command, done = shield.check(target)
            self.compute.append(time.monotonic() - started)
            self.send(command)
            model.advance()
            self._action = [float(a) for a in action]
            self.log.write(episode=number, phase="episode", step=step, t=started, q=q, qd=qd,
                           goal=[float(v) for v in model.env.target],  # (track's moves)
                           action=self._action, target=target, command=command, shield=done,
                           compute_ms=round(1e3 * self.compute[-1], 3))
            self.wait()
        success = bool(info.get("is_success")) and not (self_contact or floor_contact)
        result = {"episode": number, "seed": seed, "goal": goal, "success": success,
                  "distance_m": info.get("distance"), "self_contact": self_contact, "floor_contact": floor_contact}
        self.log.write(phase="result", **result)
        return result

    def run(self, goals: Goals, progress=None) -> dict:
        """Every episode of `goals`; the figures. Ctrl-C ends it with the arm holding its last command."""
        q, _ = self.first_state()
        self.shield.start(q)
        results, interrupted = [], False
        try:
            for number, (seed, point) in enumerate(goals):
                results.append(self.episode(number, seed, point))
                if progress:
                    progress(len(results))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if self.shield.last is not None:
                self.robot.send_command(self.names, self.shield.last)  # hold where it was last sent
        return self.figures(results, interrupted)

    def figures(self, results: list[dict], interrupted: bool) -> dict:
        n = len(results)
        distances = [r["distance_m"] for r in results if r["distance_m"] is not None]

        def quantiles(values: list[float], scale: float = 1e3) -> dict | None:
            if not values:
                return None
            p50, p99 = np.percentile(values, [50, 99])
            return {"p50": round(scale * float(p50), 3), "p99": round(scale * float(p99), 3),
                    "max": round(scale * max(values), 3)}

        return {
            "episodes": n, "interrupted": interrupted,
            "success_rate": sum(r["success"] for r in results) / n if n else None,
            "mean_final_distance_m": float(np.mean(distances)) if distances else None,
            "self_contact_rate": sum(r["self_contact"] for r in results) / n if n else None,
            "floor_contact_rate": sum(r["floor_contact"] for r in results) / n if n else None,
            "max_speed_fraction": self.speed_fraction,
            "shield": dict(self.shield.counts),
            "realtime": self.realtime,
            "period_ms": quantiles(self.periods) if self.realtime else None,
            "period_jitter_ms": quantiles([abs(p - self.dt) for p in self.periods]) if self.realtime else None,
            "compute_ms": quantiles(self.compute),
            "log": str(self.log.path),
            "results": results,
        }


def pick(state: JointState, names: list[str]) -> tuple[list[float], list[float]]:
    """`state`'s positions and velocities of the joints `names`, in that order."""
    index = {name: k for k, name in enumerate(state.names)}
    return [state.position[index[n]] for n in names], [state.velocity[index[n]] for n in names]


def open_transport(name: str, robot: str, environment: dict, ros2: dict | None = None) -> RobotInterface:
    """The transport `name` to the robot: for `sim`, the simulated arm `robot`; for `ros2`, ROS 2's topics
    (`ros2`: `deploy.ros2.Ros2Arm`'s settings)."""
    if name == "sim":
        return SimArm(robot, environment)
    if name == "ros2":
        from arm_a3c.deploy.ros2 import Ros2Arm

        return Ros2Arm(**(ros2 or {}))
    raise UserError(f"--transport must be one of {', '.join(TRANSPORTS)}, not {name!r}")
