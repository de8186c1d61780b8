"""The pygame viewer's window: watch a worker's arm while the shared policy improves, or replay a checkpoint
(the episodes come from `sources.py`). Drawing is `scene.SceneRenderer`: the robot's URDF visuals posed by
forward kinematics in the viewer's own PyBullet client. `show` opens it for the scripts and for
`train_arm.py --view`.
"""

from __future__ import annotations

import csv
import gc
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pygame

from arm_a3c.a3c.children import become_child
from arm_a3c.a3c.live import Episode
from arm_a3c.errors import UserError
from arm_a3c.files import unused_path
from arm_a3c.viewer.recording import check_record_path, recording
from arm_a3c.viewer.scene import OrbitCamera, RobotDrawing, SceneRenderer
from arm_a3c.viewer.sources import open_source

WINDOW_SIZE = (800, 600)
FRAMES_PER_SECOND = 30
HOLD_FINAL_POSE_S = 0.6  # pause on an episode's last pose before the next one
TRAIL_STEPS = 25  # end-effector positions drawn behind the arm
METRICS_RELOAD_S = 5.0
# The camera, in units of the robot's reach: goals high in the reach (the top of it is drawn at y = 135 of 600) stay
# below the heads-up display (about 100 pixels tall), and the base above the bottom line.
LOOK_AT_HEIGHT, CAMERA_DISTANCE = 0.45, 2.2
CURVE_RECT = (WINDOW_SIZE[0] - 230, 10, 220, 110)  # learning-curve inset: x, y, width, height
TEXT_RGB, DIM_RGB, PANEL_RGBA = (25, 30, 40), (90, 96, 110), (255, 255, 255, 190)
HELP_LINES = [
    "1-9  show worker 1-9 (live)", "space  pause", "drag / arrows  orbit", "wheel / + -  zoom",
    "click / t  new target (replay)", "s  screenshot", "h  this help", "q / Esc  close",
]


def read_curve(run_dir: Path | None) -> list[tuple[float, float]]:
    """(env steps, evaluator success rate) pairs from a run's metrics.csv, if there is one."""
    path = run_dir / "metrics.csv" if run_dir else None
    if not path or not path.is_file():
        return []
    with open(path, newline="") as f:
        return [(float(r["env_steps"]), float(r["success_rate"])) for r in csv.DictReader(f)]


class Viewer:
    """The window, its controls and its heads-up display."""

    def __init__(self, source, run_dir: Path | None, note: str = "", size: tuple[int, int] = WINDOW_SIZE):
        self.source, self.run_dir, self.note = source, run_dir, note
        env = source.env
        self.camera = OrbitCamera(look_at=env.robot.base_position + [0.0, 0.0, LOOK_AT_HEIGHT * env.reach_m],
                                  distance=CAMERA_DISTANCE * env.reach_m)
        self.renderer = SceneRenderer(RobotDrawing(env.robot), self.camera)
        self.env, self.task = env, env.task  # what the episodes' draw data means (`ArmEnv.draw_data`)
        self.control_hz = env.config.control_hz
        self.size = size
        self.episode: Episode | None = None
        self.episode_started = 0.0
        self.paused, self.show_help, self.recording = False, False, False
        self._position = 0.0
        self.curve: list[tuple[float, float]] = []
        self._curve_loaded = -math.inf
        self.font = self.small = None

    # ---- episode playback ---------------------------------------------------------------------------------

    def _playback_position(self, now: float) -> float | None:
        """Where in the current episode to show, in steps (fractional: the pose is interpolated between
        control steps, 24 per second, for a 30 fps picture), or None when the next episode is due."""
        if self.episode is None:
            return None
        elapsed = now - self.episode_started
        length = len(self.episode.joint_positions)
        if elapsed > length / self.control_hz + HOLD_FINAL_POSE_S:
            return None
        return min(elapsed * self.control_hz, length - 1.0)

    def advance(self, now: float) -> float:
        if self.paused and self.episode is not None:
            self.episode_started = now - self._position / self.control_hz  # freeze the picture
            return self._position
        position = self._playback_position(now)
        if position is None:
            episode = self.source.next_episode()
            if episode is not None and len(episode.joint_positions):
                self.episode, self.episode_started = episode, now
            elif self.episode is not None:
                self.episode_started = now  # nothing newer yet: replay the last one
            position = 0.0
        self._position = position
        return position

    # ---- drawing ------------------------------------------------------------------------------------------

    def draw(self, surface: pygame.Surface, now: float) -> None:
        if self.font is None:
            self.font, self.small = pygame.font.Font(None, 24), pygame.font.Font(None, 19)
        position = self.advance(now)
        episode = self.episode
        if episode is None:
            surface.fill((232, 236, 242))
            self._text(surface, ["waiting for the first episode ..."], (20, 20))
            return
        index, frac = int(position), position - int(position)
        following = min(index + 1, len(episode.joint_positions) - 1)
        joints = (1 - frac) * episode.joint_positions[index] + frac * episode.joint_positions[following]
        ee = (1 - frac) * episode.ee_positions[index] + frac * episode.ee_positions[following]
        trail = [*episode.ee_positions[max(0, index - TRAIL_STEPS):index + 1], ee]
        contact, _ = self.env.contact_shapes(episode.draw, index)
        self.renderer.draw(surface, joints, self.task.shapes(episode.draw, index, ee) + contact, trail)
        self._hud(surface, episode, index, ee, now)

    def _hud(self, surface: pygame.Surface, episode: Episode, index: int, ee: np.ndarray, now: float) -> None:
        figures = self.source.figures()
        rate = figures["steps_per_second"]
        success = figures["eval_success"]
        returned = episode.episode_return
        lines = [
            f"{self.source.label}: {'worker ' + str(episode.rank + 1) if self.source.label == 'live' else 'policy'}"
            f"   episode {episode.episode}   step {index + 1}/{len(episode.joint_positions)}",
            *([f"global steps {figures['global_steps']:,}" + (f"   {rate:,.0f} steps/s" if rate == rate else "")]
              if figures["global_steps"] is not None else []),  # (none for a deploy log)
            f"{self.task.name}   " + (f"episode return {returned:.2f}   " if returned == returned else "")
            + self.task.hud(episode.draw, index, ee) + self.env.contact_shapes(episode.draw, index)[1],
            figures.get("success_label", "evaluator success") + " "
            + (f"{success:.0%}" if success == success else "pending"),
        ]
        if self.note:
            lines.append(self.note)
        if self.recording:
            lines.append(f"time {now:.2f} s")
        if self.paused:
            lines.append("paused (space)")
        self._text(surface, lines, (12, 10))
        self._learning_curve(surface)
        if self.show_help:
            self._text(surface, HELP_LINES, (12, self.size[1] - 22 * len(HELP_LINES) - 12), small=True)
        else:
            self._text(surface, ["h: keys"], (12, self.size[1] - 28), small=True)

    def _text(self, surface: pygame.Surface, lines: list[str], origin: tuple[int, int], small: bool = False) -> None:
        font = self.small if small else self.font
        rendered = [font.render(line, True, TEXT_RGB) for line in lines]
        width = max(r.get_width() for r in rendered) + 16
        height = sum(r.get_height() + 3 for r in rendered) + 10
        panel = pygame.Surface((width, height), pygame.SRCALPHA)
        panel.fill(PANEL_RGBA)
        surface.blit(panel, origin)
        y = origin[1] + 6
        for r in rendered:
            surface.blit(r, (origin[0] + 8, y))
            y += r.get_height() + 3

    def _learning_curve(self, surface: pygame.Surface) -> None:
        now = time.monotonic()
        if now - self._curve_loaded > METRICS_RELOAD_S:
            self.curve, self._curve_loaded = read_curve(self.run_dir), now
        if len(self.curve) < 2:
            return
        x, y, w, h = CURVE_RECT
        panel = pygame.Surface((w, h), pygame.SRCALPHA)
        panel.fill(PANEL_RGBA)
        surface.blit(panel, (x, y))
        steps = [s for s, _ in self.curve]
        span = max(steps[-1] - steps[0], 1.0)
        points = [(x + 8 + (w - 16) * (s - steps[0]) / span, y + h - 22 - (h - 40) * rate) for s, rate in self.curve]
        pygame.draw.line(surface, DIM_RGB, (x + 8, y + h - 22), (x + w - 8, y + h - 22))
        pygame.draw.lines(surface, (30, 120, 220), False, points, 2)
        label = self.small.render(f"success rate vs steps ({steps[-1] / 1e6:.1f} M)", True, DIM_RGB)
        surface.blit(label, (x + 8, y + h - 18))

    # ---- input --------------------------------------------------------------------------------------------

    def handle(self, event: pygame.event.Event, surface: pygame.Surface) -> bool:
        """Apply one input event; False when the viewer should close."""
        if event.type == pygame.QUIT:
            return False
        if event.type == pygame.KEYDOWN:
            key = event.key
            if key in (pygame.K_q, pygame.K_ESCAPE):
                return False
            if pygame.K_1 <= key <= pygame.K_9:
                if self.source.select_worker(key - pygame.K_1):
                    self.episode = None
            elif key == pygame.K_SPACE:
                self.paused = not self.paused
            elif key == pygame.K_h:
                self.show_help = not self.show_help
            elif key == pygame.K_s:
                path = unused_path(Path(f"arm_a3c_{time.strftime('%Y%m%d-%H%M%S')}.png"))
                pygame.image.save(surface, str(path))
                print(f"saved {path}")
            elif key == pygame.K_t:
                self._new_target(None)
            elif key in (pygame.K_LEFT, pygame.K_RIGHT):
                self.camera.yaw += 5 if key == pygame.K_LEFT else -5
            elif key in (pygame.K_UP, pygame.K_DOWN):
                self.camera.pitch = float(np.clip(self.camera.pitch + (3 if key == pygame.K_UP else -3), -5, 85))
            elif key in (pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS):
                self.camera.distance *= 0.9
            elif key in (pygame.K_MINUS, pygame.K_KP_MINUS):
                self.camera.distance /= 0.9
        elif event.type == pygame.MOUSEWHEEL:
            self.camera.distance *= 0.9 ** event.y
        elif event.type == pygame.MOUSEMOTION and event.buttons[0]:
            self.camera.yaw -= event.rel[0] * 0.4
            self.camera.pitch = float(np.clip(self.camera.pitch + event.rel[1] * 0.3, -5, 85))
            self._dragged = True
        elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            self._dragged = False
        elif event.type == pygame.MOUSEBUTTONUP and event.button == 1 and not getattr(self, "_dragged", False):
            self._new_target(event.pos)
        return True

    def _new_target(self, pixel: tuple[int, int] | None) -> None:
        """Move the replay's target to the clicked point (on the vertical plane through the current target,
        facing the camera, pulled within reach) where the task takes a placed target; `t` (no pixel) starts the
        next episode, with a goal of its own."""
        env = self.source.env
        if pixel is None:
            if self.source.label == "replay":
                self.episode = None
            return
        if not env.task.placeable:
            return
        eye, ray = self.renderer.pixel_ray(pixel, self.size)
        axes = self.camera.eye_and_axes()[1]
        anchor = self.episode.target if self.episode else self.camera.look_at
        normal = np.array([axes[2][0], axes[2][1], 0.0])
        t = float((anchor - eye) @ normal / (ray @ normal)) if abs(ray @ normal) > 1e-6 else self.camera.distance
        target = eye + t * ray
        target[2] = max(target[2], env.config.min_target_height_m)
        offset = target - env.robot.base_position
        reach = 0.95 * env.reach_m
        if np.linalg.norm(offset) > reach:
            target = env.robot.base_position + offset * reach / np.linalg.norm(offset)
        if self.source.place_target(np.asarray(target)):
            self.episode = None


def start_pygame() -> None:
    """Start the parts of pygame the viewer uses, display and fonts. (`pygame.init()` also opens the sound
    device, and on a machine without one ALSA printed 8 lines of errors.)"""
    pygame.display.init()
    pygame.font.init()


def freeze_startup_objects() -> None:
    """Exclude the ~300,000 objects that torch, PyBullet and pygame create at start-up from garbage
    collection: a frame allocates thousands of small lists, and the full collections they trigger would
    otherwise traverse all of them, which tripled a frame's time."""
    gc.collect()
    gc.freeze()


def run_viewer(source, run_dir: Path | None, note: str, record: Path | None = None, frames: int = 0) -> int:
    """Open the window (or, with `record`, draw `frames` frames off-screen into a GIF). Returns frames drawn."""
    start_pygame()
    viewer = Viewer(source, run_dir, note)
    freeze_startup_objects()
    if record is not None:
        return record_animation(viewer, record, frames)
    screen = pygame.display.set_mode(viewer.size)
    if pygame.display.get_driver() in ("offscreen", "dummy") and "SDL_VIDEODRIVER" not in os.environ:
        # SDL falls back to drawing nowhere when there is no display: say so instead of showing nothing.
        pygame.quit()
        raise UserError("there is no display to open the viewer on; run it where you have one, or record an "
                        "animation with --record OUT.gif")
    pygame.display.set_caption(f"arm-a3c: {source.env.robot.name}")
    clock, drawn, running = pygame.time.Clock(), 0, True
    while running:
        for event in pygame.event.get():
            running = running and viewer.handle(event, screen)
        viewer.draw(screen, time.monotonic())
        pygame.display.flip()
        drawn += 1
        clock.tick(FRAMES_PER_SECOND)
    pygame.quit()
    return drawn


RECORD_PROGRESS_SECONDS = 5.0  # a long recording says how far it has got this often


def record_animation(viewer: Viewer, path: Path, frames: int) -> int:
    """Draw `frames` frames at the viewer's frame rate on a simulated clock, streaming them into a GIF (.gif) or
    an H.264 video (.mp4) as they are drawn (`viewer.recording`; `show` has checked `path`). Ctrl-C or SIGTERM
    ends it early, keeping the frames written so far. Returns the frames written."""
    import signal

    surface = pygame.Surface(viewer.size)
    viewer.recording = True  # the HUD shows the animation's clock
    stop: list[str] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: stop.append(signal.Signals(signum).name))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    clock = 0.0
    deadline = time.monotonic() + 30.0  # a live run may need a moment to finish its first episode
    last_line = time.monotonic()
    try:
        with recording(path, viewer.size, FRAMES_PER_SECOND) as stream:
            while stream.frames < frames and not stop:
                viewer.draw(surface, clock)
                if viewer.episode is None:
                    if time.monotonic() > deadline:
                        raise UserError("no episode to record: the run has not completed one within 30 s")
                    time.sleep(0.1)
                    continue
                stream.add(pygame.image.tobytes(surface, "RGB"))
                clock += 1.0 / FRAMES_PER_SECOND
                if time.monotonic() - last_line >= RECORD_PROGRESS_SECONDS:
                    last_line = time.monotonic()
                    print(f"recording {path}: {stream.frames:,} of {frames:,} frames", file=sys.stderr, flush=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stop:
        print(f"recording stopped by {stop[0]} after {stream.frames:,} of {frames:,} frames", file=sys.stderr,
              flush=True)
    return stream.frames


def show(run: Path | None, checkpoint: Path | None, worker: int, seed: int, record: Path | None = None,
         frames: int = 0, urdf: str | None = None, deploy_log: Path | None = None) -> int:
    """Open a viewer on a run, a checkpoint or a deploy log (`view.py`), or record `frames` frames of it into a GIF
    or MP4; `urdf`: the robot's file, if it has moved since the run."""
    if record is not None:
        check_record_path(record)  # before the robot and the policy load
    source, run_dir, note = open_source(run, checkpoint, worker, seed, urdf, deploy_log)
    try:
        drawn = run_viewer(source, run_dir, note, record, frames)
    except pygame.error as err:
        raise UserError(f"cannot open a window ({err}); on a machine without a display use --record OUT.gif or OUT.mp4") from None
    if record is not None:
        print(f"wrote {record} ({drawn} frames)" if drawn else f"nothing recorded: {record} was not written")
    return 0


def view_process(run_dir: Path) -> None:
    """`train_arm.py --view`: the viewer on worker 1 of the run, in a process of its own beside the training."""
    become_child("a3c-viewer")
    try:
        show(run_dir, None, 0, 0)
    except UserError as err:
        print(f"viewer: {err}", file=sys.stderr)
