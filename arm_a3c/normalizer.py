"""Running mean and variance of observations, shared by all workers and saved with the model, so that
training, evaluation and the viewer normalise identically."""

from __future__ import annotations

import numpy as np
import torch

EPSILON = 1e-8


class RunningNormalizer:
    """Per-dimension running statistics in shared memory; merged batch by batch (Chan et al.'s parallel
    variance formula). `update` takes a lock so that concurrent workers never interleave a merge."""

    def __init__(self, obs_dim: int, clip: float = 10.0, lock=None):
        self.mean = torch.zeros(obs_dim, dtype=torch.float64).share_memory_()
        self.var = torch.ones(obs_dim, dtype=torch.float64).share_memory_()
        self.count = torch.zeros((), dtype=torch.float64).share_memory_()
        self.clip = clip
        self.lock = lock

    def update(self, batch: np.ndarray) -> None:
        """Merge a batch of raw observations (n, obs_dim) into the shared statistics."""
        batch = np.asarray(batch, dtype=np.float64)
        if self.lock is not None:
            with self.lock:
                self._merge(batch)
        else:
            self._merge(batch)

    def _merge(self, batch: np.ndarray) -> None:
        n = batch.shape[0]
        mean, var, count = self.mean.numpy(), self.var.numpy(), float(self.count)
        batch_mean, batch_var = batch.mean(axis=0), batch.var(axis=0)
        total = count + n
        delta = batch_mean - mean
        new_mean = mean + delta * n / total
        new_var = (var * count + batch_var * n + delta**2 * count * n / total) / total
        mean[:] = new_mean  # numpy views of the shared tensors: written in place
        var[:] = new_var
        self.count.fill_(total)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, 1/std) copies as float32, fixed for a rollout or an evaluation."""
        return self.mean.numpy().astype(np.float32), (1.0 / np.sqrt(self.var.numpy() + EPSILON)).astype(np.float32)

    def normalize(self, obs: np.ndarray, snapshot: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        mean, inv_std = snapshot
        return np.clip((obs - mean) * inv_std, -self.clip, self.clip)

    def state_dict(self) -> dict:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count.clone(), "clip": self.clip}

    def load_state_dict(self, state: dict) -> None:
        self.mean.copy_(state["mean"])
        self.var.copy_(state["var"])
        self.count.copy_(state["count"])
        self.clip = float(state["clip"])
