"""The scripts as a user runs them: inspect_robot.py output, and one clear line with exit status 2 for
every bad input, never a traceback."""

from __future__ import annotations

import json
import re

import pytest
from helpers import GRIPPER_ARM, REPO, assert_user_error, box_link, robot_xml, run_in_process, run_script


def test_inspect_json_describes_the_light_arm(tmp_path):
    snapshot = tmp_path / "shot.png"
    result = run_script("inspect_robot.py", "light_arm", "--json", "--snapshot", str(snapshot))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)  # stdout is pure JSON: PyBullet's own prints are kept out of it
    assert info["robot"] == "light_arm"
    assert info["controlled_joints"] == ["base_yaw", "shoulder", "elbow"]
    assert info["end_effector"] == "tip"
    assert info["action_dim"] == 3 and info["obs_dim"] == 3 * 3 + 9
    assert 0.6 < info["reach_m"] < 0.75  # 0.1 + 0.06 + 0.3 + 0.25 m of links when stretched upward
    assert snapshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inspect_text_for_a_urdf_path_lists_joints_and_held_fingers(write_urdf, tmp_path):
    path = write_urdf(GRIPPER_ARM, "gripper_arm")
    result = run_script("inspect_robot.py", "--urdf", str(path), "--snapshot", str(tmp_path / "g.png"))
    assert result.returncode == 0, result.stderr
    assert "palm  (where the deepest branches (fingers) meet)" in result.stdout
    assert "left_finger_joint" in result.stdout and "held" in result.stdout
    assert "reach" in result.stdout and " m from the base" in result.stdout


def test_missing_urdf_file(tmp_path):
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(tmp_path / "nope.urdf")),
                      "nope.urdf", "not found")


def test_urdf_that_is_not_valid_xml(write_urdf):
    path = write_urdf("<robot name='x'><link name='a'></robot>", "broken")
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "broken.urdf", "not valid URDF XML")


def test_urdf_whose_meshes_are_missing(write_urdf):
    text = GRIPPER_ARM.replace('<box size="0.04 0.04 0.3"/>', '<mesh filename="meshes/upper.stl"/>', 1)
    path = write_urdf(text, "meshless")
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)),
                      "meshless.urdf", "meshes/upper.stl", "copy the robot's mesh folder")


def test_robot_with_no_movable_joints(write_urdf):
    body = '<joint name="weld" type="fixed"><parent link="base"/><child link="a"/></joint>' + box_link("a", 0.2)
    path = write_urdf(robot_xml("statue", body), "statue")
    assert_user_error(run_in_process("inspect_robot.py", "--urdf", str(path)), "statue.urdf", "no movable joints")


def test_unknown_robot_name_lists_the_available_robots():
    assert_user_error(run_in_process("inspect_robot.py", "--robot", "my_arm"),
                      "unknown robot 'my_arm'", "kuka_iiwa", "light_arm", "--urdf")


def test_end_effector_link_that_does_not_exist():
    assert_user_error(run_in_process("inspect_robot.py", "light_arm", "--ee-link", "gripper"),
                      "'gripper'", "--ee-link", "tip")


def test_bad_flags_are_one_line_too():
    assert_user_error(run_in_process("inspect_robot.py", "--seed", "abc"), "--seed", "--help")
    assert_user_error(run_in_process("inspect_robot.py", "light_arm", "--robot", "kuka_iiwa"), "not both")


LONG = "q" * 300  # a name the system refuses to look up: longer than 255 bytes


@pytest.mark.parametrize("script, args", [
    ("inspect_robot.py", [LONG]), ("oracle.py", ["--robot", LONG]), ("train_arm.py", ["--robot", LONG]),
    ("train_arm.py", ["--urdf", LONG + ".urdf"]), ("train_arm.py", ["--resume", LONG]),
    ("train_arm.py", ["--assets", LONG]), ("evaluate.py", ["--checkpoint", LONG + ".pt"]),
    ("view.py", ["--run", LONG]), ("view.py", ["--checkpoint", "x.pt", "--record", LONG + ".gif"]),
    ("export.py", ["--checkpoint", "x.pt", "--out", LONG + ".onnx"]),
])
def test_a_name_too_long_for_the_system_is_one_line_naming_it(script, args, monkeypatch):
    monkeypatch.delenv("ARM_A3C_ASSETS", raising=False)  # restored afterwards, whatever --assets does to it
    assert_user_error(run_in_process(script, *args), LONG, "File name too long", "give a shorter name")


def test_a_too_long_folder_in_arm_a3c_assets_is_one_line_naming_it(monkeypatch):
    monkeypatch.setenv("ARM_A3C_ASSETS", LONG)
    assert_user_error(run_in_process("inspect_robot.py", "light_arm"), LONG, "File name too long")


def test_only_the_system_refusing_a_path_is_a_users_mistake(capsys):
    import errno

    from arm_a3c.cli import run

    def failing(error):
        def main(argv):
            raise error
        return main

    refused = PermissionError(errno.EACCES, "Permission denied", "/root/x.pt")
    assert run(failing(refused), []) == 2
    assert capsys.readouterr().err == "error: /root/x.pt: Permission denied; give a path you may use, or change the " \
                                      "permissions of its folders\n"
    for internal in (FileNotFoundError(errno.ENOENT, "No such file or directory", "/nowhere/model.bin"),
                     PermissionError(errno.EACCES, "Permission denied")):  # no path named: ours to explain
        with pytest.raises(OSError):
            run(failing(internal), [])


@pytest.mark.parametrize("script", ["inspect_robot.py", "train_arm.py", "bench_env.py", "evaluate.py", "bench.py"])
def test_scripts_explain_themselves(script):
    result = run_script(script, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


@pytest.mark.slow
def test_a_mistake_typed_in_a_shell_is_one_line_with_exit_status_2(tmp_path):
    """The other bad-input tests run the scripts' mains in-process; this one starts the scripts as a shell does."""
    assert_user_error(run_script("train_arm.py", "--lr", "0"), "--lr must be positive")
    assert_user_error(run_script("evaluate.py", "--checkpoint", str(tmp_path / "gone.pt")), "gone.pt", "not found")


def test_bench_env_quick_run_writes_its_table(tmp_path):
    out = tmp_path / "bench.json"
    result = run_script("bench_env.py", "--robots", "light_arm", "--steps", "200", "--rounds", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())
    assert row["robot"] == "light_arm" and row["env_steps_per_s"] > 0 and row["ratio"] > 0  # its size is timing


EXAMPLES = {"run_exported.py"}  # meant to be read: a policy used with onnxruntime and the environment alone
# what an example may use: the environment, its episode loop, the exported policy's reader, and the commands' checked
# flags and one-line errors
EXAMPLE_IMPORTS = {"arm_a3c.envs.arm_env", "arm_a3c.envs.episodes", "arm_a3c.cli.common", "arm_a3c.errors",
                   "arm_a3c.deploy.policy_file"}


def test_scripts_hold_no_logic():
    for script in (REPO / "scripts").glob("*.py"):
        text = script.read_text()
        if script.name in EXAMPLES:
            imported = set(re.findall(r"^\s*(?:from|import) (arm_a3c[\w.]*|torch)", text, re.MULTILINE))
            assert "arm_a3c.envs.arm_env" in imported and imported <= EXAMPLE_IMPORTS, \
                f"{script.name} uses more than the environment: {imported - EXAMPLE_IMPORTS}"
            continue
        code = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith(("#", '"""'))]
        assert len(code) <= 8, f"{script.name} should only parse and call into arm_a3c"


def test_every_script_is_a_command_of_the_one_registry_and_reachable_through_arm_a3c():
    from arm_a3c.cli import COMMANDS, SCRIPTS

    scripts = {p.name for p in (REPO / "scripts").glob("*.py")} - EXAMPLES
    assert scripts == set(SCRIPTS), "a script is missing from cli.COMMANDS, or a command has no script"
    for name, command in COMMANDS.items():
        called = re.search(r"sys\.exit\(run\((\w+)\)\)", (REPO / "scripts" / command.script).read_text())
        assert called and called.group(1) == command.main.__name__, f"scripts/{command.script} is not {name}"
        result = run_in_process(command.script, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout, name
