"""A3C's moving parts, each against a reference: the shared optimizer against torch's Adam and across
processes, the worker's update reaching the shared model, GAE against hand-computed cases, the normaliser
against numpy."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from arm_a3c.a3c.children import CHILD_MODULES
from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.model import ActorCritic, NumpyActorCritic
from arm_a3c.a3c.normalizer import RunningNormalizer, normalize
from arm_a3c.a3c.optim import SharedAdam
from arm_a3c.a3c.shared import SharedMemoryLink, build_shared
from arm_a3c.a3c.worker import Rollout, a3c_update, compute_gae
from helpers import REPO

OBS_DIM, ACTION_DIM = 15, 3
CTX = mp.get_context("spawn")


def fake_rollout(n: int = 20, seed: int = 0):
    """Arrays of a rollout as a worker sees it: step t + 1's observation followed step t, except at the episode
    end (step n // 2, truncated, with its own final observation); the last step's next observation is new."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
    next_obs = np.concatenate([obs[1:], rng.normal(size=(1, OBS_DIM)).astype(np.float32)])
    next_obs[n // 2] = rng.normal(size=OBS_DIM)  # the ended episode's final observation, not the next one's first
    return dict(obs=obs, actions=rng.normal(size=(n, ACTION_DIM)).astype(np.float32),
                rewards=rng.normal(size=n).astype(np.float32), next_obs=next_obs,
                terminated=np.zeros(n, bool), episode_end=np.arange(n) == n // 2)


def played(learner: NumpyActorCritic, arrays: dict, norm=None, clip: float = 10.0) -> Rollout:
    """`arrays` (fake_rollout's) played through a worker's `Rollout`: acting (whose actions are then replaced by
    the given ones, as if the noise had drawn them) and recording."""
    n = len(arrays["rewards"])
    rollout = Rollout(learner, n, OBS_DIM, ACTION_DIM, clip)
    rollout.begin(norm or (np.zeros(OBS_DIM, np.float32), np.ones(OBS_DIM, np.float32)), learner.std(),
                  np.random.default_rng(0))
    for t in range(n):
        rollout.act(t, arrays["obs"][t])
        rollout.actions[t] = arrays["actions"][t]
        rollout.record(t, arrays["next_obs"][t], arrays["rewards"][t], arrays["terminated"][t],
                       arrays["episode_end"][t] and not arrays["terminated"][t])
    return rollout


# ---- shared optimizer ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_shared_adam_gives_the_same_updates_as_torch_adam():
    torch.manual_seed(0)
    model = ActorCritic(OBS_DIM, ACTION_DIM)
    reference = torch.nn.Parameter(model.flat.detach().clone())
    shared_adam = SharedAdam(model.flat, eps=1e-5)
    torch_adam = torch.optim.Adam([reference], lr=1e-3, eps=1e-5)
    for step in range(5):
        grad = torch.randn_like(reference)
        reference.grad = grad.clone()
        shared_adam.step(grad.numpy(), 1e-3)
        torch_adam.step()
        torch.testing.assert_close(model.flat, reference.detach(), rtol=0, atol=1e-6)
    assert shared_adam.step_count() == 5


def _step_in_child(model: ActorCritic, optimizer: SharedAdam, steps: int) -> None:
    for _ in range(steps):
        optimizer.step(np.ones(model.flat.shape, np.float32), 1e-2)


def test_a_runs_children_are_forks_of_a_server_that_imported_their_code_once(tmp_path):
    """The fork server imports the workers' and the evaluator's code (torch included) and each child starts as its
    fork. The server is a new interpreter: run from a clone in another folder, with the package on the launcher's
    sys.path only (as `python scripts/train_arm.py` puts it there), it skipped those imports without a word and
    each child imported torch again (a fresh process here: this one's server may be running already)."""
    out = tmp_path / "modules"
    check = f"import sys; open({str(out)!r}, 'w').write(' '.join(m for m in {CHILD_MODULES!r} if m in sys.modules))"
    script = tmp_path / "launcher.py"
    script.write_text(f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
                      "from arm_a3c.a3c.children import children_context\n"
                      "if __name__ == '__main__':\n"
                      f"    child = children_context().Process(target=exec, args=({check!r},))  # exec: imports nothing\n"
                      "    child.start(); child.join(60); sys.exit(child.exitcode)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_text().split() == CHILD_MODULES


@pytest.mark.slow
def test_shared_adam_state_and_step_count_are_shared_across_processes():
    model = ActorCritic(OBS_DIM, ACTION_DIM).share_memory()
    optimizer = SharedAdam(model.flat)
    before = [p.detach().clone() for p in model.parameters()]
    child = CTX.Process(target=_step_in_child, args=(model, optimizer, 3))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert optimizer.step_count() == 3, "the child's steps are not seen by the parent's optimizer"
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert optimizer.exp_avg.abs().sum() > 0, "the first moments the child wrote are not shared"
    _step_in_child(model, optimizer, 1)
    assert optimizer.step_count() == 4


def test_the_model_parameters_are_views_of_its_flat_vector_also_after_loading():
    model = ActorCritic(OBS_DIM, ACTION_DIM)
    other = ActorCritic(OBS_DIM, ACTION_DIM)
    model.load_state_dict(other.state_dict())
    torch.testing.assert_close(model.flat, other.flat)
    model.flat.zero_()
    assert all(p.abs().sum() == 0 for p in model.parameters())


# ---- the numpy fast path against autograd -------------------------------------------------------------------

def torch_a3c_loss(model: ActorCritic, obs, actions, advantages, returns, value_coef, entropy_coef):
    """The A3C loss as autograd sees it, from the torch module: the reference for the numpy gradients."""
    _, logprobs, entropy, values = model.get_action_and_value(torch.from_numpy(obs), torch.from_numpy(actions))
    policy_loss = -(logprobs * torch.from_numpy(advantages)).mean()
    value_loss = 0.5 * (torch.from_numpy(returns) - values).pow(2).mean()
    return policy_loss + value_coef * value_loss - entropy_coef * entropy.mean()


@pytest.mark.parametrize("linear", [False, True])
@pytest.mark.parametrize("bound", ["tanh", "clamp"])
@pytest.mark.parametrize("entropy_coef, log_std", [(0.0, -0.5), (0.01, -0.5), (0.01, [-0.5, -5.0, 0.3])])
def test_numpy_gradients_equal_autograds(entropy_coef, log_std, bound, linear):
    torch.manual_seed(0)
    model = ActorCritic(OBS_DIM, ACTION_DIM, log_std_min=-1.6, log_std_max=0.0, log_std_bound=bound,
                        linear_policy=linear)
    with torch.no_grad():  # random weights of a trained size, and log-std parameters inside and outside the bounds
        model.flat.normal_(0, 0.3)
        model.log_std.copy_(torch.tensor(log_std, dtype=torch.float32).expand(ACTION_DIM))
    rollout = fake_rollout(seed=1)
    rng = np.random.default_rng(2)
    advantages, returns = rng.normal(size=20).astype(np.float32), rng.normal(size=20).astype(np.float32)

    loss = torch_a3c_loss(model, rollout["obs"], rollout["actions"], advantages, returns, 0.5, entropy_coef)
    model.zero_grad()
    loss.backward()
    expected = torch.cat([p.grad.reshape(-1) for p in model.param_list()]).numpy()

    learner = NumpyActorCritic(model, own_copy=True)
    figures = learner.loss_gradients(rollout["obs"], rollout["actions"], advantages, returns, 0.5, entropy_coef)
    assert figures["loss"] == pytest.approx(loss.item(), rel=1e-5)
    np.testing.assert_allclose(learner.grad, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("linear", [False, True])
@pytest.mark.parametrize("bound", ["tanh", "clamp"])
def test_numpy_forward_matches_the_torch_module(bound, linear):
    model = ActorCritic(OBS_DIM, ACTION_DIM, log_std_init=-1.0, log_std_min=-1.6, log_std_bound=bound,
                        linear_policy=linear)
    if linear:  # the linear part starts at zero: give it values that show
        with torch.no_grad():
            model.actor.linear.normal_(0, 0.3)
    obs = np.random.default_rng(0).normal(size=(5, OBS_DIM)).astype(np.float32)
    fast = NumpyActorCritic(model)
    with torch.no_grad():
        np.testing.assert_allclose(fast.mean(obs), model.action_mean(torch.from_numpy(obs)).numpy(), atol=1e-6)
        np.testing.assert_allclose(fast.mean(obs[0]), model.action_mean(torch.from_numpy(obs[0])).numpy(), atol=1e-6)
        np.testing.assert_allclose(fast.value(obs), model.get_value(torch.from_numpy(obs)).numpy(), atol=1e-5)
        np.testing.assert_allclose(fast.std(), model.action_std().numpy())


@pytest.mark.parametrize("linear", [False, True])
@pytest.mark.parametrize("ended", ["truncated", "terminated", "last step"])
def test_the_rollouts_update_equals_the_reference_on_every_observation_and_its_successor(ended, linear):
    """The worker's update reuses the actor's activations from acting and values only the next observations that
    are not the following step's: its gradient must be the one computed from scratch on all n observations and
    all n next observations, whatever the normaliser's snapshot (clipping included)."""
    torch.manual_seed(0)
    model = ActorCritic(OBS_DIM, ACTION_DIM, linear_policy=linear)
    with torch.no_grad():
        model.flat.normal_(0, 0.3)
    arrays = fake_rollout(seed=4)
    if ended == "terminated":
        arrays["terminated"][10] = True
    elif ended == "last step":
        arrays["episode_end"][:] = False
        arrays["episode_end"][-1] = True
        arrays["next_obs"][10] = arrays["obs"][11]
    rng = np.random.default_rng(5)
    norm = (rng.normal(size=OBS_DIM).astype(np.float32), rng.uniform(0.2, 3.0, OBS_DIM).astype(np.float32))
    cfg = TrainConfig(max_grad_norm=1e9, obs_clip=2.0)

    reference = NumpyActorCritic(model, own_copy=True)
    obs, next_obs = (normalize(arrays[k], norm, cfg.obs_clip) for k in ("obs", "next_obs"))
    assert (np.abs(obs) == cfg.obs_clip).any()  # the clip is exercised
    values = reference.value(np.concatenate([obs, next_obs]))
    advantages, returns = compute_gae(arrays["rewards"] * cfg.reward_scale, values[:20], values[20:],
                                      arrays["terminated"], arrays["episode_end"], cfg.gamma, cfg.gae_lambda)
    expected = reference.loss_gradients(obs, arrays["actions"], advantages, returns, cfg.value_coef,
                                        cfg.entropy_coef)

    learner = NumpyActorCritic(model, own_copy=True)
    pushed = []
    link = type("Link", (), {"push": lambda self, grad, lr: pushed.append(grad.copy())})()
    rollout = played(learner, arrays, norm, cfg.obs_clip)
    np.testing.assert_allclose(rollout.mean, learner.mean(obs), atol=1e-6)  # acting's activations are the policy's
    stats = a3c_update(cfg, learner, link, rollout, 0)
    assert stats["policy_loss"] == pytest.approx(expected["policy_loss"], rel=1e-5)
    assert stats["value_loss"] == pytest.approx(expected["value_loss"], rel=1e-5)
    # float32 sums of terms up to ~300 in size: absolute agreement to a millionth of the largest element
    np.testing.assert_allclose(pushed[0], reference.grad, rtol=1e-4, atol=1e-6 * np.abs(reference.grad).max())


def test_acting_draws_the_policys_gaussian_around_its_mean():
    model = ActorCritic(OBS_DIM, ACTION_DIM, log_std_init=-1.0)
    learner = NumpyActorCritic(model)
    rollout = Rollout(learner, 4000, OBS_DIM, ACTION_DIM, 10.0)
    obs = np.random.default_rng(1).normal(size=OBS_DIM).astype(np.float32)
    rollout.begin((np.zeros(OBS_DIM, np.float32), np.ones(OBS_DIM, np.float32)), learner.std(),
                  np.random.default_rng(2))
    actions = np.array([rollout.act(t, obs).copy() for t in range(4000)])
    np.testing.assert_allclose(actions.mean(axis=0), learner.mean(obs), atol=0.02)
    np.testing.assert_allclose(actions.std(axis=0), np.exp(-1.0), rtol=0.05)


# ---- worker update ------------------------------------------------------------------------------------------

def _update_in_child(cfg: TrainConfig, shared) -> None:
    learner = NumpyActorCritic(shared.model, own_copy=True)
    stats = a3c_update(cfg, learner, SharedMemoryLink(shared, 0), played(learner, fake_rollout()), cfg.n_steps)
    assert stats is not None


@pytest.mark.slow
def test_one_worker_update_in_a_child_process_changes_the_shared_parameters_in_the_parent():
    cfg = TrainConfig(lr=1e-2)
    shared = build_shared(cfg, OBS_DIM, ACTION_DIM, CTX)
    before = [p.detach().clone() for p in shared.model.parameters()]
    child = CTX.Process(target=_update_in_child, args=(cfg, shared))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    changed = [not torch.equal(a, b) for a, b in zip(before, shared.model.parameters())]
    assert all(changed), "some shared parameters did not receive the child's update"
    assert shared.optimizer.step_count() == 1


def test_local_gradients_are_fresh_on_every_update():
    shared = build_shared(TrainConfig(), OBS_DIM, ACTION_DIM, CTX)
    learner = NumpyActorCritic(shared.model, own_copy=True)
    rollout = played(learner, fake_rollout())
    cfg = TrainConfig(lr=1e-12, lr_final_fraction=1.0, max_grad_norm=1e9)  # weights barely move; no clipping
    a3c_update(cfg, learner, SharedMemoryLink(shared, 0), rollout, 0)
    first = learner.grad.copy()
    a3c_update(cfg, learner, SharedMemoryLink(shared, 0), rollout, 0)
    np.testing.assert_allclose(learner.grad, first, rtol=1e-5)  # accumulated gradients would be twice as large
    assert np.abs(first).sum() > 0


def test_gradients_are_clipped_to_the_maximum_norm_before_they_reach_the_shared_optimizer():
    shared = build_shared(TrainConfig(), OBS_DIM, ACTION_DIM, CTX)
    learner = NumpyActorCritic(shared.model, own_copy=True)
    stats = a3c_update(TrainConfig(max_grad_norm=0.01), learner, SharedMemoryLink(shared, 0),
                       played(learner, fake_rollout()), 0)
    assert stats["grad_norm"] > 0.01
    assert np.linalg.norm(learner.grad) == pytest.approx(0.01, rel=1e-3)


def test_a_non_finite_loss_is_skipped_and_never_reaches_the_shared_model():
    cfg = TrainConfig()
    shared = build_shared(cfg, OBS_DIM, ACTION_DIM, CTX)
    before = shared.model.flat.clone()
    learner = NumpyActorCritic(shared.model, own_copy=True)
    arrays = fake_rollout()
    arrays["rewards"][3] = np.nan
    assert a3c_update(cfg, learner, SharedMemoryLink(shared, 0), played(learner, arrays), 0) is None
    assert torch.equal(before, shared.model.flat)
    assert shared.optimizer.step_count() == 0


# ---- returns and advantages ---------------------------------------------------------------------------------

def gae(rewards, values, next_values, terminated, ended, gamma=0.9, lam=0.5):
    arrays = [np.asarray(x, dtype=np.float64) for x in (rewards, values, next_values)]
    return compute_gae(*arrays, np.asarray(terminated), np.asarray(ended), gamma, lam)


def test_truncated_step_bootstraps_from_the_value_of_its_final_observation():
    adv, ret = gae([1.0], [0.5], [2.0], terminated=[False], ended=[True])
    assert adv[0] == pytest.approx(1.0 + 0.9 * 2.0 - 0.5)  # 2.3
    assert ret[0] == pytest.approx(1.0 + 0.9 * 2.0)


def test_terminated_step_does_not_bootstrap():
    adv, ret = gae([1.0], [0.5], [2.0], terminated=[True], ended=[True])
    assert adv[0] == pytest.approx(0.5)
    assert ret[0] == pytest.approx(1.0)


def test_advantages_do_not_flow_across_an_episode_boundary():
    # Step 0 ends an episode by truncation (its own next value 3.0); step 1 starts the next one.
    adv, _ = gae([1.0, 2.0], [0.0, 1.0], [3.0, 4.0], terminated=[False, False], ended=[True, False])
    delta1 = 2.0 + 0.9 * 4.0 - 1.0  # 4.6
    assert adv[1] == pytest.approx(delta1)
    assert adv[0] == pytest.approx(1.0 + 0.9 * 3.0 - 0.0)  # 3.7, nothing from step 1


def test_gae_within_an_episode_by_hand():
    # delta0 = 1 + 0.9*1 - 0 = 1.9; delta1 = 0 + 0.9*2 - 1 = 0.8; adv0 = 1.9 + 0.9*0.5*0.8 = 2.26
    adv, ret = gae([1.0, 0.0], [0.0, 1.0], [1.0, 2.0], terminated=[False, False], ended=[False, False])
    np.testing.assert_allclose(adv, [2.26, 0.8])
    np.testing.assert_allclose(ret, [2.26, 1.8])


def test_lambda_one_gives_the_n_step_return():
    rewards, values = [1.0, 2.0, 3.0], [0.1, 0.2, 0.3]
    next_values = [0.2, 0.3, 5.0]
    _, ret = gae(rewards, values, next_values, [False] * 3, [False] * 3, gamma=0.9, lam=1.0)
    assert ret[0] == pytest.approx(1.0 + 0.9 * 2.0 + 0.81 * 3.0 + 0.729 * 5.0)


# ---- model and normaliser -----------------------------------------------------------------------------------

@pytest.mark.parametrize("bound", ["tanh", "clamp"])
def test_policy_mean_is_bounded_and_std_stays_within_its_bounds(bound):
    model = ActorCritic(OBS_DIM, ACTION_DIM, log_std_init=5.0, log_std_min=-3.0, log_std_max=0.0, log_std_bound=bound)
    obs = torch.full((4, OBS_DIM), 1e6)
    assert model.action_mean(obs).abs().max() <= 1.0
    assert torch.all(model.action_std() <= 1.0)
    with torch.no_grad():
        model.log_std.fill_(-50.0)
    assert torch.allclose(model.action_std(), torch.full((ACTION_DIM,), float(np.exp(-3.0))))


@pytest.mark.parametrize("init", [-1.6, -1.0, -0.5, 0.0])
def test_the_squashed_log_std_starts_where_asked(init):
    model = ActorCritic(OBS_DIM, ACTION_DIM, log_std_init=init, log_std_min=-1.6, log_std_max=0.0)
    assert model.bounded_log_std().detach().numpy() == pytest.approx(np.full(ACTION_DIM, init), abs=2e-3)


@pytest.mark.parametrize("bound, comes_back", [("tanh", True), ("clamp", False)])
def test_a_log_std_pushed_past_its_floor_comes_back_only_when_squashed(bound, comes_back):
    """Adam drives the log-std down against its floor for a while (the momentum carries the parameter past it),
    then the loss asks for a larger std: the squashed bound follows, the clamp's zero gradient keeps it there."""
    model = ActorCritic(OBS_DIM, ACTION_DIM, log_std_init=-0.5, log_std_min=-1.6, log_std_max=0.0, log_std_bound=bound)
    adam = torch.optim.Adam([model.log_std], lr=0.05)
    for target_sign in (1.0, -1.0):  # first: minimise the log-std; then: maximise it
        for _ in range(300):
            adam.zero_grad()
            (target_sign * model.bounded_log_std().sum()).backward()
            adam.step()
        if target_sign > 0:
            assert model.bounded_log_std().detach().numpy() == pytest.approx(np.full(ACTION_DIM, -1.6), abs=0.05)
    final = model.bounded_log_std().detach().numpy()
    assert bool(np.all(final > -0.8)) == comes_back, final


def test_log_probability_and_entropy_match_torch_normal():
    model = ActorCritic(OBS_DIM, ACTION_DIM)
    obs, actions = torch.randn(6, OBS_DIM), torch.randn(6, ACTION_DIM)
    _, logprob, entropy, value = model.get_action_and_value(obs, actions)
    reference = torch.distributions.Normal(model.action_mean(obs), model.action_std())
    torch.testing.assert_close(logprob, reference.log_prob(actions).sum(-1))
    torch.testing.assert_close(entropy, reference.entropy().sum(-1))
    assert value.shape == (6,)


def test_normalizer_combines_every_writer_and_a_loaded_base_into_the_statistics_of_all_data():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(500, OBS_DIM)) * np.arange(1, OBS_DIM + 1)
    earlier = RunningNormalizer(OBS_DIM)
    earlier.update(data[:120])  # what a resumed run's checkpoint held
    normalizer = RunningNormalizer(OBS_DIM, writers=3)
    normalizer.load_state_dict(earlier.state_dict())
    for writer, batch in enumerate(np.split(data[120:], [7, 100, 101, 350])):
        normalizer.update(batch, writer=writer % 3)
    np.testing.assert_allclose(normalizer.mean, data.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(normalizer.var, data.var(axis=0), rtol=1e-9)
    assert normalizer.moments()[2] == 500
    normalized = normalizer.normalize(data.astype(np.float32), normalizer.snapshot())
    np.testing.assert_allclose(normalized.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(normalized.std(axis=0), 1.0, atol=1e-4)


def test_normalizer_state_round_trips_bit_for_bit():
    normalizer = RunningNormalizer(OBS_DIM, writers=2)
    normalizer.update(np.random.default_rng(1).normal(0.3, 0.7, size=(333, OBS_DIM)), writer=1)
    copy = RunningNormalizer(OBS_DIM)
    copy.load_state_dict(normalizer.state_dict())
    again = RunningNormalizer(OBS_DIM)
    again.load_state_dict(copy.state_dict())
    for a, b in zip(normalizer.snapshot(), again.snapshot()):
        assert np.array_equal(a, b)  # evaluate.py reproduces a checkpoint's evaluation exactly because of this


def test_time_to_success_finds_the_first_evaluation_at_the_threshold(tmp_path):
    from arm_a3c.a3c.metrics import CSV_FIELDS, read_metrics, time_to_success

    path = tmp_path / "metrics.csv"
    lines = [",".join(CSV_FIELDS)]
    for seconds, steps, success in [(5, 0, 0.0), (20, 50000, 0.82), (35, 100000, 0.78), (50, 150000, 0.94)]:
        values = {"wall_seconds": seconds, "env_steps": steps, "success_rate": success}
        lines.append(",".join(str(values.get(f, "")) for f in CSV_FIELDS))
    path.write_text("\n".join(lines) + "\n")
    rows = read_metrics(path)
    assert time_to_success(rows, 0.8) == (20.0, 50000.0)
    assert time_to_success(rows, 0.9) == (50.0, 150000.0)
    assert time_to_success(rows, 0.95) is None


def test_cpu_cores_are_cpu_seconds_over_wall_seconds_between_the_first_and_last_rows():
    from arm_a3c.a3c.metrics import cpu_cores

    def row(seconds, worker, evaluator, launcher):
        return {"wall_seconds": seconds, "worker_cpu_seconds": worker, "evaluator_cpu_seconds": evaluator,
                "launcher_cpu_seconds": launcher}

    rows = [row(10.0, 15.0, 2.0, 0.5), row(20.0, 30.0, 3.0, 0.6), row(30.0, 51.0, 4.5, 0.7)]
    assert cpu_cores(rows) == {"worker": 1.8, "evaluator": 0.125, "launcher": 0.01}
    assert cpu_cores(rows[:1]) == {}, "one row spans no time"
    old = [{k: (v if k == "wall_seconds" else "") for k, v in r.items()} for r in rows]
    assert cpu_cores(old) == {}, "a run written before the CPU columns"


def test_the_monitor_sums_the_reports_cpu_and_a_resumed_run_goes_on_from_its_last_row(tmp_path):
    import torch.multiprocessing as mp

    from arm_a3c.a3c.config import TrainConfig
    from arm_a3c.a3c.live import LiveBoard
    from arm_a3c.a3c.metrics import MetricsLog, read_metrics
    from arm_a3c.a3c.monitor import Monitor
    from arm_a3c.a3c.shared import build_shared

    cfg = TrainConfig(robot="light_arm", workers=2)
    shared = build_shared(cfg, OBS_DIM, ACTION_DIM, mp.get_context("spawn"))
    board = LiveBoard.create(tmp_path, 2, 3, 50, 3)
    earlier = {"wall_seconds": 40.0, "env_steps": 100_000, "success_rate": 0.5, "worker_cpu_seconds": 70.0,
               "evaluator_cpu_seconds": 6.0, "launcher_cpu_seconds": 0.25}
    log = MetricsLog(tmp_path, rows=[earlier], env_steps=100_000)
    monitor = Monitor(cfg, shared, log, board, None)
    for rank, cpu in ((0, 1.5), (1, 2.0), (0, 0.5)):
        monitor.handle(("update", rank, 0, {}, [], cpu))
    monitor.handle(("eval", {"env_steps": 120_000, "success_rate": 0.6, "mean_final_distance_m": 0.1,
                             "mean_return": -1.0, "cpu_seconds": 0.75}))
    log.close()
    last = read_metrics(tmp_path / "metrics.csv")[-1]
    assert last["worker_cpu_seconds"] == 74.0 and last["evaluator_cpu_seconds"] == 6.75
    assert last["launcher_cpu_seconds"] >= 0.25
    cores = monitor.session_cpu_cores()
    assert cores["worker"] == pytest.approx(4.0 / monitor.elapsed(), rel=0.05), "this session's CPU only"


def test_a_viewer_reading_a_slot_while_its_worker_is_preempted_mid_write_gets_the_episode_once_it_is_written(
        tmp_path):
    """The writer marks its slot odd while it writes; on a loaded machine it can be descheduled for milliseconds
    right there. The reader waits for it (a live viewer test once drew no episode because ten immediate retries
    all fell inside such a pause), but not for ever: a slot left odd by a killed writer reads as none."""
    import threading

    from arm_a3c.a3c.live import READ_TRIES, READ_WAIT_SECONDS, LiveBoard

    board = LiveBoard.create(tmp_path, 1, 3, 50, 3)
    recorder = board.recorder()
    for step in range(5):
        recorder.record([0.1 * step] * 3, [0.0, 0.0, 0.5], [0.2, 0.0, 0.3])
    board.publish(0, 7, -1.0, False, 0.3, recorder)
    slot = board._slot(0)
    written = slot[0]
    slot[0] = written + 1  # a writer in the middle of its next episode ...
    threading.Timer(0.003, lambda: slot.__setitem__(0, written + 2)).start()  # ... that goes on 3 ms later
    episode = board.latest(0)
    assert episode is not None and episode.episode == 7 and len(episode.joint_positions) == 5
    slot[0] = written + 3  # killed mid-write: odd for good
    started = time.monotonic()
    assert board.latest(0) is None
    assert time.monotonic() - started < 10 * READ_TRIES * READ_WAIT_SECONDS  # gave up after its tries


def test_the_linear_part_starts_at_zero_adds_a_linear_map_and_a_run_saved_before_it_has_none(tmp_path):
    """New runs' policies add a linear map of the observation (zero at first: the first actions are the layers'
    alone); a run saved before it existed is read without it, so its checkpoint's weights load, and a resume
    cannot change it."""
    import json

    from arm_a3c.a3c.rundir import resume_config
    from arm_a3c.errors import UserError

    assert TrainConfig().linear_policy and not TrainConfig.from_dict({"robot": "light_arm"}).linear_policy
    old = ActorCritic.from_config(TrainConfig.from_dict({"robot": "light_arm"}), OBS_DIM, ACTION_DIM)
    assert old.actor.linear is None
    ActorCritic(OBS_DIM, ACTION_DIM).load_state_dict(old.state_dict())  # a checkpoint of before loads as before
    torch.manual_seed(3)
    new = ActorCritic.from_config(TrainConfig(), OBS_DIM, ACTION_DIM)
    without = ActorCritic(OBS_DIM, ACTION_DIM)
    without.load_state_dict({k: v for k, v in new.state_dict().items() if k != "actor.linear"})
    obs = torch.from_numpy(np.random.default_rng(0).normal(size=(4, OBS_DIM)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(new.action_mean(obs), without.action_mean(obs))  # zero at first
        new.actor.linear.copy_(torch.eye(ACTION_DIM, OBS_DIM))
        expected = torch.tanh(without.actor(obs) + obs[:, :ACTION_DIM])
        assert torch.allclose(new.action_mean(obs), expected, atol=1e-6)
    (tmp_path / "config.json").write_text(json.dumps(TrainConfig(robot="light_arm").to_dict()))
    with pytest.raises(UserError, match="--linear-policy cannot change when resuming"):
        resume_config(tmp_path, {"linear_policy": False})
