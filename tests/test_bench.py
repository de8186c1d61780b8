"""The training benchmark's quick mode, as a smoke test: it runs every part (the limits, A3C throughput with N and
1 workers, time to 80% and 95% for arm-a3c and the peers, held-out test, memory) and writes its table, bench.json
and bench.png. The numbers are seconds-long measurements, so only their sanity is checked, not the goals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import assert_user_error, run_in_process, run_script


@pytest.mark.slow
def test_quick_benchmark_runs_every_part_and_writes_its_table(tmp_path):
    """One robot; PPO (on-policy: subprocess environments) and SAC (off-policy: torch threads) as the peers: the
    other peers go through the same code with other settings."""
    out = tmp_path / "bench.json"
    result = run_script("bench.py", "--quick", "--robots", "light_arm", "--peers", "ppo", "sac", "--json", str(out),
                        "--work-dir", str(tmp_path / "runs"), timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    bench = json.loads(out.read_text())
    assert list(bench["robots"]) == ["light_arm"]
    assert "commit" in bench and bench["table"].startswith(f"arm-a3c commit {bench['commit'] or 'unknown'}, started")
    r = bench["robots"]["light_arm"]
    assert r["limit_steps_per_second"] > 1000
    assert set(r["policy_limits"]) == {"untrained", "after_throughput_run", "best"}
    assert min(r["policy_limits"].values()) > 500
    for key in ("a3c_n_workers", "a3c_1_worker"):
        assert r[key]["steps_per_second"] > 500 and r[key]["env_steps"] > 0
    # Seconds-long runs: their ratios are not measurements (start-up weighs on them), only present and positive.
    assert r["throughput_ratio"] > 0 and r["policy_limit_ratio"] > 0 and r["scaling_1_to_n"] > 0
    assert r["cpu_cores"]["worker"] > 0 and 0 <= r["evaluator_cpu_share"] < 1
    assert r["policy_limit_ratio_on_worker_cpu"] > 0
    assert list(r["runs"]) == ["arm-a3c", "ppo", "sac"]
    for name, runs in r["runs"].items():
        assert [x["seed"] for x in runs] == [0]  # quick mode: one seed
        assert runs[0]["evaluations"], f"{name} was evaluated"  # arm-a3c's 2 s may end before its workers step
        assert name == "arm-a3c" or runs[0]["env_steps"] > 0, f"{name} trained"
        assert 0 <= runs[0]["test_success_rate"] <= 1, f"{name}'s best policy played the held-out episodes"
    assert r["runs"]["sac"][0]["torch_threads"] == 2 and r["runs"]["sac"][0]["n_envs"] == 1
    assert r["runs"]["ppo"][0]["n_envs"] == 2
    assert "ReacherBulletEnv-v0" in r["runs"]["ppo"][0]["settings_from"]
    assert set(r["medians"]) == {"arm-a3c", "ppo", "sac"}
    assert 100 < r["peak_memory_mb"]["pss"] <= r["peak_memory_mb"]["rss_sum"]
    assert "| training / policy-action limit" in result.stdout and bench["table"] in result.stdout
    assert f"| CPU of the {bench['options']['workers']}-worker training: workers, evaluator, launcher |" in bench["table"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "bench.progress.json").exists(), "a finished benchmark leaves nothing to resume"


def test_success_curves_hold_each_runs_last_evaluation():
    from arm_a3c.bench.report import success_curve

    runs = [{"evaluations": [{"wall_seconds": 10, "success_rate": 0.2}, {"wall_seconds": 30, "success_rate": 0.9}]},
            {"evaluations": [{"wall_seconds": 0, "success_rate": 0.0}, {"wall_seconds": 20, "success_rate": 0.5}]}]
    curves = success_curve(runs, "wall_seconds", np.array([5.0, 10.0, 25.0, 100.0]))
    np.testing.assert_allclose(curves, [[0.0, 0.2, 0.2, 0.9], [0.0, 0.0, 0.5, 0.5]])


def test_every_tuned_peer_names_the_zoo_entry_its_settings_come_from():
    from arm_a3c.bench.options import TUNED_PEERS
    from arm_a3c.bench.peers import PEERS

    for name in TUNED_PEERS:
        assert PEERS[name].source.endswith(f"{name}.yml ReacherBulletEnv-v0"), name
        assert PEERS[name].n_timesteps < 10**9


def test_the_reach_tuned_peers_build_with_the_zoos_fetchreach_settings():
    """sac-reach and tqc-reach: the zoo's FetchReach-v1 settings (no HER), built on ArmReach-v0; they count among
    the tuned peers a benchmark's fastest is picked from."""
    pytest.importorskip("sb3_contrib")
    from stable_baselines3.common.vec_env import DummyVecEnv

    from arm_a3c.bench.options import ALL_TUNED_PEERS, REACH_TUNED_PEERS
    from arm_a3c.bench.peers import PEERS, build, make_env

    venv = DummyVecEnv([lambda: make_env("light_arm")])
    try:
        for name in REACH_TUNED_PEERS:
            assert name in ALL_TUNED_PEERS and PEERS[name].source.endswith("FetchReach-v1 (without HER)")
            model = build(name, venv, seed=0)
            assert (model.gamma, model.batch_size, model.learning_starts) == (0.95, 256, 1_000)
            assert model.learning_rate == 1e-3 and PEERS[name].normalize
        assert build("tqc-reach", venv, 0).policy.critic.n_critics == 1
    finally:
        venv.close()


def test_benchmark_flags_are_checked():
    assert_user_error(run_in_process("bench.py", "--workers", "0"), "--workers: 0 is out of range: between 1 and 1,024")
    assert_user_error(run_in_process("bench.py", "--budget-minutes", "nan"), "--budget-minutes: nan is out of range")
    assert_user_error(run_in_process("bench.py", "--seeds", "-1"), "--seeds: -1 is out of range")
    assert_user_error(run_in_process("bench.py", "--robots", "light_arm", "my_arm"), "unknown robot 'my_arm'")
    assert_user_error(run_in_process("bench.py", "--seeds"), "--seeds: expected at least one argument")
    assert_user_error(run_in_process("bench.py", "--peers", "none", "sac"), "--peers none means only arm-a3c")
    # "none" is taken (the run then gets as far as checking the robots)
    assert_user_error(run_in_process("bench.py", "--peers", "none", "--robots", "my_arm"), "unknown robot 'my_arm'")


# ---- an interrupted benchmark goes on (--resume) --------------------------------------------------------------

class FakeMeasurements:
    """Stand-ins for the benchmark's measurements (the real ones take minutes each): each call is counted and gives
    figures that depend on its arguments only, so an interrupted-then-resumed benchmark and an uninterrupted one can
    be compared figure by figure. `fail_at`: the call that raises, as a killed benchmark stops."""

    def __init__(self, fail_at: int | None = None):
        self.calls: list[str] = []
        self.fail_at = fail_at

    def _count(self, what: str) -> None:
        self.calls.append(what)
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise KeyboardInterrupt(f"stopped during {what}")

    def run(self, name: str, seed: int, work_dir) -> dict:
        reached = None if name == "sac" else 50.0 + 10 * seed + (5 if name == "ppo" else 0)
        return {"peer": name, "seed": seed, "steps_per_second": 1000.0 + seed, "run_dir": str(work_dir),
                "time_to_target_s": reached, "steps_to_target": reached and reached * 1000,
                "time_to_first_target_s": reached, "steps_to_first_target": reached and reached * 1000,
                "test_success_rate": 0.9, "evaluations": [{"wall_seconds": 1.0, "env_steps": 10, "success_rate": 0.5}],
                "peak_pss_mb": 500.0, "peak_rss_mb": 700.0}

    def install(self, monkeypatch) -> None:
        from arm_a3c.bench import training

        def block(opts, robot, work_dir):
            self._count(f"{robot}/limits-and-throughput")
            return {"limit_before": 100.0, "limit_after": 120.0, "policy_limits": {"untrained": 90.0,
                    "after_throughput_run": 110.0}, "many": self.run("arm-a3c", 0, work_dir),
                    "one": self.run("arm-a3c", 0, work_dir)}

        def a3c_run(opts, robot, workers, seconds, target, run_dir, seed=0, **_):
            self._count(f"{robot}/arm-a3c/seed-{seed}")
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            (run_dir / "checkpoints" / "best.pt").touch()
            return self.run("arm-a3c", seed, run_dir)

        def limit_rate(robot, processes, seconds, checkpoint=None):
            self._count(f"{robot}/policy-limit-best")
            return 95.0

        def peer_run(opts, robot, peer, out, seed):
            self._count(f"{robot}/{peer}/seed-{seed}")
            return self.run(peer, seed, out.parent)

        monkeypatch.setattr(training, "throughput_block", block)
        monkeypatch.setattr(training, "a3c_run", a3c_run)
        monkeypatch.setattr(training, "limit_rate", limit_rate)
        monkeypatch.setattr(training, "peer_run", peer_run)
        monkeypatch.setattr(training, "check_peer_dependencies", lambda opts: None)


def test_an_interrupted_benchmark_resumes_with_the_parts_it_finished_and_runs_only_the_rest(tmp_path, monkeypatch):
    import pytest

    from arm_a3c.bench.options import BenchOptions
    from arm_a3c.bench.progress import BenchProgress
    from arm_a3c.bench.report import format_table
    from arm_a3c.bench.training import run_benchmark

    opts = BenchOptions(robots=("light_arm", "kuka_iiwa"), workers=2, seeds=(0, 1), peers=("ppo", "sac"))
    every_part = [f"{robot}/{part}" for robot in opts.robots for part in (
        "limits-and-throughput", "arm-a3c/seed-0", "arm-a3c/seed-1", "policy-limit-best", "ppo/seed-0", "ppo/seed-1",
        "sac/seed-0", "sac/seed-1")]
    whole = FakeMeasurements()
    whole.install(monkeypatch)
    reference = run_benchmark(opts, tmp_path / "runs", log=lambda line: None,
                              progress=BenchProgress(None, opts, "abc1234", "then"))
    assert whole.calls == every_part

    path = tmp_path / "bench.progress.json"
    first = FakeMeasurements(fail_at=11)  # killed during the KUKA's second arm-a3c run
    first.install(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(opts, tmp_path / "runs", log=lambda line: None,
                      progress=BenchProgress(path, opts, "abc1234", "then"))
    kept = json.loads(path.read_text())
    assert list(kept["parts"]) == every_part[:10] and kept["commit"] == "abc1234"

    second, logged = FakeMeasurements(), []
    second.install(monkeypatch)
    result = run_benchmark(opts, tmp_path / "runs", log=logged.append,
                           progress=BenchProgress.resume(path, opts, "abc1234"))
    assert second.calls == every_part[10:], "only the parts the first sitting did not finish run again"
    assert sum("kept from an earlier sitting" in line for line in logged) == 10
    assert result["robots"] == reference["robots"], "the same figures as a benchmark that was never interrupted"
    assert result["started"] == "then" and len(result["sittings"]) == 2
    assert "(resumed " in format_table(result)

    # Parts measured with other settings or other code are not one benchmark
    from arm_a3c.errors import UserError

    kept["parts"] = {k: v for k, v in kept["parts"].items() if k.startswith("light_arm/") and "best" not in k}
    path.write_text(json.dumps(kept))  # the light arm's best.pt limit not measured, its seed-0 run's files gone
    (tmp_path / "runs" / "light_arm" / "a3c-time-to-success-0" / "checkpoints" / "best.pt").unlink()
    with pytest.raises(UserError, match="best.pt is gone.*remove the part light_arm/arm-a3c/seed-0 from"):
        run_benchmark(opts, tmp_path / "runs", log=lambda line: None,
                      progress=BenchProgress.resume(path, opts, "abc1234"))

    with pytest.raises(UserError, match="other options .*budget_seconds 600.0 there, 300.0 now"):
        BenchProgress.resume(path, BenchOptions(**{**opts.__dict__, "budget_seconds": 300.0}), "abc1234")
    with pytest.raises(UserError, match="measured at commit abc1234, this arm-a3c is at def5678"):
        BenchProgress.resume(path, opts, "def5678")
    with pytest.raises(UserError, match="uncommitted changes"):
        BenchProgress(path, opts, "abc1234-dirty", "then").save()
        BenchProgress.resume(path, opts, "abc1234-dirty")


def test_bench_py_never_overwrites_an_interrupted_benchmarks_parts_unasked(tmp_path):
    out = tmp_path / "bench.json"
    assert_user_error(run_in_process("bench.py", "--robots", "light_arm", "--json", str(out), "--resume"),
                      "nothing to resume", "bench.progress.json does not exist")
    progress = tmp_path / "bench.progress.json"
    progress.write_text(json.dumps({"options": {}, "commit": "0000000", "started": "2026-12-01 10:00 UTC",
                                    "parts": {"light_arm/limits-and-throughput": {}}}))
    assert_user_error(run_in_process("bench.py", "--robots", "light_arm", "--json", str(out)),
                      "holds 1 finished part(s) of a benchmark started 2026-12-01 10:00 UTC at commit 0000000",
                      "--resume goes on with them")
    assert_user_error(run_in_process("bench.py", "--robots", "light_arm", "--json", str(out), "--resume"),
                      "cannot resume", "other options")
    progress.write_text("{not json")
    assert_user_error(run_in_process("bench.py", "--robots", "light_arm", "--json", str(out), "--resume"),
                      "not a benchmark's progress file")


# ---- where a training's CPU goes (py-spy) -------------------------------------------------------------------

RAW_PROFILE = "\n".join([
    'process 1:"python scripts/train_arm.py";<module> (train_arm.py:9);train_main (cli.py:1);time.sleep (x:1) 10',
    'process 1:"python scripts/train_arm.py";process 2:"python -c spawn";<module> (x:1);_find_and_load (x:1) 5',
    # a worker: 30 samples stepping, 10 updating, 5 acting, 5 in the loop's own lines
    'process 1:"train";process 2:"spawn";spawn_main (x:1);worker_loop (worker.py:1);train_worker (worker.py:2);'
    'ArmEnv.step (arm_env.py:187) 30',
    'process 1:"train";process 2:"spawn";worker_loop (worker.py:1);train_worker (worker.py:2);'
    'a3c_update (worker.py:9);NumpyActorCritic.loss_gradients (model.py:1) 10',
    'process 1:"train";process 2:"spawn";worker_loop (worker.py:1);train_worker (worker.py:2);'
    'Rollout.act (worker.py:90) 5',
    'process 1:"train";process 2:"spawn";worker_loop (worker.py:1);train_worker (worker.py:128) 5',
    'process 1:"train";process 3:"spawn";evaluator_loop (evaluator.py:1);run_episodes (e.py:1);ArmEnv.step (a:1) 20',
    "",
])


def test_a_profile_is_summed_per_process_role_and_per_part_of_the_workers_loop():
    from arm_a3c.bench.profile import summarize

    result = summarize(RAW_PROFILE)
    assert result["samples"] == 85
    assert result["roles"] == {"worker": round(50 / 85, 4), "evaluator": round(20 / 85, 4),
                               "launcher": round(10 / 85, 4), "child start-up": round(5 / 85, 4)}
    parts = result["worker_parts"]
    assert parts["environment (physics, observation, reward)"] == 0.6
    assert parts["learning and syncing (advantages, gradients, pull, push, statistics)"] == 0.2
    assert parts["acting (normalise, policy mean, noise)"] == 0.1 and parts["the loop itself, reports, live board"] == 0.1
    assert result["worker_functions"]["a3c_update"] == 0.2 == result["worker_functions"][
        "NumpyActorCritic.loss_gradients"]
    assert "train_worker" not in result["worker_functions"]


@pytest.mark.slow
def test_profiling_a_short_training_finds_its_workers_and_evaluator(tmp_path):
    """A real run under py-spy (skipped where py-spy cannot attach, e.g. a container without ptrace)."""
    out = tmp_path / "profile.json"
    result = run_script("profile_training.py", "--robot", "light_arm", "--workers", "2", "--max-steps", "20000",
                        "--rate", "50", "--json", str(out), "--run-dir", str(tmp_path / "run"), timeout=300)
    if result.returncode == 2 and any(why in result.stderr for why in ("Permission denied", "Operation not permitted")):
        import pytest

        pytest.skip(result.stderr.strip()[-300:])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    profile = json.loads(out.read_text())
    # A seconds-long run: the processes' start-up takes much of it (0.39 of the samples at 20,000 steps once)
    assert profile["roles"]["worker"] > 0.2 and "evaluator" in profile["roles"], profile["roles"]
    assert profile["worker_parts"]["environment (physics, observation, reward)"] > 0.3, profile["worker_parts"]
    assert "| inside the workers: part of the loop |" in result.stdout


def test_a_throughput_run_too_short_to_measure_its_workers_cpu_is_said_so_in_the_table():
    from arm_a3c.bench.report import cpu_rows

    rows = cpu_rows({"cpu_cores": {"worker": 0.0, "evaluator": 0.1, "launcher": 0.01}, "evaluator_cpu_share": 0.05,
                     "policy_limit_ratio_on_worker_cpu": None}, 2)
    assert "0.00, 0.10, 0.010 cores of 2" in rows[0] and "not measured" in rows[1]
