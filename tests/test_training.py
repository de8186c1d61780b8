"""The session's real A3C training of the light arm with 2 workers (`conftest.shared_training`), as a user starts
it: it learns, writes every file of its run directory, and evaluate.py reproduces the evaluator's numbers from
the checkpoint; a checkpoint written before the library's restructuring still loads, evaluates and resumes."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import REPO, SHARED_STEPS, SHARED_TEST_EPISODES, assert_user_error, run_in_process, run_script

from arm_a3c.a3c.checkpoint import load_checkpoint
from arm_a3c.a3c.config import TrainConfig
from arm_a3c.envs.arm_env import ArmReachEnv, EnvConfig, make_env

# The evaluator's first evaluation starts when its process is up; the workers may have taken a few thousand steps
# by then (1,160 were seen in CI). A slightly trained first evaluation only makes the improvement checks harder.
EARLY_STEPS = 5_000
OLD_CHECKPOINT = Path(__file__).resolve().parent / "fixtures" / "light_arm_0e80d1b.pt"  # written by commit 0e80d1b


def test_training_writes_every_file_of_the_run_directory(training_finished):
    run_dir = training_finished.run_dir
    for name in ("config.json", "checkpoints/latest.pt", "checkpoints/best.pt", "metrics.csv",
                 "learning_curve.png", "summary.json"):
        assert (run_dir / name).is_file(), f"{name} missing"
    assert list((run_dir / "tb").glob("events.out.tfevents.*")), "no TensorBoard log"
    assert (run_dir / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert config.robot == "light_arm" and config.workers == 2 and config.max_steps == SHARED_STEPS
    env = ArmReachEnv("light_arm")  # the run records the home the rule chose and the tool point it used
    assert config.home == env.robot.home.tolist() and config.ee_offset_m == [0.0, 0.0, 0.0]
    env.close()

    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("robot", "success_rate", "best_success_rate", "env_steps", "wall_seconds", "steps_per_second"):
        assert key in summary
    assert summary["robot"] == "light_arm"
    assert summary["env_steps"] >= SHARED_STEPS
    assert "step budget" in summary["stop_reason"] and "stopped: the step budget" in training_finished.stdout()
    assert summary["best_success_rate"] >= summary["success_rate"]
    assert summary["optimizer_steps"] > 0.9 * SHARED_STEPS / config.n_steps, "updates went missing"


def test_training_lowers_the_final_distance_clearly_below_the_untrained_policy(training_finished):
    run_dir = training_finished.run_dir
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert len(rows) >= 3
    untrained, final = rows[0], rows[-1]
    assert int(untrained["env_steps"]) < EARLY_STEPS, "the first evaluation should be of the (nearly) untrained policy"
    before, after = float(untrained["mean_final_distance_m"]), float(final["mean_final_distance_m"])
    assert after < 0.6 * before, f"mean final distance {before:.3f} m -> {after:.3f} m"


def test_the_run_accounts_for_the_cpu_of_its_workers_evaluator_and_launcher(training_finished):
    """metrics.csv's CPU columns only grow, the workers' and the evaluator's between the evaluations, and the
    cores they add up to fit in the machine (a part counted twice would not)."""
    import os

    from arm_a3c.a3c.metrics import CPU_PARTS, cpu_cores, read_metrics

    run_dir = training_finished.run_dir
    rows = read_metrics(run_dir / "metrics.csv")
    columns = [f"{part}_cpu_seconds" for part in CPU_PARTS]
    for earlier, later in zip(rows, rows[1:]):
        assert all(later[c] >= earlier[c] for c in columns), (earlier, later)
    steady = rows[:-1]  # the last row is the launcher's final evaluation
    assert steady[-1]["worker_cpu_seconds"] > steady[0]["worker_cpu_seconds"]
    assert steady[-1]["evaluator_cpu_seconds"] > steady[0]["evaluator_cpu_seconds"], "the evaluator's evaluations"
    cores = cpu_cores(steady)
    assert cores["worker"] > 0.2 and cores["evaluator"] > 0
    assert sum(cores.values()) < 1.15 * os.cpu_count()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["cpu_cores"]) == set(CPU_PARTS) and summary["cpu_cores"]["worker"] > 0.2
    assert sum(summary["cpu_cores"].values()) < 1.15 * os.cpu_count()


@pytest.mark.slow
def test_evaluate_reproduces_the_evaluators_numbers_from_the_checkpoint(training_finished):
    run_dir = training_finished.run_dir
    for name in ("best.pt", "latest.pt"):
        checkpoint = run_dir / "checkpoints" / name
        stored = torch.load(checkpoint, weights_only=True)["eval"]
        result = run_in_process("evaluate.py", "--checkpoint", str(checkpoint))
        assert result.returncode == 0, result.stderr
        reproduced = json.loads(result.stdout)
        assert reproduced["episodes"] == stored["episodes"] == 30
        assert reproduced["success_rate"] == stored["success_rate"]
        assert reproduced["mean_final_distance_m"] == pytest.approx(stored["mean_final_distance_m"], abs=1e-9)


@pytest.mark.slow
def test_the_summary_holds_best_pts_held_out_test_and_evaluate_test_reproduces_it(training_finished):
    run_dir = training_finished.run_dir
    summary = training_finished.summary()
    assert summary["test_checkpoint"] == "checkpoints/best.pt"
    n = SHARED_TEST_EPISODES
    assert summary["test_episodes"] == n and summary["test_seed"] == 5_000_000
    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    evaluator_seeds = set(range(config.eval_seed, config.eval_seed + config.eval_episodes))
    assert not evaluator_seeds & set(range(summary["test_seed"], summary["test_seed"] + TrainConfig().test_episodes))
    assert "held-out test: best.pt succeeded on" in training_finished.stdout()
    result = run_in_process("evaluate.py", "--checkpoint", str(run_dir / "checkpoints" / "best.pt"), "--test")
    assert result.returncode == 0, result.stderr
    reproduced = json.loads(result.stdout)
    assert reproduced["episodes"] == n and reproduced["seed"] == 5_000_000  # the run's own held-out episodes
    assert reproduced["success_rate"] == summary["test_success_rate"]
    assert reproduced["mean_final_distance_m"] == pytest.approx(summary["test_mean_final_distance_m"], abs=1e-9)
    # the safety figures: the light arm's joints (4 rad/s in its URDF) never went over their limits
    assert reproduced["max_speed_fraction"] == summary["test_max_speed_fraction"]
    assert 0 < summary["test_max_speed_fraction"] <= 1.0 + 1e-6 and summary["test_over_speed_rate"] == 0.0
    assert 0 <= summary["test_self_contact_rate"] <= 1 and 0 <= summary["test_floor_contact_rate"] <= 1
    assert reproduced["self_contact_rate"] == summary["test_self_contact_rate"]
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))  # and so every evaluation's, in metrics.csv
    assert all(0 < float(row["max_speed_fraction"]) <= 1.0 + 1e-6 and float(row["over_speed_rate"]) == 0.0
               for row in rows)
    assert run_in_process("evaluate.py", "--checkpoint", "x.pt", "--test", "--seed", "3").returncode == 2
    # best.pt on the robustness grid, played on the first held-out episodes (at most 100; this run has fewer): its
    # nominal point is those episodes' plain evaluation
    grid = summary["robustness"]
    assert grid["checkpoint"] == "checkpoints/best.pt" and grid["episodes"] == min(n, 100) and grid["seed"] == 5_000_000
    assert {"nominal_joint_noise", "nominal_velocity_noise", "nominal_goal_noise"} <= set(grid) and "robot" not in grid
    assert [(p["latency_steps"], p["noise"], p["mass_scale"], p["gain_scale"]) for p in grid["points"]] == [
        (0, 0.0, 1.0, 1.0), (1, 0.0, 1.0, 1.0), (2, 0.0, 1.0, 1.0), (3, 0.0, 1.0, 1.0), (0, 1.0, 1.0, 1.0),
        (0, 2.0, 1.0, 1.0), (0, 0.0, 0.8, 1.0), (0, 0.0, 1.2, 1.0), (0, 0.0, 1.0, 0.8), (0, 0.0, 1.0, 1.2)]
    first = json.loads(run_in_process("evaluate.py", "--checkpoint", str(run_dir / "checkpoints" / "best.pt"),
                                      "--test", "--episodes", str(min(n, 100))).stdout)
    assert grid["points"][0]["success_rate"] == first["success_rate"]
    assert grid["points"][0]["mean_final_distance_m"] == pytest.approx(first["mean_final_distance_m"], abs=1e-9)
    assert f"robustness of best.pt on {min(n, 100)} held-out episodes" in training_finished.stdout()


@pytest.mark.parametrize("flags, fragment", [
    (["--eval-seed", "5000100"], "overlap the evaluator's"),
    (["--workers", "0"], "--workers must be between 1 and 1024"),
    (["--lr", "-1"], "--lr must be positive"),
    (["--lr", "0"], "--lr must be positive"),
    (["--reward-scale", "nan"], "--reward-scale must be a finite number"),
    (["--lr", "fast"], "--lr"),
    (["--robot", "my_arm"], "unknown robot 'my_arm'"),
    (["--urdf", "/nowhere/arm.urdf"], "not found"),
    (["--target-streak", "0"], "--target-streak must be at least 1"),
])
def test_bad_training_flags_are_one_line_errors(flags, fragment):
    assert_user_error(run_in_process("train_arm.py", *flags), fragment)


def test_evaluate_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a checkpoint")
    assert_user_error(run_in_process("evaluate.py", "--checkpoint", str(bogus)), "notes.pt", "not a readable")
    assert_user_error(run_in_process("evaluate.py", "--checkpoint", str(tmp_path / "gone.pt")), "not found")


def test_a_checkpoint_written_before_the_restructuring_still_evaluates_replays_and_resumes(tmp_path):
    """Checkpoints hold tensors and plain values, no module paths: moving the modules must not orphan them. The
    fixture was written and evaluated (5 episodes) by commit 0e80d1b, before `arm_a3c/` was split into folders."""
    import torch.multiprocessing as mp

    from arm_a3c.a3c.rundir import load_resume_state, restore
    from arm_a3c.a3c.shared import build_shared

    stored = torch.load(OLD_CHECKPOINT, weights_only=True)
    result = run_script("evaluate.py", "--checkpoint", str(OLD_CHECKPOINT))
    assert result.returncode == 0, result.stderr
    reproduced = json.loads(result.stdout)
    assert reproduced["episodes"] == stored["eval"]["episodes"] == 5
    assert reproduced["success_rate"] == stored["eval"]["success_rate"]
    assert reproduced["mean_final_distance_m"] == pytest.approx(stored["eval"]["mean_final_distance_m"], abs=1e-9)

    gif = tmp_path / "old.gif"
    replayed = run_in_process("view.py", "--checkpoint", str(OLD_CHECKPOINT), "--record", str(gif), "--frames", "3")
    assert replayed.returncode == 0, replayed.stderr

    # What --resume does before any process starts: the weights, Adam's moments and step count, the normaliser.
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(OLD_CHECKPOINT, run_dir / "checkpoints" / "latest.pt")
    cfg = TrainConfig.from_dict(stored["config"])
    env = make_env(cfg)
    assert env.robot.home.tolist() == [0.0, 0.0, 0.0]  # trained before homes existed: from zero, as then
    assert env.config.action_cost == 0.01  # at the action cost of then (it enters the returns evaluate.py reports)
    resumed = load_resume_state(run_dir, env)
    shared = build_shared(cfg, env.obs_dim, env.robot.dof, mp.get_context("spawn"), run_dir)
    env.close()
    restore(shared, resumed)
    assert shared.global_steps() == stored["env_steps"] == 1234
    assert shared.optimizer.step_count() == int(stored["optimizer"]["step"]) == 3
    weights = shared.model.state_dict()
    assert all(torch.equal(weights[name], value) for name, value in stored["model"].items())
    assert torch.equal(shared.optimizer.exp_avg, stored["optimizer"]["exp_avg"])


@pytest.mark.slow
def test_a_streak_at_the_target_makes_a_candidate_that_fresh_episodes_confirm_before_the_run_stops(tmp_path):
    """A target every evaluation meets (0%) with a streak of 3: the third evaluation is the first candidate, it
    plays 5 fresh episodes from --confirm-seed, their bound confirms it, the run stops and that checkpoint is
    best.pt (the final weights, evaluated after it, do not replace it). metrics.csv, summary.json and the stop
    line say what the rule saw."""
    run_dir = tmp_path / "streak"
    result = run_in_process("train_arm.py", "--robot", "light_arm", "--workers", "1", "--target-success", "0",
                            "--target-streak", "3", "--confirm-episodes", "5", "--confirm-seed", "2000000",
                            "--eval-every-steps", "2000", "--eval-episodes", "2", "--max-minutes", "2",
                            "--test-episodes", "0", "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert "reached the target 0% and was confirmed on 5 fresh episodes" in result.stdout, result.stdout[-1500:]
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    confirmed = [row for row in rows if row["confirm_episodes"]]
    # Three evaluations, the third confirmed, then the final one; none after the confirmation: the evaluator
    # stops evaluating, and the launcher stops the run.
    assert len(rows) == 4 and rows.index(confirmed[0]) == 2 and len(confirmed) == 1, rows
    assert confirmed[0]["confirm_episodes"] == "5" and float(confirmed[0]["confirm_lower_bound"]) >= 0
    rule = json.loads((run_dir / "summary.json").read_text())["stop_rule"]
    assert rule["confirmed"] and rule["target_streak"] == 3 and rule["confirm_episodes"] == 5
    assert [(c["seed"], c["episodes"]) for c in rule["confirmations"]] == [(2_000_000, 5)]
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert best["eval"]["confirmation"]["confirmed"] and best["env_steps"] == int(confirmed[0]["env_steps"])
    assert best["eval"]["next_confirm_seed"] == 2_000_005  # a resumed run confirms on the seeds after these


def test_a_second_training_in_one_process_finds_its_own_assets_folder(tmp_path):
    """Two trainings in one process (a notebook, a script calling the library twice): the second one's --assets
    folder reaches its children, though they are forked from the fork server the first one started (which has the
    environment of that moment)."""
    short = ("--workers", "1", "--max-steps", "400", "--eval-episodes", "2", "--test-episodes", "0")
    first = run_in_process("train_arm.py", "--robot", "light_arm", *short, "--run-dir", str(tmp_path / "first"))
    assert first.returncode == 0, first.stderr[-2000:]
    mine = tmp_path / "my_robots"
    mine.mkdir()
    (mine / "my_arm.urdf").write_text((REPO / "assets" / "light_arm.urdf").read_text())
    second = run_in_process("train_arm.py", "--assets", str(mine), "--robot", "my_arm", *short,
                            "--run-dir", str(tmp_path / "second"))
    assert second.returncode == 0 and "died" not in second.stderr, second.stderr[-2000:]
    assert json.loads((tmp_path / "second" / "summary.json").read_text())["env_steps"] >= 400


def test_a_bad_action_cost_is_one_line(tmp_path):
    assert_user_error(run_in_process("train_arm.py", "--action-cost", "-1", "--run-dir", str(tmp_path / "x")),
                      "--action-cost must be between 0 and 1e+06")


def test_the_environment_settings_of_a_run_reach_every_environment_built_from_it():
    env = make_env(TrainConfig(robot="light_arm", action_cost=0.5))
    assert env.config.action_cost == 0.5
    env.close()
    env = make_env(TrainConfig(robot="light_arm"))
    assert env.config.action_cost == EnvConfig().action_cost == 1.0
    env.close()


def test_evaluate_robustness_plays_the_same_episodes_on_the_latency_and_noise_grid_and_draws_it(tmp_path):
    """An untrained light arm, 3 episodes per point: every point of the grid (latency, noise, masses and gains) is
    played on the same episodes (the nominal point equals a plain evaluation of them), the picture is written, and
    a picture the user owns is not replaced."""
    from helpers import write_untrained_checkpoint

    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "untrained.pt")
    picture = tmp_path / "robustness.png"
    result = run_in_process("evaluate.py", "--checkpoint", str(checkpoint), "--episodes", "3", "--seed", "7",
                            "--robustness", "--plot", str(picture))
    assert result.returncode == 0, result.stderr
    grid = json.loads(result.stdout)
    points = [(p["latency_steps"], p["noise"], p["mass_scale"], p["gain_scale"]) for p in grid["points"]]
    assert points == [(0, 0.0, 1.0, 1.0), (1, 0.0, 1.0, 1.0), (2, 0.0, 1.0, 1.0), (3, 0.0, 1.0, 1.0),
                      (0, 1.0, 1.0, 1.0), (0, 2.0, 1.0, 1.0), (0, 0.0, 0.8, 1.0), (0, 0.0, 1.2, 1.0),
                      (0, 0.0, 1.0, 0.8), (0, 0.0, 1.0, 1.2)]
    plain = json.loads(run_in_process("evaluate.py", "--checkpoint", str(checkpoint), "--episodes", "3",
                                      "--seed", "7").stdout)
    assert grid["points"][0]["mean_final_distance_m"] == plain["mean_final_distance_m"]
    assert len({p["mean_final_distance_m"] for p in grid["points"]}) > 1, "latency and noise changed nothing"
    assert "| latency (periods) |" in result.stderr and picture.read_bytes()[:4] == b"\x89PNG"
    mine = tmp_path / "mine.png"
    mine.write_bytes(picture.read_bytes().replace(b"arm-a3c", b"someone"))
    assert_user_error(run_in_process("evaluate.py", "--checkpoint", str(checkpoint), "--episodes", "1",
                                     "--robustness", "--plot", str(mine)), "arm-a3c did not write it")
    assert_user_error(run_in_process("evaluate.py", "--checkpoint", str(checkpoint), "--plot", str(picture)),
                      "--plot draws the robustness grid")
