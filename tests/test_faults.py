"""Faults: real short trainings that are interrupted, terminated, have workers killed, run out of disk, and are
resumed; checkpoints killed mid-write or crafted to run code; a worker fed NaN rewards."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import (GRIPPER_ARM, REPO, UNTIL_STOPPED, Reports, assert_user_error, checkpoint_steps,
                     pid_named, run_in_process, signal_and_wait, start_training, summary_of, survivors,
                     wait_until_training, write_untrained_checkpoint)

from arm_a3c.a3c.checkpoint import load_checkpoint, remove_stale_temporaries
from arm_a3c.errors import UserError

STOP_WITHIN_S = 8.0  # measured 4.0-5.2 s here (final evaluation ~2.3 s, files ~1.5 s, exit ~1.3 s): a bound against hangs, not a speed target
FAULTS = Path(__file__).resolve().parent / "faults"  # a sitecustomize.py that injects faults when asked


# ---- stopping and resuming ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_sigterm_and_ctrl_c_stop_within_8_seconds_with_a_final_checkpoint_and_resume_continues_the_run(tmp_path):
    """SIGTERM stops a run that replaced an old one (--force); its resumption is stopped by Ctrl-C; both stop
    cleanly within 8 seconds (a bound against hangs), and the resumed session carries on the first one's counts, metrics and curves."""
    from arm_a3c.a3c.rundir import RUN_FILES, RUN_FORMAT

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"format": RUN_FORMAT, "files": list(RUN_FILES)}))
    (run_dir / "config.json").write_text("{}")
    (run_dir / "metrics.csv").write_text("an old run's metrics\n")
    process = start_training(run_dir, "--force", *UNTIL_STOPPED, "--eval-every-steps", "20000")
    children = wait_until_training(process, run_dir)
    for pid in children:  # one BLAS thread each: their own pools fought over the cores (23 ms products, not 0.2)
        environ = dict(item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if item)
        assert environ.get(b"OPENBLAS_NUM_THREADS") == b"1" and environ.get(b"OMP_NUM_THREADS") == b"1", children[pid]
    time.sleep(1)

    err, elapsed = signal_and_wait(process, os.kill, signal.SIGTERM)  # what `docker stop` sends: the launcher only

    assert process.returncode == 0, err[-2000:]
    assert elapsed <= STOP_WITHIN_S, f"took {elapsed:.1f} s to stop"
    assert "Traceback" not in err
    assert not survivors(children), "child processes survived"
    first = summary_of(run_dir)
    assert first["stop_reason"] == "stopped by SIGTERM"
    assert "test_success_rate" not in first, "a stop asked for by a signal skips the held-out test (it takes time)"
    assert "an old run" not in (run_dir / "metrics.csv").read_text()
    saved = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert saved["env_steps"] == first["env_steps"] > 0
    rows_before = (run_dir / "metrics.csv").read_text().splitlines()

    process = start_training(run_dir, "--resume", str(run_dir), *UNTIL_STOPPED)
    children = wait_until_training(process, run_dir)
    deadline = time.monotonic() + 60
    while checkpoint_steps(run_dir) <= saved["env_steps"]:
        assert time.monotonic() < deadline and process.poll() is None, "the resumed run wrote no new checkpoint"
        time.sleep(0.25)

    err, elapsed = signal_and_wait(process, os.killpg, signal.SIGINT)  # what Ctrl-C in a terminal does

    assert process.returncode == 0, err[-2000:]
    assert elapsed <= STOP_WITHIN_S, f"took {elapsed:.1f} s to stop"
    assert "Traceback" not in err
    assert not survivors(children), "child processes survived"
    assert f"resuming light_arm from {saved['env_steps']:,} steps" in process.stdout_text
    second = summary_of(run_dir)
    assert second["stop_reason"] == "interrupted by the user"
    assert second["resumed_from_steps"] == saved["env_steps"] < second["env_steps"]
    assert second["wall_seconds"] > first["wall_seconds"]
    resumed = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert resumed["env_steps"] == second["env_steps"]
    # The shared optimizer's step count and the normaliser's count carried on from the checkpoint.
    more = second["env_steps"] - saved["env_steps"]
    saved_updates, resumed_updates = int(saved["optimizer"]["step"]), int(resumed["optimizer"]["step"])
    assert resumed_updates >= saved_updates + 0.9 * more / 20
    assert float(resumed["normalizer"]["count"]) >= float(saved["normalizer"]["count"]) + 0.9 * more
    # metrics.csv keeps the first session's rows and continues after them.
    rows_after = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows_after[:len(rows_before)] == rows_before and len(rows_after) > len(rows_before)
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) >= 2, "TensorBoard curves did not continue"


@pytest.mark.slow
def test_a_second_ctrl_c_exits_at_once(tmp_path):
    run_dir = tmp_path / "run"
    process = start_training(run_dir, *UNTIL_STOPPED, workers=1)
    children = wait_until_training(process, run_dir)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.3)  # the clean stop (joining, final evaluation) takes longer than this
    err, elapsed = signal_and_wait(process, os.killpg, signal.SIGINT, timeout=30)

    assert process.returncode == 130, err[-2000:]
    assert elapsed < 1.5, f"took {elapsed:.1f} s to exit"
    assert "exiting at once" in err and "Traceback" not in err
    assert not survivors(children), "child processes survived"
    load_checkpoint(run_dir / "checkpoints" / "latest.pt")  # the last evaluated checkpoint is still good


@pytest.mark.slow
def test_a_killed_launcher_takes_its_children_with_it_and_the_run_resumes(tmp_path):
    run_dir = tmp_path / "run"
    process = start_training(run_dir, *UNTIL_STOPPED, "--eval-every-steps", "20000", workers=1)
    children = wait_until_training(process, run_dir)
    time.sleep(1)
    os.kill(process.pid, signal.SIGKILL)  # no chance to clean up: a crash, the OOM killer, a lost node
    process.communicate(timeout=30)
    assert not survivors(children, grace=5.0), "orphaned children kept running"
    saved = load_checkpoint(run_dir / "checkpoints" / "latest.pt")["env_steps"]

    result = run_in_process("train_arm.py", "--resume", str(run_dir), "--max-steps", str(saved + 10_000),
                            "--test-episodes", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = summary_of(run_dir)
    assert summary["resumed_from_steps"] == saved and summary["env_steps"] >= saved + 10_000


# ---- worker faults ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_killed_worker_is_replaced_within_seconds(training_running):
    process = training_running.process
    victim = pid_named(process, "a3c-worker-2")
    os.kill(victim, signal.SIGKILL)
    training_running.killed_workers.append(victim)
    replacement = pid_named(process, "a3c-worker-2", not_pid=victim, timeout=10)  # noticed within seconds
    assert replacement != victim


def test_a_run_that_lost_a_worker_finishes_with_consistent_counts(training_finished):
    """The shared training, after `test_a_killed_worker_is_replaced_within_seconds` killed one of its workers."""
    kills = len(training_finished.killed_workers)
    assert training_finished.stderr().count("worker 2 died (killed by SIGKILL); starting a replacement") == kills
    summary = training_finished.summary()
    assert summary["worker_restarts"] == kills and summary["error"] is None
    assert "step budget" in summary["stop_reason"]
    final = load_checkpoint(training_finished.run_dir / "checkpoints" / "latest.pt")
    assert final["env_steps"] == summary["env_steps"]
    # Every counted rollout of 20 steps made one update (Hogwild may lose a step-count increment now and then)
    # and fed the normaliser; a killed worker loses at most its rollout in progress.
    assert summary["optimizer_steps"] == pytest.approx(summary["env_steps"] / 20, rel=0.02)
    assert float(final["normalizer"]["count"]) == pytest.approx(summary["env_steps"], abs=3 * 20)


@pytest.mark.slow
def test_a_worker_that_keeps_dying_stops_the_run_with_a_final_checkpoint_and_an_error(tmp_path):
    run_dir = tmp_path / "run"
    process = start_training(run_dir, *UNTIL_STOPPED, workers=1)
    children = wait_until_training(process, run_dir)
    victim = None
    for _ in range(6):
        victim = pid_named(process, "a3c-worker-1", not_pid=victim)
        os.kill(victim, signal.SIGKILL)
    out, err = process.communicate(timeout=120)

    assert process.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    assert "error: the run stopped because worker 1 died 6 times within 60 s" in err
    assert "--resume" in err.strip().splitlines()[-1]
    assert "held-out test not run (the run was stopped by an error)" in out and "--test" in out
    summary = summary_of(run_dir)
    assert "worker 1 died 6 times" in summary["error"] and summary["worker_restarts"] == 5
    assert "test_success_rate" not in summary  # a failed run says so at once, not after testing its weights
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["env_steps"] == summary["env_steps"]
    assert not survivors(children), "child processes survived"


@pytest.mark.slow
def test_a_full_disk_keeps_the_previous_checkpoint_and_stops_with_one_line(tmp_path):
    run_dir, full = tmp_path / "run", tmp_path / "disk-is-full"
    process = start_training(run_dir, *UNTIL_STOPPED, "--eval-every-steps", "5000",
                             env={"PYTHONPATH": str(FAULTS), "ARM_A3C_TEST_DISK_FULL": str(full)})
    wait_until_training(process, run_dir)
    time.sleep(1)
    full.touch()  # from now on every checkpoint write fails with ENOSPC at fsync
    time.sleep(0.5)
    before = load_checkpoint(run_dir / "checkpoints" / "latest.pt")["env_steps"]
    # Two evaluations (one per 5,000 steps) try to write: wait for the steps, not a fixed time, so a
    # machine busy with other work (fewer steps per second) does not send the Ctrl-C before any of them.
    from arm_a3c.a3c.live import LiveBoard
    board, deadline = LiveBoard.attach(run_dir), time.monotonic() + 60
    while board.run_figures()["global_steps"] < before + 10_000 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # the evaluation of the last 5,000 steps
    err, _ = signal_and_wait(process, os.killpg, signal.SIGINT)

    assert process.returncode == 2, err[-2000:]
    assert "Traceback" not in err
    assert "warning: cannot write checkpoint" in err and "training goes on" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: cannot write checkpoint") and "No space left on device" in last
    assert "intact" in last and f"--resume {run_dir}" in last
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["env_steps"] == before
    assert not list((run_dir / "checkpoints").glob("*.tmp")), "a temporary file was left behind"


# ---- checkpoints --------------------------------------------------------------------------------------------

def _write_checkpoints_forever(path: Path, written) -> None:
    """A process that writes a large checkpoint over and over, saying when the first one is complete."""
    from arm_a3c.a3c.checkpoint import save_checkpoint

    payload = {"model": {"w": torch.randn(8_000_000)}, "optimizer": {}, "normalizer": {}, "config": {},
               "robot": {"name": "arm", "obs_dim": 1, "action_dim": 1, "controlled_joints": []}}
    for step in range(1, 10**6):
        save_checkpoint(path, {**payload, "env_steps": step})
        if step == 1:
            written.set()


def test_killing_a_process_while_it_writes_checkpoints_leaves_the_last_one_loadable(tmp_path):
    import multiprocessing

    fork = multiprocessing.get_context("fork")  # a copy of this process: no seconds spent importing torch again
    path = tmp_path / "checkpoints" / "latest.pt"
    rng, mid_write = random.Random(0), 0
    for _ in range(6):
        written = fork.Event()
        writer = fork.Process(target=_write_checkpoints_forever, args=(path, written), daemon=True)
        writer.start()
        assert written.wait(60), "the writer wrote no checkpoint"
        time.sleep(rng.uniform(0.05, 0.5))
        writer.kill()
        writer.join()
        mid_write += bool(list(path.parent.glob("*.tmp")))
        assert load_checkpoint(path)["env_steps"] >= 1
        remove_stale_temporaries(path.parent)
        assert not list(path.parent.glob("*.tmp"))
    assert mid_write >= 1, "no kill landed in the middle of a write: the test proved nothing"


def test_a_checkpoint_crafted_to_run_code_is_refused_and_the_code_does_not_run(tmp_path):
    marker = tmp_path / "exploited"

    class Exploit:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "model": Exploit()}, path)
    with pytest.raises(UserError, match="evil.pt"):
        load_checkpoint(path)
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate.py"), "--checkpoint", str(path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "evil.pt" in result.stderr and "not a safe arm-a3c checkpoint" in result.stderr
    assert "weights_only" not in result.stderr, "torch's advice to load it unsafely is not repeated"
    assert not marker.exists(), "the checkpoint ran code"


# ---- bad input ----------------------------------------------------------------------------------------------

def old_run(run_dir: Path, robot: str = "light_arm", checkpoint: bool = True) -> Path:
    """A run directory as train_arm.py leaves it (config and an untrained checkpoint), without training."""
    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.a3c.rundir import RUN_FILES, RUN_FORMAT

    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"format": RUN_FORMAT, "files": list(RUN_FILES)}))
    (run_dir / "config.json").write_text(json.dumps(TrainConfig(robot=robot, run_dir=str(run_dir)).to_dict()))
    if checkpoint:
        write_untrained_checkpoint(robot, run_dir / "checkpoints" / "latest.pt")
    return run_dir


def test_a_run_directory_holding_a_run_is_refused_without_resume_or_force(tmp_path):
    run_dir = old_run(tmp_path / "run")
    assert_user_error(run_in_process("train_arm.py", "--robot", "light_arm", "--run-dir", str(run_dir)),
                      str(run_dir), "already holds a run", f"--resume {run_dir}", "--force")


def test_a_run_from_before_run_json_is_resumed_but_never_deleted_by_force(tmp_path):
    run_dir = old_run(tmp_path / "run")
    (run_dir / "run.json").unlink()
    result = run_in_process("train_arm.py", "--robot", "light_arm", "--run-dir", str(run_dir), "--force")
    assert_user_error(result, "config.json, checkpoints/latest.pt", "did not write", f"--resume {run_dir} continues it")
    assert (run_dir / "checkpoints" / "latest.pt").is_file()


def test_an_unwritable_run_directory_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    assert_user_error(run_in_process("train_arm.py", "--robot", "light_arm",
                                     "--run-dir", str(tmp_path / "a-file" / "run")),
                      "cannot write to run directory", "--run-dir")


@pytest.mark.parametrize("case, flags, fragments", [
    ("nothing there", [], ["no run there", "config.json missing"]),
    ("no checkpoint", [], ["no checkpoint yet", "--force"]),
    ("truncated checkpoint", [], ["latest.pt", "not a readable arm-a3c checkpoint"]),
    ("other robot", ["--robot", "kuka_iiwa"], ["--robot cannot change", "light_arm"]),
    ("other run dir", ["--run-dir", "elsewhere"], ["--run-dir elsewhere", "name different runs"]),
    ("bad budget", ["--max-minutes", "-1"], ["--max-minutes must be"]),
])
def test_resume_mistakes_are_one_line_errors(tmp_path, case, flags, fragments):
    run_dir = tmp_path / "run"
    if case != "nothing there":
        old_run(run_dir, checkpoint=case != "no checkpoint")
    if case == "truncated checkpoint":
        latest = run_dir / "checkpoints" / "latest.pt"
        latest.write_bytes(latest.read_bytes()[:2000])
    assert_user_error(run_in_process("train_arm.py", "--resume", str(run_dir), *flags), *fragments)


def test_a_checkpoint_for_another_robot_is_refused_naming_the_mismatch(write_urdf, tmp_path):
    urdf = write_urdf(GRIPPER_ARM, "my_arm")
    checkpoint = write_untrained_checkpoint(str(urdf), tmp_path / "my_arm.pt")
    light_arm = (REPO / "assets" / "light_arm.urdf").read_text()
    urdf.write_text(light_arm)  # someone replaced the robot the checkpoint was trained for
    assert_user_error(run_in_process("evaluate.py", "--checkpoint", str(checkpoint)),
                      "my_arm.pt", "was trained for controlled joints ['yaw', 'elbow']", "now ['base_yaw'")


# ---- numerical faults ---------------------------------------------------------------------------------------


def test_a_worker_fed_nan_rewards_skips_and_counts_those_updates_and_the_weights_stay_finite(monkeypatch, tmp_path):
    import torch.multiprocessing as mp

    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.a3c.live import LiveBoard
    from arm_a3c.a3c.metrics import MetricsLog, read_metrics
    from arm_a3c.a3c.monitor import Monitor
    from arm_a3c.a3c.shared import SharedMemoryLink, build_shared
    from arm_a3c.a3c.worker import UPDATE_REPORT_EVERY, train_worker
    from arm_a3c.envs.arm_env import ArmEnv

    real_step, calls = ArmEnv.step, [0]

    def step_with_nan(self, action):
        obs, reward, terminated, truncated, info = real_step(self, action)
        calls[0] += 1
        return obs, (float("nan") if calls[0] % 100 == 0 else reward), terminated, truncated, info

    monkeypatch.setattr(ArmEnv, "step", step_with_nan)
    cfg = TrainConfig(robot="light_arm", workers=1, n_steps=20)
    probe = ArmEnv("light_arm")
    shared = build_shared(cfg, probe.obs_dim, probe.robot.dof, mp.get_context("spawn"))
    probe.close()
    shared.launcher_pid = os.getppid()  # the worker runs in this process, whose parent stands in for the launcher
    reports = Reports(shared, reports=3)
    train_worker(0, cfg, SharedMemoryLink(shared, 0, reports.send), seed=0, run_dir=None)

    updates = 3 * UPDATE_REPORT_EVERY
    skipped = sum(e[2] for e in reports.events if e[0] == "update")
    assert skipped == updates // 5, "every fifth rollout of 20 steps held a NaN reward"
    assert shared.optimizer.step_count() == updates - skipped
    assert all(torch.isfinite(p).all() for p in shared.model.parameters())
    worker_cpu = [e[5] for e in reports.events if e[0] == "update"]
    assert all(seconds > 0 for seconds in worker_cpu), "each report brings the CPU the worker spent since the last"

    # The launcher's side: the counts reach metrics.csv.
    board = LiveBoard.create(tmp_path, 1, 3, 50, 3)
    log = MetricsLog(tmp_path)
    monitor = Monitor(cfg, shared, log, board, None)
    for event in reports.events:
        monitor.handle(event)
    monitor.log_tick()
    monitor.record_eval({"env_steps": shared.global_steps(), "success_rate": 0.0, "mean_final_distance_m": 0.3,
                         "mean_return": -10.0})
    log.close()
    row = read_metrics(tmp_path / "metrics.csv")[-1]
    assert row["skipped_updates"] == skipped
    assert row["worker_cpu_seconds"] == pytest.approx(sum(worker_cpu), abs=0.01)


def test_a_worker_killed_while_publishing_its_episode_does_not_hide_its_replacements_episodes(tmp_path):
    import numpy as np

    from arm_a3c.a3c.live import LiveBoard

    board = LiveBoard.create(tmp_path, 1, 3, 50, 3)
    recorder = board.recorder()
    recorder.record([0.1, 0.2, 0.3], [0.0] * 3, [0.5, 0.0, 0.4])
    board.publish(0, 7, -1.0, False, 0.3, recorder)
    board._slot(0)[0] += 1  # killed after marking its slot "being written", before finishing
    assert board.latest(0) is None, "a half-written episode must not be shown"
    recorder.record([0.4, 0.5, 0.6], [1.0] * 3, [0.4, 0.1, 0.4])
    board.publish(0, 1, -2.0, True, 0.2, recorder)  # the replacement's first episode
    episode = board.latest(0)
    assert episode is not None and episode.episode == 1 and episode.success
    np.testing.assert_allclose(episode.joint_positions, [[0.4, 0.5, 0.6]])
    np.testing.assert_allclose(episode.ee_positions, [[1.0, 1.0, 1.0]])
    np.testing.assert_allclose(episode.target, [0.4, 0.1, 0.4])
