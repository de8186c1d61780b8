"""The commands that take a checkpoint's policy: `evaluate.py` and `export.py`."""

from __future__ import annotations

from typing import Sequence

from arm_a3c.cli.common import EPISODES, SEED, ArgumentParser, add_assets_argument, add_moved_urdf_argument


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/evaluate.py`: evaluate a checkpoint deterministically; prints one JSON object."""
    import json
    from pathlib import Path

    parser = ArgumentParser(prog="evaluate.py", description=evaluate_main.__doc__)
    add_assets_argument(parser)
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="PATH", help="a .pt file of a run")
    parser.add_argument("--episodes", type=EPISODES, help="episodes (default: as many as the checkpoint's own "
                                                            "evaluation played, so its figures are reproduced)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=SEED, help="seed of the first episode (default: the evaluator's)")
    seeds.add_argument("--test", action="store_true",
                       help="play the run's held-out test episodes (--test-seed, 200 by default: seeds that never "
                            "stopped the run or picked best.pt) instead of the evaluator's")
    parser.add_argument("--robustness", action="store_true",
                        help="play the same episodes with 0 to 3 control periods of action latency and with encoder "
                             "noise off, nominal and twice nominal; prints each point's figures as JSON and a table "
                             "on stderr")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="with --robustness: draw success against latency "
                                                                 "and noise into this picture")
    add_moved_urdf_argument(parser)
    args = parser.parse_args(argv)
    if args.plot and not args.robustness:
        parser.error("--plot draws the robustness grid: give --robustness too")
    if args.robustness:
        import sys

        from arm_a3c.files import is_our_png, refuse_foreign

        if args.plot:
            refuse_foreign(args.plot, is_our_png, "--plot")  # before minutes of episodes, not after
        from arm_a3c.a3c.robustness import plot, robustness, table  # torch loads here

        result = robustness(args.checkpoint, args.episodes, args.seed, test=args.test, urdf=args.urdf)
        print(table(result), file=sys.stderr)
        if args.plot:
            plot(result, args.plot)
            print(f"wrote {args.plot}", file=sys.stderr)
        print(json.dumps(result, indent=2))
        return 0
    from arm_a3c.a3c.evaluator import evaluate_checkpoint  # torch loads here, not when --help is asked for

    print(json.dumps(evaluate_checkpoint(args.checkpoint, args.episodes, args.seed, test=args.test, urdf=args.urdf),
                     indent=2))
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
