"""The launcher's view of a run: it takes the workers' and the evaluator's reports, keeps the figures (training
episodes, skipped updates, CPU seconds, the best success and the streak at the target), logs them to metrics.csv
and TensorBoard, prints the progress line, and says when a stopping rule is met."""

from __future__ import annotations

import sys
import time
from collections import defaultdict, deque

import numpy as np

from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.interfaces import Report
from arm_a3c.a3c.live import LiveBoard
from arm_a3c.a3c.metrics import CPU_COLUMNS, CPU_PARTS, CSV_FIELDS, SAFETY_COLUMNS, MetricsLog
from arm_a3c.a3c.rundir import Resumed
from arm_a3c.a3c.shared import Shared
from arm_a3c.a3c.stop_rule import StopRule
from arm_a3c.errors import notice

PROGRESS_LINE_SECONDS = 10.0  # progress line period when stdout is not a terminal
TRAIN_WINDOW = 100  # training episodes averaged in the reported training return and success


class Monitor:
    """Takes the workers' and evaluator's reports, keeps the figures and prints the progress line."""

    def __init__(self, cfg: TrainConfig, shared: Shared, log: MetricsLog, board: LiveBoard,
                 resumed: Resumed | None):
        self.cfg, self.shared, self.log, self.board = cfg, shared, log, board
        self.task_columns = log.fields[len(CSV_FIELDS):]  # the task's own figures: mean_<name>
        self.started = time.monotonic()  # of this session: the time budget and steps/s are per session
        self.start_steps = resumed.env_steps if resumed else 0
        last = log.rows[-1] if log.rows else {}
        self.episodes: deque = deque(maxlen=TRAIN_WINDOW)
        self.episode_count = int(last.get("train_episodes") or 0)
        self.skipped = int(last.get("skipped_updates") or 0)
        self.last_eval: dict | None = resumed.checkpoint.get("eval") if resumed else None
        self.best_success = resumed.best_success if resumed else -1.0
        self.rule = StopRule.of(cfg)
        self.confirmations: list[dict] = []  # this session's, as the evaluator reports them
        self.confirmed: dict | None = None  # the confirmation that stops the run
        self.next_confirm_seed = int((self.last_eval or {}).get("next_confirm_seed", cfg.confirm_seed))
        self.next_eval = self.start_steps + cfg.eval_every_steps if resumed else 0
        self.policy_std = float("nan")
        self.lr = cfg.lr
        self._tick: defaultdict = defaultdict(list)  # TensorBoard figures received since the last tick
        # CPU seconds of the workers, the evaluator and this launcher, over the whole run (a resumed run's go on
        # from its last row), as the reports bring them; and where this session's began
        self.cpu = {part: float(last.get(column) or 0.0) for part, column in CPU_COLUMNS.items()}
        self.session_cpu_start = dict(self.cpu)
        self._launcher_cpu_mark = time.process_time()
        self.streak = 0  # evaluations in a row at or above the target success
        self._last_line = 0.0
        self._tty = sys.stdout.isatty()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def steps_per_second(self) -> float:
        return (self.shared.global_steps() - self.start_steps) / max(self.elapsed(), 1e-9)

    def evaluator_args(self) -> tuple[float, int, int]:
        """What a (new) evaluator process starts from: the best success so far, its next evaluation and the first
        seed of its next confirmation."""
        return self.best_success, self.next_eval, self.next_confirm_seed

    def handle(self, event: Report) -> None:
        kind = event[0]
        if kind == "update":
            _, rank, skipped, stats, episodes, cpu_seconds = event
            self.skipped += skipped
            self.cpu["worker"] += cpu_seconds
            self.policy_std = stats.get("policy_std", self.policy_std)
            self.lr = stats.get("lr", self.lr)
            for ret, length, success, figures in episodes:
                self.episodes.append((ret, success))
                self._tick["charts/episodic_return"].append(ret)
                for name, value in figures.items():
                    self._tick[f"charts/{name}"].append(value)
            self.episode_count += len(episodes)
            for name, value in stats.items():
                if name not in ("lr", "policy_std"):
                    self._tick[f"losses/{name}"].append(value)
        elif kind == "eval":
            self.cpu["evaluator"] += event[1]["cpu_seconds"]
            self.record_eval(event[1])
        elif kind == "checkpoint_failed":
            notice(f"warning: {event[1]}; training goes on")
        elif kind == "sync_agent_restarted":
            _, node, lost = event
            notice(f"the sync agent of machine {node[:12]} died and was restarted; its workers carry on "
                   f"({lost} update(s) they made since its last sync are lost)")

    def log_tick(self) -> None:
        """Write the means of the figures received since the last tick to TensorBoard, once per monitor cycle
        (writing every episode's figures took most of the launcher's CPU: 6% of a core at 12,000 steps/s)."""
        steps = self.shared.global_steps()
        self.log.scalars(steps, {name: float(np.mean(values)) for name, values in self._tick.items() if values})
        self.log.scalars(steps, {"charts/learning_rate": self.lr, "policy/std_mean": self.policy_std,
                                 "charts/SPS": self.steps_per_second(), "charts/skipped_updates": self.skipped})
        self._tick.clear()

    def record_eval(self, result: dict) -> None:
        self.last_eval = result
        self.streak = self.streak + 1 if result["success_rate"] >= self.cfg.target_success else 0
        self.best_success = max(self.best_success, result["success_rate"])
        confirmation = result.get("confirmation")
        self.next_confirm_seed = int(result.get("next_confirm_seed", self.next_confirm_seed))
        if confirmation:
            self.confirmations.append(confirmation)
            if self.rule.stops(self.streak, confirmation):
                self.confirmed = confirmation
        self.next_eval = result["env_steps"] + self.cfg.eval_every_steps
        train = np.array(self.episodes) if self.episodes else None
        cpu_now = time.process_time()
        self.cpu["launcher"] += cpu_now - self._launcher_cpu_mark
        self._launcher_cpu_mark = cpu_now
        self.log.evaluation({
            "wall_seconds": round(self.shared.wall_seconds(), 2), "env_steps": result["env_steps"],
            "steps_per_second": round(self.steps_per_second(), 1), "success_rate": result["success_rate"],
            "mean_final_distance_m": round(result["mean_final_distance_m"], 5),
            "eval_return": round(result["mean_return"], 3), "train_episodes": self.episode_count,
            "train_return": round(float(train[:, 0].mean()), 3) if train is not None else "",
            "train_success_rate": round(float(train[:, 1].mean()), 3) if train is not None else "",
            "policy_std": round(self.policy_std, 4), "lr": self.lr, "skipped_updates": self.skipped,
            "reached_rate": result.get("reached_rate", ""), "eval_episodes": result.get("episodes", ""),
            "confirm_episodes": confirmation["episodes"] if confirmation else "",
            "confirm_success_rate": round(confirmation["success_rate"], 5) if confirmation else "",
            "confirm_lower_bound": round(confirmation["lower_bound"], 5) if confirmation else "",
            **{name: round(result[name], 5) for name in SAFETY_COLUMNS if name in result},
            **{CPU_COLUMNS[part]: round(seconds, 2) for part, seconds in self.cpu.items()},
            **{name: round(result[name], 5) for name in self.task_columns if name in result},
        })

    def session_cpu_cores(self) -> dict:
        """Cores each part of the run kept busy on average in this session, as far as the reports have come:
        {"worker": all workers together, "evaluator", "launcher"}."""
        seconds = max(self.elapsed(), 1e-9)
        return {part: round((self.cpu[part] - self.session_cpu_start[part]) / seconds, 3) for part in CPU_PARTS}

    def progress(self, final: bool = False) -> None:
        now = self.elapsed()
        self.board.publish_run(self.shared.global_steps(), self.steps_per_second(),
                               self.last_eval["success_rate"] if self.last_eval else float("nan"))
        if not final and not self._tty and now - self._last_line < PROGRESS_LINE_SECONDS:
            return
        self._last_line = now
        cfg, steps = self.cfg, self.shared.global_steps()
        ev = self.last_eval
        evaluation = (f"eval success {ev['success_rate']:.0%} (best {self.best_success:.0%}) "
                      f"dist {ev['mean_final_distance_m']:.3f} m" if ev else "eval pending")
        if ev:
            evaluation += "".join(f" {name[5:]} {ev[name]:.3g}" for name in self.task_columns if name in ev)
        if ev and ev.get("confirmation"):
            c = ev["confirmation"]
            evaluation += (f" | confirmation {c['success_rate']:.1%} of {c['episodes']} fresh episodes, lower bound "
                           f"{c['lower_bound']:.1%} {'>=' if c['confirmed'] else '<'} target")
        left = []
        if cfg.max_minutes > 0:
            left.append(f"{max(cfg.max_minutes * 60 - now, 0) / 60:.1f} min left")
        if cfg.max_steps > 0:
            left.append(f"{max(cfg.max_steps - steps, 0):,} steps left")
        line = (f"steps {steps:,} | {self.steps_per_second():,.0f} steps/s | {evaluation} | "
                f"std {self.policy_std:.2f} | {' '.join(left) or 'no limit'}")
        if self._tty and not final:
            print("\r" + line.ljust(110), end="", flush=True)
        else:
            print(("\r" if self._tty else "") + line, flush=True)

    def stop_reason(self) -> str | None:
        cfg = self.cfg
        if self.confirmed:
            c = self.confirmed
            return (f"the evaluator's success rate {self.last_eval['success_rate']:.0%} reached the target "
                    f"{cfg.target_success:.0%} and was confirmed on {c['episodes']} fresh episodes: "
                    f"{c['success_rate']:.1%}, lower bound {c['lower_bound']:.1%} at {c['confidence']:.0%} "
                    f"confidence (that checkpoint is best.pt)")
        if self.last_eval and self.rule.stops(self.streak, None):  # (with confirmation, only a confirmed one stops)
            times = "" if cfg.target_streak == 1 else f" in {cfg.target_streak} evaluations in a row"
            return (f"the evaluator's success rate {self.last_eval['success_rate']:.0%} reached the target "
                    f"{cfg.target_success:.0%}{times}")
        if cfg.max_steps > 0 and self.shared.global_steps() >= cfg.max_steps:
            return f"the step budget of {cfg.max_steps:,} environment steps was used"
        if cfg.max_minutes > 0 and self.elapsed() >= cfg.max_minutes * 60:
            return f"the time budget of {cfg.max_minutes:g} minutes was used"
        return None
