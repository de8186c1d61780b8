"""Child processes on this machine, each with a pipe of its own for its reports: the local backend's workers and
evaluator, and the Ray backend's evaluator. A child that dies is replaced with the same role within a monitor
cycle; one that dies more than MAX_DEATHS times within DEATH_WINDOW_SECONDS is a fault that stops the run
(`DeathLog`, which the Ray backend's worker actors are counted with too).
"""

from __future__ import annotations

import signal
import time
from collections import deque
from multiprocessing.connection import wait
from pathlib import Path

from arm_a3c.a3c.children import launcher_environment, with_environment
from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.evaluator import evaluator_loop
from arm_a3c.a3c.interfaces import EvaluatorArgs, Report
from arm_a3c.a3c.shared import Shared
from arm_a3c.a3c.worker import worker_loop, worker_seed
from arm_a3c.errors import notice

JOIN_SECONDS = 3.0  # how long children get to finish after the stop flag, before they are killed
MAX_DEATHS = 5  # a child that dies more often than this within DEATH_WINDOW_SECONDS stops the run
DEATH_WINDOW_SECONDS = 60.0
LOCK_CHECK_SECONDS = 5.0  # with --lock-updates: how long a dead worker's update lock may stay taken
EVALUATOR = "evaluator"  # the role of the evaluator process; workers' roles are their ranks 0..N-1


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
    """A `WorkerSet` of child processes: the workers (roles 0..N-1) and the evaluator, each with a pipe of its
    own for its reports. A child that dies is replaced with the same role; one that dies more than MAX_DEATHS times
    within DEATH_WINDOW_SECONDS is a fault that stops the run."""

    def __init__(self, ctx, cfg: TrainConfig, shared: Shared, run_dir: Path, resumed_steps: int,
                 evaluator_args: EvaluatorArgs, roles: list | None = None):
        self.ctx, self.cfg, self.shared, self.run_dir = ctx, cfg, shared, run_dir
        self.roles = list(range(cfg.workers)) + [EVALUATOR] if roles is None else roles  # Ray: only the evaluator
        self.resumed_steps = resumed_steps
        self.evaluator_args = evaluator_args
        self.processes: dict = {}
        self.pipes: dict = {}  # role -> the launcher's (reading) end
        self.deaths = DeathLog()
        self.starts: dict = {}  # role -> processes started for it so far
        self.restarts = 0
        self.figures: dict = {}  # nothing of its own for summary.json

    def start(self, role: int | str) -> None:
        reader, writer = self.ctx.Pipe(duplex=False)
        if role == EVALUATOR:
            target, args = evaluator_loop, (self.cfg, self.shared, self.run_dir, writer, *self.evaluator_args())
        else:
            seed = worker_seed(self.cfg, role, self.starts.get(role, 0), self.resumed_steps)
            target, args = worker_loop, (role, self.cfg, self.shared, writer, seed)
        process = self.ctx.Process(target=with_environment, args=(launcher_environment(), target, *args),
                                   name=f"a3c-{role_name(role).replace(' ', '-')}", daemon=True)
        process.start()
        writer.close()  # the child holds the only writing end now: its death shows here as end-of-file
        self.processes[role], self.pipes[role] = process, reader
        self.starts[role] = self.starts.get(role, 0) + 1

    def start_all(self) -> None:
        for role in self.roles:
            self.start(role)

    def reports(self) -> list[Report]:
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

    def abandon(self) -> None:
        for process in self.processes.values():
            if process.is_alive():
                process.kill()
