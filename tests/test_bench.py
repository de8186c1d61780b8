"""The training benchmark's quick mode, as a smoke test: it runs every part (the limits, A3C throughput with N and
1 workers, time to 80% and 95% for arm-a3c and the peers, held-out test, memory) and writes its table, bench.json
and bench.png. The numbers are seconds-long measurements, so only their sanity is checked, not the goals."""

from __future__ import annotations

import json

import numpy as np
from conftest import run_in_process, run_script
from test_cli import assert_user_error


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
    assert list(r["runs"]) == ["arm-a3c", "ppo", "sac"]
    for name, runs in r["runs"].items():
        assert [x["seed"] for x in runs] == [0]  # quick mode: one seed
        assert runs[0]["evaluations"], f"{name} was evaluated"  # arm-a3c's 4 s may end before its workers step
        assert name == "arm-a3c" or runs[0]["env_steps"] > 0, f"{name} trained"
        assert 0 <= runs[0]["test_success_rate"] <= 1, f"{name}'s best policy played the held-out episodes"
    assert r["runs"]["sac"][0]["torch_threads"] == 2 and r["runs"]["sac"][0]["n_envs"] == 1
    assert r["runs"]["ppo"][0]["n_envs"] == 2
    assert "ReacherBulletEnv-v0" in r["runs"]["ppo"][0]["settings_from"]
    assert set(r["medians"]) == {"arm-a3c", "ppo", "sac"}
    assert 100 < r["peak_memory_mb"]["pss"] <= r["peak_memory_mb"]["rss_sum"]
    assert "| training / policy-action limit" in result.stdout and bench["table"] in result.stdout
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_success_curves_hold_each_runs_last_evaluation():
    from arm_a3c.bench.training import success_curve

    runs = [{"evaluations": [{"wall_seconds": 10, "success_rate": 0.2}, {"wall_seconds": 30, "success_rate": 0.9}]},
            {"evaluations": [{"wall_seconds": 0, "success_rate": 0.0}, {"wall_seconds": 20, "success_rate": 0.5}]}]
    curves = success_curve(runs, "wall_seconds", np.array([5.0, 10.0, 25.0, 100.0]))
    np.testing.assert_allclose(curves, [[0.0, 0.2, 0.2, 0.9], [0.0, 0.0, 0.5, 0.5]])


def test_every_tuned_peer_names_the_zoo_entry_its_settings_come_from():
    from arm_a3c.bench.peers import PEERS
    from arm_a3c.bench.training import TUNED_PEERS

    for name in TUNED_PEERS:
        assert PEERS[name].source.endswith(f"{name}.yml ReacherBulletEnv-v0"), name
        assert PEERS[name].n_timesteps < 10**9


def test_benchmark_flags_are_checked():
    assert_user_error(run_in_process("bench.py", "--workers", "0"), "--workers must be at least 1")
    assert_user_error(run_in_process("bench.py", "--robots", "light_arm", "my_arm"), "unknown robot 'my_arm'")
    assert_user_error(run_in_process("bench.py", "--seeds"), "--seeds: expected at least one argument")
