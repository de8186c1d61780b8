"""What the launcher shares with every process: the global Actor-Critic, its optimizer and observation
normaliser, the step counters and the stop flag, all in shared memory.

Nothing here takes a lock that a worker could die holding (a worker may be killed at any moment, and its
replacement and the other workers must carry on): each worker counts its steps and observations in slots of
its own, and the stop signal is a flag, not a `multiprocessing.Event` (whose internal lock a killed process
can leave held). Reports to the launcher go through one pipe per process (`backends.processes.Children`), so a process
killed in the middle of a report corrupts only its own pipe.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from arm_a3c.a3c.children import LauncherWatch
from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.model import ActorCritic
from arm_a3c.a3c.normalizer import RunningNormalizer
from arm_a3c.a3c.optim import SharedAdam


@dataclass
class Shared:
    """Passed to each child process at start; `launcher_pid` lets a child notice that the launcher died."""

    model: ActorCritic  # the global Actor-Critic; parameters in shared memory
    optimizer: SharedAdam  # steps the global parameters; state in shared memory
    normalizer: RunningNormalizer  # observation statistics in shared memory, worker k is writer k
    steps: torch.Tensor  # int64 (workers + 1,): [0] steps before this session (resume), [k + 1] worker k's steps
    stop_flag: torch.Tensor  # uint8 (1,): 1 once the run should end
    update_lock: Any | None  # multiprocessing.Lock around optimizer steps, or None for Hogwild
    run_dir: Path | None = None  # where the live board (`live.py`) is, for the viewer
    clock_origin: float = field(default_factory=time.time)  # time.time() at wall-clock 0 of the run
    launcher_pid: int | None = field(default_factory=os.getpid)

    def running(self) -> bool:
        """True until the stop flag is set or the launcher is gone (a killed launcher cannot signal; its
        orphaned children would otherwise train forever). A Ray actor is not the launcher's child, and has no
        `launcher_pid`: Ray ends it when the launcher dies."""
        return not self._views()[1][0] and (self.launcher_pid is None or self._launcher_alive())

    def _launcher_alive(self) -> bool:
        watch = self.__dict__.get("_watch")
        if watch is None or watch.launcher_pid != self.launcher_pid:
            watch = self._watch = LauncherWatch(self.launcher_pid)
        return watch()

    def request_stop(self) -> None:
        self.stop_flag[0] = 1

    def _views(self) -> tuple[np.ndarray, np.ndarray]:
        """numpy views of `steps` and `stop_flag`, made once per process (numpy on the shared tensors: a few times
        cheaper than torch, and no call into torch between a worker's physics steps)."""
        views = self.__dict__.get("_numpy")
        if views is None:
            views = self._numpy = (self.steps.numpy(), self.stop_flag.numpy())
        return views

    def __getstate__(self) -> dict:
        # each process makes its own views and its own watch
        return {k: v for k, v in self.__dict__.items() if k not in ("_numpy", "_watch")}

    def global_steps(self) -> int:
        """Environment steps taken by all workers, in this session and before it."""
        return int(self._views()[0].sum())

    def add_steps(self, rank: int, n: int) -> int:
        """Count n steps of worker `rank` (only that worker writes its slot) and return the new total."""
        counts = self._views()[0]
        counts[rank + 1] += n
        return int(counts.sum())

    def wall_seconds(self) -> float:
        """Wall-clock seconds of training, in this session and the ones before it."""
        return time.time() - self.clock_origin


class SharedMemoryLink:
    """A worker's link to the global model in this machine's shared memory: pulls copy the shared weights, pushes
    step the shared Adam on them, and `report(event)` passes reports to the launcher (the local backend: the
    worker's pipe; Ray workers on the launcher's machine, which use this link over `MappedShared`: a call to the
    parameter server). An `interfaces.WorkerLink`, as `backends.ray_worker.RayLink` is over the parameter server's calls,
    so both backends run one worker loop."""

    def __init__(self, shared: Shared, rank: int, report: Callable[[tuple], None] | None = None):
        self.shared, self.rank, self.report = shared, rank, report  # report(event): to the launcher
        self.weights = shared.model.flat.numpy()

    def running(self) -> bool:
        return self.shared.running()

    def pull(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Copy the global weights into `weights`; return the normaliser's snapshot (mean, 1/std)."""
        np.copyto(weights, self.weights)
        return self.shared.normalizer.snapshot()

    def add_steps(self, n: int) -> int:
        """Count n environment steps of this worker; return the global step count."""
        return self.shared.add_steps(self.rank, n)

    def push(self, grad: np.ndarray, lr: float) -> None:
        """Step the shared optimizer along this worker's gradient (under the update lock with --lock-updates)."""
        if self.shared.update_lock is not None:
            with self.shared.update_lock:
                self.shared.optimizer.step(grad, lr)
        else:
            self.shared.optimizer.step(grad, lr)

    def observe(self, raw_obs: np.ndarray) -> None:
        """Add a rollout's raw observations (n, obs_dim) to the shared normaliser."""
        self.shared.normalizer.update(raw_obs, writer=self.rank)

    def close(self) -> None:
        """Nothing waits to be sent: every push reached the shared memory when it was made."""


def build_shared(cfg: TrainConfig, obs_dim: int, action_dim: int, ctx, run_dir: Path | None = None) -> Shared:
    """Create the shared objects in torch's shared memory; `ctx` is the multiprocessing context
    (`children.children_context`) for the optional lock. (The Ray backend keeps them in a file instead:
    `backends.mapped`.)"""
    model = ActorCritic.from_config(cfg, obs_dim, action_dim)
    model.share_memory()
    return Shared(
        model=model,
        optimizer=SharedAdam(model.flat, eps=cfg.adam_eps),
        normalizer=RunningNormalizer(obs_dim, cfg.obs_clip, writers=cfg.workers),
        steps=torch.zeros(cfg.workers + 1, dtype=torch.int64).share_memory_(),
        stop_flag=torch.zeros(1, dtype=torch.uint8).share_memory_(),
        update_lock=ctx.Lock() if cfg.lock_updates else None,
        run_dir=run_dir,
    )
