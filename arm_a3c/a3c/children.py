"""What every child process of a run does (workers, the evaluator, the viewer, a benchmark's measuring processes,
Ray's actors): one BLAS thread each, its own name in ps and top, Ctrl-C left to the launcher, and a quick exit."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

# Each worker and the evaluator run on one core each: the thread pools of numpy's BLAS would only fight over the
# cores. Measured on 2 cores, two processes each multiplying 20x256 by 256x256 (a worker's update at
# --hidden-size 256): 23 ms per product with OpenBLAS's own threads, 0.2 ms with one thread each.
ONE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def single_threaded_children() -> None:
    """Give the processes started from now on one BLAS thread each (read when they import numpy)."""
    os.environ.update(ONE_THREAD_ENV)


def become_child(name: str) -> None:
    """For child processes. Ctrl-C reaches the whole process group, but only the launcher should react (it
    sets the stop flag, and the children finish their current step and exit), so ignore it. Take `name` as the
    process name that ps and top show (Linux; elsewhere the name stays "python")."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        Path("/proc/self/comm").write_text(name[:15])  # the kernel keeps at most 15 characters
    except OSError:
        pass


def exit_child() -> None:
    """End a child process at once when its work is done. The interpreter's normal teardown with torch loaded
    takes about 0.6 s per process (measured), a large part of the 5-second stop budget on 2 cores; nothing is
    lost by skipping it: reports go through unbuffered pipes and checkpoints are fsynced when written."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
