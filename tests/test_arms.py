"""bench_arms.py: which URDF files are arms (read from their joints alone), the refused arms' one-line reasons,
resuming, and one real quick run over a folder of an arm, a broken arm and an object."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
from helpers import GRIPPER_ARM, REPO, YAW_ELBOW_FOREARM, assert_user_error, box_link, joint, robot_xml, run_in_process

from arm_a3c.bench.arms import ArmResult, ArmsOptions, arm_structure, run_arms_benchmark


def chain(prefix: str, parent: str, joints: int, z: float = 0.1) -> str:
    """`joints` revolute joints in a row from `parent`, each with a 0.2 m link: PREFIX_link1 ... PREFIX_linkN."""
    text, above = "", parent
    for k in range(1, joints + 1):
        link = f"{prefix}_link{k}"
        text += joint(f"{prefix}_joint{k}", "revolute", above, link, z if k == 1 else 0.2) + box_link(link, 0.2)
        above = link
    return text


SERIAL = robot_xml("serial", YAW_ELBOW_FOREARM + joint("wrist", "revolute", "forearm", "hand", 0.25)
                   + box_link("hand", 0.08))
# two 4-joint arms on a 2-joint spine: arm-a3c's end effector would be the chest, where the arms meet
TORSO = robot_xml("torso", joint("spine1", "revolute", "base", "waist", 0.1, axis="0 0 1") + box_link("waist", 0.1)
                  + joint("spine2", "revolute", "waist", "chest", 0.1) + box_link("chest", 0.1)
                  + chain("left", "chest", 4) + chain("right", "chest", 4))
# four 3-joint legs from the base: arm-a3c's end effector would be the base, where they meet
LEGGED = robot_xml("legged", "".join(chain(f"leg{k}", "base", 3) for k in range(4)))
# an arm on a base with two wheels: the wheels branch off before the arm
WHEELED = robot_xml("wheeled", chain("arm", "base", 4) + "".join(
    joint(f"wheel{k}", "continuous", "base", f"wheel{k}_link", 0.0, axis="1 0 0", limit="")
    + box_link(f"wheel{k}_link", 0.05) for k in range(2)))
# a gripper whose fingers differ in length: the long one's joints are on the chain, the short one branches off
UNEQUAL_FINGERS = robot_xml("unequal", chain("arm", "base", 4) + chain("long", "arm_link4", 3)
                            + chain("short", "arm_link4", 1))
FLOATING = robot_xml("floating", joint("free", "floating", "base", "body", 0.0, limit="") + box_link("body", 0.2)
                     + chain("arm", "body", 3))
OBJECT = robot_xml("cube", joint("lid", "fixed", "base", "lid_link", 0.1, limit="") + box_link("lid_link", 0.02))
PENDULUM = robot_xml("pendulum", chain("pole", "base", 1))


@pytest.mark.parametrize("text, joints, why", [
    (SERIAL, 3, ""),
    (GRIPPER_ARM, 2, ""),  # the fingers hang below the end effector (the palm, where they meet)
    (UNEQUAL_FINGERS, 7, ""),  # 4 of the arm and the long finger's 3 after the branch (the short finger's joint)
    (TORSO, None, "not a gripper's fingers (left_joint4, right_joint4)"),
    (LEGGED, None, "0 movable joint on the chain to its end effector"),
    (WHEELED, None, "(wheel0, wheel1)"),
    (FLOATING, None, "floating or planar joint"),
    (OBJECT, None, "no joint moves a link"),
    (PENDULUM, None, "1 movable joint on the chain to its end effector: not an arm"),
    ("<sdf version='1.6'/>", None, "not a URDF robot"),
    ("<robot><link name=", None, "not readable XML"),
], ids=["serial", "gripper", "unequal-fingers", "torso", "legged", "wheeled", "floating", "object", "pendulum", "sdf",
        "broken-xml"])
def test_which_files_are_arms_is_read_from_their_joints(tmp_path, text, joints, why):
    path = tmp_path / "robot.urdf"
    path.write_text(text)
    found, reason = arm_structure(path)
    assert found == joints, reason
    assert why in reason


def test_the_arms_of_pybullet_data_are_found_and_its_objects_are_not():
    """The rule on real files: pybullet_data's KUKA, Panda and xArm6 are arms (7, 7, 6 joints: the Panda's fingers
    hang below its hand), its cube and plane are not."""
    import pybullet_data

    data = Path(pybullet_data.getDataPath())
    assert arm_structure(data / "kuka_iiwa" / "model.urdf") == (7, "")
    assert arm_structure(data / "franka_panda" / "panda.urdf") == (7, "")
    assert arm_structure(data / "xarm" / "xarm6_with_gripper.urdf") == (6, "")
    assert arm_structure(data / "cube.urdf")[0] is None and arm_structure(data / "plane.urdf")[0] is None


def test_list_says_what_each_file_is_and_trains_nothing(tmp_path):
    (tmp_path / "robots" / "deep").mkdir(parents=True)
    (tmp_path / "robots" / "serial.urdf").write_text(SERIAL)
    (tmp_path / "robots" / "deep" / "torso.urdf").write_text(TORSO)
    result = run_in_process("bench_arms.py", "--from", str(tmp_path / "robots"), "--list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "robots/serial.urdf: an arm, 3 joints" in lines
    assert any(line.startswith("robots/deep/torso.urdf: movable joints off the chain") for line in lines)
    assert lines[-1] == "2 URDF files, 1 arms"


def test_bench_arms_mistakes_are_one_line(tmp_path):
    assert_user_error(run_in_process("bench_arms.py", "--from", str(tmp_path / "nowhere")), "--from", "no such folder")
    assert_user_error(run_in_process("bench_arms.py", "--minutes", "0"), "--minutes")
    (tmp_path / "robots").mkdir()
    progress = tmp_path / "arms.progress.json"
    progress.write_text(json.dumps({"options": {"minutes": 3}, "arms": {}}))
    common = ("--from", str(tmp_path / "robots"), "--json", str(tmp_path / "arms.json"))
    assert_user_error(run_in_process("bench_arms.py", *common), "arms.progress.json", "--resume")
    assert_user_error(run_in_process("bench_arms.py", *common, "--resume"), "other options")
    assert_user_error(run_in_process("bench_arms.py", "--from", str(tmp_path / "robots"), "--json",
                                     str(tmp_path / "other.json"), "--resume"), "nothing to resume")
    (tmp_path / "mine.json").write_text('{"my": "data"}')
    assert_user_error(run_in_process("bench_arms.py", "--from", str(tmp_path / "robots"), "--json",
                                     str(tmp_path / "mine.json")), "mine.json")
    assert json.loads((tmp_path / "mine.json").read_text()) == {"my": "data"}


def test_a_resumed_benchmark_keeps_the_arms_it_measured_and_trains_only_the_others(tmp_path, monkeypatch):
    from arm_a3c.bench import arms

    (tmp_path / "robots").mkdir()
    (tmp_path / "robots" / "a.urdf").write_text(SERIAL)
    (tmp_path / "robots" / "b.urdf").write_text(GRIPPER_ARM)
    kept = ArmResult("robots/a.urdf", 3, controlled=3, stopped_minutes=1.5, held_out=0.97)
    progress = {"arms": {kept.key: asdict(kept)}}
    trained = []

    def train(candidate, opts, work_dir, log):
        trained.append(candidate.key)
        return ArmResult(candidate.key, candidate.joints, refused="stand-in")

    monkeypatch.setattr(arms, "train_arm", train)
    saves = []
    result = run_arms_benchmark(ArmsOptions(), [("robots", tmp_path / "robots")], tmp_path / "runs", progress,
                                lambda: saves.append(dict(progress["arms"])), log=lambda line: None)
    assert trained == ["robots/b.urdf"] and len(saves) == 1 and set(saves[0]) == {"robots/a.urdf", "robots/b.urdf"}
    assert [a["key"] for a in result["arms"]] == ["robots/a.urdf", "robots/b.urdf"]
    assert result["arms"][0]["held_out"] == 0.97
    assert result["goal"] == {"arms": 2, "loaded": 1, "refused": 1, "held_out_at_target_within_5_min": 1, "share": 1.0}


@pytest.mark.slow
def test_a_quick_run_trains_each_arm_gives_a_refused_ones_line_and_writes_table_and_gallery(tmp_path):
    """A folder of the light arm, an arm whose mesh is missing (train_arm.py refuses it) and an object: the
    light arm trains (seconds: only that it ran and was tested is checked), the broken one's row is its line."""
    robots = tmp_path / "robots"
    robots.mkdir()
    shutil.copy(REPO / "assets" / "light_arm.urdf", robots / "light_arm.urdf")
    (robots / "broken.urdf").write_text(SERIAL.replace('<box size="0.04 0.04 0.08"/>', '<mesh filename="gone.stl"/>'))
    (robots / "cube.urdf").write_text(OBJECT)
    out = tmp_path / "arms.json"
    result = run_in_process("bench_arms.py", "--from", str(robots), "--minutes", "0.05", "--workers", "1", "--quick",
                            "--json", str(out), "--work-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    bench = json.loads(out.read_text())
    rows = {row["key"]: row for row in bench["arms"]}
    assert set(rows) == {"robots/light_arm.urdf", "robots/broken.urdf"}
    light = rows["robots/light_arm.urdf"]
    assert not light["refused"] and light["controlled"] >= 2 and 0 <= light["held_out"] <= 1
    assert light["self_contact"] is not None and light["max_speed_fraction"] is not None
    assert "gone.stl" in rows["robots/broken.urdf"]["refused"] and "not found" in rows["robots/broken.urdf"]["refused"]
    assert bench["not_arms"] == {"no joint moves a link": ["robots/cube.urdf"]}
    assert bench["goal"]["loaded"] == 1 and bench["goal"]["refused"] == 1
    assert bench["table"] in result.stdout and "| robots/light_arm.urdf |" in bench["table"]
    assert "- robots/broken.urdf: " in bench["table"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "arms.progress.json").exists(), "a finished benchmark leaves nothing to resume"


def test_report_writes_the_table_of_the_arms_measured_so_far_and_keeps_the_progress(tmp_path):
    robots = tmp_path / "robots"
    robots.mkdir()
    (robots / "a.urdf").write_text(SERIAL)
    (robots / "b.urdf").write_text(GRIPPER_ARM)
    progress = tmp_path / "arms.progress.json"
    measured = ArmResult("robots/a.urdf", 3, controlled=3, stopped_minutes=2.5, first_target_minutes=2.0,
                         held_out=0.975, self_contact=0.0, floor_contact=0.005, max_speed_fraction=0.4,
                         steps_per_second=5000.0, env_steps=700_000)
    options = {"minutes": 10.0, "seed": 0, "workers": 0, "quick": False, "sources": [str(robots.resolve())],
               "only": []}
    progress.write_text(json.dumps({"options": options, "commit": "abc1234", "arms": {measured.key: asdict(measured)}}))
    out = tmp_path / "arms.json"
    result = run_in_process("bench_arms.py", "--from", str(robots), "--report", "--json", str(out),
                            "--work-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    bench = json.loads(out.read_text())
    assert [a["key"] for a in bench["arms"]] == ["robots/a.urdf"] and bench["not_measured"] == ["robots/b.urdf"]
    assert "| robots/a.urdf | 3 of 3 | 2.50 min | 2.00 min | 97.5% | 0.0% | 0.5% | 0.40 | 5,000 |" in bench["table"]
    assert "Not measured yet (the benchmark goes on with --resume): robots/b.urdf" in bench["table"]
    assert progress.is_file() and not list((tmp_path / "runs").glob("*/summary.json"))  # kept; nothing trained


def test_a_benchmark_whose_progress_file_is_gone_goes_on_from_the_arms_its_json_holds(tmp_path):
    """The progress file stays on the machine that ran the benchmark; the JSON, in the docs, travels."""
    robots = tmp_path / "robots"
    robots.mkdir()
    (robots / "a.urdf").write_text(SERIAL)
    (robots / "b.urdf").write_text(GRIPPER_ARM)
    options = {"minutes": 10.0, "seed": 0, "workers": 0, "quick": False, "sources": [str(robots.resolve())],
               "only": []}
    measured = ArmResult("robots/a.urdf", 3, controlled=3, held_out=0.975, commit="abc1234")
    out = tmp_path / "arms.json"
    out.write_text(json.dumps({"options": options, "arms": [asdict(measured)], "not_arms": {}, "not_measured": [],
                               "goal": {}, "commit": "abc1234", "table": ""}))
    result = run_in_process("bench_arms.py", "--from", str(robots), "--report", "--json", str(out),
                            "--work-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    bench = json.loads(out.read_text())
    assert [a["key"] for a in bench["arms"]] == ["robots/a.urdf"] and bench["not_measured"] == ["robots/b.urdf"]
    assert bench["arms"][0]["commit"] == "abc1234" and bench["commit"] == "abc1234"
    out.write_text("{}")  # not this benchmark's: nothing to go on with
    assert_user_error(run_in_process("bench_arms.py", "--from", str(robots), "--resume", "--json", str(out),
                                     "--work-dir", str(tmp_path / "runs")), "nothing to resume: neither")


def test_each_arm_keeps_the_commit_it_was_trained_at_and_the_table_names_them_when_they_differ():
    from arm_a3c.bench.arms import format_arms_table, goal_figures

    old = ArmResult("robots/a.urdf", 3, controlled=3, held_out=0.9)  # measured before arms kept their commit
    new = ArmResult("robots/b.urdf", 3, controlled=3, held_out=0.97, commit="def5678")
    options = {"minutes": 10.0, "seed": 0, "workers": 0, "quick": False, "sources": ["x"], "only": []}

    def table(*arms):
        return format_arms_table({"options": options, "commit": "abc1234", "arms": [asdict(a) for a in arms],
                                  "not_arms": {}, "not_measured": [], "goal": goal_figures(list(arms))})

    assert table(old).startswith("arm-a3c commit abc1234; reach")
    assert table(old, new).startswith("started at arm-a3c commit abc1234, arms trained at abc1234, def5678 (each "
                                      "arm's in the JSON); reach")


def test_an_arm_an_interrupted_benchmark_had_begun_is_started_over_with_force(tmp_path, monkeypatch):
    from arm_a3c.bench import arms

    candidate = arms.Candidate("robots", "a.urdf", str(tmp_path / "a.urdf"), 3)
    commands = []

    def run(command, **kwargs):
        commands.append(command)
        return __import__("subprocess").CompletedProcess(command, 2, "", "error: stand-in\n")

    monkeypatch.setattr(arms.subprocess, "run", run)
    arms.train_arm(candidate, ArmsOptions(), tmp_path / "runs")
    (tmp_path / "runs" / "robots__a").mkdir(parents=True)
    (tmp_path / "runs" / "robots__a" / "run.json").write_text("{}")
    result = arms.train_arm(candidate, ArmsOptions(), tmp_path / "runs")
    assert "--force" not in commands[0] and commands[1][-1] == "--force" and result.refused == "stand-in"


def test_the_default_sources_are_kept_by_name_so_a_benchmark_goes_on_on_another_machine(tmp_path):
    from arm_a3c.bench.arms import default_sources

    labels = [label for label, _ in default_sources()]
    assert labels[0] == "pybullet_data"
    options = {"minutes": 10.0, "seed": 0, "workers": 0, "quick": False, "sources": labels, "only": ["model.urdf"]}
    progress = tmp_path / "arms.progress.json"
    progress.write_text(json.dumps({"options": options, "commit": None, "arms": {}}))
    result = run_in_process("bench_arms.py", "--only", "model.urdf", "--report", "--json", str(tmp_path / "arms.json"),
                            "--work-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    bench = json.loads((tmp_path / "arms.json").read_text())
    assert bench["options"]["sources"] == labels and "pybullet_data/kuka_iiwa/model.urdf" in bench["not_measured"]
