"""The launcher (main.py of ikostrikov/pytorch-a3c): builds the global Actor-Critic, its shared optimizer and
normaliser, starts the backend's workers and the evaluator, and monitors the run until the evaluator reaches
the target success, the step or time budget runs out, or the user stops it.

Where the workers run is the `Backend` it is handed (`a3c.interfaces`; `arm_a3c.backends` has the local
processes and Ray): the launcher never asks which. It also keeps the run alive: a worker that dies is replaced
(same rank) within a second, and one that keeps dying stops the run with a final checkpoint; Ctrl-C or SIGTERM
stops it with a final checkpoint and summary, a second one exits at once; `--resume` continues a stopped run
from its latest checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.multiprocessing as mp

from arm_a3c.a3c.checkpoint import CheckpointWriteError, checkpoint_payload, make_checkpoint_env, save_evaluated
from arm_a3c.a3c.children import children_context, single_threaded_children
from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.evaluator import evaluate_checkpoint, evaluate_policy
from arm_a3c.a3c.interfaces import Backend, WorkerSet
from arm_a3c.a3c.live import LiveBoard
from arm_a3c.a3c.metrics import SAFETY_COLUMNS, MetricsLog, plot_learning_curve
from arm_a3c.a3c.monitor import Monitor
from arm_a3c.a3c.robustness import robustness, summary_line
from arm_a3c.a3c.rundir import (RunDir, claim_new_run_dir, claim_resumed_run_dir, load_resume_state, restore,
                                write_config)
from arm_a3c.a3c.shared import Shared
from arm_a3c.envs.arm_env import ArmEnv, make_env
from arm_a3c.errors import UserError, notice
from arm_a3c.files import write_atomically
from arm_a3c.sim.assets import is_robot_file

ROBUSTNESS_EPISODES = 100  # the held-out episodes best.pt plays at each point of the robustness grid
MONITOR_SECONDS = 0.5  # how often the launcher drains reports, checks its workers and the stopping rule


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM while training: the first asks for a clean stop (final evaluation, checkpoint
    and summary); a second one exits at once, killing the children, with the last checkpoint written so far."""

    def __init__(self, run_dir: Path, workers: WorkerSet):
        self.run_dir, self.workers = run_dir, workers
        self.reason: str | None = None
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
        print(f"exiting at once, without a final checkpoint; the latest one is in {self.run_dir / 'checkpoints'} "
              f"(continue with --resume {self.run_dir})", file=sys.stderr, flush=True)
        for child in mp.active_children():  # the viewer's process too
            child.kill()
        self.workers.abandon()
        os._exit(130)


def train(cfg: TrainConfig, backend: Backend, resume: bool = False, force: bool = False,
          viewer: Callable[[Path], None] | None = None) -> dict:
    """Run A3C training as configured, with its workers where `backend` puts them (with `resume`, continue the
    run in cfg.run_dir); returns the summary, also written to summary.json. The summary's "error" is set when a
    fault, not a budget or the user, ended the run. `viewer(run_dir)`, if given, runs in a process of its own
    beside the training (`train_arm.py --view`)."""
    cfg.check()
    backend.check(cfg)
    single_threaded_children()  # before a local Ray instance and the fork server start too: their children inherit it
    backend.start(cfg)  # a missing Ray or an unreachable cluster is one line, before anything is made
    ctx = children_context()  # the fork server imports the children's code while the robot loads
    # bad robots fail here, before any process starts (a resumed run's: held to its latest checkpoint's robot)
    probe = make_checkpoint_env(cfg, Path(cfg.run_dir) / "checkpoints" / "latest.pt") if resume else make_env(cfg)
    # Record the home pose and tool point used (from the robot's settings file or the home rule), so the run's
    # workers, its checkpoints and whoever replays them use exactly these, whatever the files or the rule become.
    cfg.home = [float(v) for v in probe.robot.home]
    cfg.ee_offset_m = [float(v) for v in probe.robot.ee_offset]
    given = str(cfg.robot)  # a descriptor's own file, not the URDF it names; a name: the URDF it found
    cfg.robot_file = str(Path(given).expanduser().resolve() if is_robot_file(given) else probe.robot.spec.urdf_path)
    robot_name = probe.robot.name
    # The folder is locked before anything is written to it, and stays locked until this launcher ends.
    try:
        claimed = claim_resumed_run_dir(Path(cfg.run_dir)) if resume else claim_new_run_dir(cfg, robot_name, force)
    except BaseException:
        probe.close()
        raise
    try:
        return _train_in(cfg, backend, probe, claimed, resume, viewer, ctx)
    finally:
        claimed.release()


def _train_in(cfg: TrainConfig, backend: Backend, probe: ArmEnv, claimed: RunDir, resume: bool,
              viewer: Callable[[Path], None] | None, ctx) -> dict:
    """`train` once its run directory is claimed."""
    run_dir = claimed.path
    obs_dim, action_dim, robot_name = probe.obs_dim, probe.robot.dof, probe.robot.name
    resumed = load_resume_state(run_dir, probe) if resume else None
    write_config(run_dir, cfg)

    shared = backend.build_shared(cfg, obs_dim, action_dim, ctx, run_dir)
    try:
        if resumed:
            restore(shared, resumed)
            print(f"resuming {robot_name} from {resumed.env_steps:,} steps with {cfg.workers} A3C worker(s), task "
                  f"{cfg.task}; "
                  f"run directory {run_dir}", flush=True)
        else:
            print(f"training {robot_name} to {cfg.task} with {cfg.workers} A3C worker(s); run directory {run_dir}", flush=True)
            home = " ".join(f"{v:+.3f}" for v in probe.robot.home)
            print(f"home pose {home}: {probe.robot.home_reason}", flush=True)
            for note in probe.speed_notes():
                print(f"warning: joint speeds: {note}", file=sys.stderr, flush=True)
        board = LiveBoard.create(run_dir, cfg.workers, action_dim, probe.config.episode_steps, probe.draw_size)
        log = MetricsLog(run_dir, resumed.metrics_rows if resumed else None, resumed.env_steps if resumed else None,
                         probe.task.metrics)
        claimed.add_files(log.event_files)
        monitor = Monitor(cfg, shared, log, board, resumed)
        # The backend started (or joined) Ray before the signal handlers below: Ray sets its own.
        workers = backend.workers(ctx, cfg, shared, run_dir, monitor.start_steps, monitor.evaluator_args)
        with StopSignals(run_dir, workers) as signals:
            workers.start_all()
            if viewer is not None:  # its own process: closing it never touches the training
                ctx.Process(target=viewer, args=(run_dir,), name="a3c-viewer", daemon=True).start()
            reason, fault = monitor_until_stop(monitor, workers, signals)
            return finish(cfg, shared, monitor, probe, run_dir, signals.reason or reason, fault, workers.restarts,
                          stop=lambda: signals.reason is not None, backend_figures=workers.figures, ctx=ctx)
    finally:
        backend.release(shared)


def monitor_until_stop(monitor: Monitor, workers: WorkerSet, signals: "StopSignals") -> tuple[str, str | None]:
    """Take reports, log, print progress and replace dead workers until a stopping rule, a signal or a fault
    ends the run; then stop the workers. Returns (the reason, the fault or None)."""
    reason, fault = None, None
    try:
        while reason is None:
            time.sleep(MONITOR_SECONDS)
            for event in workers.reports():
                monitor.handle(event)
            monitor.log_tick()
            monitor.progress()
            reason = signals.reason or monitor.stop_reason()
            if reason is None:
                fault = workers.replace_dead()
                reason = fault
    finally:
        workers.stop(monitor.handle)
    return reason, fault


def held_out_test(cfg: TrainConfig, run_dir: Path, columns: list[str], stop: Callable[[], bool]) -> dict | None:
    """best.pt on the held-out test episodes: summary.json's `test_*` figures (none when --test-episodes is 0;
    None when `stop()` turned true before the test's end: Ctrl-C or SIGTERM ends it between two episodes)."""
    best = run_dir / "checkpoints" / "best.pt"
    if not cfg.test_episodes or not best.exists():
        return {}
    result = evaluate_checkpoint(best, cfg.test_episodes, cfg.test_seed, stop=stop)
    if result is None:
        return None
    return {"test_checkpoint": "checkpoints/best.pt", "test_checkpoint_env_steps": result["env_steps"],
            "test_episodes": cfg.test_episodes, "test_seed": cfg.test_seed,
            **{f"test_{name}": result[name] for name in ("success_rate", "mean_final_distance_m", "reached_rate",
                                                          *SAFETY_COLUMNS, *columns)}}


def robustness_grid(cfg: TrainConfig, run_dir: Path, stop: Callable[[], bool], ctx) -> dict | None:
    """best.pt on the first `ROBUSTNESS_EPISODES` held-out episodes at each point of the robustness grid (action
    latency, encoder noise: `a3c.robustness`), played by as many processes as the run had workers here (they are
    idle now); summary.json's `robustness`. None when `stop()` turned true first."""
    episodes = min(cfg.test_episodes, ROBUSTNESS_EPISODES)
    result = robustness(run_dir / "checkpoints" / "best.pt", episodes, cfg.test_seed, stop=stop, ctx=ctx,
                        processes=min(cfg.workers, os.cpu_count() or 1))
    if result is None:
        return None
    # the run directory's own path to the checkpoint; the robot is the summary's
    return {**{key: value for key, value in result.items() if key != "robot"}, "checkpoint": "checkpoints/best.pt"}


def stop_rule_figures(cfg: TrainConfig, monitor: Monitor) -> dict:
    """What the stop rule saw (summary.json's `stop_rule`): its settings, this session's confirmations of
    candidates on fresh episodes, and whether one of them stopped the run."""
    return {"target_success": cfg.target_success, "target_streak": cfg.target_streak,
            "confirm_episodes": cfg.confirm_episodes, "confirm_confidence": cfg.confirm_confidence,
            "confirmations": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in c.items()}
                              for c in monitor.confirmations],
            "confirmed": monitor.confirmed is not None}


def finish(cfg: TrainConfig, shared: Shared, monitor: Monitor, probe: ArmEnv, run_dir: Path, reason: str,
           fault: str | None, restarts: int, stop: Callable[[], bool] = lambda: False,
           backend_figures: dict | None = None, ctx=None) -> dict:
    """Evaluate the final weights (in this process, so the summary's success rate is current), write the final
    checkpoint, the learning curve and summary.json, and say why the run stopped. The held-out test runs unless
    `stop()` is true or a fault stopped the run, and ends when `stop()` turns true (a stop asked for by Ctrl-C or
    SIGTERM should be quick, and a run that failed should say so at once, not after a test of the weights it
    failed with: both say how to run the test later)."""
    run_test = not stop() and fault is None
    torch.set_num_threads(1)
    final = evaluate_policy(shared.model, shared.normalizer, probe, cfg.eval_episodes, cfg.eval_seed)
    final["env_steps"], final["wall_seconds"] = shared.global_steps(), round(shared.wall_seconds(), 2)
    monitor.board.mark_finished()
    probe_robot, columns = probe.robot.name, monitor.task_columns
    try:
        save_evaluated(run_dir, checkpoint_payload(cfg, shared.optimizer, shared.model,
                                                   shared.normalizer.state_dict(), final["env_steps"], probe, final),
                       math.inf if monitor.confirmed else monitor.best_success)  # a confirmed candidate stays best.pt
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
        "robot": probe_robot, "task": cfg.task, "workers": cfg.workers, "stop_reason": reason, "error": fault,
        "success_rate": final["success_rate"], "mean_final_distance_m": final["mean_final_distance_m"],
        "reached_rate": final["reached_rate"], **{name: final[name] for name in columns},
        "best_success_rate": monitor.best_success, "stop_rule": stop_rule_figures(cfg, monitor),
        "env_steps": final["env_steps"],
        "wall_seconds": final["wall_seconds"], "resumed_from_steps": monitor.start_steps,
        "session_seconds": round(session_seconds, 2),
        "steps_per_second": round((final["env_steps"] - monitor.start_steps) / session_seconds, 1),
        "cpu_cores": monitor.session_cpu_cores(),
        "train_episodes": monitor.episode_count, "skipped_updates": monitor.skipped,
        "worker_restarts": restarts, "optimizer_steps": shared.optimizer.step_count(),
        "evaluations": [{k: r[k] for k in ("env_steps", "wall_seconds", "success_rate", "mean_final_distance_m",
                                           "eval_episodes", *columns) if k in r} for r in log.rows],
    }
    if backend_figures:
        summary["sync"] = backend_figures  # the Ray backend's sync agents: syncs, bytes, staleness, lost updates
    test = held_out_test(cfg, run_dir, columns, stop) if run_test else {}
    if test is None:  # interrupted: the summary is written without it
        run_test, test = False, {}
    summary.update(test)
    grid = robustness_grid(cfg, run_dir, stop, ctx) if test else None
    if grid:
        summary["robustness"] = grid
    try:
        write_atomically(run_dir / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
        plot_learning_curve(log.rows, run_dir / "learning_curve.png",
                            f"A3C on {probe_robot} ({cfg.task}), {cfg.workers} worker(s)")
    except OSError as err:
        raise UserError(f"cannot write the summary in {run_dir} ({err.strerror}); the final checkpoint is saved; "
                        f"free some disk space") from None
    print(f"stopped: {reason}. Final success rate {final['success_rate']:.0%}, best {monitor.best_success:.0%}, "
          f"{final['env_steps']:,} steps in {session_seconds / 60:.1f} min. Files in {run_dir}", flush=True)
    if cfg.test_episodes and not run_test:
        why = "stopped by an error" if fault else "stopped by a signal"
        print(f"held-out test not run (the run was {why}): python scripts/evaluate.py --checkpoint "
              f"{run_dir / 'checkpoints' / 'best.pt'} --test", flush=True)
    if test:
        print(f"held-out test: best.pt succeeded on {test['test_success_rate']:.1%} of {cfg.test_episodes} episodes "
              f"(seeds {cfg.test_seed}..{cfg.test_seed + cfg.test_episodes - 1}, never used to stop the run or pick "
              f"best.pt), mean final distance {test['test_mean_final_distance_m']:.3f} m", flush=True)
    if grid:
        print(summary_line(grid), flush=True)
    if fault:
        print(f"error: the run stopped because {fault}; the final checkpoint is saved: fix the cause and continue "
              f"with --resume {run_dir}", file=sys.stderr, flush=True)
    return summary
