"""The launcher (main.py of ikostrikov/pytorch-a3c): builds the global Actor-Critic, its shared optimizer and
normaliser, starts one worker process per core and the evaluator, and monitors the run until the evaluator
reaches the target success, the step or time budget runs out, or the user stops it.

It also keeps the run alive: a child process that dies is replaced (same rank) within a second, and one that
keeps dying stops the run with a final checkpoint; Ctrl-C or SIGTERM stops it with a final checkpoint and
summary, a second one exits at once; `--resume` continues a stopped run from its latest checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections import defaultdict, deque
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

from arm_a3c.checkpoint import CheckpointWriteError, checkpoint_payload, save_evaluated
from arm_a3c.config import TrainConfig
from arm_a3c.env import ArmReachEnv
from arm_a3c.errors import UserError, notice
from arm_a3c.evaluator import evaluate_policy, evaluator_loop
from arm_a3c.live import LiveBoard
from arm_a3c.metrics import MetricsLog, plot_learning_curve
from arm_a3c.rundir import Resumed, load_resume_state, new_run_dir, restore, write_config
from arm_a3c.shared import Shared, build_shared, become_child
from arm_a3c.worker import worker_loop, worker_seed

MONITOR_SECONDS = 0.5  # how often the launcher drains reports, checks its children and the stopping rule
PROGRESS_LINE_SECONDS = 10.0  # progress line period when stdout is not a terminal
JOIN_SECONDS = 3.0  # how long children get to finish after the stop flag, before they are killed
TRAIN_WINDOW = 100  # training episodes averaged in the reported training return and success
MAX_DEATHS = 5  # a child that dies more often than this within DEATH_WINDOW_SECONDS stops the run
DEATH_WINDOW_SECONDS = 60.0
LOCK_CHECK_SECONDS = 5.0  # with --lock-updates: how long a dead worker's update lock may stay taken
BACKENDS = ("local", "ray")  # worker processes on this machine; Ray actors (ray_backend.py)
EVALUATOR = "evaluator"  # the role of the evaluator process; workers' roles are their ranks 0..N-1


def check_config(cfg: TrainConfig) -> None:
    """Reject settings that cannot work, with the flag to fix."""
    for name, value in cfg.to_dict().items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"--{name.replace('_', '-')} must be a finite number, not {value}")
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
        (cfg.backend in BACKENDS, f"--backend must be one of {', '.join(BACKENDS)}, not {cfg.backend!r}"),
        (cfg.backend == "ray" or not cfg.ray_address, "--ray-address needs --backend ray"),
        (cfg.backend == "local" or not cfg.lock_updates,
         "--lock-updates works with the local backend only (Ray actors cannot share a lock)"),
    ]
    for ok, message in rules:
        if not ok:
            raise UserError(message)


def role_name(role: int | str) -> str:
    return role if role == EVALUATOR else f"worker {role + 1}"


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


class DeathLog:
    """When each role's processes died lately: one that dies more than MAX_DEATHS times within
    DEATH_WINDOW_SECONDS is a fault that stops the run (for both backends' workers)."""

    def __init__(self):
        self._times: dict = {}  # role -> times of its deaths within the window

    def record(self, role: int | str) -> int:
        """Count a death of `role` now; return its deaths within the window."""
        now = time.monotonic()
        deaths = self._times.setdefault(role, deque())
        deaths.append(now)
        while deaths and now - deaths[0] > DEATH_WINDOW_SECONDS:
            deaths.popleft()
        return len(deaths)


class Children:
    """The run's child processes, the workers (roles 0..N-1) and the evaluator, each with a pipe of its own
    for its reports. A child that dies is replaced with the same role; one that dies more than MAX_DEATHS times
    within DEATH_WINDOW_SECONDS is a fault that stops the run."""

    def __init__(self, ctx, cfg: TrainConfig, shared: Shared, run_dir: Path, resumed_steps: int,
                 evaluator_args, roles: list | None = None):
        self.ctx, self.cfg, self.shared, self.run_dir = ctx, cfg, shared, run_dir
        self.roles = list(range(cfg.workers)) + [EVALUATOR] if roles is None else roles  # Ray: only the evaluator
        self.resumed_steps = resumed_steps
        self.evaluator_args = evaluator_args  # () -> (best success so far, step of the next evaluation)
        self.processes: dict = {}
        self.pipes: dict = {}  # role -> the launcher's (reading) end
        self.deaths = DeathLog()
        self.starts: dict = {}  # role -> processes started for it so far
        self.restarts = 0

    def start(self, role: int | str) -> None:
        reader, writer = self.ctx.Pipe(duplex=False)
        if role == EVALUATOR:
            target, args = evaluator_loop, (self.cfg, self.shared, self.run_dir, writer, *self.evaluator_args())
        else:
            seed = worker_seed(self.cfg, role, self.starts.get(role, 0), self.resumed_steps)
            target, args = worker_loop, (role, self.cfg, self.shared, writer, seed)
        process = self.ctx.Process(target=target, args=args, name=f"a3c-{role_name(role).replace(' ', '-')}",
                                   daemon=True)
        process.start()
        writer.close()  # the child holds the only writing end now: its death shows here as end-of-file
        self.processes[role], self.pipes[role] = process, reader
        self.starts[role] = self.starts.get(role, 0) + 1

    def start_all(self) -> None:
        for role in self.roles:
            self.start(role)

    def reports(self) -> list:
        """Every report waiting in the pipes (a dead child's last reports included)."""
        events = []
        for reader in wait(list(self.pipes.values()), timeout=0):
            try:
                while reader.poll():
                    events.append(reader.recv())
            except (EOFError, OSError):  # the child is gone; a report it was killed writing is lost with it
                self.pipes = {role: r for role, r in self.pipes.items() if r is not reader}
                reader.close()
        return events

    def replace_dead(self) -> str | None:
        """Start a replacement for every child that died; the reason to stop the run if one keeps dying."""
        for role, process in list(self.processes.items()):
            if process.is_alive():
                continue
            process.join()
            deaths = self.deaths.record(role)
            how = describe_exit(process.exitcode)
            if deaths > MAX_DEATHS:
                return (f"{role_name(role)} died {deaths} times within {DEATH_WINDOW_SECONDS:.0f} s "
                        f"(last: {how}; its error, if any, is above)")
            if role != EVALUATOR and not self.update_lock_free():
                return f"{role_name(role)} died ({how}) holding the update lock of --lock-updates"
            notice(f"{role_name(role)} died ({how}); starting a replacement "
                   f"({deaths} death(s) of it in the last minute)")
            self.restarts += 1
            self.start(role)
        return None

    def update_lock_free(self) -> bool:
        lock = self.shared.update_lock
        if lock is None:
            return True
        if lock.acquire(timeout=LOCK_CHECK_SECONDS):
            lock.release()
            return True
        return False

    def stop(self, on_report) -> None:
        """Set the stop flag and wait for the children, passing their last reports to `on_report` (a child
        cannot exit while its pipe is full); the ones still running after JOIN_SECONDS are killed."""
        self.shared.request_stop()
        deadline = time.monotonic() + JOIN_SECONDS
        while any(p.is_alive() for p in self.processes.values()) and time.monotonic() < deadline:
            for event in self.reports():
                on_report(event)
            time.sleep(0.05)
        for process in self.processes.values():
            if process.is_alive():
                process.kill()
            process.join()
        for event in self.reports():
            on_report(event)


class Monitor:
    """Takes the workers' and evaluator's reports, keeps the figures and prints the progress line."""

    def __init__(self, cfg: TrainConfig, shared: Shared, log: MetricsLog, board: LiveBoard,
                 resumed: Resumed | None):
        self.cfg, self.shared, self.log, self.board = cfg, shared, log, board
        self.started = time.monotonic()  # of this session: the time budget and steps/s are per session
        self.start_steps = resumed.env_steps if resumed else 0
        last = log.rows[-1] if log.rows else {}
        self.episodes: deque = deque(maxlen=TRAIN_WINDOW)
        self.episode_count = int(last.get("train_episodes") or 0)
        self.skipped = int(last.get("skipped_updates") or 0)
        self.last_eval: dict | None = resumed.checkpoint.get("eval") if resumed else None
        self.best_success = resumed.best_success if resumed else -1.0
        self.next_eval = self.start_steps + cfg.eval_every_steps if resumed else 0
        self.policy_std = float("nan")
        self.lr = cfg.lr
        self._tick: defaultdict = defaultdict(list)  # TensorBoard figures received since the last tick
        self._last_line = 0.0
        self._tty = sys.stdout.isatty()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def steps_per_second(self) -> float:
        return (self.shared.global_steps() - self.start_steps) / max(self.elapsed(), 1e-9)

    def evaluator_args(self) -> tuple[float, int]:
        """What a (new) evaluator process starts from: the best success so far and its next evaluation."""
        return self.best_success, self.next_eval

    def handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == "update":
            _, rank, skipped, stats, episodes = event
            self.skipped += skipped
            self.policy_std = stats.get("policy_std", self.policy_std)
            self.lr = stats.get("lr", self.lr)
            for ret, length, success, distance in episodes:
                self.episodes.append((ret, success, distance))
                self._tick["charts/episodic_return"].append(ret)
                self._tick["charts/final_distance_m"].append(distance)
            self.episode_count += len(episodes)
            for name, value in stats.items():
                if name not in ("lr", "policy_std"):
                    self._tick[f"losses/{name}"].append(value)
        elif kind == "eval":
            self.record_eval(event[1])
        elif kind == "checkpoint_failed":
            notice(f"warning: {event[1]}; training goes on")

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
        self.best_success = max(self.best_success, result["success_rate"])
        self.next_eval = result["env_steps"] + self.cfg.eval_every_steps
        train = np.array(self.episodes) if self.episodes else None
        self.log.evaluation({
            "wall_seconds": round(self.shared.wall_seconds(), 2), "env_steps": result["env_steps"],
            "steps_per_second": round(self.steps_per_second(), 1), "success_rate": result["success_rate"],
            "mean_final_distance_m": round(result["mean_final_distance_m"], 5),
            "eval_return": round(result["mean_return"], 3), "train_episodes": self.episode_count,
            "train_return": round(float(train[:, 0].mean()), 3) if train is not None else "",
            "train_success_rate": round(float(train[:, 1].mean()), 3) if train is not None else "",
            "policy_std": round(self.policy_std, 4), "lr": self.lr, "skipped_updates": self.skipped,
        })

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
        if cfg.max_steps > 0 and self.shared.global_steps() >= cfg.max_steps:
            return f"the step budget of {cfg.max_steps:,} environment steps was used"
        if cfg.max_minutes > 0 and self.elapsed() >= cfg.max_minutes * 60:
            return f"the time budget of {cfg.max_minutes:g} minutes was used"
        return None


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM while training: the first asks for a clean stop (final evaluation, checkpoint
    and summary); a second one exits at once, killing the children, with the last checkpoint written so far."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.reason: str | None = None
        self.on_exit_at_once: list = []  # callables to run before an exit at once (the Ray backend's cleanup)
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame) -> None:
        if self.reason is None:
            self.reason = "interrupted by the user" if signum == signal.SIGINT else "stopped by SIGTERM"
            notice(f"{self.reason}: stopping with a final checkpoint (Ctrl-C again to exit at once)")
            return
        for child in mp.active_children():
            child.kill()
        for cleanup in self.on_exit_at_once:
            cleanup()
        print(f"exiting at once, without a final checkpoint; the latest one is in {self.run_dir / 'checkpoints'} "
              f"(continue with --resume {self.run_dir})", file=sys.stderr, flush=True)
        os._exit(130)


def view_process(run_dir: Path) -> None:
    from arm_a3c.cli import show

    become_child("a3c-viewer")
    try:
        show(run_dir, None, 0, 0)
    except UserError as err:
        print(f"viewer: {err}", file=sys.stderr)


def train(cfg: TrainConfig, resume: bool = False, force: bool = False) -> dict:
    """Run A3C training as configured (with `resume`, continue the run in cfg.run_dir); returns the summary,
    also written to summary.json. The summary's "error" is set when a fault, not a budget or the user, ended
    the run."""
    check_config(cfg)
    if cfg.backend == "ray":  # a missing Ray or an unreachable cluster is one line, before anything is made
        from arm_a3c.ray_backend import start_ray

        start_ray(cfg)
    probe = ArmReachEnv(cfg.robot, ee_link=cfg.ee_link)  # bad robots fail here, before any process starts
    obs_dim, action_dim, robot_name = probe.obs_dim, probe.robot.dof, probe.robot.name
    if resume:
        run_dir = Path(cfg.run_dir)
        resumed = load_resume_state(run_dir, probe)
    else:
        run_dir, resumed = new_run_dir(cfg, robot_name, force), None
    write_config(run_dir, cfg)

    ctx = mp.get_context("spawn")
    if cfg.backend == "ray":  # in a file that Ray's processes on this machine can map
        from arm_a3c.ray_backend import mapped_path

        shared = build_shared(cfg, obs_dim, action_dim, ctx, run_dir, mapped=mapped_path())
    else:
        shared = build_shared(cfg, obs_dim, action_dim, ctx, run_dir)
    try:
        return _train(cfg, shared, ctx, probe, run_dir, resumed)
    finally:
        if cfg.backend == "ray":
            Path(shared.spec["path"]).unlink(missing_ok=True)


def _train(cfg: TrainConfig, shared: Shared, ctx, probe: ArmReachEnv, run_dir: Path, resumed: Resumed | None) -> dict:
    robot_name, action_dim = probe.robot.name, probe.robot.dof
    if resumed:
        restore(shared, resumed)
        print(f"resuming {robot_name} from {resumed.env_steps:,} steps with {cfg.workers} A3C worker(s); "
              f"run directory {run_dir}", flush=True)
    else:
        print(f"training {robot_name} with {cfg.workers} A3C worker(s); run directory {run_dir}", flush=True)
    board = LiveBoard.create(run_dir, cfg.workers, action_dim, probe.config.episode_steps)
    log = MetricsLog(run_dir, resumed.metrics_rows if resumed else None, resumed.env_steps if resumed else None)
    monitor = Monitor(cfg, shared, log, board, resumed)
    if cfg.backend == "ray":  # Ray started (or was joined) before the signal handlers: it sets its own
        from arm_a3c.ray_backend import RayWorkers

        children = RayWorkers(ctx, cfg, shared, run_dir, monitor.start_steps, monitor.evaluator_args)
    else:
        children = Children(ctx, cfg, shared, run_dir, monitor.start_steps, monitor.evaluator_args)

    with StopSignals(run_dir) as signals:
        if cfg.backend == "ray":
            signals.on_exit_at_once.append(children.abandon)
        children.start_all()
        if cfg.view:  # its own process: closing it never touches the training (not one of `children`)
            ctx.Process(target=view_process, args=(run_dir,), name="a3c-viewer", daemon=True).start()
        reason, fault = None, None
        try:
            while reason is None:
                time.sleep(MONITOR_SECONDS)
                for event in children.reports():
                    monitor.handle(event)
                monitor.log_tick()
                monitor.progress()
                reason = signals.reason or monitor.stop_reason()
                if reason is None:
                    fault = children.replace_dead()
                    reason = fault
        finally:
            children.stop(monitor.handle)
        reason = signals.reason or reason
        summary = finish(cfg, shared, monitor, probe, run_dir, reason, fault, children.restarts)
    return summary


def finish(cfg: TrainConfig, shared: Shared, monitor: Monitor, probe: ArmReachEnv, run_dir: Path, reason: str,
           fault: str | None, restarts: int) -> dict:
    """Evaluate the final weights (in this process, so the summary's success rate is current), write the final
    checkpoint, the learning curve and summary.json, and say why the run stopped."""
    torch.set_num_threads(1)
    final = evaluate_policy(shared.model, shared.normalizer, probe, cfg.eval_episodes, cfg.eval_seed)
    final["env_steps"], final["wall_seconds"] = shared.global_steps(), round(shared.wall_seconds(), 2)
    monitor.board.mark_finished()
    probe_robot = probe.robot.name
    try:
        save_evaluated(run_dir, checkpoint_payload(cfg, shared.optimizer, shared.model,
                                                   shared.normalizer.state_dict(), final["env_steps"], probe, final),
                       monitor.best_success)
    except CheckpointWriteError as err:
        raise CheckpointWriteError(f"{err}; then continue the run with --resume {run_dir}") from None
    finally:
        probe.close()
    monitor.record_eval(final)
    monitor.progress(final=True)
    log = monitor.log
    log.close()
    session_seconds = monitor.elapsed()
    summary = {
        "robot": probe_robot, "workers": cfg.workers, "stop_reason": reason, "error": fault,
        "success_rate": final["success_rate"], "mean_final_distance_m": final["mean_final_distance_m"],
        "best_success_rate": monitor.best_success, "env_steps": final["env_steps"],
        "wall_seconds": final["wall_seconds"], "resumed_from_steps": monitor.start_steps,
        "session_seconds": round(session_seconds, 2),
        "steps_per_second": round((final["env_steps"] - monitor.start_steps) / session_seconds, 1),
        "train_episodes": monitor.episode_count, "skipped_updates": monitor.skipped,
        "worker_restarts": restarts, "optimizer_steps": shared.optimizer.step_count(),
        "evaluations": [{k: r[k] for k in ("env_steps", "wall_seconds", "success_rate", "mean_final_distance_m")}
                        for r in log.rows],
    }
    try:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        plot_learning_curve(log.rows, run_dir / "learning_curve.png", f"A3C on {probe_robot}, {cfg.workers} worker(s)")
    except OSError as err:
        raise UserError(f"cannot write the summary in {run_dir} ({err.strerror}); the final checkpoint is saved; "
                        f"free some disk space") from None
    print(f"stopped: {reason}. Final success rate {final['success_rate']:.0%}, best {monitor.best_success:.0%}, "
          f"{final['env_steps']:,} steps in {session_seconds / 60:.1f} min. Files in {run_dir}", flush=True)
    if fault:
        print(f"error: the run stopped because {fault}; the final checkpoint is saved: fix the cause and continue "
              f"with --resume {run_dir}", file=sys.stderr, flush=True)
    return summary
