"""`--backend local` (the default): one worker process per core on this machine, the global Actor-Critic, its
Adam and the normaliser in torch's shared memory (`a3c.shared.build_shared`), every push and pull a memory
access (`a3c.shared.SharedMemoryLink`). The workers and the evaluator are `processes.Children`."""

from __future__ import annotations

from pathlib import Path

from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.interfaces import EvaluatorArgs
from arm_a3c.a3c.shared import Shared, build_shared
from arm_a3c.backends.processes import Children
from arm_a3c.errors import UserError


class LocalBackend:
    name = "local"

    def check(self, cfg: TrainConfig) -> None:
        if cfg.ray_address:
            raise UserError("--ray-address needs --backend ray")

    def start(self, cfg: TrainConfig) -> None:
        """Nothing to prepare: the processes start with the run."""

    def build_shared(self, cfg: TrainConfig, obs_dim: int, action_dim: int, ctx, run_dir: Path) -> Shared:
        return build_shared(cfg, obs_dim, action_dim, ctx, run_dir)

    def workers(self, ctx, cfg: TrainConfig, shared: Shared, run_dir: Path, resumed_steps: int,
                evaluator_args: EvaluatorArgs) -> Children:
        return Children(ctx, cfg, shared, run_dir, resumed_steps, evaluator_args)

    def release(self, shared: Shared) -> None:
        """Nothing to free: torch's shared memory goes with the processes."""
