"""The robot model: which link is the end effector, which joints are controlled or held, and limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import GRIPPER_ARM, box_link, joint, robot_xml

from arm_a3c.envs.arm_env import ArmReachEnv
from arm_a3c.errors import UserError
from arm_a3c.sim.assets import resolve_robot
from arm_a3c.sim.robot import end_effector_from_tree


@pytest.mark.parametrize(
    "parents, expected",
    [
        ([-1, 0, 1], 2),  # a plain chain ends in its deepest link
        ([-1, 0, 1, 2, 2], 2),  # two fingers on link 2: where they meet
        ([-1, 0, 1, 2, 0], 3),  # a shallow side branch (a camera on link 0) does not count
        ([-1, 0, 1, 1, 2], 1),  # fingers of unequal depth (a tip on one) still meet at link 1
        ([-1], 0),  # a single link
    ],
)
def test_end_effector_from_tree(parents, expected):
    assert end_effector_from_tree(parents) == expected


def test_gripper_end_effector_is_the_palm_and_fingers_are_held_still(write_urdf):
    env = ArmReachEnv(write_urdf(GRIPPER_ARM))
    robot = env.robot
    assert robot.ee_link_name == "palm"
    assert [j.name for j in robot.controlled] == ["yaw", "elbow"]
    held = {j.name: j for j in robot.joints if j.role == "held"}
    assert set(held) == {"left_finger_joint", "right_finger_joint"}

    env.reset(seed=0)
    fingers = [held["left_finger_joint"].index, held["right_finger_joint"].index]
    from arm_a3c.sim.client import pybullet as pb

    def finger_positions():
        return [pb.getJointState(robot.body, i, physicsClientId=env.client)[0] for i in fingers]

    before = finger_positions()
    rng = np.random.default_rng(0)
    for _ in range(40):
        env.step(rng.uniform(-1, 1, env.action_space.shape))
    assert np.allclose(finger_positions(), before, atol=2e-3), "finger joints moved although held"
    env.close()


def test_ee_link_override_and_sidecar_win_over_the_heuristic(write_urdf):
    path = write_urdf(GRIPPER_ARM)
    env = ArmReachEnv(path, ee_link="left_finger")
    assert env.robot.ee_link_name == "left_finger"
    assert "left_finger_joint" in [j.name for j in env.robot.controlled]
    env.close()

    path.with_suffix(".toml").write_text('ee_link = "forearm"\nhold_joints = ["yaw"]\n')
    env = ArmReachEnv(path)
    assert env.robot.ee_link_name == "forearm"
    assert [j.name for j in env.robot.controlled] == ["elbow"]
    assert env.robot.ee_link_reason == "arm.toml"
    env.close()
    assert resolve_robot(path, ee_link="palm").ee_link == "palm"  # the flag beats the sidecar


def test_sidecar_mistakes_are_user_errors(write_urdf):
    path = write_urdf(GRIPPER_ARM)
    path.with_suffix(".toml").write_text('end_effector = "palm"\n')
    with pytest.raises(UserError, match="unknown setting 'end_effector'"):
        resolve_robot(path)
    path.with_suffix(".toml").write_text('hold_joints = ["no_such_joint"]\n')
    with pytest.raises(UserError, match="no_such_joint"):
        ArmReachEnv(path)
    path.with_suffix(".toml").write_text("ee_link = [broken\n")
    with pytest.raises(UserError, match="not valid TOML"):
        resolve_robot(path)


def test_missing_inverted_and_continuous_limits_are_made_usable(write_urdf):
    body = (
        joint("spin", "continuous", "base", "a", 0.1, axis="0 0 1", limit="")
        + box_link("a", 0.2)
        + joint("inverted", "revolute", "a", "b", 0.2, limit='<limit lower="1.2" upper="-0.8" effort="20" velocity="3"/>')
        + box_link("b", 0.2)
        + joint("unlimited", "revolute", "b", "c", 0.2, limit='<limit effort="0" velocity="3"/>')
        + box_link("c", 0.2)
    )
    env = ArmReachEnv(write_urdf(robot_xml("odd_limits", body)))
    limits = {j.name: (j.lower, j.upper, j.effort) for j in env.robot.joints}
    assert limits["spin"][:2] == (-math.pi, math.pi)
    assert limits["inverted"][:2] == (-0.8, 1.2)
    assert limits["unlimited"][:2] == (-math.pi, math.pi) and limits["unlimited"][2] > 0
    env.reset(seed=1)
    for _ in range(10):
        obs, *_ = env.step(np.ones(env.robot.dof))  # the last joint turns the tool point in place: held
    assert np.all(np.isfinite(obs))
    env.close()


def test_kuka_wrist_roll_that_cannot_move_the_end_effector_is_held():
    env = ArmReachEnv("kuka_iiwa")
    roles = {j.name: j.role for j in env.robot.joints}
    assert roles["lbr_iiwa_joint_7"] == "held"
    assert sum(r == "controlled" for r in roles.values()) == 6
    env.close()


def test_robots_are_found_by_file_or_folder_name(tmp_path):
    (tmp_path / "flat.urdf").write_text(GRIPPER_ARM)
    (tmp_path / "foldered").mkdir()
    (tmp_path / "foldered" / "robot.urdf").write_text(GRIPPER_ARM)
    assert resolve_robot("flat", assets_dir=tmp_path).urdf_path == tmp_path / "flat.urdf"
    assert resolve_robot("foldered", assets_dir=tmp_path).urdf_path == tmp_path / "foldered" / "robot.urdf"
    (tmp_path / "foldered" / "other.urdf").write_text(GRIPPER_ARM)
    with pytest.raises(UserError, match="several URDFs"):
        resolve_robot("foldered", assets_dir=tmp_path)
    with pytest.raises(UserError, match="available in .*: flat"):
        resolve_robot("nope", assets_dir=tmp_path)


@pytest.mark.parametrize("robot", ["kuka_iiwa", "light_arm", "panda", "xarm6"])
def test_the_analytic_end_effector_jacobian_agrees_with_finite_differences(robot):
    """PyBullet's Jacobian, moved to the tool point (the Panda's lies 0.1034 m beyond its link's origin), against
    central differences of forward kinematics, at random configurations."""
    from arm_a3c.envs.arm_env import make_env
    from arm_a3c.tasks.pose import pose_jacobian

    env = make_env(robot=robot)
    rng = np.random.default_rng(0)
    try:
        for _ in range(3):
            q = env.robot.random_configuration(rng)
            env.robot.reset(q)
            linear, angular = env.robot.ee_jacobian()
            reference = pose_jacobian(env.robot, q)
            assert np.abs(linear - reference[:3]).max() < 2e-3 * max(1.0, np.abs(reference[:3]).max())
            assert np.abs(angular - reference[3:]).max() < 5e-3
    finally:
        env.close()


@pytest.mark.parametrize("robot", ["kuka_iiwa", "panda"])
def test_the_observation_ends_with_the_jacobian_transpose_of_the_goals_error(robot):
    """The observation's plain-Python products against the numpy Jacobian's, on the KUKA and on the Panda (a tool
    point beyond its link's origin, finger joints that move but are not controlled)."""
    from arm_a3c.envs.arm_env import make_env
    from arm_a3c.tasks.pose import rotation_vector

    env = make_env(robot=robot, task="pose")
    plain = make_env(robot=robot, task="pose", jacobian_observation=False)
    try:
        dof = env.robot.dof
        obs, _ = env.reset(seed=3)
        for _ in range(4):
            obs, *_ = env.step(np.full(dof, 0.5, np.float32))
        layout = {part["name"]: part for part in env.observation_layout()}
        linear, angular = env.robot.ee_jacobian()
        error, _ = rotation_vector(env.task.target_orientation, env.robot.ee_link_pose()[1])
        part = layout["jacobian_t_position_error"]
        np.testing.assert_allclose(obs[part["start"]:part["start"] + dof], linear.T @ (env.target - env.ee), atol=1e-5)
        part = layout["jacobian_t_rotation_error"]
        np.testing.assert_allclose(obs[part["start"]:part["start"] + dof], angular.T @ np.array(error), atol=1e-4)
        assert env.obs_dim == plain.obs_dim + 2 * dof and plain.reset(seed=3)[0].shape == (plain.obs_dim,)
    finally:
        env.close()
        plain.close()


def test_a_link_under_the_floor_whatever_the_joints_does_not_keep_every_goal_out_of_reach(write_urdf):
    """A first link turning about the vertical whose collision box reaches 5 cm under the floor (as a collision
    model's sphere can: example-robot-data's panda_collision.urdf was refused for it): goals are drawn, and the
    floor check looks at the links above it, which can still touch the floor."""
    sunk = """
  <link name="turret">
    <collision><origin xyz="0 0 0"/><geometry><box size="0.1 0.1 0.2"/></geometry></collision>
    <inertial><origin xyz="0 0 0"/><mass value="1.0"/><inertia ixx="0.004" iyy="0.004" izz="0.002" ixy="0" ixz="0"
      iyz="0"/></inertial>
  </link>"""
    text = robot_xml("sunk", joint("yaw", "revolute", "base", "turret", 0.05, axis="0 0 1",
                                   limit='<limit lower="-3" upper="3" effort="20" velocity="3"/>') + sunk
                     + joint("elbow", "revolute", "turret", "forearm", 0.1) + box_link("forearm", 0.4)
                     + joint("wrist", "revolute", "forearm", "hand", 0.4) + box_link("hand", 0.1))
    import pybullet as pb

    env = ArmReachEnv(robot=str(write_urdf(text)))
    try:
        robot = env.robot
        for seed in range(5):  # (refused before: "no reachable point ... in 1000 random poses")
            env.reset(seed=seed)
            assert env.target[2] >= env.config.min_target_height_m
        assert [robot.link_name(link) for link in robot.moving_links] == ["turret", "forearm", "hand"]
        assert [robot.link_name(link) for link in robot._leave_floor] == ["forearm", "hand"]
        robot.reset(np.zeros(3))
        turret_bottom = pb.getAABB(robot.body, robot.moving_links[0], physicsClientId=robot.client)[0][2]
        assert turret_bottom < 0.0 < robot.lowest_point()  # the turret is under the floor; the check looks above it
    finally:
        env.close()
