"""PyBullet access: one private DIRECT client per simulation, never the global connection.

PyBullet's C code prints loader warnings to the process's stdout and a build banner to stderr, which would
corrupt machine-readable output such as `inspect_robot.py --json` and clutter the terminal. Calls that can
print run inside `quiet_c_output()`, which points the C-level file descriptors at /dev/null meanwhile.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from typing import Iterator

_libc = ctypes.CDLL(None)


@contextlib.contextmanager
def quiet_c_output(fds: tuple[int, ...] = (1,)) -> Iterator[None]:
    """Discard C-level writes to the given file descriptors (stdout by default) inside the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    _libc.fflush(None)
    saved = [os.dup(fd) for fd in fds]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        _libc.fflush(None)
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


with quiet_c_output((1, 2)):
    import pybullet  # noqa: E402  (its build banner goes nowhere)
    import pybullet_data  # noqa: E402

GRAVITY_MS2 = -9.81
PHYSICS_HZ = 240  # PyBullet's default and recommended time step (1/240 s)


def connect() -> int:
    """A new headless physics client with gravity and a 240 Hz time step; returns its client id."""
    client = pybullet.connect(pybullet.DIRECT)
    pybullet.setGravity(0.0, 0.0, GRAVITY_MS2, physicsClientId=client)
    pybullet.setTimeStep(1.0 / PHYSICS_HZ, physicsClientId=client)
    return client


def load_floor(client: int) -> int:
    """The ground plane at z = 0 from pybullet_data; returns its body id."""
    with quiet_c_output():
        return pybullet.loadURDF(
            os.path.join(pybullet_data.getDataPath(), "plane.urdf"), physicsClientId=client
        )


def disconnect(client: int) -> None:
    if pybullet.isConnected(physicsClientId=client):
        pybullet.disconnect(physicsClientId=client)
