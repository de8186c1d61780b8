"""Shared test helpers: small URDFs written on the fly, and a runner for the scripts as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def box_link(name: str, length: float, mass: float = 0.2) -> str:
    """A link whose box extends `length` m along +z from its joint, with a consistent inertia."""
    inertia = mass * length**2 / 12 + 1e-5
    return f"""
  <link name="{name}">
    <visual><origin xyz="0 0 {length / 2}"/><geometry><box size="0.04 0.04 {length}"/></geometry></visual>
    <collision><origin xyz="0 0 {length / 2}"/><geometry><box size="0.04 0.04 {length}"/></geometry></collision>
    <inertial><origin xyz="0 0 {length / 2}"/><mass value="{mass}"/>
      <inertia ixx="{inertia}" iyy="{inertia}" izz="1e-4" ixy="0" ixz="0" iyz="0"/></inertial>
  </link>"""


def joint(name: str, jtype: str, parent: str, child: str, z: float, axis: str = "0 1 0",
          limit: str = '<limit lower="-1.5" upper="1.5" effort="20" velocity="3"/>') -> str:
    return f"""
  <joint name="{name}" type="{jtype}">
    <parent link="{parent}"/><child link="{child}"/><origin xyz="0 0 {z}"/><axis xyz="{axis}"/>{limit}
  </joint>"""


def robot_xml(name: str, body: str) -> str:
    return f'<?xml version="1.0"?>\n<robot name="{name}">{box_link("base", 0.1, 2.0)}{body}\n</robot>\n'


GRIPPER_ARM = robot_xml(
    "gripper_arm",
    joint("yaw", "revolute", "base", "upper", 0.1, axis="0 0 1", limit='<limit lower="-3" upper="3" effort="20" velocity="3"/>')
    + box_link("upper", 0.3)
    + joint("elbow", "revolute", "upper", "forearm", 0.3)
    + box_link("forearm", 0.25)
    + joint("palm_mount", "fixed", "forearm", "palm", 0.25, limit="")
    + box_link("palm", 0.05, 0.1)
    + joint("left_finger_joint", "prismatic", "palm", "left_finger", 0.05, axis="1 0 0",
            limit='<limit lower="0" upper="0.04" effort="10" velocity="0.1"/>')
    + box_link("left_finger", 0.06, 0.02)
    + joint("right_finger_joint", "prismatic", "palm", "right_finger", 0.05, axis="-1 0 0",
            limit='<limit lower="0" upper="0.04" effort="10" velocity="0.1"/>')
    + box_link("right_finger", 0.06, 0.02),
)


@pytest.fixture
def write_urdf(tmp_path: Path):
    """Write URDF text to tmp_path/NAME.urdf and return its path."""

    def write(text: str, name: str = "arm") -> Path:
        path = tmp_path / f"{name}.urdf"
        path.write_text(text)
        return path

    return write


def run_script(script: str, *args: str, timeout: float = 120, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run scripts/SCRIPT with arguments from the repository root, as a user would (without the environment
    variables named in `unset`)."""
    env = {k: v for k, v in os.environ.items() if k not in unset} | {"PYTHONPATH": ""}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=timeout,
    )



def write_untrained_checkpoint(robot: str, path: Path) -> Path:
    from arm_a3c.checkpoint import save_untrained_checkpoint

    return save_untrained_checkpoint(robot, path)
