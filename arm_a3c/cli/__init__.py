"""The command line: one registry of every command (`COMMANDS`), which the scripts, the `arm-a3c` command,
`python -m arm_a3c` and the tests read; each command's main lives in the module of its kind (`train`, `view`,
`policy`, `robots`, `bench`), and `common` holds what they share."""

from __future__ import annotations

import sys
from typing import Callable, NamedTuple, Sequence

from arm_a3c.cli.bench import (bench_arms_main, bench_env_main, bench_main, bench_ray_main, bench_tables_main,
                               bench_viewer_main, profile_main)
from arm_a3c.cli.common import USAGE_ERROR, ArgumentParser, run
from arm_a3c.cli.policy import deploy_main, evaluate_main, export_main, transfer_main
from arm_a3c.cli.robots import fake_robot_main, inspect_main, oracle_main
from arm_a3c.cli.train import train_main
from arm_a3c.cli.view import view_main

__all__ = ["COMMANDS", "SCRIPTS", "Command", "main", "run", "train_main", "view_main", "evaluate_main", "export_main",
           "transfer_main", "deploy_main", "fake_robot_main", "inspect_main", "oracle_main", "bench_main",
           "bench_env_main", "bench_viewer_main",
           "bench_ray_main", "bench_arms_main", "profile_main", "bench_tables_main"]


class Command(NamedTuple):
    """One command of the project: `arm-a3c NAME` and `python scripts/SCRIPT` run `main`."""

    main: Callable[[Sequence[str] | None], int]
    summary: str
    script: str


# The one list of commands: the `arm-a3c` command, `python -m arm_a3c` and the tests read it, and a test holds
# every script in scripts/ to its entry here.
COMMANDS = {
    "train": Command(train_main, "train an arm with A3C", "train_arm.py"),
    "view": Command(view_main, "watch a run live or replay a checkpoint; --record a GIF or MP4", "view.py"),
    "evaluate": Command(evaluate_main, "evaluate a checkpoint deterministically", "evaluate.py"),
    "transfer": Command(transfer_main, "play a checkpoint's episodes in PyBullet and in MuJoCo, figures side by side",
                        "transfer.py"),
    "deploy": Command(deploy_main, "drive an arm with an exported policy behind a safety shield (sim or ROS 2)",
                      "deploy.py"),
    "fake-robot": Command(fake_robot_main, "a simulated arm that speaks ROS 2 as a ros2_control arm does",
                          "fake_robot.py"),
    "inspect": Command(inspect_main, "what the project understands of a robot; no robot: list them",
                       "inspect_robot.py"),
    "export": Command(export_main, "write a checkpoint's policy as ONNX or TorchScript with a JSON description",
                      "export.py"),
    "oracle": Command(oracle_main, "the scripted IK oracle's success on a task", "oracle.py"),
    "bench": Command(bench_main, "arm-a3c against Stable-Baselines3 on time to success", "bench.py"),
    "bench-env": Command(bench_env_main, "environment steps per second beside raw physics", "bench_env.py"),
    "bench-viewer": Command(bench_viewer_main, "the viewer's frames per second", "bench_viewer.py"),
    "bench-ray": Command(bench_ray_main, "the Ray backend's throughput beside the local backend's", "bench_ray.py"),
    "bench-arms": Command(bench_arms_main, "reach on every arm URDF found, defaults, one table and a gallery",
                          "bench_arms.py"),
    "profile": Command(profile_main, "where a training's CPU goes (py-spy)", "profile_training.py"),
    "bench-tables": Command(bench_tables_main, "make the docs' benchmark tables again from the benchmarks' JSON files",
                            "bench_tables.py"),
}

SCRIPTS = {command.script: command for command in COMMANDS.values()}

def main(argv: Sequence[str] | None = None) -> int:
    """`arm-a3c COMMAND ...` (the installed console command, or `python -m arm_a3c`): the scripts' commands."""
    argv = list(sys.argv[1:] if argv is None else argv)
    width = max(map(len, COMMANDS))
    usage = "usage: arm-a3c COMMAND [--help | options]\n\ncommands:\n" + "\n".join(
        f"  {name:<{width}}  {command.summary} (scripts/{command.script})" for name, command in COMMANDS.items())
    if not argv or argv[0] in ("-h", "--help"):
        print(usage, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else USAGE_ERROR
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"arm-a3c: error: unknown command {name!r}; one of {', '.join(COMMANDS)} (see arm-a3c --help)",
              file=sys.stderr)
        return USAGE_ERROR
    ArgumentParser.command = f"arm-a3c {name}"  # in usage lines and errors, as the user typed it
    try:
        return run(COMMANDS[name].main, rest)
    finally:
        ArgumentParser.command = None
