"""Example: drive a fresh environment with an exported ONNX policy alone (onnxruntime; no checkpoint, no torch).

    python scripts/run_exported.py --policy policy.onnx --episodes 200 --seed 5000000

The JSON file beside the policy (policy.json, written by `arm-a3c export`) says how to rebuild the environment it
was trained in. Prints the figures of the episodes (success rate, mean final distance, ...) as JSON: played by the
same loop as `evaluate.py`'s, so on the same seeds they are the figures it gives for the checkpoint the policy came
from. Like arm-a3c's commands, it checks its flags and files first: a mistake is one line, exit status 2.
"""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # run from a checkout, no install

from arm_a3c.cli.common import EPISODES, SEED, ArgumentParser, run  # noqa: E402
from arm_a3c.deploy.policy_file import ExportedPolicy, policy_files  # noqa: E402
from arm_a3c.errors import UserError  # noqa: E402


def main(argv=None) -> int:
    parser = ArgumentParser(prog="run_exported.py", description=__doc__.split("\n")[0])
    parser.add_argument("--policy", required=True, type=pathlib.Path, help="an exported .onnx policy")
    parser.add_argument("--episodes", type=EPISODES, default=200)
    parser.add_argument("--seed", type=SEED, default=5_000_000, help="seed of the first episode")
    args = parser.parse_args(argv)
    meta_path, meta = policy_files(args.policy)

    from arm_a3c.envs.arm_env import make_env
    from arm_a3c.envs.episodes import EpisodeProgress, run_episodes

    try:
        env = make_env(**meta["environment"])
    except UserError as err:
        raise UserError(f"{meta_path}: its environment cannot be built: {err}") from None
    try:
        policy = ExportedPolicy(args.policy, env.observation_space.shape[0], env.action_space.shape[0])
        summary = run_episodes(env, policy, args.episodes, args.seed,
                               EpisodeProgress(args.episodes, f"running {args.policy}"))
    finally:
        env.close()
    print(json.dumps({**summary, "robot": env.robot.name, "task": env.config.task}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
