"""Stopping safely: Ctrl-C on a real training saves a final checkpoint and summary within 5 seconds and leaves
no child process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from arm_a3c.checkpoint import load_checkpoint
from conftest import REPO

STOP_WITHIN_S = 5.0


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_saves_a_final_checkpoint_within_5_seconds_and_leaves_no_child(tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "train_arm.py"), "--robot", "light_arm", "--workers", "2",
         "--max-minutes", "5", "--target-success", "1.01", "--run-dir", str(run_dir)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while not (run_dir / "checkpoints" / "latest.pt").exists() or len(children_of(process.pid)) < 3:
        assert time.monotonic() < deadline and process.poll() is None, "training did not get going"
        time.sleep(0.5)
    time.sleep(3)
    children = children_of(process.pid)

    started = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    out, err = process.communicate(timeout=60)
    elapsed = time.monotonic() - started

    assert process.returncode == 0, err[-2000:]
    assert elapsed <= STOP_WITHIN_S, f"took {elapsed:.1f} s to stop"
    assert "Traceback" not in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "interrupted by the user"
    final = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert final["env_steps"] == summary["env_steps"] > 0
    assert not [pid for pid in children if alive(pid)], "child processes survived"
