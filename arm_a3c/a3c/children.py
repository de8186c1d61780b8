"""What every child process of a run does (workers, the evaluator, the viewer, a benchmark's measuring processes,
Ray's actors): one BLAS thread each, its own name in ps and top, Ctrl-C left to the launcher, and a quick exit."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import site
import time
from contextlib import contextmanager
from pathlib import Path

from arm_a3c.sim.assets import ASSETS_VARIABLE

# Each worker and the evaluator run on one core each: the thread pools of numpy's BLAS would only fight over the
# cores. Measured on 2 cores, two processes each multiplying 20x256 by 256x256 (a worker's update at
# --hidden-size 256): 23 ms per product with OpenBLAS's own threads, 0.2 ms with one thread each.
ONE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def single_threaded_children() -> None:
    """Give the processes started from now on one BLAS thread each (read when they import numpy)."""
    os.environ.update(ONE_THREAD_ENV)


# The launcher's environment variables its children must see as they are now. A child forked from the fork server
# has the server's environment, which is the launcher's as it was when the server started: in a process that runs
# more than one training (a notebook, the tests), a later run's --assets folder would not reach its children.
PASSED_ENVIRONMENT = (ASSETS_VARIABLE,)


def launcher_environment() -> dict[str, str | None]:
    """The launcher's values of `PASSED_ENVIRONMENT` (None: not set), for `with_environment`."""
    return {name: os.environ.get(name) for name in PASSED_ENVIRONMENT}


def with_environment(environment: dict[str, str | None], target, *args):
    """Run `target(*args)` in a child after setting its environment variables to the launcher's (`environment`,
    None removes one)."""
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return target(*args)


# What a run's children import before they start: the fork server imports it once, and each child is a fork of it.
CHILD_MODULES = ["arm_a3c.a3c.worker", "arm_a3c.a3c.evaluator"]
LAUNCHER_CHECK_SECONDS = 0.2  # how often a child of the fork server looks for its launcher


def children_context():
    """The multiprocessing context a run starts its children with, and the server that forks them started now.

    A fork server where the platform has one: a process of its own (not a fork of the launcher, so no thread or
    lock of the launcher's is copied) that imports the workers' and the evaluator's code once, torch included, and
    forks each child from there. Spawned children each imported torch again: about 1.3 s of CPU per child, three
    children per run. Started here, it imports while the launcher builds its robot. Elsewhere (Windows): spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(CHILD_MODULES)
    from multiprocessing import forkserver

    with package_on_python_path():
        forkserver.ensure_running()  # returns at once; the server imports in the background
    return ctx


PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds `arm_a3c` (a clone, or site-packages)


@contextmanager
def package_on_python_path():
    """PYTHONPATH with the folder that holds `arm_a3c` while the fork server starts, where a new interpreter would
    not find the package on its own (run from a clone: `python scripts/train_arm.py` puts the clone on this
    process's sys.path only). The server is a new interpreter that finds modules through its environment: Python
    hands it this process's sys.path and does not apply it, and it skips a preload module it cannot import
    without a word, so each child imported torch itself (about 1.3 s of CPU per child)."""
    root, before = str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")
    found = [*site.getsitepackages(), site.getusersitepackages(), *(before.split(os.pathsep) if before else [])]
    if root in found:
        yield
        return
    os.environ["PYTHONPATH"] = os.pathsep.join([root, *([before] if before else [])])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def parent_of(pid: int) -> int | None:
    """The parent's pid of process `pid`, or None where /proc cannot say (not Linux, or `pid` is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


class LauncherWatch:
    """Whether the launcher that started this process still runs: a killed launcher cannot signal, and its orphaned
    children would otherwise train forever. A spawned child's parent is the launcher; a forked one's is the
    launcher's fork server, whose parent is the launcher until it dies (then the server is re-parented). Looked up
    every `LAUNCHER_CHECK_SECONDS` (a /proc read), not on every call."""

    def __init__(self, launcher_pid: int):
        self.launcher_pid = launcher_pid
        self.next_check = 0.0
        self.alive = True

    def __call__(self) -> bool:
        parent = os.getppid()
        if parent == self.launcher_pid:
            return True
        now = time.monotonic()
        if self.alive and now >= self.next_check:
            self.next_check = now + LAUNCHER_CHECK_SECONDS
            grandparent = parent_of(parent)
            if grandparent is not None:
                self.alive = grandparent == self.launcher_pid
            else:  # no /proc: the launcher's pid answers while it lives
                try:
                    os.kill(self.launcher_pid, 0)
                except ProcessLookupError:
                    self.alive = False
                except PermissionError:
                    pass
        return self.alive


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
