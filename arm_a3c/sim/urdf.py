"""Read and check a URDF file before PyBullet sees it, so every mistake gets a one-line explanation.

PyBullet reports a broken URDF as "Cannot load URDF file." and prints the reason to stdout; it crashes on some
(two joints of one name, a second root link, a link hanging from two joints, a cycle), and loads others that
fail later (a NaN limit, a zero axis, a negative mass, more links than it can hold). Here the file is parsed with
the standard library first and each problem becomes a `UserError` naming the file, the element and the fix.

The files a URDF names (meshes, textures) must lie inside the robot's folder: the folder of the URDF file, or,
for `package://NAME/...`, the ROS package the URDF lies in (the nearest folder above it with a package.xml, if
that declares NAME or the folder is called NAME). A name that leads elsewhere (by `..`, an absolute path or a
symlink) is refused, and so is one that an OBJ mesh names in turn (its `mtllib` material files and their
textures, which PyBullet opens too). PyBullet is given `UrdfModel.checked_xml`, the URDF with each such name
replaced by the file that was checked: its own search tries the current folder first and then every folder above
the URDF, so it could otherwise load another file of the same name.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from arm_a3c.errors import UserError

MOVABLE_JOINT_TYPES = ("revolute", "continuous", "prismatic")
JOINT_TYPES = (*MOVABLE_JOINT_TYPES, "fixed", "floating", "planar", "spherical")
AXIS_JOINT_TYPES = (*MOVABLE_JOINT_TYPES, "planar")  # the joints whose <axis> PyBullet uses
LIMITED_JOINT_TYPES = ("revolute", "prismatic")  # PyBullet refuses these without a <limit>
# Links, the base included, that PyBullet can hold: with one more it loads the file, but getLinkState and
# getJointState fail for every link (its MAX_DEGREE_OF_FREEDOM is 128; measured with serial chains, pybullet 3.2.7).
PYBULLET_MAX_LINKS = 128
# PyBullet copies robot, link and joint names into 1024-byte buffers and reads past them or crashes beyond
# (measured, pybullet 3.2.7: a 1,024-byte link name comes back corrupted; a robot name of 1,060 bytes, a joint
# name of 2,000 and a link name of 3,000 crash it). This many characters fit even at 4 UTF-8 bytes each.
MAX_NAME_CHARS = 255
# Every length in a URDF (origins, shape sizes, prismatic limits), m: real robots stay far below it (200 m, the
# floor plane, is the largest in pybullet_data and example-robot-data), and 1e300 overflows the kinematics.
MAX_LENGTH_M = 1000.0
# A revolute limit beyond this (about 16 turns) means none: exporters write ±1e16 for a joint that turns freely.
# Such a joint is used as a continuous one.
MAX_REVOLUTE_LIMIT_RAD = 100.0
# A shorter <axis> counts as zero: normalising it squares its parts, and 1e-300 squared is 0 (it became NaN).
MIN_AXIS_NORM = 1e-6
# PyBullet reads OBJ and MTL files with fgets into 1024 bytes: a longer line reaches it as several lines.
PYBULLET_LINE_BYTES = 1023
TEXTURE_KEYWORDS = (b"map_Ka", b"map_Kd", b"map_Ks", b"map_Ns")  # the texture lines of an .mtl that PyBullet reads
# Shapes PyBullet reads, and the sizes (attribute, how many numbers, all > 0) each must have.
SHAPE_SIZES = {"box": (("size", 3),), "cylinder": (("radius", 1), ("length", 1)), "sphere": (("radius", 1),),
               "capsule": (("radius", 1), ("length", 1)), "mesh": (), "plane": ()}
MESH_SUFFIXES = (".obj", ".stl", ".dae")  # the mesh formats PyBullet loads
DRAWN_SHAPES = ("mesh", "box", "cylinder", "sphere")  # the shapes the viewer draws (`UrdfVisual.kind`)
# Limits used when a URDF gives none (lower == upper): a full turn for revolute joints, and a modest stroke for
# prismatic ones.
DEFAULT_REVOLUTE_LIMIT_RAD = math.pi
DEFAULT_PRISMATIC_LIMIT_M = 0.2
DEFAULT_EFFORT = 50.0  # N·m or N, used when the URDF's effort is missing or zero (the joint could not move)
ZERO3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class JointLimits:
    """Usable limits of one movable joint and how they were obtained (for the inspection report)."""

    lower: float  # rad for revolute/continuous, m for prismatic
    upper: float
    effort: float  # N·m or N
    note: str  # "" when taken from the URDF as written
    velocity: float = 0.0  # rad/s or m/s, as the URDF gives it; 0: none given (no speed limit of its own)


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
    mesh_path: Path | None  # the checked file, for meshes
    xyz: tuple[float, float, float]  # origin in the link frame, m
    rpy: tuple[float, float, float]  # rad
    rgba: tuple[float, float, float, float]


@dataclass(frozen=True)
class UrdfModel:
    """What arm-a3c needs from a URDF's text: its name, links, joints and visuals, and the text PyBullet loads."""

    path: Path
    name: str
    links: tuple[str, ...]
    joints: tuple[UrdfJoint, ...]
    visuals: tuple[UrdfVisual, ...]
    checked_xml: str  # the URDF with every mesh and texture name replaced by the absolute path of the checked file

    @property
    def movable_joints(self) -> tuple[UrdfJoint, ...]:
        return tuple(j for j in self.joints if j.type in MOVABLE_JOINT_TYPES)

    def joint(self, name: str) -> UrdfJoint:
        return next(j for j in self.joints if j.name == name)


def _numbers(where: str, element: ET.Element | None, attribute: str, default: tuple[float, ...] | None,
             count: int = 1, largest_m: float | None = None) -> tuple[float, ...]:
    """`count` finite numbers from `element`'s `attribute`; `default` when it is absent (None: it is required);
    lengths (`largest_m` given) within ±`largest_m` metres. `where` names the element in errors, for example
    "FILE: joint 'elbow' <limit>"."""
    text = element.get(attribute) if element is not None else None
    if text is None:
        if default is None:
            raise UserError(f"{where} has no {attribute}; give {attribute}=\"...\" "
                            f"({count} number{'s' * (count > 1)})")
        return default
    try:
        values = tuple(float(v) for v in text.split())
    except ValueError:
        values = ()
    if len(values) != count or not all(math.isfinite(v) for v in values):
        amount = f"{count} finite numbers" if count > 1 else "a finite number"
        raise UserError(f"{where} {attribute}=\"{text}\" must be {amount}; fix the value")
    if largest_m is not None and max(abs(v) for v in values) > largest_m:
        raise UserError(f"{where} {attribute}=\"{text}\" is beyond ±{largest_m:g} m; fix the value (URDF lengths "
                        "are in metres)")
    return values


def _number(where: str, element: ET.Element | None, attribute: str, default: float | None,
            minimum: float | None = None, largest_m: float | None = None) -> float:
    """One finite number (see `_numbers`), at least `minimum` if given."""
    (value,) = _numbers(where, element, attribute, None if default is None else (default,), 1, largest_m)
    if minimum is not None and value < minimum:
        raise UserError(f"{where} {attribute}=\"{value:g}\" must be >= {minimum:g}; fix the value")
    return value


def _origin(where: str, parent: ET.Element) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """xyz (m) and rpy (rad) of `parent`'s <origin>, zero when absent."""
    origin = parent.find("origin")
    return (_numbers(f"{where} <origin>", origin, "xyz", ZERO3, 3, MAX_LENGTH_M),
            _numbers(f"{where} <origin>", origin, "rpy", ZERO3, 3))


def usable_limits(joint_type: str, lower: float, upper: float, effort: float, velocity: float = 0.0) -> JointLimits:
    """Limits that a controller can use: continuous joints, and revolute ones whose limits mean none (beyond
    MAX_REVOLUTE_LIMIT_RAD), get ±pi, missing limits a default, inverted ones are swapped, a zero effort a default.
    The note says which of these happened."""
    effort_note = ""
    if effort <= 0.0:
        effort, effort_note = DEFAULT_EFFORT, f"effort missing, using {DEFAULT_EFFORT:g}"
    if joint_type == "continuous":
        lower, upper, note = -math.pi, math.pi, "continuous, limited to ±pi"
    elif joint_type == "revolute" and max(abs(lower), abs(upper)) > MAX_REVOLUTE_LIMIT_RAD:
        lower, upper, note = -math.pi, math.pi, (f"limits beyond ±{MAX_REVOLUTE_LIMIT_RAD:g} rad mean none: "
                                                 "turns freely, limited to ±pi")
    else:
        default = DEFAULT_REVOLUTE_LIMIT_RAD if joint_type == "revolute" else DEFAULT_PRISMATIC_LIMIT_M
        if lower == upper:
            lower, upper, note = -default, default, f"limits missing, using ±{default:.3g}"
        elif lower > upper:
            lower, upper, note = upper, lower, "limits inverted in the URDF, swapped"
        else:
            note = ""
    return JointLimits(lower, upper, effort, "; ".join(n for n in (note, effort_note) if n), velocity)


def _package_root(folder: Path, package: str) -> Path | None:
    """The ROS package folder that `package://PACKAGE/` names: the nearest folder at or above `folder` that holds
    a package.xml (ROS packages do not nest: the first one met ends the search), if its <name> is PACKAGE or the
    folder is called PACKAGE (a package installed under its own name: example-robot-data's robots sit in
    share/example-robot-data/, whose package.xml names it example_robot_descriptions). A folder that is merely
    called PACKAGE is no package: `package://tmp/...` must not reach /tmp."""
    for candidate in (folder, *folder.parents):
        manifest = candidate / "package.xml"
        if manifest.is_file():
            if candidate.name == package:
                return candidate
            try:
                name = ET.parse(manifest).getroot().findtext("name", "").strip()
            except ET.ParseError:
                return None
            return candidate if name == package else None
    return None


def _file_candidates(folder: Path, filename: str) -> list[tuple[Path, Path]]:
    """Where a name in the URDF may point, each with the folder it must stay in: relative to the URDF's folder,
    and for `package://NAME/REST` also REST there and in NAME's package folder."""
    if filename.startswith("file://"):
        filename = filename[len("file://"):]
    if not filename.startswith("package://"):
        return [(folder / filename, folder)]  # an absolute filename replaces the folder
    rel = Path(filename[len("package://"):])
    tail = Path(*rel.parts[1:]) if len(rel.parts) > 1 else rel
    candidates = [(folder / rel, folder), (folder / tail, folder)]
    root = _package_root(folder, rel.parts[0]) if rel.parts else None
    return candidates + ([(root / tail, root)] if root is not None else [])


def _resolved(path: Path, candidate: Path, what: str) -> Path:
    """`candidate` with its links followed; `what` names it in errors."""
    try:
        return candidate.resolve()
    except RuntimeError:  # how Python 3.11 reports a symlink loop
        raise UserError(f"{path}: {what} is a symlink loop ({candidate}); point the link at a file") from None


def _checked_file(path: Path, folder: Path, filename: str, kind: str, owner: str) -> tuple[Path, Path]:
    """The file that `filename` (a mesh or texture of `owner`) names inside the robot's folder (`folder`, resolved)
    or its package folder, resolved, and that folder."""
    left = False
    for candidate, root in _file_candidates(folder, filename):
        real = _resolved(path, candidate, f"{kind} '{filename}' of {owner}")
        if not real.is_relative_to(root):
            left = True
        elif real.is_file():
            return real, root
    package = filename.removeprefix("package://").split("/")[0] if filename.startswith("package://") else ""
    package_folder = (f"the folder of package {package} (above it, holding a package.xml that names {package}, "
                      f"or called {package} and holding a package.xml)")
    if left:
        raise UserError(f"{path}: {kind} '{filename}' of {owner} leaves the robot's folder {folder}; keep the files "
                        f"the URDF names inside it" + (f" or inside {package_folder}" if package else ""))
    raise UserError(f"{path}: {kind} '{filename}' of {owner} not found in {folder}; copy the robot's {kind} folder "
                    f"into {folder}" + (f" or into {package_folder}" if package else ""))


def _check_material(path: Path, where: str, material: ET.Element, folder: Path) -> tuple[float, ...] | None:
    """Check a <material> (PyBullet needs its name; its texture must be inside the robot's folder, and is pointed
    at the checked file); its colour, None without one. `where` names its place in errors."""
    name = material.get("name")
    if not name:
        raise UserError(f"{where} has a <material> without a name; give it name=\"...\" (PyBullet needs one)")
    texture = material.find("texture")
    if texture is not None and texture.get("filename"):
        texture.set("filename", str(_checked_file(path, folder, texture.get("filename"), "texture",
                                                  f"material '{name}'")[0]))
    color = material.find("color")
    if color is None:
        return None
    return _numbers(f"{where} <material> '{name}' <color>", color, "rgba", DEFAULT_RGBA, 4)


def _check_shape(path: Path, where: str, geometry: ET.Element | None, folder: Path,
                 link: str) -> tuple[ET.Element, tuple[float, ...]]:
    """The one shape of a <visual> or <collision> and its size (see `UrdfVisual.size`; a capsule's is radius and
    length), checked; a mesh's name is pointed at the checked file."""
    shapes = list(geometry) if geometry is not None else []
    if not shapes:
        raise UserError(f"{where} has no <geometry> shape; give it one of "
                        f"{', '.join(f'<{s}>' for s in SHAPE_SIZES)}")
    shape = shapes[0]
    if shape.tag not in SHAPE_SIZES:
        raise UserError(f"{where} has a <{shape.tag}>; PyBullet reads {', '.join(f'<{s}>' for s in SHAPE_SIZES)}")
    size: tuple[float, ...] = ()
    for attribute, count in SHAPE_SIZES[shape.tag]:
        values = _numbers(f"{where} <{shape.tag}>", shape, attribute, None, count, MAX_LENGTH_M)
        if min(values) <= 0.0:
            raise UserError(f"{where} <{shape.tag}> {attribute}=\"{shape.get(attribute)}\" must be > 0 m; "
                            "fix the value")
        size += values
    if shape.tag == "mesh":
        filename = shape.get("filename")
        if not filename:
            raise UserError(f"{where} <mesh> has no filename; give filename=\"...\" (a path inside {folder})")
        size = _numbers(f"{where} <mesh>", shape, "scale", (1.0, 1.0, 1.0), 3)
        if 0.0 in size:
            raise UserError(f"{where} <mesh> scale=\"{shape.get('scale')}\" must be non-zero; fix the value")
        checked, root = _checked_file(path, folder, filename, "mesh", f"link '{link}'")
        if checked.suffix.lower() not in MESH_SUFFIXES:
            raise UserError(f"{path}: mesh '{filename}' of link '{link}' is a {checked.suffix or 'suffix-less'} file; "
                            f"PyBullet reads {', '.join(MESH_SUFFIXES)} meshes: convert it")
        _check_mesh_file(path, checked, root, f"mesh '{filename}' of link '{link}'")
        shape.set("filename", str(checked))
    return shape, size


def _directives(path: Path, keywords: tuple[bytes, ...]) -> list[bytes]:
    """What follows the keyword and one blank on each line of an OBJ or MTL file that starts with one of
    `keywords` (six letters each), the lines taken as PyBullet's reader takes them: in pieces of at most
    PYBULLET_LINE_BYTES, each cut at a NUL byte (C strings end there), leading blanks skipped."""
    data = path.read_bytes()
    if not any(keyword in data for keyword in keywords):  # most meshes: no need to split them into lines
        return []
    pieces = (line[start:start + PYBULLET_LINE_BYTES].split(b"\0")[0].lstrip(b" \t")
              for line in data.split(b"\n") for start in range(0, len(line), PYBULLET_LINE_BYTES))
    return [piece[7:] for piece in pieces if piece[:6] in keywords and piece[6:7] in (b" ", b"\t")]


def _inside(path: Path, candidate: Path, root: Path, what: str) -> Path:
    """`candidate` resolved, if it stays inside `root` (the folder the mesh naming it was found in)."""
    real = _resolved(path, candidate, what)
    if not real.is_relative_to(root):
        raise UserError(f"{path}: {what} leaves {root}; keep the files a mesh names inside it")
    return real


def _check_mesh_file(path: Path, mesh: Path, root: Path, what: str) -> None:
    """What PyBullet does with the mesh file beyond reading it, made safe. An OBJ's material files (`mtllib NAME`)
    and their textures (`map_Kd NAME` and the like) are opened too, both relative to the OBJ's folder (measured:
    PyBullet reads textures relative to the OBJ, not to the .mtl), so they must stay inside `root` as the mesh does;
    a missing one is no error (PyBullet then uses its default colour). A .dae file that is XML but not COLLADA
    crashes PyBullet, so it must parse with a <COLLADA> root (a broken but well-formed COLLADA file can still crash
    it: this is no full COLLADA check)."""
    if mesh.suffix.lower() == ".obj":
        for words in (rest.split() for rest in _directives(mesh, (b"mtllib",))):
            if not words:
                continue
            material_file = os.fsdecode(words[0])  # PyBullet reads the first word (sscanf %s)
            named = f"material file '{material_file}' of {what}"
            mtl = _inside(path, mesh.parent / material_file, root, named)
            for rest in _directives(mtl, TEXTURE_KEYWORDS) if mtl.is_file() else []:
                texture = os.fsdecode(rest.rstrip(b" \t\r"))  # the rest of the line
                _inside(path, mesh.parent / texture, root, f"texture '{texture}' in {named}")
    elif mesh.suffix.lower() == ".dae":
        try:
            tag = ET.parse(mesh).getroot().tag
        except ET.ParseError as err:
            raise UserError(f"{path}: {what} is not valid XML ({err}), as a .dae (COLLADA) file must be; export it "
                            "again or convert it to .obj or .stl") from None
        if tag.rpartition("}")[2] != "COLLADA":
            raise UserError(f"{path}: {what} is XML but not COLLADA (its top element is <{tag}>), which crashes "
                            "PyBullet; export it again or convert it to .obj or .stl")


def _check_inertial(where: str, inertial: ET.Element) -> None:
    _origin(where, inertial)
    mass = inertial.find("mass")
    if mass is None or mass.get("value") is None:
        raise UserError(f"{where} has no <mass value=\"...\"/>; give the link's mass in kg")
    _number(f"{where} <mass>", mass, "value", None, minimum=0.0)
    inertia = inertial.find("inertia")
    if inertia is None:
        raise UserError(f"{where} has no <inertia .../>; give ixx iyy izz ixy ixz iyz in kg·m²")
    for attribute in ("ixx", "iyy", "izz"):
        _number(f"{where} <inertia>", inertia, attribute, 0.0, minimum=0.0)
    for attribute in ("ixy", "ixz", "iyz"):
        _number(f"{where} <inertia>", inertia, attribute, 0.0)


def _checked_name(path: Path, kind: str, name: str) -> str:
    """A robot, link or joint name short enough for PyBullet (MAX_NAME_CHARS)."""
    if len(name) > MAX_NAME_CHARS:
        raise UserError(f"{path}: the {kind} name '{name[:20]}...' has {len(name):,} characters; PyBullet holds at "
                        f"most {MAX_NAME_CHARS}: shorten it")
    return name


def _read_links(path: Path, root: ET.Element, folder: Path) -> tuple[tuple[str, ...], tuple[UrdfVisual, ...]]:
    """Every link's name (unique), inertial and shapes checked, and every material; the visuals the viewer draws."""
    named = {}
    for material in root.findall("material"):
        rgba = _check_material(path, str(path), material, folder)
        if rgba is not None:
            named[material.get("name")] = rgba
    names: list[str] = []
    visuals = []
    for link in root.findall("link"):
        name = link.get("name")
        if not name:
            raise UserError(f"{path}: a <link> has no name; give every link a unique name=\"...\"")
        if name in names:
            raise UserError(f"{path}: two links are named '{name}'; give every link a unique name")
        names.append(_checked_name(path, "link", name))
        where = f"{path}: link '{name}'"
        inertial = link.find("inertial")
        if inertial is not None:
            _check_inertial(f"{where} <inertial>", inertial)
        for part in ("visual", "collision"):
            for element in link.findall(part):
                xyz, rpy = _origin(f"{where} <{part}>", element)
                shape, size = _check_shape(path, f"{where} <{part}>", element.find("geometry"), folder, name)
                material, rgba = element.find("material"), None
                if material is not None:  # its own colour, else the colour of the top-level material it names
                    rgba = (_check_material(path, f"{where} <{part}>", material, folder)
                            or named.get(material.get("name")))
                if part == "visual" and shape.tag in DRAWN_SHAPES:
                    visuals.append(UrdfVisual(
                        link=name, kind=shape.tag, size=size,
                        mesh_path=Path(shape.get("filename")) if shape.tag == "mesh" else None, xyz=xyz, rpy=rpy,
                        rgba=rgba or DEFAULT_RGBA,
                    ))  # type: ignore[arg-type]
    if not names:
        raise UserError(f"{path} defines no <link>; a URDF robot needs at least a base link")
    return tuple(names), tuple(visuals)


def _read_joint(path: Path, element: ET.Element, links: tuple[str, ...]) -> UrdfJoint:
    name = element.get("name")
    if not name:
        raise UserError(f"{path}: a <joint> has no name; give every joint a unique name=\"...\"")
    where = f"{path}: joint '{_checked_name(path, 'joint', name)}'"
    jtype = element.get("type", "")
    if jtype not in JOINT_TYPES:
        raise UserError(f"{where} has type '{jtype}'; use one of {', '.join(JOINT_TYPES)}")
    ends = {}
    for end in ("parent", "child"):
        tag = element.find(end)
        link = tag.get("link") if tag is not None else None
        if not link:
            raise UserError(f"{where} has no <{end} link=\"...\"/>; name its {end} link")
        if link not in links:
            raise UserError(f"{where} names {end} link '{link}', which {path.name} does not define; "
                            f"add <link name=\"{link}\"> or fix the name")
        ends[end] = link
    _origin(where, element)
    if jtype in AXIS_JOINT_TYPES:
        axis = _numbers(f"{where} <axis>", element.find("axis"), "xyz", (1.0, 0.0, 0.0), 3)
        if math.hypot(*axis) < MIN_AXIS_NORM:
            raise UserError(f"{where} has axis xyz=\"{element.find('axis').get('xyz')}\", (nearly) zero; give the "
                            "direction it moves about, for example xyz=\"0 0 1\"")
    limit = element.find("limit")
    if limit is None and jtype in LIMITED_JOINT_TYPES:
        raise UserError(f"{where} is {jtype} but has no <limit>; add <limit lower=\"...\" upper=\"...\" "
                        "effort=\"...\" velocity=\"...\"/> (rad or m, N·m or N, rad/s or m/s)")
    at = f"{where} <limit>"
    largest_m = MAX_LENGTH_M if jtype == "prismatic" else None
    lower, upper = (_number(at, limit, end, 0.0, largest_m=largest_m) for end in ("lower", "upper"))
    effort = _number(at, limit, "effort", 0.0, minimum=0.0)
    velocity = _number(at, limit, "velocity", 0.0, minimum=0.0)
    limits = usable_limits(jtype, lower, upper, effort, velocity) if jtype in MOVABLE_JOINT_TYPES else None
    return UrdfJoint(name=name, type=jtype, parent=ends["parent"], child=ends["child"], limits=limits)


def _check_tree(path: Path, links: tuple[str, ...], joints: list[UrdfJoint]) -> None:
    """Joints of unique names, one root link, each other link hanging from exactly one joint, no cycle (PyBullet
    crashes on each of these), and no more links than PyBullet holds."""
    parent_joint: dict[str, UrdfJoint] = {}
    names: set[str] = set()
    for j in joints:
        if j.name in names:
            raise UserError(f"{path}: two joints are named '{j.name}'; give every joint a unique name")
        names.add(j.name)
        if j.child in parent_joint:
            raise UserError(f"{path}: link '{j.child}' is the child of joints '{parent_joint[j.child].name}' and "
                            f"'{j.name}'; a link hangs from one joint: remove one of them or give it another "
                            "child link")
        parent_joint[j.child] = j
    roots = [link for link in links if link not in parent_joint]
    if len(roots) > 1:
        raise UserError(f"{path}: links {', '.join(repr(r) for r in roots)} are all roots (no joint has them as "
                        f"child); a robot has one base link: attach the others to it with joints")
    children: dict[str, list[str]] = {}
    for j in joints:
        children.setdefault(j.parent, []).append(j.child)
    reached, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            reached.add(child)
            todo.append(child)
    # every link but the root hangs from one joint, so a link the root does not reach lies on a cycle or below one
    link = next((link for link in links if link not in reached), None)
    if link is not None:
        chain: list[str] = []
        while link not in chain:
            chain.append(link)
            link = parent_joint[link].parent
        cycle = chain[chain.index(link):][::-1]  # parent to child
        on_cycle = [repr(parent_joint[child].name) for child in [*cycle[1:], cycle[0]]]
        joints_form = f"joints {', '.join(on_cycle)} form" if len(on_cycle) > 1 else f"joint {on_cycle[0]} forms"
        raise UserError(f"{path}: {joints_form} a cycle ({' -> '.join([*cycle, cycle[0]])}); a URDF robot is a "
                        "tree: remove or re-attach one")
    if len(links) > PYBULLET_MAX_LINKS:
        raise UserError(f"{path} has {len(links)} links; PyBullet simulates at most {PYBULLET_MAX_LINKS} (the base "
                        "included): merge links joined by fixed joints, or use a shorter chain")


def read_urdf(path: Path) -> UrdfModel:
    """Parse and check a URDF (see the module's docstring); raise `UserError` for anything PyBullet would refuse,
    crash on or load wrongly, for a file outside the robot's folder, or for a robot with no movable joints."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"robot file {path} not found; give the path of an existing .urdf file")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise UserError(f"{path} is not valid URDF XML ({err}); fix the file or export it again") from None
    if root.tag != "robot":
        raise UserError(f"{path} is not a URDF: its top element is <{root.tag}>, not <robot>")
    name = _checked_name(path, "robot", root.get("name", path.stem))
    folder = path.resolve().parent
    links, visuals = _read_links(path, root, folder)
    joints = [_read_joint(path, j, links) for j in root.findall("joint")]
    _check_tree(path, links, joints)
    try:
        checked_xml = ET.tostring(root, encoding="unicode")
    except RecursionError:
        raise UserError(f"{path} nests its XML elements too deeply to rewrite (a URDF's are a few levels deep); "
                        "remove the nesting") from None
    model = UrdfModel(path=path, name=name, links=links, joints=tuple(joints), visuals=visuals,
                      checked_xml=checked_xml)
    if not model.movable_joints:
        raise UserError(
            f"{path} has no movable joints (revolute, continuous or prismatic); "
            "arm-a3c needs an arm with at least one"
        )
    return model
