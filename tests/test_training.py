"""A real, short A3C training run of the light arm with 2 workers, as a user starts it: it learns, writes
every file of its run directory, and evaluate.py reproduces the evaluator's numbers from the checkpoint."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from arm_a3c.config import TrainConfig
from conftest import run_script
from test_cli import assert_user_error

TRAIN_STEPS = 300_000  # about a minute and a half on 2 cores
# The evaluator's first evaluation starts when its process is up; the workers may have taken a few thousand steps
# by then (1,160 were seen in CI). A slightly trained first evaluation only makes the improvement checks harder.
EARLY_STEPS = 5_000


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "light"
    result = run_script(
        "train_arm.py", "--robot", "light_arm", "--workers", "2", "--max-steps", str(TRAIN_STEPS),
        "--max-minutes", "8", "--target-success", "1.01", "--eval-every-steps", "100000",
        "--eval-episodes", "30", "--run-dir", str(run_dir), "--seed", "3", timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return run_dir, result


def test_training_writes_every_file_of_the_run_directory(short_run):
    run_dir, result = short_run
    for name in ("config.json", "checkpoints/latest.pt", "checkpoints/best.pt", "metrics.csv",
                 "learning_curve.png", "summary.json"):
        assert (run_dir / name).is_file(), f"{name} missing"
    assert list((run_dir / "tb").glob("events.out.tfevents.*")), "no TensorBoard log"
    assert (run_dir / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert config.robot == "light_arm" and config.workers == 2 and config.max_steps == TRAIN_STEPS

    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("robot", "success_rate", "best_success_rate", "env_steps", "wall_seconds", "steps_per_second"):
        assert key in summary
    assert summary["robot"] == "light_arm"
    assert summary["env_steps"] >= TRAIN_STEPS
    assert "step budget" in summary["stop_reason"] and "stopped: the step budget" in result.stdout
    assert summary["best_success_rate"] >= summary["success_rate"]
    assert summary["optimizer_steps"] > 0.9 * TRAIN_STEPS / config.n_steps, "updates went missing"


def test_training_lowers_the_final_distance_clearly_below_the_untrained_policy(short_run):
    run_dir, _ = short_run
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert len(rows) >= 3
    untrained, final = rows[0], rows[-1]
    assert int(untrained["env_steps"]) < EARLY_STEPS, "the first evaluation should be of the (nearly) untrained policy"
    before, after = float(untrained["mean_final_distance_m"]), float(final["mean_final_distance_m"])
    assert after < 0.6 * before, f"mean final distance {before:.3f} m -> {after:.3f} m"


def test_evaluate_reproduces_the_evaluators_numbers_from_the_checkpoint(short_run):
    run_dir, _ = short_run
    for name in ("best.pt", "latest.pt"):
        checkpoint = run_dir / "checkpoints" / name
        stored = torch.load(checkpoint, weights_only=True)["eval"]
        result = run_script("evaluate.py", "--checkpoint", str(checkpoint))
        assert result.returncode == 0, result.stderr
        reproduced = json.loads(result.stdout)
        assert reproduced["episodes"] == stored["episodes"] == 30
        assert reproduced["success_rate"] == stored["success_rate"]
        assert reproduced["mean_final_distance_m"] == pytest.approx(stored["mean_final_distance_m"], abs=1e-9)


@pytest.mark.parametrize("flags, fragment", [
    (["--workers", "0"], "--workers must be at least 1"),
    (["--lr", "-1"], "--lr must be positive"),
    (["--lr", "0"], "--lr must be positive"),
    (["--reward-scale", "nan"], "--reward-scale must be a finite number"),
    (["--lr", "fast"], "--lr"),
    (["--robot", "my_arm"], "unknown robot 'my_arm'"),
    (["--urdf", "/nowhere/arm.urdf"], "not found"),
])
def test_bad_training_flags_are_one_line_errors(flags, fragment):
    assert_user_error(run_script("train_arm.py", *flags), fragment)


def test_evaluate_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a checkpoint")
    assert_user_error(run_script("evaluate.py", "--checkpoint", str(bogus)), "notes.pt", "not a readable")
    assert_user_error(run_script("evaluate.py", "--checkpoint", str(tmp_path / "gone.pt")), "not found")
