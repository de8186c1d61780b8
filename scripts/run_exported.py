"""Example: drive a fresh environment with an exported ONNX policy alone (onnxruntime; no checkpoint, no torch).

    python scripts/run_exported.py --policy policy.onnx --episodes 200 --seed 5000000

The JSON file beside the policy (policy.json, written by `arm-a3c export`) says how to rebuild the environment it
was trained in. Prints the success rate and mean final distance over the episodes as JSON: on the same seeds,
the same figures as `evaluate.py` gives for the checkpoint the policy came from.
"""

import argparse
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # run from a checkout, no install


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", required=True, type=pathlib.Path, help="an exported .onnx policy")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5_000_000, help="seed of the first episode")
    args = parser.parse_args()
    meta_path = args.policy.with_suffix(".json")
    if not args.policy.is_file() or not meta_path.is_file():
        print(f"error: need {args.policy} and {meta_path} (written by arm-a3c export)", file=sys.stderr)
        return 2
    meta = json.loads(meta_path.read_text())

    import onnxruntime

    from arm_a3c.envs.arm_env import make_env

    session = onnxruntime.InferenceSession(str(args.policy), providers=["CPUExecutionProvider"])
    env = make_env(**meta["environment"])
    successes, distances = [], []
    for episode in range(args.episodes):
        obs, info = env.reset(seed=args.seed + episode)
        done = False
        while not done:
            action = session.run(None, {meta["input"]["name"]: obs[None, :].astype(np.float32)})[0][0]
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        successes.append(bool(info["is_success"]))
        distances.append(float(info["distance"]))
    env.close()
    print(json.dumps({"success_rate": float(np.mean(successes)), "mean_final_distance_m": float(np.mean(distances)),
                      "episodes": args.episodes, "seed": args.seed, "robot": meta["robot"], "task": meta["task"]},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
