"""A checkpoint's policy against what a real arm adds (`evaluate.py --robustness`, and summary.json's `robustness`):
the same episodes played on a grid of action latencies, encoder noises and dynamics (masses and motor gains at the
ends of their ranges: `envs.arm_env.CommonEnvConfig`'s `latency_steps`, `joint_noise`, `velocity_noise`,
`goal_noise`, `mass_scale`, `gain_scale`), with the figures of each point, a table and a picture."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from arm_a3c.a3c.children import become_child
from arm_a3c.a3c.evaluator import episodes_to_play, load_policy, policy_action
from arm_a3c.envs.episodes import EpisodeProgress, run_episodes
from arm_a3c.files import PNG_SOFTWARE, is_our_png, refuse_foreign, write_atomically

LATENCIES = (0, 1, 2, 3)  # control periods
NOMINAL_JOINT_NOISE = 0.005  # rad (m): an encoder's noise, std (industrial arms read to about 0.001 rad or better)
NOMINAL_VELOCITY_NOISE = 0.05  # rad/s (m/s): joint velocities differentiated from such readings are noisier
NOMINAL_GOAL_NOISE = 0.005  # m: a goal located by a calibrated camera or a motion tracker, std per reading
NOISES = (0.0, 1.0, 2.0)  # noise off, nominal, twice nominal


NOMINAL_MASS_RANGE = 0.2  # masses (and inertias) at 0.8 and 1.2 times the URDF's, unless trained over a range
NOMINAL_GAIN_RANGE = 0.2  # the motors' position gains at 0.8 and 1.2 times, the same way


def grid(cfg=None) -> list[dict]:
    """The settings played: each latency without noise, each noise without latency, then the masses and the motor
    gains at the ends of their ranges (the checkpoint's own `mass_range` and `gain_range` if it was trained over
    them, else the nominal ones)."""
    plain = {"latency_steps": 0, "noise": 0.0, "mass_scale": 1.0, "gain_scale": 1.0}
    masses = getattr(cfg, "mass_range", 0.0) or NOMINAL_MASS_RANGE
    gains = getattr(cfg, "gain_range", 0.0) or NOMINAL_GAIN_RANGE
    return ([{**plain, "latency_steps": latency} for latency in LATENCIES]
            + [{**plain, "noise": noise} for noise in NOISES if noise]
            + [{**plain, "mass_scale": round(1 + sign * masses, 6)} for sign in (-1, 1)]
            + [{**plain, "gain_scale": round(1 + sign * gains, 6)} for sign in (-1, 1)])


def robustness(path: Path, episodes: int | None = None, seed: int | None = None, test: bool = False,
               urdf: str | None = None, stop: Callable[[], bool] = lambda: False, ctx=None,
               processes: int = 1) -> dict | None:
    """The policy of checkpoint `path` on the same episodes as `evaluate_checkpoint` plays (`episodes_to_play`) at
    every point of `grid()`: success and the safety figures per point. With `ctx` (a multiprocessing context) the
    points are played by `processes` processes at once. None if `stop()` turned true before the last point."""
    data, cfg, env, _, _ = load_policy(path, urdf)
    env.close()
    episodes, seed = episodes_to_play(data, cfg, episodes, seed, test)
    jobs = [(path, urdf, point, episodes, seed) for point in grid(cfg)]
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
            "nominal_goal_noise": NOMINAL_GOAL_NOISE, "points": points}


def play_point(path: Path, urdf: str | None, point: dict, episodes: int, seed: int,
               stop: Callable[[], bool] = lambda: False) -> dict | None:
    """One point of the grid: the checkpoint's policy on `episodes` episodes from `seed` with that point's latency,
    noise and dynamics (in any process: the checkpoint is loaded here, its environment built with them)."""
    _, settings, env, model, normalizer = load_policy(
        path, urdf, latency_steps=point["latency_steps"], latency_jitter_steps=0,
        joint_noise=point["noise"] * NOMINAL_JOINT_NOISE, velocity_noise=point["noise"] * NOMINAL_VELOCITY_NOISE,
        goal_noise=point["noise"] * NOMINAL_GOAL_NOISE, mass_scale=point["mass_scale"], mass_range=0.0,
        gain_scale=point["gain_scale"], gain_range=0.0, damping_range=0.0)
    try:
        result = run_episodes(env, policy_action(model, normalizer), episodes, seed, EpisodeProgress(
            episodes, f"latency {point['latency_steps']}, noise x{point['noise']:g}, masses x"
                      f"{point['mass_scale']:g}, gains x{point['gain_scale']:g}", stop))
    finally:
        env.close()
    if result is None:
        return None
    return {**point, "joint_noise": settings.joint_noise, "velocity_noise": settings.velocity_noise,
            "goal_noise": settings.goal_noise,
            **{key: result[key] for key in ("success_rate", "mean_final_distance_m", "max_speed_fraction",
                                            "self_contact_rate", "floor_contact_rate")}}


def _kind(point: dict) -> str:
    """Which row of the grid a point is on: latency, noise or dynamics (the nominal point is on the first two)."""
    if point.get("mass_scale", 1.0) != 1.0 or point.get("gain_scale", 1.0) != 1.0:
        return "dynamics"
    return "noise" if point["noise"] else "latency"


def _dynamics_label(point: dict) -> str:
    return (f"masses x{point['mass_scale']:g}" if point.get("mass_scale", 1.0) != 1.0
            else f"gains x{point['gain_scale']:g}")


def summary_line(result: dict) -> str:
    """The grid in one line, for the end of a run."""
    points = result["points"]
    late = ", ".join(f"{p['latency_steps']}: {p['success_rate']:.0%}" for p in points if _kind(p) == "latency")
    noisy = ", ".join(f"x{p['noise']:g}: {p['success_rate']:.0%}" for p in points if _kind(p) == "noise")
    dynamics = ", ".join(f"{_dynamics_label(p)}: {p['success_rate']:.0%}" for p in points if _kind(p) == "dynamics")
    return (f"robustness of best.pt on {result['episodes']} held-out episodes: success with the action late by "
            f"0-3 control periods {late}; with encoder and goal noise (x nominal) {noisy}; {dynamics}")


def table(result: dict) -> str:
    """The grid as a Markdown table."""
    rows = ["| latency (periods) | noise (x nominal) | masses (x URDF) | motor gains (x) | success | "
            "mean final distance (m) | self-contact |", "|---|---|---|---|---|---|---|"]
    rows += [f"| {p['latency_steps']} | {p['noise']:g} | {p.get('mass_scale', 1.0):g} | {p.get('gain_scale', 1.0):g} "
             f"| {p['success_rate']:.1%} | {p['mean_final_distance_m']:.3f} | {p['self_contact_rate']:.1%} |"
             for p in result["points"]]
    return "\n".join(rows)


def plot(result: dict, path: Path) -> None:
    """Success against latency, against noise and at the dynamics' ends, as a PNG at `path` (only over a picture
    arm-a3c wrote)."""
    from matplotlib.figure import Figure  # not pyplot: no global state, and half a second less to import

    refuse_foreign(path, is_our_png, "--plot")
    points = result["points"]
    nominal = points[0]
    latency = [p for p in points if _kind(p) == "latency"]
    noise = [nominal] + [p for p in points if _kind(p) == "noise"]
    dynamics = [p for p in points if _kind(p) == "dynamics"]
    figure = Figure(figsize=(12, 3.5))
    left, middle, right = figure.subplots(1, 3, sharey=True)
    left.plot([p["latency_steps"] for p in latency], [p["success_rate"] for p in latency], "o-")
    left.set(xlabel="action latency (control periods)", ylabel="success rate", ylim=(0, 1.02),
             xticks=[p["latency_steps"] for p in latency])
    middle.plot([p["noise"] for p in noise], [p["success_rate"] for p in noise], "o-")
    middle.set(xlabel=f"noise (x {NOMINAL_JOINT_NOISE} rad, {NOMINAL_VELOCITY_NOISE} rad/s, goal "
                      f"{NOMINAL_GOAL_NOISE * 1000:g} mm)",
               xticks=[p["noise"] for p in noise])
    labels = ["URDF"] + [_dynamics_label(p) for p in dynamics]
    right.bar(range(len(labels)), [nominal["success_rate"]] + [p["success_rate"] for p in dynamics])
    right.set(xticks=range(len(labels)), xlabel="dynamics")
    right.set_xticklabels(labels, rotation=20, fontsize=8)
    figure.suptitle(f"{result['robot']}: {Path(result['checkpoint']).name}, {result['episodes']} episodes from "
                    f"seed {result['seed']}")
    figure.tight_layout()
    write_atomically(path, lambda f: figure.savefig(f, format="png", dpi=100, metadata={"Software": PNG_SOFTWARE}))
