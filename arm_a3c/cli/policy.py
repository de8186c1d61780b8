"""The commands that take a checkpoint's policy: `evaluate.py`, `transfer.py` and `export.py`."""

from __future__ import annotations

from typing import Sequence

from arm_a3c.cli.common import EPISODES, SEED, ArgumentParser, add_assets_argument, add_moved_urdf_argument


def add_episode_arguments(parser: ArgumentParser) -> None:
    """The flags of the commands that play a checkpoint's episodes: --assets, --checkpoint, --episodes and
    --seed or --test."""
    from pathlib import Path

    add_assets_argument(parser)
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="PATH", help="a .pt file of a run")
    parser.add_argument("--episodes", type=EPISODES, help="episodes (default: as many as the checkpoint's own "
                                                            "evaluation played, so its figures are reproduced)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=SEED, help="seed of the first episode (default: the evaluator's)")
    seeds.add_argument("--test", action="store_true",
                       help="play the run's held-out test episodes (--test-seed, 200 by default: seeds that never "
                            "stopped the run or picked best.pt) instead of the evaluator's")


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/evaluate.py`: evaluate a checkpoint deterministically; prints one JSON object."""
    import json
    from pathlib import Path

    from arm_a3c.envs.mujoco_env import SIMULATORS

    parser = ArgumentParser(prog="evaluate.py", description=evaluate_main.__doc__)
    add_episode_arguments(parser)
    parser.add_argument("--robustness", action="store_true",
                        help="play the same episodes with 0 to 3 control periods of action latency, with encoder "
                             "noise off, nominal and twice nominal, and with the links' masses and the motors' gains "
                             "at the ends of their ranges; prints each point's figures as JSON and a table on stderr")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="with --robustness: draw success against latency, "
                                                                 "noise and dynamics into this picture")
    parser.add_argument("--sim", choices=SIMULATORS, default="pybullet",
                        help="the simulator that plays the episodes: pybullet (where the policy was trained) or mujoco "
                             "(the same goals and policy in a second physics engine; needs pip install "
                             "'arm-a3c[mujoco]'; transfer.py shows both side by side)")
    add_moved_urdf_argument(parser)
    args = parser.parse_args(argv)
    if args.plot and not args.robustness:
        parser.error("--plot draws the robustness grid: give --robustness too")
    if args.robustness and args.sim != "pybullet":
        parser.error("--robustness plays its grid in PyBullet only; leave out --sim")
    if args.sim == "mujoco":
        from arm_a3c.sim.mujoco_twin import import_mujoco

        import_mujoco()  # a missing package is said before the checkpoint is read
    if args.robustness:
        import os
        import sys

        from arm_a3c.files import is_our_png, refuse_foreign

        if args.plot:
            refuse_foreign(args.plot, is_our_png, "--plot")  # before minutes of episodes, not after
        from arm_a3c.a3c.children import children_context
        from arm_a3c.a3c.robustness import plot, robustness, table  # torch loads here

        result = robustness(args.checkpoint, args.episodes, args.seed, test=args.test, urdf=args.urdf,
                            ctx=children_context(), processes=os.cpu_count() or 1)  # a point per core at once
        print(table(result), file=sys.stderr)
        if args.plot:
            plot(result, args.plot)
            print(f"wrote {args.plot}", file=sys.stderr)
        print(json.dumps(result, indent=2))
        return 0
    from arm_a3c.a3c.evaluator import evaluate_checkpoint  # torch loads here, not when --help is asked for

    print(json.dumps(evaluate_checkpoint(args.checkpoint, args.episodes, args.seed, test=args.test, urdf=args.urdf,
                                         sim=args.sim), indent=2))
    return 0


def transfer_main(argv: Sequence[str] | None = None) -> int:
    """`arm-a3c transfer`: play a checkpoint's episodes in PyBullet and in a second simulator (MuJoCo), the same
    goals and deterministic policy, and print both simulators' success, distance and safety figures as JSON (a
    table on stderr)."""
    import json
    import sys

    from arm_a3c.envs.mujoco_env import SIMULATORS
    from arm_a3c.sim.mujoco_twin import MOTOR_MODELS

    parser = ArgumentParser(prog="transfer.py", description=transfer_main.__doc__)
    add_episode_arguments(parser)
    parser.add_argument("--sim", choices=SIMULATORS[1:], default="mujoco",
                        help="the second simulator (needs pip install 'arm-a3c[mujoco]')")
    parser.add_argument("--motor", choices=MOTOR_MODELS, default=MOTOR_MODELS[0],
                        help="how MuJoCo drives the joints: constraint (PyBullet's motor: each physics step, the "
                             "torques within the URDF's effort that give the velocity kp * error / dt), velocity (a "
                             "stiff velocity servo on that velocity, effort not held) or position (a stiff position "
                             "servo with the effort as its force range); see docs/transfer.md")
    add_moved_urdf_argument(parser)
    args = parser.parse_args(argv)
    from arm_a3c.a3c.transfer import table, transfer  # torch loads here

    result = transfer(args.checkpoint, args.episodes, args.seed, test=args.test, urdf=args.urdf, motor=args.motor,
                      say=lambda line: print(line, file=sys.stderr))
    print(table(result), file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0

def export_main(argv: Sequence[str] | None = None) -> int:
    """`arm-a3c export`: write a checkpoint's deterministic policy, normaliser inside, as ONNX or TorchScript, with
    a JSON description of its input and output beside it."""
    from pathlib import Path

    parser = ArgumentParser(prog="export.py", description=export_main.__doc__)
    add_assets_argument(parser)
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="PATH", help="a .pt file of a run")
    parser.add_argument("--out", required=True, type=Path, metavar="PATH",
                        help="the model file to write (policy.onnx); the description goes beside it as policy.json")
    parser.add_argument("--format", choices=["onnx", "torchscript"],
                        help="default: onnx for a .onnx file name, else torchscript")
    add_moved_urdf_argument(parser)
    args = parser.parse_args(argv)
    from arm_a3c.export import export_policy  # torch loads here

    info = export_policy(args.checkpoint, args.out, args.format, urdf=args.urdf)
    print(f"wrote {args.out} ({info['model_format']}: {info['input']['shape'][1]} observation floats in, "
          f"{info['output']['shape'][1]} actions in [-1, 1] out; normaliser inside) and "
          f"{args.out.with_suffix('.json')} ({info['robot']}, task {info['task']})")
    return 0
