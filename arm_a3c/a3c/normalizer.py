"""Running mean and variance of observations, shared by all workers and saved with the model, so that
training, evaluation and the viewer normalise identically."""

from __future__ import annotations

import numpy as np
import torch

EPSILON = 1e-8


class RunningNormalizer:
    """Per-dimension statistics of every observation seen, in shared memory.

    Each writer (worker k is writer k) adds its batches to its own count, sum and sum of squares, so no lock
    is needed: a lock held by a worker that is killed would stall every other worker. Readers combine the
    writers' sums with the base statistics (what a loaded checkpoint held). A reader may catch a writer's slot
    half-updated; that skews one rollout's statistics by a fraction of one batch, and the next snapshot is
    exact again. With no writer data, the base statistics come back bit for bit, so a checkpoint's
    evaluation is reproducible.
    """

    def __init__(self, obs_dim: int, clip: float = 10.0, writers: int = 1, memory: dict | None = None):
        """`memory`: float64 tensors already in shared memory, shaped as `memory_layout` says, used as they are;
        by default new shared tensors with no data."""
        if memory is None:
            memory = {name: torch.zeros(shape, dtype=torch.float64).share_memory_()
                      for name, shape in self.memory_layout(obs_dim, writers).items()}
            memory["base_var"].fill_(1.0)
        self.base_mean, self.base_var, self.base_count = memory["base_mean"], memory["base_var"], memory["base_count"]
        self.count, self.total, self.total_sq = memory["count"], memory["total"], memory["total_sq"]
        self.clip = clip

    @staticmethod
    def memory_layout(obs_dim: int, writers: int) -> dict[str, tuple[int, ...]]:
        """The shapes of the statistics' tensors (all float64)."""
        return {"base_mean": (obs_dim,), "base_var": (obs_dim,), "base_count": (), "count": (writers,),
                "total": (writers, obs_dim), "total_sq": (writers, obs_dim)}

    def _views(self) -> dict[str, np.ndarray]:
        """numpy views of the shared tensors, made once per process: between a worker's physics steps, every call
        into torch (even `.numpy()`) cost several microseconds of cold caches."""
        views = self.__dict__.get("_numpy")
        if views is None:
            views = self._numpy = {name: getattr(self, name).numpy() for name in
                                   ("base_mean", "base_var", "base_count", "count", "total", "total_sq")}
        return views

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_numpy"}  # each process makes its own views

    def update(self, batch: np.ndarray, writer: int = 0) -> None:
        """Add a batch of raw observations (n, obs_dim) to the statistics, in the writer's own slot."""
        batch = np.asarray(batch, dtype=np.float64)
        v = self._views()  # numpy views of the shared tensors: written in place
        v["total"][writer] += batch.sum(axis=0)
        v["total_sq"][writer] += np.square(batch).sum(axis=0)
        v["count"][writer] += batch.shape[0]

    def moments(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(mean, variance, count) of all observations; mean 0 and variance 1 before any."""
        v = self._views()
        base_mean, base_var, base_count = v["base_mean"], v["base_var"], float(v["base_count"])
        added = float(v["count"].sum())
        if added == 0:
            return base_mean.copy(), base_var.copy(), base_count
        count = base_count + added
        mean = (base_count * base_mean + v["total"].sum(axis=0)) / count
        mean_sq = (base_count * (base_var + base_mean**2) + v["total_sq"].sum(axis=0)) / count
        return mean, np.maximum(mean_sq - mean**2, 0.0), count

    @property
    def mean(self) -> np.ndarray:
        return self.moments()[0]

    @property
    def var(self) -> np.ndarray:
        return self.moments()[1]

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, 1/std) as float32, fixed for a rollout or an evaluation."""
        mean, var, _ = self.moments()
        return mean.astype(np.float32), (1.0 / np.sqrt(var + EPSILON)).astype(np.float32)

    def normalize(self, obs: np.ndarray, snapshot: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return normalize(obs, snapshot, self.clip)

    def state_dict(self) -> dict:
        mean, var, count = self.moments()
        return {"mean": torch.from_numpy(mean), "var": torch.from_numpy(var),
                "count": torch.tensor(count, dtype=torch.float64), "clip": self.clip}

    def load_state_dict(self, state: dict) -> None:
        """Make saved statistics the base and forget the writers' data."""
        self.base_mean.copy_(state["mean"])
        self.base_var.copy_(state["var"])
        self.base_count.fill_(float(state["count"]))
        self.count.zero_()
        self.total.zero_()
        self.total_sq.zero_()
        self.clip = float(state["clip"])


def normalize(obs: np.ndarray, snapshot: tuple[np.ndarray, np.ndarray], clip: float,
              out: np.ndarray | None = None) -> np.ndarray:
    """Observations (..., obs_dim) standardised with a `snapshot` (mean, 1/std) and clipped to [-clip, clip];
    written into `out` when given (a worker's rollout buffer)."""
    mean, inv_std = snapshot
    normalized = np.subtract(obs, mean, out=out)
    normalized *= inv_std
    np.maximum(normalized, -clip, out=normalized)  # np.clip's wrapper costs more than these two here
    return np.minimum(normalized, clip, out=normalized)
