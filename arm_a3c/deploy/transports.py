"""What deploy speaks to a robot through: `RobotInterface` (read the latest joint state, send position
commands), and its transports. `sim` is arm-a3c's own simulated arm (PyBullet, stepped one control period per
command), for trying deploy without hardware; `ros2` speaks ROS 2's topics over Cyclone DDS (`deploy.ros2`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, Sequence


TRANSPORTS = ("sim", "ros2")


@dataclass
class JointState:
    """A robot's joint state: positions (rad or m) and velocities by joint name, and when it was received
    (`time.monotonic()` seconds)."""

    names: tuple[str, ...]
    position: list[float]
    velocity: list[float]
    stamp: float


class RobotInterface(Protocol):
    def read_state(self) -> JointState | None:
        """The latest joint state received (None: none yet)."""

    def send_command(self, names: Sequence[str], positions: Sequence[float]) -> None:
        """Position targets (rad or m) for the joints `names`."""

    def close(self) -> None: ...


class SimArm:
    """`sim`: an arm of arm-a3c's simulation (`robot`: a name or URDF path) as a robot. Each command is followed by
    one control period of physics (`substeps` steps of 1/240 s), so the arm moves in step with the loop; it reports
    its controlled joints' state. `commands` counts the commands received."""

    def __init__(self, robot: str, environment: dict | None = None):
        from arm_a3c.deploy.kinematics import modelled
        from arm_a3c.envs.arm_env import make_env

        self.env = make_env(**modelled({**(environment or {}), "robot": robot}))
        self.env.reset(seed=0)
        self.robot = self.env.robot
        self.names = tuple(j.name for j in self.robot.controlled)
        self.commands = 0

    def read_state(self) -> JointState:
        from arm_a3c.sim.client import pybullet as pb

        states = pb.getJointStates(self.robot.body, self.robot.ctrl_index, physicsClientId=self.env.client)
        return JointState(self.names, [s[0] for s in states], [s[1] for s in states], time.monotonic())

    def send_command(self, names: Sequence[str], positions: Sequence[float]) -> None:
        from arm_a3c.sim.client import pybullet as pb

        index = {name: k for k, name in enumerate(self.names)}
        targets = list(self.robot.q_target)
        for name, value in zip(names, positions):
            targets[index[name]] = float(value)
        self.robot.command(targets)
        self.commands += 1
        for _ in range(self.env.config.substeps):
            pb.stepSimulation(physicsClientId=self.env.client)

    def close(self) -> None:
        self.env.close()
