"""Command-line plumbing shared by the scripts: one-line errors with exit status 2, and robot selection."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, NamedTuple, Sequence

from arm_a3c.errors import UserError
from arm_a3c.files import is_our_png, json_with_keys, refuse_foreign, write_atomically
from arm_a3c.limits import MAX_EPISODES, MAX_FRAMES, MAX_SEED, MAX_WORKERS
from arm_a3c.sim.assets import DEFAULT_ROBOT

USAGE_ERROR = 2  # exit status for every mistake a user can make (argparse's own convention)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its error report folded into one line that points at --help."""

    command: str | None = None  # "arm-a3c train" when the arm-a3c command runs a script's main

    def __init__(self, *args, **kwargs):
        if ArgumentParser.command:
            kwargs["prog"] = ArgumentParser.command
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high], the range named in the error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: between {low:,} and {high:,}")
        return value

    parse.__name__ = "int"  # argparse names the type in its message
    return parse


def positive_number(high: float) -> Callable[[str], float]:
    """An argparse type: a number above 0 and at most `high` (so never NaN or infinite)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if not 0 < value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: above 0 and at most {high:,g}")
        return value

    parse.__name__ = "number"
    return parse


MAX_BENCH_SECONDS = 24 * 3600.0  # any one part of a benchmark
EPISODES = bounded_int(1, MAX_EPISODES)
SEED = bounded_int(0, MAX_SEED)


def _assets_folder(text: str) -> str:
    from arm_a3c.sim.assets import add_assets_dir

    if not text:
        raise argparse.ArgumentTypeError("an empty folder name; give a folder of robots")
    add_assets_dir(text)  # at once: the robot lookups and the processes started later see it
    return text


def add_assets_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--assets", metavar="DIR", type=_assets_folder, action="append",
                        help="another folder of robots, searched before the shipped ones (repeatable; the variable "
                             "ARM_A3C_ASSETS does the same, folders separated like PATH)")


def add_moved_urdf_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--urdf", metavar="PATH",
                        help="the robot's .urdf file, when it is no longer where the run found it (default: the "
                             "path the run recorded)")


def add_robot_arguments(parser: argparse.ArgumentParser) -> None:
    add_assets_argument(parser)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--robot", metavar="NAME",
                       help=f"robot in assets/: assets/NAME.urdf or assets/NAME/<one>.urdf (default {DEFAULT_ROBOT})")
    group.add_argument("--urdf", metavar="PATH", help="path to a .urdf file instead of a robot name")
    parser.add_argument("--ee-link", metavar="LINK",
                        help="end-effector link name (default: from the robot's sidecar .toml, else the deepest link)")
    parser.add_argument("--ee-offset-m", nargs=3, type=float, metavar=("X", "Y", "Z"),
                        help="tool point in the end-effector link's frame, metres (default: the sidecar's "
                             "ee_offset_m, else the link's origin)")
    parser.add_argument("--home", nargs="+", type=_home_token, metavar="Q",
                        help="start pose: one value per controlled joint (rad or m, in inspect_robot.py's order), "
                             "or 'auto' (the rule inspect_robot.py explains) or 'zero' (default: the sidecar's "
                             "home, else auto)")


def _home_token(text: str) -> float | str:
    if text in ("auto", "zero"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number, 'auto' or 'zero'") from None


def home_from_args(args: argparse.Namespace) -> list[float] | str | None:
    """--home as numbers or one word (None when not given)."""
    tokens = getattr(args, "home", None)
    if tokens is None:
        return None
    words = [t for t in tokens if isinstance(t, str)]
    if words and len(tokens) > 1:
        raise UserError(f"--home takes numbers or one word ('auto' or 'zero'), not both: {' '.join(map(str, tokens))}")
    return words[0] if words else list(tokens)


def robot_from_args(args: argparse.Namespace) -> str | None:
    """The robot name or URDF path that the arguments select (None means the default robot)."""
    urdf = getattr(args, "urdf", None)
    if urdf is not None and not str(urdf).endswith((".urdf", ".toml")):
        # a robot is a file by its suffix (a name never leaves the assets folders): say so where the file is named
        raise UserError(f"--urdf {urdf}: give a file whose name ends in .urdf (or a .toml robot descriptor); "
                        f"rename or copy it")
    return urdf or args.robot


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a script's main; a `UserError` becomes one line on stderr and exit status 2, no traceback."""
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output went to a pager or `head` that has quit: not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _make_env(args: argparse.Namespace):
    from arm_a3c.envs.arm_env import make_env

    return make_env(args, robot=robot_from_args(args), home=home_from_args(args))


def inspect_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/inspect_robot.py`: show what arm-a3c understood of a robot, and a snapshot picture."""
    import json
    from pathlib import Path

    from arm_a3c.envs.describe import describe, format_text, save_snapshot

    parser = ArgumentParser(prog="inspect_robot.py", description=inspect_main.__doc__)
    parser.add_argument("name", nargs="?", metavar="ROBOT", help="robot name in assets/ or path to a .urdf file")
    add_robot_arguments(parser)
    parser.add_argument("--task", default="reach", metavar="NAME",
                        help="show the joints and observation of this task (default reach; pose controls wrist rolls)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--snapshot", metavar="PNG", type=Path,
                        help="where to write the snapshot (default runs/inspect/ROBOT.png)")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the snapshot's pose and target")
    parser.add_argument("--gallery", metavar="PNG", type=Path,
                        help="write one picture of every robot in assets/ at its home pose (or of ROBOT only)")
    args = parser.parse_args(argv)
    if args.name and (args.robot or args.urdf):
        parser.error("give the robot either as ROBOT or with --robot/--urdf, not both")
    args.robot = args.robot or args.name
    if args.gallery:
        from arm_a3c.envs.describe import save_gallery
        from arm_a3c.sim.assets import available_robots

        robots = [args.urdf or args.robot] if (args.robot or args.urdf) else list(available_robots())
        refuse_foreign(args.gallery, is_our_png, "--gallery")
        try:
            print(f"wrote {save_gallery(robots, args.gallery)} ({', '.join(map(str, robots))})")
        except OSError as err:
            raise UserError(f"cannot write the gallery {args.gallery} ({err.strerror}); pass --gallery PATH") from None
        return 0
    if not (args.robot or args.urdf):
        return _list_robots(args.json)

    env = _make_env(args)
    try:
        info = describe(env)
        snapshot = args.snapshot or Path("runs") / "inspect" / f"{env.robot.name}.png"
        refuse_foreign(snapshot, is_our_png, "--snapshot")
        try:
            info["snapshot"] = str(save_snapshot(env, snapshot, args.seed))
        except OSError as err:
            raise UserError(f"cannot write the snapshot {snapshot} ({err.strerror}); pass --snapshot PATH") from None
    finally:
        env.close()
    print(json.dumps(info, indent=2) if args.json else format_text(info))
    return 0


def _list_robots(as_json: bool) -> int:
    """`inspect_robot.py` without a robot: every robot it can find, and where each comes from."""
    import json
    from pathlib import Path

    from arm_a3c.sim.assets import ASSETS_DIR, DEFAULT_ROBOT, robot_catalogue, search_path

    rows = robot_catalogue()
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"robots in {', '.join(str(folder) for folder in search_path())} (train one with --robot NAME, inspect "
          f"it with inspect_robot.py NAME; default {DEFAULT_ROBOT}; more folders with --assets DIR or "
          f"$ARM_A3C_ASSETS):")
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        found = Path(r["found"]).relative_to(ASSETS_DIR.parent) if Path(r["found"]).is_relative_to(
            ASSETS_DIR.parent) else r["found"]
        if r["error"]:
            print(f"  {r['name']:<{width}}  {found}: cannot be used: {r['error']}")
            continue
        via = "" if r["urdf"] == r["found"] else f"  (named by {found})"
        print(f"  {r['name']:<{width}}  {r['urdf']}{via}")
        for key in ("source", "licence"):
            if r[key]:
                print(f"  {'':<{width}}    {key}: {r[key]}")
    print("or pass any URDF with --urdf PATH; docs/robots.md explains the settings file")
    return 0


def bench_env_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/bench_env.py`: environment steps per second beside raw physics, for each robot."""
    import json
    from pathlib import Path

    from arm_a3c.bench.env_speed import measure_env_speed
    from arm_a3c.sim.assets import available_robots

    parser = ArgumentParser(prog="bench_env.py", description=bench_env_main.__doc__)
    parser.add_argument("--robots", nargs="+", metavar="NAME", help="robots to measure (default: all in assets/)")
    parser.add_argument("--steps", type=bounded_int(1, 10_000_000), default=3000,
                        help="control steps per round (default 3000)")
    parser.add_argument("--rounds", type=bounded_int(1, 1000), default=5, help="alternating env/raw rounds (default 5)")
    parser.add_argument("--json", metavar="PATH", type=Path, default=Path("bench_env.json"),
                        help="where to write the results (default bench_env.json)")
    args = parser.parse_args(argv)
    refuse_foreign(args.json, json_with_keys("robot", "env_steps_per_s"), "--json")

    results = [measure_env_speed(robot, args.steps, args.rounds).as_dict()
               for robot in args.robots or available_robots()]
    print(f"{'robot':<14} {'env steps/s':>12} {'raw steps/s':>12} {'env/raw':>8}   (substeps per step)")
    for r in results:
        print(f"{r['robot']:<14} {r['env_steps_per_s']:>12,.0f} {r['raw_steps_per_s']:>12,.0f} "
              f"{r['ratio']:>8.2f}   ({r['substeps']})")
    try:
        write_atomically(args.json, (json.dumps(results, indent=2) + "\n").encode())
    except OSError as err:
        raise UserError(f"cannot write {args.json} ({err.strerror}); pass --json PATH") from None
    print(f"wrote {args.json}")
    return 0


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per `TrainConfig` field (`--n-steps` for `n_steps`), typed and described by the field. A flag
    that is not given stays out of the parsed arguments (so `--resume` can tell what the user changed)."""
    import dataclasses

    from arm_a3c.a3c.config import TrainConfig

    add_robot_arguments(parser)
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("robot", "ee_link", "ee_offset_m", "home", "robot_file"):
            continue
        flag, default = "--" + f.name.replace("_", "-"), f.default
        help_text = f"{f.metadata['help']} (default {default})"
        if f.name == "task":
            from arm_a3c.tasks import TASKS

            help_text += "; " + "; ".join(f"{name}: {task.summary}" for name, task in TASKS.items())
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=help_text)
        else:
            kind = type(default) if default is not None else str
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, metavar=kind.__name__.upper(),
                                help=help_text)


def given_config(args: argparse.Namespace) -> dict:
    """The `TrainConfig` fields the user set on the command line."""
    import dataclasses

    from arm_a3c.a3c.config import TrainConfig

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    values.pop("robot", None)
    if robot_from_args(args):
        values["robot"] = robot_from_args(args)
    for name in ("ee_link", "ee_offset_m"):
        if getattr(args, name, None) is None:
            values.pop(name, None)
    values.pop("home", None)
    home = home_from_args(args)
    if home is not None:
        values["home"] = home
    return values


def train_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/train_arm.py`: train a robot arm to reach with A3C, one worker process per core."""
    from pathlib import Path

    from arm_a3c.a3c.config import TrainConfig

    parser = ArgumentParser(prog="train_arm.py", description=train_main.__doc__)
    run = parser.add_mutually_exclusive_group()
    run.add_argument("--resume", type=Path, metavar="DIR",
                     help="continue the run in DIR (runs/NAME) from its latest checkpoint; flags given with it "
                          "change its settings (--max-minutes counts from now, --max-steps counts all steps)")
    run.add_argument("--force", action="store_true",
                     help="start a new run even if --run-dir holds one (its files are deleted)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    given = given_config(args)
    if args.resume:
        from arm_a3c.a3c.rundir import resume_config

        cfg = resume_config(args.resume, given)
    else:
        cfg = TrainConfig(**given)
    cfg.check()  # a bad flag is one line before torch and PyBullet load (seconds here)

    from arm_a3c.a3c.launcher import train
    from arm_a3c.backends import backend_for

    backend = backend_for(cfg.backend)
    viewer = None
    if cfg.view:
        from arm_a3c.viewer.window import view_process  # pygame loads only when --view asks for it

        viewer = view_process
    summary = train(cfg, backend, resume=args.resume is not None, force=args.force, viewer=viewer)
    return 1 if summary["error"] else 0


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
    add_moved_urdf_argument(parser)
    args = parser.parse_args(argv)
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


def oracle_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/oracle.py`: can a robot do a task? The scripted IK oracle (no learning) plays seeded episodes and
    prints their figures as one JSON object."""
    import json

    from arm_a3c.tasks import TASKS

    parser = ArgumentParser(prog="oracle.py", description=oracle_main.__doc__)
    add_robot_arguments(parser)
    parser.add_argument("--task", default="reach", metavar="NAME", help=f"one of {', '.join(TASKS)} (default reach)")
    parser.add_argument("--episodes", type=EPISODES, default=100, help="episodes (default 100)")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the first episode (default 0)")
    args = parser.parse_args(argv)
    from arm_a3c.envs.oracle import oracle_episodes

    env = _make_env(args)
    try:
        result = oracle_episodes(env, args.episodes, args.seed)
    finally:
        env.close()
    print(json.dumps({"robot": env.robot.name, "task": env.config.task, **result}, indent=2))
    return 0


def view_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/view.py`: watch a training run's arms live, or replay a checkpoint's policy; with neither --run nor
    --checkpoint, the newest run under runs/ (live while it trains, its best.pt once it has finished)."""
    import os
    from pathlib import Path

    parser = ArgumentParser(prog="view.py", description=view_main.__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--run", type=Path, metavar="DIR",
                        help="a run directory (runs/NAME) of a training (default: the newest under runs/)")
    source.add_argument("--checkpoint", type=Path, metavar="PATH", help="replay this checkpoint's policy")
    parser.add_argument("--worker", type=bounded_int(1, MAX_WORKERS), default=1,
                        help="which worker to show first, from 1 (default 1)")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the replay's targets (default 0)")
    parser.add_argument("--record", type=Path, metavar="OUT.gif|OUT.mp4",
                        help="write an animation (GIF) or a video (MP4) instead of opening a window")
    parser.add_argument("--frames", type=bounded_int(1, MAX_FRAMES), default=120,
                        help="frames to record, 30 per second (default 120)")
    add_moved_urdf_argument(parser)
    args = parser.parse_args(argv)
    if args.record is not None and args.record.suffix.lower() not in (".gif", ".mp4"):
        parser.error(f"--record {args.record}: name the file with .gif or .mp4")
    if args.run is None and args.checkpoint is None:
        from arm_a3c.a3c.rundir import DEFAULT_RUNS, newest_run

        args.run = newest_run(DEFAULT_RUNS)
        if args.run is None:
            raise UserError(f"no run under {DEFAULT_RUNS}/ to watch: start one with python scripts/train_arm.py (in "
                            f"another terminal), or pass --run DIR or --checkpoint PATH")
        print(f"watching the newest run under {DEFAULT_RUNS}/: {args.run} (--run DIR picks another)", flush=True)
    if args.record is not None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # no window needed to record
    from arm_a3c.viewer.window import show  # after SDL_VIDEODRIVER: pygame reads it when it loads

    return show(args.run, args.checkpoint, args.worker - 1, args.seed, args.record, args.frames, urdf=args.urdf)


def bench_viewer_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/bench_viewer.py`: frames per second of the viewer's drawing at 800x600, for each robot."""
    from arm_a3c.bench.viewer_speed import measure_viewer_fps
    from arm_a3c.sim.assets import available_robots

    parser = ArgumentParser(prog="bench_viewer.py", description=bench_viewer_main.__doc__)
    parser.add_argument("--robots", nargs="+", metavar="NAME", help="robots to measure (default: all in assets/)")
    parser.add_argument("--frames", type=bounded_int(1, MAX_FRAMES), default=300,
                        help="frames to draw per robot (default 300)")
    args = parser.parse_args(argv)
    print(f"{'robot':<14} {'triangles':>9} {'frames/s':>9}   (800x600, scene and HUD, off-screen)")
    for robot in args.robots or available_robots():
        r = measure_viewer_fps(robot, args.frames)
        print(f"{r['robot']:<14} {r['triangles']:>9} {r['fps']:>9.1f}")
    return 0


def bench_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/bench.py`: the training benchmark, per robot: the machine's limits (random actions and the policy's
    own), A3C throughput and scaling, time and steps to 80% and 95% success beside tuned SB3/sb3-contrib peers
    (A2C, PPO, SAC, TD3, TQC), held-out success and peak memory; prints tables, writes bench.json and bench.png."""
    import os
    from pathlib import Path

    from arm_a3c.bench.peers import PEERS
    from arm_a3c.bench.training import (QUICK, TUNED_PEERS, BenchOptions, BenchProgress, format_table, plot_benchmark,
                                        run_benchmark, source_commit)

    parser = ArgumentParser(prog="bench.py", description=bench_main.__doc__)
    parser.add_argument("--robots", nargs="+", default=["light_arm", "kuka_iiwa"], metavar="NAME",
                        help="robots to benchmark, one after the other (default light_arm kuka_iiwa)")
    parser.add_argument("--workers", type=bounded_int(1, MAX_WORKERS), default=os.cpu_count() or 1,
                        help="A3C workers, limit processes, and the peers' environments or torch threads (default: "
                             "the cores)")
    parser.add_argument("--budget-minutes", type=positive_number(MAX_BENCH_SECONDS / 60), default=10.0,
                        help="time budget of each time-to-success run, arm-a3c and every peer (default 10)")
    parser.add_argument("--seeds", type=SEED, nargs="+", default=[0, 1, 2], metavar="SEED",
                        help="one time-to-success run per seed and algorithm; medians are compared (default 0 1 2)")
    parser.add_argument("--peers", nargs="*", choices=[*sorted(PEERS), "none"], default=list(TUNED_PEERS),
                        help="algorithms to compare with (default: the tuned a2c ppo sac td3 tqc; a2c-defaults and "
                             "ppo-defaults run the library defaults; none, or no name: only arm-a3c)")
    parser.add_argument("--quick", action="store_true",
                        help="seconds instead of minutes: a smoke test of the benchmark, not a measurement")
    parser.add_argument("--json", type=Path, default=Path("bench.json"), metavar="PATH",
                        help="where to write the results (default bench.json; the picture goes beside it as .png)")
    parser.add_argument("--work-dir", type=Path, default=Path("runs") / "bench", metavar="DIR",
                        help="where the benchmark's training runs go (default runs/bench)")
    parser.add_argument("--resume", action="store_true",
                        help="go on with an interrupted benchmark: the parts it finished (kept in the --json file's "
                             ".progress.json twin while it runs) are taken as they are and the rest runs; same flags "
                             "and same commit required")
    args = parser.parse_args(argv)
    if "none" in args.peers:
        if len(args.peers) > 1:
            parser.error("--peers none means only arm-a3c: give it alone, or name the peers")
        args.peers = []
    options = BenchOptions(robots=tuple(args.robots), workers=args.workers, budget_seconds=args.budget_minutes * 60,
                           seeds=tuple(args.seeds), peers=tuple(args.peers))
    if args.quick:
        options = BenchOptions(**{**options.__dict__, **QUICK})
    progress = BenchProgress.start(args.json.with_name(args.json.stem + ".progress.json"), options, source_commit(),
                                   args.resume)

    def run_and_plot(work_dir, log):
        result = run_benchmark(options, work_dir, log, progress)
        picture = args.json.with_suffix(".png")
        try:
            plot_benchmark(result, picture)
        except OSError as err:
            raise UserError(f"cannot write {picture} ({err.strerror}); pass --json PATH") from None
        log(f"wrote {picture}")
        return result

    return _run_benchmark(args, run_and_plot, format_table, written=progress.remove)


def _run_benchmark(args: argparse.Namespace, run: Callable, format_table: Callable[[dict], str],
                   written: Callable[[], None] = lambda: None) -> int:
    """What the training benchmarks share: check --robot and --work-dir, `run(work_dir, log)`, print its table
    and write it with the results to --json."""
    import json

    ours = json_with_keys("options", "table")
    refuse_foreign(args.json, ours, "--json")
    refuse_foreign(args.json.with_suffix(".png"), lambda png: is_our_png(png) or ours(args.json), "--json")
    for robot in getattr(args, "robots", None) or [args.robot]:  # a bad robot fails here
        _make_env(argparse.Namespace(urdf=None, robot=robot, ee_link=None)).close()
    try:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot write to {args.work_dir} ({err.strerror}); pass --work-dir DIR") from None
    result = run(args.work_dir.resolve(), lambda line: print(line, flush=True))
    table = format_table(result)
    print("\n" + table)
    try:
        write_atomically(args.json, (json.dumps({**result, "table": table}, indent=2) + "\n").encode())
    except OSError as err:
        raise UserError(f"cannot write {args.json} ({err.strerror}); pass --json PATH") from None
    print(f"wrote {args.json}")
    _tables_of(args.json)
    written()
    return 0


def _tables_of(json_path) -> None:
    """Make again the docs' tables that are made from `json_path` (none, unless the benchmark wrote into docs/)."""
    from arm_a3c.bench.tables import ROOT, update_tables

    if not (ROOT / "mkdocs.yml").is_file():  # an installed package: no docs of its own to keep
        return
    for document in update_tables(json_path):
        print(f"rewrote the tables of {document.relative_to(ROOT)} from {json_path}")


def profile_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/profile_training.py`: run a training under py-spy (every process) and say where its CPU went: per
    process role, and inside the workers per part of the loop and per function. Arguments it does not know go to
    train_arm.py, e.g. `profile_training.py --robot kuka_iiwa --max-minutes 1`."""
    import json
    import tempfile
    from pathlib import Path

    from arm_a3c.bench.profile import format_profile, profile_training

    parser = ArgumentParser(prog="profile_training.py", description=profile_main.__doc__)
    parser.add_argument("--rate", type=bounded_int(1, 1000), default=100,
                        help="samples per second of each process (default 100)")
    parser.add_argument("--raw", type=Path, metavar="PATH",
                        help="keep py-spy's raw samples here (default: a temporary file)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the summary here")
    parser.add_argument("--top", type=bounded_int(1, 10_000), default=25, help="functions listed (default 25)")
    args, train_args = parser.parse_known_args(argv)
    if args.json:
        refuse_foreign(args.json, json_with_keys("samples", "roles"), "--json")
    if args.raw:
        refuse_foreign(args.raw, lambda raw: False, "--raw")  # py-spy's text: nothing tells whose it is
    if not any(a == "--max-minutes" or a.startswith("--max-minutes=") or a == "--max-steps" or
               a.startswith("--max-steps=") for a in train_args):
        train_args += ["--max-minutes", "1"]
    # The default target, which the run never stops at: the evaluator screens as in a default run (later flags win).
    from arm_a3c.bench.training import NEVER_STOPS

    train_args = ["--target-streak", str(NEVER_STOPS), "--test-episodes", "0", *train_args]
    with tempfile.TemporaryDirectory() as scratch:
        raw = args.raw or Path(scratch) / "profile.txt"
        result = profile_training(train_args, raw, args.rate)
    result["top"], result["train_args"] = args.top, train_args
    print(format_profile(result))
    if args.json:
        try:
            write_atomically(args.json, (json.dumps(result, indent=2) + "\n").encode())
        except OSError as err:
            raise UserError(f"cannot write {args.json} ({err.strerror}); pass --json PATH") from None
        _tables_of(args.json)
    return 0


def bench_tables_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/bench_tables.py`: make every marked table of README.md and docs/ again from the JSON file it
    names."""
    from arm_a3c.bench.tables import ROOT, stale_tables, update_tables

    parser = ArgumentParser(prog="bench_tables.py", description=bench_tables_main.__doc__)
    parser.add_argument("--check", action="store_true",
                        help="change nothing: list the tables that differ from their files (exit status 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_tables()
        for line in stale:
            print(f"differs from its file: {line}")
        print(f"{len(stale)} table(s) differ from their files" if stale else "every table matches its file")
        return 1 if stale else 0
    changed = update_tables()
    for document in changed:
        print(f"rewrote the tables of {document.relative_to(ROOT)}")
    if not changed:
        print("every table already matches its file")
    return 0


def bench_ray_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/bench_ray.py`: the Ray backend's throughput beside the local backend's, and how many workers one
    parameter server can serve; prints a table and writes bench_ray.json."""
    from pathlib import Path

    from arm_a3c.backends.ray import import_ray
    from arm_a3c.bench.ray_backend import QUICK, RayBenchOptions, format_table, run_ray_benchmark

    parser = ArgumentParser(prog="bench_ray.py", description=bench_ray_main.__doc__)
    parser.add_argument("--robot", default="light_arm", metavar="NAME", help="robot to benchmark (default light_arm)")
    parser.add_argument("--workers", type=bounded_int(1, MAX_WORKERS), default=2, help="workers of each run (default 2)")
    parser.add_argument("--seconds", type=positive_number(MAX_BENCH_SECONDS), default=90.0,
                        help="length of each training run (default 90)")
    parser.add_argument("--server-seconds", type=positive_number(MAX_BENCH_SECONDS), default=20.0,
                        help="how long the clients flood the parameter server (default 20)")
    parser.add_argument("--learning-seeds", type=SEED, nargs="*", default=[], metavar="SEED",
                        help="also train to 80%% with the local backend and with the workers spread over simulated "
                             "machines (Ray nodes on this host) behind sync agents, one run per seed each, and compare "
                             "time and environment steps (default: none)")
    parser.add_argument("--machines", type=bounded_int(1, MAX_WORKERS), default=2,
                        help="simulated machines of the learning comparison (default 2; at most --workers)")
    parser.add_argument("--sync-periods", type=positive_number(MAX_BENCH_SECONDS * 1000), nargs="+", default=[],
                        metavar="MS",
                        help="sync periods (--ray-sync-ms) the learning comparison tries (default: the default period)")
    parser.add_argument("--learning-only", action="store_true",
                        help="run only the learning comparison (needs --learning-seeds)")
    parser.add_argument("--quick", action="store_true",
                        help="runs of 5,000 steps and 1 s of flooding: a smoke test of the benchmark, not a measurement")
    parser.add_argument("--json", type=Path, default=Path("bench_ray.json"), metavar="PATH",
                        help="where to write the results (default bench_ray.json)")
    parser.add_argument("--work-dir", type=Path, default=Path("runs") / "bench_ray", metavar="DIR",
                        help="where the benchmark's training runs go (default runs/bench_ray)")
    args = parser.parse_args(argv)
    if args.learning_seeds and not 1 <= args.machines <= args.workers:
        parser.error(f"--machines must be between 1 and --workers ({args.workers}): each machine runs a worker or more")
    if args.learning_only and not args.learning_seeds:
        parser.error("--learning-only needs --learning-seeds SEED [SEED ...]")
    import_ray()
    options = RayBenchOptions(robot=args.robot, workers=args.workers, throughput_seconds=args.seconds,
                              learning_seeds=tuple(args.learning_seeds), learning_machines=args.machines,
                              sync_periods=tuple(args.sync_periods), learning_only=args.learning_only,
                              server_seconds=args.server_seconds)
    if args.quick:
        options = RayBenchOptions(**{**options.__dict__, **QUICK})
    return _run_benchmark(args, lambda work_dir, log: run_ray_benchmark(options, work_dir, log), format_table)


class Command(NamedTuple):
    """One command of the project: `arm-a3c NAME` and `python scripts/SCRIPT` run `main`."""

    main: Callable[[Sequence[str] | None], int]
    summary: str
    script: str


# The one list of commands: the `arm-a3c` command, `python -m arm_a3c` and the tests read it, and a test holds
# every script in scripts/ to its entry here.
COMMANDS = {
    "train": Command(train_main, "train an arm with A3C", "train_arm.py"),
    "view": Command(view_main, "watch a run live or replay a checkpoint; --record a GIF or MP4", "view.py"),
    "evaluate": Command(evaluate_main, "evaluate a checkpoint deterministically", "evaluate.py"),
    "inspect": Command(inspect_main, "what the project understands of a robot; no robot: list them",
                       "inspect_robot.py"),
    "export": Command(export_main, "write a checkpoint's policy as ONNX or TorchScript with a JSON description",
                      "export.py"),
    "oracle": Command(oracle_main, "the scripted IK oracle's success on a task", "oracle.py"),
    "bench": Command(bench_main, "arm-a3c against Stable-Baselines3 on time to success", "bench.py"),
    "bench-env": Command(bench_env_main, "environment steps per second beside raw physics", "bench_env.py"),
    "bench-viewer": Command(bench_viewer_main, "the viewer's frames per second", "bench_viewer.py"),
    "bench-ray": Command(bench_ray_main, "the Ray backend's throughput beside the local backend's", "bench_ray.py"),
    "profile": Command(profile_main, "where a training's CPU goes (py-spy)", "profile_training.py"),
    "bench-tables": Command(bench_tables_main, "make the docs' benchmark tables again from the benchmarks' JSON files",
                            "bench_tables.py"),
}
SCRIPTS = {command.script: command for command in COMMANDS.values()}


def main(argv: Sequence[str] | None = None) -> int:
    """`arm-a3c COMMAND ...` (the installed console command, or `python -m arm_a3c`): the scripts' commands."""
    argv = list(sys.argv[1:] if argv is None else argv)
    width = max(map(len, COMMANDS))
    usage = "usage: arm-a3c COMMAND [--help | options]\n\ncommands:\n" + "\n".join(
        f"  {name:<{width}}  {command.summary} (scripts/{command.script})" for name, command in COMMANDS.items())
    if not argv or argv[0] in ("-h", "--help"):
        print(usage, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else USAGE_ERROR
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"arm-a3c: error: unknown command {name!r}; one of {', '.join(COMMANDS)} (see arm-a3c --help)",
              file=sys.stderr)
        return USAGE_ERROR
    ArgumentParser.command = f"arm-a3c {name}"  # in usage lines and errors, as the user typed it
    try:
        return run(COMMANDS[name].main, rest)
    finally:
        ArgumentParser.command = None
