"""The viewer's speed (`scripts/bench_viewer.py`): frames per second of its drawing, scene and HUD, replaying an
untrained policy off-screen."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pygame

from arm_a3c.a3c.checkpoint import save_untrained_checkpoint
from arm_a3c.viewer.sources import ReplaySource
from arm_a3c.viewer.window import Viewer, freeze_startup_objects, start_pygame


def measure_viewer_fps(robot: str, frames: int = 300, size: tuple[int, int] = (800, 600)) -> dict:
    """Frames per second of the viewer's drawing (scene and HUD) replaying `robot`, off-screen."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # off-screen: SDL reads it when the display starts
    with tempfile.TemporaryDirectory() as tmp:
        source = ReplaySource(save_untrained_checkpoint(robot, Path(tmp) / "policy.pt"))
    start_pygame()
    viewer = Viewer(source, None, "", size)
    freeze_startup_objects()  # as run_viewer does
    surface = pygame.Surface(size)
    viewer.draw(surface, 0.0)  # the first episode is simulated here, not timed
    start = time.perf_counter()
    for frame in range(frames):
        viewer.draw(surface, frame / 30.0)
    seconds = time.perf_counter() - start
    return {"robot": source.env.robot.name, "frames": frames, "fps": frames / seconds,
            "triangles": viewer.renderer.drawing.triangle_count, "size": list(size)}
