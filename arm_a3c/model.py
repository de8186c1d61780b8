"""The Actor-Critic: a Gaussian policy whose mean lies in [-1, 1] and whose log standard deviation is a
learned, clamped parameter, beside a separate value network (no shared trunk, so the value loss's scale cannot
disturb the policy's features)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


LOG_2PI = math.log(2 * math.pi)


def layer(n_in: int, n_out: int, gain: float = math.sqrt(2)) -> nn.Linear:
    """A linear layer with orthogonal weights and zero bias (the initialisation of PPO/A2C baselines)."""
    linear = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(linear.weight, gain)
    nn.init.zeros_(linear.bias)
    return linear


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, hidden_size: int = 64, log_std_init: float = -0.5,
                 log_std_min: float = -3.0, log_std_max: float = 0.0):
        super().__init__()
        self.actor = nn.Sequential(
            layer(obs_dim, hidden_size), nn.Tanh(), layer(hidden_size, hidden_size), nn.Tanh(),
            layer(hidden_size, action_dim, gain=0.01),  # small: the first actions are near zero
        )
        self.critic = nn.Sequential(
            layer(obs_dim, hidden_size), nn.Tanh(), layer(hidden_size, hidden_size), nn.Tanh(),
            layer(hidden_size, 1, gain=1.0),
        )
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    @classmethod
    def from_config(cls, cfg, obs_dim: int, action_dim: int) -> "ActorCritic":
        """The Actor-Critic that a `TrainConfig` describes, for these observation and action sizes."""
        return cls(obs_dim, action_dim, cfg.hidden_size, cfg.log_std_init, cfg.log_std_min, cfg.log_std_max)

    def action_mean(self, obs: torch.Tensor) -> torch.Tensor:
        """Mean action in [-1, 1]: (batch, action_dim)."""
        return torch.tanh(self.actor(obs))

    def action_std(self) -> torch.Tensor:
        """Standard deviation per action dimension, from the clamped log-std: (action_dim,)."""
        return self.log_std.clamp(self.log_std_min, self.log_std_max).exp()

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        """State value: (batch,)."""
        return self.critic(obs).squeeze(-1)

    def get_action_and_value(self, obs: torch.Tensor, action: torch.Tensor | None = None):
        """(action, log-probability, entropy, value) for a batch of observations; samples the action when
        none is given. Log-probability and entropy are summed over action dimensions: (batch,).
        The diagonal-Gaussian formulas are written out: torch.distributions.Normal validates its arguments on
        every call, which costs more than the arithmetic at this size."""
        mean, log_std = self.action_mean(obs), self.log_std.clamp(self.log_std_min, self.log_std_max)
        std = log_std.exp()
        if action is None:
            action = torch.normal(mean, std.expand_as(mean))
        logprob = (-0.5 * ((action - mean) / std).pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)
        entropy = (log_std + 0.5 * (1.0 + LOG_2PI)).sum().expand(mean.shape[0])
        return action, logprob, entropy, self.get_value(obs)

    def param_list(self) -> list[nn.Parameter]:
        """The parameters as a list, built once: `parameters()` walks the module tree on every call, which
        shows in a worker's profile at one update per n steps."""
        if not hasattr(self, "_param_list"):
            self._param_list = list(self.parameters())
        return self._param_list

    def copy_from(self, other: "ActorCritic") -> None:
        """Copy another model's parameters in place (the worker's pull of the global weights; a third of
        load_state_dict's cost)."""
        with torch.no_grad():
            torch._foreach_copy_(self.param_list(), other.param_list())


class NumpyActor:
    """The actor's mean action computed with numpy on views of a model's weights, for acting on one
    observation at a time: the same arithmetic as `ActorCritic.action_mean`, about ten times faster than a
    torch call at this size. The views follow the model's parameters when they are updated in place."""

    def __init__(self, model: ActorCritic):
        linears = [m for m in model.actor if isinstance(m, nn.Linear)]
        self.layers = [(lin.weight.detach().numpy(), lin.bias.detach().numpy()) for lin in linears]

    def mean(self, obs: np.ndarray) -> np.ndarray:
        """Mean action (action_dim,) in [-1, 1] for one normalised observation (obs_dim,) float32."""
        h = obs
        for weight, bias in self.layers:
            h = np.tanh(weight @ h + bias)  # the last tanh is the mean's squashing into [-1, 1]
        return h
