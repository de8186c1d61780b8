"""Where a training run's CPU goes (`scripts/profile_training.py`): py-spy samples every process of a real
`train_arm.py` run, and the samples are summed per role (workers, evaluator, launcher, start-up) and, inside the
workers, per function (inclusive: a function's share counts the functions it calls).

py-spy (a sampling profiler for Python, `requirements-bench.txt`) records with `--subprocesses --format raw`:
one line per distinct stack, "frame;frame;...;frame count", where each process's stack begins with a
"process PID:"command line"" frame and a child's stack continues its parent's. A worker is a process whose stack
holds `worker_loop` (or `RayWorker.run`), the evaluator one whose stack holds `evaluator_loop`; a child's samples
without either are its start-up (imports), and the first process's are the launcher's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from arm_a3c.errors import UserError

PROCESS_FRAME = re.compile(r'\s*process (\d+):')
ROLES = (("worker", ("worker_loop", "RayWorker.run")), ("evaluator", ("evaluator_loop",)))
# What a worker's sample is doing: the outermost of these frames below `train_worker` decides.
PARTS = (("environment (physics, observation, reward)", ("ArmEnv.step", "ArmEnv.reset")),
         ("acting (normalise, policy mean, noise)", ("Rollout.act", "Rollout.begin", "NumpyActorCritic.std")),
         ("learning and syncing (advantages, gradients, pull, push, statistics)",
          ("a3c_update", "SharedMemoryLink.pull", "SharedMemoryLink.push", "SharedMemoryLink.observe",
           "SharedMemoryLink.add_steps", "RayLink.pull", "RayLink.add_steps", "RayLink.observe", "RayLink.push")))


def frame_name(frame: str) -> str:
    """`function (file:line)` -> `function`."""
    return frame.split(" (")[0].strip()


def summarize(raw: str, top: int = 25) -> dict:
    """Sample shares per role and the workers' inclusive function shares, from py-spy's raw output."""
    roles: Counter = Counter()
    functions: Counter = Counter()
    parts: Counter = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        starts = [i for i, frame in enumerate(frames) if PROCESS_FRAME.match(frame)]
        if not starts:
            continue
        own = [frame_name(f) for f in frames[starts[-1] + 1:]]  # this process's own frames
        role = next((name for name, marks in ROLES if any(m in own for m in marks)),
                    "launcher" if len(starts) == 1 else "child start-up")
        roles[role] += n
        total += n
        if role == "worker":
            for name in set(own):
                functions[name] += n
            loop = own[own.index("train_worker") + 1:] if "train_worker" in own else []
            part = next((label for name in loop for label, names in PARTS if name in names), None)
            parts[part or ("start-up" if "train_worker" not in own else "the loop itself, reports, live board")] += n
    if not total:
        raise UserError("the profile holds no samples: did the training run?")
    workers = roles["worker"] or 1
    skip = {"<module>", "spawn_main", "_main", "BaseProcess._bootstrap", "BaseProcess.run", "with_environment",
            "worker_loop", "train_worker", "RayWorker.run", "main", "_serve_one", "Popen.__init__",
            "Popen._launch"}  # (the last ones: the fork server's)
    return {
        "samples": total,
        "roles": {role: round(n / total, 4) for role, n in roles.most_common()},
        "worker_parts": {part: round(n / workers, 4) for part, n in parts.most_common()},
        "worker_functions": {name: round(n / workers, 4) for name, n in functions.most_common()
                             if name not in skip and not name.startswith("spawn_main(")}
                            if roles["worker"] else {},
        "top": top,
    }


def format_profile(result: dict) -> str:
    lines = [f"{result['samples']:,} samples", "", "| process role | share of all samples |", "|---|---|"]
    lines += [f"| {role} | {share:.1%} |" for role, share in result["roles"].items()]
    lines += ["", "| inside the workers: part of the loop | share of the workers' samples |", "|---|---|"]
    lines += [f"| {part} | {share:.1%} |" for part, share in result["worker_parts"].items()]
    lines += ["", "| inside the workers: function (with what it calls) | share of the workers' samples |", "|---|---|"]
    lines += [f"| `{name}` | {share:.1%} |" for name, share in list(result["worker_functions"].items())[:result["top"]]]
    return "\n".join(lines)


def profile_training(train_args: list[str], out: Path, rate: int = 100) -> dict:
    """Run `train_arm.py train_args` under py-spy (all its processes, `rate` samples per second each), keep the
    raw samples in `out`, and summarize them."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise UserError("profiling needs py-spy: python -m pip install -r requirements-bench.txt")
    script = Path(__file__).resolve().parents[2] / "scripts" / "train_arm.py"
    command = [py_spy, "record", "--subprocesses", "--rate", str(rate), "--format", "raw", "--output", str(out),
               "--", sys.executable, str(script), *train_args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        raise UserError(f"py-spy failed (exit {done.returncode}): {(done.stderr or done.stdout)[-1500:]}\n"
                        f"(py-spy needs permission to read other processes' memory: in a container, run as root "
                        f"or with the SYS_PTRACE capability)")
    return summarize(out.read_text())
