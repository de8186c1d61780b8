"""Thin entry point: see arm_a3c.cli.fake_robot_main."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # run from a checkout, no install

from arm_a3c.cli import fake_robot_main, run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(fake_robot_main))
