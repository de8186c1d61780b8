"""Stable-Baselines3 A2C or PPO on `ArmReach-v0`, timed and evaluated the way arm-a3c's evaluator does it: the
benchmark's baseline (`scripts/bench.py` runs this module in a process of its own).

Setup, as SB3 recommends for PyBullet tasks: N `SubprocVecEnv` environments (N = the number of A3C workers) under
`VecNormalize` (its defaults: observations and rewards normalised), each algorithm with its documented default
hyper-parameters ("MlpPolicy", device "cpu"). Every `eval_every_steps` environment steps the training pauses
and the current policy's deterministic action, on observations normalised with VecNormalize's current
statistics, runs the evaluator's seeded episodes (`TrainConfig.eval_episodes`); the evaluation time is left out
of the training clock.
Needs `requirements-bench.txt`.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

from arm_a3c.a3c.config import TrainConfig


def make_env(robot: str):
    from arm_a3c.envs import arm_env

    return arm_env.make_env(robot=robot)


def train_sb3(algo: str, robot: str, n_envs: int, seconds: float, target_success: float, seed: int = 0,
              eval_every_steps: int | None = None) -> dict:
    """Train until the evaluator's success rate reaches `target_success` or `seconds` of training pass."""
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecNormalize

    from arm_a3c.envs.episodes import run_episodes

    defaults = TrainConfig()
    every = eval_every_steps or defaults.eval_every_steps
    started = time.monotonic()
    venv = VecNormalize(make_vec_env(functools.partial(make_env, robot), n_envs=n_envs, seed=seed,
                                     vec_env_cls=SubprocVecEnv, vec_env_kwargs={"start_method": "spawn"}))
    model = {"a2c": A2C, "ppo": PPO}[algo]("MlpPolicy", venv, seed=seed, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes an empty /tmp/SB3-DATE per run
    eval_env = make_env(robot)
    rows: list[dict] = []
    paused = [0.0]  # seconds spent evaluating: not training time

    def evaluate(steps: int) -> float:
        began = time.monotonic()
        training_time = began - started - paused[0]
        result = run_episodes(eval_env, lambda obs: model.predict(venv.normalize_obs(obs), deterministic=True)[0],
                              defaults.eval_episodes, defaults.eval_seed)
        paused[0] += time.monotonic() - began
        rows.append({"env_steps": steps, "wall_seconds": round(training_time, 2),
                     "success_rate": result["success_rate"],
                     "mean_final_distance_m": result["mean_final_distance_m"]})
        return result["success_rate"]

    class EvaluateAndStop(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next_eval = 0

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.next_eval = self.num_timesteps + every
                if evaluate(self.num_timesteps) >= target_success:
                    return False
            return time.monotonic() - started - paused[0] < seconds

    model.learn(total_timesteps=10**12, callback=EvaluateAndStop())
    training_seconds = time.monotonic() - started - paused[0]
    venv.close()
    eval_env.close()
    reached = next((r for r in rows if r["success_rate"] >= target_success), None)
    return {"algo": algo, "robot": robot, "seed": seed, "n_envs": n_envs, "training_seconds": round(training_seconds, 1),
            "env_steps": int(model.num_timesteps), "evaluations": rows,
            "best_success_rate": max(r["success_rate"] for r in rows),
            "time_to_target_s": reached["wall_seconds"] if reached else None,
            "steps_to_target": reached["env_steps"] if reached else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("algo", choices=["a2c", "ppo"])
    parser.add_argument("--robot", default="light_arm")
    parser.add_argument("--envs", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--target-success", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every-steps", type=int)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = train_sb3(args.algo, args.robot, args.envs, args.seconds, args.target_success, seed=args.seed,
                       eval_every_steps=args.eval_every_steps)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
