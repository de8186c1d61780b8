"""The commands that take a checkpoint's policy: `evaluate.py`, `transfer.py`, `export.py` and `deploy.py`."""

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


def deploy_main(argv: Sequence[str] | None = None) -> int:
    """`scripts/deploy.py`: drive an arm with an exported policy, behind the safety shield; prints one JSON
    object (the episodes' figures, the shield's interventions, the loop's timing) and logs every period."""
    import json
    import os
    import sys
    import time
    from pathlib import Path

    from arm_a3c.cli.common import positive_number
    from arm_a3c.deploy.loop import Deploy, DeployLog, Goals, open_transport
    from arm_a3c.deploy.policy_file import ExportedPolicy, policy_files
    from arm_a3c.deploy.shield import Shield, ShieldSettings
    from arm_a3c.deploy.transports import TRANSPORTS
    from arm_a3c.errors import UserError

    parser = ArgumentParser(prog="deploy.py", description=deploy_main.__doc__)
    add_assets_argument(parser)
    parser.add_argument("--policy", required=True, type=Path, metavar="PATH",
                        help="an exported .onnx policy (arm-a3c export), its .json beside it")
    parser.add_argument("--transport", choices=TRANSPORTS, default="sim",
                        help="how to reach the robot: sim, arm-a3c's simulated arm (default); ros2, ROS 2's topics "
                             "over Cyclone DDS")
    parser.add_argument("--robot", metavar="NAME", help="sim: the simulated arm (default: the policy's own)")
    parser.add_argument("--episodes", type=EPISODES, default=1, help="episodes, each from home (default 1)")
    parser.add_argument("--seed", type=SEED, default=5_000_000,
                        help="seed of the first episode's goal, drawn as the environment draws it (default "
                             "5,000,000: the held-out test's first)")
    parser.add_argument("--goal", nargs=3, type=float, action="append", metavar=("X", "Y", "Z"),
                        help="a goal (m) instead of drawn ones; give it again for more episodes (reach)")
    parser.add_argument("--log", type=Path, metavar="PATH",
                        help="where to log every period, as JSON lines (default runs/deploy/POLICY-TIME.jsonl; "
                             "never over a file that is there)")
    parser.add_argument("--speed-fraction", type=positive_number(1.0), default=1.0,
                        help="every joint's speed limit times this, in (0, 1] (default 1; start a real arm low)")
    parser.add_argument("--max-speed", type=positive_number(100.0), metavar="RAD_PER_S",
                        help="no joint faster than this (rad/s, or m/s), where its own limit is higher")
    parser.add_argument("--limit-margin", type=positive_number(0.25), default=0.02,
                        help="each joint's targets keep this fraction of its range from both limits (default 0.02)")
    parser.add_argument("--max-state-age-ms", type=positive_number(10_000.0),
                        help="hold when the joint state is older than this (default: two control periods)")
    add_ros2_arguments(parser)
    parser.add_argument("--fast", action="store_true",
                        help="sim only: run the periods as fast as the machine can, not at the control rate")
    args = parser.parse_args(argv)
    if args.fast and args.transport != "sim":
        raise UserError("--fast runs a simulated arm faster than real time: it needs --transport sim")

    meta_path, meta = policy_files(args.policy)
    from arm_a3c.deploy.kinematics import ArmModel

    try:
        model = ArmModel(meta["environment"])
    except UserError as err:
        raise UserError(f"{meta_path}: {err}") from None
    robot = None
    try:
        policy = ExportedPolicy(args.policy, model.obs_dim, model.dof)
        goals = Goals(count=args.episodes, seed=args.seed, points=args.goal or [])
        for point in goals.points:
            model.new_episode(None, point)  # every goal out of reach is one line before anything moves
        log_path = args.log or Path("runs") / "deploy" / f"{args.policy.stem}-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        if log_path.exists():
            raise UserError(f"--log {log_path} exists; deploy never writes over a file: give another path")
        robot = open_transport(args.transport, args.robot or meta["environment"].get("robot") or model.robot.name,
                               meta["environment"], ros2_settings(args) | {"period": 1.0 / model.control_hz})
        shield = Shield(model, ShieldSettings(margin=args.limit_margin, speed_fraction=args.speed_fraction,
                                              max_speed=args.max_speed,
                                              max_state_age=args.max_state_age_ms / 1e3 if args.max_state_age_ms
                                              else None))
        try:
            log = DeployLog(log_path, {"policy": str(args.policy), "environment": meta["environment"],
                                       "robot": model.robot.name, "task": meta["task"],
                                       "joints": model.joint_names, "control_hz": model.control_hz,
                                       "transport": args.transport})
        except OSError as err:
            raise UserError(f"cannot write the log {log_path} ({err.strerror}); pass --log PATH") from None
        try:
            deploy = Deploy(policy, model, robot, shield, log, realtime=not args.fast)
            figures = deploy.run(goals, progress=lambda done: print(f"episode {done}/{len(goals)} done",
                                                                    file=sys.stderr, flush=True)
                                 if len(goals) > 1 else None)
        finally:
            log.close()
    finally:
        if robot is not None:
            robot.close()
        model.close()
    dds = {"cyclonedds_uri": os.environ.get("CYCLONEDDS_URI")} if args.transport == "ros2" else {}
    print(json.dumps({"robot": model.robot.name, "task": meta["task"], "transport": args.transport, **dds, **figures},
                     indent=2))
    return 0


def add_ros2_arguments(parser: ArgumentParser) -> None:
    """The flags of ROS 2's topics (deploy --transport ros2, fake-robot)."""
    import os

    from arm_a3c.cli.common import bounded_int
    from arm_a3c.deploy.ros2 import COMMAND_TYPES, DEFAULT_STATE_TOPIC

    parser.add_argument("--ros-domain-id", type=bounded_int(0, 232), default=int(os.environ.get("ROS_DOMAIN_ID") or 0)
                        if (os.environ.get("ROS_DOMAIN_ID") or "0").isdigit() else 0,
                        help="ros2: the DDS domain (default $ROS_DOMAIN_ID, or 0)")
    parser.add_argument("--state-topic", default=DEFAULT_STATE_TOPIC, metavar="TOPIC",
                        help=f"ros2: the arm's sensor_msgs/JointState topic (default {DEFAULT_STATE_TOPIC})")
    parser.add_argument("--command-type", choices=COMMAND_TYPES, default=COMMAND_TYPES[0],
                        help="ros2: a forward position controller's std_msgs/Float64MultiArray (default), or "
                             "trajectory_msgs/JointTrajectory")
    parser.add_argument("--command-topic", metavar="TOPIC",
                        help="ros2: where commands go (default /forward_position_controller/commands, or "
                             "/joint_trajectory_controller/joint_trajectory)")
    parser.add_argument("--controller-joints", nargs="+", metavar="NAME",
                        help="ros2, Float64MultiArray: the controller's joints in its order (default the policy's "
                             "controlled joints in their order)")


def ros2_settings(args) -> dict:
    return {"domain_id": args.ros_domain_id, "state_topic": args.state_topic, "command_type": args.command_type,
            "command_topic": args.command_topic, "controller_joints": args.controller_joints}
