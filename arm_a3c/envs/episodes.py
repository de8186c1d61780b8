"""The one episode loop: reset with a seed, act until the episode ends, judge it by its last step.

Everyone who plays whole episodes goes through here, so success and distance are counted one way: the
evaluator and `evaluate.py` (the policy's mean action), the IK oracle, the viewer's replay (which records every
step with `on_step`), and the benchmark's Stable-Baselines3 policies.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import gymnasium
import numpy as np

Act = Callable[[np.ndarray], np.ndarray]  # observation -> action
PROGRESS_SECONDS = 10.0  # a long evaluation, held-out test or run of an exported policy says how far it has got
FIRST_PROGRESS_SECONDS = 3.0  # ... first this soon, so that a slow start is not mistaken for a hang


@dataclass(frozen=True)
class EpisodeResult:
    success: bool  # info["is_success"] of the last step
    final_distance_m: float  # info["distance"] of the last step
    episode_return: float  # sum of the rewards
    length: int  # steps taken
    reached: bool  # info["is_success"] on any step (an episode that reached but did not stay is not a success)
    metrics: dict = field(default_factory=dict)  # the task's episode figures (`Task.metrics`), from the last step
    speed_fraction: float = 0.0  # the largest joint speed of the episode as a fraction of its URDF velocity limit
    self_contact: bool = False  # two links of the arm touched (`sim.contacts`)
    floor_contact: bool = False  # a moving link touched the floor


def task_metrics(env: gymnasium.Env, info: dict) -> dict:
    """The task's episode figures from the last step's info: {name: value} for each of `Task.metrics`."""
    task = getattr(env.unwrapped, "task", None)
    names = task.metrics if task is not None else {"final_distance_m": "distance"}
    return {name: float(info[key]) for name, key in names.items()}


def run_episode(env: gymnasium.Env, act: Act, seed: int | None = None, options: dict | None = None,
                on_step: Callable[[], None] | None = None) -> EpisodeResult:
    """Play one episode of `env` from `reset(seed=seed, options=options)`, acting with `act`; `on_step()` runs
    after every step (to record the arm, say)."""
    obs, info = env.reset(seed=seed, options=options)
    total, length, done, reached = 0.0, 0, False, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        total += reward
        length += 1
        reached = reached or bool(info["is_success"])
        done = terminated or truncated
        if on_step is not None:
            on_step()
    return EpisodeResult(bool(info["is_success"]), float(info["distance"]), float(total), length, reached,
                         task_metrics(env, info), float(info.get("speed_fraction", 0.0)),
                         bool(info.get("self_contact", False)), bool(info.get("floor_contact", False)))


def run_episodes(env: gymnasium.Env, act: Act, episodes: int, seed: int,
                 keep_going: Callable[[], bool] = lambda: True, screen: tuple[int, int] | None = None) -> dict | None:
    """Episodes with seeds seed, seed+1, ...: `success_rate`, `mean_return`, `reached_rate` (the share that met
    the success test on some step: above `success_rate`, the policy reaches but does not stay), `episodes`, `seed`,
    and `mean_<name>` of each of the task's episode figures (every task has `mean_final_distance_m`, m). None if
    `keep_going` turned false between two episodes (a run that is stopping has no time for the rest).

    `screen` = (k, f): from the k-th episode on, stop as soon as more than f episodes have failed, and give the
    figures of the episodes played (`episodes` says how many: k or more). The evaluator screens with f = the
    failures its target allows in all the episodes: a screened-out evaluation could not have reached the target."""
    results, failures = [], 0
    watch = getattr(env.unwrapped, "watch_contacts", None)
    if watch is not None:  # every evaluation counts the arm's contacts with itself and the floor
        watch()
    for episode in range(episodes):
        if not keep_going():
            return None
        results.append(run_episode(env, act, seed + episode))
        failures += not results[-1].success
        if screen is not None and len(results) >= screen[0] and failures > screen[1]:
            break  # screened out: the figures are those of the episodes played
    summary = {"success_rate": sum(r.success for r in results) / len(results),
               "mean_final_distance_m": float(np.mean([r.final_distance_m for r in results])),
               "mean_return": float(np.mean([r.episode_return for r in results])),
               "reached_rate": sum(r.reached for r in results) / len(results), "episodes": len(results),
               "seed": seed,
               # safety: the largest joint speed of any episode as a fraction of the joint's URDF velocity limit,
               # and the share of episodes in which some joint went faster than its limit
               "max_speed_fraction": max(r.speed_fraction for r in results),
               "over_speed_rate": sum(r.speed_fraction > 1.0 for r in results) / len(results),
               # and the shares of episodes in which two links of the arm, or a moving link and the floor, touched
               "self_contact_rate": sum(r.self_contact for r in results) / len(results),
               "floor_contact_rate": sum(r.floor_contact for r in results) / len(results)}
    for name in results[0].metrics:
        summary[f"mean_{name}"] = float(np.mean([r.metrics[name] for r in results]))
    return summary


class EpisodeProgress:
    """`keep_going` for `run_episodes` that says how far a long evaluation has got (a line on stderr after
    `FIRST_PROGRESS_SECONDS`, then every `PROGRESS_SECONDS`) and ends it once `stop()` turns true."""

    def __init__(self, total: int, what: str, stop: Callable[[], bool] = lambda: False):
        self.total, self.what, self.stop = total, what, stop
        self.played = -1
        self._next = time.monotonic() + FIRST_PROGRESS_SECONDS

    def __call__(self) -> bool:
        self.played += 1
        now = time.monotonic()
        if now >= self._next:
            self._next = now + PROGRESS_SECONDS
            print(f"{self.what}: {self.played:,} of {self.total:,} episodes played", file=sys.stderr, flush=True)
        return not self.stop()
