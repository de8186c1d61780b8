"""The extension points of the training loop, as `typing.Protocol`s (SB3 names its seams in `common/`; so do we).

- `WorkerLink`: a worker's way to the global model. The worker loop (`worker.train_worker`) is written against
  it alone, so one loop serves every backend: `shared.SharedMemoryLink` (this machine's shared memory) and
  `backends.ray_worker.RayLink` (a parameter server elsewhere) implement it.
- `WorkerSet`: a backend's running workers (and the evaluator), as the launcher's monitor loop sees them:
  `backends.processes.Children` and `backends.ray.RayWorkers` implement it.
- `Backend`: where the workers run. The launcher is handed one and never asks which it is;
  `backends.local.LocalBackend` and `backends.ray.RayBackend` implement it, and `backends.backend_for` picks one
  by its `--backend` name.

A report is a tuple whose first item says what it is: `("update", rank, skipped_updates, loss_means,
episodes, cpu_seconds)` (episodes: (return, length, success, {the task's episode figures}) each; cpu_seconds:
the worker process's CPU time since its last report) from a worker every `worker.UPDATE_REPORT_EVERY` updates,
`("eval", result)` (result["cpu_seconds"]: the evaluator's CPU time since its last evaluation) and
`("checkpoint_failed", message)` from the evaluator, `("sync_agent_restarted", node_id, lost_updates)` from a
Ray sync agent that was restarted.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np

if TYPE_CHECKING:
    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.a3c.shared import Shared

Report = tuple  # see the module docstring
# () -> (best success rate so far, step of the next evaluation, first seed of the next confirmation)
EvaluatorArgs = Callable[[], tuple[float, int, int]]


class WorkerLink(Protocol):
    """A3C's pull and push, as one worker sees them."""

    def running(self) -> bool:
        """False once the run is stopping (or the launcher is gone)."""

    def pull(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Copy the global weights into `weights` (the local flat vector); return the observation normaliser's
        snapshot (mean, 1/std)."""

    def add_steps(self, n: int) -> int:
        """Count n environment steps of this worker; return the global step count (it drives the schedule)."""

    def push(self, grad: np.ndarray, lr: float) -> None:
        """Step the shared Adam along this worker's gradient (flat float32, laid out like the weights)."""

    def observe(self, raw_obs: np.ndarray) -> None:
        """Add a rollout's raw observations (n, obs_dim) to the shared normaliser."""

    def report(self, event: Report) -> None:
        """Send a report to the launcher."""

    def close(self) -> None:
        """The loop has ended: deliver whatever is still waiting to be sent."""


class WorkerSet(Protocol):
    """The running workers and the evaluator of one run."""

    restarts: int  # workers (or the evaluator) replaced after dying, so far
    figures: dict  # the backend's own figures after the stop, for summary.json (the Ray sync agents'); {}: none

    def start_all(self) -> None:
        """Start every worker and the evaluator."""

    def reports(self) -> list[Report]:
        """Every report that arrived since the last call (without waiting)."""

    def replace_dead(self) -> str | None:
        """Replace the processes that died; the reason to stop the run if one keeps dying, else None."""

    def stop(self, on_report: Callable[[Report], None]) -> None:
        """Set the stop flag, wait a little for everything to finish (passing their last reports to
        `on_report`), then end what is left."""

    def abandon(self) -> None:
        """For an exit at once (a second Ctrl-C): end everything now and remove what would outlive the
        launcher."""


class Backend(Protocol):
    """Where the workers of a run execute, and what that needs around the launcher's common steps."""

    name: str  # the --backend value

    def check(self, cfg: "TrainConfig") -> None:
        """Refuse settings this backend cannot honour (`UserError` naming the flag)."""

    def start(self, cfg: "TrainConfig") -> None:
        """Prepare before anything of the run is made (join a cluster, say): a failure here leaves nothing
        behind."""

    def build_shared(self, cfg: "TrainConfig", obs_dim: int, action_dim: int, ctx: Any, run_dir: Path) -> "Shared":
        """The global model, optimizer, normaliser and counters, in memory the backend's processes can reach."""

    def workers(self, ctx: Any, cfg: "TrainConfig", shared: "Shared", run_dir: Path, resumed_steps: int,
                evaluator_args: EvaluatorArgs) -> WorkerSet:
        """The run's workers and evaluator, not started yet."""

    def release(self, shared: "Shared") -> None:
        """After the run: free what `build_shared` and `start` took."""
