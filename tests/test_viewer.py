"""The pygame viewer, headless (SDL's dummy video driver): attached to a real training run it draws the arm
and the target from the worker's published episodes; it switches workers; closing it leaves the training
alone; it records GIFs; it replays checkpoints of both arms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
import pygame  # noqa: E402
from PIL import Image  # noqa: E402

from arm_a3c.live import LiveBoard  # noqa: E402
from arm_a3c.viewer import LiveSource, ReplaySource, Viewer, open_source  # noqa: E402
from conftest import REPO, run_script, write_untrained_checkpoint  # noqa: E402

LIVE_STEPS = 400_000  # about 70 s: the three live tests attach before it ends (view.py alone starts in ~8 s)


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    """A real training of the light arm with 2 workers, running in the background while the tests attach."""
    run_dir = tmp_path_factory.mktemp("live") / "run"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "train_arm.py"), "--robot", "light_arm", "--workers", "2",
         "--max-steps", str(LIVE_STEPS), "--target-success", "1.01", "--eval-every-steps", "100000",
         "--eval-episodes", "10", "--run-dir", str(run_dir)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    board = None
    while time.monotonic() < deadline:
        board = LiveBoard.attach(run_dir)
        if board and board.latest(0) and board.latest(1):
            break
        assert process.poll() is None, process.communicate()
        time.sleep(0.5)
    assert board and board.latest(1), "the workers published no episode within 2 minutes"
    yield run_dir, process
    process.kill()


def _is_orange(frame):
    r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
    return (r > 120) & (r > 1.6 * g) & (b < 80)


def test_live_viewer_draws_the_published_arm_and_target(live_run):
    run_dir, _ = live_run
    pygame.init()
    source, shown_run, _ = open_source(run_dir, None, 0, 0)
    assert isinstance(source, LiveSource) and shown_run == run_dir
    viewer = Viewer(source, run_dir)
    surface = pygame.Surface(viewer.size)
    viewer.draw(surface, now=0.0)
    episode = viewer.episode
    assert episode is not None and episode.rank == 0 and len(episode.joint_positions) == 50
    frame = pygame.surfarray.array3d(surface).transpose(1, 0, 2).astype(int)
    r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
    assert ((g > 120) & (g > 2 * r) & (g > 2 * b)).sum() > 30, "target not visible"
    assert _is_orange(frame).sum() > 100, "arm not visible"

    # The drawn pose is the published one: the scene equals a direct drawing of the episode's joint positions.
    reference = pygame.Surface(viewer.size)
    viewer.renderer.draw(reference, episode.joint_positions[0], episode.target, [episode.ee_positions[0]] * 2)
    ref = pygame.surfarray.array3d(reference).transpose(1, 0, 2).astype(int)
    below_hud = slice(200, viewer.size[1] - 40)
    assert np.array_equal(frame[below_hud], ref[below_hud])
    later = pygame.Surface(viewer.size)
    viewer.draw(later, now=1.0)  # 24 control steps later in the same episode
    moved = pygame.surfarray.array3d(later).transpose(1, 0, 2).astype(int)
    assert not np.array_equal(moved[below_hud], frame[below_hud]), "the arm did not move along its episode"


def test_number_keys_switch_to_another_workers_episodes(live_run):
    run_dir, _ = live_run
    pygame.init()
    source, _, _ = open_source(run_dir, None, 0, 0)
    viewer = Viewer(source, run_dir)
    surface = pygame.Surface(viewer.size)
    viewer.draw(surface, now=0.0)
    assert viewer.episode.rank == 0
    viewer.handle(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_2), surface)
    viewer.draw(surface, now=0.1)
    assert source.rank == 1 and viewer.episode.rank == 1


def test_a_viewer_that_closes_leaves_the_training_to_finish(live_run, tmp_path):
    run_dir, process = live_run
    gif = tmp_path / "live.gif"
    result = run_script("view.py", "--run", str(run_dir), "--record", str(gif), "--frames", "20")
    assert result.returncode == 0, result.stderr
    assert Image.open(gif).n_frames == 20
    assert process.poll() is None, "training stopped when the viewer closed"
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] >= LIVE_STEPS and "step budget" in summary["stop_reason"]

    # Once the run has finished, the viewer replays its best checkpoint and says so.
    source, _, note = open_source(run_dir, None, 0, 0)
    assert isinstance(source, ReplaySource) and "finished" in note


def test_replay_moves_the_target_on_key_and_click(tmp_path):
    pygame.init()
    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "policy.pt")
    source, _, _ = open_source(None, checkpoint, 0, 0)
    viewer = Viewer(source, None)
    surface = pygame.Surface(viewer.size)
    viewer.draw(surface, now=0.0)
    first = viewer.episode.target.copy()
    viewer.handle(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_t), surface)
    viewer.draw(surface, now=0.1)
    assert not np.allclose(viewer.episode.target, first), "t did not place a new target"

    click = (viewer.size[0] // 2 + 120, viewer.size[1] // 2 - 60)
    viewer.handle(pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=click), surface)
    viewer.handle(pygame.event.Event(pygame.MOUSEBUTTONUP, button=1, pos=click), surface)
    viewer.draw(surface, now=0.2)
    target = viewer.episode.target
    env = source.env
    assert np.linalg.norm(target - env.robot.base_position) <= env.reach_m, "a clicked target must be reachable"
    screen, _ = viewer.renderer.project(target, viewer.size)
    assert np.abs(screen - click).max() < 60, "the new target is not where the user clicked"


@pytest.mark.parametrize("robot", ["kuka_iiwa", "light_arm"])
def test_record_a_replayed_checkpoint_as_gif(robot, tmp_path):
    checkpoint = write_untrained_checkpoint(robot, tmp_path / "policy.pt")
    gif = tmp_path / "replay.gif"
    result = run_script("view.py", "--checkpoint", str(checkpoint), "--record", str(gif), "--frames", "45")
    assert result.returncode == 0, result.stderr
    image = Image.open(gif)
    assert image.n_frames == 45 and image.size == (800, 600)
    image.seek(44)
    frame = np.asarray(image.convert("RGB")).astype(int)
    assert (np.abs(frame - frame[-1, -1]).sum(axis=2) > 60).sum() > 2000, "the frame is mostly empty"


def test_view_errors_are_one_line(tmp_path):
    from test_cli import assert_user_error

    assert_user_error(run_script("view.py", "--run", str(tmp_path)), "not a training run directory")
    assert_user_error(run_script("view.py", "--checkpoint", str(tmp_path / "x.pt"), "--record", str(tmp_path / "a.gif")),
                      "not found")
    assert_user_error(run_script("view.py"), "--run", "--checkpoint")


def test_viewer_without_a_display_says_so_instead_of_drawing_nowhere(tmp_path):
    from test_cli import assert_user_error

    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "policy.pt")
    result = run_script("view.py", "--checkpoint", str(checkpoint), unset=("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"))
    assert "Traceback" not in result.stderr
    # SDL prints its own warning about XDG_RUNTIME_DIR on such machines; ours is the line that matters.
    result.stderr = "\n".join(l for l in result.stderr.splitlines() if l.startswith("error: there is no display"))
    assert_user_error(result, "no display", "--record OUT.gif")
