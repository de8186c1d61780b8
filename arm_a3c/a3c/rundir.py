"""Run directories: making a new run's (refusing one that holds another run, unless told to replace it), and
picking an old run up again (`--resume`): its config, its latest checkpoint and how far it had got."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from arm_a3c.a3c.checkpoint import check_robot, load_checkpoint, remove_stale_temporaries
from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.metrics import read_metrics
from arm_a3c.errors import UserError

CONFIG_FILE = "config.json"
RUN_FILES = ("config.json", "summary.json", "metrics.csv", "learning_curve.png", "live.bin")
RUN_FOLDERS = ("checkpoints", "tb")
FIXED_ON_RESUME = ("task", "robot", "ee_link", "ee_offset_m", "home", "hidden_size")  # what the weights were trained for


def holds_run(path: Path) -> bool:
    return (path / CONFIG_FILE).exists() or (path / "checkpoints").is_dir()


def new_run_dir(cfg: TrainConfig, robot_name: str, force: bool) -> Path:
    """The run directory of a new run, created and checked writable. One that already holds a run is refused
    (its checkpoints would be overwritten) unless `force`, which deletes that run's files (and nothing else)."""
    run_dir = Path(cfg.run_dir or Path("runs") / f"{robot_name}-{datetime.now():%Y%m%d-%H%M%S}")
    if holds_run(run_dir):
        if not force:
            raise UserError(f"{run_dir} already holds a run; pass --resume {run_dir} to continue it, --force to "
                            f"replace it, or another --run-dir")
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        for name in RUN_FOLDERS:
            shutil.rmtree(run_dir / name, ignore_errors=True)
    ensure_writable(run_dir)
    return run_dir


def ensure_writable(run_dir: Path) -> None:
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write to run directory {run_dir} ({err.strerror}); pass --run-dir PATH") from None


def write_config(run_dir: Path, cfg: TrainConfig) -> None:
    try:
        (run_dir / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    except OSError as err:
        raise UserError(f"cannot write {run_dir / CONFIG_FILE} ({err.strerror}); free some disk space") from None


def resume_config(run_dir: Path, overrides: dict) -> TrainConfig:
    """The config of the run in `run_dir`, with the settings the user gave again (`overrides`: only flags
    actually given). Budgets and hyper-parameters may change; what the weights depend on may not."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"--resume {run_dir}: no run there ({CONFIG_FILE} missing); pass a directory that "
                        f"train_arm.py wrote, such as runs/NAME")
    try:
        saved = TrainConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise UserError(f"{path} is not a readable run config ({err}); start a new run instead") from None
    for key in FIXED_ON_RESUME:
        if key in overrides and overrides[key] != getattr(saved, key):
            raise UserError(f"--{key.replace('_', '-')} cannot change when resuming: {run_dir} was trained with "
                            f"{getattr(saved, key)!r}; start a new run for {overrides[key]!r}")
    if overrides.get("run_dir") is not None and Path(overrides["run_dir"]) != run_dir:
        raise UserError(f"--run-dir {overrides['run_dir']} and --resume {run_dir} name different runs; give one")
    changes = {k: v for k, v in overrides.items() if k != "run_dir" and getattr(saved, k) != v}
    if changes.get("backend", "ray") != "ray" and saved.ray_address and "ray_address" not in overrides:
        changes["ray_address"] = None  # the cluster a Ray run joined means nothing to the local backend
    if changes:
        print("resuming with changed settings: " + ", ".join(
            f"{k} {getattr(saved, k)} -> {v}" for k, v in changes.items()), flush=True)
    return dataclasses.replace(saved, **changes, run_dir=str(run_dir))


@dataclass
class Resumed:
    """Where a resumed run picks up: its latest checkpoint and the figures the launcher carries on from."""

    checkpoint: dict
    env_steps: int
    wall_seconds: float
    best_success: float  # what best.pt holds (-1 if none): a new evaluation must beat it to replace best.pt
    metrics_rows: list[dict]  # metrics.csv rows up to the checkpoint (later rows are from lost work)


def load_resume_state(run_dir: Path, env) -> Resumed:
    """Read the latest checkpoint of `run_dir` for `env`'s robot, and clear what a killed run left behind."""
    folder = Path(run_dir) / "checkpoints"
    for stale in remove_stale_temporaries(folder):
        print(f"removed {stale.name}, a checkpoint a killed run had not finished writing", flush=True)
    path = folder / "latest.pt"
    if not path.is_file():
        raise UserError(f"--resume {run_dir}: the run has no checkpoint yet ({path} missing); start it again "
                        f"with --force")
    data = load_checkpoint(path)
    warning = check_robot(path, data["robot"], env)
    if warning:
        print(warning, file=sys.stderr)
    best = -1.0
    if (folder / "best.pt").is_file():
        best_eval = load_checkpoint(folder / "best.pt").get("eval") or {}
        best = best_eval.get("success_rate", -1.0)
    evaluation = data.get("eval") or {}
    steps = int(data["env_steps"])
    rows = []
    if (Path(run_dir) / "metrics.csv").is_file():
        rows = [r for r in read_metrics(Path(run_dir) / "metrics.csv") if r["env_steps"] <= steps]
    wall = evaluation.get("wall_seconds", rows[-1]["wall_seconds"] if rows else 0.0)
    return Resumed(data, steps, float(wall), float(best), rows)


def restore(shared, resumed: Resumed) -> None:
    """Put a checkpoint's weights, optimizer state (step counts included), normaliser statistics, step count and
    clock into the freshly built shared objects, before any child starts."""
    data = resumed.checkpoint
    try:
        shared.model.load_state_dict(data["model"])
        shared.optimizer.load_state_dict(data["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise UserError(f"the latest checkpoint of {shared.run_dir} cannot be resumed ({str(err)[:160]}); "
                        f"evaluate.py and view.py can still use it; start a new run with --force") from None
    shared.normalizer.load_state_dict(data["normalizer"])
    shared.steps[0] = resumed.env_steps
    shared.clock_origin = time.time() - resumed.wall_seconds
