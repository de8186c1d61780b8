"""The stop rule (`a3c/stop_rule.py`): its lower bound, and what it does with policies whose true success rate is
known, in simulated runs. (A real run that stops on a confirmed candidate: `test_training.py`.)"""

from __future__ import annotations

import numpy as np
import pytest

from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.stop_rule import StopRule, wilson_lower_bound

EVALUATIONS = 30  # a simulated run's evaluations (a 10-minute run at the default 50,000 steps between them has ~30)


def test_the_wilson_lower_bound_matches_its_formula_and_behaves_at_the_edges():
    # 194 of 200 at one-sided 90% (z = 1.2816): (0.97 + z^2/400 - z sqrt(0.97 * 0.03 / 200 + z^2/160000)) / (1 + z^2/200)
    assert wilson_lower_bound(194, 200, 0.9) == pytest.approx(0.95031, abs=1e-4)
    assert wilson_lower_bound(193, 200, 0.9) < 0.95 < wilson_lower_bound(194, 200, 0.9)
    assert 0.98 < wilson_lower_bound(200, 200, 0.9) < 1.0  # all of them: still not certainty
    assert wilson_lower_bound(0, 200, 0.9) == 0.0 and wilson_lower_bound(0, 0, 0.9) == 0.0
    assert wilson_lower_bound(97, 100, 0.9) < wilson_lower_bound(194, 200, 0.9)  # more episodes, a tighter bound
    assert wilson_lower_bound(194, 200, 0.95) < wilson_lower_bound(194, 200, 0.9)  # more confidence, a lower one


def simulated_stops(rule: StopRule, true_rate: float, runs: int = 100, eval_episodes: int = 100,
                    seed: int = 0) -> int:
    """How many of `runs` simulated runs the rule stops within EVALUATIONS evaluations, for a policy whose every
    episode succeeds with probability `true_rate`: each evaluation plays `eval_episodes`, each confirmation of a
    candidate `rule.confirm_episodes` fresh ones, as the evaluator does."""
    rng = np.random.default_rng(seed)
    stopped = 0
    for _ in range(runs):
        streak = 0
        for _ in range(EVALUATIONS):
            at_target = rng.binomial(eval_episodes, true_rate) / eval_episodes >= rule.target
            streak = streak + 1 if at_target else 0
            confirmation = None
            if rule.confirm_episodes and rule.candidate(streak):
                confirmation = rule.confirmation(int(rng.binomial(rule.confirm_episodes, true_rate)),
                                                 rule.confirm_episodes)
            if rule.stops(streak, confirmation):
                stopped += 1
                break
    return stopped


def test_the_default_rule_stops_on_a_97_percent_policy_and_not_on_a_91_percent_one():
    rule = StopRule.of(TrainConfig())
    assert (rule.target, rule.streak, rule.confirm_episodes, rule.confidence) == (0.95, 1, 200, 0.95)
    assert simulated_stops(rule, 0.97) >= 95
    assert simulated_stops(rule, 0.91) <= 5


def test_the_old_rule_two_evaluations_in_a_row_also_stops_on_a_91_percent_policy():
    """What the confirmation fixes: the evaluator's episodes alone stop a 91% policy in a run's length."""
    old = StopRule(0.95, streak=2, confirm_episodes=0)
    assert simulated_stops(old, 0.97) >= 95
    assert simulated_stops(old, 0.91) > 5


def test_a_candidate_needs_the_streak_and_a_confirmation_that_reaches_the_target():
    rule = StopRule(0.9, streak=2, confirm_episodes=50, confidence=0.9)
    assert not rule.candidate(1) and rule.candidate(2)
    good, short = rule.confirmation(50, 50), rule.confirmation(46, 50)
    assert good["confirmed"] and good["lower_bound"] >= 0.9 and good["episodes"] == 50
    assert not short["confirmed"] and short["success_rate"] == pytest.approx(0.92)  # 92% seen, bound below 90%
    assert rule.stops(2, good) and not rule.stops(2, short) and not rule.stops(1, good) and not rule.stops(2, None)
    assert StopRule(0.9, streak=2, confirm_episodes=0).stops(2, None)  # without confirmation: the streak alone
    assert not StopRule(1.01).candidate(5)  # a target above 1 never stops a run


@pytest.mark.parametrize("flags, fragment", [
    (["--confirm-seed", "4500000"], "overlap the held-out test's: move --confirm-seed or --test-seed"),
    (["--confirm-seed", "500000"], "overlap the evaluator's: move --confirm-seed or --eval-seed"),
    (["--confirm-confidence", "1"], "--confirm-confidence must be in [0.5, 1)"),
    (["--confirm-episodes", "-1"], "--confirm-episodes must be 0 (no confirmation) or up to 10,000"),
])
def test_confirmation_settings_that_cannot_work_are_one_line(tmp_path, flags, fragment):
    from helpers import assert_user_error, run_in_process

    assert_user_error(run_in_process("train_arm.py", *flags, "--run-dir", str(tmp_path / "run")), fragment)
    assert not (tmp_path / "run").exists()
