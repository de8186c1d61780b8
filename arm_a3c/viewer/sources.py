"""Where the viewer's episodes come from:

- `LiveSource`: a running training's live board (`a3c/live.py`). While a viewer reads it, each worker
  publishes every episode it completes; the viewer replays the chosen worker's newest episode at the control
  rate (24 steps per second), then takes the next newest. It reads the file and marks it watched, so closing
  it never stops the training (the workers stop recording 2 seconds later).
- `ReplaySource`: a checkpoint's policy, acting deterministically in the viewer's own environment on fresh
  random targets (`envs.episodes.run_episode`, the loop the evaluator uses). A click in the scene (or `t`)
  moves the target, and the policy chases it.
- `DeployLogSource`: the episodes a deploy logged (`deploy.loop`), the arm put where it was measured each period.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from arm_a3c.a3c.checkpoint import make_checkpoint_env
from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.evaluator import load_policy, policy_action
from arm_a3c.a3c.live import Episode, LiveBoard
from arm_a3c.a3c.rundir import is_training
from arm_a3c.envs.episodes import run_episode
from arm_a3c.errors import UserError


class LiveSource:
    """Episodes of a running (or finished) training, read from its live board."""

    def __init__(self, run_dir: Path, board: LiveBoard, rank: int = 0, urdf: str | None = None):
        self.run_dir, self.board = Path(run_dir), board
        self.rank = min(rank, board.workers - 1)
        config = self.run_dir / "config.json"
        try:
            saved = json.loads(config.read_text())
        except (OSError, ValueError, RecursionError) as err:
            raise UserError(f"{config} is not a readable run config ({str(err)[:100]})") from None
        cfg = TrainConfig.from_dict(saved, source=str(config)).locate_robot(urdf)
        self.env = make_checkpoint_env(cfg, self.run_dir / "checkpoints" / "latest.pt")
        if board.dof != self.env.robot.dof:
            self.env.close()
            raise UserError(f"{board.path(run_dir)} was written for {board.dof} controlled joints, but the run's robot "
                            f"has {self.env.robot.dof}: the file is not this run's; replay a checkpoint with --checkpoint")
        self._shown: tuple[int, int] | None = None

    label = "live"

    def select_worker(self, rank: int) -> bool:
        if 0 <= rank < self.board.workers and rank != self.rank:
            self.rank, self._shown = rank, None
            return True
        return False

    def next_episode(self) -> Episode | None:
        """The worker's newest completed episode if it is not the one shown last (asked every frame: it also tells
        the workers that somebody watches, so they keep recording)."""
        self.board.watch()
        episode = self.board.latest(self.rank)
        if episode is None or (episode.rank, episode.episode) == self._shown:
            return None
        self._shown = (episode.rank, episode.episode)
        return episode

    def figures(self) -> dict:
        return self.board.run_figures()

    def place_target(self, target: np.ndarray) -> bool:
        return False  # the workers choose their targets


class ReplaySource:
    """A checkpoint's deterministic policy in the viewer's own environment, one episode at a time."""

    label = "replay"

    def __init__(self, checkpoint: Path, seed: int = 0, urdf: str | None = None):
        data, _, self.env, model, normalizer = load_policy(checkpoint, urdf)
        self.act = policy_action(model, normalizer)
        self.rank, self.seed, self.count = 0, seed, 0
        self.env_steps = data["env_steps"]
        self.success = (data.get("eval") or {}).get("success_rate", float("nan"))
        self._pending_target: np.ndarray | None = None

    def select_worker(self, rank: int) -> bool:
        return False

    def place_target(self, target: np.ndarray) -> bool:
        self._pending_target = target
        return True

    def next_episode(self) -> Episode:
        env, joints, ees, draws = self.env, [], [], []

        def record() -> None:
            joints.append(list(env.joint_positions))
            ees.append(list(env.ee))
            draws.append(list(env.draw_data()))

        target, self._pending_target = self._pending_target, None
        options = {"target": target} if target is not None else None
        result = run_episode(env, self.act, self.seed + self.count, options, on_step=record)
        self.count += 1
        return Episode(0, self.count, result.episode_return, result.final_distance_m, result.success,
                       np.array(joints), np.array(ees), np.array(draws))

    def figures(self) -> dict:
        return {"global_steps": self.env_steps, "steps_per_second": float("nan"), "eval_success": self.success,
                "finished": True}


class DeployLogSource:
    """The episodes of a deploy log (`arm-a3c deploy --log`), replayed on the policy's arm as they were measured:
    each period's joint positions, its goal, and the episode's result; over again after the last."""

    label = "deploy log"

    def __init__(self, path: Path):
        from arm_a3c.deploy.kinematics import modelled
        from arm_a3c.deploy.loop import LOG_FORMAT
        from arm_a3c.envs.arm_env import make_env

        try:
            lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
            header = lines[0]
            fits = header.get("format") == LOG_FORMAT and isinstance(header.get("environment"), dict)
        except (OSError, ValueError, IndexError, AttributeError, RecursionError):
            fits = False
        if not fits:
            raise UserError(f"{path} is not a deploy log written by arm-a3c deploy --log (or one written before "
                            f"logs named their environment); pass the .jsonl file deploy wrote")
        environment = header["environment"]
        self.env = make_env(**modelled(environment))
        self.episodes: list[tuple[list[dict], dict]] = []
        rows: dict[int, list[dict]] = {}
        for line in lines[1:]:
            if line.get("phase") == "episode" and line.get("q") is not None:
                rows.setdefault(line["episode"], []).append(line)
            elif line.get("phase") == "result" and rows.get(line["episode"]):
                self.episodes.append((rows.pop(line["episode"]), line))
        if not self.episodes:
            self.env.close()
            raise UserError(f"{path} holds no finished episode to replay")
        self.rank, self.count = 0, 0

    def select_worker(self, rank: int) -> bool:
        return False

    def place_target(self, target: np.ndarray) -> bool:
        return False  # the goals were the deploy's

    def next_episode(self) -> Episode:
        env = self.env
        rows, result = self.episodes[self.count % len(self.episodes)]
        joints, ees, draws = [], [], []
        env.reset(seed=0)
        for row in rows:
            env.robot.reset(row["q"])
            env.set_target(np.asarray(row["goal"], dtype=np.float64))
            joints.append(list(row["q"]))
            ees.append(env.robot.ee_position().tolist())
            draws.append(list(env.draw_data()))
        self.count += 1
        return Episode(0, self.count, float("nan"), result.get("distance_m") or float("nan"), bool(result["success"]),
                       np.array(joints), np.array(ees), np.array(draws))

    def figures(self) -> dict:
        successes = sum(bool(result["success"]) for _, result in self.episodes)
        return {"global_steps": None, "steps_per_second": float("nan"), "eval_success": successes / len(self.episodes),
                "success_label": f"deploy success ({len(self.episodes)} episodes logged)", "finished": True}


def open_source(run: Path | None, checkpoint: Path | None, worker: int, seed: int, urdf: str | None = None,
                deploy_log: Path | None = None):
    """The source a user asked for, and a note for the display: a live run, a replayed checkpoint (also when the
    run named has finished), or a deploy log; `urdf`: the robot's file, if it has moved since the run."""
    if deploy_log is not None:
        return DeployLogSource(deploy_log), None, f"replaying the deploy log {deploy_log}"
    if checkpoint is not None:
        return ReplaySource(checkpoint, seed, urdf), None, f"replaying {checkpoint}"
    run = Path(run)
    if not (run / "config.json").is_file():
        raise UserError(f"{run} is not a training run directory (no config.json); pass --run runs/NAME")
    board = LiveBoard.attach(run)
    training = is_training(run)
    if board is not None and (board.launcher_alive() if training is None else training):
        return LiveSource(run, board, worker, urdf), run, ""
    best = run / "checkpoints" / "best.pt"
    if not best.is_file():
        raise UserError(f"the run in {run} is not running and has no checkpoints/best.pt to replay")
    print(f"the run in {run} has finished: replaying its best checkpoint {best}")
    return ReplaySource(best, seed, urdf), run, "run finished: replaying best.pt"
