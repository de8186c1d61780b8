"""Nothing a user owns is lost, and nothing hangs: a run directory is the run's only by its run.json, --force
deletes only what that lists, one launcher holds a folder at a time, an export never writes over its input or a
file it did not write, a recording streams to disk and stops on SIGTERM, every count is bounded at the door, and a
checkpoint's saved settings are checked as the command line's are."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import GRIPPER_ARM, REPO, assert_user_error, run_in_process, write_untrained_checkpoint

SHORT = ("--robot", "light_arm", "--workers", "1", "--max-steps", "400", "--eval-episodes", "2",
         "--test-episodes", "0")


def foreign_project(folder: Path) -> dict[str, str]:
    """Another project's folder that happens to use the names a run writes; returns {relative path: content}."""
    files = {"checkpoints/resnet_epoch90.ckpt": "weights", "tb/events.out": "events", "metrics.csv": "epoch,loss\n",
             "summary.json": '{"top1": 0.76}', "config.json": '{"lr": 0.1}', "notes.txt": "mine"}
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return files


def contents(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()}


# ---- run directories ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("force", [True, False])
def test_a_foreign_project_folder_keeps_every_file_with_or_without_force(tmp_path, force):
    files = foreign_project(tmp_path / "project")
    result = run_in_process("train_arm.py", *SHORT, "--run-dir", str(tmp_path / "project"), *(["--force"] * force))
    assert_user_error(result, "config.json, summary.json, metrics.csv", "did not write", "nothing was deleted")
    assert contents(tmp_path / "project") == files


@pytest.mark.parametrize("name", ["metrics.csv", "summary.json", "learning_curve.png", "checkpoints/best.pt"])
def test_a_folder_holding_only_a_file_a_run_would_write_is_refused(tmp_path, name):
    (tmp_path / "run" / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "run" / name).write_text("the user's")
    assert_user_error(run_in_process("train_arm.py", *SHORT, "--run-dir", str(tmp_path / "run")), name,
                      "did not write")
    assert (tmp_path / "run" / name).read_text() == "the user's"


@pytest.mark.slow
def test_force_replaces_a_run_deleting_only_the_files_its_run_json_lists(tmp_path):
    run_dir = tmp_path / "run"
    first = run_in_process("train_arm.py", *SHORT, "--run-dir", str(run_dir))
    assert first.returncode == 0, first.stderr
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["format"] == "arm-a3c-run/1"
    written = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()}
    assert written <= set(manifest["files"]), "the run wrote a file its run.json does not list"
    old_events = {name for name in manifest["files"] if name.startswith("tb/")}
    assert old_events and old_events <= written
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / "checkpoints" / "by-hand.pt").write_text("mine too")
    (run_dir / "tb" / "my-plot.png").write_text("and this")
    second = run_in_process("train_arm.py", *SHORT, "--run-dir", str(run_dir), "--force")
    assert second.returncode == 0, second.stderr
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert (run_dir / "checkpoints" / "by-hand.pt").read_text() == "mine too"
    assert (run_dir / "tb" / "my-plot.png").read_text() == "and this"
    assert not any((run_dir / name).exists() for name in old_events), "the first run's event file was kept"
    assert (run_dir / "summary.json").is_file() and (run_dir / "checkpoints" / "best.pt").is_file()


def test_default_run_directories_started_in_the_same_second_never_collide(tmp_path, monkeypatch):
    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.a3c.rundir import claim_new_run_dir

    monkeypatch.chdir(tmp_path)
    claimed = [claim_new_run_dir(TrainConfig(), "arm", force=False) for _ in range(3)]
    try:
        assert len({c.path for c in claimed}) == 3
        assert all(c.path.parent == Path("runs") and (c.path / "run.json").is_file() for c in claimed)
    finally:
        for c in claimed:
            c.release()


def wait_for(condition, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            out, err = process.communicate()
            pytest.fail(f"the process did not get going: {out[-1500:]} {err[-1500:]}")
        time.sleep(0.2)


@pytest.mark.slow
def test_a_second_launcher_on_a_live_run_is_refused_while_the_first_keeps_writing(tmp_path):
    run_dir = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "train_arm.py"), "--robot", "light_arm", "--workers", "1",
         "--run-dir", str(run_dir), "--max-minutes", "3", "--target-success", "1.01", "--eval-every-steps", "2000",
         "--eval-episodes", "2", "--test-episodes", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        metrics = run_dir / "metrics.csv"
        wait_for(lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 2, 90, first)
        for flags in (["--resume", str(run_dir)], [*SHORT, "--run-dir", str(run_dir), "--force"],
                      [*SHORT, "--run-dir", str(run_dir)]):
            result = run_in_process("train_arm.py", *flags)
            assert_user_error(result, str(run_dir), "in use by a training that is running now",
                              f"launcher process {first.pid}")
        rows = len(metrics.read_text().splitlines())
        wait_for(lambda: len(metrics.read_text().splitlines()) > rows, 60, first)  # the first goes on writing
        assert (run_dir / "checkpoints" / "latest.pt").is_file()
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 0
    assert json.loads((run_dir / "summary.json").read_text())["stop_reason"] == "stopped by SIGTERM"


def test_resume_without_latest_pt_points_to_best_pt_and_never_advises_force(tmp_path):
    from arm_a3c.a3c.config import TrainConfig

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(TrainConfig(robot="light_arm").to_dict()))
    write_untrained_checkpoint("light_arm", run_dir / "checkpoints" / "best.pt")
    result = run_in_process("train_arm.py", "--resume", str(run_dir))
    assert_user_error(result, "best.pt is intact", "copy it to", "--force would delete best.pt")
    (run_dir / "checkpoints" / "latest.pt").write_bytes(b"not a checkpoint")
    assert_user_error(run_in_process("train_arm.py", "--resume", str(run_dir)), "not a readable",
                      "best.pt is intact")


@pytest.mark.slow
def test_max_steps_stops_within_one_rollout_per_worker(tmp_path):
    result = run_in_process("train_arm.py", "--robot", "light_arm", "--workers", "2", "--max-steps", "100",
                        "--eval-episodes", "2", "--test-episodes", "0", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    steps = json.loads((tmp_path / "run" / "summary.json").read_text())["env_steps"]
    assert 100 <= steps <= 100 + 2 * 20  # it ran 4,500 steps before the workers watched the budget


@pytest.mark.slow
def test_a_held_out_test_shows_progress_and_stops_on_ctrl_c_with_the_summary_written(tmp_path):
    run_dir, err_file = tmp_path / "run", tmp_path / "stderr.txt"
    with open(err_file, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "train_arm.py"), *SHORT[:-2], "--test-episodes", "10000",
             "--run-dir", str(run_dir)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)
    try:
        wait_for(lambda: "of 10,000 episodes played" in err_file.read_text(), 120, process)  # 3 s into the test
        os.killpg(process.pid, signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err_file.read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "the step budget of 400 environment steps was used"
    assert "test_success_rate" not in summary
    assert "held-out test not run" in out and "--test" in out


# ---- bounded work -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("script, flags, fragment", [
    ("train_arm.py", ["--hidden-size", "1000000"], "--hidden-size must be between 1 and 4096"),
    ("train_arm.py", ["--workers", "1000000000000"], "--workers must be between 1 and 1024"),
    ("train_arm.py", ["--seed", "-1"], "--seed must be between 0"),
    ("train_arm.py", ["--test-episodes", "100000000"], "--test-episodes must be 0 (no held-out test) or up to 10,000"),
    ("train_arm.py", ["--n-steps", "1000000000"], "--n-steps must be between 1 and 10,000"),
    ("train_arm.py", ["--log-std-max", "1e30"], "--log-std-max must be in [-20, 2]"),  # infinite actions, crash loop
    ("train_arm.py", ["--substeps", "0"], None),  # not a flag: argparse's own one line
    ("evaluate.py", ["--checkpoint", "x.pt", "--episodes", "1000000000"], "between 1 and 10,000"),
    ("evaluate.py", ["--checkpoint", "x.pt", "--seed", "-1"], "between 0 and"),
    ("view.py", ["--checkpoint", "x.pt", "--record", "a.gif", "--frames", "100000000"], "between 1 and 108,000"),
    ("view.py", ["--checkpoint", "x.pt", "--seed", "-1"], "between 0 and"),
    ("inspect_robot.py", ["light_arm", "--seed", "-1"], "between 0 and"),
    ("oracle.py", ["--robot", "light_arm", "--seed", "-1"], "between 0 and"),
    ("oracle.py", ["--robot", "light_arm", "--episodes", "1000000000"], "between 1 and 10,000"),
])
def test_every_count_is_bounded_at_the_door_with_the_limit_named(tmp_path, monkeypatch, script, flags, fragment):
    monkeypatch.chdir(tmp_path)
    result = run_in_process(script, *flags)
    assert_user_error(result, *([fragment] if fragment else []))
    assert list(tmp_path.iterdir()) == [], "a run directory was made before the check"


def test_the_limits_of_the_flags_are_the_configs(tmp_path):
    from arm_a3c import limits
    from arm_a3c.cli import common

    assert common.EPISODES("10000") == limits.MAX_EPISODES and common.SEED(str(limits.MAX_SEED)) == limits.MAX_SEED


# ---- exports ------------------------------------------------------------------------------------------------

def test_an_export_never_writes_over_its_checkpoint_or_a_file_it_did_not_write(tmp_path):
    from arm_a3c.a3c.checkpoint import load_checkpoint

    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "X.pt")
    before = checkpoint.read_bytes()
    assert_user_error(run_in_process("export.py", "--checkpoint", str(checkpoint), "--out", str(checkpoint)),
                      "over the checkpoint it exports")
    as_json = write_untrained_checkpoint("light_arm", tmp_path / "Y.json")
    assert_user_error(run_in_process("export.py", "--checkpoint", str(as_json), "--out", str(tmp_path / "Y.onnx")),
                      "over the checkpoint it exports")
    (tmp_path / "policy.json").write_text('{"the user": "s own file"}')
    assert_user_error(run_in_process("export.py", "--checkpoint", str(checkpoint), "--out",
                                     str(tmp_path / "policy.onnx")), "policy.json", "did not write")
    (tmp_path / "other.onnx").write_text("someone else's model")
    assert_user_error(run_in_process("export.py", "--checkpoint", str(checkpoint), "--out",
                                     str(tmp_path / "other.onnx")), "other.onnx", "did not write")
    assert checkpoint.read_bytes() == before and load_checkpoint(checkpoint)["env_steps"] == 0
    assert (tmp_path / "policy.json").read_text() == '{"the user": "s own file"}'
    assert (tmp_path / "other.onnx").read_text() == "someone else's model"
    (tmp_path / "policy.json").unlink()
    for _ in range(2):  # an export may replace its own earlier one
        result = run_in_process("export.py", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "policy.onnx"))
        assert result.returncode == 0, result.stderr



def test_an_export_never_leaves_an_earlier_model_with_another_ones_description(tmp_path):
    """--out ok.onnx, then --out ok.pt --format torchscript replaced ok.json, which then described ok.pt while
    ok.onnx stayed beside it: run_exported.py --policy ok.onnx ran with ok.pt's description, without a word."""
    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "C.pt")

    def export(name: str, *flags: str):
        return run_in_process("export.py", "--checkpoint", str(checkpoint), "--out", str(tmp_path / name), *flags)

    assert export("ok.onnx").returncode == 0
    description = (tmp_path / "ok.json").read_text()
    assert_user_error(export("ok.pt", "--format", "torchscript"), "ok.json describes ok.onnx", "ok-torchscript.pt",
                      "delete ok.onnx")
    assert (tmp_path / "ok.json").read_text() == description
    assert sorted(p.name for p in tmp_path.iterdir()) == ["C.pt", "ok.json", "ok.onnx"]
    assert export("ok.onnx").returncode == 0  # its own export it may replace
    (tmp_path / "ok.onnx").unlink()  # the model gone, its description may go too
    assert export("ok.pt", "--format", "torchscript").returncode == 0
    assert json.loads((tmp_path / "ok.json").read_text())["model_file"] == "ok.pt"

# ---- recordings ---------------------------------------------------------------------------------------------

def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.mark.parametrize("suffix", [".gif"])  # an MP4 streams through ffmpeg's pipe (and was held in memory too)
@pytest.mark.slow
def test_a_long_recording_keeps_its_memory_flat_and_stops_on_sigterm_with_a_playable_file(tmp_path, suffix):
    import imageio.v3 as iio

    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "policy.pt")
    out = tmp_path / f"long{suffix}"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "view.py"), "--checkpoint", str(checkpoint), "--record", str(out),
         "--frames", "100000"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
    try:
        # past the start-up: frames are being drawn and written to the partial file
        wait_for(lambda: any(p.name.startswith(".") and p.stat().st_size > 0 for p in tmp_path.iterdir()), 60,
                 process)
        time.sleep(1)
        early = rss_mb(process.pid)
        time.sleep(3)  # some 90 more frames: 1.4 MB each (800x600 RGB), 126 MB, if they were held
        late = rss_mb(process.pid)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert late - early < 40, f"memory grew from {early:.0f} MB to {late:.0f} MB"
    assert "recording stopped by SIGTERM" in stderr and f"wrote {out}" in stdout
    frames = iio.imread(out)  # the whole file decodes: it was closed properly
    written = int(stdout.split("(")[-1].split()[0])
    assert frames.shape[0] == written and written > 50
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "a partial file was left"


def test_a_recording_replaces_only_a_recording_of_its_own(tmp_path):
    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "policy.pt")
    (tmp_path / "holiday.gif").write_bytes(b"GIF89a the user's animation")
    assert_user_error(run_in_process("view.py", "--checkpoint", str(checkpoint), "--record",
                                     str(tmp_path / "holiday.gif"), "--frames", "2"), "did not write")
    assert (tmp_path / "holiday.gif").read_bytes() == b"GIF89a the user's animation"
    for _ in range(2):
        result = run_in_process("view.py", "--checkpoint", str(checkpoint), "--record", str(tmp_path / "mine.gif"),
                                "--frames", "2")
        assert result.returncode == 0, result.stderr


# ---- saved settings -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, fragment", [
    ({"hidden_size": 10_000_000_000}, "--hidden-size must be between 1 and 4096"),
    ({"hidden_size": "64"}, "--hidden-size cannot be '64'"),
    ({"workers": None}, "--workers cannot be None"),
    ({"n_steps": [1]}, "--n-steps cannot be [1]"),
    ({"substeps": 0}, None),  # not a TrainConfig field: ignored as an unknown key
])
def test_a_checkpoints_saved_settings_are_checked_as_the_command_lines(tmp_path, change, fragment):
    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "crafted.pt")
    data = torch.load(checkpoint, weights_only=True)
    data["config"].update(change)
    torch.save(data, checkpoint)
    result = run_in_process("evaluate.py", "--checkpoint", str(checkpoint), "--episodes", "1")
    if fragment is None:
        assert result.returncode == 0, result.stderr
        return
    assert_user_error(result, "crafted.pt", "holds settings arm-a3c cannot use", fragment)


@pytest.mark.slow
def test_a_run_trained_with_a_relative_urdf_is_evaluated_from_another_folder_and_a_moved_one_with_urdf(
        tmp_path, monkeypatch):
    (tmp_path / "robots").mkdir()
    (tmp_path / "robots" / "my_arm.urdf").write_text(GRIPPER_ARM)
    monkeypatch.chdir(tmp_path)
    result = run_in_process("train_arm.py", "--urdf", "robots/my_arm.urdf", *SHORT[2:], "--run-dir", "run")
    monkeypatch.chdir(REPO)
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["robot"] == "robots/my_arm.urdf"
    assert config["robot_file"] == str((tmp_path / "robots" / "my_arm.urdf").resolve())
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    from_repo = run_in_process("evaluate.py", "--checkpoint", str(best), "--episodes", "2")  # cwd: not tmp_path
    assert from_repo.returncode == 0, from_repo.stderr
    (tmp_path / "robots" / "my_arm.urdf").rename(tmp_path / "my_arm.urdf")
    lost = run_in_process("evaluate.py", "--checkpoint", str(best), "--episodes", "2")
    assert_user_error(lost, "my_arm.urdf", "not found")
    moved = run_in_process("evaluate.py", "--checkpoint", str(best), "--episodes", "2",
                           "--urdf", str(tmp_path / "my_arm.urdf"))
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["episodes"] == 2
    resumed = run_in_process("train_arm.py", "--resume", str(tmp_path / "run"), "--urdf", str(tmp_path / "my_arm.urdf"),
                         "--max-steps", "800", "--test-episodes", "0")  # the robot there is the run's: same joints
    assert resumed.returncode == 0, resumed.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["robot_file"] == str((tmp_path / "my_arm.urdf").resolve())
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["env_steps"] >= 800
    assert_user_error(run_in_process("train_arm.py", "--resume", str(tmp_path / "run"), "--urdf",
                                     str(REPO / "assets" / "light_arm.urdf"), "--max-steps", "1200"),
                      "trained for robot my_arm", "now light_arm")  # another robot is refused


def test_a_run_whose_robot_file_moved_resumes_with_urdf_and_records_the_new_file(tmp_path):
    """`--resume RUN --urdf NEWPATH` finds the run's robot where it is now, as evaluate.py's --urdf does (it was
    refused: '--robot cannot change when resuming'); without --urdf the error says to give it."""
    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.a3c.rundir import resume_config
    from arm_a3c.errors import UserError

    old, new, run_dir = tmp_path / "arm.urdf", tmp_path / "moved" / "arm.urdf", tmp_path / "run"
    run_dir.mkdir()
    new.parent.mkdir()
    new.write_text(GRIPPER_ARM)  # the file has already moved from `old`
    (run_dir / "config.json").write_text(json.dumps(TrainConfig(robot=str(old), robot_file=str(old)).to_dict()))
    cfg = resume_config(run_dir, {"robot": str(new), "max_steps": 800})
    assert (cfg.robot, cfg.robot_file, cfg.max_steps) == (str(new), str(new.resolve()), 800)
    with pytest.raises(UserError, match="robot file .*arm.urdf is not there any more; .* --urdf PATH"):
        resume_config(run_dir, {})
    with pytest.raises(UserError, match="--robot cannot change when resuming"):
        resume_config(run_dir, {"robot": "light_arm"})


def test_another_robot_given_with_urdf_is_refused_as_another_robot_not_for_a_home_the_user_never_gave(tmp_path):
    """A checkpoint of light_arm (3 joints) with --urdf panda (6) was refused with '--home has 3 values but panda
    has 6 controlled joints': the run's recorded home, not the user's flag. evaluate.py, export.py, view.py
    (--checkpoint, and --run while it trains) and train_arm.py --resume each name both robots."""
    from arm_a3c.a3c.checkpoint import load_checkpoint, save_checkpoint
    from arm_a3c.a3c.live import LiveBoard
    from arm_a3c.errors import UserError
    from arm_a3c.viewer.sources import LiveSource

    run_dir, panda = tmp_path / "run", str(REPO / "assets" / "panda.toml")
    checkpoint = write_untrained_checkpoint("light_arm", run_dir / "checkpoints" / "latest.pt")
    data = load_checkpoint(checkpoint)
    data["config"]["home"] = [0.0, 0.3, 0.6]  # as a run records it
    save_checkpoint(checkpoint, {k: v for k, v in data.items() if k not in ("format", "versions")})
    (run_dir / "config.json").write_text(json.dumps(data["config"]))
    another_robot = ("trained for robot light_arm, but the robot is now panda",)
    assert_user_error(run_in_process("evaluate.py", "--checkpoint", str(checkpoint), "--urdf", panda), *another_robot)
    assert_user_error(run_in_process("export.py", "--checkpoint", str(checkpoint), "--urdf", panda, "--out",
                                     str(tmp_path / "p.onnx")), *another_robot)
    assert_user_error(run_in_process("view.py", "--checkpoint", str(checkpoint), "--urdf", panda, "--record",
                                     str(tmp_path / "p.gif")), *another_robot)
    assert_user_error(run_in_process("train_arm.py", "--resume", str(run_dir), "--urdf", panda), *another_robot)
    board = LiveBoard.create(run_dir, 1, 3, 50, 3)
    with pytest.raises(UserError, match=another_robot[0]):
        LiveSource(run_dir, board, urdf=panda)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# ---- the other outputs ----------------------------------------------------------------------------------------

def test_benchmark_and_inspection_outputs_replace_only_files_arm_a3c_wrote(tmp_path):
    from PIL import Image

    picture = tmp_path / "holiday.png"
    Image.new("RGB", (4, 4)).save(picture)
    before = picture.read_bytes()
    assert_user_error(run_in_process("inspect_robot.py", "light_arm", "--snapshot", str(picture)), "did not write")
    assert_user_error(run_in_process("inspect_robot.py", "light_arm", "--gallery", str(picture)), "did not write")
    (tmp_path / "results.json").write_text('{"mine": true}')
    assert_user_error(run_in_process("bench_env.py", "--robots", "light_arm", "--steps", "10", "--rounds", "1",
                                     "--json", str(tmp_path / "results.json")), "results.json", "did not write")
    assert_user_error(run_in_process("bench.py", "--quick", "--robots", "light_arm", "--json",
                                     str(tmp_path / "results.json"), "--work-dir", str(tmp_path / "runs")),
                      "did not write")
    (tmp_path / "bench.png").write_bytes(before)  # beside a bench.json that is not there yet
    assert_user_error(run_in_process("bench.py", "--quick", "--robots", "light_arm", "--json",
                                     str(tmp_path / "bench.json"), "--work-dir", str(tmp_path / "runs")),
                      "bench.png", "did not write")
    assert picture.read_bytes() == before and (tmp_path / "results.json").read_text() == '{"mine": true}'
    for _ in range(2):  # their own files they may replace
        snapshot = run_in_process("inspect_robot.py", "light_arm", "--snapshot", str(tmp_path / "snap.png"))
        assert snapshot.returncode == 0, snapshot.stderr
        speed = run_in_process("bench_env.py", "--robots", "light_arm", "--steps", "10", "--rounds", "1", "--json",
                               str(tmp_path / "speed.json"))
        assert speed.returncode == 0, speed.stderr


# ---- links, files in the way, crafted run files -----------------------------------------------------------------

def test_a_run_file_that_is_a_link_to_a_users_file_is_refused_on_resume_and_a_dangling_one_on_a_new_run(tmp_path):
    run_dir = tmp_path / "run"
    first = run_in_process("train_arm.py", *SHORT, "--run-dir", str(run_dir))
    assert first.returncode == 0, first.stderr
    precious = tmp_path / "thesis.tex"
    precious.write_text("years of work")
    for name in ("live.bin", "learning_curve.png"):
        (run_dir / name).unlink()
        (run_dir / name).symlink_to(precious)
        assert_user_error(run_in_process("train_arm.py", "--resume", str(run_dir), "--max-steps", "800"), name,
                          "symbolic link")
        assert precious.read_text() == "years of work"
        (run_dir / name).unlink()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "summary.json").symlink_to(tmp_path / "elsewhere.json")  # dangling: writing it would make the target
    assert_user_error(run_in_process("train_arm.py", *SHORT, "--run-dir", str(fresh)), "summary.json")
    assert not (tmp_path / "elsewhere.json").exists()


def test_resume_removes_only_its_own_half_written_checkpoints(tmp_path):
    from arm_a3c.a3c.checkpoint import remove_stale_temporaries

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    ours = [folder / ".latest.pt.abc123.tmp", folder / "best.pt.x1y2.tmp"]
    theirs = [folder / "model.pt.backup.tmp", folder / "notes.pt.1.tmp"]
    for path in ours + theirs:
        path.write_text("")
    assert sorted(remove_stale_temporaries(folder)) == sorted(ours)
    assert all(path.exists() for path in theirs)


@pytest.mark.parametrize("case", ["run dir is a file", "checkpoints is a file"])
def test_a_file_where_the_run_needs_a_folder_is_one_line_and_leaves_nothing(tmp_path, case):
    target = tmp_path / "run"
    if case == "run dir is a file":
        target.write_text("a file")
    else:
        target.mkdir()
        (target / "checkpoints").write_text("a file")
    result = run_in_process("train_arm.py", *SHORT, "--run-dir", str(target))
    assert_user_error(result, "a file", "--run-dir")
    assert not (target / "run.json").exists() if target.is_dir() else target.read_text() == "a file"


def finished_run(folder: Path) -> Path:
    """A run directory as a finished run leaves it, as far as the viewer reads it: config, best.pt, live.bin."""
    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.a3c.live import LiveBoard

    write_untrained_checkpoint("light_arm", folder / "checkpoints" / "best.pt")
    (folder / "config.json").write_text(json.dumps(TrainConfig(robot="light_arm").to_dict()))
    LiveBoard.create(folder, 1, 3, 50, 3)
    return folder


@pytest.mark.parametrize("pid", [-1, 0, 1, "mine"])
def test_a_run_that_no_launcher_holds_is_replayed_whatever_pid_its_live_board_names(tmp_path, pid):
    import numpy as np

    from arm_a3c.a3c.live import HEADER

    run = finished_run(tmp_path / "run")
    board = np.memmap(run / "live.bin", dtype=np.float64, mode="r+")
    board[HEADER.index("launcher_pid")] = os.getpid() if pid == "mine" else pid  # a live process, or nonsense
    board.flush()
    result = run_in_process("view.py", "--run", str(run), "--record", str(tmp_path / "a.gif"), "--frames", "2")
    assert result.returncode == 0, result.stderr
    assert "has finished: replaying its best checkpoint" in result.stdout


@pytest.mark.parametrize("index, value", [(1, 0), (1, 1e12), (2, -3), (3, float("nan")), (4, 2.5), (0, 7)])
def test_a_crafted_live_board_is_not_taken_for_a_runs(tmp_path, index, value):
    import numpy as np

    from arm_a3c.a3c.live import LiveBoard

    run = finished_run(tmp_path / "run")
    board = np.memmap(run / "live.bin", dtype=np.float64, mode="r+")
    board[index] = value
    board.flush()
    assert LiveBoard.attach(run) is None


# ---- damaged checkpoints --------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage, fragment", [
    (lambda d: d["model"].update({k: torch.full_like(v, float("nan")) for k, v in d["model"].items()}),
     "not finite numbers"),
    (lambda d: d["normalizer"].update(var=torch.full_like(d["normalizer"]["var"], -1.0)), "not finite numbers"),
    (lambda d: d.update(eval={"episodes": 10**9, "success_rate": 0.5}), "episodes 1000000000"),
    (lambda d: d.update(eval={"episodes": -3}), "episodes -3"),
    (lambda d: d.update(robot="kuka"), "its robot entry"),
    (lambda d: d.update(model=[1, 2]), "its model entry"),
    (lambda d: d.update(env_steps=float("nan")), "env_steps nan"),
    (lambda d: d["normalizer"].update(mean="zero"), "other shapes"),
    (lambda d: d["config"].pop("robot"), "without a robot"),
])
def test_a_damaged_or_diverged_checkpoint_is_one_line_in_evaluate_and_view(tmp_path, damage, fragment):
    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "damaged.pt")
    data = torch.load(checkpoint, weights_only=True)
    damage(data)
    torch.save(data, checkpoint)
    assert_user_error(run_in_process("evaluate.py", "--checkpoint", str(checkpoint)), "damaged.pt", fragment)
    assert_user_error(run_in_process("view.py", "--checkpoint", str(checkpoint), "--record",
                                     str(tmp_path / "a.gif"), "--frames", "1"), "damaged.pt", fragment)


def test_a_recording_where_nothing_can_be_written_is_one_line(tmp_path):
    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "policy.pt")
    assert_user_error(run_in_process("view.py", "--checkpoint", str(checkpoint), "--record", "/proc/self/a.gif",
                                     "--frames", "1"), "/proc/self/a.gif", "cannot write")


# ---- the environment's API ------------------------------------------------------------------------------------

def test_the_environment_refuses_odd_arguments_with_a_value_error():
    from arm_a3c.envs.arm_env import ArmEnv, make_env

    for size in ((-5, -5), (0, 0), (100_000, 100_000), (320,)):
        with pytest.raises(ValueError, match="render_size"):
            ArmEnv("light_arm", render_size=size)
    with pytest.raises(TypeError, match="make_env\\(robot='light_arm'\\)"):
        make_env("light_arm")  # it built the default robot without a word
    env = make_env(robot="light_arm")
    try:
        with pytest.raises(ValueError, match="options must be a dict"):
            env.reset(options=[1, 2])
        env.reset(seed=0)
        with pytest.raises(ValueError, match="3 finite numbers"):
            env.set_target([float("nan")] * 3)
        with pytest.raises(ValueError, match="3 numbers in"):
            env.step([10**400, 0, 0])
    finally:
        env.close()


@pytest.mark.parametrize("script, flags", [
    ("train_arm.py", ["--robot", ""]), ("inspect_robot.py", ["--robot", ""]), ("inspect_robot.py", [""]),
    ("oracle.py", ["--robot", ""]),
])
def test_an_empty_robot_name_is_refused_not_replaced_by_the_default(script, flags):
    assert_user_error(run_in_process(script, *flags), "the robot's name is empty")


def test_a_live_board_is_attached_before_and_after_the_launcher_publishes_its_figures(tmp_path):
    from arm_a3c.a3c.live import LiveBoard

    board = LiveBoard.create(tmp_path, 2, 3, 50, 3)
    assert LiveBoard.attach(tmp_path) is not None
    board.publish_run(1000, 500.0, float("nan"))  # no evaluation yet: its success is NaN in the header
    assert LiveBoard.attach(tmp_path) is not None, "a worker starting now would not see the board"


def test_a_recording_the_disk_will_not_take_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import errno

    from arm_a3c.viewer import recording

    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "policy.pt")
    real_add = recording.GifStream.add

    def add_until_full(self, rgb):
        if self.frames == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_add(self, rgb)

    monkeypatch.setattr(recording.GifStream, "add", add_until_full)
    out = tmp_path / "full.gif"
    assert_user_error(run_in_process("view.py", "--checkpoint", str(checkpoint), "--record", str(out), "--frames",
                                     "10"), "writing the recording failed", "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.pt"]
