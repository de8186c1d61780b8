"""When a run has reached its target: the evaluator's episodes pick a candidate, fresh episodes confirm it.

The evaluator plays the same seeded episodes at every evaluation (`eval_episodes`, 100 by default). Stopping
on them alone promised more than a run delivered: the best of many noisy evaluations is optimistic (the winner's
curse), and a rate over 100 episodes cannot tell 95% from 91% (96 of 100 has a 95% interval reaching down to
about 90%). So an evaluation at or above `--target-success` (`--target-streak` of them in a row) only makes its
weights a *candidate*. The evaluator then plays the candidate on `--confirm-episodes` (200) fresh episodes: seeds
of a range of their own (`--confirm-seed` on), each confirmation the next ones, never the evaluator's or the
held-out test's. The run stops when the one-sided Wilson lower bound of the candidate's success on those episodes,
at `--confirm-confidence` (0.95), reaches the target; the candidate is then best.pt. A candidate that falls short
changes nothing: training goes on, and the next candidate is confirmed on new seeds.

What it costs: a confirmation is two evaluations' worth of episodes, played by the evaluator while the workers
train on; a policy whose true rate is just at the target rarely passes (its lower bound sits below it), so a run
stops later than the old rule did, on a better policy. The simulated runs of `tests/test_stop_rule.py` show the
rule stopping on a 97% policy and not on a 91% one; the old rule (two evaluations in a row) stopped on both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

CONFIRM_SEED_RANGE = 1_000_000  # the seeds confirmations may use: --confirm-seed .. + this - 1


def wilson_lower_bound(successes: int, episodes: int, confidence: float) -> float:
    """The one-sided lower confidence bound of a success probability from `successes` of `episodes` (Wilson's
    score interval: unlike the normal approximation it stays inside [0, 1] and is honest near 100%)."""
    if episodes <= 0:
        return 0.0
    z = NormalDist().inv_cdf(confidence)
    rate = successes / episodes
    centre = rate + z * z / (2 * episodes)
    spread = z * math.sqrt(rate * (1 - rate) / episodes + z * z / (4 * episodes * episodes))
    return max(0.0, (centre - spread) / (1 + z * z / episodes))


@dataclass(frozen=True)
class StopRule:
    """The rule's settings (from the run's config) and its two questions."""

    target: float  # --target-success
    streak: int = 1  # --target-streak: evaluations in a row at the target that make a candidate
    confirm_episodes: int = 200  # 0: no confirmation, the evaluator's streak alone stops the run (the old rule)
    confidence: float = 0.95

    @classmethod
    def of(cls, cfg) -> "StopRule":
        return cls(cfg.target_success, cfg.target_streak, cfg.confirm_episodes, cfg.confirm_confidence)

    def candidate(self, streak: int) -> bool:
        """Whether evaluations at the target `streak` in a row make the newest one a candidate."""
        return self.target <= 1 and streak >= self.streak

    def confirmation(self, successes: int, episodes: int) -> dict:
        """What a confirmation saw, and whether it confirms: the figures progress lines and summary.json carry."""
        bound = wilson_lower_bound(successes, episodes, self.confidence)
        return {"episodes": episodes, "successes": successes, "success_rate": successes / max(episodes, 1),
                "lower_bound": bound, "confidence": self.confidence, "confirmed": bound >= self.target}

    def stops(self, streak: int, confirmation: dict | None) -> bool:
        """Whether the run stops after an evaluation: with confirmation, on a confirmed candidate; without, on the
        streak alone."""
        if not self.candidate(streak):
            return False
        if self.confirm_episodes == 0:
            return True
        return bool(confirmation and confirmation["confirmed"])
