"""The evaluator process (the "test" process of ikostrikov/pytorch-a3c): every `eval_every_steps` global
steps it copies the global policy and runs it deterministically (mean action) on the same seeded episodes,
reports `success_rate` and the mean final distance, and writes the checkpoints of exactly those weights.

An evaluation that cannot reach the run's target stops early (`TrainConfig.eval_screen`): from its
`eval_screen_episodes`-th (25th) episode on, once more episodes failed than the target allows in all
`eval_episodes` (100), the rest could not lift it to the target, and its figures are those of the episodes
played (`episodes` in the result, the `eval_episodes` column of metrics.csv). Whether an evaluation reaches the
target is exactly what a full one would give. Far from the target this quarters the evaluator's CPU (measured:
see docs/performance.md).

An evaluation at the target makes a candidate, which the evaluator confirms at once on fresh episodes
(`stop_rule.py`): a confirmed candidate is best.pt and stops the run. Until then best.pt is the evaluation with
the best success rate, some of them over fewer episodes."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from arm_a3c.a3c.checkpoint import (CheckpointWriteError, check_robot, checkpoint_payload, load_checkpoint,
                                    make_checkpoint_env, save_evaluated)
from arm_a3c.a3c.children import become_child, exit_child
from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.model import ActorCritic, NumpyActorCritic
from arm_a3c.a3c.normalizer import RunningNormalizer
from arm_a3c.a3c.shared import Shared
from arm_a3c.a3c.stop_rule import CONFIRM_SEED_RANGE, StopRule
from arm_a3c.envs.arm_env import ArmEnv, make_env
from arm_a3c.envs.episodes import EpisodeProgress, run_episodes
from arm_a3c.envs.mujoco_env import in_simulator
from arm_a3c.errors import UserError

POLL_SECONDS = 0.2
DEFAULT_TEST_EPISODES = TrainConfig.test_episodes


def evaluate_policy(model: ActorCritic, normalizer: RunningNormalizer, env: ArmEnv, episodes: int,
                    seed: int, keep_going: Callable[[], bool] = lambda: True,
                    screen: tuple[int, int] | None = None) -> dict | None:
    """The policy's mean action on deterministic episodes with seeds seed, seed+1, ... (see
    `envs.episodes.run_episodes`, which also says what `screen` does)."""
    return run_episodes(env, policy_action(model, normalizer), episodes, seed, keep_going, screen)


def policy_action(model: ActorCritic, normalizer: RunningNormalizer) -> Callable[[np.ndarray], np.ndarray]:
    """The deterministic policy as a function of the raw observation: normalised as in training, mean action."""
    norm, actor = normalizer.snapshot(), NumpyActorCritic(model)
    return lambda obs: actor.mean(normalizer.normalize(obs, norm))


def evaluate_and_save(cfg: TrainConfig, shared: Shared, env: ArmEnv, local: ActorCritic,
                      normalizer: RunningNormalizer, run_dir: Path, best_so_far: float, streak: int,
                      confirm_seed: int) -> dict | None:
    """Snapshot the global policy, evaluate it, write latest.pt (and best.pt when it is the best yet).

    `streak` is the number of evaluations in a row at the target before this one: when this one makes a candidate
    (`stop_rule`), the same weights play `confirm_episodes` fresh episodes from seed `confirm_seed`, and the
    result carries them (`confirmation`); a confirmed candidate is best.pt whatever the evaluator's episodes said
    before. None if the run began to stop during the evaluation (the launcher evaluates the final weights
    itself)."""
    env_steps = shared.global_steps()
    local.load_state_dict(shared.model.state_dict())
    normalizer.load_state_dict(shared.normalizer.state_dict())
    result = evaluate_policy(local, normalizer, env, cfg.eval_episodes, cfg.eval_seed, shared.running,
                             cfg.eval_screen())
    if result is None:
        return None
    result["env_steps"], result["wall_seconds"] = env_steps, round(shared.wall_seconds(), 2)
    rule = StopRule.of(cfg)
    at_target = result["success_rate"] >= cfg.target_success
    if rule.confirm_episodes and at_target and rule.candidate(streak + 1):
        if confirm_seed + rule.confirm_episodes > cfg.confirm_seed + CONFIRM_SEED_RANGE:
            confirm_seed = cfg.confirm_seed  # every seed of the range used (a run of some 5,000 candidates): again
        played = evaluate_policy(local, normalizer, env, rule.confirm_episodes, confirm_seed, shared.running)
        if played is None:
            return None
        successes = round(played["success_rate"] * played["episodes"])
        result["confirmation"] = {**rule.confirmation(successes, played["episodes"]), "seed": confirm_seed,
                                  "env_steps": env_steps}
        confirm_seed += played["episodes"]
    result["next_confirm_seed"] = confirm_seed  # kept in the checkpoint: a resumed run confirms on new seeds
    confirmed = result.get("confirmation", {}).get("confirmed", False)
    save_evaluated(run_dir, checkpoint_payload(cfg, shared.optimizer, local, normalizer.state_dict(), env_steps,
                                               env, result), -math.inf if confirmed else best_so_far)
    return result


def evaluator_loop(cfg: TrainConfig, shared: Shared, run_dir: Path, reports: Connection, best: float,
                   next_eval: int, confirm_seed: int) -> None:
    """Evaluate whenever the global step count reaches `next_eval`, then every `eval_every_steps`; `best` is
    the best success rate so far (-1: none), which best.pt must beat; `confirm_seed`, the first seed of the next
    confirmation. After a confirmed candidate it evaluates no more: the run stops."""
    streak = 0  # evaluations in a row at the target (a new evaluator process starts again at none)
    become_child("a3c-evaluator")
    torch.set_num_threads(1)
    env = make_env(cfg)
    local = ActorCritic.from_config(cfg, env.obs_dim, env.robot.dof)
    normalizer = RunningNormalizer(env.obs_dim, cfg.obs_clip)
    cpu_mark = time.process_time()  # CPU seconds at the last report: each evaluation reports those since
    try:
        while shared.running():
            if shared.global_steps() < next_eval:
                time.sleep(POLL_SECONDS)
                continue
            started = time.monotonic()
            try:
                result = evaluate_and_save(cfg, shared, env, local, normalizer, run_dir, best, streak, confirm_seed)
            except CheckpointWriteError as err:  # disk full, say: the previous checkpoint is intact; go on
                reports.send(("checkpoint_failed", str(err)))
                next_eval = shared.global_steps() + cfg.eval_every_steps
                continue
            if result is None:
                break
            best = max(best, result["success_rate"])
            streak = streak + 1 if result["success_rate"] >= cfg.target_success else 0
            confirmation, confirm_seed = result.get("confirmation"), result["next_confirm_seed"]
            result["eval_seconds"] = time.monotonic() - started
            cpu_now = time.process_time()
            result["cpu_seconds"], cpu_mark = cpu_now - cpu_mark, cpu_now  # its own and the waits' since the last
            reports.send(("eval", result))
            next_eval = (math.inf if confirmation and confirmation["confirmed"]
                         else result["env_steps"] + cfg.eval_every_steps)
    except BrokenPipeError:  # the launcher is gone
        pass
    env.close()
    exit_child()


def load_policy(path: Path, urdf: str | None = None, **changes) -> tuple[dict, TrainConfig, ArmEnv, ActorCritic,
                                                                         RunningNormalizer]:
    """Rebuild a checkpoint's robot (in a new environment) and policy: (checkpoint data, config, env, model,
    normaliser); `urdf` is the robot's file when it has moved since the run; `changes`, settings the environment
    takes instead of the run's (the robustness grid's latency, noise and dynamics: the config returned has them).
    A checkpoint that no longer fits its robot, or whose saved settings do not pass the command line's checks, is
    a `UserError`; the caller closes the env."""
    data = load_checkpoint(path)
    cfg = TrainConfig.from_dict(data["config"], source=f"checkpoint {path}").locate_robot(urdf)
    if changes:
        cfg = dataclasses.replace(cfg, **changes)
    env = make_checkpoint_env(cfg, path, data["robot"])
    try:
        warning = check_robot(path, data["robot"], env)
        if warning:
            print(warning, file=sys.stderr)
        model = ActorCritic.from_config(cfg, env.obs_dim, env.robot.dof)
        normalizer = RunningNormalizer(env.obs_dim, cfg.obs_clip)
        try:
            model.load_state_dict(data["model"])
            normalizer.load_state_dict(data["normalizer"])
        except (RuntimeError, TypeError, ValueError, KeyError, AttributeError):
            raise UserError(f"{path} holds weights or statistics of other shapes than its own config says: the file "
                            f"is damaged") from None
        mean, var, _ = normalizer.moments()
        if not (torch.isfinite(model.flat).all() and np.isfinite(mean).all() and np.isfinite(var).all()
                and (var >= 0).all()):
            raise UserError(f"{path} holds weights or observation statistics that are not finite numbers (a run "
                            f"that diverged?); use an earlier checkpoint of the run")
    except BaseException:
        env.close()
        raise
    return data, cfg, env, model, normalizer


def episodes_to_play(data: dict, cfg: TrainConfig, episodes: int | None, seed: int | None,
                     test: bool) -> tuple[int, int]:
    """(episodes, first seed) a checkpoint plays: with `test` the run's held-out ones; with neither `seed` nor
    `episodes` as many as the checkpoint's own evaluation played (a screened one: 25), from the evaluator's seed;
    else the evaluator's count and seed where not given."""
    if test:
        return episodes or cfg.test_episodes or DEFAULT_TEST_EPISODES, cfg.test_seed
    if seed is None and episodes is None:
        episodes = (data.get("eval") or {}).get("episodes")
    return episodes or cfg.eval_episodes, cfg.eval_seed if seed is None else seed


def evaluate_checkpoint(path: Path, episodes: int | None = None, seed: int | None = None, test: bool = False,
                        urdf: str | None = None, stop: Callable[[], bool] = lambda: False,
                        sim: str = "pybullet") -> dict | None:
    """Rebuild the robot and the policy from a checkpoint alone and evaluate it deterministically: by default on
    the evaluator's own seeds (the numbers stored in the checkpoint are reproduced), with `test` on the run's
    held-out test episodes (`test_seed`, `test_episodes` or 200), else from `seed`. `urdf`: the robot's file, if
    it has moved. `sim`: the simulator that plays them (`envs.mujoco_env.SIMULATORS`; the goals are PyBullet's in both).
    Says how far it has got (`EpisodeProgress`); None if `stop()` turned true before the end."""
    data, cfg, env, model, normalizer = load_policy(path, urdf)
    try:
        played = in_simulator(env, sim)
        for note in getattr(played, "notes", ()):
            print(note, file=sys.stderr)
        episodes, seed = episodes_to_play(data, cfg, episodes, seed, test)
        result = evaluate_policy(model, normalizer, played, episodes, seed,
                                 EpisodeProgress(episodes, f"evaluating {path}", stop))
    finally:
        env.close()
    if result is None:
        return None
    return {**result, "checkpoint": str(path), "robot": data["robot"]["name"], "env_steps": data["env_steps"],
            **({"sim": sim} if sim != "pybullet" else {})}
