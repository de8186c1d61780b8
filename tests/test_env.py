"""ArmReach-v0: the gymnasium contract, reachable targets, seeding, time-limit truncation, and solvability."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import arm_a3c  # noqa: F401  (registers ArmReach-v0)
from arm_a3c.envs.arm_env import ArmEnv, ArmReachEnv, EnvConfig, make_env
from arm_a3c.envs.episodes import run_episodes
from arm_a3c.envs.oracle import IKReacher, oracle_success_rate
from arm_a3c.errors import SettingError
from arm_a3c.sim.client import pybullet as pb
from arm_a3c.sim.assets import available_robots

ROBOTS = list(available_robots())


def test_assets_hold_the_default_and_the_light_arm():
    assert {"kuka_iiwa", "light_arm"} <= set(ROBOTS)


# Joint velocities have no bound, so the observation space is honestly unbounded; check_env warns about that.
@pytest.mark.filterwarnings("ignore:.*Box observation space m..imum value is .*infinity")
@pytest.mark.parametrize("robot", ROBOTS)
def test_every_asset_passes_gymnasium_check_env(robot):
    env = gymnasium.make("ArmReach-v0", robot=robot, render_mode="rgb_array")
    check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.slow
def test_an_episode_depends_only_on_its_seed_not_on_what_ran_before(robot):
    # Before target sampling restored the home state first, 6 of 300 such pairs differed in the 8th digit on
    # the KUKA (its held flange joint, left where the previous episode put it, entered the target's kinematics).
    env = ArmReachEnv(robot)
    rng = np.random.default_rng(0)
    for trial in range(150):
        env.reset(seed=int(rng.integers(1000)))
        for _ in range(int(rng.integers(0, 60))):
            env.step(rng.uniform(-1, 1, env.robot.dof))
        action = rng.uniform(-1, 1, env.robot.dof)
        first = env.reset(seed=123)[0], *env.step(action)[:2]
        again = env.reset(seed=123)[0], *env.step(action)[:2]
        assert all(np.array_equal(a, b) for a, b in zip(first, again)), f"trial {trial} differs"
    env.close()


@pytest.mark.parametrize("robot", ROBOTS)
def test_targets_are_reachable_inside_the_estimated_reach_and_above_the_floor(robot):
    env = ArmReachEnv(robot)
    cfg = env.config
    for seed in range(50):
        env.reset(seed=seed)
        target = env.target
        assert np.linalg.norm(target - env.robot.base_position) <= env.reach_m * 1.02
        assert target[2] >= cfg.min_target_height_m
        assert np.linalg.norm(target[:2]) >= cfg.min_target_radius_fraction * env.reach_m
        assert np.all(target >= env.workspace_min - 0.05) and np.all(target <= env.workspace_max + 0.05)
    env.close()


@pytest.mark.parametrize("robot", ["light_arm", "kuka_iiwa"])
def test_scripted_ik_controller_solves_the_task(robot):
    """If an oracle could not reach the targets in time, no policy could learn to."""
    env = ArmReachEnv(robot)
    success_rate, mean_distance = oracle_success_rate(env, episodes=40, seed=1000)
    env.close()
    assert success_rate >= 0.95, f"IK oracle success {success_rate:.2f} on {robot}"
    assert mean_distance < env.config.success_radius_m


def test_episodes_that_reach_but_do_not_stay_are_counted_apart():
    env = ArmReachEnv("light_arm")
    oracle = IKReacher(env)
    staying = run_episodes(env, lambda obs: oracle.act(), 10, seed=1000)
    steps = iter(range(10**6))
    leaving = run_episodes(env, lambda obs: oracle.act() if next(steps) % 50 < 40 else -np.ones(env.robot.dof),
                           10, seed=1000)  # the oracle for 40 steps, then every joint at full speed one way
    env.close()
    assert staying["reached_rate"] == staying["success_rate"] >= 0.9
    assert leaving["reached_rate"] == staying["reached_rate"] and leaving["success_rate"] <= 0.3


class SeededOutcomes(gymnasium.Env):
    """One-step episodes whose success is fixed by their seed: the evaluator's screen against known outcomes."""

    observation_space = gymnasium.spaces.Box(-1, 1, (1,))
    action_space = gymnasium.spaces.Box(-1, 1, (1,))

    def __init__(self, succeeds: set[int]):
        self.succeeds, self.played = succeeds, []

    def reset(self, seed=None, options=None):
        self.seed_now = seed
        self.played.append(seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 0.0, True, False, {"is_success": self.seed_now in self.succeeds, "distance": 0.0}


@pytest.mark.parametrize("target", [0.95, 0.8, 0.5])
def test_a_screened_out_evaluation_could_not_have_reached_the_target_and_says_how_many_it_played(target):
    from arm_a3c.a3c.config import TrainConfig

    cfg = TrainConfig(target_success=target, eval_episodes=40, eval_screen_episodes=10)
    screen = cfg.eval_screen()
    rng = np.random.default_rng(0)
    screened = full = 0
    for trial in range(300):
        rate = rng.uniform(0.0, 1.0)
        succeeds = {s for s in range(100, 140) if rng.uniform() < rate}
        env = SeededOutcomes(succeeds)
        result = run_episodes(env, lambda obs: np.zeros(1), 40, 100, screen=screen)
        whole = len(succeeds) / 40
        played = result["episodes"]
        if played < 40:  # screened out: its figures are those of the episodes it played
            screened += 1
            failed = [s for s in range(100, 100 + played) if s not in succeeds]
            assert played >= 10 and env.played == list(range(100, 100 + played))
            assert result["success_rate"] == (played - len(failed)) / played
            assert len(failed) == screen[1] + 1 or played == 10, "it stops at the first failure too many, not later"
            assert whole < target, "a screened-out evaluation would have reached the target"
        else:
            full += 1
            assert result["episodes"] == 40 and result["success_rate"] == whole
            failed_before_last = sum(s not in succeeds for s in range(100, 139))
            assert failed_before_last <= screen[1], "it played on after it could no longer reach the target"
    assert full > 10 and screened > 30  # both branches were taken


def test_the_evaluators_screen_allows_the_targets_failures_and_is_off_without_a_target():
    from arm_a3c.a3c.config import TrainConfig

    assert TrainConfig().eval_screen() == (25, 5)  # 95% of 100 episodes: at most 5 failures
    assert TrainConfig(target_success=0.8, eval_episodes=50, eval_screen_episodes=10).eval_screen() == (10, 10)
    assert TrainConfig(target_success=1.01).eval_screen() is None  # never stops: full evaluations for best.pt
    assert TrainConfig(eval_screen_episodes=0).eval_screen() is None
    assert TrainConfig(eval_episodes=20).eval_screen() is None  # the screen would be the whole evaluation
    # A run saved before the screen existed resumes without one.
    assert TrainConfig.from_dict({"robot": "light_arm"}).eval_screen() is None


def test_a_policy_that_never_reaches_is_screened_out_on_a_real_arm_and_the_oracle_is_not():
    env = ArmReachEnv("light_arm")
    oracle = IKReacher(env)
    still = run_episodes(env, lambda obs: np.zeros(env.robot.dof), 12, seed=1000, screen=(4, 1))
    solved = run_episodes(env, lambda obs: oracle.act(), 12, seed=1000, screen=(4, 1))
    env.close()
    assert still["episodes"] == 4 and still["success_rate"] == 0.0
    assert solved["episodes"] == 12 and solved["success_rate"] >= 0.9


def _rollout(env: ArmReachEnv, seed: int, steps: int = 30) -> np.ndarray:
    actions = np.random.default_rng(123).uniform(-1, 1, (steps, env.robot.dof))
    obs, _ = env.reset(seed=seed)
    trajectory = [obs]
    for action in actions:
        trajectory.append(env.step(action)[0])
    return np.array(trajectory)


@pytest.mark.parametrize("robot", ["light_arm", "kuka_iiwa"])
def test_reset_with_a_seed_reproduces_the_episode_exactly(robot):
    env, other = ArmReachEnv(robot), ArmReachEnv(robot)
    first = _rollout(env, seed=7)
    _rollout(env, seed=8)  # an episode in between must not leak into the next
    assert np.array_equal(_rollout(env, seed=7), first)
    assert np.array_equal(_rollout(other, seed=7), first)
    assert not np.array_equal(_rollout(other, seed=8)[0], first[0]), "different seeds gave the same target"
    env.close()
    other.close()


def test_episode_ends_by_time_limit_as_truncation_with_distance_and_success_info():
    cfg = EnvConfig(episode_steps=12)
    env = ArmReachEnv("light_arm", config=cfg)
    obs, info = env.reset(seed=0)
    assert set(info) >= {"is_success", "distance"}
    for step in range(1, cfg.episode_steps + 1):
        obs, reward, terminated, truncated, info = env.step(np.zeros(env.robot.dof))
        assert not terminated, "reaching has no terminal state; the episode only ends by its time limit"
        assert truncated == (step == cfg.episode_steps)
    assert isinstance(info["is_success"], bool)
    assert info["distance"] == pytest.approx(np.linalg.norm(env.robot.ee_position() - env.target))
    env.close()


def test_observation_layout_and_reward_follow_the_distance():
    env = ArmReachEnv("light_arm")
    dof = env.robot.dof
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and obs.shape == (3 * dof + 9,)  # the last dof: J^T (target - ee)
    ee, target = obs[2 * dof:2 * dof + 3], obs[2 * dof + 3:2 * dof + 6]
    np.testing.assert_allclose(target, env.target, atol=1e-6)
    np.testing.assert_allclose(obs[2 * dof + 6:2 * dof + 9], target - ee, atol=1e-6)
    np.testing.assert_allclose(ee, env.robot.ee_position(), atol=1e-6)
    assert np.all(np.abs(obs[:dof]) <= 1.0 + 1e-6), "joint positions are scaled by their limits"

    # Put the target on the end effector: the reward jumps by the success bonus and success is reported.
    env.set_target(env.robot.ee_position())
    _, near_reward, _, _, near_info = env.step(np.zeros(dof))
    env.set_target(env.robot.ee_position() + np.array([0.3, 0.0, 0.0]))
    _, far_reward, _, _, far_info = env.step(np.zeros(dof))
    assert near_info["is_success"] and not far_info["is_success"]
    assert near_reward > far_reward + env.config.success_bonus
    env.close()


@pytest.mark.parametrize("action, message", [
    ([np.nan, 0.0, 0.0], "not finite"),
    ([np.inf, 0.0, 0.0], "not finite"),
    ([0.1, 0.2, 0.3, 0.4], r"shape \(4,\): expected \(3,\)"),  # was cut to 3 values without a word
    ([0.1, 0.2], r"shape \(2,\): expected \(3,\)"),
    ([[0.1, 0.2, 0.3]], r"shape \(1, 3\): expected \(3,\)"),
    (0.5, r"shape \(\): expected \(3,\)"),
    ([0.1 + 1j, 0.0, 0.0], r"must be 3 numbers in \[-1, 1\], not array"),  # was taken, imaginary part dropped
])
def test_an_action_the_arm_cannot_take_is_a_value_error_naming_the_expected_shape(action, message):
    env = ArmReachEnv("light_arm")
    env.reset(seed=0)
    try:
        with pytest.raises(ValueError, match=message):
            env.step(np.array(action))
        obs, *_ = env.step(np.zeros(3))  # the refused action left the episode as it was
        assert np.isfinite(obs).all()
    finally:
        env.close()


@pytest.mark.parametrize("target", [(1e300, 0, 0), "x", (0.1, float("nan"), 0.2), (0.1, 0.2), [[0.1, 0.2, 0.3]]])
def test_a_target_the_arm_cannot_have_is_a_value_error_naming_what_is_expected(target):
    """Set or given to reset: 1e300 overflowed the distance (OverflowError), and 'x' said only 'could not convert
    string to float'."""
    env = ArmReachEnv("light_arm")
    try:
        env.reset(seed=0)
        with pytest.raises(ValueError, match=r"a target must be 3 finite numbers \(x, y, z in m"):
            env.set_target(target)
        obs, *_ = env.step(np.zeros(3))  # the refused target left the episode as it was
        assert np.isfinite(obs).all()
        with pytest.raises(ValueError, match=r"options\['target'\] must be 3 finite numbers \(x, y, z in m"):
            env.reset(options={"target": target})
    finally:
        env.close()


@pytest.mark.parametrize("field, value", [
    ("substeps", 0), ("episode_steps", 0), ("substeps", 2.5), ("success_radius_m", -0.05),
    ("obstacle_radius_fraction", -0.1), ("action_cost", float("nan")), ("max_joint_step_rad", float("inf")),
    ("obstacles", 0), ("track_speed_fraction", 0.0), ("jacobian_observation", "yes"),
])
def test_env_config_refuses_a_field_out_of_its_range_when_built(field, value):
    with pytest.raises(ValueError, match=f"EnvConfig.{field} must be"):
        EnvConfig(**{field: value})


def test_env_config_bounds_a_joint_step_by_a_half_turn_or_a_metre():
    """1e300 rad per control step was accepted."""
    with pytest.raises(ValueError, match=r"max_joint_step_rad must be above 0 and at most pi \(3.1416\) rad"):
        EnvConfig(max_joint_step_rad=1e300)
    with pytest.raises(ValueError, match="max_joint_step_m must be above 0 and at most 1 m"):
        EnvConfig(max_joint_step_m=2.0)
    assert EnvConfig(max_joint_step_rad=np.pi, max_joint_step_m=1.0).max_joint_step_rad == np.pi


def test_an_env_made_directly_refuses_a_config_that_is_not_one_and_a_step_before_reset():
    """ArmEnv(config='reach') ended in AttributeError; a step before reset() ran (gymnasium.make's wrapper refuses
    it, the class alone did not)."""
    with pytest.raises(ValueError, match="config must be an EnvConfig .* not 'reach'; name a task with task="):
        ArmEnv("light_arm", config="reach")
    env = ArmEnv("light_arm")
    try:
        with pytest.raises(gymnasium.error.ResetNeeded, match=r"before calling env.reset\(\)"):
            env.step(np.zeros(3))
        env.reset(seed=0)
        env.step(np.zeros(3))
    finally:
        env.close()


def test_render_shows_the_arm_and_the_green_target():
    env = ArmReachEnv("light_arm", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    # Hue tests, not exact colours: shading darkens every surface. The floor is grey-white and pale blue.
    green = (g > 90) & (g > 2 * r) & (g > 2 * b)
    orange = (r > 100) & (r > 1.6 * g) & (b < 60)
    assert green.sum() > 20, "target marker not visible"
    assert orange.sum() > 50, "arm's orange upper arm not visible"
    env.close()


# ---- the URDF's speed limits ----------------------------------------------------------------------------------

def bang_bang_speed_fractions(env: ArmEnv, episodes: int = 6) -> list[float]:
    """Each episode's largest joint speed as a fraction of its URDF limit, under actions of +-1 picked at random
    (the hardest a policy can drive the joints)."""
    rng = np.random.default_rng(0)
    fractions = []
    for episode in range(episodes):
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(np.sign(rng.uniform(-1, 1, env.action_space.shape)))
            done = terminated or truncated
        fractions.append(info["speed_fraction"])
    return fractions


@pytest.mark.parametrize("robot", ["panda", "xarm6"])
def test_no_joint_moves_faster_than_its_urdf_limit_under_bang_bang_actions(robot):
    """Measured at every control step; without the limits the same actions drive the Panda's joints to 2.7 times
    their limit and the xArm6's to 1.1 times. Its links pass through each other here: a self-contact would end
    most of the xArm6's episodes before its joints are at full speed."""
    limited = ArmReachEnv(robot, config=EnvConfig(self_collision=False))
    free = ArmReachEnv(robot, config=EnvConfig(urdf_speed_limits=False, self_collision=False))
    try:
        assert max(bang_bang_speed_fractions(limited)) <= 1.0 + 1e-6
        assert max(bang_bang_speed_fractions(free)) > 1.05  # (the measurement sees a joint over its limit)
    finally:
        limited.close()
        free.close()


def test_a_joints_target_moves_at_most_its_urdf_limit_per_control_period_and_one_without_a_limit_is_named(
        write_urdf):
    from helpers import box_link, joint, robot_xml

    urdf = write_urdf(robot_xml("speeds", (
        joint("yaw", "revolute", "base", "upper", 0.1, axis="0 0 1",
              limit='<limit lower="-3" upper="3" effort="20" velocity="0.6"/>')
        + box_link("upper", 0.3)
        + joint("elbow", "revolute", "upper", "forearm", 0.3, limit='<limit lower="-1.5" upper="1.5" effort="20"/>')
        + box_link("forearm", 0.25)
        + joint("tip_mount", "fixed", "forearm", "tip", 0.25, limit="") + box_link("tip", 0.02))))
    env = ArmReachEnv(str(urdf))
    try:
        hz = env.config.control_hz
        # the yaw's own limit sets its step and the arm's clamp, which holds the elbow (no limit of its own) too
        assert env.max_joint_step == [pytest.approx(0.6 / hz)] * 2 and env.speeds.sources == ["URDF", "clamp"]
        assert env.speeds.clamp == 0.6
        (line,) = env.speed_notes()
        assert line.startswith("no velocity limit in the URDF for elbow at 0.6 rad/s") and "yaw" not in line
        env.reset(seed=0)
        before = env.joint_positions[0]
        env.step(np.array([1.0, 0.0]))
        assert abs(env.robot.q_target[0] - before) == pytest.approx(0.6 / hz)  # the target's step, at the limit
        for _ in range(10):  # driven one way: its servo trails the targets' pace (0.41 of it, measured)
            _, _, _, _, info = env.step(np.array([1.0, 0.0]))
        assert 0.2 < info["speed_fraction"] <= 1.0 + 1e-6
        assert max(bang_bang_speed_fractions(env, episodes=3)) <= 1.0 + 1e-6
    finally:
        env.close()
    off = ArmReachEnv(str(urdf), config=EnvConfig(urdf_speed_limits=False))
    assert off.max_joint_step == [off.config.max_joint_step_rad] * 2 and off.speeds.clamp is None
    assert off.speed_notes() == []  # the user turned the limits off: nothing to say of them
    off.close()


def test_every_evaluation_reports_the_largest_joint_speed_and_the_share_of_episodes_over_a_limit():
    env = ArmReachEnv("panda", config=EnvConfig(urdf_speed_limits=False))
    try:
        result = run_episodes(env, lambda obs: np.sign(np.sin(np.arange(env.robot.dof) + obs[0] * 50)), 3, 0)
    finally:
        env.close()
    assert result["max_speed_fraction"] > 1.0 and 0 < result["over_speed_rate"] <= 1.0


# ---- contacts with itself and the floor -------------------------------------------------------------------------

FOLD_BACK = '<limit lower="-3.1" upper="3.1" effort="50" velocity="6"/>'


def hand_arm(write_urdf, sidecar: str | None = None, sleeve: bool = False):
    """An arm whose hand, folded back at the wrist, passes through its upper arm unless they collide; `sleeve`: a
    cover fixed to the upper arm that overlaps the forearm at home; `sidecar`: its settings file's text."""
    from helpers import box_link, joint, robot_xml

    body = (joint("yaw", "revolute", "base", "upper", 0.1, axis="0 0 1") + box_link("upper", 0.3)
            + joint("elbow", "revolute", "upper", "forearm", 0.3) + box_link("forearm", 0.25)
            + joint("wrist", "revolute", "forearm", "hand", 0.25, limit=FOLD_BACK) + box_link("hand", 0.35)
            + joint("tip_mount", "fixed", "hand", "tip", 0.35, limit="") + box_link("tip", 0.02))
    if sleeve:
        body += joint("sleeve_mount", "fixed", "upper", "sleeve", 0.28, limit="") + box_link("sleeve", 0.06)
    urdf = write_urdf(robot_xml("hand", body), "hand")
    if sidecar is not None:
        urdf.with_suffix(".toml").write_text(sidecar)
    return urdf


def forearm_arm(write_urdf):
    """An arm whose long forearm, folded back at the elbow, presses on the floor."""
    from helpers import box_link, joint, robot_xml

    return write_urdf(robot_xml("forearm", joint("yaw", "revolute", "base", "upper", 0.1, axis="0 0 1")
                                + box_link("upper", 0.3)
                                + joint("elbow", "revolute", "upper", "forearm", 0.3, limit=FOLD_BACK)
                                + box_link("forearm", 0.45)
                                + joint("tip_mount", "fixed", "forearm", "tip", 0.45, limit="")
                                + box_link("tip", 0.02)), "forearm")


def fold(urdf, joint_index: int, **settings) -> tuple[dict, list[float], list[bool], ArmEnv]:
    """Drive joint `joint_index` of the arm in `urdf` towards its upper limit for a whole episode, stepping on past
    a terminal: the last step's info, each step's reward and `terminated`, and the env (closed)."""
    env = ArmReachEnv(str(urdf), config=EnvConfig(episode_steps=150, **settings))  # time to fold all the way
    try:
        pairs = env.watch_contacts()
        assert pairs.disabled[(-1, 0)] == "adjacent"
        env.reset(seed=0)
        _, _, _, _, start = env.step(np.zeros(env.robot.dof))
        assert not start["self_contact"] and not start["floor_contact"]  # stretched out, it touches nothing
        action = np.zeros(env.robot.dof)
        action[joint_index] = 1.0
        rewards, ended = [], []
        for _ in range(env.config.episode_steps - 1):
            _, reward, terminated, _, info = env.step(action)
            rewards.append(reward)
            ended.append(terminated)
            if terminated:
                env.draw = env.draw_data()  # what the viewer is told of the step that ended it
        info["joint"] = env.joint_positions[joint_index]
        return info, rewards, ended, env
    finally:
        env.close()


def test_links_folded_into_each_other_or_onto_the_floor_are_counted_as_contacts(write_urdf):
    """Without self-collision: a hand folded back at the wrist passes through the upper arm (PyBullet lets it), a
    self-contact. A long forearm folded back at the elbow presses on the floor: a floor contact. Neither ends the
    episode."""
    info, _, ended, _ = fold(hand_arm(write_urdf), 2, self_collision=False)
    assert info["self_contact"] and not info["floor_contact"] and not any(ended), info
    assert info["joint"] > 3.05  # through the upper arm, to its limit
    info, _, ended, _ = fold(forearm_arm(write_urdf), 1, self_collision=False)
    assert info["floor_contact"] and not any(ended), info


def test_with_self_collision_links_made_to_collide_stop_end_the_episode_with_a_penalty_and_are_counted(write_urdf):
    from arm_a3c.envs.arm_env import FLOOR_CONTACT, SELF_CONTACT

    info, rewards, ended, env = fold(hand_arm(write_urdf), 2)
    assert info["self_contact"] and not info["floor_contact"] and not info["is_success"], info
    assert info["joint"] < 3.0  # the hand stopped against the upper arm
    end = ended.index(True)  # a real terminal (the worker does not bootstrap it), on the step of the contact
    _, free_rewards, _, _ = fold(hand_arm(write_urdf), 2, contact_penalty=0.0)
    assert rewards[:end] == free_rewards[:end] and rewards[end] == pytest.approx(free_rewards[end] - 20.0)
    assert env.draw[-4] == SELF_CONTACT  # the viewer marks where the arm touched itself
    assert env.contact_shapes(np.array([env.draw]), 0)[1] == "   SELF-CONTACT"
    info, _, ended, env = fold(forearm_arm(write_urdf), 1)
    assert info["floor_contact"] and any(ended) and env.draw[-4] == FLOOR_CONTACT, info
    assert env.draw[-1] < 0.01  # the mark is where the forearm meets the floor
    folding = ArmReachEnv(str(hand_arm(write_urdf)), config=EnvConfig(episode_steps=150))
    result = run_episodes(folding, lambda obs: np.array([0.0, 0.0, 1.0]), 3, 0)
    folding.close()
    assert result["self_contact_rate"] == 1.0 and result["success_rate"] == 0.0, result


@pytest.mark.parametrize("robot,left_out", [
    ("kuka_iiwa", {}),
    ("panda", {("panda_link7", "panda_hand"): "touching at home",
               ("panda_leftfinger", "panda_rightfinger"): "touching at home"})])
def test_the_pairs_left_out_are_what_sampling_gives_exert_no_force_and_the_home_pose_is_free(robot, left_out):
    """The pairs left out beside the adjacent ones: links that touch at home. PyBullet reports no contact for them
    although they touch, and the arm held at home for an episode touches nothing."""
    from arm_a3c.sim.client import pybullet as pb

    env = ArmReachEnv(robot)
    try:
        pairs, name = env.contact_pairs, env.robot.link_name
        assert {(name(a), name(b)): why for (a, b), why in pairs.disabled.items() if why != "adjacent"} == left_out
        env.reset(seed=0)
        assert env.contacts.free()
        body, client = env.robot.body, env.client
        touching = {(min(p[3], p[4]), max(p[3], p[4])) for p in pb.getClosestPoints(body, body, 0.0,
                                                                                   physicsClientId=client)}
        simulated = {(min(p[3], p[4]), max(p[3], p[4])) for p in pb.getContactPoints(body, body, physicsClientId=client)
                     if p[8] < 0}
        assert set(pairs.disabled) & touching >= {pair for pair, why in pairs.disabled.items() if why != "adjacent"}
        assert not simulated & set(pairs.disabled)
        for _ in range(env.config.episode_steps):
            _, _, terminated, truncated, info = env.step(np.zeros(env.robot.dof))
        assert truncated and not terminated and not info["self_contact"] and not info["floor_contact"], info
    finally:
        env.close()


def test_goals_are_never_in_self_contact():
    """100 seeded goals of the Panda (pose keeps the configuration a goal came from): none with two links
    overlapping, where 13% of them overlap without self-collision (63 of 500, measured)."""
    from arm_a3c.sim.contacts import TOUCH_DEPTH_M, _touching

    overlapping = {}
    for on in (True, False):
        env = ArmEnv("panda", config=EnvConfig(task="pose", self_collision=on))
        pairs, body, client = env.watch_contacts(), env.robot.body, env.client
        overlapping[on] = 0
        for seed in range(100):
            env.reset(seed=seed)
            env.robot.reset(env.task.goal_configuration)
            overlapping[on] += any(_touching(body, a, body, b, client, TOUCH_DEPTH_M) for a, b in pairs.checked)
        env.close()
    assert overlapping[True] == 0 and overlapping[False] > 3, overlapping


def test_a_settings_file_leaves_out_or_checks_pairs_and_an_unknown_link_is_one_line(write_urdf):
    from arm_a3c.envs.describe import describe, format_text
    from arm_a3c.errors import UserError

    info, _, ended, _ = fold(hand_arm(write_urdf, 'self_collision_disable = [["upper", "hand"], ["tip", "upper"]]\n'), 2)
    assert not any(ended) and info["joint"] > 3.05  # the hand passes through the upper arm again
    env = ArmReachEnv(str(hand_arm(write_urdf, 'self_collision_enable = [["sleeve", "forearm"]]\n', sleeve=True)))
    try:
        name = env.robot.link_name
        assert [(name(a), name(b)) for a, b in env.contact_pairs.enabled_by_settings] == [("forearm", "sleeve")]
        assert not env.contacts.free()  # they touch at home
        text = format_text(describe(env))
        assert "forearm-sleeve checked (settings file)" in text and "self-collision on" in text, text
    finally:
        env.close()
    env = ArmReachEnv(str(hand_arm(write_urdf, 'self_collision_disable = [["hand", "base"]]\n')))
    try:
        assert env.contact_pairs.disabled[(-1, 2)] == "settings file"
        assert "base-hand (settings file)" in format_text(describe(env))
    finally:
        env.close()
    with pytest.raises(UserError) as error:
        ArmReachEnv(str(hand_arm(write_urdf, 'self_collision_disable = [["upper", "elbow"]]\n')))
    assert "hand.toml: self_collision_disable names 'elbow', which is not a link of hand.urdf" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_run_or_policy_saved_before_self_collision_reads_as_without_it_and_a_resume_cannot_change_it(tmp_path):
    import json

    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.a3c.rundir import resume_config
    from arm_a3c.errors import UserError

    assert TrainConfig().self_collision and not TrainConfig.from_dict({"robot": "light_arm"}).self_collision
    (tmp_path / "config.json").write_text(json.dumps(TrainConfig(robot="light_arm").to_dict()))
    with pytest.raises(UserError, match="--self-collision cannot change when resuming"):
        resume_config(tmp_path, {"self_collision": False})


@pytest.mark.parametrize("robot", ["kuka_iiwa", "panda"])
def test_the_pairs_checked_leave_out_adjacent_links_and_touch_nothing_at_home(robot):
    from arm_a3c.sim.contacts import contacts_now

    env = ArmReachEnv(robot)
    try:
        pairs = env.watch_contacts()
        parent = env.robot.parent_link
        assert all(parent(b) != a and parent(a) != b for a, b in pairs.checked)
        assert all(reason != "adjacent" or parent(b) == a or parent(a) == b for (a, b), reason in pairs.disabled.items())
        assert len(pairs.checked) >= 15
        env.reset(seed=0)
        env.robot.reset(env.robot.home)
        assert contacts_now(env.robot, env.floor, pairs) == (False, False)
    finally:
        env.close()


def test_every_evaluation_reports_its_shares_of_episodes_with_a_self_contact_and_a_floor_contact():
    """Random actions put the xArm6's links into each other in most episodes (74% of 100, measured), the light
    arm's in none."""
    rates = {}
    for robot in ("xarm6", "light_arm"):
        env = ArmReachEnv(robot)
        rng = np.random.default_rng(0)
        result = run_episodes(env, lambda obs: rng.uniform(-1, 1, env.action_space.shape), 20, 0)
        env.close()
        rates[robot] = result["self_contact_rate"], result["floor_contact_rate"]
    assert rates["xarm6"][0] > 0.3 and rates["light_arm"] == (0.0, 0.0), rates


# ---- latency and noise ----------------------------------------------------------------------------------------

def target_steps(env: ArmEnv, actions) -> list[float]:
    """Joint 0's position-target change at each step (target minus the position it was set from)."""
    changes = []
    for action in actions:
        before = env.joint_positions[0]
        env.step(np.asarray(action, dtype=float))
        changes.append(env.robot.q_target[0] - before)
    return changes


@pytest.mark.parametrize("latency", [0, 1, 2, 3])
def test_an_action_takes_effect_exactly_latency_periods_later(latency):
    env = ArmReachEnv("light_arm", config=EnvConfig(latency_steps=latency))
    try:
        env.reset(seed=0)
        push = [[1.0, 0.0, 0.0]] + [[0.0, 0.0, 0.0]] * 5
        changes = target_steps(env, push)
        step = env.max_joint_step[0]
        assert [round(c / step, 6) for c in changes] == [1.0 if t == latency else 0.0 for t in range(6)], changes
    finally:
        env.close()


def test_latency_jitter_is_drawn_per_episode_from_its_seed_and_leaves_the_goals_as_they_were():
    jittery = ArmReachEnv("light_arm", config=EnvConfig(latency_steps=1, latency_jitter_steps=2))
    plain = ArmReachEnv("light_arm")
    try:
        latencies = []
        for seed in range(20):
            jittery.reset(seed=seed)
            plain.reset(seed=seed)
            latencies.append(jittery.latency)
            np.testing.assert_array_equal(jittery.target, plain.target)
        assert set(latencies) == {1, 2, 3}
        again = []
        for seed in range(20):  # the same seeds, the same latencies
            jittery.reset(seed=seed)
            again.append(jittery.latency)
        assert again == latencies
    finally:
        jittery.close()
        plain.close()


def test_encoder_noise_is_seeded_reproducible_touches_only_the_joints_readings_and_off_changes_nothing():
    noisy = ArmReachEnv("light_arm", config=EnvConfig(joint_noise=0.01, velocity_noise=0.05))
    plain = ArmReachEnv("light_arm")
    try:
        def episode(env):
            rows = [env.reset(seed=3)[0]]
            rows += [env.step(np.array([0.5, -0.5, 0.2]))[0] for _ in range(10)]
            return np.array(rows)

        first, again, clean = episode(noisy), episode(noisy), episode(plain)
        np.testing.assert_array_equal(first, again)  # the same seed, the same noise
        dof = plain.robot.dof
        assert np.all(first[:, :2 * dof] != clean[:, :2 * dof])  # every joint reading is noisy ...
        # ... and nothing else: the arm moved as without noise (its commands go by the true state)
        np.testing.assert_allclose(first[:, 2 * dof:], clean[:, 2 * dof:], atol=1e-6)
        assert np.std((first - clean)[:, dof:2 * dof]) == pytest.approx(0.05, rel=0.5)
    finally:
        noisy.close()
        plain.close()


def test_goal_noise_is_seeded_touches_only_the_goal_as_seen_and_success_is_judged_on_the_true_goal():
    """Goal noise moves the observed goal (its position, the goal minus the end effector, and the Jacobian part
    made from that error) by the same seeded draw each step, and nothing else: the arm moves as without it, and
    the distance judged is the true one."""
    noisy = ArmReachEnv("light_arm", config=EnvConfig(goal_noise=0.02))
    plain = ArmReachEnv("light_arm")
    try:
        def episode(env):
            rows, infos = [env.reset(seed=3)[0]], []
            for _ in range(10):
                obs, _, _, _, info = env.step(np.array([0.5, -0.5, 0.2]))
                rows.append(obs)
                infos.append(info["distance"])
            return np.array(rows), infos

        (first, distances), (again, _), (clean, clean_distances) = episode(noisy), episode(noisy), episode(plain)
        np.testing.assert_array_equal(first, again)  # the same seed, the same noise
        assert distances == clean_distances  # judged on the true goal: the arm moved as without noise
        dof = plain.robot.dof
        goal = slice(2 * dof + 3, 2 * dof + 6)  # after the joints' positions and speeds and the end-effector point
        np.testing.assert_array_equal(first[:, :2 * dof + 3], clean[:, :2 * dof + 3])  # the arm's readings: exact
        error = first[:, goal] - clean[:, goal]
        assert np.std(error) == pytest.approx(0.02, rel=0.5) and len({tuple(row) for row in error}) == len(error)
        # the goal minus the end effector carries the same error, and the Jacobian part is made from it
        np.testing.assert_allclose(first[:, 2 * dof + 6:2 * dof + 9] - clean[:, 2 * dof + 6:2 * dof + 9], error,
                                   atol=1e-6)
        assert not np.allclose(first[:, 2 * dof + 9:], clean[:, 2 * dof + 9:])
        with pytest.raises(SettingError, match="goal_noise"):
            EnvConfig(goal_noise=-0.1)
    finally:
        noisy.close()
        plain.close()


def test_dynamics_randomisation_is_seeded_reaches_pybullet_leaves_the_goals_and_off_is_the_urdfs():
    """Masses (with their inertias), joints' damping and motor gains drawn per episode: the same seed draws the same
    dynamics and the same episode, another seed others; PyBullet holds what was drawn; the goals are those of the
    URDF's dynamics; a scale without a range applies as given; and the defaults leave the URDF's."""
    from arm_a3c.sim.robot import POSITION_GAIN

    settings = dict(mass_range=0.3, gain_range=0.3, damping_range=0.5)
    random = ArmReachEnv("light_arm", config=EnvConfig(**settings))
    plain = ArmReachEnv("light_arm")
    scaled = ArmReachEnv("light_arm", config=EnvConfig(mass_scale=1.5, gain_scale=0.5))
    try:
        def episode(env, seed=3):
            rows = [env.reset(seed=seed)[0]]
            rows += [env.step(np.array([0.5, -0.5, 0.2]))[0] for _ in range(10)]
            return np.array(rows)

        first = episode(random)
        drawn = random.dynamics
        np.testing.assert_array_equal(first, episode(random))  # the same seed, the same dynamics and episode
        assert random.dynamics == drawn
        clean = episode(plain)
        np.testing.assert_array_equal(random.target, plain.target)  # the goal is the seed's, whatever the dynamics
        assert not np.allclose(first, clean), "the drawn dynamics changed nothing"
        assert not hasattr(plain, "dynamics") and plain.robot._position_gains == [POSITION_GAIN] * 3
        robot, nominal = random.robot, random.robot.nominal_dynamics()
        for (link, (mass, inertia, _)), factor in zip(nominal.items(), drawn["mass_factors"]):
            info = pb.getDynamicsInfo(robot.body, link, physicsClientId=robot.client)
            assert info[0] == pytest.approx(mass * factor) and info[2][0] == pytest.approx(inertia[0] * factor)
        assert all(0.7 <= f <= 1.3 for f in drawn["mass_factors"] + drawn["gain_factors"])
        assert all(0.5 <= d <= 1.5 for d in drawn["damping_factors"])
        assert robot._position_gains == pytest.approx([POSITION_GAIN * f for f in drawn["gain_factors"]])
        episode(random, seed=4)
        assert random.dynamics != drawn  # another episode, other dynamics
        episode(scaled)
        assert scaled.dynamics["mass_factors"] == [1.5] * len(scaled.robot.moving_links)
        assert scaled.robot._position_gains == pytest.approx([0.5 * POSITION_GAIN] * 3)
    finally:
        for env in (random, plain, scaled):
            env.close()
    with pytest.raises(SettingError, match="gain_scale"):
        EnvConfig(gain_scale=6)


def _pair_distance(env, entry) -> float:
    """The distance now between the two shapes of a `Clearance.near` entry (a link of the arm and another link, the
    floor or an obstacle)."""
    body, client, a, b = env.robot.body, env.client, entry[1], entry[3]
    if b is not None:
        return min(p[8] for p in pb.getClosestPoints(body, body, 1.0, linkIndexA=a, linkIndexB=b,
                                                     physicsClientId=client))
    # the other body is the one whose closest point to link a lies along the entry's normal
    points = [p for other in (env.floor, *env.task.obstacle_bodies)
              for p in pb.getClosestPoints(body, other, 1.0, linkIndexA=a, physicsClientId=client)
              if np.dot(p[7], entry[5]) > 0.9]
    return min(p[8] for p in points)


@pytest.mark.parametrize("robot,task", [("kuka_iiwa", "avoid"), ("panda", "reach")])
def test_the_clearance_part_is_the_nearest_distance_and_the_weighted_gradient_that_parts_the_nearest_pairs(robot,
                                                                                                          task):
    """At random configurations with a link near another, the floor or an obstacle: `clearance` is the nearest
    distance over the band, and `clearance_push` is sum of w grad(d) over the nearest pairs, by central differences
    of PyBullet's own distances (an obstacle's among them on the KUKA)."""
    from arm_a3c.sim.clearance import NEAREST

    env = make_env(robot=robot, task=task, clearance_observation="on")
    try:
        env.reset(seed=1)
        robot_, clearance = env.robot, env.clearance
        rng = np.random.default_rng(0)
        agree, tried, obstacles = 0, 0, 0
        for _ in range(400):
            q = robot_.random_configuration(rng)
            robot_.reset(q)
            near = clearance.near()
            if not near or near[0][0] < 0.002:  # nothing near, or touching (a normal with no gradient)
                continue
            part = env.clearance_at(q.tolist())
            assert part[0] == pytest.approx(near[0][0] / clearance.band)
            expected = np.zeros(robot_.dof)
            for entry in near[:NEAREST]:
                weight, gradient = 1.0 - max(entry[0], 0.0) / clearance.band, []
                for step in np.eye(robot_.dof) * 1e-4:
                    robot_.reset(q + step)
                    ahead = _pair_distance(env, entry)
                    robot_.reset(q - step)
                    gradient.append((ahead - _pair_distance(env, entry)) / 2e-4)
                expected += weight * np.array(gradient)
                obstacles += entry[3] is None and entry[5][2] < 0.99  # not the floor's upward normal
            push = np.array(part[1:])
            agree += push @ expected > 0.95 * np.linalg.norm(push) * np.linalg.norm(expected)
            tried += 1
            if tried == 25:
                break
        assert tried == 25 and agree >= 22, (agree, tried)
        assert obstacles > 0 or task != "avoid"
    finally:
        env.close()


def test_with_nothing_near_the_clearance_part_is_one_and_zeros_and_off_the_observation_is_todays_bit_for_bit():
    on, off = (ArmReachEnv("kuka_iiwa", config=EnvConfig(clearance_observation=choice)) for choice in ("on", "off"))
    try:
        dof = on.robot.dof
        assert on.obs_dim == off.obs_dim + 1 + dof
        assert [part["name"] for part in on.observation_layout()][-2:] == ["clearance", "clearance_push"]
        rng = np.random.default_rng(4)
        actions = rng.uniform(-1, 1, (40, dof))
        rows = []
        for env in (on, off):
            obs, _ = env.reset(seed=5)
            steps = [(obs, 0.0, False)] + [env.step(a)[:3] for a in actions]
            rows.append(steps)
        for (obs_on, reward_on, end_on), (obs_off, reward_off, end_off) in zip(*rows):
            np.testing.assert_array_equal(obs_on[:off.obs_dim], obs_off)  # the clearance changes no physics
            assert (reward_on, end_on) == (reward_off, end_off)
        pushes = np.array([obs[off.obs_dim:] for obs, _, _ in rows[0]])
        assert (pushes[:, 0] <= 1.0).all() and np.abs(pushes[:, 1:]).max() > 0  # something came near
        on.robot.reset(on.robot.home)
        far = on.clearance.band
        on.clearance.band, on.clearance._inverse_band = 1e-6, 1e6  # a band nothing is within
        assert on.clearance_at(on.robot.home.tolist()) == [1.0] + [0.0] * dof
        on.clearance.band, on.clearance._inverse_band = far, 1.0 / far
    finally:
        on.close()
        off.close()


def test_a_run_or_policy_saved_before_the_clearance_part_reads_as_without_it_and_a_resume_cannot_change_it(tmp_path):
    import json

    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.a3c.rundir import resume_config
    from arm_a3c.errors import UserError

    assert TrainConfig().clearance_observation == "task"
    assert TrainConfig.from_dict({"robot": "light_arm"}).clearance_observation == "off"
    (tmp_path / "config.json").write_text(json.dumps(TrainConfig(robot="light_arm").to_dict()))
    with pytest.raises(UserError, match="--clearance-observation cannot change when resuming"):
        resume_config(tmp_path, {"clearance_observation": "off"})


def test_by_default_avoid_sees_its_clearance_and_the_other_tasks_do_not_and_a_wrong_choice_is_one_line():
    from arm_a3c.tasks import TASKS

    for name in TASKS:
        env = make_env(robot="kuka_iiwa", task=name)
        try:
            assert (env.clearance is not None) == (name == "avoid"), name
            names = [part["name"] for part in env.observation_layout()]
            assert ("clearance_push" in names) == (name == "avoid"), name
        finally:
            env.close()
    with pytest.raises(SettingError, match="clearance_observation must be one of task, on, off"):
        EnvConfig(clearance_observation="yes")
