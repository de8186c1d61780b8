"""`view.py` (`arm-a3c view`): watch a run live, replay a checkpoint, or record either."""

from __future__ import annotations

from typing import Sequence

from arm_a3c.cli.common import SEED, ArgumentParser, add_moved_urdf_argument, bounded_int
from arm_a3c.errors import UserError
from arm_a3c.limits import MAX_FRAMES, MAX_WORKERS


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
    source.add_argument("--deploy-log", type=Path, metavar="PATH",
                        help="replay the episodes a deploy logged (arm-a3c deploy --log), as they were measured")
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
    if args.run is None and args.checkpoint is None and args.deploy_log is None:
        from arm_a3c.a3c.rundir import DEFAULT_RUNS, newest_run

        args.run = newest_run(DEFAULT_RUNS)
        if args.run is None:
            raise UserError(f"no run under {DEFAULT_RUNS}/ to watch: start one with python scripts/train_arm.py (in "
                            f"another terminal), or pass --run DIR or --checkpoint PATH")
        print(f"watching the newest run under {DEFAULT_RUNS}/: {args.run} (--run DIR picks another)", flush=True)
    if args.record is not None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # no window needed to record
    from arm_a3c.viewer.window import show  # after SDL_VIDEODRIVER: pygame reads it when it loads

    return show(args.run, args.checkpoint, args.worker - 1, args.seed, args.record, args.frames, urdf=args.urdf,
                deploy_log=args.deploy_log)
