"""The A3C worker (Mnih et al. 2016, Algorithm S3), one process per core. Each loop:

1. pull: copy the global weights into the local Actor-Critic;
2. act for n steps in its own environment, sampling from the Gaussian policy;
3. compute GAE(lambda) advantages, bootstrapping from the value where the episode was cut by its time limit
   (terminal only where the task really ended);
4. loss = policy loss + value_coef * value loss - entropy_coef * entropy;
5. compute the local gradients afresh (numpy, `model.NumpyActorCritic`), clip their norm;
6. push: step the shared optimizer with them, on the global parameters.

The loop (`train_worker`) reaches the global model through a link: shared memory on one machine
(`shared.SharedMemoryLink`), a parameter-server actor with `--backend ray` (`backends.ray_worker.RayLink`): any
`interfaces.WorkerLink`. The loss is written out in `model.NumpyActorCritic.loss_gradients` (its docstring
has the formula; tests hold its gradients to autograd's).
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import torch

from arm_a3c.a3c.children import become_child, exit_child
from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.interfaces import WorkerLink
from arm_a3c.a3c.live import LiveBoard
from arm_a3c.a3c.model import ActorCritic, NumpyActorCritic
from arm_a3c.a3c.normalizer import normalize
from arm_a3c.a3c.shared import Shared, SharedMemoryLink
from arm_a3c.envs.arm_env import make_env
from arm_a3c.envs.episodes import task_metrics

BUDGET_SPENT_POLL_S = 0.05  # how often a worker whose run has used its --max-steps looks for the stop
UPDATE_REPORT_EVERY = 20  # updates between reports to the launcher (400 steps: a few episodes)


def compute_gae(rewards: np.ndarray, values: np.ndarray, next_values: np.ndarray, terminated: np.ndarray,
                episode_end: np.ndarray, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """GAE(lambda) advantages and value targets (returns) for one rollout, all arrays (T,).

    `next_values[t]` is the value of the observation that followed step t (for the last step of an episode, the
    episode's final observation, not the next episode's first). `terminated[t]`: the task ended, so nothing
    follows and no bootstrap. `episode_end[t]`: terminated or truncated; the advantage recursion stops there.
    A truncated step therefore bootstraps from its own next value, as if the episode went on.
    """
    # Over Python floats: indexing numpy arrays element by element cost twice as much at T = 20.
    r, v, nv = rewards.tolist(), values.tolist(), next_values.tolist()
    term, end = terminated.tolist(), episode_end.tolist()
    advantages = [0.0] * len(r)
    running = 0.0
    for t in reversed(range(len(r))):
        bootstrap = 0.0 if term[t] else gamma * nv[t]
        delta = r[t] + bootstrap - v[t]
        running = delta + (0.0 if end[t] else gamma * lam * running)
        advantages[t] = running
    advantages = np.array(advantages, dtype=rewards.dtype)
    return advantages, advantages + values


class Rollout:
    """A worker's n steps between two updates, kept the way the update needs them, in buffers reused every time.

    Acting computes, for each step, the normalised observation and the actor's activations (`act`); the update
    uses those instead of computing them again. Of the observations that followed each step, only those that
    are not the next step's own observation are kept (`record`): the final observations of the episodes that
    ended and the one after the rollout's last step. Their values are the only ones the returns need beyond the
    steps' own (every other step's next observation is the following step's), so the critic's forward pass
    covers n + (episodes ended) + 1 rows, not 2n. The noise of all n actions is drawn at once (`begin`).
    `bench.training` acts through this class too, so its policy-action limit costs what a worker's acting does.
    """

    def __init__(self, learner: NumpyActorCritic, n: int, obs_dim: int, action_dim: int, clip: float):
        hidden = learner.hidden_size
        self.learner, self.n, self.clip = learner, n, clip
        self.critic_in = np.zeros((2 * n, obs_dim), np.float32)  # the steps' normalised observations, then the
        self.obs = self.critic_in[:n]                            # kept next observations (`tail`), normalised
        self.raw_obs = np.zeros((n, obs_dim), np.float32)
        self.h1, self.h2 = np.zeros((n, hidden), np.float32), np.zeros((n, hidden), np.float32)
        self.mean, self.actions = np.zeros((n, action_dim), np.float32), np.zeros((n, action_dim), np.float32)
        self.noise = np.zeros((n, action_dim), np.float32)
        self.rewards = np.zeros(n, np.float32)
        self.terminated, self.episode_end = np.zeros(n, bool), np.zeros(n, bool)
        self.tail: list[int] = []  # the steps whose next observation is critic_in[n + i]
        self.norm = (np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32))

    def begin(self, norm: tuple[np.ndarray, np.ndarray], std: np.ndarray, rng: np.random.Generator) -> None:
        """Start a rollout with the normaliser's snapshot (mean, 1/std) and the policy's standard deviation."""
        self.norm = norm
        self.tail.clear()
        np.multiply(rng.standard_normal(self.noise.shape, dtype=np.float32), std, out=self.noise)

    def act(self, t: int, raw_obs: np.ndarray) -> np.ndarray:
        """Step t's action for this raw observation: the policy's mean plus the rollout's noise (a view into the
        rollout's buffer)."""
        self.raw_obs[t] = raw_obs
        x = normalize(raw_obs, self.norm, self.clip, out=self.obs[t])
        mean = self.learner.mean_into(x, self.h1[t], self.h2[t], self.mean[t])
        return np.add(mean, self.noise[t], out=self.actions[t])

    def record(self, t: int, next_obs: np.ndarray, reward: float, terminated: bool, truncated: bool) -> None:
        """What followed step t's action (`next_obs`: the episode's final observation if it ended)."""
        self.rewards[t], self.terminated[t], self.episode_end[t] = reward, terminated, terminated or truncated
        if terminated or truncated or t == self.n - 1:
            normalize(next_obs, self.norm, self.clip, out=self.critic_in[self.n + len(self.tail)])
            self.tail.append(t)

    def next_values(self, values: np.ndarray) -> np.ndarray:
        """The values of the observations that followed each step, from the critic's values of `critic_in`'s
        first n + len(tail) rows."""
        n = self.n
        following = np.empty(n, values.dtype)
        following[:-1] = values[1:n]  # step t + 1's own observation followed step t ...
        following[self.tail] = values[n:n + len(self.tail)]  # ... except where an episode ended, and at the end
        return following


def a3c_update(cfg: TrainConfig, learner: NumpyActorCritic, link: WorkerLink, rollout: Rollout,
               global_steps: int) -> dict | None:
    """One A3C update from a rollout, with the worker's local weights in `learner` (those the rollout acted with);
    the clipped gradient is pushed through `link`.
    Returns loss figures, or None when the loss or gradient was not finite and the update was skipped
    (nothing reaches the global model then)."""
    n = rollout.n
    critic = learner._critic_forward(rollout.critic_in[:n + len(rollout.tail)])  # the steps' and the kept next obs
    values_all = critic[-1][:, 0]
    advantages, returns = compute_gae(
        rollout.rewards * cfg.reward_scale, values_all[:n], rollout.next_values(values_all), rollout.terminated,
        rollout.episode_end, cfg.gamma, cfg.gae_lambda,
    )
    # The gradient is computed afresh into learner.grad (every element overwritten, nothing accumulates
    # across updates: the zeroing of the local gradients before each backward pass).
    losses = learner.loss_gradients(rollout.obs, rollout.actions, advantages, returns, cfg.value_coef,
                                    cfg.entropy_coef, actor_forward=(rollout.h1, rollout.h2, rollout.mean),
                                    critic_forward=[c[:n] for c in critic])
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
    rollout = Rollout(learner, n, obs_dim, action_dim, cfg.obs_clip)
    board = LiveBoard.attach(run_dir) if run_dir else None  # what a viewer shows
    recorder = board.recorder() if board else None
    episodes = 0
    obs, _ = env.reset(seed=seed)
    episode_return, episode_length, updates, skipped, losses, finished = 0.0, 0, 0, 0, [], []
    recording = False  # this episode is being recorded for a viewer (one watched the board when it began)
    cpu_mark = time.process_time()  # this process's CPU seconds at its last report (the loop's, not the start-up's)

    while link.running():
        norm = link.pull(learner.flat)  # 1. pull
        if cfg.max_steps and link.add_steps(0) >= cfg.max_steps:
            time.sleep(BUDGET_SPENT_POLL_S)  # the step budget is spent: only the launcher's stop is awaited
            continue
        std = learner.std()
        rollout.begin(norm, std, rng)
        watched = board is not None and board.watched()  # looked at once per update: recording starts with an episode
        for t in range(n):  # 2. act
            next_obs, reward, term, trunc, info = env.step(rollout.act(t, obs))
            rollout.record(t, next_obs, reward, term, trunc)
            episode_return += reward
            episode_length += 1
            if recording:
                recorder.record(env.joint_positions, env.ee, env.draw_data())
            if term or trunc:
                finished.append((episode_return, episode_length, info["is_success"], task_metrics(env, info)))
                episodes += 1
                if recording:
                    board.publish(rank, episodes, episode_return, info["is_success"], info["distance"], recorder)
                recording = watched
                episode_return, episode_length = 0.0, 0
                next_obs, _ = env.reset()
            obs = next_obs
        global_steps = link.add_steps(n)
        stats = a3c_update(cfg, learner, link, rollout, global_steps)  # 3-6. advantages, loss, gradients, push
        link.observe(rollout.raw_obs)
        updates += 1
        if stats is None:
            skipped += 1
        else:
            losses.append(stats)
        if updates % UPDATE_REPORT_EVERY == 0:
            summary = {k: float(np.mean([s[k] for s in losses])) for k in losses[0]} if losses else {}
            summary["policy_std"] = float(std.mean())
            # One report per UPDATE_REPORT_EVERY updates: the episodes finished and updates skipped since the last.
            cpu_now = time.process_time()
            link.report(("update", rank, skipped, summary, finished, cpu_now - cpu_mark))
            cpu_mark = cpu_now
            losses.clear()
            skipped, finished = 0, []
    link.close()
    env.close()
