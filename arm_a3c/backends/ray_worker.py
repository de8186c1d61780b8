"""The Ray backend's workers: `RayWorker`, one actor per A3C worker, runs the local backend's loop
(`worker.train_worker`) over whichever link its machine has (the mapped memory on the launcher's machine, its
machine's copy behind a sync agent elsewhere, or `RayLink`, one exchange with the parameter server per update)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arm_a3c.a3c.children import become_child
from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.interfaces import Report
from arm_a3c.a3c.shared import SharedMemoryLink
from arm_a3c.a3c.worker import train_worker, worker_seed
from arm_a3c.backends.mapped import attach_shared
from arm_a3c.backends.ray_sync import sync_agent_for


class RayLink:
    """A worker's `WorkerLink` to the parameter server. The gradient, the
    step count, the observations and the reports of one update travel together in the next pull's `exchange`
    call: one round trip per update."""

    def __init__(self, server, rank: int):
        self.server, self.rank = server, rank
        self.version, self.global_steps, self.stopping = -1, 0, False
        self._grad, self._lr, self._obs, self._steps, self._events = None, 0.0, None, 0, []

    def running(self) -> bool:
        return not self.stopping

    def _exchange(self):
        import ray

        answer = ray.get(self.server.exchange.remote(self.rank, self._grad, self._lr, self._obs, self._steps,
                                                     self._events, self.version))
        self._grad, self._obs, self._steps, self._events = None, None, 0, []
        return answer

    def pull(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import ray

        version, refs, snapshot, self.global_steps, self.stopping = self._exchange()
        if refs is not None:
            np.copyto(weights, ray.get(refs[0]))  # a read-only view of the object store: copied
            self.version = version
        return snapshot

    def add_steps(self, n: int) -> int:
        self._steps += n
        return self.global_steps + self._steps

    def push(self, grad: np.ndarray, lr: float) -> None:
        self._grad, self._lr = grad, lr  # sent by the next pull, before the loop computes another gradient

    def observe(self, raw_obs: np.ndarray) -> None:
        self._obs = raw_obs

    def report(self, event: Report) -> None:
        self._events.append(event)

    def close(self) -> None:
        """Send the last update (the run is stopping: the answer does not matter)."""
        if self._grad is not None or self._steps or self._events:
            self._exchange()


class RayWorker:
    """One A3C worker as a Ray actor: its own environment, the local backend's loop."""

    def __init__(self, rank: int, cfg: TrainConfig, server_name: str, shared_spec: dict, launcher_node: str,
                 resumed_steps: int):
        import ray

        self.rank, self.cfg, self.resumed_steps = rank, cfg, resumed_steps
        self.server = ray.get_actor(server_name)  # by name: a handle among the arguments defeats restarts
        self.server_name, self.shared_spec = server_name, shared_spec
        self.node = ray.get_runtime_context().get_node_id()
        self.on_launcher_machine = self.node == launcher_node

    def run(self, starts: int) -> None:
        """Train until the run stops; `starts` counts this rank's earlier loops (each loop gets a seed of its
        own)."""
        become_child(f"a3c-worker-{self.rank + 1}")  # after Ray named the process for this call
        seed = worker_seed(self.cfg, self.rank, starts, self.resumed_steps)
        if self.on_launcher_machine and self.cfg.ray_shared_memory:
            shared = attach_shared(self.shared_spec, launcher_pid=None)
            link = SharedMemoryLink(shared, self.rank, self.server.report.remote)
        elif self.cfg.ray_sync_ms > 0:  # this machine's copy of the model, kept in sync by its agent
            import ray

            self.agent = sync_agent_for(ray, self.cfg, self.server_name, self.shared_spec, self.node)  # kept alive
            node_memory = attach_shared(ray.get(self.agent.attach.remote()), launcher_pid=None)
            link = SharedMemoryLink(node_memory, self.rank, self.agent.report.remote)
        else:
            link = RayLink(self.server, self.rank)
        # The viewer's live board is a file in the run directory, for workers on the launcher's machine only.
        run_dir = Path(self.shared_spec["run_dir"]) if self.on_launcher_machine else None
        train_worker(self.rank, self.cfg, link, seed, run_dir)
