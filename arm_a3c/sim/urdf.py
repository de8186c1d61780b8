"""Read and check a URDF file before PyBullet sees it, so every mistake gets a one-line explanation.

PyBullet reports a broken URDF as "Cannot load URDF file." and prints the reason to stdout; here the file is
parsed with the standard library first and each problem becomes a `UserError` naming the file and the fix.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from arm_a3c.errors import UserError

MOVABLE_JOINT_TYPES = ("revolute", "continuous", "prismatic")
# Limits used when a URDF gives none (lower == upper, or no <limit> tag): a full turn for revolute joints,
# and a modest stroke for prismatic ones.
DEFAULT_REVOLUTE_LIMIT_RAD = math.pi
DEFAULT_PRISMATIC_LIMIT_M = 0.2
DEFAULT_EFFORT = 50.0  # N·m or N, used when the URDF's effort is missing or zero (the joint could not move)


@dataclass(frozen=True)
class JointLimits:
    """Usable limits of one movable joint and how they were obtained (for the inspection report)."""

    lower: float  # rad for revolute/continuous, m for prismatic
    upper: float
    effort: float  # N·m or N
    note: str  # "" when taken from the URDF as written


@dataclass(frozen=True)
class UrdfJoint:
    name: str
    type: str  # revolute | continuous | prismatic | fixed | floating | planar
    parent: str
    child: str
    limits: JointLimits | None  # None for joints that do not move


DEFAULT_RGBA = (0.7, 0.7, 0.72, 1.0)  # visuals without a material colour


@dataclass(frozen=True)
class UrdfVisual:
    """One <visual> of a link: what to draw, where in the link frame, in which colour."""

    link: str
    kind: str  # mesh | box | cylinder | sphere
    size: tuple[float, ...]  # box (x, y, z); cylinder (radius, length); sphere (radius,); mesh scale (x, y, z)
    mesh_path: Path | None  # resolved file for meshes
    xyz: tuple[float, float, float]  # origin in the link frame, m
    rpy: tuple[float, float, float]  # rad
    rgba: tuple[float, float, float, float]


@dataclass(frozen=True)
class UrdfModel:
    """What arm-a3c needs from a URDF's text: its name, links, joints and the mesh files it refers to."""

    path: Path
    name: str
    links: tuple[str, ...]
    joints: tuple[UrdfJoint, ...]
    visuals: tuple[UrdfVisual, ...] = ()

    @property
    def movable_joints(self) -> tuple[UrdfJoint, ...]:
        return tuple(j for j in self.joints if j.type in MOVABLE_JOINT_TYPES)

    def joint(self, name: str) -> UrdfJoint:
        return next(j for j in self.joints if j.name == name)


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


def usable_limits(joint_type: str, limit: ET.Element | None) -> JointLimits:
    """Limits that a controller can use: continuous joints get ±pi, missing limits a default, inverted ones
    are swapped. The note says which of these happened."""
    effort = _float(limit.get("effort") if limit is not None else None, 0.0)
    effort_note = ""
    if effort <= 0.0:
        effort, effort_note = DEFAULT_EFFORT, f"effort missing, using {DEFAULT_EFFORT:g}"
    if joint_type == "continuous":
        lower, upper, note = -math.pi, math.pi, "continuous, limited to ±pi"
    else:
        lower = _float(limit.get("lower") if limit is not None else None, 0.0)
        upper = _float(limit.get("upper") if limit is not None else None, 0.0)
        default = DEFAULT_REVOLUTE_LIMIT_RAD if joint_type == "revolute" else DEFAULT_PRISMATIC_LIMIT_M
        if lower == upper:
            lower, upper, note = -default, default, f"limits missing, using ±{default:.3g}"
        elif lower > upper:
            lower, upper, note = upper, lower, "limits inverted in the URDF, swapped"
        else:
            note = ""
    return JointLimits(lower, upper, effort, "; ".join(n for n in (note, effort_note) if n))


def _mesh_candidates(urdf_dir: Path, filename: str) -> list[Path]:
    """Where PyBullet may find a mesh: relative to the URDF's folder, with `package://NAME/` resolved
    against that folder and its parents (there is no ROS package path here)."""
    if filename.startswith("file://"):
        filename = filename[len("file://"):]
    if not filename.startswith("package://"):
        path = Path(filename)
        return [path] if path.is_absolute() else [urdf_dir / path]
    rel = Path(filename[len("package://"):])
    tail = Path(*rel.parts[1:]) if len(rel.parts) > 1 else rel
    return [base / r for base in (urdf_dir, *urdf_dir.parents) for r in (rel, tail)]


def _find_mesh(urdf_dir: Path, filename: str) -> Path | None:
    return next((c for c in _mesh_candidates(urdf_dir, filename) if c.is_file()), None)


def _floats(text: str | None, default: tuple[float, ...]) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split()) if text else default
    except ValueError:
        return default
    return values if len(values) == len(default) else default


def _read_visuals(root: ET.Element, urdf_dir: Path) -> tuple[UrdfVisual, ...]:
    named = {}
    for material in root.findall("material"):
        color = material.find("color")
        if color is not None:
            named[material.get("name")] = _floats(color.get("rgba"), DEFAULT_RGBA)
    visuals = []
    for link in root.findall("link"):
        for visual in link.findall("visual"):
            geometry = visual.find("geometry")
            shape = next(iter(geometry), None) if geometry is not None else None
            if shape is None:
                continue
            origin = visual.find("origin")
            material = visual.find("material")
            rgba = DEFAULT_RGBA
            if material is not None:
                color = material.find("color")
                rgba = _floats(color.get("rgba"), DEFAULT_RGBA) if color is not None else named.get(
                    material.get("name"), DEFAULT_RGBA)
            mesh_path, size = None, ()
            if shape.tag == "mesh":
                mesh_path, size = _find_mesh(urdf_dir, shape.get("filename", "")), _floats(shape.get("scale"), (1, 1, 1))
            elif shape.tag == "box":
                size = _floats(shape.get("size"), (0.1, 0.1, 0.1))
            elif shape.tag == "cylinder":
                size = (_float(shape.get("radius"), 0.05), _float(shape.get("length"), 0.1))
            elif shape.tag == "sphere":
                size = (_float(shape.get("radius"), 0.05),)
            else:
                continue
            visuals.append(UrdfVisual(
                link=link.get("name", ""), kind=shape.tag, size=size, mesh_path=mesh_path,
                xyz=_floats(origin.get("xyz") if origin is not None else None, (0.0, 0.0, 0.0)),
                rpy=_floats(origin.get("rpy") if origin is not None else None, (0.0, 0.0, 0.0)), rgba=rgba,
            ))
    return tuple(visuals)


def read_urdf(path: Path) -> UrdfModel:
    """Parse and check a URDF; raise `UserError` for a missing file, bad XML, missing meshes or no
    movable joints."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"robot file {path} not found; give the path of an existing .urdf file")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise UserError(f"{path} is not valid URDF XML ({err}); fix the file or export it again") from None
    if root.tag != "robot":
        raise UserError(f"{path} is not a URDF: its top element is <{root.tag}>, not <robot>")

    links = tuple(link.get("name", "") for link in root.findall("link"))
    if not links:
        raise UserError(f"{path} defines no <link>; a URDF robot needs at least a base link")
    joints = []
    for j in root.findall("joint"):
        jtype = j.get("type", "")
        parent, child = j.find("parent"), j.find("child")
        joints.append(
            UrdfJoint(
                name=j.get("name", ""),
                type=jtype,
                parent=parent.get("link", "") if parent is not None else "",
                child=child.get("link", "") if child is not None else "",
                limits=usable_limits(jtype, j.find("limit")) if jtype in MOVABLE_JOINT_TYPES else None,
            )
        )
    for mesh in root.iter("mesh"):
        filename = mesh.get("filename", "")
        if _find_mesh(path.parent, filename) is None:
            raise UserError(
                f"{path}: mesh file '{filename}' not found next to the URDF; "
                f"copy the robot's mesh folder into {path.parent}"
            )
    model = UrdfModel(path=path, name=root.get("name", path.stem), links=links, joints=tuple(joints),
                      visuals=_read_visuals(root, path.parent))
    if not model.movable_joints:
        raise UserError(
            f"{path} has no movable joints (revolute, continuous or prismatic); "
            "arm-a3c needs an arm with at least one"
        )
    return model
