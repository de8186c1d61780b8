"""`--backend ray`: the A3C workers as Ray actors, so a run can spread over the cores of a cluster.

The picture is the local backend's with shared memory replaced by one actor:

- `ParameterServer` (one actor, on the launcher's machine) holds the global Actor-Critic, its Adam (moments and
  step count) and the observation normaliser. A worker's `exchange` call applies that worker's gradient, counts
  its steps and observations, and answers with the newest weights: A3C's push and pull in one round trip.
  The actor runs one call at a time, so every update is applied whole, as with `--lock-updates`. Each new
  version of the weights is `ray.put` once, the first time a worker asks for it, and every worker that pulls
  that version reads the same object.
- `RayWorker` (one actor per worker, one CPU each, anywhere in the cluster) runs the local backend's worker loop,
  `worker.train_worker`, through a `RayLink` instead of shared memory.
- The launcher (`launcher.train`) keeps everything else: the evaluator process, checkpoints, metrics, the
  progress line, the stopping rules. It mirrors the parameter server's state into a local `Shared` every
  monitor cycle (`RayWorkers.reports`), so the evaluator, the final checkpoint and the summary read it exactly
  as they read the local backend's shared memory, and a Ray run's checkpoint resumes under either backend.
- A worker actor that dies is restarted by Ray (`max_restarts=-1`); the launcher starts its loop again with a
  new seed, and stops the run when one keeps dying (`launcher.MAX_DEATHS`), as it does for local processes.

Ray is optional (`requirements-ray.txt`). Every machine of a cluster needs the repository at the same path as
the launcher's (it is put on the actors' PYTHONPATH) and the same Python packages.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch

from arm_a3c.config import TrainConfig
from arm_a3c.errors import UserError, notice
from arm_a3c.model import ActorCritic
from arm_a3c.normalizer import RunningNormalizer
from arm_a3c.shared import Shared
from arm_a3c.shared_optim import SharedAdam

REPO = Path(__file__).resolve().parent.parent
OBJECT_STORE_BYTES = 256 * 2**20  # a local instance's object store: weights are ~50 KB a version
RESTART_WAIT_SECONDS = 30.0  # how long a dead worker actor may take to come back before the run stops
INSTALL_HINT = "python -m pip install -r requirements-ray.txt"


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


# ---- the parameter server -----------------------------------------------------------------------------------

class ParameterServer:
    """The global model, optimizer and normaliser of a Ray run; one call at a time (a plain Ray actor)."""

    def __init__(self, cfg: TrainConfig, obs_dim: int, action_dim: int, start: dict):
        torch.set_num_threads(1)
        self.model = ActorCritic.from_config(cfg, obs_dim, action_dim)
        self.weights = self.model.flat.numpy()
        self.weights[:] = start["weights"]
        self.optimizer = SharedAdam(self.model.flat, lr=cfg.lr, eps=cfg.adam_eps)
        self.optimizer.load_state_dict(start["optimizer"])
        self.normalizer = RunningNormalizer(obs_dim, cfg.obs_clip, writers=cfg.workers)
        self.normalizer.load_state_dict(start["normalizer"])
        self.steps = np.asarray(start["steps"], dtype=np.int64).copy()  # [0] before this session, [k+1] worker k
        self.version, self.put_version, self.put_ref = 0, -1, None
        self.stopping = False
        self.events: list = []  # workers' reports, until the launcher drains them
        self.busy_seconds, self.exchanges = 0.0, 0

    def exchange(self, rank: int, grad: np.ndarray | None, lr: float, raw_obs: np.ndarray | None, steps: int,
                 events: list, have_version: int):
        """A worker's push and pull: apply its gradient, count its `steps` and observations, keep its reports;
        return (version, [weights ref] or None if it has this version already, normaliser snapshot, global
        steps, stop). The ref is nested in a list so that Ray hands it over instead of fetching it here."""
        import ray

        began = time.perf_counter()
        self.steps[rank + 1] += steps
        if grad is not None:
            self.optimizer.step(grad, lr)
            self.version += 1
        if raw_obs is not None:
            self.normalizer.update(raw_obs, writer=rank)
        self.events.extend(events)
        weights = None
        if have_version != self.version:
            if self.put_version != self.version:  # one object per version, whichever worker asks first
                self.put_ref, self.put_version = ray.put(self.weights), self.version
            weights = [self.put_ref]
        answer = (self.version, weights, self.normalizer.snapshot(), int(self.steps.sum()), self.stopping)
        self.busy_seconds += time.perf_counter() - began
        self.exchanges += 1
        return answer

    def drain(self) -> tuple[list, dict]:
        """The reports since the last drain, and the global state for the launcher's mirror."""
        events, self.events = self.events, []
        state = {"weights": self.weights.copy(), "optimizer": self.optimizer.state_dict(),
                 "normalizer": self.normalizer.state_dict(), "steps": self.steps.copy()}
        return events, state

    def load_figures(self) -> dict:
        """How busy the server has been: exchanges applied and the seconds spent inside them."""
        return {"exchanges": self.exchanges, "busy_seconds": self.busy_seconds}

    def request_stop(self) -> None:
        self.stopping = True


def start_state(shared: Shared) -> dict:
    """What a new parameter server starts from: the launcher's (fresh or resumed) shared objects."""
    return {"weights": shared.model.flat.numpy().copy(), "optimizer": shared.optimizer.state_dict(),
            "normalizer": shared.normalizer.state_dict(), "steps": shared.steps.numpy().copy()}


def mirror(shared: Shared, state: dict) -> None:
    """Copy the parameter server's state into the launcher's shared objects (read by the evaluator and
    `launcher.finish`). Slot 0 of the steps (before this session) stays as it is."""
    np.copyto(shared.model.flat.numpy(), state["weights"])
    shared.optimizer.load_state_dict(state["optimizer"])
    shared.normalizer.load_state_dict(state["normalizer"])
    shared.steps.numpy()[1:] = state["steps"][1:]


# ---- the workers --------------------------------------------------------------------------------------------

class RayLink:
    """A worker's link to the parameter server, with `shared.SharedMemoryLink`'s methods. The gradient, the
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

    def report(self, event: tuple) -> None:
        self._events.append(event)

    def close(self) -> None:
        """Send the last update (the run is stopping: the answer does not matter)."""
        if self._grad is not None or self._steps or self._events:
            self._exchange()


class RayWorker:
    """One A3C worker as a Ray actor: its own environment, the local backend's loop."""

    def __init__(self, rank: int, cfg: TrainConfig, server, run_dir: str, resumed_steps: int):
        self.rank, self.cfg, self.server, self.run_dir, self.resumed_steps = rank, cfg, server, run_dir, resumed_steps

    def run(self, starts: int) -> None:
        """Train until the parameter server says stop; `starts` counts this rank's earlier loops (each new loop
        gets a seed of its own)."""
        from arm_a3c.worker import train_worker, worker_seed

        seed = worker_seed(self.cfg, self.rank, starts, self.resumed_steps)
        train_worker(self.rank, self.cfg, RayLink(self.server, self.rank), seed, Path(self.run_dir))


# ---- the launcher's side ------------------------------------------------------------------------------------

def start_ray(cfg: TrainConfig):
    """Join the cluster at cfg.ray_address, or start a local Ray instance with one CPU per worker."""
    ray = import_ray()
    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
        p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)}}
    try:
        if cfg.ray_address:
            ray.init(address=cfg.ray_address, runtime_env=runtime_env, logging_level=logging.WARNING)
        else:
            ray.init(address="local", num_cpus=cfg.workers, include_dashboard=False,
                     object_store_memory=OBJECT_STORE_BYTES, runtime_env=runtime_env, logging_level=logging.WARNING)
    except ConnectionError as err:
        raise UserError(f"--ray-address {cfg.ray_address}: no Ray cluster there ({str(err)[:120]}); start one "
                        f"with `ray start --head`, or leave --ray-address out for a local instance") from None
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < cfg.workers:
        ray.shutdown()
        raise UserError(f"--workers {cfg.workers} needs {cfg.workers} CPUs, and the Ray cluster has {cpus:g}; "
                        f"pass --workers {int(cpus)} or add machines to the cluster")
    return ray


class RayWorkers:
    """The Ray backend's counterpart of `launcher.Children`, with the same methods for the launcher's loop:
    the parameter server and the worker actors, plus the evaluator as a local process (`Children` with only
    the evaluator's role), and the mirror of the server's state in the launcher's `Shared`."""

    def __init__(self, ctx, cfg: TrainConfig, shared: Shared, run_dir: Path, resumed_steps: int,
                 evaluator_args, obs_dim: int, action_dim: int):
        from arm_a3c.launcher import EVALUATOR, Children

        self.ray = start_ray(cfg)
        self.cfg, self.shared, self.resumed_steps = cfg, shared, resumed_steps
        self.run_dir = Path(run_dir).resolve()
        self.evaluator = Children(ctx, cfg, shared, run_dir, resumed_steps, evaluator_args, roles=[EVALUATOR])
        # The server and the evaluator's process must share the launcher's machine (checkpoints are written
        # there): the server goes on the launcher's node, with no CPU reserved (it is busy a few % of the time).
        here = self.ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
            self.ray.get_runtime_context().get_node_id(), soft=False)
        self.server = self.ray.remote(num_cpus=0, max_restarts=0, scheduling_strategy=here)(ParameterServer).remote(
            cfg, obs_dim, action_dim, start_state(shared))
        self.worker_class = self.ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)(RayWorker)
        self.actors: dict = {}
        self.runs: dict = {}  # rank -> ObjectRef of its running loop
        self.starts: dict = {}
        self.deaths: dict = {}
        self.restarts = 0

    def start_all(self) -> None:
        for rank in range(self.cfg.workers):
            self.actors[rank] = self.worker_class.remote(
                rank, self.cfg, self.server, str(self.run_dir), self.resumed_steps)
            self._run(rank)
        self.evaluator.start_all()

    def _run(self, rank: int) -> None:
        self.runs[rank] = self.actors[rank].run.remote(self.starts.get(rank, 0))
        self.starts[rank] = self.starts.get(rank, 0) + 1

    def reports(self) -> list:
        """The workers' reports (through the server) and the evaluator's; refreshes the mirror."""
        events, state = self.ray.get(self.server.drain.remote())
        mirror(self.shared, state)
        return events + self.evaluator.reports()

    def replace_dead(self) -> str | None:
        """Start the loop again on every worker actor Ray restarted; the reason to stop if one keeps dying."""
        from arm_a3c.launcher import DEATH_WINDOW_SECONDS, MAX_DEATHS

        ready, _ = self.ray.wait(list(self.runs.values()), num_returns=len(self.runs), timeout=0)
        for rank, ref in list(self.runs.items()):
            if ref not in ready:
                continue
            try:
                self.ray.get(ref)
                continue  # the loop ended because the run is stopping
            except self.ray.exceptions.RayActorError as err:
                how = type(err).__name__
            now = time.monotonic()
            deaths = self.deaths.setdefault(rank, deque())
            deaths.append(now)
            while deaths and now - deaths[0] > DEATH_WINDOW_SECONDS:
                deaths.popleft()
            if len(deaths) > MAX_DEATHS:
                return f"worker {rank + 1} died {len(deaths)} times within {DEATH_WINDOW_SECONDS:.0f} s (last: {how})"
            notice(f"worker {rank + 1} (a Ray actor) died ({how}); Ray restarts it "
                   f"({len(deaths)} death(s) of it in the last minute)")
            self.restarts += 1
            self._run(rank)
        return self.evaluator.replace_dead()

    def stop(self, on_report) -> None:
        """Stop the workers (through the server), take their last reports and the final state into the mirror,
        stop the evaluator, and shut Ray down."""
        from arm_a3c.launcher import JOIN_SECONDS

        ray = self.ray
        try:
            ray.get(self.server.request_stop.remote())
            ray.wait(list(self.runs.values()), num_returns=len(self.runs), timeout=JOIN_SECONDS)
            for event in self.reports():
                on_report(event)
        except ray.exceptions.RayError as err:
            notice(f"warning: the parameter server did not answer at the stop ({type(err).__name__}); the final "
                   f"checkpoint holds its state from the last monitor cycle, under a second earlier")
        self.evaluator.stop(on_report)
        for actor in self.actors.values():
            ray.kill(actor)
        ray.shutdown()

    def server_load(self) -> dict:
        return self.ray.get(self.server.load_figures.remote())
