"""Run metrics: one `metrics.csv` row per evaluation, TensorBoard scalars named so that they group
(`eval/...`, `charts/...`, `losses/...`), and `learning_curve.png`. Every task's rows have the same columns
first; a task's own episode figures (`Task.metrics`, such as `orientation_error_deg`) follow as `mean_<name>`."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from arm_a3c.errors import notice
from arm_a3c.files import write_atomically

CPU_PARTS = ("worker", "evaluator", "launcher")
CPU_COLUMNS = {part: f"{part}_cpu_seconds" for part in CPU_PARTS}  # each part's metrics.csv column

# The evaluations' safety figures (`envs.episodes.run_episodes`): the largest joint speed over its URDF limit,
# and the shares of episodes with a joint over its limit, a self-contact, a floor contact
SAFETY_COLUMNS = ("max_speed_fraction", "over_speed_rate", "self_contact_rate", "floor_contact_rate")

CSV_FIELDS = [
    "wall_seconds", "env_steps", "steps_per_second", "success_rate", "mean_final_distance_m", "eval_return",
    "train_episodes", "train_return", "train_success_rate", "policy_std", "lr", "skipped_updates", "reached_rate",
    "eval_episodes",  # episodes the evaluation played: all of them, or the screen's first ones (evaluator.py)
    # a candidate's confirmation on fresh episodes (stop_rule.py): episodes, success, its lower confidence bound
    "confirm_episodes", "confirm_success_rate", "confirm_lower_bound",
    *SAFETY_COLUMNS,
    # CPU seconds the run's processes spent up to the row, all workers together, the evaluator, the launcher
    # (`CPU_PARTS`): a window's cores in use are its difference over the wall_seconds' difference
    *CPU_COLUMNS.values(),
]


def task_columns(metric_names) -> list[str]:
    """The metrics.csv columns of a task's own episode figures (beyond the final distance every task has)."""
    return [f"mean_{name}" for name in metric_names if name != "final_distance_m"]


class MetricsLog:
    """A new run's logs, or a resumed run's continued: `rows` are its metrics.csv rows up to the checkpoint it
    resumes from, at `env_steps`; later rows and TensorBoard points (work lost with the crash) are dropped."""

    def __init__(self, run_dir: Path, rows: list[dict] | None = None, env_steps: int | None = None,
                 metric_names=()):
        self.csv_path = run_dir / "metrics.csv"
        self.rows: list[dict] = list(rows or [])
        self.fields = CSV_FIELDS + task_columns(metric_names)
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.fields)
        writer.writeheader()
        writer.writerows({k: row.get(k, "") for k in self.fields} for row in self.rows)
        write_atomically(self.csv_path, text.getvalue().encode())  # a crash now loses no row
        self._file = open(self.csv_path, "a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=self.fields)
        # purge_step: TensorBoard hides the points a crashed session logged after the checkpoint it resumes from.
        tb_dir = run_dir / "tb"
        before = set(os.listdir(tb_dir)) if tb_dir.is_dir() else set()
        self.tb = SummaryWriter(str(tb_dir), purge_step=None if env_steps is None else env_steps + 1)
        # The event file this session writes (its name holds the time, host and pid), for the run's run.json.
        self.event_files = [tb_dir / name for name in sorted(set(os.listdir(tb_dir)) - before)]

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.tb.add_scalar(name, value, step)

    def evaluation(self, row: dict) -> None:
        self.rows.append(row)
        try:
            self._csv.writerow({k: row.get(k, "") for k in self.fields})
            self._file.flush()
        except OSError as err:  # disk full, say: the row stays in memory, for the summary; training goes on
            notice(f"warning: cannot write {self.csv_path} ({err.strerror}); training goes on")
        self.scalars(row["env_steps"], {
            "eval/success_rate": row["success_rate"],
            "eval/mean_final_distance_m": row["mean_final_distance_m"],
            "eval/episodic_return": row["eval_return"],
            **{f"safety/{name}": row[name] for name in SAFETY_COLUMNS if row.get(name, "") != ""},
            **{f"eval/{name}": row[name] for name in ("confirm_success_rate", "confirm_lower_bound")
               if row.get(name, "") != ""},
            **{f"eval/{name}": row[name] for name in self.fields[len(CSV_FIELDS):] if row.get(name, "") != ""},
        })

    def close(self) -> None:
        self._file.close()
        self.tb.close()


def plot_learning_curve(rows: list[dict], path: Path, title: str) -> None:
    """Success rate and return against environment steps and against wall-clock minutes."""
    from matplotlib.figure import Figure  # not pyplot: no global state, and half a second less to import

    steps = [r["env_steps"] / 1e6 for r in rows]
    minutes = [r["wall_seconds"] / 60 for r in rows]
    fig = Figure(figsize=(10, 7))
    axes = fig.subplots(2, 2, sharey="row")
    for col, (x, label) in enumerate([(steps, "environment steps (millions)"), (minutes, "wall-clock minutes")]):
        axes[0, col].plot(x, [r["success_rate"] for r in rows], marker="o", ms=3, label="evaluator")
        train = [(xi, r["train_success_rate"]) for xi, r in zip(x, rows) if r.get("train_success_rate") != ""]
        if train:
            axes[0, col].plot(*zip(*train), alpha=0.6, label="training episodes")
        axes[0, col].set_ylim(-0.02, 1.02)
        axes[1, col].plot(x, [r["eval_return"] for r in rows], marker="o", ms=3, label="evaluator")
        train = [(xi, r["train_return"]) for xi, r in zip(x, rows) if r.get("train_return") != ""]
        if train:
            axes[1, col].plot(*zip(*train), alpha=0.6, label="training episodes")
        axes[1, col].set_xlabel(label)
    axes[0, 0].set_ylabel("success rate")
    axes[1, 0].set_ylabel("episode return")
    axes[0, 0].legend(loc="best")  # a curve that stays low (a hard task) would lie under a legend kept low
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    # Margins set by hand: tight_layout drew the figure once more to measure it (a third of the plot's time, paid
    # at the end of every run).
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.93, wspace=0.06, hspace=0.18)
    fig.savefig(path, dpi=90)


def read_metrics(path: Path) -> list[dict]:
    """The rows of a run's metrics.csv with numbers as numbers (empty cells stay empty strings)."""
    def number(value: str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return value

    with open(path, newline="") as f:
        return [{k: number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def cpu_cores(rows: list[dict]) -> dict:
    """Cores each part of a run (`CPU_PARTS`) kept busy on average between the first and the last of `rows`:
    {part: cores}; {} when the rows span no time or come from a run written before the CPU columns."""
    if len(rows) < 2 or rows[-1]["wall_seconds"] <= rows[0]["wall_seconds"]:
        return {}
    first, last = rows[0], rows[-1]
    if any(row.get(column, "") == "" for row in (first, last) for column in CPU_COLUMNS.values()):
        return {}
    seconds = last["wall_seconds"] - first["wall_seconds"]
    return {part: round((last[column] - first[column]) / seconds, 3) for part, column in CPU_COLUMNS.items()}


def time_to_success(rows: list[dict], threshold: float) -> tuple[float, float] | None:
    """(wall seconds, env steps) of the first evaluation whose success rate reached `threshold`, or None."""
    for row in rows:
        if row["success_rate"] >= threshold:
            return row["wall_seconds"], row["env_steps"]
    return None
