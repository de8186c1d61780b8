"""The training benchmark's settings (`BenchOptions`, the `--quick` ones) and its goals: what `training`, `progress`
and `report` share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding arm_a3c/ (the benchmark's processes import it)

TUNED_PEERS = ("a2c", "ppo", "sac", "td3", "tqc")  # the default --peers: the zoo's ReacherBulletEnv-v0 settings
# Also tuned, with the zoo's settings for a reaching arm (FetchReach-v1); not in the default --peers. Every tuned peer
# a benchmark ran counts for its "fastest tuned peer".
REACH_TUNED_PEERS = ("sac-reach", "tqc-reach")
ALL_TUNED_PEERS = TUNED_PEERS + REACH_TUNED_PEERS

GOALS = {"time_ratio": 0.5, "policy_limit_ratio": 0.9, "pss_mb": 1024.0}

NEVER_STOPS = 1_000_000  # the throughput runs' --target-streak

@dataclass
class BenchOptions:
    robots: tuple[str, ...] = ("light_arm", "kuka_iiwa")
    workers: int = os.cpu_count() or 1
    limit_seconds: float = 30.0  # how long the limit's processes step
    throughput_seconds: float = 90.0  # length of each throughput training run
    throughput_steps: int = 0  # ... or this many environment steps, if that comes first (0: no step limit)
    budget_seconds: float = 600.0  # time budget of each time-to-success run (arm-a3c and every peer)
    first_target: float = 0.8
    target_success: float = 0.95  # the runs stop here
    seeds: tuple[int, ...] = (0, 1, 2)  # one time-to-success run per seed and algorithm
    peers: tuple[str, ...] = TUNED_PEERS
    test_episodes: int = 200
    eval_episodes: int = 100  # the evaluator's seeded episodes per evaluation, arm-a3c's and every peer's

# A smoke test of the benchmark, not a measurement: the throughput runs end after a few thousand steps, so they
# step for a while after their processes' start-up however long that takes (4-second runs once made 37 steps/s).
QUICK = dict(limit_seconds=0.5, throughput_seconds=60.0, throughput_steps=10_000, budget_seconds=2.0, seeds=(0,),
             test_episodes=10, eval_episodes=10)
