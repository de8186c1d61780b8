"""The measuring commands: `bench.py`, `bench_ray.py`, `bench_arms.py`, `bench_env.py`, `bench_viewer.py`,
`profile_training.py` and `bench_tables.py`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Sequence

from arm_a3c.cli.common import MAX_BENCH_SECONDS, SEED, ArgumentParser, _make_env, bounded_int, positive_number
from arm_a3c.errors import UserError
from arm_a3c.files import is_our_png, json_with_keys, refuse_foreign, write_atomically
from arm_a3c.limits import MAX_FRAMES, MAX_WORKERS


def bench_env_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/bench_env.py`: environment steps per second beside raw physics, for each robot."""
    import json

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

    from arm_a3c.bench.options import QUICK, TUNED_PEERS, BenchOptions
    from arm_a3c.bench.peers import PEERS
    from arm_a3c.bench.progress import BenchProgress, source_commit
    from arm_a3c.bench.report import format_table, plot_benchmark
    from arm_a3c.bench.training import run_benchmark

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
    _add_run_arguments(parser, "bench", "seconds instead of minutes",
                       "the picture goes beside it as .png")
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

def _add_run_arguments(parser: argparse.ArgumentParser, name: str, quick: str, beside: str = "") -> None:
    """--quick, --json and --work-dir of a training benchmark that writes NAME.json and runs in runs/NAME."""
    parser.add_argument("--quick", action="store_true",
                        help=f"{quick}: a smoke test of the benchmark, not a measurement")
    parser.add_argument("--json", type=Path, default=Path(f"{name}.json"), metavar="PATH",
                        help=f"where to write the results (default {name}.json{'; ' + beside if beside else ''})")
    parser.add_argument("--work-dir", type=Path, default=Path("runs") / name, metavar="DIR",
                        help=f"where the benchmark's training runs go (default runs/{name})")


def _run_benchmark(args: argparse.Namespace, run: Callable, format_table: Callable[[dict], str],
                   written: Callable[[], None] = lambda: None, keys: tuple[str, ...] = ("options", "table")) -> int:
    """What the training benchmarks share: check --json (a file of this benchmark's, with `keys`), --robot (if it
    has one) and --work-dir, `run(work_dir, log)`, print its table and write it with the results to --json."""
    import json

    ours = json_with_keys(*keys)
    refuse_foreign(args.json, ours, "--json")
    refuse_foreign(args.json.with_suffix(".png"), lambda png: is_our_png(png) or ours(args.json), "--json")
    for robot in getattr(args, "robots", None) or ([args.robot] if hasattr(args, "robot") else []):  # a bad robot
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
    from arm_a3c.bench.options import NEVER_STOPS

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
    parser.add_argument("--ray-address", metavar="HOST:PORT",
                        help="run the learning comparison's runs behind sync agents on this Ray cluster (its "
                             "machines as they are; --machines is ignored) instead of simulated machines on this host")
    _add_run_arguments(parser, "bench_ray", "runs of 5,000 steps (the local and the shared-memory Ray backend only) "
                                            "and 2 s of flooding")
    args = parser.parse_args(argv)
    if args.learning_seeds and not args.ray_address and not 1 <= args.machines <= args.workers:  # (ignored with it)
        parser.error(f"--machines must be between 1 and --workers ({args.workers}): each machine runs a worker or more")
    if args.learning_only and not args.learning_seeds:
        parser.error("--learning-only needs --learning-seeds SEED [SEED ...]")
    import_ray()
    options = RayBenchOptions(robot=args.robot, workers=args.workers, throughput_seconds=args.seconds,
                              learning_seeds=tuple(args.learning_seeds), learning_machines=args.machines,
                              sync_periods=tuple(args.sync_periods), learning_only=args.learning_only,
                              server_seconds=args.server_seconds, ray_address=args.ray_address)
    if args.quick:
        options = RayBenchOptions(**{**options.__dict__, **QUICK})
    return _run_benchmark(args, lambda work_dir, log: run_ray_benchmark(options, work_dir, log), format_table)

def _arms_from_table(path: Path) -> dict | None:
    """A progress made of a bench_arms --json file (its options, commit and measured arms), or None if `path` is
    not one. The progress file stays on the machine that ran the benchmark; the JSON goes into the docs."""
    import json

    try:
        table = json.loads(path.read_text())
        return {"options": table["options"], "commit": table.get("commit"),
                "arms": {arm["key"]: arm for arm in table["arms"]}}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def bench_arms_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/bench_arms.py`: train reach with the defaults on every fixed-base arm URDF in pybullet_data and the
    example-robot-data wheel (or the folders given), each capped; one table, the refused arms' reasons and a
    gallery. Hours long: each finished arm is kept, and --resume goes on."""
    import json

    from arm_a3c.bench.arms import (ArmsOptions, candidates, check_sources, default_sources, format_arms_table,
                                    run_arms_benchmark, save_arms_gallery, save_progress)
    from arm_a3c.bench.progress import source_commit

    parser = ArgumentParser(prog="bench_arms.py", description=bench_arms_main.__doc__)
    parser.add_argument("--from", dest="folders", type=Path, nargs="+", default=[], metavar="FOLDER",
                        help="search these folders (recursively) instead of pybullet_data and example-robot-data")
    parser.add_argument("--minutes", type=positive_number(MAX_BENCH_SECONDS / 60), default=10.0,
                        help="each arm's training budget in minutes (default 10)")
    parser.add_argument("--seed", type=SEED, default=0, help="every arm's training seed (default 0)")
    parser.add_argument("--workers", type=bounded_int(1, MAX_WORKERS), default=None,
                        help="workers of each run (default: train_arm.py's, one per core)")
    parser.add_argument("--only", nargs="+", default=[], metavar="TEXT",
                        help="train only the arms whose name (SOURCE/PATH, as --list shows) holds one of these")
    parser.add_argument("--list", action="store_true", help="say which files are arms and why the others are not; "
                                                             "train nothing")
    parser.add_argument("--resume", action="store_true",
                        help="go on with the arms an interrupted benchmark (same flags) has not trained yet: those "
                             "its .progress.json keeps, or, where that file is gone (another machine), those the "
                             "--json file holds")
    parser.add_argument("--report", action="store_true",
                        help="write the table and gallery of the arms an unfinished benchmark (same flags) has "
                             "measured so far; train nothing (it goes on later with --resume)")
    _add_run_arguments(parser, "bench_arms", "runs of --minutes each (give a small one) with 10-episode "
                                             "evaluations", beside="its gallery goes beside it as .png")
    args = parser.parse_args(argv)
    sources = check_sources(args.folders) if args.folders else default_sources()
    if args.list:
        found = candidates(sources)
        arms = [c for c in found if c.joints is not None]
        for c in found:
            print(f"{c.key}: {f'an arm, {c.joints} joints' if c.joints is not None else c.not_arm}")
        print(f"{len(found)} URDF files, {len(arms)} arms")
        return 0
    opts = ArmsOptions(minutes=args.minutes, seed=args.seed, workers=args.workers or 0, quick=args.quick,
                       # the default sources by name (a benchmark goes on, --resume, on another machine), others by path
                       sources=tuple(str(folder) for _, folder in sources) if args.folders
                       else tuple(label for label, _ in sources), only=tuple(args.only))
    progress_path = args.json.with_name(args.json.stem + ".progress.json")
    progress = {"options": opts.__dict__ | {"sources": list(opts.sources), "only": list(opts.only)},
                "commit": source_commit(), "arms": {}}
    if args.resume or args.report:
        try:
            kept = json.loads(progress_path.read_text())
        except FileNotFoundError:
            kept = _arms_from_table(args.json)  # the arms a written --json holds (its progress left on another machine)
            if kept is None:
                raise UserError(f"nothing to resume: neither {progress_path} nor {args.json} holds this benchmark's "
                                f"arms") from None
        except (OSError, ValueError) as err:
            raise UserError(f"cannot resume from {progress_path}: not this benchmark's progress file ({err})") from None
        if kept.get("options") != progress["options"]:
            raise UserError(f"cannot resume from {progress_path}: it was started with other options "
                            f"({kept.get('options')}); give the same flags, or delete it to start over")
        progress = kept
    elif progress_path.exists():
        raise UserError(f"{progress_path} holds an interrupted benchmark's arms: --resume goes on with them (same "
                        f"flags), or delete the file to start over")

    def run_and_draw(work_dir, log):
        result = run_arms_benchmark(opts, sources, work_dir, progress, lambda: save_progress(progress_path, progress),
                                    log, train=not args.report)
        result["commit"] = progress["commit"]
        picture = args.json.with_suffix(".png")
        try:
            if save_arms_gallery(result, sources, picture):
                log(f"wrote {picture}")
        except OSError as err:
            raise UserError(f"cannot write {picture} ({err.strerror}); pass --json PATH") from None
        return result

    def written():
        if not args.report:  # a report leaves the benchmark to go on with --resume
            progress_path.unlink(missing_ok=True)

    return _run_benchmark(args, run_and_draw, format_arms_table, written, keys=("options", "arms", "not_arms"))
