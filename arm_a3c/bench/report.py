"""The training benchmark's table (markdown, also kept in bench.json) and its picture (bench.png: success against
wall-clock time and against environment steps, every algorithm, the seeds' median drawn and their range shaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arm_a3c.bench.options import GOALS
from arm_a3c.files import PNG_SOFTWARE

STEPS_LINEAR_UP_TO = 10_000  # bench.png's steps axis: linear below, logarithmic above (when the runs go far beyond)

def format_table(result: dict) -> str:
    opts = result["options"]
    n, budget = opts["workers"], opts["budget_seconds"]
    first, target = f"{opts['first_target']:.0%}", f"{opts['target_success']:.0%}"
    seeds = ", ".join(map(str, opts["seeds"]))

    def seconds(value) -> str:
        return f"{value:.0f} s" if value is not None else f"> {budget:.0f} s"

    def steps(value) -> str:
        return f"{value / 1000:.0f}k" if value is not None else "-"

    resumed = result.get("sittings", [])[1:]
    resumed = f" (resumed {', '.join(resumed)})" if resumed else ""
    lines = [f"arm-a3c commit {result.get('commit') or 'unknown'}, started {result.get('started', '?')}{resumed}; "
             f"{n} worker(s) / cores of {result['cpu_count']}; seeds {seeds}; budget {budget:.0f} s per run; success "
             f"figures on {opts['test_episodes']} held-out episodes"]
    for robot, r in result["robots"].items():
        lines += [
            "", f"**{robot}**", "",
            "| measure | value | goal |", "|---|---|---|",
            f"| limit, random actions, {n} processes | {r['limit_steps_per_second']:,.0f} steps/s (before "
            f"{r['limit_before_after'][0]:,.0f}, after {r['limit_before_after'][1]:,.0f}) | |",
            f"| limit, the policy's actions, {n} processes | {r['policy_limit_steps_per_second']:,.0f} steps/s "
            f"(untrained {r['policy_limits']['untrained']:,.0f}, after the throughput run "
            f"{r['policy_limits']['after_throughput_run']:,.0f}, trained {r['policy_limits']['best']:,.0f}) | |",
            f"| A3C training, {n} workers | {r['a3c_n_workers']['steps_per_second']:,.0f} steps/s | |",
            f"| A3C training, 1 worker | {r['a3c_1_worker']['steps_per_second']:,.0f} steps/s | |",
            f"| training / random-action limit | {r['throughput_ratio']:.2f} | |",
            f"| training / policy-action limit | {r['policy_limit_ratio']:.2f} | >= {GOALS['policy_limit_ratio']} |",
            *cpu_rows(r, n),
            f"| scaling 1 -> {n} workers | {r['scaling_1_to_n']:.2f}x | |",
            f"| peak memory, {n}-worker training | {r['peak_memory_mb']['pss']:,.0f} MB PSS "
            f"({r['peak_memory_mb']['rss_sum']:,.0f} MB summed RSS) | < {GOALS['pss_mb']:,.0f} MB PSS |",
            "",
            f"| algorithm | median time to {first} | to {target} | median steps to {first} | to {target} | "
            f"held-out success (median; each seed) | settings |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, runs in r["runs"].items():
            m = r["medians"][name]
            each = ", ".join(f"{x['test_success_rate']:.1%}" for x in runs)
            source = runs[0].get("settings_from", "arm-a3c defaults")
            lines.append(f"| {name} | {seconds(m['time_to_first_target_s'])} | {seconds(m['time_to_target_s'])} | "
                         f"{steps(m['steps_to_first_target'])} | {steps(m['steps_to_target'])} | "
                         f"{r['median_test_success_rate'][name]:.1%} ({each}) | {source} |")
        fastest = r["fastest_tuned_peer"]
        if fastest and r["medians"][fastest]["time_to_target_s"] is None:
            fastest = f"none of the tuned peers reached {target} within {budget:.0f} s: the budget is the bound"
        if fastest is None:
            lines.append("\nno tuned peer ran (--peers): no time ratio")
        else:
            lines.append(f"\narm-a3c's median time to {target} / the fastest tuned peer's ({fastest}): "
                         f"{r['time_ratio_to_fastest_tuned_peer'] or 'n/a'} (goal <= {GOALS['time_ratio']})")
    return "\n".join(lines)

def cpu_rows(r: dict, n: int) -> list[str]:
    """The table's account of the N-worker run's CPU (none for a bench.json written before it was measured)."""
    cores = r.get("cpu_cores")
    if not cores:
        return []
    return [f"| CPU of the {n}-worker training: workers, evaluator, launcher | {cores['worker']:.2f}, "
            f"{cores['evaluator']:.2f}, {cores['launcher']:.3f} cores of {n} (evaluator: "
            f"{r['evaluator_cpu_share']:.1%} of the machine) | |",
            f"| training / policy-action limit on the workers' CPU (the limit x workers' cores / {n}) | "
            + (f"{r['policy_limit_ratio_on_worker_cpu']:.2f}" if r.get("policy_limit_ratio_on_worker_cpu") is not None
               else "not measured: the run's steady window saw no CPU of its workers (too short a run)") + " | |"]

def success_curve(runs: list[dict], key: str, grid: np.ndarray) -> np.ndarray:
    """(seeds, grid) evaluator success of each run at each grid point: the last evaluation at or before it (a
    run that stopped keeps its last figure; before its first evaluation, 0)."""
    curves = np.zeros((len(runs), len(grid)))
    for i, run in enumerate(runs):
        xs = np.array([e[key] for e in run["evaluations"]], float)
        ys = np.array([e["success_rate"] for e in run["evaluations"]], float)
        index = np.searchsorted(xs, grid, side="right") - 1
        curves[i] = np.where(index >= 0, ys[np.clip(index, 0, None)], 0.0)
    return curves

def plot_benchmark(result: dict, path: Path) -> None:
    """Success against wall-clock time and against environment steps, per robot: medians over seeds, the seeds'
    range shaded."""
    from matplotlib.figure import Figure  # not pyplot: no global state, and half a second less to import

    robots = result["robots"]
    fig = Figure(figsize=(12, 4.2 * len(robots)))
    axes = fig.subplots(len(robots), 2, squeeze=False)
    for row, (robot, r) in zip(axes, robots.items()):
        for ax, key, label in ((row[0], "wall_seconds", "training wall-clock time (s)"),
                               (row[1], "env_steps", "environment steps")):
            end = max(e[key] for runs in r["runs"].values() for run in runs for e in run["evaluations"])
            grid = np.linspace(0, end, 400)
            for name, runs in r["runs"].items():
                curves = success_curve(runs, key, grid)
                line, = ax.plot(grid, np.median(curves, axis=0), label=name, lw=2.2 if name == "arm-a3c" else 1.4)
                ax.fill_between(grid, curves.min(axis=0), curves.max(axis=0), color=line.get_color(), alpha=0.15)
            if key == "env_steps" and end > 10 * STEPS_LINEAR_UP_TO:  # off-policy peers' first 10^4 steps visible
                ax.set_xscale("symlog", linthresh=STEPS_LINEAR_UP_TO)
            ax.set_xlim(0, end)
            ax.axhline(result["options"]["target_success"], color="grey", ls=":", lw=1)
            ax.set(xlabel=label, ylabel="evaluator success", ylim=(-0.02, 1.02), title=robot)
            ax.grid(alpha=0.3)
        row[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{result['options']['workers']} cores, seeds {', '.join(map(str, result['options']['seeds']))}: "
                 f"median and range over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": PNG_SOFTWARE})
