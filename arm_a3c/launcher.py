"""The launcher (main.py of ikostrikov/pytorch-a3c): builds the global Actor-Critic, its shared optimizer and
normaliser, starts one worker process per core and the evaluator, and monitors the run until the evaluator
reaches the target success, the step or time budget runs out, or the user interrupts."""

from __future__ import annotations

import json
import queue
import sys
import time
from collections import deque
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

from arm_a3c.config import TrainConfig
from arm_a3c.env import ArmReachEnv
from arm_a3c.errors import UserError
from arm_a3c.live import LiveBoard
from arm_a3c.checkpoint import checkpoint_payload, save_evaluated
from arm_a3c.evaluator import evaluate_policy, evaluator_loop
from arm_a3c.metrics import MetricsLog, plot_learning_curve
from arm_a3c.shared import Shared, build_shared, ignore_interrupts
from arm_a3c.worker import worker_loop

MONITOR_SECONDS = 0.5  # how often the launcher drains reports and checks the stopping rule
PROGRESS_LINE_SECONDS = 10.0  # progress line period when stdout is not a terminal
JOIN_SECONDS = 10.0  # how long children get to finish after the stop signal
TRAIN_WINDOW = 100  # training episodes averaged in the reported training return and success


def check_config(cfg: TrainConfig) -> None:
    """Reject settings that cannot work, with the flag to fix."""
    rules = [
        (cfg.workers >= 1, "--workers must be at least 1"),
        (cfg.lr > 0, "--lr must be positive"),
        (cfg.n_steps >= 1, "--n-steps must be at least 1"),
        (0 < cfg.gamma <= 1, "--gamma must be in (0, 1]"),
        (0 <= cfg.gae_lambda <= 1, "--gae-lambda must be in [0, 1]"),
        (cfg.max_steps >= 0, "--max-steps must be 0 (no limit) or positive"),
        (cfg.max_minutes >= 0, "--max-minutes must be 0 (no limit) or positive"),
        (cfg.max_steps > 0 or cfg.max_minutes > 0 or cfg.target_success <= 1,
         "the run would never stop: set --max-steps, --max-minutes or --target-success <= 1"),
        (cfg.eval_episodes >= 1, "--eval-episodes must be at least 1"),
        (cfg.eval_every_steps >= 1, "--eval-every-steps must be at least 1"),
        (cfg.hidden_size >= 1, "--hidden-size must be at least 1"),
        (cfg.log_std_min <= cfg.log_std_max, "--log-std-min must not exceed --log-std-max"),
        (cfg.max_grad_norm > 0, "--max-grad-norm must be positive"),
    ]
    for ok, message in rules:
        if not ok:
            raise UserError(message)


def make_run_dir(cfg: TrainConfig, robot_name: str) -> Path:
    run_dir = Path(cfg.run_dir or Path("runs") / f"{robot_name}-{datetime.now():%Y%m%d-%H%M%S}")
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write to run directory {run_dir} ({err.strerror}); pass --run-dir PATH") from None
    return run_dir


class Monitor:
    """Drains the workers' and evaluator's reports, keeps the figures and prints the progress line."""

    def __init__(self, cfg: TrainConfig, shared: Shared, log: MetricsLog, started: float, board: LiveBoard):
        self.cfg, self.shared, self.log, self.started, self.board = cfg, shared, log, started, board
        self.episodes: deque = deque(maxlen=TRAIN_WINDOW)
        self.episode_count = 0
        self.last_eval: dict | None = None
        self.best_success = -1.0
        self.skipped: dict[int, int] = {}
        self.policy_std = float("nan")
        self.lr = cfg.lr
        self._last_line = 0.0
        self._tty = sys.stdout.isatty()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def steps_per_second(self) -> float:
        return self.shared.global_steps.value / max(self.elapsed(), 1e-9)

    def drain(self) -> None:
        while True:
            try:
                event = self.shared.events.get_nowait()
            except queue.Empty:
                return
            kind = event[0]
            if kind == "episode":
                _, rank, ret, length, success, distance = event
                self.episodes.append((ret, success, distance))
                self.episode_count += 1
                steps = self.shared.global_steps.value
                self.log.scalars(steps, {"charts/episodic_return": ret, "charts/final_distance_m": distance})
            elif kind == "update":
                _, rank, updates, skipped, stats = event
                self.skipped[rank] = skipped
                self.policy_std = stats.get("policy_std", self.policy_std)
                self.lr = stats.get("lr", self.lr)
                steps = self.shared.global_steps.value
                self.log.scalars(steps, {f"losses/{k}": v for k, v in stats.items() if k not in ("lr", "policy_std")})
                self.log.scalars(steps, {"charts/learning_rate": self.lr, "policy/std_mean": self.policy_std,
                                         "charts/SPS": self.steps_per_second()})
            elif kind == "eval":
                self.record_eval(event[1])

    def record_eval(self, result: dict) -> None:
        self.last_eval = result
        self.best_success = max(self.best_success, result["success_rate"])
        train = np.array(self.episodes) if self.episodes else None
        self.log.evaluation({
            "wall_seconds": round(self.elapsed(), 2), "env_steps": result["env_steps"],
            "steps_per_second": round(self.steps_per_second(), 1), "success_rate": result["success_rate"],
            "mean_final_distance_m": round(result["mean_final_distance_m"], 5),
            "eval_return": round(result["mean_return"], 3), "train_episodes": self.episode_count,
            "train_return": round(float(train[:, 0].mean()), 3) if train is not None else "",
            "train_success_rate": round(float(train[:, 1].mean()), 3) if train is not None else "",
            "policy_std": round(self.policy_std, 4), "lr": self.lr, "skipped_updates": sum(self.skipped.values()),
        })

    def progress(self, final: bool = False) -> None:
        now = self.elapsed()
        self.board.publish_run(self.shared.global_steps.value, self.steps_per_second(),
                               self.last_eval["success_rate"] if self.last_eval else float("nan"))
        if not final and not self._tty and now - self._last_line < PROGRESS_LINE_SECONDS:
            return
        self._last_line = now
        cfg, steps = self.cfg, self.shared.global_steps.value
        ev = self.last_eval
        evaluation = (f"eval success {ev['success_rate']:.0%} (best {self.best_success:.0%}) "
                      f"dist {ev['mean_final_distance_m']:.3f} m" if ev else "eval pending")
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
        if self.last_eval and self.last_eval["success_rate"] >= cfg.target_success:
            return f"the evaluator's success rate {self.last_eval['success_rate']:.0%} reached the target {cfg.target_success:.0%}"
        if cfg.max_steps > 0 and self.shared.global_steps.value >= cfg.max_steps:
            return f"the step budget of {cfg.max_steps:,} environment steps was used"
        if cfg.max_minutes > 0 and self.elapsed() >= cfg.max_minutes * 60:
            return f"the time budget of {cfg.max_minutes:g} minutes was used"
        return None


def view_process(run_dir: Path) -> None:
    from arm_a3c.cli import show

    ignore_interrupts()
    try:
        show(run_dir, None, 0, 0)
    except UserError as err:
        print(f"viewer: {err}", file=sys.stderr)


def shutdown(processes: list, shared: Shared, monitor: Monitor) -> None:
    """Signal stop and wait for the children, draining their reports meanwhile: a process cannot exit while
    its queued reports are unread (its queue's feeder thread waits to flush them)."""
    shared.stop.set()
    deadline = time.monotonic() + JOIN_SECONDS
    while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
        monitor.drain()
        time.sleep(0.05)
    for p in processes:
        if p.is_alive():
            p.terminate()
        p.join()
    monitor.drain()


def train(cfg: TrainConfig) -> dict:
    """Run A3C training as configured; returns the summary (also written to summary.json)."""
    check_config(cfg)
    probe = ArmReachEnv(cfg.robot, ee_link=cfg.ee_link)  # bad robots fail here, before any process starts
    obs_dim, action_dim, robot_name = probe.obs_dim, probe.robot.dof, probe.robot.name
    run_dir = make_run_dir(cfg, robot_name)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    print(f"training {robot_name} with {cfg.workers} A3C worker(s); run directory {run_dir}", flush=True)

    ctx = mp.get_context("spawn")
    board = LiveBoard.create(run_dir, cfg.workers, action_dim, probe.config.episode_steps)
    shared = build_shared(cfg, obs_dim, action_dim, ctx, run_dir)
    log = MetricsLog(run_dir)
    started = time.monotonic()
    processes = [ctx.Process(target=worker_loop, args=(rank, cfg, shared), name=f"a3c-worker-{rank}", daemon=True)
                 for rank in range(cfg.workers)]
    processes.append(ctx.Process(target=evaluator_loop, args=(cfg, shared, run_dir), name="a3c-evaluator",
                                 daemon=True))
    for p in processes:
        p.start()
    if cfg.view:  # its own process: closing it never touches the training (not in `processes`, not joined)
        ctx.Process(target=view_process, args=(run_dir,), name="a3c-viewer", daemon=True).start()
    monitor = Monitor(cfg, shared, log, started, board)
    reason = None
    try:
        while reason is None:
            time.sleep(MONITOR_SECONDS)
            monitor.drain()
            monitor.progress()
            reason = monitor.stop_reason()
            dead = [p for p in processes if not p.is_alive()]
            if dead and reason is None:
                raise RuntimeError(f"{dead[0].name} exited with code {dead[0].exitcode}; see the messages above")
    except KeyboardInterrupt:
        reason = "interrupted by the user"
    finally:
        shutdown(processes, shared, monitor)
    wall_seconds = monitor.elapsed()

    # Final evaluation of the final weights, in this process, so the summary's success rate is current.
    torch.set_num_threads(1)
    final = evaluate_policy(shared.model, shared.normalizer, probe, cfg.eval_episodes, cfg.eval_seed)
    final["env_steps"] = shared.global_steps.value
    save_evaluated(run_dir, checkpoint_payload(cfg, shared.optimizer, shared.model, shared.normalizer.state_dict(),
                                               final["env_steps"], probe, final), monitor.best_success)
    monitor.record_eval(final)
    monitor.progress(final=True)
    board.mark_finished()
    probe.close()
    log.close()
    plot_learning_curve(log.rows, run_dir / "learning_curve.png", f"A3C on {robot_name}, {cfg.workers} worker(s)")

    summary = {
        "robot": robot_name, "workers": cfg.workers, "stop_reason": reason,
        "success_rate": final["success_rate"], "mean_final_distance_m": final["mean_final_distance_m"],
        "best_success_rate": monitor.best_success, "env_steps": final["env_steps"],
        "wall_seconds": round(wall_seconds, 2), "steps_per_second": round(final["env_steps"] / wall_seconds, 1),
        "train_episodes": monitor.episode_count, "skipped_updates": sum(monitor.skipped.values()),
        "optimizer_steps": shared.optimizer.step_count(),
        "evaluations": [{k: r[k] for k in ("env_steps", "wall_seconds", "success_rate", "mean_final_distance_m")}
                        for r in log.rows],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"stopped: {reason}. Final success rate {final['success_rate']:.0%}, best {monitor.best_success:.0%}, "
          f"{final['env_steps']:,} steps in {wall_seconds / 60:.1f} min. Files in {run_dir}", flush=True)
    return summary
