"""The Actor-Critic: a Gaussian policy whose mean lies in [-1, 1] and whose log standard deviation is a
learned, clamped parameter, beside a separate value network (no shared trunk, so the value loss's scale cannot
disturb the policy's features)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Normal


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
        none is given. Log-probability and entropy are summed over action dimensions: (batch,)."""
        dist = Normal(self.action_mean(obs), self.action_std())
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action).sum(-1), dist.entropy().sum(-1), self.get_value(obs)
