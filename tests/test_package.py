"""The installable package: pyproject.toml agrees with requirements.txt and lists every subpackage; `pip install .`
into a fresh virtualenv gives, from another folder, `import arm_a3c`, the gym IDs, the robots by name, an extra
robot folder through $ARM_A3C_ASSETS, and the `arm-a3c` command, whose `train` writes its run where it is
started."""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def requirement_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-r"):
            lines.append(line)
    return lines


def test_pyproject_dependencies_are_requirements_txt():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["dependencies"] == requirement_lines(REPO / "requirements.txt")
    extras = project["project"]["optional-dependencies"]
    assert extras["ray"] == requirement_lines(REPO / "requirements-ray.txt")
    assert extras["bench"] == requirement_lines(REPO / "requirements-bench.txt")


def test_pyproject_lists_every_subpackage():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "arm_a3c").rglob("__init__.py")}
    listed = set(project["tool"]["setuptools"]["packages"]) - {"arm_a3c._assets"}
    assert listed == found


def test_the_arm_a3c_command_lists_its_subcommands_and_refuses_an_unknown_one(capsys):
    from arm_a3c.cli import COMMANDS, main

    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("train", "view", "evaluate", "inspect", "export", "bench"))
    assert main(["nope"]) == 2 and "unknown command 'nope'" in capsys.readouterr().err
    assert main([]) == 2 and "usage: arm-a3c COMMAND" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--bogus"])
    assert exit_.value.code == 2 and capsys.readouterr().err.startswith("arm-a3c train: error:")
    assert set(COMMANDS) >= {"train", "view", "evaluate", "inspect", "export", "bench"}


OUTSIDE_SCRIPT = r"""
import json, sys
import gymnasium
import arm_a3c
from arm_a3c.sim.assets import available_robots

# The installed files are complete: each gym id and each robot builds, resets and steps (gymnasium's checker runs
# on every id and robot in tests/test_tasks.py and tests/test_env.py, from the checkout: the same code).
found = {"module": arm_a3c.__file__, "robots": sorted(available_robots()), "ids": []}
for env_id, robot in [(i, None) for i in ("ArmReach-v0", "ArmPose-v0", "ArmTrack-v0", "ArmAvoid-v0")] + [
        ("ArmReach-v0", r) for r in found["robots"]]:
    env = gymnasium.make(env_id, **({"robot": robot} if robot else {}))  # the default robot, the KUKA: every task
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.close()
    found["ids"] += [env_id] if robot is None else []
print(json.dumps(found))
"""


@pytest.mark.slow
def test_pip_install_into_a_fresh_virtualenv_works_from_another_folder(tmp_path):
    """The virtualenv borrows the installed dependencies of the interpreter running the tests (installing torch
    again would take minutes and prove nothing about this package) but not the checkout: nothing on its path
    points here, and the package is built from a copy of the checkout, deleted once installed. It borrows them
    with a .pth file naming this interpreter's site-packages, not with --system-site-packages, which would give
    the base Python's when the tests themselves run in a virtualenv."""
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns("runs", ".git", "__pycache__", "*.egg-info", "build",
                                                                ".pytest_cache", ".venv", "venv"))
    venv = tmp_path / "venv"
    # without pip of its own (installing pip into it took 3.5 s): this interpreter's pip installs into it
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python, command = venv / "bin" / "python", venv / "bin" / "arm-a3c"
    inner = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    # an "import" line of a .pth runs at start-up: addsitedir also reads those folders' own .pth files
    (Path(inner) / "borrowed-dependencies.pth").write_text("".join(
        f"import site; site.addsitedir({folder!r})\n" for folder in sorted(ours) if Path(folder).is_dir()))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ARM_A3C_ASSETS")}
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                                str(source)], env=env, capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    shutil.rmtree(source)  # the installed package must not need the files it was built from

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    mine = tmp_path / "my_robots"
    mine.mkdir()
    shutil.copy(REPO / "assets" / "light_arm.urdf", mine / "my_arm.urdf")
    result = subprocess.run([str(python), "-c", OUTSIDE_SCRIPT], cwd=outside, capture_output=True, text=True,
                            env={**env, "ARM_A3C_ASSETS": str(mine)}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["module"].startswith(str(venv)), found["module"]
    assert {"kuka_iiwa", "light_arm", "panda", "xarm6", "my_arm"} <= set(found["robots"])
    assert len(found["ids"]) == 4

    listed = subprocess.run([str(command), "inspect"], cwd=outside, capture_output=True, text=True, env=env,
                            timeout=120)
    assert listed.returncode == 0 and "kuka_iiwa" in listed.stdout, listed.stderr[-2000:]
    trained = subprocess.run([str(command), "train", "--assets", str(mine), "--robot", "my_arm", "--workers", "1",
                              "--max-steps", "3000", "--eval-every-steps", "1500", "--eval-episodes", "3",
                              "--test-episodes", "0"],
                             cwd=outside, capture_output=True, text=True, env=env, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    runs = list((outside / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "summary.json").is_file() and (runs[0] / "checkpoints" / "best.pt").is_file()
    assert json.loads((runs[0] / "summary.json").read_text())["env_steps"] >= 3000
    exported = subprocess.run([str(command), "export", "--assets", str(mine), "--checkpoint",
                               str(runs[0] / "checkpoints" / "best.pt"), "--out", "policy.onnx"],
                              cwd=outside, capture_output=True, text=True, env=env, timeout=300)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert re.search(r"my_arm", (outside / "policy.json").read_text())
