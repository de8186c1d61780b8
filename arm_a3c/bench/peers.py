"""The benchmark's peers: Stable-Baselines3 and sb3-contrib algorithms on `ArmReach-v0`, timed and evaluated the
way arm-a3c's evaluator does it (`scripts/bench.py` runs this module in a process of its own per run).

Settings: each tuned peer takes rl-baselines3-zoo's tuned hyper-parameters (package rl-zoo3 2.9.2, file and entry
named in `PEERS`) for ReacherBulletEnv-v0, the nearest task the zoo tunes: a dense-reward PyBullet arm reaching a
random point with joint commands. "-reach" peers take the zoo's settings for a reaching arm instead
(FetchReach-v1) without its HER replay buffer: the zoo's reach entries are sparse-reward and goal-conditioned,
which a dense reach environment whose observation holds the goal is not. Learning-rate schedules ("lin_X") decay
over the zoo's `n_timesteps`, which is also each run's step limit. "-defaults" peers run at the library's own
defaults.

Cores: on-policy peers (A2C, PPO) step N `SubprocVecEnv` environments (N = the cores, as arm-a3c's workers);
off-policy peers (SAC, TD3, TQC) step one environment and train with N torch threads (their time goes into
gradient steps). The evaluator: every `eval_every_steps` environment steps (5,000 for off-policy peers, 50,000
for on-policy ones, as arm-a3c's) the training pauses and the deterministic policy, on observations normalised
with VecNormalize's current statistics when the peer normalises, runs the evaluator's seeded episodes; the
evaluation time is left out of the training clock. The best evaluated policy is kept (as arm-a3c's best.pt) and
plays the held-out test episodes at the end.
Needs `requirements-bench.txt`.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from arm_a3c.a3c.config import TrainConfig

OFF_POLICY_EVAL_EVERY = 5_000
ON_POLICY_EVAL_EVERY = 50_000
ZOO = "rl-baselines3-zoo (rl-zoo3 2.9.2) hyperparams"


@dataclass(frozen=True)
class Peer:
    algo: str  # "module:Class"
    source: str  # where the settings come from
    settings: dict = field(default_factory=dict)  # constructor arguments; "lin_X" learning rates are schedules
    policy_kwargs: dict = field(default_factory=dict)
    normalize: bool = False  # VecNormalize (observations and rewards)
    n_timesteps: int = 10**9  # the zoo's training length: schedules decay over it and the run stops there

    @property
    def off_policy(self) -> bool:
        return self.algo.split(":")[1] in ("SAC", "TD3", "TQC")


PYBULLET_SAC = dict(learning_rate=7.3e-4, buffer_size=300_000, batch_size=256, ent_coef="auto", gamma=0.98,
                    tau=0.02, train_freq=8, gradient_steps=8, learning_starts=10_000, use_sde=True)
REACH_SAC = dict(learning_rate=1e-3, buffer_size=1_000_000, batch_size=256, ent_coef="auto", gamma=0.95,
                 learning_starts=1_000)
PEERS: dict[str, Peer] = {
    # a2c.yml, ReacherBulletEnv-v0 (<< pybullet-defaults, learning_rate lin_0.0008): "tuned but unstable"
    "a2c": Peer("stable_baselines3:A2C", f"{ZOO}/a2c.yml ReacherBulletEnv-v0",
                dict(ent_coef=0.0, max_grad_norm=0.5, n_steps=8, gae_lambda=0.9, vf_coef=0.4, gamma=0.99,
                     use_rms_prop=True, normalize_advantage=False, learning_rate="lin_0.0008", use_sde=True),
                dict(log_std_init=-2, ortho_init=False), normalize=True, n_timesteps=2_000_000),
    # ppo.yml, ReacherBulletEnv-v0
    "ppo": Peer("stable_baselines3:PPO", f"{ZOO}/ppo.yml ReacherBulletEnv-v0",
                dict(batch_size=64, n_steps=512, gamma=0.99, gae_lambda=0.9, n_epochs=20, ent_coef=0.0,
                     sde_sample_freq=4, max_grad_norm=0.5, vf_coef=0.5, learning_rate=3e-5, use_sde=True,
                     clip_range="lin_0.4"),
                dict(log_std_init=-2.7, ortho_init=False, activation_fn="relu",
                     net_arch=dict(pi=[256, 256], vf=[256, 256])), normalize=True, n_timesteps=1_000_000),
    # sac.yml, ReacherBulletEnv-v0 (<< pybullet-defaults)
    "sac": Peer("stable_baselines3:SAC", f"{ZOO}/sac.yml ReacherBulletEnv-v0", PYBULLET_SAC,
                dict(log_std_init=-3, net_arch=[400, 300]), n_timesteps=300_000),
    # td3.yml, ReacherBulletEnv-v0 (<< pybullet-defaults)
    "td3": Peer("stable_baselines3:TD3", f"{ZOO}/td3.yml ReacherBulletEnv-v0",
                dict(gamma=0.98, buffer_size=200_000, learning_starts=10_000, noise_std=0.1, gradient_steps=1,
                     train_freq=1, batch_size=256, learning_rate=7e-4),
                dict(net_arch=[400, 300]), n_timesteps=300_000),
    # tqc.yml, ReacherBulletEnv-v0 (<< pybullet-defaults)
    "tqc": Peer("sb3_contrib:TQC", f"{ZOO}/tqc.yml ReacherBulletEnv-v0", PYBULLET_SAC,
                dict(log_std_init=-3, net_arch=[400, 300], use_expln=True), n_timesteps=300_000),
    # Settings for a reaching arm: the zoo's FetchReach-v1 entries (sac.yml: SB3's default 256x256 network;
    # tqc.yml: 64x64, one critic) without their HER replay buffer (ArmReach-v0 is not a goal-conditioned
    # environment: its observation holds the goal, its reward is dense). The zoo trains FetchReach for 20,000 steps;
    # here the time budget ends a run (no schedule decays over n_timesteps).
    "sac-reach": Peer("stable_baselines3:SAC", f"{ZOO}/sac.yml FetchReach-v1 (without HER)", REACH_SAC,
                      normalize=True),
    "tqc-reach": Peer("sb3_contrib:TQC", f"{ZOO}/tqc.yml FetchReach-v1 (without HER)", REACH_SAC,
                      dict(net_arch=[64, 64], n_critics=1), normalize=True),
    # the libraries' defaults, as the benchmark ran them before the zoo's settings
    "a2c-defaults": Peer("stable_baselines3:A2C", "Stable-Baselines3 2.9.2 defaults", normalize=True),
    "ppo-defaults": Peer("stable_baselines3:PPO", "Stable-Baselines3 2.9.2 defaults", normalize=True),
}


def make_env(robot: str):
    from arm_a3c.envs import arm_env

    return arm_env.make_env(robot=robot)


def _schedule(value):
    """The zoo's "lin_X": X decaying linearly to 0 over the training (SB3 passes the remaining fraction)."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])
        return lambda remaining: remaining * start
    return value


def build(name: str, venv, seed: int):
    """The peer's SB3 model on `venv`, with its settings."""
    import importlib

    import numpy as np
    from torch import nn

    peer = PEERS[name]
    module, cls = peer.algo.split(":")
    settings = {key: _schedule(value) for key, value in peer.settings.items()}
    if "noise_std" in settings:  # TD3: the zoo's noise_type normal
        from stable_baselines3.common.noise import NormalActionNoise

        dof = venv.action_space.shape[0]
        settings["action_noise"] = NormalActionNoise(np.zeros(dof), settings.pop("noise_std") * np.ones(dof))
    policy_kwargs = dict(peer.policy_kwargs)
    if policy_kwargs.get("activation_fn") == "relu":
        policy_kwargs["activation_fn"] = nn.ReLU
    algorithm = getattr(importlib.import_module(module), cls)
    return algorithm("MlpPolicy", venv, seed=seed, device="cpu", policy_kwargs=policy_kwargs or None, **settings)


def train_peer(name: str, robot: str, n_cores: int, seconds: float, target_success: float, seed: int = 0,
               eval_every_steps: int | None = None, test_episodes: int | None = None,
               first_target: float | None = None, eval_episodes: int | None = None) -> dict:
    """Train until the evaluator's success rate reaches `target_success`, `seconds` of training pass or the zoo's
    step count is done; then the best evaluated policy plays the held-out test episodes."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    from arm_a3c.a3c.metrics import time_to_success
    from arm_a3c.envs.episodes import run_episodes

    peer = PEERS[name]
    defaults = TrainConfig()
    every = eval_every_steps or (OFF_POLICY_EVAL_EVERY if peer.off_policy else ON_POLICY_EVAL_EVERY)
    torch.set_num_threads(n_cores if peer.off_policy else 1)  # off-policy: the cores train; on-policy: they step
    started = time.monotonic()
    if peer.off_policy:
        venv = make_vec_env(functools.partial(make_env, robot), n_envs=1, seed=seed, vec_env_cls=DummyVecEnv)
    else:
        venv = make_vec_env(functools.partial(make_env, robot), n_envs=n_cores, seed=seed,
                            vec_env_cls=SubprocVecEnv, vec_env_kwargs={"start_method": "spawn"})
    if peer.normalize:
        venv = VecNormalize(venv)
    model = build(name, venv, seed)
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes an empty /tmp/SB3-DATE per run
    eval_env = make_env(robot)
    rows: list[dict] = []
    paused = [0.0]  # seconds spent evaluating: not training time
    best = {"success_rate": -1.0}

    def act_with(policy, obs_rms):
        if obs_rms is None:
            return lambda obs: policy.predict(obs, deterministic=True)[0]
        normaliser = copy.copy(venv)
        normaliser.obs_rms = obs_rms
        return lambda obs: policy.predict(normaliser.normalize_obs(obs), deterministic=True)[0]

    def evaluate(steps: int) -> float:
        began = time.monotonic()
        training_time = began - started - paused[0]
        obs_rms = copy.deepcopy(venv.obs_rms) if peer.normalize else None
        episodes = eval_episodes if eval_episodes is not None else defaults.eval_episodes
        result = run_episodes(eval_env, act_with(model.policy, obs_rms), episodes, defaults.eval_seed)
        if result["success_rate"] > best["success_rate"]:  # arm-a3c's rule for best.pt
            best.update(success_rate=result["success_rate"], env_steps=steps, obs_rms=obs_rms,
                        weights={k: v.detach().clone() for k, v in model.policy.state_dict().items()})
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

    model.learn(total_timesteps=peer.n_timesteps, callback=EvaluateAndStop())
    training_seconds = time.monotonic() - started - paused[0]
    if rows[-1]["env_steps"] != model.num_timesteps:
        evaluate(int(model.num_timesteps))  # the last policy too, as arm-a3c's final evaluation
    venv.close()
    test_n = test_episodes if test_episodes is not None else defaults.test_episodes
    model.policy.load_state_dict(best["weights"])  # the best evaluated policy, as arm-a3c's best.pt
    test = run_episodes(eval_env, act_with(model.policy, best["obs_rms"]), test_n, defaults.test_seed)
    eval_env.close()
    reached = time_to_success(rows, target_success)
    first = time_to_success(rows, first_target) if first_target is not None else None
    return {"peer": name, "algo": peer.algo, "settings_from": peer.source, "robot": robot, "seed": seed,
            "n_cores": n_cores, "n_envs": 1 if peer.off_policy else n_cores,
            "torch_threads": n_cores if peer.off_policy else 1, "eval_every_steps": every,
            "training_seconds": round(training_seconds, 1), "env_steps": int(model.num_timesteps),
            "evaluations": rows, "best_success_rate": best["success_rate"], "best_env_steps": best["env_steps"],
            "test_success_rate": test["success_rate"], "test_mean_final_distance_m": test["mean_final_distance_m"],
            "test_episodes": test_n,
            "time_to_target_s": reached[0] if reached else None, "steps_to_target": reached[1] if reached else None,
            "time_to_first_target_s": first[0] if first else None,
            "steps_to_first_target": first[1] if first else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("--robot", default="light_arm")
    parser.add_argument("--cores", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--target-success", type=float, default=0.95)
    parser.add_argument("--first-target", type=float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every-steps", type=int)
    parser.add_argument("--test-episodes", type=int)
    parser.add_argument("--eval-episodes", type=int)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = train_peer(args.peer, args.robot, args.cores, args.seconds, args.target_success, seed=args.seed,
                        eval_every_steps=args.eval_every_steps, test_episodes=args.test_episodes,
                        first_target=args.first_target, eval_episodes=args.eval_episodes)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
