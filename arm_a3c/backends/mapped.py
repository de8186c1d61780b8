"""The Ray backend's shared objects: the global model, its optimizer's state, the normaliser, the step counters and
the stop flag in one memory-mapped file, which every process on the machine can map by its path (the launcher,
the evaluator, the parameter server and the worker actors on the launcher's machine, and each machine's sync
agent for its node copy). Ray cannot hand over torch's shared memory; a file it can name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.model import ActorCritic
from arm_a3c.a3c.normalizer import RunningNormalizer
from arm_a3c.a3c.optim import SharedAdam
from arm_a3c.a3c.shared import Shared


def build_mapped_shared(cfg: TrainConfig, obs_dim: int, action_dim: int, path: Path,
                        run_dir: Path | None = None) -> "MappedShared":
    """`a3c.shared.build_shared`'s objects in the new file `path`."""
    model = ActorCritic.from_config(cfg, obs_dim, action_dim)
    return _mapped_shared({"path": str(path), "cfg": cfg.to_dict(), "obs_dim": obs_dim, "action_dim": action_dim,
                           "run_dir": run_dir}, model, create=True)


class MappedShared(Shared):
    """The shared objects in one memory-mapped file, which every process on the machine can map by its path:
    the Ray backend's launcher, evaluator, parameter server and the worker actors on the launcher's machine
    (Ray cannot hand over torch's shared memory). Pickled, it is the path and the layout, and unpickling maps
    the same memory again. No update lock: Ray actors cannot share one."""

    spec: dict  # what `attach_shared` needs: path, cfg, obs_dim, action_dim, run_dir

    def __reduce__(self):
        return attach_shared, ({**self.spec, "run_dir": self.run_dir, "clock_origin": self.clock_origin,
                                "launcher_pid": self.launcher_pid},)


def attach_shared(spec: dict, launcher_pid: int | None | str = "spec") -> MappedShared:
    """Map the shared objects of `build_mapped_shared` in this process (`launcher_pid`: None in a Ray
    actor, which is no child of the launcher; by default the one in `spec`)."""
    cfg = TrainConfig.from_dict(spec["cfg"])
    shared = _mapped_shared(spec, ActorCritic.from_config(cfg, spec["obs_dim"], spec["action_dim"]), create=False)
    shared.clock_origin = spec.get("clock_origin", shared.clock_origin)
    shared.launcher_pid = spec.get("launcher_pid") if launcher_pid == "spec" else launcher_pid
    return shared


MAPPED_ALIGN = 8  # bytes: every tensor in the mapped file starts at a multiple of this


def _mapped_shared(spec: dict, model: ActorCritic, create: bool) -> MappedShared:
    cfg, obs_dim = TrainConfig.from_dict(spec["cfg"]), spec["obs_dim"]
    params = (model.flat.numel(),)
    layout = {"weights": (np.float32, params), "exp_avg": (np.float32, params), "exp_avg_sq": (np.float32, params),
              "adam_steps": (np.float64, ()), "steps": (np.int64, (cfg.workers + 1,)), "stop_flag": (np.uint8, (1,)),
              **{f"norm_{name}": (np.float64, shape)
                 for name, shape in RunningNormalizer.memory_layout(obs_dim, cfg.workers).items()}}
    offsets, size = {}, 0
    for name, (dtype, shape) in layout.items():
        offsets[name] = size
        size += -(-int(np.dtype(dtype).itemsize * np.prod(shape, dtype=np.int64)) // MAPPED_ALIGN) * MAPPED_ALIGN
    path = Path(spec["path"])
    if create:
        with open(path, "wb") as f:
            f.truncate(size)  # zeros
    memory = np.memmap(path, dtype=np.uint8, mode="r+", shape=(size,))
    t = {name: torch.from_numpy(np.ndarray(shape, dtype, buffer=memory, offset=offsets[name]))
         for name, (dtype, shape) in layout.items()}
    model.use_memory(t["weights"], keep=not create)
    normalizer_memory = {name[5:]: tensor for name, tensor in t.items() if name.startswith("norm_")}
    if create:
        normalizer_memory["base_var"].fill_(1.0)
    shared = MappedShared(
        model=model,
        optimizer=SharedAdam(model.flat, eps=cfg.adam_eps,
                             memory={"exp_avg": t["exp_avg"], "exp_avg_sq": t["exp_avg_sq"], "steps": t["adam_steps"]}),
        normalizer=RunningNormalizer(obs_dim, cfg.obs_clip, writers=cfg.workers, memory=normalizer_memory),
        steps=t["steps"], stop_flag=t["stop_flag"], update_lock=None, run_dir=spec.get("run_dir"),
    )
    shared.spec = {k: spec[k] for k in ("path", "cfg", "obs_dim", "action_dim")}
    return shared
