"""The Ray backend's parameter server: one actor on the launcher's machine that serves the global model in its mapped
memory (`backends.mapped`) to workers elsewhere. A worker's `exchange` applies its gradient, counts its steps and
observations, and answers with the newest weights: A3C's push and pull in one round trip. Each version of the
weights is `ray.put` once, when a worker first asks for it. It also passes the workers' reports to the launcher,
and takes the sync agents' deltas (`ray_sync.py`)."""

from __future__ import annotations

import time

import numpy as np
import torch

from arm_a3c.backends.mapped import attach_shared


class ParameterServer:
    """The global model's server for workers that cannot map its memory; one call at a time (a plain actor)."""

    def __init__(self, shared_spec: dict):
        torch.set_num_threads(1)
        self.shared = attach_shared(shared_spec, launcher_pid=None)
        self.weights = self.shared.model.flat.numpy()
        self.put_version, self.put_ref = -1, None
        self.events: list = []  # workers' reports, until the launcher drains them
        self.busy_seconds, self.exchanges = 0.0, 0
        self.sync_seconds, self.syncs, self.delta_updates = 0.0, 0, 0  # the sync agents' exchanges
        self.node_totals: dict[str, dict] = {}  # node id -> the running totals of its syncs applied so far

    def exchange(self, rank: int, grad: np.ndarray | None, lr: float, raw_obs: np.ndarray | None, steps: int,
                 events: list, have_version: int):
        """A worker's push and pull: apply its gradient, count its `steps` and observations, keep its reports;
        return (version, [weights ref] or None if it has this version already, normaliser snapshot, global
        steps, stop). The version is the optimizer's step count. The ref is nested in a list so that Ray hands
        it over instead of fetching it here."""
        import ray

        began = time.perf_counter()
        shared = self.shared
        shared.add_steps(rank, steps)
        if grad is not None:
            shared.optimizer.step(grad, lr)
        if raw_obs is not None:
            shared.normalizer.update(raw_obs, writer=rank)
        self.events.extend(events)
        version, weights = shared.optimizer.step_count(), None
        if have_version != version:
            if self.put_version != version:  # one object per version, whichever worker asks first
                self.put_ref, self.put_version = ray.put(self.weights), version
            weights = [self.put_ref]
        answer = (version, weights, shared.normalizer.snapshot(), shared.global_steps(), not shared.running())
        self.busy_seconds += time.perf_counter() - began
        self.exchanges += 1
        return answer

    def sync(self, node_id: str, delta: np.ndarray | None, updates: int, totals: tuple, events: list):
        """A sync agent's exchange (`ray_sync.SyncAgent`): add its node's parameter `delta` to the global weights,
        and its node's running totals: `updates` (Adam steps of the node's workers so far), and (ranks, their
        environment steps, writers, their observation counts, sums and sums of squares); of each total, the part
        this server has not applied yet is applied (a sync repeated by a restarted agent counts once). A sync
        without a delta sets the node's update count without applying it (a new or restarted agent: updates not
        applied by now are dropped). Keep the reports. Answer with the global weights, the normaliser's (mean,
        var, count), the global steps, the stop flag, the global update count before and after this delta (the
        global Adam's steps plus every node's applied updates), and the node's updates applied so far."""
        began = time.perf_counter()
        shared, workers, obs_dim = self.shared, self.shared.steps.numel() - 1, self.shared.normalizer.total.shape[1]
        node = self.node_totals.get(node_id)
        if node is None:
            node = self.node_totals[node_id] = {
                "updates": 0, "steps": np.zeros(workers, np.int64), "count": np.zeros(workers),
                "total": np.zeros((workers, obs_dim)), "total_sq": np.zeros((workers, obs_dim))}
        applied_before = shared.optimizer.step_count() + self.delta_updates
        applied = node["updates"]
        if delta is not None:
            self.weights += delta
            self.delta_updates += updates - node["updates"]
            applied = updates
        node["updates"] = updates
        ranks, steps, writers, count, total, total_sq = totals
        if len(ranks):
            shared.steps.numpy()[ranks + 1] += steps - node["steps"][ranks]  # only these slots: the launcher's
            node["steps"][ranks] = steps  # machine's workers write theirs
        if len(writers):
            normalizer = shared.normalizer
            normalizer.count.numpy()[writers] += count - node["count"][writers]
            normalizer.total.numpy()[writers] += total - node["total"][writers]
            normalizer.total_sq.numpy()[writers] += total_sq - node["total_sq"][writers]
            node["count"][writers], node["total"][writers], node["total_sq"][writers] = count, total, total_sq
        self.events.extend(events)
        answer = (self.weights.copy(), shared.normalizer.moments(), shared.global_steps(), not shared.running(),
                  applied_before, shared.optimizer.step_count() + self.delta_updates, applied)
        self.sync_seconds += time.perf_counter() - began
        self.syncs += 1
        return answer

    def optimizer_state(self) -> dict:
        """The global Adam's moments and step count (a new node's Adam starts from them)."""
        optimizer = self.shared.optimizer
        return {"exp_avg": optimizer.exp_avg.numpy().copy(), "exp_avg_sq": optimizer.exp_avg_sq.numpy().copy(),
                "steps": optimizer.step_count()}

    def report(self, event: tuple) -> None:
        """A report of a worker that trains in the mapped memory."""
        self.events.append(event)

    def drain(self) -> list:
        """The workers' reports since the last drain."""
        events, self.events = self.events, []
        return events

    def load_figures(self) -> dict:
        """How busy the server has been: exchanges applied, the seconds spent inside them, and the CPU seconds
        of its whole process (Ray's handling of the calls included)."""
        return {"exchanges": self.exchanges, "busy_seconds": self.busy_seconds, "syncs": self.syncs,
                "sync_busy_seconds": self.sync_seconds, "delta_updates": self.delta_updates,
                "updates_per_node": {node: totals["updates"] for node, totals in self.node_totals.items()},
                "cpu_seconds": time.process_time()}
