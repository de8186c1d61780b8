"""Home poses (the rule, the sidecar key, the flag), tool points, and robots named by a descriptor file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import GRIPPER_ARM, YAW_ELBOW_FOREARM, assert_user_error, box_link, joint, robot_xml, run_in_process

from arm_a3c.envs.arm_env import ArmReachEnv
from arm_a3c.errors import UserError
from arm_a3c.sim.assets import available_robots, resolve_robot
from arm_a3c.sim.client import pybullet as pb
from arm_a3c.sim.home import HOME_LIMIT_MARGIN

# yaw, then a shoulder whose zero is its lower limit, then an elbow: zero stands straight up on a limit
ON_A_LIMIT = robot_xml(
    "limited",
    joint("yaw", "revolute", "base", "upper", 0.1, axis="0 0 1", limit='<limit lower="-3" upper="3" effort="20" velocity="3"/>')
    + box_link("upper", 0.3)
    + joint("shoulder", "revolute", "upper", "mid", 0.3, limit='<limit lower="0" upper="2" effort="20" velocity="3"/>')
    + box_link("mid", 0.3)
    + joint("elbow", "revolute", "mid", "tip", 0.3)
    + box_link("tip", 0.2),
)

# a wrist roll about the hand's z axis: it cannot move the hand's origin, but it moves a point beside the axis
ROLLING_WRIST = robot_xml(
    "rolling",
    YAW_ELBOW_FOREARM
    + joint("roll", "revolute", "forearm", "hand", 0.25, axis="0 0 1")
    + box_link("hand", 0.08),
)


def manipulability(env: ArmReachEnv, q) -> float:
    value = env.robot.manipulability(np.asarray(q, dtype=float))
    env.robot.reset(env.robot.home)
    return value


def test_a_joint_whose_zero_is_on_its_limit_is_moved_off_it(write_urdf):
    env = ArmReachEnv(write_urdf(ON_A_LIMIT))
    robot = env.robot
    shoulder = [j.name for j in robot.controlled].index("shoulder")
    assert robot.home[shoulder] >= HOME_LIMIT_MARGIN * 2 - 1e-9  # at least 10% of its 0..2 range off the limit
    assert "shoulder on a limit" in robot.home_reason
    assert manipulability(env, robot.home) > 10 * manipulability(env, robot.zero_home)
    assert robot.home[0] == 0.0  # the base yaw does not change the conditioning: it keeps its zero
    again = ArmReachEnv(write_urdf(ON_A_LIMIT, "again"))
    assert np.array_equal(again.robot.home, robot.home)  # deterministic: every process gets the same home
    env.close(), again.close()


def test_an_arm_standing_straight_up_leaves_the_singular_pose_and_a_good_zero_stays(write_urdf):
    env = ArmReachEnv(write_urdf(GRIPPER_ARM))
    assert manipulability(env, env.robot.zero_home) < 1e-9  # straight up: the yaw cannot move the palm
    assert manipulability(env, env.robot.home) > 0.01
    assert "near-singular" in env.robot.home_reason
    env.close()

    env = ArmReachEnv("xarm6", home="auto")  # its zero is folded forward, well conditioned, off every limit
    assert np.array_equal(env.robot.home, env.robot.zero_home)
    assert env.robot.home_reason.startswith("zero:")
    env.close()


def test_home_from_the_sidecar_from_the_flag_and_the_word_zero(write_urdf):
    path = write_urdf(GRIPPER_ARM)
    path.with_suffix(".toml").write_text("home = [0.5, -0.3]\n")
    env = ArmReachEnv(path)
    assert np.allclose(env.robot.home, [0.5, -0.3]) and "home in arm.toml" in env.robot.home_reason
    obs, _ = env.reset(seed=0)
    assert np.allclose(env.robot.joint_state()[0], [0.5, -0.3], atol=1e-6)  # episodes start there
    env.close()
    env = ArmReachEnv(path, home=[0.1, 0.2])  # the flag beats the file
    assert np.allclose(env.robot.home, [0.1, 0.2])
    env.close()
    env = ArmReachEnv(path, home="zero")
    assert np.array_equal(env.robot.home, [0.0, 0.0])
    env.close()


@pytest.mark.parametrize("setting, fragments", [
    ("home = [0.1, 0.2, 0.3]", ["arm.toml: home", "3 values", "2 controlled joints", "yaw, elbow"]),
    ("home = [0.1, 2.5]", ["arm.toml: home", "elbow", "outside its limits", "-1.500 .. 1.500"]),
    ('home = ["up", 1]', ["arm.toml: home", "list of numbers"]),
    ('home = "upright"', ["arm.toml: home", "'auto' or 'zero'"]),
    ("ee_offset_m = [0, 0]", ["arm.toml: ee_offset_m", "three numbers"]),
    ('ee_offset_m = "0 0 0.1"', ["arm.toml", "ee_offset_m"]),
    ('ee_link = "tool0"\nee_offset_m = [0, 0, 0.1]', ["arm.toml", "ee_link 'tool0'", "palm"]),
])
def test_bad_settings_are_one_line_naming_the_file_the_key_and_the_fix(write_urdf, setting, fragments):
    path = write_urdf(GRIPPER_ARM)
    path.with_suffix(".toml").write_text(setting + "\n")
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), *fragments)


def test_bad_home_and_tool_point_flags_are_one_line():
    assert_user_error(run_in_process("train_arm.py", "--robot", "light_arm", "--home", "0", "0"),
                      "--home", "3 controlled joints", "base_yaw, shoulder, elbow")
    assert_user_error(run_in_process("train_arm.py", "--robot", "light_arm", "--home", "0", "9", "0"),
                      "--home", "shoulder", "outside its limits")
    assert_user_error(run_in_process("inspect_robot.py", "light_arm", "--home", "up"), "--home", "'up'")
    assert_user_error(run_in_process("inspect_robot.py", "light_arm", "--ee-offset-m", "0", "0.1"),
                      "--ee-offset-m", "3")


def test_the_tool_point_is_fixed_in_the_end_effector_link(write_urdf):
    env = ArmReachEnv(write_urdf(GRIPPER_ARM), ee_offset_m=[0.0, 0.03, 0.1])
    robot, rng = env.robot, np.random.default_rng(0)
    for _ in range(5):
        point = robot.forward_kinematics(robot.random_configuration(rng))
        position, orientation = robot.ee_link_pose()
        rotation = np.array(pb.getMatrixFromQuaternion(orientation.tolist())).reshape(3, 3)
        assert np.allclose(point, position + rotation @ [0.0, 0.03, 0.1], atol=1e-9)
    env.reset(seed=3)
    obs, *_ = env.step(np.zeros(robot.dof))
    assert np.allclose(obs[2 * robot.dof:2 * robot.dof + 3], robot.ee_position(), atol=1e-6)  # observed
    env.close()


def test_which_joints_are_held_is_decided_for_the_tool_point(write_urdf):
    path = write_urdf(ROLLING_WRIST)
    at_origin = ArmReachEnv(path)
    assert {j.name: j.role for j in at_origin.robot.joints}["roll"] == "held"
    beside_axis = ArmReachEnv(path, ee_offset_m=[0.05, 0.0, 0.08])
    assert {j.name: j.role for j in beside_axis.robot.joints}["roll"] == "controlled"
    on_axis = ArmReachEnv(path, ee_offset_m=[0.0, 0.0, 0.08])
    assert {j.name: j.role for j in on_axis.robot.joints}["roll"] == "held"
    at_origin.close(), beside_axis.close(), on_axis.close()


def test_a_descriptor_names_a_urdf_kept_elsewhere(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "arm.urdf").write_text(GRIPPER_ARM)
    (tmp_path / "mine.toml").write_text('urdf = "models/arm.urdf"\nlicence = "CC0"\nhome = [0.2, 0.4]\n')
    assert available_robots(tmp_path)["mine"] == tmp_path / "mine.toml"
    spec = resolve_robot("mine", assets_dir=tmp_path)
    assert spec.urdf_path == (tmp_path / "models" / "arm.urdf").resolve()
    assert spec.licence == "CC0" and spec.home == (0.2, 0.4)
    (tmp_path / "mine.toml").write_text('urdf = "models/gone.urdf"\n')
    with pytest.raises(UserError, match="mine.toml: urdf = 'models/gone.urdf' names no file"):
        resolve_robot("mine", assets_dir=tmp_path)
    (tmp_path / "mine.toml").write_text('licence = "CC0"\n')
    with pytest.raises(UserError, match="needs urdf"):
        resolve_robot("mine", assets_dir=tmp_path)


def test_the_arms_inside_pybullet_come_by_name_with_home_tool_point_and_licence():
    panda, xarm = resolve_robot("panda"), resolve_robot("xarm6")
    assert panda.urdf_path.parts[-3:] == ("pybullet_data", "franka_panda", "panda.urdf")
    assert xarm.urdf_path.parts[-3:] == ("pybullet_data", "xarm", "xarm6_robot.urdf")
    assert panda.ee_offset_m == (0.0, 0.0, 0.1034) and "Apache" in panda.licence and "BSD" in xarm.licence
    env = ArmReachEnv("panda")
    assert np.allclose(env.robot.home, [0, -0.785, 0, -2.356, 0, 1.571])
    hand, _ = env.robot.ee_link_pose()
    assert np.linalg.norm(env.robot.ee_position() - hand) == pytest.approx(0.1034)
    env.close()


def test_inspect_without_a_robot_lists_every_robot_and_where_it_comes_from():
    result = run_in_process("inspect_robot.py")
    assert result.returncode == 0, result.stderr
    for name in ("kuka_iiwa", "light_arm", "panda", "xarm6"):
        assert f"  {name}  " in result.stdout
    assert "pybullet_data/franka_panda/panda.urdf  (named by assets/panda.toml)" in result.stdout
    assert "licence: Apache-2.0" in result.stdout
    rows = json.loads(run_in_process("inspect_robot.py", "--json").stdout)
    assert {r["name"] for r in rows} >= {"kuka_iiwa", "light_arm", "panda", "xarm6"}
    assert all(r["error"] is None for r in rows)


def test_inspect_reports_the_home_its_reason_and_the_tool_point(tmp_path):
    result = run_in_process("inspect_robot.py", "panda", "--json", "--snapshot", str(tmp_path / "p.png"))
    info = json.loads(result.stdout)
    assert info["tool_point_m"] == [0.0, 0.0, 0.1034] and info["home_reason"] == "given (home in panda.toml)"
    text = run_in_process("inspect_robot.py", "light_arm", "--snapshot", str(tmp_path / "l.png")).stdout
    assert "home  " in text and "near-singular" in text and "climbed" in text


def test_the_gallery_draws_each_robot_at_its_home(tmp_path):
    from PIL import Image

    out = tmp_path / "gallery.png"
    result = run_in_process("inspect_robot.py", "light_arm", "--gallery", str(out))
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(out))
    assert image.shape[:2] == (320, 400)
    r, g, b = image[..., 0].astype(int), image[..., 1].astype(int), image[..., 2].astype(int)
    assert ((r > 120) & (r > 1.6 * g) & (b < 80)).sum() > 200, "the light arm's orange links are not drawn"


# yaw, a shoulder and an elbow with limits symmetric about zero: zero stands straight up (singular), and every
# bend has a mirror image that scores the same manipulability but for floating-point noise
SYMMETRIC = robot_xml(
    "symmetric",
    joint("yaw", "revolute", "base", "upper", 0.1, axis="0 0 1", limit='<limit lower="-3" upper="3" effort="20" velocity="3"/>')
    + box_link("upper", 0.3)
    + joint("shoulder", "revolute", "upper", "mid", 0.3)
    + box_link("mid", 0.3)
    + joint("elbow", "revolute", "mid", "tip", 0.3)
    + box_link("tip", 0.2),
)


def test_mirror_image_moves_tie_to_the_first_in_the_fixed_order_whatever_the_noise():
    from arm_a3c.sim.home import first_best_move

    plus, minus = np.array([0.1]), np.array([-0.1])
    for noise in (1e-12, -1e-12, 1e-9, -1e-9):
        assert first_best_move([(0.5, plus), (0.5 * (1 + noise), minus)])[1] is plus
    assert first_best_move([(0.5, plus), (0.5 * (1 + 1e-3), minus)])[1] is minus  # a real gain still wins


@pytest.mark.parametrize("seed", range(8))
def test_a_symmetric_arm_gets_the_same_home_under_the_noise_another_machine_would_add(write_urdf, monkeypatch, seed):
    from arm_a3c.sim.robot import Robot

    urdf = write_urdf(SYMMETRIC, "symmetric")
    env = ArmReachEnv(urdf)
    reference = env.robot.home.copy()
    env.close()
    assert np.count_nonzero(reference) >= 1, "zero should have been left: it is singular"
    # the tie-break's documented direction: the first joint that moves the manipulability bends + first
    moved = [v for v in reference if v != 0]
    assert moved[0] > 0
    rng = np.random.default_rng(seed)
    exact = Robot.manipulability
    monkeypatch.setattr(Robot, "manipulability",
                        lambda self, q: exact(self, q) * (1 + rng.uniform(-1e-10, 1e-10)))
    env = ArmReachEnv(urdf)
    try:
        np.testing.assert_array_equal(env.robot.home, reference)
    finally:
        env.close()
