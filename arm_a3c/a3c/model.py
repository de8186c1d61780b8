"""The Actor-Critic: a Gaussian policy whose mean lies in [-1, 1] and whose log standard deviation is a
learned parameter bounded to [log_std_min, log_std_max], beside a separate value network (no shared trunk, so the value loss's scale cannot
disturb the policy's features).

The bound: with `log_std_bound="tanh"` (the default) the parameter `log_std` holds an unbounded
value x and the log-std is min + (max - min) * (tanh(x) + 1) / 2 (the squashing of CleanRL's SAC): its gradient is
never zero, so a log-std pushed against a bound comes back when the gradient turns. With "clamp" (runs saved
before the setting existed) it is clamp(x, min, max), whose gradient is zero outside the bounds: once Adam's momentum carried x past a
bound it stayed there for good.

`ActorCritic` is the torch module: the definition, what checkpoints hold, and the autograd reference that the
tests hold the fast path to. Its parameters are slices of one flat float32 vector (`flat`), so that sharing,
pulling and optimizing touch one array. `NumpyActorCritic` is the worker's fast path over that vector: the same
forward pass and the A3C loss's gradients written out in numpy. At this size (two 64-unit layers, 20
observations per update) torch spends its time dispatching small operations, which numpy's few large ones do not
(the timings are in the docs' journal).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

LOG_2PI = math.log(2 * math.pi)
LOG_STD_BOUNDS = ("tanh", "clamp")
SQUASH_LIMIT = 0.999  # an initial log-std on or beyond a bound starts this far along tanh's range


def raw_log_std(log_std: float, low: float, high: float, bound: str) -> float:
    """The parameter value that gives this log-std under the bound (the inverse of the squashing)."""
    if bound == "clamp" or high <= low:
        return float(log_std)
    fraction = 2.0 * (log_std - low) / (high - low) - 1.0
    return math.atanh(min(max(fraction, -SQUASH_LIMIT), SQUASH_LIMIT))


def layer(n_in: int, n_out: int, gain: float = math.sqrt(2)) -> nn.Linear:
    """A linear layer with orthogonal weights and zero bias (the initialisation of PPO/A2C baselines)."""
    linear = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(linear.weight, gain)
    nn.init.zeros_(linear.bias)
    return linear


class Actor(nn.Sequential):
    """The policy's mean before its squashing: two tanh layers, plus (with `linear`) a linear map of the observation
    itself, which starts at zero (`linear` (action_dim, obs_dim), no bias: the last layer's serves both).

    The linear part is there because the observation holds the directions that close the goal's errors (the
    Jacobian-transpose parts): a fixed linear map of them is already a fair controller (on pose, the KUKA met 78% of
    60 goals with a = clip(20 J_p^T e + 2 J_w^T e_w)), and a policy learns a linear map in a few updates, where the
    tanh layers must first shape their features. Runs saved before it existed have none (`linear_policy`)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_size: int, linear: bool):
        super().__init__(layer(obs_dim, hidden_size), nn.Tanh(), layer(hidden_size, hidden_size), nn.Tanh(),
                         layer(hidden_size, action_dim, gain=0.01))  # small: the first actions are near zero
        self.linear = nn.Parameter(torch.zeros(action_dim, obs_dim)) if linear else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = super().forward(obs)
        return out if self.linear is None else out + obs @ self.linear.T


def squashed_mean(actor: nn.Sequential, obs: torch.Tensor) -> torch.Tensor:
    """The actor's output squashed into the action range [-1, 1]: the policy's mean action (also what an
    exported policy computes from the actor alone)."""
    return torch.tanh(actor(obs))


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, hidden_size: int = 64, log_std_init: float = -0.5,
                 log_std_min: float = -3.0, log_std_max: float = 0.0, log_std_bound: str = "tanh",
                 linear_policy: bool = False):
        super().__init__()
        if log_std_bound not in LOG_STD_BOUNDS:
            raise ValueError(f"log_std_bound must be one of {LOG_STD_BOUNDS}, not {log_std_bound!r}")
        self.actor = Actor(obs_dim, action_dim, hidden_size, linear_policy)
        self.critic = nn.Sequential(
            layer(obs_dim, hidden_size), nn.Tanh(), layer(hidden_size, hidden_size), nn.Tanh(),
            layer(hidden_size, 1, gain=1.0),
        )
        raw = raw_log_std(log_std_init, log_std_min, log_std_max, log_std_bound)
        self.log_std = nn.Parameter(torch.full((action_dim,), raw))
        self.log_std_min, self.log_std_max, self.log_std_bound = log_std_min, log_std_max, log_std_bound
        self.flat = self._flatten()

    def _flatten(self, into: torch.Tensor | None = None, keep: bool = False) -> torch.Tensor:
        """Re-point every parameter at consecutive slices of one flat vector, and return it: a new one, or `into`
        (memory another process shares; with `keep` its values stay, else the current parameters go into it)."""
        params = self.param_list()
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        if into is not None:
            if not keep:
                into.copy_(flat)
            flat = into
        offset = 0
        for p in params:
            p.data = flat[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
        return flat

    @classmethod
    def from_config(cls, cfg, obs_dim: int, action_dim: int) -> "ActorCritic":
        """The Actor-Critic that a `TrainConfig` describes, for these observation and action sizes."""
        return cls(obs_dim, action_dim, cfg.hidden_size, cfg.log_std_init, cfg.log_std_min, cfg.log_std_max,
                   cfg.log_std_bound, cfg.linear_policy)

    def use_memory(self, flat: torch.Tensor, keep: bool) -> "ActorCritic":
        """Keep the parameters in `flat` (a float32 vector of `flat.numel()` values in shared memory): with `keep`,
        the values already there, else this model's."""
        self.flat = self._flatten(flat, keep)
        return self

    def share_memory(self) -> "ActorCritic":
        self.flat.share_memory_()  # the parameters are views of it: they are shared with it
        return self

    def action_mean(self, obs: torch.Tensor) -> torch.Tensor:
        """Mean action in [-1, 1]: (batch, action_dim)."""
        return squashed_mean(self.actor, obs)

    def bounded_log_std(self) -> torch.Tensor:
        """The log standard deviation per action dimension, within its bounds: (action_dim,)."""
        low, high = self.log_std_min, self.log_std_max
        if self.log_std_bound == "clamp":
            return self.log_std.clamp(low, high)
        return low + 0.5 * (high - low) * (torch.tanh(self.log_std) + 1.0)

    def action_std(self) -> torch.Tensor:
        """Standard deviation per action dimension: (action_dim,)."""
        return self.bounded_log_std().exp()

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        """State value: (batch,)."""
        return self.critic(obs).squeeze(-1)

    def get_action_and_value(self, obs: torch.Tensor, action: torch.Tensor | None = None):
        """(action, log-probability, entropy, value) for a batch of observations; samples the action when
        none is given. Log-probability and entropy are summed over action dimensions: (batch,)."""
        mean, log_std = self.action_mean(obs), self.bounded_log_std()
        std = log_std.exp()
        if action is None:
            action = torch.normal(mean, std.expand_as(mean))
        logprob = (-0.5 * ((action - mean) / std).pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)
        entropy = (log_std + 0.5 * (1.0 + LOG_2PI)).sum().expand(mean.shape[0])
        return action, logprob, entropy, self.get_value(obs)

    def param_list(self) -> list[nn.Parameter]:
        """The parameters as a list, in the order of `flat` (that of named_parameters)."""
        if not hasattr(self, "_param_list"):
            self._param_list = list(self.parameters())
        return self._param_list


class NumpyActorCritic:
    """An `ActorCritic` as numpy views of a flat float32 vector (the model's own `flat`, or a private copy
    with `own_copy=True`), with its forward pass and the gradients of the A3C loss written out.

    The gradients are those autograd computes for `ActorCritic` (a test compares them); they are written into
    `grad`, a flat vector laid out like the parameters."""

    def __init__(self, model: ActorCritic, own_copy: bool = False):
        self.flat = model.flat.detach().numpy().copy() if own_copy else model.flat.detach().numpy()
        self.grad = np.zeros_like(self.flat)
        self.log_std_min, self.log_std_max, self.log_std_bound = model.log_std_min, model.log_std_max, model.log_std_bound
        views, grads, offset = {}, {}, 0
        for name, p in model.named_parameters():  # the order of param_list, hence of flat
            n = p.numel()
            views[name] = self.flat[offset:offset + n].reshape(p.shape)
            grads[name] = self.grad[offset:offset + n].reshape(p.shape)
            offset += n
        layers = [f"{net}.{i}" for net in ("actor", "critic") for i in (0, 2, 4)]
        self.actor = [(views[f"{k}.weight"], views[f"{k}.bias"]) for k in layers[:3]]
        self.critic = [(views[f"{k}.weight"], views[f"{k}.bias"]) for k in layers[3:]]
        self.actor_grad = [(grads[f"{k}.weight"], grads[f"{k}.bias"]) for k in layers[:3]]
        self.critic_grad = [(grads[f"{k}.weight"], grads[f"{k}.bias"]) for k in layers[3:]]
        self.log_std, self.log_std_grad = views["log_std"], grads["log_std"]
        self.linear, self.linear_grad = views.get("actor.linear"), grads.get("actor.linear")  # (action, obs) or None
        self._linear_out = None if self.linear is None else np.zeros(self.linear.shape[0], self.flat.dtype)
        self._ones_cache: dict[tuple[int, float], np.ndarray] = {}  # `_ones`' vectors, by (length, value)

    def mean(self, obs: np.ndarray) -> np.ndarray:
        """Mean action in [-1, 1] for normalised observations: (obs_dim,) -> (action_dim,), or batches."""
        (w1, b1), (w2, b2), (w3, b3) = self.actor
        out = np.tanh(np.tanh(obs @ w1.T + b1) @ w2.T + b2) @ w3.T + b3
        if self.linear is not None:
            out += obs @ self.linear.T
        return np.tanh(out)  # the mean's squashing into [-1, 1]

    def mean_into(self, obs: np.ndarray, h1: np.ndarray, h2: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """`mean` for one normalised observation (obs_dim,), written into the caller's buffers: the two hidden
        layers' activations (hidden,) stay in `h1` and `h2` for the update (`loss_gradients`), and `mean`
        (action_dim,) is returned. No allocation: a worker calls this every step."""
        (w1, b1), (w2, b2), (w3, b3) = self.actor
        np.matmul(w1, obs, out=h1)
        h1 += b1
        np.tanh(h1, out=h1)
        np.matmul(w2, h1, out=h2)
        h2 += b2
        np.tanh(h2, out=h2)
        np.matmul(w3, h2, out=mean)
        mean += b3
        if self.linear is not None:
            mean += np.matmul(self.linear, obs, out=self._linear_out)
        return np.tanh(mean, out=mean)  # the mean's squashing into [-1, 1]

    @property
    def hidden_size(self) -> int:
        return self.actor[0][0].shape[0]

    def bounded_log_std(self) -> np.ndarray:
        low, high = self.log_std_min, self.log_std_max
        if self.log_std_bound == "clamp":
            return np.clip(self.log_std, low, high)
        return low + 0.5 * (high - low) * (np.tanh(self.log_std) + 1.0)

    def log_std_slope(self) -> np.ndarray:
        """d bounded log-std / d parameter: the clamp's 0 or 1, or the squashing's (max - min) / 2 * (1 - tanh^2)."""
        low, high = self.log_std_min, self.log_std_max
        if self.log_std_bound == "clamp":
            return ((self.log_std >= low) & (self.log_std <= high)).astype(self.log_std.dtype)
        return 0.5 * (high - low) * (1.0 - np.tanh(self.log_std) ** 2)

    def std(self) -> np.ndarray:
        return np.exp(self.bounded_log_std())

    def value(self, obs: np.ndarray) -> np.ndarray:
        """State values (batch,) of normalised observations (batch, obs_dim)."""
        return self._critic_forward(obs)[-1][:, 0]

    def _critic_forward(self, obs: np.ndarray) -> list[np.ndarray]:
        (w1, b1), (w2, b2), (w3, b3) = self.critic
        h1 = np.tanh(obs @ w1.T + b1)
        h2 = np.tanh(h1 @ w2.T + b2)
        return [obs, h1, h2, h2 @ w3.T + b3]

    def loss_gradients(self, obs: np.ndarray, actions: np.ndarray, advantages: np.ndarray, returns: np.ndarray,
                       value_coef: float, entropy_coef: float, actor_forward: tuple | None = None,
                       critic_forward: list | None = None) -> dict:
        """Write into `grad` the gradient of
            loss = -mean(logprob * advantages) + value_coef * 0.5 * mean((returns - value)^2)
                   - entropy_coef * mean(entropy)
        for a rollout (obs: (T, obs_dim) normalised, actions (T, action_dim), advantages and returns (T,)),
        and return the loss and its parts. `actor_forward` = (h1, h2, mean) and `critic_forward` (as
        `_critic_forward` returns it) are these observations' activations when the caller has them already (the
        worker's rollout keeps the actor's from acting); by default they are computed here."""
        batch = obs.shape[0]
        # actor forward
        if actor_forward is None:
            (w1, b1), (w2, b2), (w3, b3) = self.actor
            h1 = np.tanh(obs @ w1.T + b1)
            h2 = np.tanh(h1 @ w2.T + b2)
            out = h2 @ w3.T + b3
            if self.linear is not None:
                out += obs @ self.linear.T
            mean = np.tanh(out)
        else:
            h1, h2, mean = actor_forward
        # Sums over the batch are products with a row of ones, and means of products are dot products: numpy's
        # reductions (np.sum with an axis, np.mean) cost several times a small matmul's dispatch at T = 20.
        ones = self._ones(batch)
        log_std = self.bounded_log_std()
        inv_var = np.exp(-2.0 * log_std)
        diff = actions - mean
        z2 = diff * diff * inv_var  # squared standardised deviations, used twice
        logprob = z2 @ self._ones(z2.shape[1], -0.5) - float(log_std.sum() + 0.5 * LOG_2PI * log_std.size)
        entropy = float(log_std.sum()) + 0.5 * (1.0 + LOG_2PI) * log_std.size
        # critic forward
        c_obs, c1, c2, c_out = critic_forward if critic_forward is not None else self._critic_forward(obs)
        value_error = c_out[:, 0] - returns
        policy_loss = -float(np.dot(logprob, advantages)) / batch
        value_loss = 0.5 * float(np.dot(value_error, value_error)) / batch
        loss = policy_loss + value_coef * value_loss - entropy_coef * entropy

        # actor backward: d loss / d logprob_i = -advantages_i / T
        d_logprob = (advantages * (-1.0 / batch))[:, None]
        d_mean = d_logprob * diff * inv_var
        d_log_std = ones @ (d_logprob * (z2 - 1.0)) - entropy_coef
        self.log_std_grad[:] = d_log_std * self.log_std_slope()
        d3 = d_mean * (1.0 - mean * mean)
        if self.linear is not None:
            np.matmul(d3.T, obs, out=self.linear_grad)
        self._linear_backward(self.actor, self.actor_grad, [obs, h1, h2], d3, ones)
        # critic backward: d loss / d value_i = value_coef * (value_i - returns_i) / T
        d_out = (value_error * (value_coef / batch))[:, None]
        self._linear_backward(self.critic, self.critic_grad, [c_obs, c1, c2], d_out, ones)
        return {"loss": loss, "policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}

    def _ones(self, n: int, value: float = 1.0) -> np.ndarray:
        """A vector of n times `value` (float32), made once per size."""
        vector = self._ones_cache.get((n, value))
        if vector is None:
            vector = self._ones_cache[(n, value)] = np.full(n, value, np.float32)
        return vector

    @staticmethod
    def _linear_backward(layers, grads, inputs, d_out: np.ndarray, ones: np.ndarray) -> None:
        """Back through three tanh-separated linear layers; `inputs` are each layer's input (the tanh
        outputs of the layer before), `d_out` the gradient at the last layer's pre-activation output, `ones` a
        vector of ones as long as the batch."""
        for k in (2, 1, 0):
            weight, _ = layers[k]
            grad_w, grad_b = grads[k]
            np.matmul(d_out.T, inputs[k], out=grad_w)
            np.matmul(ones, d_out, out=grad_b)
            if k:
                h = inputs[k]
                d_out = d_out @ weight
                d_out *= 1.0 - h * h
