"""A bad URDF is refused in one line naming the file, the element and the fix, before PyBullet sees it (PyBullet
crashes on some and fails later on others); the files a URDF names, and the files its meshes name, stay inside the
robot's folder; robot names stay inside the assets folders; settings files and flags are checked value by value;
the automatic home search is bounded in time and says what it does; and the viewer draws a mesh with bad faces."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import YAW_ELBOW_FOREARM, assert_user_error, box_link, joint, robot_xml, run_in_process, run_script

from arm_a3c.envs.arm_env import ArmReachEnv
from arm_a3c.errors import UserError
from arm_a3c.sim import home as home_module
from arm_a3c.sim.assets import MAX_EE_OFFSET_M, available_robots, resolve_robot
from arm_a3c.sim.client import connect, disconnect, pybullet_data, quiet_c_output
from arm_a3c.sim.client import pybullet as pb
from arm_a3c.sim.robot import Robot
from arm_a3c.sim.urdf import MAX_LENGTH_M, MAX_NAME_CHARS, MAX_REVOLUTE_LIMIT_RAD, PYBULLET_MAX_LINKS, read_urdf
from arm_a3c.viewer.meshes import load_obj

ARM = robot_xml("arm", YAW_ELBOW_FOREARM + joint("wrist", "revolute", "forearm", "hand", 0.25) + box_link("hand", 0.05))


def cube_obj(half: float) -> str:
    """An axis-aligned cube of half-size `half` m as Wavefront OBJ text."""
    corners = [(x, y, z) for x in (-half, half) for y in (-half, half) for z in (-half, half)]
    faces = [(1, 3, 4, 2), (5, 6, 8, 7), (1, 2, 6, 5), (3, 7, 8, 4), (1, 5, 7, 3), (2, 4, 8, 6)]
    return "".join(f"v {x} {y} {z}\n" for x, y, z in corners) + "".join(f"f {a} {b} {c} {d}\n" for a, b, c, d in faces)


def chain(links: int) -> str:
    """A serial arm of `links` links (the base included), joined by revolute joints."""
    body = "".join(joint(f"j{i}", "revolute", "base" if i == 1 else f"l{i - 1}", f"l{i}", 0.02)
                   + box_link(f"l{i}", 0.02, 0.01) for i in range(1, links))
    return robot_xml("chain", body)


def with_mesh(text: str, filename: str, link_box: str = '<box size="0.04 0.04 0.1"/>') -> str:
    """`text` with the base link's visual and collision boxes replaced by a mesh."""
    return text.replace(link_box, f'<mesh filename="{filename}"/>', 2)


# ---- the tree: names, roots, cycles -------------------------------------------------------------------------

# These made PyBullet segfault (exit status 139, no message): run as a user runs them.
LONG_NAME = "n" * 3000
CRASHED_PYBULLET = {
    "a robot name of 3,000 characters": (robot_xml(LONG_NAME, YAW_ELBOW_FOREARM),
                                         ["long_robot_name.urdf", "robot name", "3,000 characters", "shorten"]),
    "a link name of 3,000 characters": (ARM.replace('"hand"', f'"{LONG_NAME}"'),
                                        ["long_link_name.urdf", "link name", "3,000 characters", "shorten"]),
    "a joint name of 3,000 characters": (ARM.replace('"elbow"', f'"{LONG_NAME}"'),
                                         ["long_joint_name.urdf", "joint name", "3,000 characters", "shorten"]),
    "two joints of one name": (
        robot_xml("twins", joint("elbow", "revolute", "base", "a", 0.1) + box_link("a", 0.2)
                  + joint("elbow", "revolute", "a", "b", 0.2) + box_link("b", 0.2)),
        ["twins.urdf", "two joints are named 'elbow'", "unique"]),
    "a second root link": (
        robot_xml("roots", joint("j", "revolute", "base", "a", 0.1) + box_link("a", 0.2) + box_link("stray", 0.1)),
        ["roots.urdf", "'base'", "'stray'", "root", "attach"]),
    "a link that is the child of two joints": (
        robot_xml("two_parents", joint("j1", "revolute", "base", "a", 0.1) + box_link("a", 0.2)
                  + joint("j2", "revolute", "a", "b", 0.2) + box_link("b", 0.2)
                  + joint("j3", "revolute", "base", "b", 0.1)),
        ["two_parents.urdf", "link 'b'", "'j2'", "'j3'", "one joint"]),
    "a cycle": (
        robot_xml("loop", joint("j1", "revolute", "base", "a", 0.1) + box_link("a", 0.2) + box_link("b", 0.2)
                  + box_link("c", 0.2) + joint("j2", "revolute", "b", "c", 0.2)
                  + joint("j3", "revolute", "c", "b", 0.2)),
        ["loop.urdf", "cycle", "'j2'", "'j3'", "tree"]),
}


@pytest.mark.parametrize("case", CRASHED_PYBULLET)
def test_urdfs_that_crashed_pybullet_are_one_line_from_the_script(case, write_urdf, tmp_path):
    text, fragments = CRASHED_PYBULLET[case]
    path = write_urdf(text, fragments[0].removesuffix(".urdf"))
    result = run_script("inspect_robot.py", "--urdf", str(path), "--snapshot", str(tmp_path / "s.png"), timeout=60)
    assert result.returncode == 2, (result.returncode, result.stderr)  # not 139: no segfault
    assert result.stderr.startswith("error: ")
    assert_user_error(result, *fragments)


# (replace this, with that) in ARM, and what the one line must say
TREE_MISTAKES = {
    "duplicate link names": ("</robot>", box_link("upper", 0.1) + "</robot>", ["two links are named 'upper'"]),
    "a missing parent link": ('<parent link="upper"/>', '<parent link="uper"/>',
                              ["joint 'elbow'", "parent link 'uper'", "does not define"]),
    "a missing child link": ('<child link="forearm"/>', '<child link="farearm"/>', ["joint 'elbow'", "'farearm'"]),
    "a joint without a parent": ('<parent link="upper"/>', "", ["joint 'elbow'", "no <parent link"]),
    "a joint that is its own parent": ('<parent link="upper"/><child link="forearm"/>',
                                       '<parent link="forearm"/><child link="forearm"/>', ["'elbow'", "cycle"]),
    "a joint without a name": ('<joint name="elbow"', "<joint", ["a <joint> has no name"]),
    "a link without a name": ('<link name="forearm">', "<link>", ["a <link> has no name"]),
    "an unknown joint type": ('type="revolute"', 'type="hinge"', ["joint 'yaw'", "'hinge'", "revolute, continuous"]),
}


def test_names_of_the_longest_length_reach_pybullet_intact_even_in_four_byte_characters(write_urdf):
    """MAX_NAME_CHARS characters of 4 UTF-8 bytes each still fit PyBullet's 1024-byte name buffers; one more
    character is refused."""
    name = "\U0001F916" * MAX_NAME_CHARS
    text = robot_xml(name, YAW_ELBOW_FOREARM.replace('"forearm"', f'"{name}"').replace('"elbow"', f'"{name}"'))
    client = connect()
    try:
        robot = Robot(client, resolve_robot(write_urdf(text, "emoji"), home="zero"))
        assert robot.link_names[-1] == name and robot.joint_names[-1] == name
        assert pb.getBodyInfo(robot.body, physicsClientId=client)[1].decode() == name
    finally:
        disconnect(client)
    with pytest.raises(UserError, match=f"joint name .* {MAX_NAME_CHARS + 1} characters; PyBullet holds at most"):
        read_urdf(write_urdf(ARM.replace('"elbow"', f'"{"e" * (MAX_NAME_CHARS + 1)}"'), "one_more"))


@pytest.mark.parametrize("case", TREE_MISTAKES)
def test_tree_mistakes_are_one_line_naming_the_element(case, write_urdf):
    old, new, fragments = TREE_MISTAKES[case]
    path = write_urdf(ARM.replace(old, new, 1), "bad")
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "bad.urdf", *fragments)


# ---- numbers and the parts PyBullet needs -------------------------------------------------------------------

NUMBER_MISTAKES = {
    "a negative mass": ('<mass value="2.0"/>', '<mass value="-2"/>', ["link 'base'", "mass", ">= 0"]),
    "a NaN mass": ('<mass value="0.2"/>', '<mass value="nan"/>', ["link 'upper'", "<mass>", "finite"]),
    "a negative inertia": ('izz="1e-4"', 'izz="-1e-4"', ["link 'base'", "izz", ">= 0"]),
    "an infinite inertia product": ('ixy="0"', 'ixy="inf"', ["link 'base'", "ixy", "finite"]),
    "a NaN limit": ('lower="-3"', 'lower="nan"', ["joint 'yaw'", "lower", "finite"]),
    "an infinite limit": ('upper="1.5"', 'upper="inf"', ["joint 'elbow'", "upper", "finite"]),
    "a negative effort": ('effort="20"', 'effort="-20"', ["joint 'yaw'", "effort", ">= 0"]),
    "a negative velocity": ('velocity="3"', 'velocity="-3"', ["joint 'yaw'", "velocity", ">= 0"]),
    "a word for a number": ('velocity="3"', 'velocity="fast"', ["joint 'yaw'", 'velocity="fast"', "number"]),
    "a NaN joint origin": ('<origin xyz="0 0 0.3"/><axis', '<origin xyz="0 nan 0.3"/><axis',
                           ["joint 'elbow'", "<origin>", "xyz"]),
    "a NaN visual rotation": ('<visual><origin xyz="0 0 0.05"/>', '<visual><origin xyz="0 0 0.05" rpy="0 nan 0"/>',
                              ["link 'base'", "<visual>", "rpy"]),
    "a zero axis": ('axis xyz="0 1 0"', 'axis xyz="0 0 0"', ["joint 'elbow'", "axis", "direction"]),
    # these passed the checks and failed later: a LinAlgError, or "nan m" from the normalised axis
    "a tiny axis": ('axis xyz="0 1 0"', 'axis xyz="1e-300 0 0"', ["joint 'elbow'", 'xyz="1e-300 0 0"', "zero",
                                                                  "direction"]),
    "a joint origin of 1e300 m": ('<origin xyz="0 0 0.3"/><axis', '<origin xyz="0 0 1e300"/><axis',
                                  ["joint 'elbow'", "<origin>", "beyond ±1000 m"]),
    "a visual origin of 1e300 m": ('<visual><origin xyz="0 0 0.05"/>', '<visual><origin xyz="1e300 0 0"/>',
                                   ["link 'base'", "<visual> <origin>", "beyond ±1000 m"]),
    "a box of 1e300 m": ('<box size="0.04 0.04 0.3"/>', '<box size="1e300 0.04 0.3"/>',
                         ["link 'upper'", "<box>", "beyond ±1000 m"]),
    "a cylinder of 1e300 m": ('<box size="0.04 0.04 0.3"/>', '<cylinder radius="0.02" length="1e300"/>',
                              ["link 'upper'", "<cylinder> length", "beyond ±1000 m"]),
    "a NaN axis": ('axis xyz="0 0 1"', 'axis xyz="nan 0 1"', ["joint 'yaw'", "<axis>", "finite"]),
    "an axis of two numbers": ('axis xyz="0 1 0"', 'axis xyz="0 1"', ["joint 'elbow'", "3 finite numbers"]),
    "a negative box": ('<box size="0.04 0.04 0.3"/>', '<box size="0.04 -0.04 0.3"/>', ["link 'upper'", "<box>", "> 0"]),
    "a zero sphere": ('<box size="0.04 0.04 0.3"/>', '<sphere radius="0"/>', ["link 'upper'", "<sphere>", "radius"]),
    "a NaN cylinder": ('<box size="0.04 0.04 0.3"/>', '<cylinder radius="0.02" length="nan"/>',
                       ["link 'upper'", "<cylinder>", "length"]),
    "a zero mesh scale": ('<box size="0.04 0.04 0.3"/>', '<mesh filename="cube.obj" scale="1 0 1"/>',
                          ["link 'upper'", "scale", "non-zero"]),
    # PyBullet refuses these with "Cannot load URDF file." and its reason on stdout
    "a revolute joint without limits": ('<limit lower="-1.5" upper="1.5" effort="20" velocity="3"/>', "",
                                        ["joint 'elbow'", "revolute", "no <limit>"]),
    "a visual without geometry": ('<geometry><box size="0.04 0.04 0.3"/></geometry>', "",
                                  ["link 'upper'", "<visual>", "<geometry>"]),
    "a box without a size": ('<box size="0.04 0.04 0.3"/>', "<box/>", ["link 'upper'", "<box>", "no size"]),
    "an unknown shape": ('<box size="0.04 0.04 0.3"/>', '<cone radius="1"/>', ["link 'upper'", "<cone>", "box"]),
    "an inertial without a mass": ('<mass value="0.2"/>', "", ["link 'upper'", "<mass value"]),
    "a material without a name": ('<box size="0.04 0.04 0.3"/></geometry>',
                                  '<box size="0.04 0.04 0.3"/></geometry><material><color rgba="1 0 0 1"/></material>',
                                  ["link 'upper'", "<material>", "name"]),
    "a mesh PyBullet cannot read": ('<box size="0.04 0.04 0.3"/>', '<mesh filename="cube.ply"/>',
                                    ["link 'upper'", "cube.ply", ".obj, .stl"]),
}


@pytest.mark.parametrize("case", NUMBER_MISTAKES)
def test_bad_numbers_and_missing_parts_are_one_line_naming_the_element(case, write_urdf, tmp_path):
    old, new, fragments = NUMBER_MISTAKES[case]
    (tmp_path / "cube.obj").write_text(cube_obj(0.02))
    (tmp_path / "cube.ply").write_text("ply\n")
    text = ARM.replace(old, new, 1)
    assert text != ARM
    path = write_urdf(text, "bad")
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "bad.urdf", *fragments)


def test_a_prismatic_stroke_beyond_the_length_bound_is_refused(write_urdf):
    slider = ARM.replace('name="elbow" type="revolute"', 'name="elbow" type="prismatic"')
    at_bound = slider.replace('lower="-1.5" upper="1.5"', f'lower="-{MAX_LENGTH_M:g}" upper="{MAX_LENGTH_M:g}"')
    assert read_urdf(write_urdf(at_bound, "at_bound")).joint("elbow").limits.upper == MAX_LENGTH_M
    path = write_urdf(slider.replace('lower="-1.5" upper="1.5"', 'lower="-1e300" upper="1e300"'), "bad")
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "bad.urdf", "joint 'elbow' <limit>",
                      'lower="-1e300"', "beyond ±1000 m")


@pytest.mark.parametrize("limit", ["1e16", "1e300"])
def test_revolute_limits_that_mean_none_are_used_as_a_continuous_joint(limit, write_urdf):
    """Exporters write ±1e16 for a revolute joint that turns freely (example-robot-data's iris.urdf); a controller
    cannot use such a range (random poses of ±1e300 rad found no reachable point)."""
    path = write_urdf(ARM.replace('lower="-1.5" upper="1.5"', f'lower="-{limit}" upper="{limit}"'), "free")
    limits = read_urdf(path).joint("elbow").limits
    assert (limits.lower, limits.upper) == (-np.pi, np.pi) and f"beyond ±{MAX_REVOLUTE_LIMIT_RAD:g} rad" in limits.note
    env = ArmReachEnv(path)
    assert {j.name: (j.lower, j.upper) for j in env.robot.joints} == {
        "yaw": (-3.0, 3.0), "elbow": (-np.pi, np.pi), "wrist": (-np.pi, np.pi)}
    env.close()
    within = read_urdf(write_urdf(ARM.replace('lower="-1.5" upper="1.5"', 'lower="-12.5" upper="12.5"'), "turns"))
    assert within.joint("elbow").limits.upper == 12.5  # several turns, as written


def test_xml_nested_too_deeply_to_rewrite_is_one_line(write_urdf):
    path = write_urdf(ARM.replace("</robot>", "<x>" * 50_000 + "</x>" * 50_000 + "</robot>"), "deep")
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "deep.urdf", "nests", "too deeply")


def test_an_inertial_without_an_inertia_is_one_line(write_urdf):
    path = write_urdf(re.sub(r"<inertia [^>]*/>", "", ARM, count=1), "bad")
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "bad.urdf", "link 'base'", "<inertia")


def test_more_links_than_pybullet_can_hold_are_refused_with_the_number(write_urdf):
    path = write_urdf(chain(PYBULLET_MAX_LINKS + 1), "long")
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)),
                      "long.urdf", f"{PYBULLET_MAX_LINKS + 1} links", f"at most {PYBULLET_MAX_LINKS}")


def test_the_link_limit_is_where_pybullet_stops_working(write_urdf):
    """With PYBULLET_MAX_LINKS links every link's state can be read; with one more PyBullet loads the file but
    cannot report any link (measured; its MAX_DEGREE_OF_FREEDOM)."""
    client = connect()
    try:
        for links, works in ((PYBULLET_MAX_LINKS, True), (PYBULLET_MAX_LINKS + 1, False)):
            path = write_urdf(chain(links), f"chain{links}")
            with quiet_c_output():
                body = pb.loadURDF(str(path), useFixedBase=True, physicsClientId=client)
            assert pb.getNumJoints(body, physicsClientId=client) == links - 1
            try:
                pb.getLinkState(body, links - 2, physicsClientId=client)
                pb.getJointStates(body, list(range(links - 1)), physicsClientId=client)
                worked = True
            except pb.error:
                worked = False
            assert worked == works, links
    finally:
        disconnect(client)
    assert len(read_urdf(write_urdf(chain(PYBULLET_MAX_LINKS), "at_the_limit")).links) == PYBULLET_MAX_LINKS


# ---- files the URDF names -----------------------------------------------------------------------------------


@pytest.fixture
def robot_folder(tmp_path: Path) -> Path:
    """tmp_path/robot with meshes/cube.obj, beside tmp_path/outside/secret.obj (a valid mesh that must not load)."""
    (tmp_path / "robot" / "meshes").mkdir(parents=True)
    (tmp_path / "robot" / "meshes" / "cube.obj").write_text(cube_obj(0.05))
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.obj").write_text(cube_obj(0.05))
    (tmp_path / "robot" / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    return tmp_path / "robot"


@pytest.mark.parametrize("filename", [
    "../outside/secret.obj", "{outside}/secret.obj", "file://{outside}/secret.obj",
    "package://robot/../../outside/secret.obj", "linked/secret.obj", "../../../../../../../../../../etc/passwd",
])
def test_a_mesh_outside_the_robots_folder_is_refused_by_name(filename, robot_folder):
    filename = filename.format(outside=robot_folder.parent / "outside")
    path = robot_folder / "arm.urdf"
    path.write_text(with_mesh(ARM, filename))
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "arm.urdf", f"mesh '{filename}'",
                      "link 'base'", f"leaves the robot's folder {robot_folder}")


def test_a_texture_outside_the_robots_folder_is_refused_by_name(robot_folder):
    (robot_folder.parent / "outside" / "skin.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    path = robot_folder / "arm.urdf"
    path.write_text(ARM.replace("</robot>", '<material name="skin"><texture filename="../outside/skin.png"/>'
                                            "</material></robot>"))
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "texture '../outside/skin.png'",
                      "material 'skin'", "leaves the robot's folder")


def test_pybullet_loads_the_checked_mesh_not_one_of_the_same_name_in_the_current_folder(robot_folder, tmp_path,
                                                                                         monkeypatch):
    """PyBullet looks for a relative mesh name in the current folder first; it is given the checked file."""
    (tmp_path / "elsewhere" / "meshes").mkdir(parents=True)
    (tmp_path / "elsewhere" / "meshes" / "cube.obj").write_text(cube_obj(1.0))
    monkeypatch.chdir(tmp_path / "elsewhere")
    path = robot_folder / "arm.urdf"
    path.write_text(with_mesh(ARM, "meshes/cube.obj"))
    client = connect()
    try:
        robot = Robot(client, resolve_robot(path, home="zero"))
        pb.performCollisionDetection(physicsClientId=client)
        low, high = pb.getAABB(robot.body, -1, physicsClientId=client)
        assert np.allclose(np.subtract(high, low), 0.1, atol=0.02)  # the robot's 0.1 m cube, not the 2 m one
        assert {v.mesh_path for v in robot.urdf.visuals if v.kind == "mesh"} == {robot_folder / "meshes" / "cube.obj"}
    finally:
        disconnect(client)


def test_package_names_find_the_folder_whose_package_xml_declares_them_and_nothing_else(tmp_path):
    package = tmp_path / "ws" / "src_checkout"  # a package folder not named after its package
    (package / "urdf").mkdir(parents=True)
    (package / "meshes").mkdir()
    (package / "meshes" / "cube.obj").write_text(cube_obj(0.05))
    path = package / "urdf" / "arm.urdf"
    path.write_text(with_mesh(ARM, "package://my_arm_description/meshes/cube.obj"))
    (package / "package.xml").write_text("<package format='2'><name>my_arm_description</name></package>")
    assert {v.mesh_path for v in read_urdf(path).visuals if v.kind == "mesh"} == {package / "meshes" / "cube.obj"}
    (package / "package.xml").write_text("<package format='2'><name>another_package</name></package>")
    with pytest.raises(UserError, match=r"mesh 'package://my_arm_description/meshes/cube.obj' of link 'base' not "
                                        r"found .*package.xml that names my_arm_description"):
        read_urdf(path)


def test_a_package_folder_is_also_found_by_its_name_as_example_robot_data_installs_it(tmp_path):
    # share/example-robot-data/robots/NAME/urdf/NAME.urdf, meshes named package://example-robot-data/robots/...,
    # and a package.xml there that names the package example_robot_descriptions
    share = tmp_path / "share" / "example-robot-data"
    robot = share / "robots" / "arm_description"
    (robot / "urdf").mkdir(parents=True)
    (robot / "meshes").mkdir()
    (robot / "meshes" / "cube.obj").write_text(cube_obj(0.05))
    (share / "package.xml").write_text("<package format='3'><name>example_robot_descriptions</name></package>")
    path = robot / "urdf" / "arm.urdf"
    path.write_text(with_mesh(ARM, "package://example-robot-data/robots/arm_description/meshes/cube.obj"))
    assert {v.mesh_path for v in read_urdf(path).visuals if v.kind == "mesh"} == {robot / "meshes" / "cube.obj"}
    (tmp_path / "secret.obj").write_text(cube_obj(0.05))
    path.write_text(with_mesh(ARM, "package://example-robot-data/../../secret.obj"))  # out of the package
    with pytest.raises(UserError, match="leaves the robot's folder"):
        read_urdf(path)


@pytest.mark.parametrize("filename", ["package://hostile/secret.obj", "package://{top}/hostile/secret.obj"])
def test_a_folder_merely_called_like_the_package_is_not_the_package(filename, tmp_path):
    """A robot in TOP/.../hostile/u/x/ read TOP/.../hostile/secret.obj through package://hostile/ (or through
    package://tmp/hostile/ from /tmp/hostile/u/x/): a folder counts as package NAME only if it holds a package.xml."""
    top = tmp_path.parents[len(tmp_path.parents) - 2]  # the folder just below /, as /tmp is
    filename = filename.format(top=f"{top.name}/{tmp_path.relative_to(top)}")
    (tmp_path / "hostile" / "u" / "x").mkdir(parents=True)
    (tmp_path / "hostile" / "secret.obj").write_text(cube_obj(0.05))
    path = tmp_path / "hostile" / "u" / "x" / "arm.urdf"
    path.write_text(with_mesh(ARM, filename))
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), f"mesh '{filename}'", "not found",
                      "package.xml")


# ---- files the meshes name ----------------------------------------------------------------------------------

SECRET_MTL = "newmtl red\nKd 1 0 0\n"


@pytest.mark.parametrize("mtllib", ["../../outside/secret.mtl", "{outside}/secret.mtl", "linked/secret.mtl"])
def test_an_obj_material_file_outside_the_robots_folder_is_refused_by_name(mtllib, robot_folder):
    """PyBullet opened the .mtl an OBJ names wherever it was (`mtllib ../../secret.mtl`)."""
    mtllib = mtllib.format(outside=robot_folder.parent / "outside")
    (robot_folder.parent / "outside" / "secret.mtl").write_text(SECRET_MTL)
    (robot_folder / "meshes" / "cube.obj").write_text(f"mtllib {mtllib}\nusemtl red\n" + cube_obj(0.05))
    if mtllib.startswith("linked/"):
        (robot_folder / "meshes" / "linked").symlink_to(robot_folder.parent / "outside", target_is_directory=True)
    path = robot_folder / "arm.urdf"
    path.write_text(with_mesh(ARM, "meshes/cube.obj"))
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "arm.urdf",
                      f"material file '{mtllib}' of mesh 'meshes/cube.obj' of link 'base' leaves {robot_folder}")


def test_a_material_file_named_on_the_piece_of_a_long_line_that_pybullet_reads_as_a_line_is_checked(robot_folder):
    """PyBullet reads lines into 1024 bytes: past 1023 bytes the rest of a line is a line of its own to it."""
    (robot_folder / "meshes" / "cube.obj").write_text("#" * 1023 + "mtllib ../../secret.mtl\n" + cube_obj(0.05))
    path = robot_folder / "arm.urdf"
    path.write_text(with_mesh(ARM, "meshes/cube.obj"))
    with pytest.raises(UserError, match="material file '../../secret.mtl' of mesh 'meshes/cube.obj' .* leaves"):
        read_urdf(path)


@pytest.mark.parametrize("texture", ["../../outside/skin.png", "/etc/shadow"])
def test_a_texture_that_an_obj_material_names_outside_the_robots_folder_is_refused_by_name(texture, robot_folder):
    """The texture is named relative to the OBJ's folder (where PyBullet looks for it, not the .mtl's)."""
    (robot_folder / "meshes" / "materials").mkdir()
    (robot_folder / "meshes" / "materials" / "red.mtl").write_text(SECRET_MTL + f"map_Kd {texture}\n")
    (robot_folder / "meshes" / "cube.obj").write_text("mtllib materials/red.mtl\nusemtl red\n" + cube_obj(0.05))
    path = robot_folder / "arm.urdf"
    path.write_text(with_mesh(ARM, "meshes/cube.obj"))
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "arm.urdf",
                      f"texture '{texture}' in material file 'materials/red.mtl' of mesh 'meshes/cube.obj'", "leaves")


def test_material_files_and_textures_inside_the_folder_or_missing_load(robot_folder):
    """A missing .mtl or texture is no error: PyBullet then uses its default colour."""
    (robot_folder / "meshes" / "red.mtl").write_text(SECRET_MTL + "map_Kd ../textures/gone.png\n")
    (robot_folder / "meshes" / "cube.obj").write_text("mtllib red.mtl\nmtllib gone.mtl\nusemtl red\n"
                                                      + cube_obj(0.05))
    path = robot_folder / "arm.urdf"
    path.write_text(with_mesh(ARM, "meshes/cube.obj"))
    assert {v.mesh_path for v in read_urdf(path).visuals if v.kind == "mesh"} == {robot_folder / "meshes" / "cube.obj"}


def test_a_mesh_that_is_a_symlink_loop_is_one_line(robot_folder):
    (robot_folder / "meshes" / "a.obj").symlink_to(robot_folder / "meshes" / "b.obj")
    (robot_folder / "meshes" / "b.obj").symlink_to(robot_folder / "meshes" / "a.obj")
    path = robot_folder / "arm.urdf"
    path.write_text(with_mesh(ARM, "meshes/a.obj"))
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "mesh 'meshes/a.obj'", "symlink loop")


@pytest.mark.parametrize("content, fragments", [
    ("solid cube\nfacet normal 0 0 1\n", ["not valid XML", "syntax error"]),
    ("<COLLADA><asset>", ["not valid XML", "no element found"]),
])
def test_a_dae_mesh_that_is_not_xml_is_refused_by_name(content, fragments, robot_folder):
    """PyBullet skipped these without a word, and the link had no shape."""
    (robot_folder / "meshes" / "part.dae").write_text(content)
    path = robot_folder / "arm.urdf"
    path.write_text(with_mesh(ARM, "meshes/part.dae"))
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "arm.urdf",
                      "mesh 'meshes/part.dae' of link 'base'", *fragments)


def test_a_dae_mesh_that_is_xml_but_not_collada_is_refused_by_name_not_a_crash(robot_folder, tmp_path):
    """PyBullet segfaulted on it: run as a user runs it."""
    (robot_folder / "meshes" / "part.dae").write_text("<?xml version='1.0'?><scene><asset/></scene>")
    path = robot_folder / "arm.urdf"
    path.write_text(with_mesh(ARM, "meshes/part.dae"))
    result = run_script("inspect_robot.py", "--urdf", str(path), "--snapshot", str(tmp_path / "s.png"), timeout=60)
    assert result.returncode == 2, (result.returncode, result.stderr)  # not 139
    assert_user_error(result, "mesh 'meshes/part.dae' of link 'base'", "XML but not COLLADA", "<scene>")


@pytest.mark.parametrize("collada", [
    "<COLLADA><library_geometries><geometry><mesh><source><float_array count='1000000'>1 2</float_array></source>"
    "</mesh></geometry></library_geometries></COLLADA>",
    "<COLLADA/>",
])
def test_a_collada_mesh_that_crashes_pybullet_is_one_line_not_a_segfault(collada, robot_folder, tmp_path):
    """Well-formed COLLADA that PyBullet's reader dies on: the robot is loaded in a copy of the process first."""
    (robot_folder / "meshes" / "part.dae").write_text(collada)
    path = robot_folder / "arm.urdf"
    path.write_text(with_mesh(ARM, "meshes/part.dae"))
    result = run_script("inspect_robot.py", "--urdf", str(path), "--snapshot", str(tmp_path / "s.png"), timeout=60)
    assert result.returncode == 2, (result.returncode, result.stderr)  # not 139
    assert_user_error(result, "PyBullet crashed loading", "part.dae", "convert the .dae meshes")


def test_a_collada_mesh_with_its_namespace_loads(robot_folder):
    shutil.copy(Path(pybullet_data.getDataPath()) / "duck.dae", robot_folder / "meshes" / "duck.dae")
    path = robot_folder / "arm.urdf"
    path.write_text(with_mesh(ARM, "meshes/duck.dae"))
    assert {v.mesh_path for v in read_urdf(path).visuals if v.kind == "mesh"} == {robot_folder / "meshes" / "duck.dae"}
    loaded = run_in_process("inspect_robot.py", "--urdf", str(path), "--json", "--snapshot",
                            str(robot_folder / "s.png"))  # the copy that loads it first survives: so does this one
    assert loaded.returncode == 0, loaded.stderr


# ---- robot names --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..", "sub\\..\\..\\secret"])
@pytest.mark.parametrize("how", ["--robot", "positional"])
def test_a_robot_name_is_a_plain_name_and_a_path_needs_urdf(name, how):
    args = ["--robot", name] if how == "--robot" else [name]
    assert_user_error(run_in_process("inspect_robot.py", *args), f"robot '{name}'", "plain name", "--urdf PATH.urdf")


def test_an_empty_robot_name_or_end_effector_is_an_error_not_the_default():
    with pytest.raises(UserError, match="the robot name is empty"):
        resolve_robot("")
    assert_user_error(run_in_process("inspect_robot.py", "light_arm", "--ee-link", ""), "--ee-link is empty")


def test_a_sidecar_given_as_the_robot_file_is_called_a_settings_file(write_urdf):
    path = write_urdf(ARM)
    path.with_suffix(".toml").write_text('ee_link = "hand"\n')
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path.with_suffix(".toml"))),
                      "arm.toml is the settings file of arm.urdf", "not a robot descriptor", f"--urdf {path}")


def test_only_files_are_robots_in_an_assets_folder(tmp_path):
    (tmp_path / "bad.urdf").mkdir()
    (tmp_path / "odd.toml").mkdir()
    (tmp_path / "arm").mkdir()
    (tmp_path / "arm" / "sub.urdf").mkdir()
    (tmp_path / "arm" / "arm.urdf").write_text(ARM)
    assert available_robots(tmp_path) == {"arm": tmp_path / "arm" / "arm.urdf"}


# ---- settings files and the tool point ----------------------------------------------------------------------

SETTING_MISTAKES = {  # what used to happen
    "hold_joints of numbers": ("hold_joints = [1, 2]", "hold_joints", "list of joint names"),  # TypeError
    "hold_joints of lists": ('hold_joints = [["yaw"]]', "hold_joints", "list of joint names"),  # TypeError
    "hold_joints of an empty name": ('hold_joints = [""]', "hold_joints", "list of joint names"),
    "an empty ee_link": ('ee_link = ""', "ee_link", "non-empty"),  # KeyError 'heuristic'
    "an ee_link table": ("[ee_link]\nx = 1", "ee_link", "non-empty"),
    "a source that is a number": ("source = 1", "source", "text in quotes"),
    "a tool point 1e300 m away": ("ee_offset_m = [1e300, 0, 0]", "ee_offset_m", f"within {MAX_EE_OFFSET_M:g} m"),
    "arrays nested 5,000 deep": ("home = " + "[" * 5000 + "]" * 5000, "nests", "too deeply"),  # RecursionError
}


@pytest.mark.parametrize("case", SETTING_MISTAKES)
def test_each_sidecar_setting_is_checked_and_named(case, write_urdf):
    setting, *fragments = SETTING_MISTAKES[case]
    path = write_urdf(ARM)
    path.with_suffix(".toml").write_text(setting + "\n")
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "arm.toml", *fragments)


def test_a_descriptor_with_an_empty_urdf_is_one_line(tmp_path):
    (tmp_path / "mine.toml").write_text('urdf = ""\n')
    with pytest.raises(UserError, match="mine.toml: urdf must be a non-empty"):
        resolve_robot(tmp_path / "mine.toml")


def test_the_tool_point_is_bounded_from_the_flag():
    """1e300 m gave "SVD did not converge" in the home search; 1e5 m made a robot with a reach of 1e6 m."""
    assert_user_error(run_in_process("oracle.py", "--robot", "light_arm", "--episodes", "1", "--ee-offset-m", "1e300",
                                     "0", "0"), "--ee-offset-m", "1e+300 m", f"within {MAX_EE_OFFSET_M:g} m")
    assert resolve_robot("light_arm", ee_offset_m=[0.0, 0.0, MAX_EE_OFFSET_M]).ee_offset_m == (0, 0, MAX_EE_OFFSET_M)
    with pytest.raises(UserError, match="--ee-offset-m puts the tool point"):
        resolve_robot("light_arm", ee_offset_m=[MAX_EE_OFFSET_M, 0.1, 0.0])


# ---- the home search's time bound ---------------------------------------------------------------------------


def test_a_slow_home_search_says_what_it_does_and_stops_at_its_bound_asking_for_home(write_urdf, monkeypatch,
                                                                                      capsys):
    """A 100-link chain took minutes with no output; here the bound is made short to keep the test fast."""
    monkeypatch.setattr(home_module, "HOME_NOTICE_AFTER_S", 0.0)
    monkeypatch.setattr(home_module, "HOME_SEARCH_BOUND_S", 0.5)
    path = write_urdf(chain(100), "snake")
    with pytest.raises(UserError, match=r"snake.urdf: .*home .*98 controlled joints.* 0.5 s.*--home"):
        ArmReachEnv(path)
    assert "finding a home pose for snake (98 controlled joints)" in capsys.readouterr().err


def test_the_notice_does_not_change_the_home(monkeypatch, capsys):
    quiet = ArmReachEnv("light_arm", home="auto")
    capsys.readouterr()
    monkeypatch.setattr(home_module, "HOME_NOTICE_AFTER_S", 0.0)
    told = ArmReachEnv("light_arm", home="auto")
    assert "finding a home pose for light_arm (3 controlled joints)" in capsys.readouterr().err
    assert np.array_equal(told.robot.home, quiet.robot.home) and told.robot.home_reason == quiet.robot.home_reason
    quiet.close(), told.close()


# ---- the viewer's OBJ reader --------------------------------------------------------------------------------

@pytest.mark.parametrize("lines", ["f 1 2 99", "f 0 1 2", "f 1 2 -7", "f a b c", "v nan 0 0\nf 1 2 4",
                                   "v 1 2\nf 1 2 4"])
def test_the_viewer_leaves_out_triangles_whose_corners_the_obj_does_not_define(lines, tmp_path, capsys):
    """PyBullet loads such a file (the robot may have trained with it), so the viewer draws the rest and says what
    it left out; `f 1 2 99` made it raise IndexError."""
    path = tmp_path / "part.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n" + lines + "\n")
    mesh = load_obj(path)
    assert mesh.triangles.tolist() == [[[0, 0, 0], [1, 0, 0], [0, 1, 0]]]
    assert f"{path}: the viewer leaves out 1 of its 2 triangles" in capsys.readouterr().err
