"""Adam whose whole state lives in shared memory, so that every worker process steps one optimizer.

Mnih et al. (2016) found optimizer statistics shared across threads the most robust choice. Here the first and
second moments and the step count are shared tensors beside the shared flat parameter vector
(`ActorCritic.flat`), and each worker applies its gradient vector to them in place, lock-free (Hogwild) unless
the launcher passes a lock. The arithmetic is torch.optim.Adam's (a test holds it to torch's updates); it runs
in numpy on the whole vector at once, which costs about a twentieth of torch's per-parameter Adam at this size.
"""

from __future__ import annotations

import numpy as np
import torch


class SharedAdam:
    def __init__(self, params: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-5,
                 memory: dict | None = None):
        """`memory`: tensors already in shared memory for "exp_avg", "exp_avg_sq" (like params) and "steps"
        (float64, shape ()), as they are; by default new zeroed shared tensors. There is no learning rate here:
        each step is given the scheduled rate of its moment (`TrainConfig.lr_at`)."""
        self.params = params  # the flat parameter vector, updated in place
        self.betas, self.eps = tuple(betas), eps
        memory = memory or {"exp_avg": torch.zeros_like(params).share_memory_(),
                            "exp_avg_sq": torch.zeros_like(params).share_memory_(),
                            "steps": torch.zeros((), dtype=torch.float64).share_memory_()}
        self.exp_avg, self.exp_avg_sq = memory["exp_avg"], memory["exp_avg_sq"]
        self.steps = memory["steps"]  # steps taken by all workers

    def step(self, grad: np.ndarray, lr: float) -> None:
        """One Adam step with learning rate `lr` of the shared parameters along `grad` (a flat float32 vector
        laid out like them). In place, through one scratch vector of this process: no temporary arrays."""
        beta1, beta2 = self.betas
        views = self.__dict__.get("_numpy")  # numpy views of the shared tensors and a scratch vector, made once per
        if views is None:                    # process (calls into torch are slow between physics steps)
            views = self._numpy = (self.params.numpy(), self.exp_avg.numpy(), self.exp_avg_sq.numpy(),
                                   self.steps.numpy(), np.empty(self.params.shape, np.float32))
        params, exp_avg, exp_avg_sq, steps, scratch = views
        steps += 1  # in place in shared memory; concurrent workers may rarely lose an increment (Hogwild)
        t = float(steps)
        np.subtract(grad, exp_avg, out=scratch)  # exp_avg += (1 - beta1) * (grad - exp_avg): torch's lerp
        scratch *= 1.0 - beta1
        exp_avg += scratch
        exp_avg_sq *= beta2
        np.multiply(grad, grad, out=scratch)
        scratch *= 1.0 - beta2
        exp_avg_sq += scratch
        np.sqrt(exp_avg_sq, out=scratch)  # the denominator: sqrt(v) / sqrt(1 - beta2^t) + eps
        scratch /= np.sqrt(1.0 - beta2**t)
        scratch += self.eps
        np.divide(exp_avg, scratch, out=scratch)
        scratch *= lr / (1.0 - beta1**t)
        params -= scratch

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_numpy"}  # each process makes its own

    def step_count(self) -> int:
        """Optimizer steps taken so far, by all processes together."""
        return int(self.steps)

    def state_dict(self) -> dict:
        return {"step": self.steps.clone(), "exp_avg": self.exp_avg.clone(), "exp_avg_sq": self.exp_avg_sq.clone(),
                "betas": list(self.betas), "eps": self.eps}

    def load_state_dict(self, state: dict) -> None:
        """Copy saved state into the shared tensors (in place: they stay shared). Older checkpoints also hold an
        "lr", which no step used: it is ignored."""
        if not {"step", "exp_avg", "exp_avg_sq"} <= set(state) or state["exp_avg"].shape != self.exp_avg.shape:
            raise ValueError("the optimizer state has another layout (written by an older arm-a3c, or for "
                             "another network size)")
        self.steps.copy_(state["step"])
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
