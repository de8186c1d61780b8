"""Export (`arm-a3c export`): the exported policy computes what the checkpoint's policy computes, drives a fresh
environment exactly as well with nothing but the exported file, and bad input is one line with nothing left
behind."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from helpers import assert_user_error, run_in_process, run_script

from arm_a3c.a3c.evaluator import load_policy, policy_action


def observations(env, n: int, seed: int = 0) -> np.ndarray:
    """`n` observations of real episodes under random actions, with a quarter pushed far outside the usual range
    (the normaliser's clipping must be inside the exported model too)."""
    rng = np.random.default_rng(seed)
    found = []
    obs, _ = env.reset(seed=seed)
    while len(found) < n:
        found.append(obs)
        obs, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        if terminated or truncated:
            obs, _ = env.reset()
    found = np.array(found, dtype=np.float32)
    found[::4] += rng.normal(0, 20, found[::4].shape).astype(np.float32)
    return found


@pytest.mark.slow
def test_onnx_and_torchscript_exports_agree_with_the_checkpoints_policy_on_1000_observations(training_finished,
                                                                                           tmp_path):
    import onnxruntime

    checkpoint = training_finished.run_dir / "checkpoints" / "best.pt"
    _, _, env, model, normalizer = load_policy(checkpoint)
    obs = observations(env, 1000)
    env.close()
    act = policy_action(model, normalizer)  # what evaluate.py runs
    expected = np.array([act(o.copy()) for o in obs])
    assert np.abs(expected).max() > 0.1, "a trained policy: its actions are not all near zero"

    for fmt, name in [("onnx", "policy.onnx"), ("torchscript", "policy-torchscript.ts")]:  # each its own .json
        out = tmp_path / name
        result = run_in_process("export.py", "--checkpoint", str(checkpoint), "--out", str(out), "--format", fmt)
        assert result.returncode == 0, result.stderr
        meta = json.loads(out.with_suffix(".json").read_text())
        assert meta["robot"] == "light_arm" and meta["task"] == "reach" and meta["model_format"] == fmt
        assert [j["name"] for j in meta["controlled_joints"]] == ["base_yaw", "shoulder", "elbow"]
        layout = meta["observation_layout"]
        assert layout[-1]["start"] + layout[-1]["size"] == meta["input"]["shape"][1] == obs.shape[1]
        if fmt == "onnx":
            session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = session.run(None, {"observation": obs})[0]
        else:
            got = torch.jit.load(str(out))(torch.from_numpy(obs)).numpy()
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-5, (fmt, np.abs(got - expected).max())


@pytest.mark.slow
def test_an_exported_policy_alone_drives_a_fresh_environment_as_well_as_evaluate_py(training_finished, tmp_path):
    checkpoint = training_finished.run_dir / "checkpoints" / "best.pt"
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    result = run_in_process("export.py", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "policy.onnx"))
    assert result.returncode == 0, result.stderr
    for name in ("policy.onnx", "policy.json"):  # the checkpoint is not needed: only these two files travel
        shutil.move(tmp_path / name, moved / name)
    exported = run_script("run_exported.py", "--policy", str(moved / "policy.onnx"), "--episodes", "30",
                          "--seed", "5000000", timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    evaluated = run_script("evaluate.py", "--checkpoint", str(checkpoint), "--episodes", "30", "--seed", "5000000",
                           timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    a, b = json.loads(exported.stdout), json.loads(evaluated.stdout)
    assert a["success_rate"] == b["success_rate"]  # the distances below show the same episodes were driven
    assert a["mean_final_distance_m"] == pytest.approx(b["mean_final_distance_m"], abs=1e-4)


def test_bad_exports_are_one_line_exit_2_and_leave_no_file(tmp_path):
    from helpers import write_untrained_checkpoint

    good = write_untrained_checkpoint("light_arm", tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    crafted = tmp_path / "crafted.pt"

    class Exploit:
        def __reduce__(self):
            return (os.getpid, ())

    torch.save({"format": 1, "model": Exploit()}, crafted)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cases = [
        (truncated, out_dir / "p.onnx", ["truncated.pt", "not a readable arm-a3c checkpoint"]),
        (foreign, out_dir / "p.onnx", ["foreign.pt", "not an arm-a3c checkpoint"]),
        (crafted, out_dir / "p.onnx", ["crafted.pt", "not a safe arm-a3c checkpoint"]),
        (good, tmp_path / "missing" / "p.onnx", ["does not exist"]),
        (good, out_dir, ["is a folder"]),
        (good, tmp_path / "good.pt" / "p.onnx", ["does not exist"]),
    ]
    if os.path.isdir("/proc/self"):
        cases.append((good, __import__("pathlib").Path("/proc/self/p.onnx"), ["/proc/self/p.onnx", "writ"]))
    for checkpoint, out, fragments in cases:
        result = run_in_process("export.py", "--checkpoint", str(checkpoint), "--out", str(out))
        assert_user_error(result, *fragments)
        assert "weights_only" not in result.stderr
        assert list(out_dir.iterdir()) == [], f"{out}: a file was left behind"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted.pt", "foreign.pt", "good.pt", "out",
                                                          "truncated.pt"]


def onnx_policy(obs_size: int, action_size: int) -> bytes:
    """An ONNX model shaped like an exported policy that always acts 0 (a policy without torch or a checkpoint)."""
    from onnx import TensorProto, helper

    zeros = helper.make_tensor("w", TensorProto.FLOAT, [obs_size, action_size], [0.0] * (obs_size * action_size))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["observation", "w"], ["action"])], "still",
        [helper.make_tensor_value_info("observation", TensorProto.FLOAT, ["batch", obs_size])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", action_size])], [zeros])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


def test_run_exported_checks_its_counts_and_files_first(tmp_path):
    """run_exported.py: counts are range-checked as evaluate.py's are, and a damaged policy or description is one
    line, exit status 2 (they ran without bound, printed NaN, or ended in a traceback)."""
    def policy(name: str, model: bytes, description: str) -> str:
        (tmp_path / f"{name}.onnx").write_bytes(model)
        (tmp_path / f"{name}.json").write_text(description)
        return str(tmp_path / f"{name}.onnx")

    description = json.dumps({"format": "arm-a3c-policy/1", "robot": "light_arm", "task": "reach",
                              "input": {"name": "observation"}, "environment": {"robot": "light_arm", "task": "reach"}})
    good = policy("good", onnx_policy(18, 3), description)
    played = run_script("run_exported.py", "--policy", good, "--episodes", "2")
    assert played.returncode == 0, played.stderr
    figures = json.loads(played.stdout)
    assert figures["episodes"] == 2 and 0 <= figures["success_rate"] <= 1 and figures["robot"] == "light_arm"
    cases = [
        (["--policy", good, "--episodes", "1000000000"], ["--episodes", "between 1 and 10,000"]),
        (["--policy", good, "--episodes", "0"], ["--episodes", "between 1 and 10,000"]),
        (["--policy", good, "--seed", "-1"], ["--seed", "between 0 and"]),
        (["--policy", policy("truncated", onnx_policy(18, 3), description[:20])], ["truncated.json", "export"]),
        (["--policy", policy("empty", onnx_policy(18, 3), "{}")], ["empty.json", "not a policy description"]),
        (["--policy", policy("garbage", b"not an onnx model", description)], ["garbage.onnx", "not an ONNX model"]),
        (["--policy", policy("other", onnx_policy(5, 3), description)], ["other.onnx", "18 observation floats"]),
        (["--policy", policy("moved", onnx_policy(18, 3), json.dumps({"environment": {"robot": "gone.urdf"}}))],
         ["moved.json", "cannot be built", "gone.urdf"]),
    ]
    for args, fragments in cases:
        assert_user_error(run_script("run_exported.py", *args), *fragments)


def test_policy_json_gives_each_joints_step_and_speed_and_an_older_one_is_read_as_trained_without_the_limits(
        tmp_path):
    """A robot whose URDF limits some joints below the control step's cap (the Panda's first four, 2.175 rad/s,
    which is also the arm's clamp): policy.json says each joint's step and speed, so a robot's driver can apply
    the same rule; a description exported before the setting existed is read as trained without it."""
    from arm_a3c.a3c.checkpoint import save_untrained_checkpoint
    from arm_a3c.export import export_policy

    checkpoint = save_untrained_checkpoint("panda", tmp_path / "panda.pt")
    meta = export_policy(checkpoint, tmp_path / "policy.onnx")
    joints, hz = meta["controlled_joints"], meta["control"]["hz"]
    assert meta["environment"]["urdf_speed_limits"] is True and meta["environment"]["self_collision"] is True
    assert joints[0]["urdf_velocity_limit"] == 2.175 and joints[0]["max_step"] == pytest.approx(2.175 / hz)
    assert joints[0]["max_speed"] == pytest.approx(2.175)
    assert meta["control"]["speed_clamp"] == 2.175
    assert joints[4]["urdf_velocity_limit"] == 2.61 and joints[4]["max_step"] == pytest.approx(2.175 / hz)
    from arm_a3c.deploy.policy_file import read_description

    older = json.loads((tmp_path / "policy.json").read_text())
    del older["environment"]["urdf_speed_limits"], older["environment"]["self_collision"]
    (tmp_path / "older.json").write_text(json.dumps(older))
    environment = read_description(tmp_path / "older.json")["environment"]
    assert environment["urdf_speed_limits"] is False and environment["self_collision"] is False
