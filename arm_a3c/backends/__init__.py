"""Where the A3C workers run. Each backend implements `arm_a3c.a3c.interfaces.Backend`; the launcher is
handed one backend object and never asks which it is.

- `local.py`: one process per worker on this machine, sharing the global model in shared memory.
- `ray.py`:   Ray actors, on this machine or across a cluster, around a parameter server.

A new backend is a new module here with a class implementing `Backend`, and one line in `BACKENDS`.
"""

from __future__ import annotations

from arm_a3c.a3c.interfaces import Backend
from arm_a3c.backends.local import LocalBackend
from arm_a3c.backends.ray import RayBackend
from arm_a3c.errors import UserError

BACKENDS: dict[str, type] = {"local": LocalBackend, "ray": RayBackend}  # --backend NAME


def backend_for(name: str) -> Backend:
    """The backend that `--backend NAME` selects."""
    if name not in BACKENDS:
        raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, not {name!r}")
    return BACKENDS[name]()
