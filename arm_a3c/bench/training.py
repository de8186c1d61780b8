"""The training benchmark (`scripts/bench.py`): how close arm-a3c comes to the machine's limit, and how fast it
gets to a trained arm beside Stable-Baselines3, all measured in one run on one machine.

1. The limit: N processes (N = cores) stepping the environment with random actions, no learning; measured
   before and after the A3C throughput runs, and averaged (this machine's speed drifts by 10% and more).
2. A3C training throughput with N workers and with 1 worker: steady-state environment steps per second of
   a real `train_arm.py` run (between its second and last evaluations, so process start-up is left out).
3. Their ratio to the limit, and the scaling from 1 to N workers.
4. Time to 80% evaluator success: arm-a3c with N workers, and SB3 A2C and PPO with N subprocess
   environments (`sb3_baseline.py`), the same time budget each, evaluated on the same seeded episodes;
   each algorithm trains once per seed (the time varies by a factor of 3 between seeds), and the medians are
   compared. A run that does not reach the target counts as taking longer than the budget.
5. Peak memory of the N-worker training: all its processes together, as proportional set size (shared pages
   divided among the processes that share them) and as the plain sum of resident sizes (which counts shared
   libraries once per process, an upper bound).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from arm_a3c.errors import UserError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding arm_a3c/
MEMORY_POLL_SECONDS = 2.0  # reading every process's smaps costs ~16 ms of CPU: rarely, to not slow the run


@dataclass
class BenchOptions:
    robot: str = "light_arm"
    workers: int = os.cpu_count() or 1
    limit_seconds: float = 30.0  # how long the random-action processes step
    throughput_seconds: float = 90.0  # length of each throughput training run
    throughput_steps: int = 0  # ... or this many environment steps, if that comes first (0: no step limit)
    budget_seconds: float = 300.0  # time budget of each time-to-success run (arm-a3c, A2C, PPO)
    target_success: float = 0.8
    seeds: tuple[int, ...] = (0, 1, 2)  # one time-to-success run per seed and algorithm
    baselines: tuple[str, ...] = ("a2c", "ppo")


# A smoke test of the benchmark, not a measurement: the throughput runs end after a few thousand steps, so they
# step for a while after their processes' start-up however long that takes (4-second runs once made 37 steps/s).
QUICK = dict(limit_seconds=1.0, throughput_seconds=60.0, throughput_steps=20_000, budget_seconds=4.0, seeds=(0,))


# ---- 1. the limit -------------------------------------------------------------------------------------------

def _random_steps(robot: str, seconds: float, seed: int, barrier, results) -> None:
    from arm_a3c.envs.arm_env import make_env

    env = make_env(robot=robot)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (4096, env.robot.dof)).astype(np.float32)
    env.reset(seed=seed)
    barrier.wait()
    steps, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            if env.step(actions[steps % len(actions)])[3]:
                env.reset()
            steps += 1
    results.put(steps)
    env.close()


def limit_rate(robot: str, processes: int, seconds: float) -> float:
    """Environment steps per second of `processes` processes stepping at once with random actions."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    children = [ctx.Process(target=_random_steps, args=(robot, seconds, rank, barrier, results))
                for rank in range(processes)]
    for child in children:
        child.start()
    total = sum(results.get(timeout=seconds + 120) for _ in children)
    for child in children:
        child.join()
    return total / seconds


# ---- processes and their memory -----------------------------------------------------------------------------

def run_watched(command: list[str], timeout: float) -> dict:
    """Run a command; return its exit status, output and the peak memory of it and all its descendants (MB)."""
    import psutil

    with tempfile.TemporaryFile("w+") as out:
        # In the caller's folder (the run directories are relative to it), with this arm_a3c importable whether it
        # is installed or a checkout.
        path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "PYTHONPATH": path})
        root = psutil.Process(process.pid)
        peak_pss = peak_rss = 0.0
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                break
            pss = rss = 0
            for p in [root, *root.children(recursive=True)]:
                try:
                    info = p.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                pss, rss = pss + getattr(info, "pss", info.rss), rss + info.rss
            peak_pss, peak_rss = max(peak_pss, pss / 2**20), max(peak_rss, rss / 2**20)
            time.sleep(MEMORY_POLL_SECONDS)
        process.wait()
        out.seek(0)
        return {"returncode": process.returncode, "output": out.read(), "peak_pss_mb": round(peak_pss, 1),
                "peak_rss_mb": round(peak_rss, 1)}


def _checked(result: dict, what: str) -> dict:
    if result["returncode"] != 0:
        raise RuntimeError(f"{what} failed (exit {result['returncode']}):\n{result['output'][-3000:]}")
    return result


# ---- 2-5. arm-a3c and the baselines -------------------------------------------------------------------------

def a3c_run(opts: BenchOptions, workers: int, seconds: float, target: float, run_dir: Path, seed: int = 0,
            extra: tuple[str, ...] = (), max_steps: int = 0) -> dict:
    """A real training run through train_arm.py, for `seconds` (or until `max_steps` environment steps if that
    comes first); its steady-state rate, time to the target, and memory."""
    from arm_a3c.a3c.metrics import read_metrics, time_to_success

    command = [sys.executable, "-m", "arm_a3c", "train", "--robot", opts.robot,
               "--workers", str(workers), "--max-minutes", str(seconds / 60), "--max-steps", str(max_steps),
               "--target-success", str(target), "--target-streak", "1", "--seed", str(seed), "--run-dir", str(run_dir),
               "--force", *extra]  # streak 1: stop at the first evaluation on target, as the SB3 runs do
    watched = _checked(run_watched(command, seconds + 300), f"arm-a3c training with {workers} worker(s)")
    rows = read_metrics(run_dir / "metrics.csv")
    summary = json.loads((run_dir / "summary.json").read_text())
    steady = rows[1:-1] if len(rows) >= 4 else rows  # the last row is the final evaluation, after the stop
    rate = ((steady[-1]["env_steps"] - steady[0]["env_steps"]) / (steady[-1]["wall_seconds"] - steady[0]["wall_seconds"])
            if len(steady) >= 2 and steady[-1]["wall_seconds"] > steady[0]["wall_seconds"] else summary["steps_per_second"])
    reached = time_to_success(rows, target)
    return {"workers": workers, "seed": seed, "steps_per_second": round(rate, 1), "env_steps": summary["env_steps"],
            "wall_seconds": summary["wall_seconds"], "best_success_rate": summary["best_success_rate"],
            "time_to_target_s": reached[0] if reached else None, "steps_to_target": reached[1] if reached else None,
            "peak_pss_mb": watched["peak_pss_mb"], "peak_rss_mb": watched["peak_rss_mb"]}


def sb3_run(opts: BenchOptions, algo: str, out: Path, seed: int) -> dict:
    command = [sys.executable, "-m", "arm_a3c.bench.sb3_baseline", algo, "--robot", opts.robot, "--seed", str(seed),
               "--envs", str(opts.workers), "--seconds", str(opts.budget_seconds),
               "--target-success", str(opts.target_success), "--out", str(out)]
    watched = _checked(run_watched(command, opts.budget_seconds * 3 + 300), f"SB3 {algo.upper()}")
    return {**json.loads(out.read_text()), "peak_pss_mb": watched["peak_pss_mb"], "peak_rss_mb": watched["peak_rss_mb"]}


def check_baseline_dependencies(opts: BenchOptions) -> None:
    missing = []
    for module in ["psutil", *(["stable_baselines3"] if opts.baselines else [])]:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise UserError(f"the benchmark needs {', '.join(missing)}: python -m pip install -r requirements-bench.txt")


def median_time(runs: list[dict]) -> float:
    """The median time to the target over seeds; a run that did not reach it counts as infinitely long."""
    return float(np.median([math.inf if r["time_to_target_s"] is None else r["time_to_target_s"] for r in runs]))


def run_benchmark(opts: BenchOptions, work_dir: Path, log=print) -> dict:
    check_baseline_dependencies(opts)
    n = opts.workers
    log(f"1/4 the limit: {n} process(es) stepping {opts.robot} with random actions for {opts.limit_seconds:g} s")
    limit_before = limit_rate(opts.robot, n, opts.limit_seconds)
    steps = f" or {opts.throughput_steps:,} steps" if opts.throughput_steps else ""
    log(f"2/4 A3C throughput: {n} worker(s), then 1, {opts.throughput_seconds:g} s{steps} each; then the limit again")
    many = a3c_run(opts, n, opts.throughput_seconds, 1.01, work_dir / f"a3c-{n}-workers", max_steps=opts.throughput_steps)
    one = a3c_run(opts, 1, opts.throughput_seconds, 1.01, work_dir / "a3c-1-worker", max_steps=opts.throughput_steps)
    limit_after = limit_rate(opts.robot, n, opts.limit_seconds)
    limit = (limit_before + limit_after) / 2
    seeds = ", ".join(map(str, opts.seeds))
    log(f"3/4 time to {opts.target_success:.0%} success, arm-a3c with {n} workers, seeds {seeds} "
        f"(budget {opts.budget_seconds:g} s each)")
    a3c = [a3c_run(opts, n, opts.budget_seconds, opts.target_success, work_dir / f"a3c-time-to-success-{seed}", seed)
           for seed in opts.seeds]
    baselines = {}
    for algo in opts.baselines:
        log(f"4/4 time to {opts.target_success:.0%} success, SB3 {algo.upper()} with {n} environments, seeds "
            f"{seeds} (budget {opts.budget_seconds:g} s each)")
        baselines[algo] = [sb3_run(opts, algo, work_dir / f"sb3-{algo}-{seed}.json", seed) for seed in opts.seeds]
    medians = {"arm-a3c": median_time(a3c), **{algo: median_time(runs) for algo, runs in baselines.items()}}
    fastest = min((medians[algo] for algo in baselines), default=None)
    ours = medians["arm-a3c"]
    if ours == math.inf or fastest is None:
        time_ratio = None
    elif fastest < math.inf:
        time_ratio = f"{ours / fastest:.3f}"
    else:  # no baseline reached the target in most seeds: its median time is more than the budget
        time_ratio = f"< {ours / opts.budget_seconds:.3f}"
    return {
        "options": asdict(opts), "cpu_count": os.cpu_count(),
        "limit_steps_per_second": round(limit, 1),
        "limit_before_after": [round(limit_before, 1), round(limit_after, 1)],
        "a3c_n_workers": many, "a3c_1_worker": one,
        "throughput_ratio": round(many["steps_per_second"] / limit, 3),
        "scaling_1_to_n": round(many["steps_per_second"] / one["steps_per_second"], 2),
        "a3c_time_to_success": a3c, "baselines": baselines,
        "median_time_to_target_s": {name: (None if t == math.inf else t) for name, t in medians.items()},
        "time_ratio_to_fastest_baseline": time_ratio,
        "peak_memory_mb": {"pss": many["peak_pss_mb"], "rss_sum": many["peak_rss_mb"]},
    }


def format_table(result: dict) -> str:
    opts, n = result["options"], result["options"]["workers"]
    target = f"{opts['target_success']:.0%}"

    def seconds(value) -> str:
        return f"{value:.0f} s" if value is not None else f"not reached in {opts['budget_seconds']:.0f} s"

    lines = [
        f"robot {opts['robot']}, {n} worker(s) on {result['cpu_count']} core(s)",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| limit: {n} processes, random actions | {result['limit_steps_per_second']:,.0f} steps/s (before "
        f"{result['limit_before_after'][0]:,.0f}, after {result['limit_before_after'][1]:,.0f}) | |",
        f"| A3C training, {n} workers | {result['a3c_n_workers']['steps_per_second']:,.0f} steps/s | |",
        f"| A3C training, 1 worker | {result['a3c_1_worker']['steps_per_second']:,.0f} steps/s | |",
        f"| training / limit at {n} workers | {result['throughput_ratio']:.2f} | >= 0.7 |",
        f"| scaling 1 -> {n} workers | {result['scaling_1_to_n']:.2f}x | >= 1.8x |",
    ]
    medians = result["median_time_to_target_s"]
    seeds = ", ".join(map(str, opts["seeds"]))

    def runs(label: str, name: str, entries: list[dict]) -> str:
        each = ", ".join(f"{r['time_to_target_s']:.0f}" if r["time_to_target_s"] is not None else "-" for r in entries)
        best = max(r["best_success_rate"] for r in entries)
        return (f"| time to {target}: {label} | median {seconds(medians[name])} (seeds {seeds}: {each} s; "
                f"best success {best:.0%}) | |")

    lines.append(runs("arm-a3c", "arm-a3c", result["a3c_time_to_success"]))
    for algo, entries in result["baselines"].items():
        lines.append(runs(f"SB3 {algo.upper()}", algo, entries))
    ratio = result["time_ratio_to_fastest_baseline"]
    lines.append(f"| arm-a3c time / fastest SB3 | {ratio or 'n/a'} | <= 0.5 |")
    memory = result["peak_memory_mb"]
    lines.append(f"| peak memory, {n}-worker training | {memory['pss']:,.0f} MB PSS ({memory['rss_sum']:,.0f} MB "
                 f"summed RSS) | < 1,500 MB |")
    return "\n".join(lines)
