"""Shared test helpers: small URDFs written on the fly, a runner for the scripts as a user runs them, and the
session's one real training that several test files share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def box_link(name: str, length: float, mass: float = 0.2) -> str:
    """A link whose box extends `length` m along +z from its joint, with a consistent inertia."""
    inertia = mass * length**2 / 12 + 1e-5
    return f"""
  <link name="{name}">
    <visual><origin xyz="0 0 {length / 2}"/><geometry><box size="0.04 0.04 {length}"/></geometry></visual>
    <collision><origin xyz="0 0 {length / 2}"/><geometry><box size="0.04 0.04 {length}"/></geometry></collision>
    <inertial><origin xyz="0 0 {length / 2}"/><mass value="{mass}"/>
      <inertia ixx="{inertia}" iyy="{inertia}" izz="1e-4" ixy="0" ixz="0" iyz="0"/></inertial>
  </link>"""


def joint(name: str, jtype: str, parent: str, child: str, z: float, axis: str = "0 1 0",
          limit: str = '<limit lower="-1.5" upper="1.5" effort="20" velocity="3"/>') -> str:
    return f"""
  <joint name="{name}" type="{jtype}">
    <parent link="{parent}"/><child link="{child}"/><origin xyz="0 0 {z}"/><axis xyz="{axis}"/>{limit}
  </joint>"""


def robot_xml(name: str, body: str) -> str:
    return f'<?xml version="1.0"?>\n<robot name="{name}">{box_link("base", 0.1, 2.0)}{body}\n</robot>\n'


# base yaw, upper arm, elbow, forearm: the start of the small test arms
YAW_ELBOW_FOREARM = (
    joint("yaw", "revolute", "base", "upper", 0.1, axis="0 0 1", limit='<limit lower="-3" upper="3" effort="20" velocity="3"/>')
    + box_link("upper", 0.3)
    + joint("elbow", "revolute", "upper", "forearm", 0.3)
    + box_link("forearm", 0.25)
)

GRIPPER_ARM = robot_xml(
    "gripper_arm",
    YAW_ELBOW_FOREARM
    + joint("palm_mount", "fixed", "forearm", "palm", 0.25, limit="")
    + box_link("palm", 0.05, 0.1)
    + joint("left_finger_joint", "prismatic", "palm", "left_finger", 0.05, axis="1 0 0",
            limit='<limit lower="0" upper="0.04" effort="10" velocity="0.1"/>')
    + box_link("left_finger", 0.06, 0.02)
    + joint("right_finger_joint", "prismatic", "palm", "right_finger", 0.05, axis="-1 0 0",
            limit='<limit lower="0" upper="0.04" effort="10" velocity="0.1"/>')
    + box_link("right_finger", 0.06, 0.02),
)


@pytest.fixture
def write_urdf(tmp_path: Path):
    """Write URDF text to tmp_path/NAME.urdf and return its path."""

    def write(text: str, name: str = "arm") -> Path:
        path = tmp_path / f"{name}.urdf"
        path.write_text(text)
        return path

    return write


def run_script(script: str, *args: str, timeout: float = 120, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run scripts/SCRIPT with arguments from the repository root, as a user would (without the environment
    variables named in `unset`)."""
    env = {k: v for k, v in os.environ.items() if k not in unset} | {"PYTHONPATH": ""}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=timeout,
    )



def run_in_process(script: str, *args: str) -> subprocess.CompletedProcess:
    """What `python scripts/SCRIPT args` does (its exit status, stdout and stderr), run in this process: for the
    bad-input tests, where a new interpreter importing torch would cost seconds and prove nothing more (each
    script's own start is tested with `run_script`)."""
    import contextlib
    import io

    from arm_a3c import cli

    main = {"train_arm.py": cli.train_main, "evaluate.py": cli.evaluate_main, "view.py": cli.view_main,
            "inspect_robot.py": cli.inspect_main, "bench.py": cli.bench_main, "bench_ray.py": cli.bench_ray_main,
            "bench_env.py": cli.bench_env_main, "bench_viewer.py": cli.bench_viewer_main, "export.py": cli.export_main,
            "oracle.py": cli.oracle_main}[script]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.run(main, list(args))
        except SystemExit as exit_:  # argparse's errors and --help
            code = exit_.code if isinstance(exit_.code, int) else 1
    return subprocess.CompletedProcess([script, *args], code, out.getvalue(), err.getvalue())


def goal_pixels(frame):
    """Where an RGB frame (H, W, 3) shows the goal's green (`tasks.base.GOAL_RGB`, shaded or not)."""
    r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
    return (g > 120) & (g > 2 * r) & (g > 2 * b)


def write_untrained_checkpoint(robot: str, path: Path) -> Path:
    from arm_a3c.a3c.checkpoint import save_untrained_checkpoint

    return save_untrained_checkpoint(robot, path)


# ---- the session's one real training ------------------------------------------------------------------------
# Training is what costs the suite its time, so one real run of the local backend serves every test that needs
# one: while it runs, the viewer attaches to it and a worker is killed (tests that take `training_running` run
# first in the session, see `pytest_collection_modifyitems`); once it has finished, other tests check that it
# learned, wrote every file, kept its counts through the killed worker, and that evaluate.py reproduces it.

SHARED_STEPS = 200_000  # under a minute on 2 cores; long enough for the live tests to attach before it ends
SHARED_FLAGS = ("--robot", "light_arm", "--workers", "2", "--max-steps", str(SHARED_STEPS), "--max-minutes", "8",
                "--target-success", "1.01", "--eval-every-steps", "100000", "--eval-episodes", "30", "--seed", "3")


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


def pytest_collection_modifyitems(items: list) -> None:
    """Tests that need the shared training running go first, those that need it finished next: the training
    then runs alone beside light tests, and nothing waits for it twice."""
    def phase(item) -> int:
        names = getattr(item, "fixturenames", ())
        return 0 if "training_running" in names else 1 if "training_finished" in names else 2

    items.sort(key=phase)  # stable: the file order holds within each phase
