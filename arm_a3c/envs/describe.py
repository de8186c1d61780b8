"""What the project understood of a robot: joints, end effector, reach, sizes; as a dict, as text, and as a
snapshot picture. Used by `scripts/inspect_robot.py` and by the training launcher's start-up summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from arm_a3c.envs.arm_env import ArmReachEnv
from arm_a3c.sim.render import render_rgb

SNAPSHOT_SIZE = (640, 480)


def describe(env: ArmReachEnv) -> dict:
    """A JSON-ready description of the robot as the environment uses it."""
    robot, cfg = env.robot, env.config
    return {
        "robot": robot.name,
        "urdf": str(robot.spec.urdf_path),
        "controlled_joints": [j.name for j in robot.controlled],
        "held_joints": [j.name for j in robot.joints if j.role == "held"],
        "joints": [
            {"name": j.name, "type": j.type, "lower": j.lower, "upper": j.upper,
             "unit": "m" if j.type == "prismatic" else "rad", "role": j.role, "note": j.note}
            for j in robot.joints
        ],
        "end_effector": robot.ee_link_name,
        "end_effector_reason": robot.ee_link_reason,
        "reach_m": round(env.reach_m, 4),
        "workspace_min_m": [round(v, 4) for v in env.workspace_min.tolist()],
        "workspace_max_m": [round(v, 4) for v in env.workspace_max.tolist()],
        "obs_dim": env.obs_dim,
        "action_dim": robot.dof,
        "control_hz": cfg.control_hz,
        "episode_steps": cfg.episode_steps,
        "success_radius_m": cfg.success_radius_m,
    }


def format_text(info: dict) -> str:
    """The description as an aligned, human-readable block."""
    width = max(len(j["name"]) for j in info["joints"])
    joint_lines = [
        f"    {j['name']:<{width}}  {j['type']:<10}  {j['lower']:>7.3f} .. {j['upper']:<7.3f} {j['unit']:<3}  "
        f"{j['role']:<10}  {j['note']}".rstrip()
        for j in info["joints"]
    ]
    lo, hi = info["workspace_min_m"], info["workspace_max_m"]
    lines = [
        f"robot          {info['robot']}  ({info['urdf']})",
        f"end effector   {info['end_effector']}  ({info['end_effector_reason']})",
        f"joints         {len(info['controlled_joints'])} controlled, {len(info['held_joints'])} held",
        *joint_lines,
        f"reach          {info['reach_m']:.3f} m from the base",
        "workspace      " + "  ".join(f"{axis} {a:+.2f}..{b:+.2f}" for axis, a, b in zip("xyz", lo, hi)) + " m",
        f"observation    {info['obs_dim']} floats    action  {info['action_dim']} floats in [-1, 1]",
        f"control        {info['control_hz']:g} Hz, episodes of {info['episode_steps']} steps, "
        f"success within {info['success_radius_m']} m",
    ]
    if "snapshot" in info:
        lines.append(f"snapshot       {info['snapshot']}  (random pose, green target)")
    return "\n".join(lines)


def save_snapshot(env: ArmReachEnv, path: Path, seed: int) -> Path:
    """Render the arm at a random pose with a random target marker and write it as PNG."""
    env.reset(seed=seed)
    pose_rng = np.random.default_rng([seed, 1])  # a stream apart from the target's, or the arm would sit on it
    env.robot.forward_kinematics(env.robot.random_configuration(pose_rng))
    image = render_rgb(env.client, env.camera, *SNAPSHOT_SIZE)
    env.reset(seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path
