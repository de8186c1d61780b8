"""The pygame viewer, headless (SDL's dummy video driver): attached to the session's real training
(`conftest.shared_training`) it draws the arm and the target from the worker's published episodes; it switches
workers; closing it leaves the training alone; it records GIFs; it replays checkpoints of both arms."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
import pygame  # noqa: E402
from helpers import goal_pixels, run_in_process, run_script, write_untrained_checkpoint  # noqa: E402
from PIL import Image  # noqa: E402

from arm_a3c.viewer.sources import LiveSource, ReplaySource, open_source  # noqa: E402
from arm_a3c.viewer.window import Viewer  # noqa: E402


def _is_orange(frame):
    r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
    return (r > 120) & (r > 1.6 * g) & (b < 80)


def test_live_viewer_draws_the_published_arm_and_target(training_running):
    run_dir = training_running.run_dir
    pygame.init()
    source, shown_run, _ = open_source(run_dir, None, 0, 0)
    assert isinstance(source, LiveSource) and shown_run == run_dir
    viewer = Viewer(source, run_dir)
    surface = pygame.Surface(viewer.size)
    viewer.draw(surface, now=0.0)
    episode = viewer.episode
    # 50 steps, or fewer where the arm touched itself or the floor (a real terminal with self-collision on)
    assert episode is not None and episode.rank == 0 and 2 <= len(episode.joint_positions) <= 50
    frame = pygame.surfarray.array3d(surface).transpose(1, 0, 2).astype(int)
    assert goal_pixels(frame).sum() > 30, "target not visible"
    assert _is_orange(frame).sum() > 100, "arm not visible"

    # The drawn pose is the published one: the scene equals a direct drawing of the episode's joint positions.
    reference = pygame.Surface(viewer.size)
    ee = episode.ee_positions[0]
    viewer.renderer.draw(reference, episode.joint_positions[0], viewer.task.shapes(episode.draw, 0, ee), [ee] * 2)
    ref = pygame.surfarray.array3d(reference).transpose(1, 0, 2).astype(int)
    below_hud = slice(200, viewer.size[1] - 40)
    assert np.array_equal(frame[below_hud], ref[below_hud])
    later = pygame.Surface(viewer.size)
    viewer.draw(later, now=min(1.0, (len(episode.joint_positions) - 1) / 24))  # up to 24 control steps later, in it
    moved = pygame.surfarray.array3d(later).transpose(1, 0, 2).astype(int)
    assert not np.array_equal(moved[below_hud], frame[below_hud]), "the arm did not move along its episode"


def test_number_keys_switch_to_another_workers_episodes(training_running):
    run_dir = training_running.run_dir
    pygame.init()
    source, _, _ = open_source(run_dir, None, 0, 0)
    viewer = Viewer(source, run_dir)
    surface = pygame.Surface(viewer.size)
    viewer.draw(surface, now=0.0)
    assert viewer.episode.rank == 0
    viewer.handle(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_2), surface)
    viewer.draw(surface, now=0.1)
    assert source.rank == 1 and viewer.episode.rank == 1


@pytest.mark.slow
def test_a_viewer_that_closes_leaves_the_training_running(training_running, tmp_path):
    gif = tmp_path / "live.gif"
    result = run_script("view.py", "--run", str(training_running.run_dir), "--record", str(gif), "--frames", "20")
    assert result.returncode == 0, result.stderr
    assert Image.open(gif).n_frames == 20
    assert training_running.process.poll() is None, "training stopped when the viewer closed"


def test_a_finished_run_is_replayed_from_its_best_checkpoint(training_finished):
    assert "step budget" in training_finished.summary()["stop_reason"]
    source, _, note = open_source(training_finished.run_dir, None, 0, 0)
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
def test_a_goal_high_at_the_edge_of_the_reach_is_drawn_clear_of_the_heads_up_display(robot, tmp_path):
    pygame.init()
    source, _, _ = open_source(None, write_untrained_checkpoint(robot, tmp_path / "policy.pt"), 0, 0)
    env = source.env
    viewer = Viewer(source, None, note="a note: the heads-up display at its tallest")
    # High and to the camera's left, where the text is: 70 degrees above the horizon, at the edge of the reach
    left = -viewer.camera.eye_and_axes()[1][0]
    direction = np.cos(np.radians(70)) * left + [0.0, 0.0, np.sin(np.radians(70))]
    highest = env.robot.base_position + 0.98 * env.reach_m * direction
    source.place_target(highest)
    surface = pygame.Surface(viewer.size)
    viewer.draw(surface, now=0.0)
    np.testing.assert_allclose(viewer.episode.target, highest)
    frame = pygame.surfarray.array3d(surface).transpose(1, 0, 2).astype(int)
    assert goal_pixels(frame).sum() > 30, "the goal is hidden (under the heads-up display?)"


@pytest.mark.parametrize("robot", ["kuka_iiwa", "light_arm"])
def test_record_a_replayed_checkpoint_as_gif(robot, tmp_path):
    checkpoint = write_untrained_checkpoint(robot, tmp_path / "policy.pt")
    gif = tmp_path / "replay.gif"
    result = run_in_process("view.py", "--checkpoint", str(checkpoint), "--record", str(gif), "--frames", "45")
    assert result.returncode == 0, result.stderr
    image = Image.open(gif)
    assert image.n_frames == 45 and image.size == (800, 600)
    image.seek(44)
    frame = np.asarray(image.convert("RGB")).astype(int)
    assert (np.abs(frame - frame[-1, -1]).sum(axis=2) > 60).sum() > 2000, "the frame is mostly empty"


def test_record_a_replayed_checkpoint_as_mp4(tmp_path):
    import imageio.v3 as iio

    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "policy.pt")
    video = tmp_path / "replay.mp4"
    result = run_in_process("view.py", "--checkpoint", str(checkpoint), "--record", str(video), "--frames", "30")
    assert result.returncode == 0, result.stderr
    frames = iio.imread(video)  # decoded back by ffmpeg: a real H.264 video
    assert frames.shape == (30, 600, 800, 3)
    assert (np.abs(frames[-1].astype(int) - frames[-1, -1, -1]).sum(axis=2) > 60).sum() > 2000, "mostly empty"
    assert {p.name for p in tmp_path.iterdir()} == {"policy.pt", "replay.mp4"}, "no partial file left"


def test_view_errors_are_one_line(tmp_path):
    from helpers import assert_user_error

    assert_user_error(run_in_process("view.py", "--run", str(tmp_path)), "not a training run directory")
    assert_user_error(run_in_process("view.py", "--checkpoint", str(tmp_path / "x.pt"),
                                     "--record", str(tmp_path / "a.gif")), "not found")
    assert_user_error(run_in_process("view.py", "--checkpoint", str(tmp_path / "x.pt"),
                                     "--record", str(tmp_path / "a.avi")), ".gif or .mp4")


def test_view_py_typed_bare_watches_the_newest_run_or_says_how_to_start_one(tmp_path, monkeypatch):
    import json
    import time

    from helpers import assert_user_error

    from arm_a3c.a3c.config import TrainConfig

    monkeypatch.chdir(tmp_path)
    assert_user_error(run_in_process("view.py"), "no run under runs/", "python scripts/train_arm.py", "--run",
                      "--checkpoint")
    for age, name in ((100, "light_arm-older"), (10, "light_arm-newer")):  # both finished: best.pt is replayed
        run = tmp_path / "runs" / name
        write_untrained_checkpoint("light_arm", run / "checkpoints" / "best.pt")
        (run / "config.json").write_text(json.dumps(TrainConfig(robot="light_arm").to_dict()))
        os.utime(run / "config.json", (time.time() - age, time.time() - age))
    result = run_in_process("view.py", "--record", str(tmp_path / "a.gif"), "--frames", "2")
    assert result.returncode == 0, result.stderr
    assert "watching the newest run under runs/: runs/light_arm-newer" in result.stdout
    assert "replaying its best checkpoint runs/light_arm-newer/checkpoints/best.pt" in result.stdout


def test_viewer_without_a_display_says_so_instead_of_drawing_nowhere(tmp_path):
    from helpers import assert_user_error

    checkpoint = write_untrained_checkpoint("light_arm", tmp_path / "policy.pt")
    result = run_script("view.py", "--checkpoint", str(checkpoint), unset=("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"))
    assert "Traceback" not in result.stderr
    # SDL prints its own warning about XDG_RUNTIME_DIR on such machines; ours is the line that matters.
    result.stderr = "\n".join(l for l in result.stderr.splitlines() if l.startswith("error: there is no display"))
    assert_user_error(result, "no display", "--record OUT.gif")


def test_a_worker_records_its_episodes_for_the_live_board_only_while_a_viewer_watches(tmp_path):
    import torch.multiprocessing as mp

    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.a3c.live import LiveBoard
    from arm_a3c.a3c.shared import SharedMemoryLink, build_shared
    from arm_a3c.a3c.worker import UPDATE_REPORT_EVERY, train_worker
    from arm_a3c.envs.arm_env import ArmEnv

    cfg = TrainConfig(robot="light_arm", workers=1, n_steps=20)
    probe = ArmEnv("light_arm")
    shared = build_shared(cfg, probe.obs_dim, probe.robot.dof, mp.get_context("spawn"))
    board = LiveBoard.create(tmp_path, 1, probe.robot.dof, probe.config.episode_steps, probe.draw_size)
    episode_steps = probe.config.episode_steps
    probe.close()
    shared.launcher_pid = os.getppid()  # the worker runs in this process, whose parent stands in for the launcher
    shown = []  # what a reader of the board found at each of the worker's reports

    def send(event) -> None:
        if event[0] != "update":
            return
        shown.append(board.latest(0))
        if len(shown) == 2:
            board.watch()  # a viewer comes, after 2 x 400 steps (16 episodes) nobody watched
        elif len(shown) == 3:
            shared.request_stop()

    train_worker(0, cfg, SharedMemoryLink(shared, 0, send), seed=0, run_dir=tmp_path)
    assert shown[:2] == [None, None], "nothing is recorded while nobody watches"
    unwatched_episodes = 2 * UPDATE_REPORT_EVERY * cfg.n_steps // episode_steps
    episode = board.latest(0)
    assert episode is not None, "a watched worker publishes its episodes"
    assert episode.episode > unwatched_episodes and len(episode.joint_positions) == episode_steps, \
        "a whole episode, begun after the viewer came"
