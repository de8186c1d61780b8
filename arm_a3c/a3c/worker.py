"""The A3C worker (Mnih et al. 2016, Algorithm S3), one process per core. Each loop:

1. pull: copy the global weights into the local Actor-Critic;
2. act for n steps in its own environment, sampling from the Gaussian policy;
3. compute GAE(lambda) advantages, bootstrapping from the value where the episode was cut by its time limit
   (terminal only where the task really ended);
4. loss = policy loss + value_coef * value loss - entropy_coef * entropy;
5. compute the local gradients afresh (numpy, `model.NumpyActorCritic`), clip their norm;
6. push: step the shared optimizer with them, on the global parameters.

The loop (`train_worker`) reaches the global model through a link: shared memory on one machine
(`shared.SharedMemoryLink`), a parameter-server actor with `--backend ray` (`backends.ray.RayLink`): any
`interfaces.WorkerLink`. The loss is written out in `model.NumpyActorCritic.loss_gradients` (its docstring
has the formula; tests hold its gradients to autograd's).
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import torch

from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.interfaces import WorkerLink
from arm_a3c.a3c.live import LiveBoard
from arm_a3c.a3c.model import ActorCritic, NumpyActorCritic
from arm_a3c.a3c.normalizer import normalize
from arm_a3c.a3c.shared import Shared, SharedMemoryLink, become_child, exit_child
from arm_a3c.envs.arm_env import make_env
from arm_a3c.envs.episodes import task_metrics

UPDATE_REPORT_EVERY = 20  # updates between reports to the launcher (400 steps: a few episodes)


def compute_gae(rewards: np.ndarray, values: np.ndarray, next_values: np.ndarray, terminated: np.ndarray,
                episode_end: np.ndarray, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """GAE(lambda) advantages and value targets (returns) for one rollout, all arrays (T,).

    `next_values[t]` is the value of the observation that followed step t (for the last step of an episode, the
    episode's final observation, not the next episode's first). `terminated[t]`: the task ended, so nothing
    follows and no bootstrap. `episode_end[t]`: terminated or truncated; the advantage recursion stops there.
    A truncated step therefore bootstraps from its own next value, as if the episode went on.
    """
    advantages = np.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        bootstrap = 0.0 if terminated[t] else gamma * next_values[t]
        delta = rewards[t] + bootstrap - values[t]
        running = delta + gamma * lam * (0.0 if episode_end[t] else running)
        advantages[t] = running
    return advantages, advantages + values


def a3c_update(cfg: TrainConfig, learner: NumpyActorCritic, link: WorkerLink, obs: np.ndarray, actions: np.ndarray,
               rewards: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray, episode_end: np.ndarray,
               global_steps: int) -> dict | None:
    """One A3C update from a rollout of normalised observations, with the worker's local weights in `learner`;
    the clipped gradient is pushed through `link`.
    Returns loss figures, or None when the loss or gradient was not finite and the update was skipped
    (nothing reaches the global model then)."""
    n = len(rewards)
    values_all = learner.value(np.concatenate([obs, next_obs]))  # one pass for both
    advantages, returns = compute_gae(
        rewards * cfg.reward_scale, values_all[:n], values_all[n:], terminated, episode_end,
        cfg.gamma, cfg.gae_lambda,
    )
    # The gradient is computed afresh into learner.grad (every element overwritten, nothing accumulates
    # across updates: the zeroing of the local gradients before each backward pass).
    losses = learner.loss_gradients(obs, actions, advantages, returns, cfg.value_coef, cfg.entropy_coef)
    grad = learner.grad
    grad_norm = float(np.sqrt(np.dot(grad, grad)))
    if not (np.isfinite(losses["loss"]) and np.isfinite(grad_norm)):
        return None
    if grad_norm > cfg.max_grad_norm:  # torch.nn.utils.clip_grad_norm_'s rule
        grad *= cfg.max_grad_norm / (grad_norm + 1e-6)
    lr = cfg.lr_at(global_steps)
    link.push(grad, lr)  # this update's gradient into the global Adam
    return {"policy_loss": losses["policy_loss"], "value_loss": losses["value_loss"],
            "entropy": losses["entropy"], "grad_norm": grad_norm, "lr": lr}


def worker_seed(cfg: TrainConfig, rank: int, restarts: int, resumed_steps: int) -> int:
    """cfg.seed + rank for a new run's first workers; a replacement worker or a resumed run's worker gets a seed
    of its own, so it does not replay the episodes its predecessor already learned from."""
    if restarts == 0 and resumed_steps == 0:
        return cfg.seed + rank
    return int(np.random.SeedSequence([cfg.seed, rank, restarts, resumed_steps]).generate_state(1)[0])


def worker_loop(rank: int, cfg: TrainConfig, shared: Shared, reports: Connection, seed: int) -> None:
    """The local backend's worker process: train until the stop flag is set. Reports go to the launcher
    through `reports` (this process's own pipe)."""
    become_child(f"a3c-worker-{rank + 1}")
    try:
        train_worker(rank, cfg, SharedMemoryLink(shared, rank, reports.send), seed, shared.run_dir)
    except BrokenPipeError:  # the launcher is gone: nobody to report to, nothing to train for
        pass
    exit_child()


def train_worker(rank: int, cfg: TrainConfig, link: WorkerLink, seed: int, run_dir: Path | None) -> None:
    """The worker loop of both backends, until `link` says stop: pull, act n steps, update, push. `link` is the
    way to the global model; `run_dir` holds the live board
    the viewer reads (None, or a directory without one: nothing is published)."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    env = make_env(cfg)
    n, obs_dim, action_dim = cfg.n_steps, env.obs_dim, env.robot.dof
    learner = NumpyActorCritic(ActorCritic.from_config(cfg, obs_dim, action_dim), own_copy=True)  # local copy
    raw_obs = np.zeros((n, obs_dim), np.float32)
    raw_next_obs = np.zeros((n, obs_dim), np.float32)
    actions = np.zeros((n, action_dim), np.float32)
    rewards = np.zeros(n, np.float32)
    terminated, episode_end = np.zeros(n, bool), np.zeros(n, bool)
    board = LiveBoard.attach(run_dir) if run_dir else None  # what a viewer shows
    recorder = board.recorder() if board else None
    episodes, task = 0, env.task
    obs, _ = env.reset(seed=seed)
    episode_return, episode_length, updates, skipped, losses, finished = 0.0, 0, 0, 0, [], []

    while link.running():
        norm = link.pull(learner.flat)  # 1. pull
        std = learner.std()
        for t in range(n):  # 2. act
            mean = learner.mean(normalize(obs, norm, cfg.obs_clip))
            action = mean + std * rng.standard_normal(action_dim).astype(np.float32)
            next_obs, reward, term, trunc, info = env.step(action)
            raw_obs[t], actions[t], rewards[t], raw_next_obs[t] = obs, action, reward, next_obs
            terminated[t], episode_end[t] = term, term or trunc
            episode_return += reward
            episode_length += 1
            if recorder:
                recorder.record(env.joint_positions, env.ee, task.draw_data())
            if term or trunc:
                finished.append((episode_return, episode_length, info["is_success"], task_metrics(env, info)))
                episodes += 1
                if board:
                    board.publish(rank, episodes, episode_return, info["is_success"], info["distance"], recorder)
                episode_return, episode_length = 0.0, 0
                next_obs, _ = env.reset()
            obs = next_obs
        global_steps = link.add_steps(n)
        stats = a3c_update(  # 3-6. advantages, loss, gradients, push
            cfg, learner, link, normalize(raw_obs, norm, cfg.obs_clip), actions, rewards,
            normalize(raw_next_obs, norm, cfg.obs_clip), terminated, episode_end, global_steps,
        )
        link.observe(raw_obs)
        updates += 1
        if stats is None:
            skipped += 1
        else:
            losses.append(stats)
        if updates % UPDATE_REPORT_EVERY == 0:
            summary = {k: float(np.mean([s[k] for s in losses])) for k in losses[0]} if losses else {}
            summary["policy_std"] = float(std.mean())
            # One report per UPDATE_REPORT_EVERY updates: the episodes finished and updates skipped since the last.
            link.report(("update", rank, skipped, summary, finished))
            losses.clear()
            skipped, finished = 0, []
    link.close()
    env.close()
