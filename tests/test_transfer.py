"""The second simulator (`arm-a3c transfer`, `evaluate.py --sim mujoco`): the arm built in MuJoCo from the same
URDF has PyBullet's kinematics, observation and motor; a checkpoint's episodes play in both with both figures
reported; a missing mujoco package, an arm MuJoCo cannot load and a task it cannot play are one line each."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from helpers import YAW_ELBOW_FOREARM, assert_user_error, joint, robot_xml, run_in_process, write_untrained_checkpoint

pytest.importorskip("mujoco")

from arm_a3c.envs.arm_env import make_env  # noqa: E402
from arm_a3c.envs.mujoco_env import MujocoArmEnv  # noqa: E402
from arm_a3c.sim.client import pybullet as pb  # noqa: E402
from arm_a3c.sim.mujoco_twin import MujocoArm  # noqa: E402


@pytest.fixture(scope="module")
def kuka():
    env = make_env(robot="kuka_iiwa")
    yield env
    env.close()


def test_the_kukas_forward_kinematics_in_mujoco_are_pybullets(kuka):
    arm = MujocoArm(kuka.robot, kuka.speeds.clamp)
    rng = np.random.default_rng(7)
    for _ in range(20):
        q = kuka.robot.random_configuration(rng)
        assert np.linalg.norm(kuka.robot.forward_kinematics(q) - arm.forward_kinematics(q)) < 1e-3, q
    kuka.robot.reset(kuka.robot.home)


def test_the_observation_from_mujocos_state_is_pybullets_at_the_same_state(kuka):
    """The whole layout, the Jacobian part from mj_jac included, at a start off the home pose."""
    twin = MujocoArmEnv(kuka)
    pybullet_obs, _ = kuka.reset(seed=3)
    mujoco_obs, _ = twin.reset(seed=3)
    assert np.allclose(pybullet_obs, mujoco_obs, atol=1e-4)
    q = kuka.robot.random_configuration(np.random.default_rng(1))
    kuka.robot.reset(q)
    twin.arm.reset(q)
    assert np.allclose(kuka._observe(), twin._observe(), atol=1e-4)
    # and it is not the same at another state: the comparison can fail
    twin.arm.reset(q + 0.05)
    assert not np.allclose(kuka._observe(), twin._observe(), atol=1e-3)


def test_the_clearance_part_in_mujoco_is_measured_on_the_pybullet_twin_at_mujocos_configuration():
    env = make_env(robot="kuka_iiwa", clearance_observation="on")
    twin = MujocoArmEnv(env)
    try:
        twin.reset(seed=3)
        rng = np.random.default_rng(4)
        for _ in range(50):  # a configuration with a pair within the band
            q = env.robot.random_configuration(rng)
            env.robot.reset(q)
            if env.clearance.near():
                break
        twin.arm.reset(q)
        mujoco_part = twin._observe()[-1 - env.robot.dof:]
        assert mujoco_part[0] < 1.0 and np.abs(mujoco_part[1:]).max() > 0  # something is near: the part shows it
        env.robot.reset(env.robot.home)  # PyBullet's arm elsewhere: the twin's part is still MuJoCo's configuration's
        twin.arm.reset(q)
        np.testing.assert_allclose(twin._observe()[-1 - env.robot.dof:], mujoco_part, atol=1e-4)
        env.robot.reset(q)
        np.testing.assert_allclose(env._observe()[-1 - env.robot.dof:], mujoco_part, atol=1e-4)
    finally:
        twin.close()


def joint_paths(env, arm: MujocoArm, steps: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """The controlled joints' positions over `steps` control steps of bang-bang actions, in PyBullet and in MuJoCo
    given PyBullet's targets."""
    env.reset(seed=0)
    arm.reset(env.robot.home)
    rng = np.random.default_rng(2)
    pybullet, mujoco = [], []
    for _ in range(steps):
        env.step(np.sign(rng.uniform(-1, 1, env.robot.dof)))
        arm.command(env.robot.q_target)
        for _ in range(env.config.substeps):
            arm.step()
        pybullet.append(env.joint_positions)
        mujoco.append(arm.joint_state()[0])
    return np.array(pybullet), np.array(mujoco)


def test_mujocos_motor_follows_the_targets_as_pybullets_does(kuka):
    """The constraint motor (PyBullet's, solved in MuJoCo) keeps to PyBullet's joint paths; a stiff position servo,
    the naive model, does not (so the test can fail)."""
    pybullet, mujoco = joint_paths(kuka, MujocoArm(kuka.robot, kuka.speeds.clamp, "constraint"))
    assert np.abs(pybullet - mujoco).max() < 0.02
    pybullet, servo = joint_paths(kuka, MujocoArm(kuka.robot, kuka.speeds.clamp, "position"))
    assert np.abs(pybullet - servo).max() > 0.1


def test_an_untrained_policy_plays_in_both_simulators(tmp_path):
    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "untrained.pt")
    result = run_in_process("transfer.py", "--checkpoint", str(checkpoint), "--episodes", "2", "--seed", "11")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert (figures["robot"], figures["episodes"], figures["seed"], figures["motor"]) == ("light_arm", 2, 11,
                                                                                          "constraint")
    for sim in ("pybullet", "mujoco"):
        assert figures[sim]["episodes"] == 2
        for name in ("success_rate", "mean_final_distance_m", "max_speed_fraction", "self_contact_rate",
                     "floor_contact_rate"):
            assert 0.0 <= figures[sim][name] < 10.0, (sim, name)
    # the same goals: an untrained policy's final distances in the two simulators are close, not equal by chance
    assert figures["mujoco"]["mean_final_distance_m"] == pytest.approx(figures["pybullet"]["mean_final_distance_m"],
                                                                      abs=0.05)
    assert "| success_rate |" in result.stderr
    evaluated = run_in_process("evaluate.py", "--checkpoint", str(checkpoint), "--episodes", "2", "--seed", "11",
                               "--sim", "mujoco")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["sim"] == "mujoco"
    assert json.loads(evaluated.stdout)["mean_final_distance_m"] == pytest.approx(
        figures["mujoco"]["mean_final_distance_m"])


@pytest.mark.parametrize("script", ["transfer.py", "evaluate.py"])
def test_a_missing_mujoco_is_one_line(tmp_path, monkeypatch, script):
    monkeypatch.setitem(sys.modules, "mujoco", None)  # `import mujoco` now raises ImportError
    args = ["--sim", "mujoco"] if script == "evaluate.py" else []
    result = run_in_process(script, "--checkpoint", str(tmp_path / "best.pt"), *args)
    assert_user_error(result, "mujoco", "pip install")


MASSLESS_TIP = robot_xml("massless_tip", YAW_ELBOW_FOREARM + joint("wrist", "revolute", "forearm", "tip", 0.25) + """
  <link name="tip"><collision><geometry><sphere radius="0.02"/></geometry></collision>
    <inertial><mass value="0"/><inertia ixx="0" iyy="0" izz="0" ixy="0" ixz="0" iyz="0"/></inertial></link>""")


def test_an_arm_mujoco_cannot_load_is_one_line(tmp_path):
    """PyBullet moves a massless link; MuJoCo refuses one."""
    urdf = tmp_path / "massless_tip.urdf"
    urdf.write_text(MASSLESS_TIP)
    checkpoint = write_untrained_checkpoint(str(urdf), tmp_path / "untrained.pt")
    result = run_in_process("transfer.py", "--checkpoint", str(checkpoint), "--episodes", "1")
    assert_user_error(result, "MuJoCo cannot load", "massless_tip.urdf", "mass")


def test_a_task_mujoco_cannot_play_yet_is_one_line(tmp_path):
    from arm_a3c.a3c.checkpoint import save_untrained_checkpoint

    checkpoint = save_untrained_checkpoint("light_arm", tmp_path / "avoid.pt", task="avoid")
    result = run_in_process("transfer.py", "--checkpoint", str(checkpoint), "--episodes", "1")
    assert_user_error(result, "task avoid is not supported in MuJoCo yet")


def test_mujoco_counts_a_self_contact_of_a_checked_pair(kuka):
    """A pair PyBullet's sampling checks, folded into each other in MuJoCo, is a self-contact there; at home none."""
    twin = MujocoArmEnv(kuka)
    pairs = twin.watch_contacts()
    geoms = twin._contact_geoms
    twin.arm.reset(kuka.robot.home)
    assert twin.arm.contacts_now(*geoms) == (False, False)
    rng = np.random.default_rng(0)
    for _ in range(400):  # a configuration where PyBullet finds a checked pair overlapping
        q = kuka.robot.random_configuration(rng)
        kuka.robot.reset(q)
        pb.performCollisionDetection(physicsClientId=kuka.client)
        from arm_a3c.sim.contacts import contacts_now

        if contacts_now(kuka.robot, kuka.floor, pairs)[0]:
            twin.arm.reset(q)
            assert twin.arm.contacts_now(*geoms)[0]
            break
    else:
        pytest.fail("no self-contact found in 400 random configurations of the KUKA")
    kuka.robot.reset(kuka.robot.home)


def test_mujocos_warnings_go_to_stderr_once_and_never_into_a_file_in_the_users_folder(tmp_path, monkeypatch,
                                                                                         capfd):
    """MuJoCo's own handler appends each warning to MUJOCO_LOG.TXT in the working folder: a file arm-a3c would
    leave in the user's folder. Through `import_mujoco`, a warning is one line on stderr, once."""
    from arm_a3c.sim import mujoco_twin

    mujoco = mujoco_twin.import_mujoco()
    monkeypatch.setattr(mujoco_twin, "_WARNED", set())  # (said once per process: as if none was said yet)
    monkeypatch.chdir(tmp_path)
    model = mujoco.MjModel.from_xml_string('<mujoco><worldbody><body><joint type="free"/><geom size=".1"/>'
                                           '</body></worldbody></mujoco>')
    data = mujoco.MjData(model)
    for _ in range(3):
        data.qvel[:] = np.nan  # MuJoCo warns and resets
        mujoco.mj_step(model, data)
    assert data.warning[mujoco.mjtWarning.mjWARN_BADQVEL].number >= 1
    assert not list(tmp_path.iterdir())
    assert capfd.readouterr().err.count("MuJoCo warning: Nan, Inf or huge value in QVEL") == 1
