"""A checkpoint's policy against what a real arm adds (`evaluate.py --robustness`): the same episodes played on a
grid of action latencies and encoder noises (`envs.arm_env.CommonEnvConfig`'s `latency_steps`, `joint_noise`,
`velocity_noise`), with the figures of each point, a table and a picture.

Not measured yet: dynamics (masses, friction, motor gains) at the ends of their ranges; the environment has no
such settings yet."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from arm_a3c.a3c.children import become_child
from arm_a3c.a3c.evaluator import episodes_to_play, load_policy, policy_action
from arm_a3c.envs.arm_env import make_env
from arm_a3c.envs.episodes import EpisodeProgress, run_episodes
from arm_a3c.files import PNG_SOFTWARE, is_our_png, refuse_foreign, write_atomically

LATENCIES = (0, 1, 2, 3)  # control periods
NOMINAL_JOINT_NOISE = 0.005  # rad (m): an encoder's noise, std (industrial arms read to about 0.001 rad or better)
NOMINAL_VELOCITY_NOISE = 0.05  # rad/s (m/s): joint velocities differentiated from such readings are noisier
NOISES = (0.0, 1.0, 2.0)  # noise off, nominal, twice nominal


def grid() -> list[dict]:
    """The settings played: each latency without noise, then each noise without latency."""
    points = [{"latency_steps": latency, "noise": 0.0} for latency in LATENCIES]
    return points + [{"latency_steps": 0, "noise": noise} for noise in NOISES if noise]


def robustness(path: Path, episodes: int | None = None, seed: int | None = None, test: bool = False,
               urdf: str | None = None, stop: Callable[[], bool] = lambda: False, ctx=None,
               processes: int = 1) -> dict | None:
    """The policy of checkpoint `path` on the same episodes as `evaluate_checkpoint` plays (`episodes_to_play`) at
    every point of `grid()`: success and the safety figures per point. With `ctx` (a multiprocessing context) the
    points are played by `processes` processes at once. None if `stop()` turned true before the last point."""
    data, cfg, env, _, _ = load_policy(path, urdf)
    env.close()
    episodes, seed = episodes_to_play(data, cfg, episodes, seed, test)
    jobs = [(path, urdf, point, episodes, seed) for point in grid()]
    if ctx is None or processes <= 1:
        points = []
        for job in jobs:
            if stop():
                return None
            points.append(play_point(*job, stop=stop))
    else:
        with ctx.Pool(min(processes, len(jobs)), initializer=become_child, initargs=("a3c-robustness",)) as pool:
            pending = pool.starmap_async(play_point, jobs)
            while not pending.ready():
                if stop():
                    pool.terminate()
                    return None
                pending.wait(0.2)
            points = pending.get()
    if any(point is None for point in points):
        return None
    return {"checkpoint": str(path), "robot": data["robot"]["name"], "episodes": episodes, "seed": seed,
            "nominal_joint_noise": NOMINAL_JOINT_NOISE, "nominal_velocity_noise": NOMINAL_VELOCITY_NOISE,
            "points": points}


def play_point(path: Path, urdf: str | None, point: dict, episodes: int, seed: int,
               stop: Callable[[], bool] = lambda: False) -> dict | None:
    """One point of the grid: the checkpoint's policy on `episodes` episodes from `seed` with that point's latency
    and noise (in any process: the checkpoint is loaded here)."""
    _, cfg, env, model, normalizer = load_policy(path, urdf)
    env.close()
    settings = dataclasses.replace(cfg, latency_steps=point["latency_steps"], latency_jitter_steps=0,
                                   joint_noise=point["noise"] * NOMINAL_JOINT_NOISE,
                                   velocity_noise=point["noise"] * NOMINAL_VELOCITY_NOISE)
    env = make_env(settings)
    try:
        result = run_episodes(env, policy_action(model, normalizer), episodes, seed, EpisodeProgress(
            episodes, f"latency {point['latency_steps']}, noise x{point['noise']:g}", stop))
    finally:
        env.close()
    if result is None:
        return None
    return {**point, "joint_noise": settings.joint_noise, "velocity_noise": settings.velocity_noise,
            **{key: result[key] for key in ("success_rate", "mean_final_distance_m", "max_speed_fraction",
                                            "self_contact_rate", "floor_contact_rate")}}


def summary_line(result: dict) -> str:
    """The grid in one line, for the end of a run."""
    points = result["points"]
    late = ", ".join(f"{p['latency_steps']}: {p['success_rate']:.0%}" for p in points if p["noise"] == 0.0)
    noisy = ", ".join(f"x{p['noise']:g}: {p['success_rate']:.0%}" for p in points if p["latency_steps"] == 0)
    return (f"robustness of best.pt on {result['episodes']} held-out episodes: success with the action late by "
            f"0-3 control periods {late}; with encoder noise {noisy}")


def table(result: dict) -> str:
    """The grid as a Markdown table."""
    rows = ["| latency (periods) | noise (x nominal) | success | mean final distance (m) | self-contact |",
            "|---|---|---|---|---|"]
    rows += [f"| {p['latency_steps']} | {p['noise']:g} | {p['success_rate']:.1%} | {p['mean_final_distance_m']:.3f} | "
             f"{p['self_contact_rate']:.1%} |" for p in result["points"]]
    return "\n".join(rows)


def plot(result: dict, path: Path) -> None:
    """Success against latency and against noise, as a PNG at `path` (only over a picture arm-a3c wrote)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refuse_foreign(path, is_our_png, "--plot")
    points = result["points"]
    latency = [p for p in points if p["noise"] == 0.0]
    noise = [p for p in points if p["latency_steps"] == 0]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    left.plot([p["latency_steps"] for p in latency], [p["success_rate"] for p in latency], "o-")
    left.set(xlabel="action latency (control periods)", ylabel="success rate", ylim=(0, 1.02),
             xticks=[p["latency_steps"] for p in latency])
    right.plot([p["noise"] for p in noise], [p["success_rate"] for p in noise], "o-")
    right.set(xlabel=f"encoder noise (x {NOMINAL_JOINT_NOISE} rad, {NOMINAL_VELOCITY_NOISE} rad/s)",
              xticks=[p["noise"] for p in noise])
    figure.suptitle(f"{result['robot']}: {Path(result['checkpoint']).name}, {result['episodes']} episodes from "
                    f"seed {result['seed']}")
    figure.tight_layout()
    write_atomically(path, lambda f: figure.savefig(f, format="png", dpi=100, metadata={"Software": PNG_SOFTWARE}))
    plt.close(figure)
