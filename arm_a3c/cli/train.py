"""`train_arm.py` (`arm-a3c train`): one flag per `TrainConfig` field, a new run or `--resume`, then the launcher."""

from __future__ import annotations

import argparse
from typing import Sequence

from arm_a3c.cli.common import ArgumentParser, add_robot_arguments, home_from_args, robot_from_args


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per `TrainConfig` field (`--n-steps` for `n_steps`), typed and described by the field. A flag
    that is not given stays out of the parsed arguments (so `--resume` can tell what the user changed)."""
    import dataclasses

    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.tasks import TASK_SETTINGS

    add_robot_arguments(parser)
    task_settings = parser.add_argument_group("each task's own settings (a task reads only its own)")
    task_names = {setting.name for setting in TASK_SETTINGS}
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("robot", "ee_link", "ee_offset_m", "home", "robot_file"):
            continue
        flag, default = "--" + f.name.replace("_", "-"), f.default
        help_text = f"{f.metadata['help']} (default {default})"
        if f.name == "task":
            from arm_a3c.tasks import TASKS

            help_text += "; " + "; ".join(f"{name}: {task.summary}" for name, task in TASKS.items())
        group = task_settings if f.name in task_names else parser
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            kind = type(default) if default is not None else str
            group.add_argument(flag, type=kind, default=argparse.SUPPRESS, metavar=kind.__name__.upper(),
                               help=help_text)

def given_config(args: argparse.Namespace) -> dict:
    """The `TrainConfig` fields the user set on the command line."""
    import dataclasses

    from arm_a3c.a3c.config import TrainConfig

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    values.pop("robot", None)
    if robot_from_args(args):
        values["robot"] = robot_from_args(args)
    for name in ("ee_link", "ee_offset_m"):
        if getattr(args, name, None) is None:
            values.pop(name, None)
    values.pop("home", None)
    home = home_from_args(args)
    if home is not None:
        values["home"] = home
    return values

def train_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/train_arm.py`: train a robot arm to reach with A3C, one worker process per core."""
    from pathlib import Path

    from arm_a3c.a3c.config import TrainConfig

    parser = ArgumentParser(prog="train_arm.py", description=train_main.__doc__)
    run = parser.add_mutually_exclusive_group()
    run.add_argument("--resume", type=Path, metavar="DIR",
                     help="continue the run in DIR (runs/NAME) from its latest checkpoint; flags given with it "
                          "change its settings (--max-minutes counts from now, --max-steps counts all steps)")
    run.add_argument("--force", action="store_true",
                     help="start a new run even if --run-dir holds one (its files are deleted)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    given = given_config(args)
    if args.resume:
        from arm_a3c.a3c.rundir import resume_config

        cfg = resume_config(args.resume, given)
    else:
        cfg = TrainConfig(**given)
    cfg.check()  # a bad flag is one line before torch and PyBullet load (seconds here)

    from arm_a3c.a3c.launcher import train
    from arm_a3c.backends import backend_for

    backend = backend_for(cfg.backend)
    viewer = None
    if cfg.view:
        from arm_a3c.viewer.window import view_process  # pygame loads only when --view asks for it

        viewer = view_process
    summary = train(cfg, backend, resume=args.resume is not None, force=args.force, viewer=viewer)
    return 1 if summary["error"] else 0
