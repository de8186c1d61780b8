"""The A3C worker (Mnih et al. 2016, Algorithm S3), one process per core. Each loop:

1. pull: copy the global weights into the local Actor-Critic;
2. act for n steps in its own environment, sampling from the Gaussian policy;
3. compute GAE(lambda) advantages, bootstrapping from the value where the episode was cut by its time limit
   (terminal only where the task really ended);
4. loss = policy loss + value_coef * value loss - entropy_coef * entropy;
5. zero the local gradients, backpropagate, clip the gradient norm;
6. push: hand the local gradients to the global parameters and step the shared optimizer.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

import numpy as np
import torch

from arm_a3c.config import TrainConfig
from arm_a3c.env import ArmReachEnv
from arm_a3c.live import LiveBoard
from arm_a3c.model import ActorCritic, NumpyActor
from arm_a3c.shared import Shared, become_child, exit_child

UPDATE_REPORT_EVERY = 20  # updates between loss reports to the launcher


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


def push_gradients(local: ActorCritic, shared: ActorCritic) -> None:
    """Point the global parameters' gradients at this worker's fresh local gradients (done on every update:
    keeping the first assignment, as some A3C code does, silently reuses stale tensors once `zero_grad` sets
    gradients to None, torch's default since 2.0)."""
    for local_param, shared_param in zip(local.param_list(), shared.param_list()):
        shared_param.grad = local_param.grad


def a3c_update(cfg: TrainConfig, local: ActorCritic, shared: Shared, obs: np.ndarray, actions: np.ndarray,
               rewards: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray, episode_end: np.ndarray,
               global_steps: int) -> dict | None:
    """One A3C update from a rollout of normalised observations. Returns loss figures, or None when the loss
    or gradient was not finite and the update was skipped (nothing reaches the shared model then)."""
    obs_t, actions_t = torch.from_numpy(obs), torch.from_numpy(actions)
    _, logprobs, entropy, values = local.get_action_and_value(obs_t, actions_t)
    with torch.no_grad():
        next_values = local.get_value(torch.from_numpy(next_obs)).numpy()
    advantages, returns = compute_gae(
        rewards * cfg.reward_scale, values.detach().numpy(), next_values, terminated, episode_end,
        cfg.gamma, cfg.gae_lambda,
    )
    advantages_t, returns_t = torch.from_numpy(advantages), torch.from_numpy(returns)
    policy_loss = -(logprobs * advantages_t).mean()
    value_loss = 0.5 * (returns_t - values).pow(2).mean()
    entropy_mean = entropy.mean()
    loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy_mean

    local.zero_grad(set_to_none=True)  # fresh gradients every update: nothing accumulates across updates
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(local.param_list(), cfg.max_grad_norm)
    if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
        return None
    push_gradients(local, shared.model)
    lr = cfg.lr_at(global_steps)
    for group in shared.optimizer.param_groups:
        group["lr"] = lr
    if shared.update_lock is not None:
        with shared.update_lock:
            shared.optimizer.step()
    else:
        shared.optimizer.step()
    return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy_mean.item(),
            "grad_norm": grad_norm.item(), "lr": lr}


def worker_seed(cfg: TrainConfig, rank: int, restarts: int, resumed_steps: int) -> int:
    """cfg.seed + rank for a new run's first workers; a replacement worker or a resumed run's worker gets a seed
    of its own, so it does not replay the episodes its predecessor already learned from."""
    if restarts == 0 and resumed_steps == 0:
        return cfg.seed + rank
    return int(np.random.SeedSequence([cfg.seed, rank, restarts, resumed_steps]).generate_state(1)[0])


def worker_loop(rank: int, cfg: TrainConfig, shared: Shared, reports: Connection, seed: int) -> None:
    """Train until the stop flag is set: pull, act n steps, update, push. Reports go to the launcher through
    `reports` (this process's own pipe)."""
    become_child(f"a3c-worker-{rank + 1}")
    try:
        _train(rank, cfg, shared, reports, seed)
    except BrokenPipeError:  # the launcher is gone: nobody to report to, nothing to train for
        pass
    exit_child()


def _train(rank: int, cfg: TrainConfig, shared: Shared, reports: Connection, seed: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = ArmReachEnv(cfg.robot, ee_link=cfg.ee_link)
    local = ActorCritic.from_config(cfg, env.obs_dim, env.robot.dof)
    n, obs_dim, action_dim = cfg.n_steps, env.obs_dim, env.robot.dof
    raw_obs = np.zeros((n, obs_dim), np.float32)
    raw_next_obs = np.zeros((n, obs_dim), np.float32)
    actions = np.zeros((n, action_dim), np.float32)
    rewards = np.zeros(n, np.float32)
    terminated, episode_end = np.zeros(n, bool), np.zeros(n, bool)
    actor = NumpyActor(local)  # views of the local weights: acting without torch's per-call cost
    board = LiveBoard.attach(shared.run_dir) if shared.run_dir else None  # what a viewer shows
    recorder = board.recorder() if board else None
    episodes, ee_slice = 0, slice(2 * action_dim, 2 * action_dim + 3)  # the end effector in the observation
    obs, _ = env.reset(seed=seed)
    episode_return, episode_length, updates, skipped, losses = 0.0, 0, 0, 0, []

    while shared.running():
        local.copy_from(shared.model)  # 1. pull
        norm = shared.normalizer.snapshot()
        std = local.action_std().detach().numpy()
        for t in range(n):  # 2. act
            mean = actor.mean(shared.normalizer.normalize(obs, norm))
            action = mean + std * rng.standard_normal(action_dim).astype(np.float32)
            next_obs, reward, term, trunc, info = env.step(action)
            raw_obs[t], actions[t], rewards[t], raw_next_obs[t] = obs, action, reward, next_obs
            terminated[t], episode_end[t] = term, term or trunc
            episode_return += reward
            episode_length += 1
            if recorder:
                recorder.record(env.joint_positions, next_obs[ee_slice])
            if term or trunc:
                reports.send(("episode", rank, episode_return, episode_length, info["is_success"],
                              info["distance"]))
                episodes += 1
                if board:
                    board.publish(rank, episodes, episode_return, info["distance"], env.target.tolist(), recorder)
                episode_return, episode_length = 0.0, 0
                next_obs, _ = env.reset()
            obs = next_obs
        global_steps = shared.add_steps(rank, n)
        stats = a3c_update(  # 3-6. advantages, loss, backward, push
            cfg, local, shared, shared.normalizer.normalize(raw_obs, norm), actions, rewards,
            shared.normalizer.normalize(raw_next_obs, norm), terminated, episode_end, global_steps,
        )
        shared.normalizer.update(raw_obs, writer=rank)
        updates += 1
        if stats is None:
            skipped += 1
        else:
            losses.append(stats)
        if updates % UPDATE_REPORT_EVERY == 0:
            summary = {k: float(np.mean([s[k] for s in losses])) for k in losses[0]} if losses else {}
            summary["policy_std"] = float(std.mean())
            reports.send(("update", rank, skipped, summary))  # skipped since the last report
            losses.clear()
            skipped = 0
    env.close()
