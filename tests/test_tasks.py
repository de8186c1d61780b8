"""Tasks (`arm_a3c.tasks`): each is solvable (its IK oracle succeeds), is a valid gymnasium environment under its
own ID that Stable-Baselines3 can train on, judges what it claims to judge, and travels with its checkpoints; the
reach task gives exactly the episodes it gave before tasks were a separate interface."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from helpers import assert_user_error, run_in_process, untrained_figures

import arm_a3c  # noqa: F401  (registers the gym IDs)
from arm_a3c.envs.arm_env import EnvConfig, make_env
from arm_a3c.envs.oracle import oracle_episodes
from arm_a3c.errors import UserError
from arm_a3c.tasks import TASKS, task_class

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "reach_episodes_e099cba.json"  # written by commit e099cba
# (the last commit before the Task interface): seeded resets and seeded random actions on three robots.

# Which robot each task's tests use: the two shipped robots, except pose, which the 3-joint light arm cannot do
# (it is refused, below); pose uses pybullet's xArm6 beside the KUKA.
# push: the KUKA and the Panda (the xArm6 is measured in docs/tasks.md; the 3-joint light arm is refused).
ROBOTS = {"reach": ("kuka_iiwa", "light_arm"), "pose": ("kuka_iiwa", "xarm6"), "track": ("kuka_iiwa", "light_arm"),
          "avoid": ("kuka_iiwa", "light_arm"), "push": ("kuka_iiwa", "panda")}
# push: issue 36 asks 0.90 of the Panda and one more arm; measured on seeds 1000-1099 (100 episodes, with
# self-collision, seeds the oracle was not tuned on): KUKA 0.99, xArm6 0.97, Panda 1.00 (docs/tasks.md).
ORACLE_SUCCESS = {"reach": 0.95, "pose": 0.95, "track": 0.95, "avoid": 0.90, "push": 0.9}
# Seeded episodes each oracle test plays: push's 100 as issue 36 asks; the others' solvability shows in 50 (docs/tasks.md
# has their 100-episode figures).
ORACLE_EPISODES = {"reach": 50, "pose": 50, "track": 50, "avoid": 50, "push": 100}


def test_every_task_is_registered_with_its_own_gym_id_and_a_file_of_its_own():
    assert set(ROBOTS) <= set(TASKS), "a task without tests"
    ids = [task.gym_id for task in TASKS.values()]
    assert len(set(ids)) == len(ids) and "ArmReach-v0" in ids
    for name, task in TASKS.items():
        assert gymnasium.spec(task.gym_id).kwargs["task"] == name
        assert (Path(arm_a3c.__file__).parent / "tasks" / f"{name}.py").is_file()


def test_each_tasks_settings_are_declared_once_in_its_file_and_reach_the_config_the_flags_and_the_checks():
    """A task's `settings` alone make its fields of EnvConfig and TrainConfig (same default), its flags (with its
    help line) and its checks (a value its rule refuses is refused by both doors, naming the rule); neither
    config's file names a task's setting."""
    import dataclasses

    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.cli.train import add_config_arguments
    from arm_a3c.envs.arm_env import EnvConfig

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    flags = {action.dest: action for action in parser._actions}
    package = Path(arm_a3c.__file__).parent
    common = (package / "a3c" / "config.py").read_text() + (package / "envs" / "arm_env.py").read_text()
    declared = [setting for task in TASKS.values() for setting in task.settings]
    assert {"orientation_tolerance_deg", "track_speed_fraction", "obstacles"} <= {s.name for s in declared}
    for task in TASKS.values():
        for setting in task.settings:
            assert setting.name not in common, f"{setting.name} is declared outside {task.name}'s file"
            env_field = {f.name: f for f in dataclasses.fields(EnvConfig)}[setting.name]
            train_field = {f.name: f for f in dataclasses.fields(TrainConfig)}[setting.name]
            assert env_field.default == train_field.default == setting.default
            assert flags[setting.name].help.startswith(setting.help)
            bad = -1 if setting.valid(0) else 0  # every rule here refuses 0 or a negative number
            assert not setting.valid(bad)
            with pytest.raises(UserError, match=f"--{setting.name.replace('_', '-')} must be "
                                                f"{re.escape(setting.requirement)}"):
                TrainConfig(**{setting.name: bad}).check()
            with pytest.raises(UserError, match=f"EnvConfig.{setting.name} must be"):
                EnvConfig(**{setting.name: bad})


def test_arm_reach_gives_the_episodes_it_gave_before_the_task_interface():
    """The same episodes; the observation has grown by its Jacobian part at its end since (2026-11-25). The URDF's
    speed limits and self-collision came later (each changes the physics a little, the simulation's speed clamp
    even below it, and self-collision the goals too): turned off, the episodes are bit for bit those of before."""
    golden = json.loads(GOLDEN.read_text())
    for key, want in golden.items():
        robot, seed = key.split("/")
        env = gymnasium.make("ArmReach-v0", robot=robot,
                             config=EnvConfig(urdf_speed_limits=False, self_collision=False,
                                              clearance_observation="off")).unwrapped
        rng = np.random.default_rng(int(seed) + 100)
        rows, rewards = [env.reset(seed=int(seed))[0]], []
        for _ in range(50):
            obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
            rows.append(obs)
            rewards.append(reward)
        env.close()
        before = len(want["obs"][0])
        assert len(rows[0]) == before + env.robot.dof
        np.testing.assert_allclose([r[:before] for r in (rows[0], rows[25], rows[-1])], want["obs"], atol=1e-6,
                                   err_msg=key)
        np.testing.assert_allclose(rewards, want["rewards"], atol=1e-9, err_msg=key)
        assert (truncated, terminated, info["is_success"]) == (want["trunc"], False, want["success"]), key


@pytest.mark.parametrize("task,robot", [(t, r) for t, robots in ROBOTS.items() for r in robots])
@pytest.mark.slow
def test_the_ik_oracle_solves_each_task(task, robot):
    """The goals are solvable. The oracle moves along straight lines in joint space, blind to the arm's own links
    and the floor, so it plays without self-collision; with it, its paths cross the floor or the arm on some arms
    (docs/tasks.md has both tables), a policy learns to go around."""
    env = make_env(robot=robot, task=task, self_collision=False)
    result = oracle_episodes(env, ORACLE_EPISODES[task], seed=0)
    env.close()
    assert result["success_rate"] >= ORACLE_SUCCESS[task], result
    for name in TASKS[task].metrics:
        assert f"mean_{name}" in result


def test_a_slow_arm_gets_goals_it_can_reach_in_an_episode_and_a_fast_one_keeps_every_goal(write_urdf):
    """Goals come from the joints' positions an episode's travel reaches (`GOAL_TRAVEL_FRACTION` of it) from home:
    an arm whose URDF limits its speed gets goals within that box, which the oracle meets, where goals drawn over
    the whole range are out of reach in most episodes. The named arms travel half a turn or more in an episode:
    their goals are drawn as before (the golden episodes above hold the KUKA's to the digit)."""
    from helpers import box_link, joint, robot_xml

    from arm_a3c.tasks.base import GOAL_TRAVEL_FRACTION

    slow = '<limit lower="-3" upper="3" effort="20" velocity="0.3"/>'
    urdf = write_urdf(robot_xml("slow", (
        joint("yaw", "revolute", "base", "upper", 0.1, axis="0 0 1", limit=slow) + box_link("upper", 0.3)
        + joint("elbow", "revolute", "upper", "forearm", 0.3, limit=slow) + box_link("forearm", 0.25)
        + joint("tip_mount", "fixed", "forearm", "tip", 0.25, limit="") + box_link("tip", 0.02))))
    for task in ("reach", "avoid"):
        env = make_env(robot=str(urdf), task=task, self_collision=False)
        robot, t = env.robot, env.task
        travel = GOAL_TRAVEL_FRACTION * env.config.episode_steps * np.asarray(env.max_joint_step)
        assert travel == pytest.approx([0.75 * 50 * 0.3 / env.config.control_hz] * 2)
        np.testing.assert_allclose(t.goal_low, np.maximum(robot.lower, robot.home - travel))
        np.testing.assert_allclose(t.goal_high, np.minimum(robot.upper, robot.home + travel))
        rng = np.random.default_rng(0)
        for _ in range(50):
            q, _ = t.sample_goal(rng)
            assert (q >= t.goal_low).all() and (q <= t.goal_high).all(), q
        met = oracle_episodes(env, 50, seed=1)["success_rate"]
        # the same goals drawn over the joints' whole range, as before: the oracle misses most
        t.goal_low = t.goal_high = None
        before = oracle_episodes(env, 50, seed=1)["success_rate"]
        env.close()
        assert met >= 0.8 and met >= before + 0.3, (task, met, before)
    for robot in ("kuka_iiwa", "panda", "xarm6", "light_arm"):
        env = make_env(robot=robot)
        assert env.task.goal_low is None and env.task.goal_high is None, robot
        env.close()


@pytest.mark.parametrize("task", sorted(ROBOTS))
def test_each_gym_id_passes_gymnasiums_checker_and_trains_with_sb3_ppo(task):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger

    env = gymnasium.make(TASKS[task].gym_id, robot=ROBOTS[task][0])
    check_env(env.unwrapped, skip_render_check=True)
    model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))  # no empty /tmp/SB3-DATE folder per test
    model.learn(256)  # two rollouts and two updates: SB3 collects from the environment and learns on what it gave
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action.astype(np.float32))
    env.close()


def test_pose_rejects_the_right_position_with_the_wrong_orientation():
    env = make_env(robot="kuka_iiwa", task="pose")
    task, robot = env.task, env.robot
    env.reset(seed=3)
    goal = task.goal_configuration.copy()
    robot.reset(goal)
    env._observe()
    _, _, info = task.judge([0.0] * robot.dof, 1)
    assert info["is_success"] and info["orientation_error_deg"] < 1.0
    turned = goal.copy()
    turned[-1] += math.pi / 2 if turned[-1] < 0 else -math.pi / 2  # joint 7 rolls the flange about its own axis
    robot.reset(turned)
    env._observe()
    _, _, info = task.judge([0.0] * robot.dof, 1)
    env.close()
    assert info["distance"] < 0.01, "the roll should not move the end-effector point"
    assert not info["is_success"] and info["orientation_error_deg"] == pytest.approx(90.0, abs=1.0)


def test_pose_controls_the_joints_reach_holds():
    reach, pose = make_env(robot="kuka_iiwa"), make_env(robot="kuka_iiwa", task="pose")
    held_by_reach = {j.name for j in reach.robot.joints if j.role == "held"}
    assert "lbr_iiwa_joint_7" in held_by_reach and "lbr_iiwa_joint_7" in {j.name for j in pose.robot.controlled}
    assert pose.robot.dof == reach.robot.dof + 1 and pose.obs_dim == 2 * pose.robot.dof + 3 + 21 + 2 * pose.robot.dof
    reach.close()
    pose.close()


def test_the_track_target_moves_smoothly_and_success_is_the_second_half_mean():
    env = make_env(robot="light_arm", task="track")
    env.reset(seed=0)
    path = env.task.path
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    assert steps.max() > 1e-3, "the target should move"
    assert steps.max() < env.config.success_radius_m, "and not jump"
    targets, distances = [], []
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(np.zeros(env.robot.dof))
        targets.append(env.target.copy())
        distances.append(info["distance"])
        done = terminated or truncated
    env.close()
    np.testing.assert_allclose(targets, path[1:])
    second_half = np.mean(distances[len(distances) // 2:])
    assert info["tracking_distance_m"] == pytest.approx(second_half)
    assert info["is_success"] == (second_half < env.config.success_radius_m)


def test_push_places_the_cube_and_its_goal_on_the_floor_where_the_arm_pushes_and_starts_the_hand_above_them():
    """300 seeded resets: the cube starts on the floor (resting on its face) and its goal lies on the floor, both
    in places the arm reaches with its hand pointing down, the goal within the set distance, and the place behind
    the cube where the hand comes down reachable too; each episode starts from the same pose above the work
    surface, and a seed gives the same episode."""
    from arm_a3c.tasks.push import RING_FRACTIONS, SECTOR_RAD

    env = make_env(robot="kuka_iiwa", task="push")
    task, robot, reach = env.task, env.robot, env.reach_m
    try:
        for seed in range(300):
            env.reset(seed=seed)
            cube, goal = task.object_position, task.target
            assert cube[2] == pytest.approx(task.side_m / 2, abs=1e-3) and goal[2] == pytest.approx(task.side_m / 2)
            direction = (goal[:2] - cube[:2]) / np.linalg.norm(goal[:2] - cube[:2])
            for point in (cube, goal, np.append(cube[:2] - direction * task.approach_m, 0.0)):
                assert task._cell(point) is not None, (seed, point)
                radius = np.linalg.norm(point[:2] - robot.base_position[:2]) / reach
                assert RING_FRACTIONS[0] - 0.03 <= radius <= RING_FRACTIONS[-1] + 0.03, (seed, radius)
                angle = math.atan2(point[1], point[0]) - task.workspace["heading"]
                assert abs(math.remainder(angle, 2 * math.pi)) <= SECTOR_RAD + 0.2, (seed, angle)
            longest = env.config.push_distance_fraction * reach
            assert 2 * env.config.success_radius_m - 1e-9 <= np.linalg.norm(goal - cube) <= longest + 1e-9
            np.testing.assert_allclose(env.joint_positions, task.start_q)
        first = env.reset(seed=7)[0]
        env.reset(seed=8)
        np.testing.assert_array_equal(env.reset(seed=7)[0], first)
    finally:
        env.close()


def test_push_rewards_the_cube_nearing_its_goal_and_counts_it_moved():
    """The cube pushed toward its goal by hand (teleported): the reward rises, success comes within the radius, and
    `object_moved` turns true once it has left its start."""
    env = make_env(robot="kuka_iiwa", task="push")
    try:
        env.reset(seed=3)
        task = env.task
        start, goal = task.object_position.copy(), task.target.copy()
        hold = np.zeros(env.robot.dof)
        _, still, _, _, info = env.step(hold)
        assert not info["object_moved"] and not info["is_success"]
        radius = env.config.success_radius_m
        assert np.linalg.norm(goal - start) >= 2 * radius - 1e-9  # every goal is that far
        away = start + (goal - start) * (1 - 1.5 * radius / np.linalg.norm(goal - start))  # 1.5 radii short of it
        task.reset_object(away)
        _, nearer, _, _, info = env.step(hold)
        assert info["object_moved"] and nearer > still and not info["is_success"]
        assert info["distance"] == pytest.approx(1.5 * radius, abs=0.01)
        task.reset_object(goal)
        _, there, _, _, info = env.step(hold)
        assert info["is_success"] and there > nearer + env.config.success_bonus / 2
    finally:
        env.close()


def test_an_unknown_task_or_one_the_robot_cannot_do_is_one_line(tmp_path):
    assert_user_error(run_in_process("train_arm.py", "--task", "juggle", "--run-dir", str(tmp_path / "a")),
                      "unknown task 'juggle'", "reach")
    assert_user_error(run_in_process("train_arm.py", "--task", "pose", "--robot", "light_arm",
                                     "--run-dir", str(tmp_path / "b")), "pose", "light_arm", "--task reach")
    assert_user_error(run_in_process("train_arm.py", "--task", "push", "--robot", "light_arm",
                                     "--run-dir", str(tmp_path / "c")), "--task push", "light_arm", "another task")
    with pytest.raises(UserError, match="unknown task"):
        task_class("juggle")
    with pytest.raises(UserError, match="unknown task"):
        make_env(robot="light_arm", task="juggle")


@pytest.mark.parametrize("task,robot", [("pose", "kuka_iiwa"), ("track", "light_arm"), ("avoid", "light_arm")])
def test_a_checkpoint_of_each_task_evaluates_and_replays_with_its_own_figures(tmp_path, task, robot):
    import os

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from arm_a3c.a3c.checkpoint import save_untrained_checkpoint
    from arm_a3c.a3c.evaluator import evaluate_checkpoint
    from arm_a3c.viewer.sources import ReplaySource

    path = save_untrained_checkpoint(robot, tmp_path / "untrained.pt", task=task)
    result = evaluate_checkpoint(path, episodes=3, seed=0)
    for name in TASKS[task].metrics:
        assert f"mean_{name}" in result
    source = ReplaySource(path)
    assert source.env.config.task == task
    episode = source.next_episode()
    assert episode.draw.shape == (len(episode.joint_positions), source.env.draw_size)
    shapes = source.env.task.shapes(episode.draw, 10, episode.ee_positions[10])
    assert shapes
    source.env.close()

    # and the other tasks' environments refuse it
    other = "reach"
    with pytest.raises(UserError, match=f"trained for the task '{task}'"):
        from arm_a3c.a3c.checkpoint import check_robot, load_checkpoint

        env = make_env(robot=robot, task=other)
        try:
            check_robot(path, load_checkpoint(path)["robot"], env)
        finally:
            env.close()


def test_avoid_puts_obstacles_in_the_way_and_a_contact_ends_the_episode_with_a_penalty():
    from arm_a3c.envs.oracle import IKReacher

    env = make_env(robot="light_arm", task="avoid")
    task, placed, collisions = env.task, 0, 0
    straight = IKReacher(env)  # straight for the target, blind to the obstacle
    first = {part["name"]: part["start"] for part in env.observation_layout()}["obstacle_1_centre_m"]
    for seed in range(30):
        obs, _ = env.reset(seed=seed)
        placed += bool(task.centres[0][2] > 0)
        assert obs[first:first + 3].tolist() == pytest.approx(task.centres[0].tolist()), "the obstacle is observed"
        done, length = False, 0
        while not done:
            _, reward, terminated, truncated, info = env.step(straight.act())
            length += 1
            done = terminated or truncated
        if terminated:
            collisions += 1
            assert length < env.config.episode_steps and truncated is False
            assert info["collisions"] == 1.0 and not info["is_success"]
            assert reward <= -env.config.collision_penalty
        else:
            assert info["collisions"] == 0.0
    env.close()
    assert placed >= 27, "obstacles placed in most episodes"
    assert collisions >= 10, "the straight motion should hit the obstacle often: it is in the way"


def test_avoid_counts_a_contact_seen_only_between_two_observations(monkeypatch):
    """A link that touches an obstacle in one physics substep and is clear again by the step's end collided."""
    env = make_env(robot="light_arm", task="avoid")
    env.reset(seed=0)
    assert env.config.substeps >= 4
    calls = []

    def touching_after_the_third_substep_only() -> bool:
        calls.append(len(calls))
        return len(calls) == 3

    monkeypatch.setattr(env.task, "_in_contact", touching_after_the_third_substep_only)
    _, reward, terminated, truncated, info = env.step(np.zeros(env.action_space.shape))
    env.close()
    assert terminated and not truncated and info["collisions"] == 1.0 and not info["is_success"]
    assert reward <= -env.config.collision_penalty
    assert len(calls) == 3, "checked after each substep until the contact, then no more"


def test_a_worker_on_avoid_ends_episodes_at_a_contact_without_bootstrapping_there(monkeypatch):
    """End to end: the worker's own loop on the avoid task, with obstacles big enough that its random early policy
    hits them. At a contact the value target is the step's reward alone; at a time limit it bootstraps."""
    import torch.multiprocessing as mp
    from helpers import Reports

    from arm_a3c.a3c import worker
    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.a3c.shared import SharedMemoryLink, build_shared

    seen = []
    real_gae = worker.compute_gae

    def recording_gae(rewards, values, next_values, terminated, episode_end, gamma, lam):
        advantages, returns = real_gae(rewards, values, next_values, terminated, episode_end, gamma, lam)
        seen.append((rewards.copy(), values.copy(), next_values.copy(), terminated.copy(), episode_end.copy(),
                     returns.copy()))
        return advantages, returns

    monkeypatch.setattr(worker, "compute_gae", recording_gae)
    cfg = TrainConfig(robot="light_arm", task="avoid", workers=1, n_steps=20, log_std_init=0.0,
                      obstacle_radius_fraction=0.2)
    probe = make_env(cfg)
    shared = build_shared(cfg, probe.obs_dim, probe.robot.dof, mp.get_context("spawn"))
    probe.close()
    shared.launcher_pid = __import__("os").getppid()
    reports = Reports(shared, reports=2)
    worker.train_worker(0, cfg, SharedMemoryLink(shared, 0, reports.send), seed=0, run_dir=None)

    contacts = truncations = 0
    for rewards, values, next_values, terminated, episode_end, returns in seen:  # rewards as scaled for learning
        for t in np.flatnonzero(terminated):
            contacts += 1
            assert rewards[t] <= -cfg.collision_penalty * cfg.reward_scale, "a contact step carries the penalty"
            assert returns[t] == pytest.approx(rewards[t], abs=1e-6), "no bootstrap at a contact"
            assert abs(cfg.gamma * next_values[t]) > 1e-4, "(a bootstrap would have changed it)"
        for t in np.flatnonzero(episode_end & ~terminated):
            truncations += 1
            assert returns[t] == pytest.approx(rewards[t] + cfg.gamma * next_values[t], abs=1e-5)
    assert contacts >= 3 and truncations >= 1, (contacts, truncations)
    finished = [e for event in reports.events if event[0] == "update" for e in event[4]]
    assert any(figures["collisions"] == 1.0 and length < 50 for _, length, _, figures in finished)



@pytest.mark.parametrize("task,robot,steps,bounds", [
    # track: untrained 0.35 m; seen after training: 0.05 m at 120k steps, 0.07-0.08 m at 60k, 0.12-0.13 m at 43k.
    ("track", "light_arm", 45_000, {"mean_tracking_distance_m": 0.6}),
    # avoid: untrained 0.56 m; seen after training: 0.21 m at 120k steps, and 0.37 m in a CI run whose own first
    # evaluation, a few thousand steps in, had already reached 0.44 m (and so failed when the test compared with
    # that); with the linear and clearance parts, 0.20 m at 80k; at 50k, 0.249 m and 0.222 m (seeds 0 and 1, 0.44 and
    # 0.39 of the untrained policy's).
    ("avoid", "light_arm", 50_000, {"mean_final_distance_m": 0.75}),
    # pose: untrained 0.75 m and 126 degrees; seen after training: 0.41-0.52 m and 65-82 degrees at 100k steps,
    # 0.29 m and 67 degrees at 80k, 0.34 m and 72 degrees at 72k, 0.56 m and 99 degrees at 34k; with the linear
    # part, 0.33 m and 97 degrees (0.79 of the untrained) at 48k: too near the bound to train less.
    ("pose", "kuka_iiwa", 64_000, {"mean_final_distance_m": 0.8, "mean_orientation_error_deg": 0.85}),
])
@pytest.mark.slow
def test_a_short_training_improves_the_tasks_own_figures_clearly(tmp_path, task, robot, steps, bounds):
    """A real training, as a user starts it: each of the task's own figures at the last evaluation is well below
    the untrained policy's on the same episodes."""
    from arm_a3c.a3c.metrics import read_metrics

    run_dir = tmp_path / "run"
    result = run_in_process("train_arm.py", "--task", task, "--robot", robot, "--workers", "2", "--max-steps",
                            str(steps), "--eval-every-steps", str(steps // 3), "--eval-episodes", "30",
                            "--target-success", "1.01", "--test-episodes", "0", "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = read_metrics(run_dir / "metrics.csv")
    assert len(rows) >= 3 and rows[-1]["env_steps"] >= steps
    untrained = untrained_figures(run_dir)
    for figure, factor in bounds.items():
        assert rows[-1][figure] < factor * untrained[figure], (figure, untrained[figure], [row[figure] for row in rows])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["task"] == task and set(bounds) <= set(summary)
