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

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # run from a checkout, no install

from arm_a3c.cli.common import EPISODES, SEED, ArgumentParser, run  # noqa: E402
from arm_a3c.errors import UserError  # noqa: E402


def read_description(path: pathlib.Path) -> dict:
    """policy.json, checked: a damaged or foreign file is one line here, not a traceback further on."""
    from arm_a3c.envs.arm_env import ENVIRONMENT_SAVED_BEFORE_FIELD_EXISTED, ENVIRONMENT_SETTINGS

    try:
        meta = json.loads(path.read_text())
        fits = isinstance(meta["environment"], dict) and set(meta["environment"]) <= set(ENVIRONMENT_SETTINGS)
    except (OSError, ValueError, KeyError, TypeError):
        fits = False
    if not fits:
        raise UserError(f"{path} is not a policy description written by arm-a3c export (damaged, or another file); "
                        f"export the policy again")
    meta["environment"] = {**ENVIRONMENT_SAVED_BEFORE_FIELD_EXISTED, **meta["environment"]}  # an older export's
    return meta


def load_session(path: pathlib.Path, env):
    """The policy as an onnxruntime session, checked against `env`: a damaged model, or another environment's,
    is one line."""
    import onnxruntime
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, InvalidGraph, InvalidProtobuf

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except (Fail, InvalidArgument, InvalidGraph, InvalidProtobuf) as err:
        reason = str(err).rpartition(":")[2].strip(" .")  # after onnxruntime's "[ONNXRuntimeError] : 7 : ..."
        raise UserError(f"{path} is not an ONNX model onnxruntime can load ({reason}); export the policy again") \
            from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    sizes = (env.observation_space.shape[0], env.action_space.shape[0])
    if len(inputs) != 1 or len(outputs) != 1 or inputs[0].type != "tensor(float)" \
            or (inputs[0].shape[1:], outputs[0].shape[1:]) != ([sizes[0]], [sizes[1]]):
        raise UserError(f"{path} is not the policy its description is for (one that takes {sizes[0]} observation "
                        f"floats to {sizes[1]} actions); export the policy again")
    return session


def main(argv=None) -> int:
    parser = ArgumentParser(prog="run_exported.py", description=__doc__.split("\n")[0])
    parser.add_argument("--policy", required=True, type=pathlib.Path, help="an exported .onnx policy")
    parser.add_argument("--episodes", type=EPISODES, default=200)
    parser.add_argument("--seed", type=SEED, default=5_000_000, help="seed of the first episode")
    args = parser.parse_args(argv)
    if not args.policy.is_file():
        raise UserError(f"--policy {args.policy}: no such file; give the .onnx file arm-a3c export wrote")
    meta_path = args.policy.with_suffix(".json")
    if not meta_path.is_file():
        raise UserError(f"{meta_path} is missing: arm-a3c export writes it beside {args.policy}; keep the two together")
    meta = read_description(meta_path)

    from arm_a3c.envs.arm_env import make_env
    from arm_a3c.envs.episodes import EpisodeProgress, run_episodes

    try:
        env = make_env(**meta["environment"])
    except UserError as err:
        raise UserError(f"{meta_path}: its environment cannot be built: {err}") from None
    try:
        session = load_session(args.policy, env)
        name = session.get_inputs()[0].name
        summary = run_episodes(env, lambda obs: session.run(None, {name: obs[None, :].astype(np.float32)})[0][0],
                               args.episodes, args.seed, EpisodeProgress(args.episodes, f"running {args.policy}"))
    finally:
        env.close()
    print(json.dumps({**summary, "robot": env.robot.name, "task": env.config.task}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
