"""What every command shares: argparse with one-line errors (exit status 2), range-checked numbers, the robot
flags, and `run`, which turns a `UserError` into one line."""

from __future__ import annotations

import argparse
import errno
import sys
from typing import Callable, Sequence

from arm_a3c.errors import UserError
from arm_a3c.limits import MAX_EPISODES, MAX_SEED
from arm_a3c.sim.assets import DEFAULT_ROBOT, is_robot_file

USAGE_ERROR = 2  # exit status for every mistake a user can make (argparse's own convention)

# The system refusing a path itself, wherever in a command it is looked up: the path is one the user gave (or made
# from one), not a bug of ours, so `run` says so in one line, with what to do. Any other OSError keeps its traceback.
REFUSED_PATHS = {
    errno.ENAMETOOLONG: "give a shorter name (a file or folder name holds at most 255 bytes)",
    errno.ELOOP: "its symbolic links lead in a circle; fix or remove them",
    errno.EACCES: "give a path you may use, or change the permissions of its folders",
}

class ArgumentParser(argparse.ArgumentParser):
    """argparse with its error report folded into one line that points at --help."""

    command: str | None = None  # "arm-a3c train" when the arm-a3c command runs a script's main

    def __init__(self, *args, **kwargs):
        if ArgumentParser.command:
            kwargs["prog"] = ArgumentParser.command
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see --help)\n")

def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high], the range named in the error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: between {low:,} and {high:,}")
        return value

    parse.__name__ = "int"  # argparse names the type in its message
    return parse

def positive_number(high: float) -> Callable[[str], float]:
    """An argparse type: a number above 0 and at most `high` (so never NaN or infinite)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if not 0 < value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: above 0 and at most {high:,g}")
        return value

    parse.__name__ = "number"
    return parse

MAX_BENCH_SECONDS = 24 * 3600.0  # any one part of a benchmark

EPISODES = bounded_int(1, MAX_EPISODES)

SEED = bounded_int(0, MAX_SEED)

def _assets_folder(text: str) -> str:
    from arm_a3c.sim.assets import add_assets_dir

    if not text:
        raise argparse.ArgumentTypeError("an empty folder name; give a folder of robots")
    add_assets_dir(text)  # at once: the robot lookups and the processes started later see it
    return text

def add_assets_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--assets", metavar="DIR", type=_assets_folder, action="append",
                        help="another folder of robots, searched before the shipped ones (repeatable; the variable "
                             "ARM_A3C_ASSETS does the same, folders separated like PATH)")

def add_moved_urdf_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--urdf", metavar="PATH",
                        help="the robot's .urdf file, when it is no longer where the run found it (default: the "
                             "path the run recorded)")

def add_robot_arguments(parser: argparse.ArgumentParser) -> None:
    add_assets_argument(parser)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--robot", metavar="NAME",
                       help=f"robot in assets/: assets/NAME.urdf or assets/NAME/<one>.urdf (default {DEFAULT_ROBOT})")
    group.add_argument("--urdf", metavar="PATH", help="path to a .urdf file instead of a robot name")
    parser.add_argument("--ee-link", metavar="LINK",
                        help="end-effector link name (default: from the robot's sidecar .toml, else the deepest link)")
    parser.add_argument("--ee-offset-m", nargs=3, type=float, metavar=("X", "Y", "Z"),
                        help="tool point in the end-effector link's frame, metres (default: the sidecar's "
                             "ee_offset_m, else the link's origin)")
    parser.add_argument("--home", nargs="+", type=_home_token, metavar="Q",
                        help="start pose: one value per controlled joint (rad or m, in inspect_robot.py's order), "
                             "or 'auto' (the rule inspect_robot.py explains) or 'zero' (default: the sidecar's "
                             "home, else auto)")

def _home_token(text: str) -> float | str:
    if text in ("auto", "zero"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number, 'auto' or 'zero'") from None

def home_from_args(args: argparse.Namespace) -> list[float] | str | None:
    """--home as numbers or one word (None when not given)."""
    tokens = getattr(args, "home", None)
    if tokens is None:
        return None
    words = [t for t in tokens if isinstance(t, str)]
    if words and len(tokens) > 1:
        raise UserError(f"--home takes numbers or one word ('auto' or 'zero'), not both: {' '.join(map(str, tokens))}")
    return words[0] if words else list(tokens)

def robot_from_args(args: argparse.Namespace) -> str | None:
    """The robot name or URDF path that the arguments select (None means the default robot)."""
    urdf = getattr(args, "urdf", None)
    if urdf is not None and not is_robot_file(urdf):
        # a robot is a file by its suffix (a name never leaves the assets folders): say so where the file is named
        raise UserError(f"--urdf {urdf}: give a file whose name ends in .urdf (or a .toml robot descriptor); "
                        f"rename or copy it")
    if getattr(args, "robot", None) == "":
        raise UserError("the robot's name is empty; name a robot (inspect_robot.py lists them), or leave --robot out "
                        "for the default")
    return urdf or args.robot


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a script's main; a `UserError`, or a path the system refuses (`REFUSED_PATHS`), becomes one line on
    stderr and exit status 2, no traceback."""
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output went to a pager or `head` that has quit: not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        if err.errno not in REFUSED_PATHS or err.filename is None:
            raise
        print(f"error: {err.filename}: {err.strerror}; {REFUSED_PATHS[err.errno]}", file=sys.stderr)
        return USAGE_ERROR

def _make_env(args: argparse.Namespace):
    from arm_a3c.envs.arm_env import make_env

    return make_env(args, robot=robot_from_args(args), home=home_from_args(args))
