"""The live board: how workers show their arms to a viewer without slowing down.

A worker steps its arm about a hundred times faster than real time, so sampling its current pose would show a
different episode in every frame. Instead each worker publishes every episode it completes, step by step (joint
positions, end-effector position, and the task's draw data: `Task.draw_data`, the target or the obstacles, so the
board carries whatever the task needs drawn), and a viewer replays the newest one at the control rate: exactly how that
worker moved its arm, at a speed a person can follow.

The board is a small file, `live.bin` in the run directory, memory-mapped by the workers (writers) and by any
viewer (readers); one slot per worker. Recording a step costs about a microsecond and publishing an episode a
few; nothing is rendered in a worker. A sequence number guards each slot (odd while it is being written), so a
reader never uses a half-written episode. The launcher writes run-wide figures in the header.

Workers record only while somebody watches: a viewer writes "watched until" (now + `WATCH_SECONDS`) into the
header as it reads (`watch`), and a worker looks once per update (`watched`) and records the episodes that start
while the board is watched. Unwatched, recording every step's pose would be work for nobody (a measurable share of a worker's time: the
figure is in the docs' journal).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILENAME = "live.bin"
MAGIC = 0xA3C4  # 0xA3C3 until boards were watched; 0xA3C2 until they carried the task's draw data
HEADER = ["magic", "workers", "dof", "max_steps", "draw_size", "launcher_pid", "global_steps", "steps_per_second",
          "eval_success", "finished", "watched_until"]
SLOT_FIELDS = ["seq", "episode", "length", "episode_return", "success", "final_distance"]
RUN = HEADER.index("global_steps")
WATCHED = HEADER.index("watched_until")
# What a board's header may hold (a file whose header says otherwise is not a board a run wrote)
MAX_BOARD_WORKERS, MAX_BOARD_DOF, MAX_BOARD_STEPS, MAX_BOARD_DRAW = 1024, 128, 100_000, 10_000
WATCH_SECONDS = 2.0  # a viewer's mark keeps the workers recording this long (a viewer marks at every frame)
READ_TRIES, READ_WAIT_SECONDS = 20, 0.0005  # a reader's tries of a slot being written, and the wait between them


@dataclass(frozen=True)
class Episode:
    """One completed episode of one worker."""

    rank: int
    episode: int  # this worker's episode count
    episode_return: float
    final_distance_m: float
    success: bool
    joint_positions: np.ndarray  # (length, dof) rad or m, after each step
    ee_positions: np.ndarray  # (length, 3) m
    draw: np.ndarray  # (length, draw_size): `ArmEnv.draw_data` after each step (the task's, then the contact)

    @property
    def target(self) -> np.ndarray:
        """The goal's position (3,) m at the episode's end (every task's draw data starts with it)."""
        return self.draw[-1, :3]


class LiveBoard:
    def __init__(self, memmap: np.memmap):
        self._memmap = memmap
        self.array = np.asarray(memmap)  # a plain view: slicing a memmap object costs more on every step
        self.workers, self.dof, self.max_steps, self.draw_size = (int(v) for v in self.array[1:5])
        self.row = self.dof + 3 + self.draw_size
        self.slot_size = len(SLOT_FIELDS) + self.max_steps * self.row

    @staticmethod
    def path(run_dir: Path) -> Path:
        return Path(run_dir) / FILENAME

    @classmethod
    def create(cls, run_dir: Path, workers: int, dof: int, max_steps: int, draw_size: int) -> "LiveBoard":
        size = len(HEADER) + workers * (len(SLOT_FIELDS) + max_steps * (dof + 3 + draw_size))
        memmap = np.memmap(cls.path(run_dir), dtype=np.float64, mode="w+", shape=(size,))
        memmap[:6] = [MAGIC, workers, dof, max_steps, draw_size, os.getpid()]
        return cls(memmap)

    @classmethod
    def attach(cls, run_dir: Path) -> "LiveBoard | None":
        """The board of a run, or None if the run has none (or a file of that name that no run wrote)."""
        path = cls.path(run_dir)
        if path.is_symlink() or not path.is_file() or path.stat().st_size < len(HEADER) * 8:
            return None
        memmap = np.memmap(path, dtype=np.float64, mode="r+")
        header = memmap[:RUN]  # what `create` wrote (the run-wide figures after it may be NaN: no evaluation yet)
        if not (np.isfinite(header).all() and header[0] == MAGIC and (header[1:5] == np.round(header[1:5])).all()):
            return None
        workers, dof, max_steps, draw_size = (int(v) for v in header[1:5])
        sane = 1 <= workers <= MAX_BOARD_WORKERS and 1 <= dof <= MAX_BOARD_DOF and 1 <= max_steps <= MAX_BOARD_STEPS \
            and 0 <= draw_size <= MAX_BOARD_DRAW
        if not sane or memmap.size != len(HEADER) + workers * (len(SLOT_FIELDS) + max_steps * (dof + 3 + draw_size)):
            return None
        return cls(memmap)

    def _slot(self, rank: int) -> np.ndarray:
        start = len(HEADER) + rank * self.slot_size
        return self.array[start:start + self.slot_size]

    # ---- writers ------------------------------------------------------------------------------------------

    def watched(self) -> bool:
        """Whether a viewer has read the board in the last `WATCH_SECONDS` (workers record only then)."""
        return self.array[WATCHED] > time.time()

    def recorder(self) -> "EpisodeRecorder":
        return EpisodeRecorder(self.max_steps, self.row)

    def publish(self, rank: int, episode: int, episode_return: float, success: bool, final_distance: float,
                recorder: "EpisodeRecorder") -> None:
        slot, length = self._slot(rank), recorder.length
        seq = int(slot[0]) // 2 * 2 + 1  # odd: being written (a predecessor killed mid-write may have left it odd)
        slot[0] = seq
        slot[1:len(SLOT_FIELDS)] = [episode, length, episode_return, float(success), final_distance]
        slot[len(SLOT_FIELDS):len(SLOT_FIELDS) + length * self.row] = recorder.rows[:length].reshape(-1)
        slot[0] = seq + 1
        recorder.length = 0

    def publish_run(self, global_steps: int, steps_per_second: float, eval_success: float) -> None:
        self.array[RUN:RUN + 3] = [global_steps, steps_per_second, eval_success]

    def mark_finished(self) -> None:
        self.array[RUN + 3] = 1.0
        self._memmap.flush()

    # ---- readers ------------------------------------------------------------------------------------------

    def watch(self) -> None:
        """Tell the workers somebody is watching: they record the episodes that start in the next `WATCH_SECONDS`."""
        self.array[WATCHED] = time.time() + WATCH_SECONDS

    def latest(self, rank: int) -> Episode | None:
        """A consistent copy of the worker's newest complete episode, or None if it has none yet (or if its slot is
        still being written after `READ_TRIES` tries: a worker killed mid-write leaves it so until its replacement
        publishes)."""
        slot = self._slot(rank)
        for attempt in range(READ_TRIES):
            if attempt:  # a writer preempted mid-write (a loaded machine) finishes within a scheduler tick or two
                time.sleep(READ_WAIT_SECONDS)
            before = slot[0]
            copy = np.array(slot)
            if before > 0 and int(before) % 2 == 0 and slot[0] == before:
                if not 0 < copy[2] <= self.max_steps:  # not a length any worker wrote
                    return None
                length = int(copy[2])
                rows = copy[len(SLOT_FIELDS):len(SLOT_FIELDS) + length * self.row].reshape(length, self.row)
                dof = self.dof
                return Episode(rank, int(copy[1]), float(copy[3]), float(copy[5]), bool(copy[4]),
                               rows[:, :dof], rows[:, dof:dof + 3], rows[:, dof + 3:])
        return None

    def run_figures(self) -> dict:
        a = self.array
        return {"global_steps": int(a[RUN]), "steps_per_second": float(a[RUN + 1]),
                "eval_success": float(a[RUN + 2]), "finished": bool(a[RUN + 3])}

    def launcher_alive(self) -> bool:
        if self.array[RUN + 3]:
            return False
        try:
            os.kill(int(self.array[HEADER.index("launcher_pid")]), 0)
        except (ProcessLookupError, PermissionError, OverflowError, ValueError):
            return False
        return True


class EpisodeRecorder:
    """A worker's private buffer for the episode in progress."""

    def __init__(self, max_steps: int, row: int):
        self.rows = np.zeros((max_steps, row))
        self.length = 0

    def record(self, joint_positions: list[float], ee: list[float], draw: list[float]) -> None:
        if self.length < len(self.rows):
            self.rows[self.length] = joint_positions + ee + draw
            self.length += 1
