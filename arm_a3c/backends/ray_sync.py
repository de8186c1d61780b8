"""Two levels for `--backend ray` across machines: one sync agent per machine instead of one parameter-server
exchange per worker update.

Why: one parameter-server core applies a few hundred exchanges a second (docs/more-machines.md), and a worker
elsewhere made one exchange per 20-step update, so all remote workers together added about 1.4 local workers'
worth of steps. At 10k parameters the cost is messages, not bytes, so the fix is fewer, larger messages (as
Downpour SGD pushes accumulated updates and fetches parameters every n steps, rather than one message per
gradient).

The picture on a machine (a Ray node) other than the launcher's:

- The node's workers share one **node-local copy** of the global model in a memory-mapped file on that node
  (`backends.mapped.MappedShared`, the layout the launcher's machine uses), with a node-local Adam whose moments and step
  count the node's workers share: they pull, act and push exactly as the local backend's processes do
  (`shared.SharedMemoryLink`, Hogwild, no messages).
- One `SyncAgent` actor per node, every `--ray-sync-ms` milliseconds, sends the parameter server the node's
  **parameter delta** since its last sync (what the node's Adam steps changed), with the environment steps, the
  observation statistics and the workers' reports of the same period; the server adds the delta to the global
  weights (`ParameterServer.sync`) and answers with the newest global weights and normaliser, which the agent
  writes into the node-local copy, keeping whatever the node's workers changed during the round trip.
- The launcher's machine keeps its direct path: its workers step the global Adam in the global memory.

Semantics, and how stale weights get. Each node's Adam moments are its own (started from the global Adam's
moments when the agent starts); the global weights are changed by the launcher's machine's Adam steps and by
every node's deltas. A worker's gradient is applied at once to its node's copy and reaches the global model at
the node's next sync; its weights lag the global ones by at most one sync period plus a round trip. The agents
count, per sync, the global updates (the global Adam's steps plus the updates carried by every delta) applied
between their last pull and the application of their delta: summary.json's `sync.staleness_updates_*`.

Counting. A sync carries the node's counters as running totals (its Adam steps, each rank's environment steps,
each writer's observation sums), and the server applies the part it has not applied yet: nothing is counted
twice, even when an agent dies after the server applied its sync and its successor sends the same totals again.

Faults. An agent that dies is restarted by Ray on its node; it maps the node's file again and carries on. The
node's updates the server had not applied are dropped (the base of their delta was in the dead agent's memory):
they are counted (`sync.lost_updates`) and the launcher says so. Steps and observation statistics live in the
node's memory as running totals, so none is lost. A worker that dies is restarted by Ray as before.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from arm_a3c.a3c.config import TrainConfig
from arm_a3c.backends.mapped import MappedShared, attach_shared, build_mapped_shared

MARKS = "marks"  # the node file's companion: the agent's figures (float64)


def node_file(spec: dict, node_id: str) -> Path:
    """The node-local copy's file, beside the launcher's (`arm-a3c-PID-...` in /dev/shm), one per node and run."""
    path = Path(spec["path"])
    return path.with_name(f"{path.stem}-node-{node_id[:12]}.bin")


def agent_name(server_name: str, node_id: str) -> str:
    return f"{server_name}-sync-{node_id[:12]}"


FIGURES = ("syncs", "updates_sent", "bytes_sent", "lost_updates", "restarts", "staleness_sum", "staleness_max",
           "staleness_syncs", "round_trip_seconds", "adam_start")  # an agent's figures, kept in its marks


class SyncMarks:
    """An agent's figures (and the node Adam's step count when the agent first started), in a small file beside
    the node's memory, so that a restarted agent's figures go on from its predecessor's."""

    def __init__(self, path: Path, create: bool):
        if create:
            with open(path, "wb") as f:
                f.truncate(8 * len(FIGURES))
        self.values = np.memmap(path, dtype=np.float64, mode="r+", shape=(len(FIGURES),))

    def add(self, name: str, value: float) -> None:
        self.values[FIGURES.index(name)] += value

    def raise_to(self, name: str, value: float) -> None:
        index = FIGURES.index(name)
        self.values[index] = max(self.values[index], value)

    def figure(self, name: str) -> float:
        return float(self.values[FIGURES.index(name)])


class SyncAgent:
    """One per node and run (a named Ray actor, pinned to its node, threaded): keeps the node-local copy and
    syncs it with the parameter server every `cfg.ray_sync_ms` ms until the run stops.

    Its syncs carry the node's counters as running totals (Adam steps, each rank's environment steps, each
    writer's observation sums), and the server applies the difference from the totals it holds for the node:
    a sync sent twice (by an agent that died after the server applied it, then by its successor) counts once."""

    def __init__(self, cfg: TrainConfig, server_name: str, global_spec: dict, node_id: str):
        import ray

        torch.set_num_threads(1)
        try:
            Path("/proc/self/comm").write_text("a3c-sync-agent")
        except OSError:
            pass
        self.cfg, self.node_id = cfg, node_id
        self.server = ray.get_actor(server_name)
        path = node_file(global_spec, node_id)
        self.spec = {**{k: global_spec[k] for k in ("cfg", "obs_dim", "action_dim")}, "path": str(path),
                     "run_dir": None}
        try:
            restarted = path.exists()
            if restarted:
                self.node: MappedShared = attach_shared(self.spec, launcher_pid=None)
            else:
                self.node = build_mapped_shared(cfg, global_spec["obs_dim"], global_spec["action_dim"], path)
                self.node.launcher_pid = None
            self.marks = SyncMarks(path.with_suffix(f".{MARKS}"), create=not restarted)
            self.lock, self.events_lock = threading.Lock(), threading.Lock()
            self.events: list = []
            if not restarted:  # start from the global Adam's moments and step count
                state = ray.get(self.server.optimizer_state.remote())
                for name in ("exp_avg", "exp_avg_sq"):
                    getattr(self.node.optimizer, name).numpy()[:] = state[name]
                self.node.optimizer.steps.fill_(float(state["steps"]))
                self.marks.add("adam_start", state["steps"])
            self.base = self.node.model.flat.numpy().copy()  # replaced by the global weights in the first sync
            self.last_applied, self.last_updates, self.stopped = None, 0, False
            # The node's copy becomes the global model before any worker of this agent uses it. After a restart,
            # the node's updates that the server has not applied are dropped (the base of their delta died with
            # the agent): counted, and said.
            updates, applied = self._sync(replace=True)
            if restarted:
                lost = updates - applied
                self.marks.add("lost_updates", lost)
                self.marks.add("restarts", 1)
                self.report(("sync_agent_restarted", node_id, lost))
        except ray.exceptions.RayActorError:
            # The parameter server is gone (it is never restarted): the run ended under an agent that Ray restarted
            # after the launcher's last clean-up. No copy of a run that is over stays behind in /dev/shm.
            path.unlink(missing_ok=True)
            path.with_suffix(f".{MARKS}").unlink(missing_ok=True)
            raise
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def node_updates(self) -> int:
        """The Adam steps the node's workers made since the node's copy was made."""
        return self.node.optimizer.step_count() - int(self.marks.figure("adam_start"))

    # ---- for the node's workers ---------------------------------------------------------------------------

    def attach(self) -> dict:
        """The node memory's spec, for `attach_shared` in a worker on this node."""
        return self.spec

    def report(self, event: tuple) -> None:
        """A report of one of the node's workers: sent to the launcher with the next sync."""
        with self.events_lock:
            self.events.append(event)

    # ---- syncing ----------------------------------------------------------------------------------------

    def _loop(self) -> None:
        period = self.cfg.ray_sync_ms / 1000
        while not self.stopped:
            began = time.monotonic()
            try:
                self._sync()
            except Exception:  # the server is gone (the run is over), or a fault: the node's workers stop
                traceback.print_exc()  # into the actor's log, which Ray shows on the launcher's terminal
                self.node.request_stop()
                return
            time.sleep(max(0.0, period - (time.monotonic() - began)))

    def _sync(self, replace: bool = False) -> tuple[int, int]:
        """One exchange with the parameter server; returns the node's updates counted in it and those the server
        had applied. `replace`: the node's copy becomes the global model outright, and the updates the server
        has not applied are dropped (a new or restarted agent); the server counts the node's updates from here."""
        import ray

        with self.lock:
            node = self.node
            local = node.model.flat.numpy()
            updates = self.node_updates()  # read before the weights: an update in between goes with the next sync
            snapshot = local.copy()
            delta = None if replace else snapshot - self.base
            steps = node.steps.numpy()[1:].copy()
            ranks = np.nonzero(steps)[0]
            count = node.normalizer.count.numpy().copy()
            total, total_sq = node.normalizer.total.numpy().copy(), node.normalizer.total_sq.numpy().copy()
            writers = np.nonzero(count)[0]
            totals = (ranks, steps[ranks], writers, count[writers], total[writers], total_sq[writers])
            with self.events_lock:
                events, self.events = self.events, []
            began = time.monotonic()
            answer = ray.get(self.server.sync.remote(self.node_id, delta, updates, totals, events))
            weights, (g_mean, g_var, g_count), global_steps, stop, applied_before, applied_after, applied = answer
            round_trip = time.monotonic() - began
            # Keep what the node's workers changed during the round trip; the global weights are the new base.
            if replace:
                np.copyto(local, weights)
            else:
                local += weights - snapshot
            self.base = np.array(weights, dtype=np.float32)
            # Node statistics = the global ones (which hold what was just sent) + what is not sent yet.
            base = node_base_statistics(g_mean, g_var, g_count, count.sum(), total.sum(axis=0),
                                        total_sq.sum(axis=0))
            if base is not None:
                node.normalizer.base_var.numpy()[:] = base[1]
                node.normalizer.base_mean.numpy()[:] = base[0]
            node.normalizer.base_count.fill_(0.0 if base is None else base[2])
            node.steps.numpy()[0] = global_steps - int(steps.sum())
            if not replace:
                marks = self.marks
                marks.add("syncs", 1)
                marks.add("round_trip_seconds", round_trip)
                marks.add("bytes_sent", delta.nbytes + sum(a.nbytes for a in totals))
                sent = updates - int(self.last_updates)
                marks.add("updates_sent", sent)
                if sent and self.last_applied is not None:
                    staleness = applied_before - self.last_applied
                    marks.add("staleness_sum", staleness)
                    marks.add("staleness_syncs", 1)
                    marks.raise_to("staleness_max", staleness)
            self.last_updates = updates
            self.last_applied = applied_after
            if stop:
                node.request_stop()
                self.stopped = True
            return updates, applied

    def flush(self) -> dict:
        """The run is over: send what is left (the workers' last updates and reports), remove the node's files,
        and return this agent's figures."""
        self.stopped = True
        self.thread.join(timeout=5)
        try:
            self._sync()
        finally:
            path = Path(self.spec["path"])
            path.unlink(missing_ok=True)
            path.with_suffix(f".{MARKS}").unlink(missing_ok=True)
        return self.get_figures()

    def get_figures(self) -> dict:
        """The agent's figures, with `node_updates`: the Adam steps the node's workers made (every one of them was
        applied by the server, or counted lost)."""
        return {**{name: self.marks.figure(name) for name in FIGURES}, "node_id": self.node_id, "pid": os.getpid(),
                "node_updates": self.node_updates()}


def node_base_statistics(g_mean: np.ndarray, g_var: np.ndarray, g_count: float, sent_count: float,
                         sent_total: np.ndarray, sent_total_sq: np.ndarray) -> tuple | None:
    """The base (mean, var, count) of a node's normaliser such that base + all its writers' sums (the part
    already sent, which the global statistics hold, and the part not yet sent) are the global statistics plus the
    unsent part: the global moments minus the sent sums. None when the global statistics hold nothing else."""
    count = g_count - sent_count
    if count <= 0:
        return None
    mean = (g_count * g_mean - sent_total) / count
    mean_sq = (g_count * (g_var + g_mean**2) - sent_total_sq) / count
    return mean, np.maximum(mean_sq - mean**2, 0.0), count


def sync_agent_for(ray, cfg: TrainConfig, server_name: str, global_spec: dict, node_id: str):
    """The sync agent of `node_id` for this run: the existing one, or a new one pinned to that node (a named
    actor: the node's workers that ask at once get the same). Ray restarts it if it dies."""
    strategy = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node_id, soft=False)
    actor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=4)(SyncAgent)
    return actor.options(name=agent_name(server_name, node_id), get_if_exists=True,
                         scheduling_strategy=strategy).remote(cfg, server_name, global_spec, node_id)
