"""Helpers the test files share: small URDFs written on the fly, the scripts run as a user runs them (in a new
process, or in this one for the bad-input tests), the check of a one-line user error, and the helpers that start,
signal and watch real trainings. Fixtures live in conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
    bad-input tests and the trainings whose test is about what they write, where a new interpreter importing torch
    (and a training's fork server importing it again) would cost seconds of CPU and prove nothing more (each
    script's own start is tested with `run_script`, and a training's signals and processes with `start_training`).
    The environment variables and torch's thread count the script sets are put back after it."""
    import contextlib
    import io

    import torch
    from arm_a3c import cli

    main = cli.SCRIPTS[script].main
    out, err = io.StringIO(), io.StringIO()
    environ, threads = dict(os.environ), torch.get_num_threads()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.run(main, list(args))
        except SystemExit as exit_:  # argparse's errors and --help
            code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            os.environ.clear()
            os.environ.update(environ)
            torch.set_num_threads(threads)
    return subprocess.CompletedProcess([script, *args], code, out.getvalue(), err.getvalue())


def goal_pixels(frame):
    """Where an RGB frame (H, W, 3) shows the goal's green (`tasks.base.GOAL_RGB`, shaded or not)."""
    r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
    return (g > 120) & (g > 2 * r) & (g > 2 * b)


def write_untrained_checkpoint(robot: str, path: Path) -> Path:
    from arm_a3c.a3c.checkpoint import save_untrained_checkpoint

    return save_untrained_checkpoint(robot, path)


SHARED_STEPS = 100_000  # about 30 s beside the other lane; long enough for the live tests to attach before it ends


SHARED_TEST_EPISODES = 20  # its held-out test (and so its robustness grid's points): what the tests check, in less time
SHARED_FLAGS = ("--robot", "light_arm", "--workers", "2", "--max-steps", str(SHARED_STEPS), "--max-minutes", "8",
                "--target-success", "1.01", "--eval-every-steps", "50000", "--eval-episodes", "30", "--seed", "3",
                "--test-episodes", str(SHARED_TEST_EPISODES))


# ---- the scripts' errors ------------------------------------------------------------------------------------

def assert_user_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {result.stderr!r}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


# ---- real trainings -----------------------------------------------------------------------------------------

# A run that goes on until it is stopped (its evaluations, the final one at the stop included, of 20 episodes)
UNTIL_STOPPED = ("--max-minutes", "5", "--target-success", "1.01", "--eval-episodes", "20")


def children_of(pid: int) -> dict[int, str]:
    """{pid: process name} of the processes `pid` started, and theirs: a run's workers and evaluator are children
    of its fork server, a child of the launcher."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1:text.rindex(")")], text.rsplit(")", 1)[1].split()
        parents[int(stat.parent.name)] = (int(rest[1]), name)
    found, frontier = {}, {pid}
    while frontier:
        frontier = {child for child, (parent, _) in parents.items() if parent in frontier and child not in found}
        found.update({child: parents[child][1] for child in frontier})
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_training(run_dir: Path, *flags: str, env: dict | None = None, workers: int = 2) -> subprocess.Popen:
    """A light-arm training, in a session of its own (so a group signal reaches only it). One worker where the test
    is about the launcher, not about several workers: half the CPU while the test waits, for the tests beside it.
    The process keeps `workers` (`wait_until_training` waits for each of them)."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "train_arm.py"), "--robot", "light_arm", "--workers", str(workers),
         "--run-dir", str(run_dir), *flags],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    process.workers = workers
    return process


def wait_until_training(process: subprocess.Popen, run_dir: Path, timeout: float = 90) -> dict[int, str]:
    """Wait for the first checkpoint and all the children of a `start_training` process (its workers, the
    evaluator); returns the children."""
    deadline = time.monotonic() + timeout
    expected = {f"a3c-worker-{rank}" for rank in range(1, process.workers + 1)} | {"a3c-evaluator"}
    while True:
        children = children_of(process.pid)
        names = set(children.values())
        if (run_dir / "checkpoints" / "latest.pt").exists() and expected <= names:
            return children
        if process.poll() is not None or time.monotonic() > deadline:
            out, err = process.communicate()
            pytest.fail(f"training did not get going: {out[-1500:]} {err[-1500:]}")
        time.sleep(0.25)


def pid_named(process: subprocess.Popen, name: str, not_pid: int | None = None, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [pid for pid, n in children_of(process.pid).items() if n == name and pid != not_pid and alive(pid)]
        if found:
            return found[0]
        time.sleep(0.1)
    pytest.fail(f"no {name} process appeared")


def survivors(children: dict[int, str], grace: float = 2.0) -> dict[int, str]:
    """The children still alive after `grace` seconds (multiprocessing's resource tracker, also a child, exits
    by itself a moment after the launcher)."""
    deadline = time.monotonic() + grace
    while True:
        left = {pid: name for pid, name in children.items() if alive(pid)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def signal_and_wait(process: subprocess.Popen, send, signum: int, timeout: float = 60) -> tuple[str, float]:
    """Send `signum` with `send` (os.killpg: the whole process group, as Ctrl-C in a terminal; os.kill: the
    launcher only) and wait for the process to exit: (its stderr, seconds from the signal to the exit). Its
    stdout is kept as `process.stdout_text`."""
    started = time.monotonic()
    send(process.pid, signum)
    process.stdout_text, err = process.communicate(timeout=timeout)
    return err, time.monotonic() - started


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def checkpoint_steps(run_dir: Path) -> int:
    """The environment steps of the run's latest checkpoint (-1 while there is none)."""
    from arm_a3c.a3c.checkpoint import load_checkpoint

    path = run_dir / "checkpoints" / "latest.pt"
    return load_checkpoint(path)["env_steps"] if path.is_file() else -1


class Reports:
    """Stands in for a worker's pipe: keeps the reports, and stops the worker after `updates` updates."""

    def __init__(self, shared, reports: int):
        self.shared, self.events, self.left = shared, [], reports

    def send(self, event) -> None:
        self.events.append(event)
        if event[0] == "update":
            self.left -= 1
            if self.left == 0:
                self.shared.request_stop()


def untrained_figures(run_dir: Path) -> dict:
    """The untrained policy's figures on the run's own evaluation episodes: a network fresh from its
    initialisation and a normaliser that has seen nothing, played as the evaluator plays (the run's first
    evaluation is no baseline: its workers have already trained for a few thousand steps by then)."""
    import torch

    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.a3c.evaluator import evaluate_policy
    from arm_a3c.a3c.model import ActorCritic
    from arm_a3c.a3c.normalizer import RunningNormalizer
    from arm_a3c.envs.arm_env import make_env

    cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    env = make_env(cfg)
    torch.manual_seed(cfg.seed)
    model = ActorCritic.from_config(cfg, env.obs_dim, env.robot.dof)
    result = evaluate_policy(model, RunningNormalizer(env.obs_dim, cfg.obs_clip), env, cfg.eval_episodes,
                             cfg.eval_seed)
    env.close()
    return result
