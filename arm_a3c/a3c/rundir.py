"""Run directories: claiming one for a launcher (an exclusive lock, so one launcher writes a folder at a time),
making a new run's (refusing any file the run did not write itself), replacing a run with `--force` (only the
files its `run.json` lists), and picking an old run up again (`--resume`): its config, its latest checkpoint and
how far it had got.

A run directory is recognised by `run.json`, which the run writes first: the project's format name, the launcher's
process id, and every file the run writes there. Nothing else in the folder is ever deleted or overwritten.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from arm_a3c.a3c.checkpoint import check_robot, load_checkpoint, remove_stale_temporaries
from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.metrics import read_metrics
from arm_a3c.errors import UserError
from arm_a3c.files import occupied, write_atomically
from arm_a3c.sim.assets import is_robot_file

try:
    import fcntl
except ImportError:  # Windows: no advisory locks there; one launcher per folder is then the user's to keep
    fcntl = None

CONFIG_FILE = "config.json"
MANIFEST_FILE = "run.json"
RUN_FORMAT = "arm-a3c-run/1"
# Every file a run writes into its directory, beside the TensorBoard event files it adds to run.json as it opens
# them. A new run refuses a folder where one of these exists and run.json does not list it.
RUN_FILES = (MANIFEST_FILE, CONFIG_FILE, "summary.json", "metrics.csv", "learning_curve.png",
             "live.bin", "checkpoints/latest.pt", "checkpoints/best.pt")
RUN_FOLDERS = ("checkpoints", "tb")  # removed by --force only when nothing else is left in them
# what the weights were trained for
FIXED_ON_RESUME = ("task", "robot", "ee_link", "ee_offset_m", "home", "hidden_size", "linear_policy",
                   "urdf_speed_limits", "self_collision", "clearance_observation")
MAX_SAME_SECOND_RUNS = 1000  # default names tried per second (runs/ROBOT-DATE-TIME, then -2, -3, ...)


DEFAULT_RUNS = Path("runs")  # where runs go when --run-dir is not given


def newest_run(root: Path) -> Path | None:
    """The run under `root` started (or resumed) last: the folder whose config.json was written last."""
    try:
        runs = [folder for folder in Path(root).iterdir() if (folder / CONFIG_FILE).is_file()]
    except OSError:
        return None
    return max(runs, key=lambda folder: (folder / CONFIG_FILE).stat().st_mtime_ns, default=None)


def read_manifest(run_dir: Path) -> dict | None:
    """The run.json of `run_dir` (None when there is none, or it is not an arm-a3c run's)."""
    try:
        data = json.loads((Path(run_dir) / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT or not isinstance(data.get("files"), list):
        return None
    return data


class RunDir:
    """A run directory held by this launcher: an exclusive lock on the folder (`flock`, which the kernel releases
    when the process dies, however it dies), and its run.json."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = Path(path), fd
        self.files: list[str] = []

    @classmethod
    def lock(cls, path: Path) -> "RunDir":
        """Lock `path` (an existing folder); a folder another live launcher holds is a `UserError` naming it."""
        path = Path(path)
        try:
            fd = _try_lock(path)
        except OSError as err:
            raise UserError(f"cannot open run directory {path} ({err.strerror}); pass --run-dir PATH") from None
        if fd is None:
            pid = (read_manifest(path) or {}).get("launcher_pid")
            by = f" (launcher process {pid})" if pid else ""
            raise UserError(f"{path} is in use by a training that is running now{by}; watch it with "
                            f"view.py --run {path}, stop it first, or pass another --run-dir")
        return cls(path, fd)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closes the lock with it
            self._fd = -1

    def write_manifest(self, files: list[str]) -> None:
        self.files = sorted(set(files))
        text = json.dumps({"format": RUN_FORMAT, "launcher_pid": os.getpid(), "files": self.files}, indent=2) + "\n"
        try:
            write_atomically(self.path / MANIFEST_FILE, text.encode())
        except OSError as err:
            raise UserError(f"cannot write to run directory {self.path} ({err.strerror}); pass --run-dir PATH or "
                            f"free some disk space") from None

    def add_files(self, paths) -> None:
        """Record more files the run has written (TensorBoard's event files, whose names it cannot know before)."""
        names = [Path(p).relative_to(self.path).as_posix() for p in paths]
        if set(names) - set(self.files):
            self.write_manifest(self.files + names)


def _try_lock(path: Path) -> int | None:
    """An open descriptor of the folder `path` holding its exclusive lock, or None when another process holds it
    (raises OSError when the folder cannot be opened). Without locks (Windows) the descriptor holds none."""
    fd = os.open(path, os.O_RDONLY)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
    return fd


def is_training(run_dir: Path) -> bool | None:
    """Whether a launcher holds `run_dir` now (its lock, which the kernel drops when the launcher dies however it
    dies); None where there are no locks to ask (Windows)."""
    if fcntl is None:
        return None
    try:
        fd = _try_lock(run_dir)
    except OSError:
        return False
    if fd is None:
        return True
    os.close(fd)  # the lock taken here goes with it
    return False


def _foreign(run_dir: Path) -> list[str]:
    """The files a new run would write that are there already (a dangling link counts: writing it would create
    its target, wherever that is)."""
    return [name for name in RUN_FILES if occupied(run_dir / name)]


def _check_no_links(run_dir: Path) -> None:
    """Refuse a run directory whose run files or folders are symbolic links (or folders that are files): writing
    them would write wherever they point, into files the run never made."""
    for name in (*RUN_FILES, *RUN_FOLDERS):
        path = run_dir / name
        if path.is_symlink():
            raise UserError(f"{path} is a symbolic link (to {os.readlink(path)}); a run writes its files only "
                            f"inside its own folder: remove the link or pass another --run-dir")
    for name in RUN_FOLDERS:
        if (run_dir / name).exists() and not (run_dir / name).is_dir():
            raise UserError(f"{run_dir / name} is a file where the run keeps a folder; move it away or pass "
                            f"another --run-dir")


def _make_folder(path: Path, exist_ok: bool) -> None:
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except FileExistsError:
        if not exist_ok:
            raise  # a default name taken: the caller tries the next
        raise UserError(f"cannot make run directory {path}: a file of that name is there; pass another --run-dir") \
            from None
    except OSError as err:
        raise UserError(f"cannot write to run directory {path} ({err.strerror}); pass --run-dir PATH") from None


def _default_run_dir(robot_name: str) -> Path:
    """A new folder runs/ROBOT-DATE-TIME (with -2, -3, ... when launchers start in the same second), made here:
    mkdir is atomic, so two launchers never get the same one."""
    base = DEFAULT_RUNS / f"{robot_name}-{datetime.now():%Y%m%d-%H%M%S}"
    for n in range(1, MAX_SAME_SECOND_RUNS + 1):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            _make_folder(candidate, exist_ok=False)
            return candidate
        except FileExistsError:
            continue
    raise UserError(f"{MAX_SAME_SECOND_RUNS} runs named {base} already exist; pass --run-dir PATH")


def claim_new_run_dir(cfg: TrainConfig, robot_name: str, force: bool) -> RunDir:
    """The locked run directory of a new run. A folder that holds a run is refused (its checkpoints would be
    overwritten) unless `force`, which deletes the files that run's run.json lists and nothing else; any file the
    new run would write that no run.json lists is refused, `force` or not."""
    if cfg.run_dir:
        path = Path(cfg.run_dir)
        _make_folder(path, exist_ok=True)
    else:
        path = _default_run_dir(robot_name)
    run = RunDir.lock(path)
    try:
        manifest = read_manifest(path)
        if manifest is not None and not force:
            raise UserError(f"{path} already holds a run; pass --resume {path} to continue it, --force to replace "
                            f"it, or another --run-dir")
        _check_no_links(path)
        if manifest is not None:
            removed = _remove_listed(path, manifest["files"])
            print(f"--force: deleted the {removed} file(s) of the earlier run in {path}", flush=True)
        foreign = _foreign(path)
        if foreign:
            earlier = (f"; if it is a run of an earlier arm-a3c (before run.json), --resume {path} continues it"
                       if (path / CONFIG_FILE).is_file() else "")
            raise UserError(f"{path} holds {', '.join(foreign)}, which arm-a3c did not write there (no run.json lists "
                            f"them), so a new run would overwrite them; nothing was deleted: move them away or pass "
                            f"another --run-dir{earlier}")
        run.write_manifest(list(RUN_FILES))
        _make_folder(path / "checkpoints", exist_ok=True)
    except BaseException:
        run.release()
        raise
    return run


def claim_resumed_run_dir(path: Path) -> RunDir:
    """The locked directory of a run to continue; a run from before run.json gets one listing the files the
    resumed run writes (it writes the same names, so they become its own)."""
    run = RunDir.lock(Path(path))
    try:
        _check_no_links(Path(path))
        manifest = read_manifest(path)
        kept = [name for name in (manifest["files"] if manifest else []) if not (Path(path) / str(name)).is_symlink()]
        run.write_manifest(list(RUN_FILES) + kept)
    except BaseException:
        run.release()
        raise
    return run


def _remove_listed(run_dir: Path, files: list) -> int:
    """Delete the files a run's run.json lists (never a folder's other contents); returns how many there were."""
    removed = 0
    root = run_dir.resolve()
    for name in files:
        target = (run_dir / str(name))
        if not target.resolve().is_relative_to(root) or not target.is_file():
            continue  # a list that was edited to point outside the run is ignored
        target.unlink()
        removed += 1
    for folder in RUN_FOLDERS:
        try:
            (run_dir / folder).rmdir()  # only when empty
        except OSError:
            pass
    return removed


def write_config(run_dir: Path, cfg: TrainConfig) -> None:
    try:
        write_atomically(run_dir / CONFIG_FILE, (json.dumps(cfg.to_dict(), indent=2) + "\n").encode())
    except OSError as err:
        raise UserError(f"cannot write {run_dir / CONFIG_FILE} ({err.strerror}); free some disk space") from None


def resume_config(run_dir: Path, overrides: dict) -> TrainConfig:
    """The config of the run in `run_dir`, with the settings the user gave again (`overrides`: only flags
    actually given). Budgets and hyper-parameters may change; what the weights depend on may not. A robot given
    by file (--urdf) is the run's robot found where it is now, as evaluate.py's --urdf: the launcher then holds it
    to the latest checkpoint's joints and sizes (`check_robot`), and the run records the new file."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"--resume {run_dir}: no run there ({CONFIG_FILE} missing); pass a directory that "
                        f"train_arm.py wrote, such as runs/NAME")
    try:
        recorded = TrainConfig.from_dict(json.loads(path.read_text()), source=str(path))
    except (ValueError, TypeError, RecursionError) as err:
        raise UserError(f"{path} is not a readable run config ({err}); start a new run instead") from None
    given = overrides.get("robot")
    moved = given if given is not None and is_robot_file(given) else None
    saved = recorded.locate_robot(moved)
    for key in FIXED_ON_RESUME:
        if key in overrides and overrides[key] != getattr(saved, key):
            raise UserError(f"--{key.replace('_', '-')} cannot change when resuming: {run_dir} was trained with "
                            f"{getattr(saved, key)!r}; start a new run for {overrides[key]!r}")
    if moved is None and is_robot_file(saved.robot) and not Path(saved.robot).expanduser().is_file():
        raise UserError(f"--resume {run_dir}: the run's robot file {saved.robot} is not there any more; if it has "
                        f"moved, give its new place with --urdf PATH")
    if overrides.get("run_dir") is not None and Path(overrides["run_dir"]) != run_dir:
        raise UserError(f"--run-dir {overrides['run_dir']} and --resume {run_dir} name different runs; give one")
    changes = {k: v for k, v in overrides.items() if k != "run_dir" and getattr(recorded, k) != v}
    if changes.get("backend", "ray") != "ray" and saved.ray_address and "ray_address" not in overrides:
        changes["ray_address"] = None  # the cluster a Ray run joined means nothing to the local backend
    if changes:
        print("resuming with changed settings: " + ", ".join(
            f"{k} {getattr(recorded, k)} -> {v}" for k, v in changes.items()), flush=True)
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
        raise UserError(f"--resume {run_dir}: the run has no checkpoint yet ({path} missing); "
                        + _what_to_do_without_latest(folder))
    try:
        data = load_checkpoint(path)
    except UserError as err:
        raise UserError(f"--resume {run_dir}: {err}; " + _what_to_do_without_latest(folder)) from None
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
                        f"evaluate.py and view.py can still use it; start a new run in another --run-dir") from None
    shared.normalizer.load_state_dict(data["normalizer"])
    shared.steps[0] = resumed.env_steps
    shared.clock_origin = time.time() - resumed.wall_seconds


def _what_to_do_without_latest(folder: Path) -> str:
    """Advice when latest.pt cannot be resumed: never --force where a best.pt would be lost with it."""
    best = folder / "best.pt"
    try:
        load_checkpoint(best)
    except UserError:
        return "start a new run in another --run-dir, or replace this one with --force (it deletes the run's files)"
    return (f"its {best} is intact: to continue from it, copy it to {folder / 'latest.pt'} and --resume again; "
            f"or start a new run in another --run-dir (--force would delete best.pt)")
