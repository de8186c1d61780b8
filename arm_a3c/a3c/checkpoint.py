"""Checkpoints: written atomically (temporary file in the same folder, flushed, renamed over the old one) and
read with `torch.load(weights_only=True)`, which cannot run code from the file.

A checkpoint holds the model, the optimizer state, the observation normaliser, the global step count, the
config, the robot's identity, the evaluation of exactly these weights, and the software versions.
"""

from __future__ import annotations

import hashlib
import re
from importlib.metadata import version
from pathlib import Path

import torch

import arm_a3c
from arm_a3c.errors import UserError
from arm_a3c.files import write_atomically
from arm_a3c.limits import MAX_EPISODES

FORMAT = 1
REQUIRED_KEYS = ("model", "optimizer", "normalizer", "env_steps", "config", "robot")


def robot_identity(env) -> dict:
    """What a checkpoint must match to be used with a robot."""
    return {
        "task": env.config.task,
        "name": env.robot.name,
        "urdf_sha256": hashlib.sha256(env.robot.spec.urdf_path.read_bytes()).hexdigest(),
        "controlled_joints": [j.name for j in env.robot.controlled],
        "obs_dim": env.obs_dim,
        "action_dim": env.robot.dof,
    }


def versions() -> dict:
    # str(): torch.__version__ is a TorchVersion object, which weights_only loading (rightly) refuses.
    return {"arm_a3c": arm_a3c.__version__, "torch": str(torch.__version__), "pybullet": version("pybullet")}


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (disk full, say); the previous file at that path is intact."""


TEMP_SUFFIX = ".tmp"
CHECKPOINT_NAMES = ("latest.pt", "best.pt")  # what a run writes in its checkpoints/


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write `payload` to `path` so that a crash at any moment leaves either the old or the new file.
    A failed write (disk full, no permission) raises `CheckpointWriteError` and leaves the old file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda f: torch.save({"format": FORMAT, "versions": versions(), **payload}, f),
                         suffix=TEMP_SUFFIX)
    except (OSError, RuntimeError) as err:  # torch's writer reports a full disk as a RuntimeError
        if isinstance(err, RuntimeError) and "write" not in str(err).lower():
            raise
        kept = "the previous checkpoint there is intact" if path.exists() else "no earlier checkpoint there"
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0][:120]
        raise CheckpointWriteError(f"cannot write checkpoint {path} ({reason}); {kept}; "
                                   f"free some disk space or pass --run-dir on another disk") from None


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the half-written temporary files that a killed process left beside its checkpoints (the names
    `save_checkpoint` gives them, .latest.pt.XXXX.tmp and .best.pt.XXXX.tmp, and the older latest.pt.XXXX.tmp;
    no other file)."""
    stale = sorted(p for name in CHECKPOINT_NAMES for pattern in (f".{name}.*{TEMP_SUFFIX}", f"{name}.*{TEMP_SUFFIX}")
                   for p in Path(folder).glob(pattern) if p.is_file() and not p.is_symlink())
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint safely; a missing, truncated or foreign file is a `UserError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found; pass the path of a .pt file from a run's checkpoints/")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (any file at all: pickle and zip raise many kinds)
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found:
            # A file with Python objects torch's safe loader refuses. Not torch's text: it suggests loading with
            # weights_only=False, which would run whatever code such a file carries.
            raise UserError(f"{path} is not a safe arm-a3c checkpoint: it holds Python objects ({found.group(1)}) "
                            f"besides tensors and plain data, and arm-a3c does not load such files") from None
        lines = [line.strip() for line in str(err).splitlines()
                 if line.strip() and "weights_only" not in line and "Weights only load failed" not in line]
        # torch's weights-only refusal is a long text; its "WeightsUnpickler error" line says what was refused.
        reason = next((line for line in lines if "WeightsUnpickler error" in line), lines[0] if lines else "")
        reason = reason[:200] or type(err).__name__
        raise UserError(f"{path} is not a readable arm-a3c checkpoint ({reason})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path} is not an arm-a3c checkpoint (format {FORMAT} expected)")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise UserError(f"{path} is an incomplete arm-a3c checkpoint (no {', '.join(missing)})")
    problem = _layout_problem(data)
    if problem:
        raise UserError(f"{path} is a damaged arm-a3c checkpoint ({problem}); use another checkpoint of the run")
    return data


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _layout_problem(data: dict) -> str | None:
    """What in a checkpoint's entries is not what `checkpoint_payload` writes (None: nothing)."""
    robot, evaluation = data["robot"], data.get("eval")
    if not isinstance(robot, dict) or not isinstance(robot.get("name"), str) or not _is_int(robot.get("obs_dim")) \
            or not _is_int(robot.get("action_dim")) or not isinstance(robot.get("controlled_joints"), list):
        return "its robot entry"
    for key in ("model", "optimizer", "normalizer", "config"):
        if not isinstance(data[key], dict):
            return f"its {key} entry"
    if not all(isinstance(v, torch.Tensor) for v in data["model"].values()):
        return "its model entry holds something besides tensors"
    if not _is_int(data["env_steps"]) or data["env_steps"] < 0:
        return f"env_steps {data['env_steps']!r:.40}"
    if evaluation is not None:
        if not isinstance(evaluation, dict):
            return "its eval entry"
        episodes, rate = evaluation.get("episodes"), evaluation.get("success_rate")
        if episodes is not None and not (_is_int(episodes) and 1 <= episodes <= MAX_EPISODES):
            return f"its evaluation's episodes {episodes!r:.40}"
        if rate is not None and not (isinstance(rate, (int, float)) and 0 <= rate <= 1):
            return f"its evaluation's success rate {rate!r:.40}"
    return None


def check_robot(path: Path, saved: dict, env) -> str | None:
    """Refuse a checkpoint whose robot is not `env`'s: another robot, other joints, other sizes (`UserError`
    naming the file and the mismatch). A changed URDF with the same joints and sizes is allowed (a new colour
    or mesh, say) and returns a warning to show."""
    now = robot_identity(env)
    trained_for = saved.get("task", "reach")  # checkpoints from before tasks were all reach
    if trained_for != now["task"]:
        raise UserError(f"{path} was trained for the task {trained_for!r}, not {now['task']!r}; use a checkpoint of "
                        f"that task, or train one with --task {now['task']}")
    for key, what in [("name", "robot"), ("controlled_joints", "controlled joints"),
                      ("obs_dim", "observation size"), ("action_dim", "action size")]:
        if saved.get(key) != now[key]:
            raise UserError(f"{path} was trained for {what} {saved.get(key)}, but the robot is now {now[key]}; "
                            f"use a checkpoint of this robot or train a new run")
    if saved.get("urdf_sha256") != now["urdf_sha256"]:
        return (f"warning: {env.robot.spec.urdf_path} changed since {path} was saved (same joints and sizes, "
                f"so it is used anyway)")
    return None


def make_checkpoint_env(cfg, path: Path, saved: dict | None = None):
    """make_env(cfg) for the weights of the checkpoint at `path` (`saved`: its robot entry, read from the file if
    not given). Where cfg's robot cannot take the run's settings (its home pose of another joint count, say:
    another robot given with --urdf), the refusal is `check_robot`'s, naming both robots, not one about a --home
    the user never gave."""
    from arm_a3c.envs.arm_env import make_env

    try:
        return make_env(cfg)
    except UserError as err:
        failure = err
    try:
        saved = load_checkpoint(path)["robot"] if saved is None else saved
        own = make_env(cfg, home="zero", ee_link=None, ee_offset_m=None)  # the robot with its own settings
    except UserError:
        raise failure from None
    try:
        check_robot(path, saved, own)
    finally:
        own.close()
    raise failure


def checkpoint_payload(cfg, optimizer, model, normalizer_state: dict, env_steps: int, env,
                       evaluation: dict | None) -> dict:
    """Everything a checkpoint holds besides the format and versions `save_checkpoint` adds."""
    return {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "normalizer": normalizer_state,
        "env_steps": env_steps, "config": cfg.to_dict(), "robot": robot_identity(env), "eval": evaluation,
    }


def save_evaluated(run_dir: Path, payload: dict, best_so_far: float) -> None:
    """Write an evaluated payload as checkpoints/latest.pt, and as best.pt when its success rate beats
    `best_so_far` (-1 before the first evaluation, so the first one is always best)."""
    save_checkpoint(Path(run_dir) / "checkpoints" / "latest.pt", payload)
    if payload["eval"]["success_rate"] > best_so_far:
        save_checkpoint(Path(run_dir) / "checkpoints" / "best.pt", payload)


def save_untrained_checkpoint(robot: str, path: Path, task: str = "reach") -> Path:
    """A checkpoint of a freshly initialised policy for `robot` and `task` (what a run holds at step 0): for
    replaying and benchmarking the viewer without training first."""
    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.a3c.model import ActorCritic
    from arm_a3c.a3c.normalizer import RunningNormalizer
    from arm_a3c.a3c.optim import SharedAdam
    from arm_a3c.envs.arm_env import make_env

    cfg = TrainConfig(robot=robot, task=task)
    env = make_env(cfg)
    try:
        model = ActorCritic.from_config(cfg, env.obs_dim, env.robot.dof)
        normalizer = RunningNormalizer(env.obs_dim, cfg.obs_clip)
        save_checkpoint(path, checkpoint_payload(cfg, SharedAdam(model.flat), model,
                                                 normalizer.state_dict(), 0, env, None))
    finally:
        env.close()
    return Path(path)
