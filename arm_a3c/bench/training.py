"""The training benchmark (`scripts/bench.py`): how close arm-a3c comes to the machine's limit, and how fast it
gets to a trained arm beside the strongest peers, all measured in one run on one machine, for each robot.

1. The limits: N processes (N = cores) stepping the environment, no learning, (a) with uniform random actions,
   measured before and after the A3C throughput runs and averaged (this machine's speed drifts by 10% and more),
   and (b) with the actions of the policy being trained (its stochastic policy: untrained, right before the
   N-worker throughput run, and the policy it ended with, right after it; also the time-to-success run's best.pt):
   random actions cost more physics than a policy's motions, so (b) is the limit for the motions training really
   makes.
2. A3C training throughput with N workers and with 1 worker: steady-state environment steps per second of
   a real `train_arm.py` run (between its second and last evaluations, so process start-up is left out), with
   the default target, so that the evaluator screens its evaluations as in a default run, and a streak that never
   stops it (once the policy passes the screen, every evaluation plays all its episodes: more evaluation than a
   default run, which stops there).
3. Their ratio to both limits, and the scaling from 1 to N workers.
4. Time and environment steps to 80% and to 95% evaluator success: arm-a3c with N workers, and each peer
   (`peers.py`: SB3 A2C, PPO, SAC, TD3 and sb3-contrib TQC with rl-baselines3-zoo's tuned settings) on the same
   cores, the same time budget each, evaluated on the same seeded episodes; each algorithm trains once per seed
   and the medians are compared. A run that does not reach a target counts as taking longer than the budget.
   Every run's best policy then plays the held-out test episodes (seeds disjoint from the evaluator's): the
   success figures of the table are those.
5. Peak memory of the N-worker training: all its processes together, as proportional set size (shared pages
   divided among the processes that share them) and as the plain sum of resident sizes (which counts shared
   libraries once per process, an upper bound).
6. A picture (PNG): evaluator success against wall-clock time and against environment steps, every algorithm,
   the median over seeds drawn and the seeds' range shaded.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from arm_a3c.bench.options import ALL_TUNED_PEERS, GOALS, NEVER_STOPS, PACKAGE_ROOT, BenchOptions
from arm_a3c.bench.progress import BenchProgress, _now, source_commit
from arm_a3c.errors import UserError

MEMORY_POLL_SECONDS = 2.0  # reading every process's smaps costs ~16 ms of CPU: rarely, to not slow the run


# ---- 1. the limit -------------------------------------------------------------------------------------------

def _stepping(robot: str, checkpoint: str | None, seconds: float, seed: int, barrier, results) -> None:
    """Step `robot` for `seconds`: uniform random actions, or a checkpoint's stochastic policy (as a worker acts,
    through its `Rollout`: normalised observation, mean plus Gaussian noise of the policy's std; no learning)."""
    rng = np.random.default_rng(seed)
    if checkpoint is None:
        from arm_a3c.envs.arm_env import make_env

        env = make_env(robot=robot)
        actions = rng.uniform(-1, 1, (4096, env.robot.dof)).astype(np.float32)
        act = None
    else:  # acting exactly as a worker does (`worker.Rollout`), with no learning
        from arm_a3c.a3c.evaluator import load_policy
        from arm_a3c.a3c.model import NumpyActorCritic
        from arm_a3c.a3c.worker import Rollout

        _, cfg, env, model, normalizer = load_policy(Path(checkpoint))
        actor, norm = NumpyActorCritic(model), normalizer.snapshot()
        rollout = Rollout(actor, cfg.n_steps, env.obs_dim, env.robot.dof, cfg.obs_clip)
        std = actor.std()

        def act(obs, step):
            t = step % rollout.n
            if t == 0:
                rollout.begin(norm, std, rng)
            return rollout.act(t, obs)
    obs, _ = env.reset(seed=seed)
    barrier.wait()
    steps, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            obs, _, terminated, truncated, _ = env.step(actions[steps % len(actions)] if act is None else act(obs, steps))
            if terminated or truncated:
                obs, _ = env.reset()
            steps += 1
    results.put(steps)
    env.close()


def limit_rate(robot: str, processes: int, seconds: float, checkpoint: Path | None = None) -> float:
    """Environment steps per second of `processes` processes stepping at once with random actions, or with the
    stochastic policy of `checkpoint`."""
    from arm_a3c.a3c.children import children_context, single_threaded_children

    single_threaded_children()  # one BLAS thread per process, as training's workers have
    ctx = children_context()  # forked from a server that imported their code once, as training's workers are
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    where = None if checkpoint is None else str(checkpoint)
    children = [ctx.Process(target=_stepping, args=(robot, where, seconds, rank, barrier, results))
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


# ---- 2-6. arm-a3c and the peers -----------------------------------------------------------------------------

def a3c_run(opts: BenchOptions, robot: str, workers: int, seconds: float, target: float, run_dir: Path,
            seed: int = 0, max_steps: int = 0, extra: tuple[str, ...] = (), streak: int = 1) -> dict:
    """A real training run through `arm-a3c train`, for `seconds` (or until `max_steps` environment steps if that
    comes first); its steady-state rate, times to the targets, held-out test and memory. It stops at the first
    evaluation at or above `target` (`streak` 1), or after `streak` of them in a row."""
    from arm_a3c.a3c.metrics import cpu_cores, read_metrics, time_to_success

    command = [sys.executable, "-m", "arm_a3c", "train", "--robot", robot,
               "--workers", str(workers), "--max-minutes", str(seconds / 60), "--max-steps", str(max_steps),
               "--target-success", str(target), "--target-streak", str(streak), "--seed", str(seed),
               "--run-dir", str(run_dir), "--test-episodes", str(opts.test_episodes),
               "--eval-episodes", str(opts.eval_episodes), "--force", *extra]
    watched = _checked(run_watched(command, seconds + 300), f"arm-a3c training of {robot} with {workers} worker(s)")
    rows = read_metrics(run_dir / "metrics.csv")
    summary = json.loads((run_dir / "summary.json").read_text())
    steady = rows[1:-1] if len(rows) >= 4 else rows  # the last row is the final evaluation, after the stop
    rate = ((steady[-1]["env_steps"] - steady[0]["env_steps"]) / (steady[-1]["wall_seconds"] - steady[0]["wall_seconds"])
            if len(steady) >= 2 and steady[-1]["wall_seconds"] > steady[0]["wall_seconds"] else summary["steps_per_second"])
    # The evaluations that ran during the steady window (each row's evaluation ran before its row was written):
    # how many episodes each played, all of them or the screen's first ones.
    played = [r.get("eval_episodes") for r in steady[1:]] if len(steady) >= 2 else []
    reached, first = time_to_success(rows, opts.target_success), time_to_success(rows, opts.first_target)
    return {"peer": "arm-a3c", "robot": robot, "workers": workers, "seed": seed, "steps_per_second": round(rate, 1),
            "env_steps": summary["env_steps"], "wall_seconds": summary["wall_seconds"],
            "best_success_rate": summary["best_success_rate"], "test_success_rate": summary.get("test_success_rate"),
            "test_mean_final_distance_m": summary.get("test_mean_final_distance_m"),
            "time_to_target_s": reached[0] if reached else None, "steps_to_target": reached[1] if reached else None,
            "time_to_first_target_s": first[0] if first else None, "steps_to_first_target": first[1] if first else None,
            "evaluations": [{k: r[k] for k in ("env_steps", "wall_seconds", "success_rate")} for r in rows],
            "steady_eval_episodes": played, "cpu_cores": cpu_cores(steady), "sync": summary.get("sync") or {},
            "run_dir": str(run_dir), "peak_pss_mb": watched["peak_pss_mb"], "peak_rss_mb": watched["peak_rss_mb"]}


def peer_run(opts: BenchOptions, robot: str, peer: str, out: Path, seed: int) -> dict:
    command = [sys.executable, "-m", "arm_a3c.bench.peers", peer, "--robot", robot, "--seed", str(seed),
               "--cores", str(opts.workers), "--seconds", str(opts.budget_seconds),
               "--target-success", str(opts.target_success), "--first-target", str(opts.first_target),
               "--test-episodes", str(opts.test_episodes), "--eval-episodes", str(opts.eval_episodes),
               "--out", str(out)]
    watched = _checked(run_watched(command, opts.budget_seconds * 4 + 600), f"{peer} on {robot}")
    return {**json.loads(out.read_text()), "peak_pss_mb": watched["peak_pss_mb"], "peak_rss_mb": watched["peak_rss_mb"]}


def check_peer_dependencies(opts: BenchOptions) -> None:
    from arm_a3c.bench.peers import PEERS

    modules = {"psutil", "matplotlib", *(PEERS[name].algo.split(":")[0] for name in opts.peers)}
    missing = []
    for module in sorted(modules):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise UserError(f"the benchmark needs {', '.join(missing)}: python -m pip install -r requirements-bench.txt")


def median_of(runs: list[dict], key: str) -> float:
    """The median over seeds of a time or step count to a target; a run that did not reach it counts as
    infinitely long."""
    return float(np.median([math.inf if r[key] is None else r[key] for r in runs]))


def ratio_text(ours: float, theirs: float, budget: float) -> str | None:
    if ours == math.inf:
        return None
    if theirs < math.inf:
        return f"{ours / theirs:.3f}"
    return f"< {ours / budget:.3f}"  # the peer's median is beyond the budget


def throughput_block(opts: BenchOptions, robot: str, work_dir: Path) -> dict:
    """Steps 1-2, measured back to back (one part of a resumed benchmark: never split): the limits, the N-worker
    and 1-worker throughput runs, and the limits again."""
    from arm_a3c.a3c.checkpoint import save_untrained_checkpoint

    n = opts.workers
    # The policy-action limits that the N-worker throughput is held to are measured right before it (the untrained
    # policy it starts from) and right after it (the policy it ended with): this machine's speed drifts by up to a
    # fifth within one benchmark, and measurements far apart in time would compare different machines.
    untrained = save_untrained_checkpoint(robot, work_dir / "untrained.pt")
    limit_before = limit_rate(robot, n, opts.limit_seconds)
    policy_limits = {"untrained": round(limit_rate(robot, n, opts.limit_seconds, untrained), 1)}
    # The default target and a streak no run reaches: the evaluator screens its evaluations as in a default run
    # (evaluations that pass the screen play all their episodes), and the run does not stop.
    # Rates and memory only: no held-out test or robustness grid after a throughput run (nothing reports them,
    # and their processes would count in the run's peak memory).
    rates_only = dataclasses.replace(opts, test_episodes=0)
    many = a3c_run(rates_only, robot, n, opts.throughput_seconds, opts.target_success, work_dir / f"a3c-{n}-workers",
                   max_steps=opts.throughput_steps, streak=NEVER_STOPS)
    policy_limits["after_throughput_run"] = round(
        limit_rate(robot, n, opts.limit_seconds, Path(many["run_dir"]) / "checkpoints" / "latest.pt"), 1)
    one = a3c_run(rates_only, robot, 1, opts.throughput_seconds, opts.target_success, work_dir / "a3c-1-worker",
                  max_steps=opts.throughput_steps, streak=NEVER_STOPS)
    limit_after = limit_rate(robot, n, opts.limit_seconds)
    return {"limit_before": limit_before, "limit_after": limit_after, "policy_limits": policy_limits,
            "many": many, "one": one}


def bench_robot(opts: BenchOptions, robot: str, work_dir: Path, log, progress: "BenchProgress | None" = None) -> dict:
    progress = progress or BenchProgress(None, opts)  # nothing kept: every part runs
    n, seeds = opts.workers, ", ".join(map(str, opts.seeds))
    steps = f" or {opts.throughput_steps:,} steps" if opts.throughput_steps else ""
    log(f"[{robot}] 1-2/5 the limits ({n} process(es), {opts.limit_seconds:g} s each, random actions and the "
        f"untrained policy); A3C throughput: {n} worker(s), {opts.throughput_seconds:g} s{steps}; the limit with the "
        f"policy it ended with; 1 worker; the random-action limit again")
    block = progress.part(f"{robot}/limits-and-throughput", lambda: throughput_block(opts, robot, work_dir), log)
    limit_before, limit_after, many, one = (block[k] for k in ("limit_before", "limit_after", "many", "one"))
    policy_limits = dict(block["policy_limits"])
    limit = (limit_before + limit_after) / 2
    log(f"[{robot}] 3/5 time to {opts.first_target:.0%} and {opts.target_success:.0%}: arm-a3c with {n} workers, "
        f"seeds {seeds} (budget {opts.budget_seconds:g} s each)")
    a3c = [progress.part(f"{robot}/arm-a3c/seed-{seed}", lambda seed=seed: a3c_run(
        opts, robot, n, opts.budget_seconds, opts.target_success, work_dir / f"a3c-time-to-success-{seed}", seed), log)
        for seed in opts.seeds]
    log(f"[{robot}] 4/5 the policy-action limit with seed {opts.seeds[0]}'s best.pt, {opts.limit_seconds:g} s")

    def best_limit() -> float:
        best = Path(a3c[0]["run_dir"]) / "checkpoints" / "best.pt"
        if not best.exists():  # its run was kept from an earlier sitting, and its files are gone since
            raise UserError(f"{best} is gone, so its policy-action limit cannot be measured: remove the part "
                            f"{robot}/arm-a3c/seed-{opts.seeds[0]} from {progress.path} to run it again")
        return round(limit_rate(robot, n, opts.limit_seconds, best), 1)

    policy_limits["best"] = progress.part(f"{robot}/policy-limit-best", best_limit, log)
    # The throughput run's policy moved from untrained to what it was after the run: its limit lies between
    policy_limit = (policy_limits["untrained"] + policy_limits["after_throughput_run"]) / 2
    peers = {}
    for peer in opts.peers:
        log(f"[{robot}] 5/5 time to {opts.first_target:.0%} and {opts.target_success:.0%}: {peer}, seeds {seeds} "
            f"(budget {opts.budget_seconds:g} s each)")
        peers[peer] = [progress.part(f"{robot}/{peer}/seed-{seed}", lambda peer=peer, seed=seed: peer_run(
            opts, robot, peer, work_dir / f"{peer}-{seed}.json", seed), log) for seed in opts.seeds]
    everyone = {"arm-a3c": a3c, **peers}
    medians = {name: {key: median_of(runs, key) for key in ("time_to_first_target_s", "steps_to_first_target",
                                                            "time_to_target_s", "steps_to_target")}
               for name, runs in everyone.items()}
    tuned = [name for name in peers if name in ALL_TUNED_PEERS]
    fastest = min(tuned, key=lambda name: medians[name]["time_to_target_s"], default=None)
    time_ratio = (ratio_text(medians["arm-a3c"]["time_to_target_s"], medians[fastest]["time_to_target_s"],
                             opts.budget_seconds) if fastest else None)
    # Where the N cores went in the throughput run's steady window: the workers' share of the machine times how
    # near the limit they ran on it. The evaluator's share is CPU no worker had.
    cores = many.get("cpu_cores") or {}
    return {
        "robot": robot, "limit_steps_per_second": round(limit, 1),
        "cpu_cores": cores, "evaluator_cpu_share": round(cores["evaluator"] / n, 3) if cores else None,
        "policy_limit_ratio_on_worker_cpu": (round(many["steps_per_second"] / (policy_limit * cores["worker"] / n), 3)
                                             if cores and cores["worker"] > 0 else None),
        "limit_before_after": [round(limit_before, 1), round(limit_after, 1)],
        "policy_limit_steps_per_second": round(policy_limit, 1), "policy_limits": policy_limits,
        "a3c_n_workers": many, "a3c_1_worker": one,
        "throughput_ratio": round(many["steps_per_second"] / limit, 3),
        "policy_limit_ratio": round(many["steps_per_second"] / policy_limit, 3),
        "scaling_1_to_n": round(many["steps_per_second"] / one["steps_per_second"], 2),
        "runs": everyone,
        "medians": {name: {k: (None if v == math.inf else v) for k, v in m.items()} for name, m in medians.items()},
        "median_test_success_rate": {name: float(np.median([r["test_success_rate"] for r in runs]))
                                     for name, runs in everyone.items()},
        "fastest_tuned_peer": fastest, "time_ratio_to_fastest_tuned_peer": time_ratio,
        "peak_memory_mb": {"pss": many["peak_pss_mb"], "rss_sum": many["peak_rss_mb"]},
    }


def run_benchmark(opts: BenchOptions, work_dir: Path, log=print, progress: BenchProgress | None = None) -> dict:
    check_peer_dependencies(opts)
    if progress is None:
        progress = BenchProgress(None, opts, source_commit(), _now())
    commit, started = progress.commit, progress.started
    log(f"arm-a3c at commit {commit or 'unknown (not a git checkout)'}, {started}"
        + (f"; resumed with {len(progress.finished())} finished part(s)" if progress.finished() else ""))
    robots = {robot: bench_robot(opts, robot, work_dir / robot, log, progress) for robot in opts.robots}
    return {"options": asdict(opts), "cpu_count": os.cpu_count(), "goals": GOALS, "commit": commit,
            "started": started, "sittings": progress.state["sittings"], "robots": robots}


