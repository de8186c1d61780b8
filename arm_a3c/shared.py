"""What the launcher shares with every process: the global Actor-Critic, its optimizer and observation
normaliser (all in shared memory), the global step counter, the stop signal and the event queue."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arm_a3c.config import TrainConfig
from arm_a3c.model import ActorCritic
from arm_a3c.normalizer import RunningNormalizer
from arm_a3c.shared_optim import SharedAdam


@dataclass
class Shared:
    """Passed to each child process at start; `launcher_pid` lets a child notice that the launcher died."""

    model: ActorCritic  # the global Actor-Critic; parameters in shared memory
    optimizer: SharedAdam  # steps the global parameters; state in shared memory
    normalizer: RunningNormalizer  # observation statistics in shared memory
    global_steps: Any  # multiprocessing.Value('q'): environment steps taken by all workers
    stop: Any  # multiprocessing.Event: set when the run should end
    events: Any  # multiprocessing.Queue: episode, update and evaluation reports for the launcher
    update_lock: Any | None  # multiprocessing.Lock around optimizer steps, or None for Hogwild
    run_dir: Path | None = None  # where the live board (live.py) is, for the viewer
    launcher_pid: int = field(default_factory=os.getpid)

    def running(self) -> bool:
        """True until the stop signal is set or the launcher is gone (a killed launcher cannot signal; its
        orphaned children would otherwise train forever)."""
        return not self.stop.is_set() and os.getppid() == self.launcher_pid


def ignore_interrupts() -> None:
    """For child processes: Ctrl-C reaches the whole process group, but only the launcher should react (it
    sets `stop`, and the children finish their current step and exit)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def build_shared(cfg: TrainConfig, obs_dim: int, action_dim: int, ctx, run_dir: Path | None = None) -> Shared:
    """Create the shared objects with a multiprocessing context (`spawn`)."""
    model = ActorCritic.from_config(cfg, obs_dim, action_dim)
    model.share_memory()
    return Shared(
        model=model,
        optimizer=SharedAdam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps),
        normalizer=RunningNormalizer(obs_dim, cfg.obs_clip, lock=ctx.Lock()),
        global_steps=ctx.Value("q", 0),
        stop=ctx.Event(),
        events=ctx.Queue(),
        update_lock=ctx.Lock() if cfg.lock_updates else None,
        run_dir=run_dir,
    )
