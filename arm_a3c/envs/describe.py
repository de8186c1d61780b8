"""What the project understood of a robot: joints, end effector, reach, sizes; as a dict, as text, and as a
snapshot picture. Used by `scripts/inspect_robot.py` and by the training launcher's start-up summary."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from arm_a3c.envs.arm_env import ArmEnv, make_env
from arm_a3c.files import png_info
from arm_a3c.sim.client import pybullet as pb
from arm_a3c.sim.render import Camera, add_marker, move_marker, render_rgb

SNAPSHOT_SIZE = (640, 480)  # each of the two panels
TOOL_POINT_RADIUS_M = 0.02
TOOL_POINT_RGBA = (0.85, 0.1, 0.2, 1.0)


def describe(env: ArmEnv) -> dict:
    """A JSON-ready description of the robot as the environment uses it."""
    robot, cfg = env.robot, env.config
    pairs = env.watch_contacts()
    link = robot.link_name

    speeds = {j.name: (step * cfg.control_hz, source)
              for j, step, source in zip(robot.controlled, env.speeds.steps, env.speeds.sources)}
    return {
        "robot": robot.name,
        "urdf": str(robot.spec.urdf_path),
        "controlled_joints": [j.name for j in robot.controlled],
        "held_joints": [j.name for j in robot.joints if j.role == "held"],
        "joints": [
            {"name": j.name, "type": j.type, "lower": j.lower, "upper": j.upper,
             "unit": "m" if j.type == "prismatic" else "rad", "role": j.role, "note": j.note,
             "urdf_velocity_limit": j.velocity or None, "max_speed": speeds.get(j.name, (None,))[0],
             "max_speed_source": speeds.get(j.name, (None, None))[1]}
            for j in robot.joints
        ],
        "speed_clamp": env.speeds.clamp,
        "contact_pairs_checked": [[link(a), link(b)] for a, b in pairs.checked],
        "contact_pairs_not_checked": [[link(a), link(b), why] for (a, b), why in sorted(pairs.disabled.items())],
        "contact_pairs_checked_by_settings": [[link(a), link(b)] for a, b in pairs.enabled_by_settings],
        "self_collision": cfg.self_collision,
        "clearance_band_m": round(env.clearance.band, 4) if env.clearance is not None else None,
        "floor_contact_links": [link(index) for index in pairs.floor_links],
        "speed_notes": env.speed_notes(),
        "end_effector": robot.ee_link_name,
        "end_effector_reason": robot.ee_link_reason,
        "tool_point_m": [float(v) for v in robot.ee_offset],
        "tool_point_source": Path(robot.spec.ee_offset_source).name,  # the flag, "default", or the file's name
        "home": [round(float(v), 4) for v in robot.home],
        "home_reason": robot.home_reason,
        "home_end_effector_m": [round(float(v), 4) for v in robot.forward_kinematics(robot.home)],
        "source": robot.spec.source,
        "licence": robot.spec.licence,
        "reach_m": round(env.reach_m, 4),
        "workspace_min_m": [round(v, 4) for v in env.workspace_min.tolist()],
        "workspace_max_m": [round(v, 4) for v in env.workspace_max.tolist()],
        "obs_dim": env.obs_dim,
        "action_dim": robot.dof,
        "control_hz": cfg.control_hz,
        "episode_steps": cfg.episode_steps,
        "success_radius_m": cfg.success_radius_m,
        "task": cfg.task,
        "task_summary": env.task.summary,
    }


def speed_text(joint: dict) -> str:
    """A controlled joint's largest speed and what set it ('' for a held joint)."""
    if joint["max_speed"] is None:
        return ""
    unit = "m/s" if joint["unit"] == "m" else "rad/s"
    return f"{joint['max_speed']:.4g} {unit} {joint['max_speed_source']}"


def format_text(info: dict) -> str:
    """The description as an aligned, human-readable block."""
    width = max(len(j["name"]) for j in info["joints"])
    joint_lines = [
        f"    {j['name']:<{width}}  {j['type']:<10}  {j['lower']:>7.3f} .. {j['upper']:<7.3f} {j['unit']:<3}  "
        f"{speed_text(j):<17}  {j['role']:<10}  {j['note']}".rstrip()
        for j in info["joints"]
    ]
    lo, hi = info["workspace_min_m"], info["workspace_max_m"]
    offset = info["tool_point_m"]
    point = ("the link's origin" if not any(offset) else
             f"{offset[0]:+.4f} {offset[1]:+.4f} {offset[2]:+.4f} m in its frame ({info['tool_point_source']})")
    home = " ".join(f"{v:+.3f}" for v in info["home"])
    at = " ".join(f"{v:+.3f}" for v in info["home_end_effector_m"])
    lines = [
        f"robot          {info['robot']}  ({info['urdf']})",
        *([f"source         {info['source']}"] if info["source"] else []),
        *([f"licence        {info['licence']}"] if info["licence"] else []),
        f"end effector   {info['end_effector']}  ({info['end_effector_reason']}); tool point {point}",
        f"home           {home}  (end-effector point at {at} m)",
        f"               {info['home_reason']}",
        f"joints         {len(info['controlled_joints'])} controlled, {len(info['held_joints'])} held; each with its "
        f"largest speed and what sets it (its URDF limit, the arm's clamp, or max_joint_step_rad/_m)",
        *joint_lines,
        *[f"               {note}" for note in info["speed_notes"]],
        f"contacts       {len(info['contact_pairs_checked'])} pairs of links checked for touching each other, "
        f"{len(info['floor_contact_links'])} links for touching the floor; not checked: "
        + (", ".join(f"{a}-{b} ({why})" for a, b, why in info["contact_pairs_not_checked"] if why != "adjacent")
           or "only adjacent links")
        + "".join(f", {a}-{b} checked (settings file)" for a, b in info["contact_pairs_checked_by_settings"]),
        "               " + ("self-collision on: the pairs checked collide, and a contact ends the episode"
                             if info["self_collision"] else "self-collision off: links pass through each other"),
        "               " + (f"the observation sees how near the nearest pairs are, within {info['clearance_band_m']:.3f} m, "
                             f"and which way parts them" if info["clearance_band_m"] is not None else
                             "the observation does not see the pairs' clearance (--clearance-observation on shows it)"),
        f"reach          {info['reach_m']:.3f} m from the base",
        "workspace      " + "  ".join(f"{axis} {a:+.2f}..{b:+.2f}" for axis, a, b in zip("xyz", lo, hi)) + " m",
        f"task           {info['task']}: {info['task_summary']}",
        f"observation    {info['obs_dim']} floats    action  {info['action_dim']} floats in [-1, 1]",
        f"control        {info['control_hz']:g} Hz, episodes of {info['episode_steps']} steps, "
        f"success within {info['success_radius_m']} m",
    ]
    if "snapshot" in info:
        lines.append(f"snapshot       {info['snapshot']}  (left: home pose; right: a random pose and its green "
                     f"target; red: the end-effector point)")
    return "\n".join(lines)


@contextmanager
def point_marker(env: ArmEnv) -> Iterator[int]:
    """A small red sphere (body id) for marking the end-effector point in renders; removed afterwards."""
    marker = add_marker(env.client, TOOL_POINT_RADIUS_M, TOOL_POINT_RGBA)
    try:
        yield marker
    finally:
        pb.removeBody(marker, physicsClientId=env.client)


def save_snapshot(env: ArmEnv, path: Path, seed: int) -> Path:
    """Two renders side by side, written as PNG: the arm at its home pose, and at a random pose with a random
    target (green); a small red sphere marks the end-effector point in both."""
    env.reset(seed=seed)
    with point_marker(env) as point:
        move_marker(env.client, point, env.robot.ee_position())
        home = render_rgb(env.client, env.camera, *SNAPSHOT_SIZE)
        pose_rng = np.random.default_rng([seed, 1])  # a stream apart from the target's, or the arm would sit on it
        move_marker(env.client, point, env.robot.forward_kinematics(env.robot.random_configuration(pose_rng)))
        posed = render_rgb(env.client, env.camera, *SNAPSHOT_SIZE)
    env.reset(seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([home, posed], axis=1)).save(path, format="PNG", pnginfo=png_info())
    return path


GALLERY_TILE = (400, 320)
GALLERY_COLUMNS = 4


def render_home(env: ArmEnv, size: tuple[int, int]) -> np.ndarray:
    """The arm at its home pose with the end-effector point marked, as an RGB array."""
    env.reset(seed=0)
    for body in env.task.markers:  # the task's goal markers: not part of the robot's picture
        pb.resetBasePositionAndOrientation(body, [0.0, 0.0, -10.0], (0, 0, 0, 1), physicsClientId=env.client)
    with point_marker(env) as point:
        move_marker(env.client, point, env.robot.ee_position())
        return render_rgb(env.client, framing(env), *size)


def framing(env: ArmEnv) -> Camera:
    """A camera on the arm as it stands now: aimed at the middle of its links' bounding box, far enough back for
    the box to fit the view (an arm whose home reaches sideways, as the Panda's, is not cut off)."""
    robot = env.robot
    boxes = [pb.getAABB(robot.body, link, physicsClientId=env.client) for link in range(-1, pb.getNumJoints(
        robot.body, physicsClientId=env.client))]
    low = np.min([box[0] for box in boxes], axis=0)
    high = np.max([box[1] for box in boxes], axis=0)
    middle = (low + high) / 2
    size = float(np.linalg.norm(high - low))  # the box's diagonal: whatever way the camera looks, it fits
    # the diagonal spans the vertical field of view (50 degrees) with a little room: size / 2 / tan(25) is 1.07 size
    return Camera(look_at=tuple(float(v) for v in middle), distance=max(1.15 * size, 0.3), yaw=45.0, pitch=-15.0)


def save_gallery(robots: list[str], path: Path, labels: dict[str, str] | None = None) -> Path:
    """One picture of every robot in `robots` (names or .urdf paths) at its home pose, labelled with its name,
    controlled joints and reach (or with `labels[robot]`), tiled GALLERY_COLUMNS to a row; written as PNG."""
    from PIL import ImageDraw

    tiles = []
    for name in robots:
        env = make_env(robot=name)
        try:
            tile = Image.fromarray(render_home(env, GALLERY_TILE))
            label = (labels or {}).get(name) or f"{name}: {env.robot.dof} controlled joints, reach {env.reach_m:.2f} m"
        finally:
            env.close()
        ImageDraw.Draw(tile).text((10, 8), label, fill=(20, 20, 20))
        tiles.append(tile)
    columns = min(GALLERY_COLUMNS, len(tiles))
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * GALLERY_TILE[0], rows * GALLERY_TILE[1]), (255, 255, 255))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * GALLERY_TILE[0], (i // columns) * GALLERY_TILE[1]))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG", pnginfo=png_info())
    return path
