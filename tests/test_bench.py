"""The training benchmark's quick mode, as a smoke test: it runs every part (the limit, A3C throughput with N and
1 workers, time to 80% for arm-a3c and SB3 A2C and PPO, memory) and writes its table and bench.json. The
numbers are seconds-long measurements, so only their sanity is checked, not the goals."""

from __future__ import annotations

import json

from conftest import run_in_process, run_script
from test_cli import assert_user_error


def test_quick_benchmark_runs_every_part_and_writes_its_table(tmp_path):
    """With PPO as the only baseline: A2C goes through the same code (one class for another)."""
    out = tmp_path / "bench.json"
    result = run_script("bench.py", "--quick", "--baselines", "ppo", "--json", str(out),
                        "--work-dir", str(tmp_path / "runs"), timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    bench = json.loads(out.read_text())
    assert bench["limit_steps_per_second"] > 1000
    for key in ("a3c_n_workers", "a3c_1_worker"):
        assert bench[key]["steps_per_second"] > 500 and bench[key]["env_steps"] > 0
    # Seconds-long runs: their ratios are not measurements (start-up weighs on them), only present and positive.
    assert bench["throughput_ratio"] > 0 and bench["scaling_1_to_n"] > 0
    assert set(bench["baselines"]) == {"ppo"}
    for runs in bench["baselines"].values():
        assert [r["seed"] for r in runs] == [0]  # quick mode: one seed
        assert runs[0]["env_steps"] > 0 and runs[0]["evaluations"], "SB3 trained and was evaluated"
    assert set(bench["median_time_to_target_s"]) == {"arm-a3c", "ppo"}
    assert 100 < bench["peak_memory_mb"]["pss"] <= bench["peak_memory_mb"]["rss_sum"]
    assert "| training / limit at" in result.stdout and bench["table"] in result.stdout


def test_benchmark_flags_are_checked():
    assert_user_error(run_in_process("bench.py", "--workers", "0"), "--workers must be at least 1")
    assert_user_error(run_in_process("bench.py", "--robot", "my_arm"), "unknown robot 'my_arm'")
    assert_user_error(run_in_process("bench.py", "--seeds"), "--seeds: expected at least one argument")
