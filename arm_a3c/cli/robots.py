"""The commands about a robot itself: `inspect_robot.py` (and the list of robots), `oracle.py` and
`fake_robot.py`."""

from __future__ import annotations

from typing import Sequence

from arm_a3c.cli.common import (EPISODES, SEED, ArgumentParser, _make_env, add_assets_argument, add_robot_arguments,
                                robot_from_args)
from arm_a3c.errors import UserError
from arm_a3c.files import is_our_png, refuse_foreign


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
    if args.name is not None and (args.robot is not None or args.urdf is not None):
        parser.error("give the robot either as ROBOT or with --robot/--urdf, not both")
    args.robot = args.name if args.robot is None else args.robot
    given = args.robot is not None or args.urdf is not None
    if args.gallery:
        from arm_a3c.envs.describe import save_gallery
        from arm_a3c.sim.assets import available_robots

        robots = [robot_from_args(args)] if given else list(available_robots())
        refuse_foreign(args.gallery, is_our_png, "--gallery")
        try:
            print(f"wrote {save_gallery(robots, args.gallery)} ({', '.join(map(str, robots))})")
        except OSError as err:
            raise UserError(f"cannot write the gallery {args.gallery} ({err.strerror}); pass --gallery PATH") from None
        return 0
    if not given:
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


def fake_robot_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/fake_robot.py`: arm-a3c's simulated arm behaving as a ros2_control arm over ROS 2's topics
    (Cyclone DDS): publishes its joint states, follows position commands; the other end for `deploy --transport
    ros2` without a robot. Runs until Ctrl-C or --seconds."""
    import signal
    import sys
    import threading

    from arm_a3c.cli.common import positive_number
    from arm_a3c.cli.policy import add_ros2_arguments
    from arm_a3c.deploy.ros2 import FakeRobot, use_loopback

    parser = ArgumentParser(prog="fake_robot.py", description=fake_robot_main.__doc__)
    add_assets_argument(parser)
    parser.add_argument("--robot", default="kuka_iiwa", metavar="NAME", help="the simulated arm (default kuka_iiwa)")
    parser.add_argument("--transport", choices=["ros2"], default="ros2", help="ros2 (the only one)")
    parser.add_argument("--rate", type=positive_number(1000.0), default=100.0,
                        help="joint states published per second (default 100)")
    parser.add_argument("--joint-noise", type=positive_number(1.0), metavar="RAD",
                        help="Gaussian noise of this std on the published positions")
    parser.add_argument("--latency-ms", type=positive_number(10_000.0),
                        help="a command takes effect this long after it arrives (a real arm's delay)")
    parser.add_argument("--seconds", type=positive_number(24 * 3600.0), help="stop after this long")
    add_ros2_arguments(parser)
    args = parser.parse_args(argv)
    print(f"Cyclone DDS configuration: {use_loopback()}", file=sys.stderr, flush=True)
    robot = FakeRobot(args.robot, args.ros_domain_id, args.rate, args.state_topic, args.command_type,
                      args.command_topic, args.controller_joints, args.joint_noise or 0.0,
                      latency=(args.latency_ms or 0.0) / 1e3)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"fake {args.robot} on ROS 2 domain {args.ros_domain_id}: joint states on {args.state_topic} at "
          f"{args.rate:g} Hz, joints {', '.join(robot.controlled)}", file=sys.stderr, flush=True)
    try:
        robot.run(args.seconds, stop)
    except KeyboardInterrupt:
        pass
    finally:
        robot.close()
    print(f"followed {robot.followed} commands, ignored {robot.ignored}", file=sys.stderr, flush=True)
    return 0
