"""ROS 2's topics without ROS: Cyclone DDS (`cyclonedds` on PyPI, its C library in the wheel) with ROS 2's names
on the wire (topic `rt/NAME`, type `PKG::msg::dds_::TYPE_`) and message layouts field for field as ROS 2's IDL
(`sensor_msgs/JointState`, `std_msgs/Float64MultiArray`, `trajectory_msgs/JointTrajectory` and what they hold).

`Ros2Arm` is deploy's `ros2` transport: it subscribes to the arm's joint states and publishes position commands
for a ros2_control controller (a forward position controller's Float64MultiArray, or a JointTrajectory).
`FakeRobot` is the other end, arm-a3c's simulated arm behaving as a ros2_control arm: `arm-a3c fake-robot`.

Where `CYCLONEDDS_URI` is not set, `use_loopback()` writes a configuration that keeps Cyclone DDS on this machine
(the loopback interface, no multicast, peers on 127.0.0.1 only) and sets it; a configuration of the user's own
(`CYCLONEDDS_URI` set, say for a robot on the network) is left as it is. Cyclone DDS binds its receive sockets
to every address whatever the configuration (its issue #1923); with the loopback configuration it sends and
discovers on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Sequence

from arm_a3c.deploy.transports import JointState as State
from arm_a3c.errors import UserError

COMMAND_TYPES = ("float64_multi_array", "joint_trajectory")
DEFAULT_STATE_TOPIC = "/joint_states"
DEFAULT_COMMAND_TOPIC = {"float64_multi_array": "/forward_position_controller/commands",
                         "joint_trajectory": "/joint_trajectory_controller/joint_trajectory"}
LOOPBACK_CONFIG = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by arm-a3c: Cyclone DDS on this machine only (loopback, no multicast, peers on 127.0.0.1) -->
<CycloneDDS xmlns="https://cdds.io/config">
  <Domain Id="any">
    <General>
      <Interfaces><NetworkInterface address="127.0.0.1" multicast="false"/></Interfaces>
      <AllowMulticast>false</AllowMulticast>
    </General>
    <Discovery>
      <ParticipantIndex>auto</ParticipantIndex>
      <MaxAutoParticipantIndex>30</MaxAutoParticipantIndex>
      <Peers><Peer address="127.0.0.1"/></Peers>
    </Discovery>
  </Domain>
</CycloneDDS>
"""


def import_cyclonedds():
    try:
        import cyclonedds  # noqa: F401
    except ImportError:
        raise UserError("ROS 2 topics need Cyclone DDS: pip install cyclonedds==11.0.1 (or pip install "
                        "'.[ros2]')") from None


def use_loopback(folder: Path | None = None) -> str:
    """The Cyclone DDS configuration in force: the user's `CYCLONEDDS_URI` if set, else the loopback one, written
    to `folder` (a temporary folder by default) and set in this process's environment before any participant
    starts (children inherit it). Returns what `CYCLONEDDS_URI` now is."""
    if os.environ.get("CYCLONEDDS_URI"):
        return os.environ["CYCLONEDDS_URI"]
    import tempfile

    folder = folder or Path(tempfile.gettempdir())
    path = folder / f"arm-a3c-cyclonedds-loopback-{os.getuid()}.xml"
    if not path.is_file() or path.read_text() != LOOPBACK_CONFIG:
        path.write_text(LOOPBACK_CONFIG)
    os.environ["CYCLONEDDS_URI"] = f"file://{path}"
    return os.environ["CYCLONEDDS_URI"]


def ros2_types() -> dict:
    """The ROS 2 message types (`deploy.ros2_msgs`) by name, imported on first use: cyclonedds is optional."""
    from arm_a3c.deploy.ros2_msgs import TYPES

    return TYPES


def dds_topic(name: str) -> str:
    """ROS 2's topic `name` as DDS names it: `rt/` and the name without its leading slash."""
    return "rt/" + name.lstrip("/")


def stamp_now(types: dict):
    now = time.time()
    return types["Time"](int(now), int((now % 1.0) * 1e9))


class _Latest:
    """The latest sample of a topic, kept by a thread that waits on the reader, with when it came
    (`time.monotonic()`); with `keep`, every sample with its time in `queue` as well."""

    def __init__(self, reader, keep: bool = False):
        from collections import deque

        self.reader, self.sample, self.stamp, self.count = reader, None, 0.0, 0
        self.queue: deque | None = deque() if keep else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
        from cyclonedds.sub import InvalidSample

        condition = ReadCondition(self.reader, SampleState.NotRead | ViewState.Any | InstanceState.Alive)
        waitset = WaitSet(self.reader.participant)
        waitset.attach(condition)
        while not self._stop.is_set():
            waitset.wait(50_000_000)  # ns: wakes at least every 50 ms to see a stop
            for sample in self.reader.take(N=64):
                if isinstance(sample, InvalidSample):  # the writer left (its instance disposed): no data
                    continue
                self.sample, self.stamp, self.count = sample, time.monotonic(), self.count + 1
                if self.queue is not None:
                    self.queue.append((self.stamp, sample))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


class Ros2Arm:
    """deploy's `ros2` transport: joint states from `state_topic`, position commands to `command_topic` as
    `command_type` (a forward position controller's Float64MultiArray in `controller_joints` order, or a
    JointTrajectory of one point reached in one control period)."""

    def __init__(self, domain_id: int = 0, state_topic: str = DEFAULT_STATE_TOPIC,
                 command_type: str = "float64_multi_array", command_topic: str | None = None,
                 controller_joints: Sequence[str] | None = None, period: float = 1 / 24):
        import_cyclonedds()
        use_loopback()
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.pub import DataWriter
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        if command_type not in COMMAND_TYPES:
            raise UserError(f"--command-type must be one of {', '.join(COMMAND_TYPES)}, not {command_type!r}")
        types = self.types = ros2_types()
        self.command_type, self.period = command_type, period
        self.controller_joints = list(controller_joints) if controller_joints else None
        self.participant = DomainParticipant(domain_id)
        states = Topic(self.participant, dds_topic(state_topic), types["JointState"])
        message = types["Float64MultiArray"] if command_type == "float64_multi_array" else types["JointTrajectory"]
        commands = Topic(self.participant, dds_topic(command_topic or DEFAULT_COMMAND_TOPIC[command_type]), message)
        self.writer = DataWriter(self.participant, commands)
        self.latest = _Latest(DataReader(self.participant, states))
        self.sent = 0

    def read_state(self) -> State | None:
        sample = self.latest.sample
        if sample is None:
            return None
        velocity = list(sample.velocity) if len(sample.velocity) == len(sample.name) else [0.0] * len(sample.name)
        return State(tuple(sample.name), list(sample.position), velocity, self.latest.stamp)

    def send_command(self, names: Sequence[str], positions: Sequence[float]) -> None:
        types = self.types
        if self.command_type == "float64_multi_array":
            order = self.controller_joints or list(names)
            value = dict(zip(names, positions))
            missing = [name for name in order if name not in value]
            if missing:
                raise UserError(f"--controller-joints names {', '.join(missing)}, which the policy does not "
                                f"command ({', '.join(names)})")
            self.writer.write(types["Float64MultiArray"](data=[float(value[name]) for name in order]))
        else:
            seconds = self.period
            point = types["JointTrajectoryPoint"](
                positions=[float(p) for p in positions],
                time_from_start=types["Duration"](int(seconds), int((seconds % 1.0) * 1e9)))
            self.writer.write(types["JointTrajectory"](header=types["Header"](stamp=stamp_now(types)),
                                                       joint_names=list(names), points=[point]))
        self.sent += 1

    def close(self) -> None:
        self.latest.close()


class FakeRobot:
    """arm-a3c's simulated arm as a ros2_control arm: publishes its movable joints' state on `state_topic` at
    `rate` Hz and follows the position commands it receives (as `Ros2Arm` sends them), its physics in real
    time. A command takes effect `latency` seconds after it arrives, and the reported positions carry Gaussian
    `joint_noise` (rad or m), if asked."""

    def __init__(self, robot: str, domain_id: int = 0, rate: float = 100.0, state_topic: str = DEFAULT_STATE_TOPIC,
                 command_type: str = "float64_multi_array", command_topic: str | None = None,
                 controller_joints: Sequence[str] | None = None, joint_noise: float = 0.0, seed: int = 0,
                 latency: float = 0.0):
        import numpy as np

        from arm_a3c.envs.arm_env import make_env

        import_cyclonedds()
        use_loopback()
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.pub import DataWriter
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        self.env = make_env(robot=robot)
        self.env.reset(seed=0)
        self.robot = self.env.robot
        self.controlled = [j.name for j in self.robot.controlled]
        self.controller_joints = list(controller_joints) if controller_joints else self.controlled
        unknown = [name for name in self.controller_joints if name not in self.controlled]
        if unknown:
            raise UserError(f"--controller-joints: {', '.join(unknown)} are not controlled joints of {robot} "
                            f"({', '.join(self.controlled)})")
        self.rate, self.joint_noise, self.latency = rate, joint_noise, latency
        self.rng = np.random.default_rng(seed)
        self.command_type = command_type
        types = self.types = ros2_types()
        self.participant = DomainParticipant(domain_id)
        self.writer = DataWriter(self.participant, Topic(self.participant, dds_topic(state_topic),
                                                         types["JointState"]))
        message = types["Float64MultiArray"] if command_type == "float64_multi_array" else types["JointTrajectory"]
        self.commands = _Latest(DataReader(self.participant, Topic(
            self.participant, dds_topic(command_topic or DEFAULT_COMMAND_TOPIC[command_type]), message)),
            keep=latency > 0)
        self.followed = 0
        self.ignored = 0

    def publish(self) -> None:
        from arm_a3c.sim.client import pybullet as pb

        robot = self.robot
        states = pb.getJointStates(robot.body, robot.ctrl_index, physicsClientId=self.env.client)
        position = [s[0] for s in states]
        if self.joint_noise:
            position = (position + self.rng.normal(0.0, self.joint_noise, len(position))).tolist()
        self.writer.write(self.types["JointState"](header=self.types["Header"](stamp=stamp_now(self.types)),
                                                   name=self.controlled, position=position,
                                                   velocity=[s[1] for s in states], effort=[s[3] for s in states]))

    def follow(self) -> None:
        """The latest command received (`latency` seconds ago or more), if new, as the motors' targets."""
        if self.latency > 0:
            queue, due, sample = self.commands.queue, time.monotonic() - self.latency, None
            while queue and queue[0][0] <= due:
                sample = queue.popleft()[1]
            if sample is None:
                return
            self.followed += 1
        else:
            sample, count = self.commands.sample, self.commands.count
            if sample is None or count == self.followed:
                return
            self.followed = count
        targets = dict(zip(self.controlled, self.robot.q_target))
        if self.command_type == "float64_multi_array":
            if len(sample.data) != len(self.controller_joints):
                self.ignored += 1  # as ros2_control's forward controller: a command of the wrong size is dropped
                return
            targets.update(zip(self.controller_joints, sample.data))
        else:
            if not sample.points or len(sample.points[-1].positions) != len(sample.joint_names):
                self.ignored += 1
                return
            known = [name for name in sample.joint_names if name in targets]
            if len(known) != len(sample.joint_names):
                self.ignored += 1
                return
            targets.update(zip(sample.joint_names, sample.points[-1].positions))
        self.robot.command([targets[name] for name in self.controlled])

    def run(self, seconds: float | None = None, stop: threading.Event | None = None) -> None:
        """Publish and follow at `rate` Hz in real time, physics stepped at 240 Hz, until `seconds` pass or
        `stop` is set (Ctrl-C ends it too)."""
        from arm_a3c.sim.client import PHYSICS_HZ
        from arm_a3c.sim.client import pybullet as pb

        period = 1.0 / self.rate
        substeps = max(1, round(PHYSICS_HZ / self.rate))
        started = next_tick = time.monotonic()
        while not (stop is not None and stop.is_set()) and (seconds is None or time.monotonic() - started < seconds):
            self.follow()
            for _ in range(substeps):
                pb.stepSimulation(physicsClientId=self.env.client)
            self.publish()
            next_tick += period
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def close(self) -> None:
        self.commands.close()
        self.env.close()
