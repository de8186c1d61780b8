"""The suite's fixtures: a URDF written on the fly, and the session's one real training that several test files
share (the helpers the test files share are in helpers.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import REPO, SHARED_FLAGS


@pytest.fixture
def write_urdf(tmp_path: Path):
    """Write URDF text to tmp_path/NAME.urdf and return its path."""

    def write(text: str, name: str = "arm") -> Path:
        path = tmp_path / f"{name}.urdf"
        path.write_text(text)
        return path

    return write


# ---- the session's one real training ------------------------------------------------------------------------
# Training is what costs the suite its time, so one real run of the local backend serves every test that needs
# one: while it runs, the viewer attaches to it and a worker is killed (tests that take `training_running` run
# first in the session, see `pytest_collection_modifyitems`); once it has finished, other tests check that it
# learned, wrote every file, kept its counts through the killed worker, and that evaluate.py reproduces it.


@dataclass
class SharedTraining:
    run_dir: Path
    process: subprocess.Popen
    killed_workers: list = field(default_factory=list)  # pids a test killed while it ran
    _out: Path | None = None
    _err: Path | None = None

    def stdout(self) -> str:
        return self._out.read_text()

    def stderr(self) -> str:
        return self._err.read_text()

    def finish(self, timeout: float = 480) -> "SharedTraining":
        """Wait for the run to end; it must end well."""
        self.process.wait(timeout=timeout)
        assert self.process.returncode == 0, self.stdout()[-2000:] + self.stderr()[-2000:]
        return self

    def summary(self) -> dict:
        return json.loads((self.run_dir / "summary.json").read_text())


@pytest.fixture(scope="session")
def shared_training(tmp_path_factory):
    """The session's real training of the light arm with 2 workers, as a user starts it, in a process session of
    its own (output to files: a pipe nobody reads could fill up and stall it)."""
    folder = tmp_path_factory.mktemp("shared_training")
    out, err = folder / "stdout.txt", folder / "stderr.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "train_arm.py"), *SHARED_FLAGS, "--run-dir", str(folder / "run")],
            cwd=REPO, stdout=stdout, stderr=stderr, text=True, start_new_session=True,
            env={**os.environ, "PYTHONPATH": ""},
        )
    training = SharedTraining(folder / "run", process, _out=out, _err=err)
    yield training
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture
def training_running(shared_training) -> SharedTraining:
    """The shared training, once both workers have published an episode and the first checkpoint is written."""
    from arm_a3c.a3c.live import LiveBoard

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        board = LiveBoard.attach(shared_training.run_dir)
        if board:
            board.watch()  # as a viewer does: the workers record only while somebody watches
        if (board and board.latest(0) and board.latest(1)
                and (shared_training.run_dir / "checkpoints" / "latest.pt").exists()):
            return shared_training
        assert shared_training.process.poll() is None, shared_training.stderr()[-2000:]
        time.sleep(0.25)
    pytest.fail("the shared training published no episode of both workers within 2 minutes")


@pytest.fixture
def training_finished(shared_training) -> SharedTraining:
    """The shared training, after it has ended (by its step budget)."""
    return shared_training.finish()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the groups to schedule by
def pytest_collection_modifyitems(config, items: list) -> None:
    """In one process (`-n 0`): the tests that need the shared training running go first; then the quick tests,
    which run on one core while the training finishes on the other; then those that need it finished (so nothing
    waits for it); the slow ones last. Within each phase the file order holds.

    With pytest-xdist (`-n 2 --dist loadgroup`: pyproject's addopts) two processes take the tests as they free
    up, the ones that must share a process as one unit (an xdist group): the shared training's tests (one
    training per process that runs any of them), and the tests on the simulated Ray cluster (one cluster for
    them all, `two_machines`). Those units go first (xdist hands out the biggest first), then the slow tests
    costliest first (`COSTLIEST`), then the quick ones, which fill the end."""
    def phase(item) -> int:
        names = getattr(item, "fixturenames", ())
        if "training_running" in names:
            return 0
        if "training_finished" in names:
            return 2
        return 3 if item.get_closest_marker("slow") else 1

    def costly(item) -> int:
        return next((rank for rank, name in enumerate(COSTLIEST) if item.nodeid.startswith(name)), len(COSTLIEST))

    if not hasattr(config, "workerinput"):  # one process (an xdist worker's config has its controller's input)
        items.sort(key=phase)
    else:
        items.sort(key=lambda item: (phase(item) == 1, phase(item), costly(item)))
    for item in items:
        if phase(item) in (0, 2):  # waits for the session's real training
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group("shared_training"))
        elif "two_machines" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("simulated_cluster"))


# The slow tests that take longest (seconds of the suite's length, measured in a fresh clone with two processes),
# handed out first so that no long one starts last. Only the suite's length depends on this list.
COSTLIEST = (
    "tests/test_ray.py::test_the_ray_benchmark_runs_its_throughput_and_capacity_parts",
    "tests/test_bench.py::test_quick_benchmark_runs_every_part_and_writes_its_table",
    "tests/test_ray.py::test_the_ray_benchmarks_learning_comparison",
    "tests/test_tasks.py::test_a_short_training_improves_the_tasks_own_figures_clearly[pose",
    "tests/test_ray.py::test_a_ray_run_through_the_parameter_server",
    "tests/test_tasks.py::test_a_short_training_improves_the_tasks_own_figures_clearly[avoid",
)
