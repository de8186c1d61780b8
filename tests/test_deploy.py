"""arm-a3c deploy: the observation made from joint states is the environment's, the shield's every bound with a
failing case, the loop on the simulated arm with its log, and bad input as one line with no command sent."""

from __future__ import annotations

import json
import time

import numpy as np
import pybullet as pb
import pytest
from helpers import assert_user_error, run_in_process

from arm_a3c.deploy.kinematics import ArmModel
from arm_a3c.deploy.loop import Deploy, DeployLog, Goals
from arm_a3c.deploy.shield import Shield, ShieldSettings
from arm_a3c.deploy.transports import JointState, SimArm


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An untrained light-arm policy, exported as ONNX with its policy.json."""
    from arm_a3c.a3c.checkpoint import save_untrained_checkpoint
    from arm_a3c.export import export_policy

    folder = tmp_path_factory.mktemp("exported")
    checkpoint = save_untrained_checkpoint("light_arm", folder / "untrained.pt")
    export_policy(checkpoint, folder / "policy.onnx")
    return folder / "policy.onnx"


@pytest.mark.parametrize("robot, task", [("kuka_iiwa", "reach"), ("kuka_iiwa", "pose"), ("panda", "reach"),
                                         ("light_arm", "track")])
def test_the_observation_made_from_joint_states_is_the_environments_at_the_same_state(robot, task):
    """The arm moved by random actions; at each step its joint state (positions and velocities) is read, put back
    on the environment's arm, and the environment's observation compared with deploy's from the same state."""
    from arm_a3c.envs.arm_env import make_env

    env, model = make_env(robot=robot, task=task), ArmModel({"robot": robot, "task": task})
    try:
        worst = 0.0
        for seed in range(2):
            env.reset(seed=seed)
            model.new_episode(seed)
            rng = np.random.default_rng(seed)
            for _ in range(15):
                _, _, terminated, _, _ = env.step(rng.uniform(-1, 1, env.robot.dof))
                model.advance()
                if terminated:
                    break
                states = pb.getJointStates(env.robot.body, env.robot.ctrl_index, physicsClientId=env.client)
                q, qd = [s[0] for s in states], [s[1] for s in states]
                for index, position, velocity in zip(env.robot.ctrl_index, q, qd):
                    pb.resetJointState(env.robot.body, index, position, velocity, physicsClientId=env.client)
                worst = max(worst, float(np.max(np.abs(model.observe(q, qd) - env._observe()))))
        assert worst <= 1e-6
    finally:
        env.close()
        model.close()


@pytest.fixture(scope="module")
def xarm():
    model = ArmModel({"robot": "xarm6"})
    yield model
    model.close()


def shield_of(model, **settings) -> Shield:
    shield = Shield(model, ShieldSettings(**settings))
    shield.start(model.home)
    return shield


def test_the_shield_keeps_targets_inside_the_limits_less_the_margin(xarm):
    shield = shield_of(xarm, margin=0.05, ramp_seconds=1e-6, check_contacts=False)
    far = [hi + 1.0 for hi in xarm.upper]
    for _ in range(200):  # long enough to get there at the speed limit
        command, done = shield.check(far)
    assert done == ["joint_limit"]
    assert command == pytest.approx([hi - 0.05 * (hi - lo) for lo, hi in zip(xarm.lower, xarm.upper)])


def test_the_shield_keeps_each_joint_under_its_speed_limit_and_ramps_its_speed(xarm):
    shield = shield_of(xarm, speed_fraction=0.5, check_contacts=False)
    limits = [v * 0.5 for v in (urdf or step * xarm.control_hz for urdf, step in zip(xarm.urdf_speed, xarm.max_step))]
    # each joint towards its farther limit: more than a second away at these speeds
    target = [hi if hi - q > q - lo else lo for q, lo, hi in zip(xarm.home, shield.lower, shield.upper)]
    command, done = shield.check(target)
    assert "speed" in done and "acceleration" in done
    first = [abs(c - h) * xarm.control_hz for c, h in zip(command, xarm.home)]
    assert first == pytest.approx([v / xarm.control_hz / 0.25 for v in limits])  # one period of the ramp
    previous = command
    for _ in range(12):  # half a second: the ramp (a quarter) is over, the target not reached
        command, done = shield.check(target)
        speed = [abs(c - p) * xarm.control_hz for c, p in zip(command, previous)]
        assert all(s <= v + 1e-9 for s, v in zip(speed, limits))
        previous = command
    assert speed == pytest.approx(limits)  # at full speed once the ramp is over
    assert shield.counts["speed"] > 0 and shield.counts["acceleration"] > 0


def test_the_shield_holds_instead_of_sending_a_configuration_in_self_contact(xarm):
    rng = np.random.default_rng(0)
    touching = next(q for q in (xarm.robot.random_configuration(rng).tolist() for _ in range(500))
                    if xarm.contacts(q)[0])
    shield = shield_of(xarm, margin=0.0, ramp_seconds=1e-6, speed_fraction=1.0, max_speed=1e6, check_contacts=True)
    shield.speed = [1e6] * xarm.dof  # let the command jump there at once: only the contact check stands in its way
    shield.acceleration = [1e12] * xarm.dof
    command, done = shield.check(touching)
    assert done[-1] == "contact" and command == pytest.approx(xarm.home) and shield.counts["contact"] == 1
    assert not any(xarm.contacts(command))


class Stale:
    """A robot whose joint state stops coming after `fresh` reads: then it is always the last one, ageing."""

    def __init__(self, model, fresh: int):
        self.names, self.q, self.fresh, self.sent = tuple(model.joint_names), list(model.home), fresh, []
        self.stamp = time.monotonic()

    def read_state(self):
        if self.fresh > 0:
            self.fresh -= 1
            self.stamp = time.monotonic()
        return JointState(self.names, list(self.q), [0.0] * len(self.q), self.stamp)

    def send_command(self, names, positions):
        self.sent.append(list(positions))
        self.q = list(positions)

    def close(self):
        pass


def test_a_stale_joint_state_holds_the_last_command_within_one_period(tmp_path, xarm, monkeypatch):
    monkeypatch.setattr(xarm, "episode_steps", 8)  # at the control rate: a third of a second
    robot = Stale(xarm, fresh=3)
    shield = shield_of(xarm, max_state_age=0.05, check_contacts=False)
    rng = np.random.default_rng(0)
    deploy = Deploy(lambda obs: rng.uniform(-1, 1, xarm.dof), xarm, robot, shield,
                    DeployLog(tmp_path / "log.jsonl", {}), realtime=True)
    deploy.run(Goals(count=1, seed=5_000_000))
    assert shield.counts["stale_state"] >= 1
    # The last fresh state comes with the first command (period 0); it is 42 ms old at period 1, 83 ms at period
    # 2: past 50 ms, so period 2's command is a hold (an overrun on a loaded machine would hold earlier)
    held = [k for k, command in enumerate(robot.sent) if k > 0 and command == robot.sent[k - 1]]
    assert held and held[0] <= 2, held


def within_limits(shield: Shield, command: list[float], previous: list[float]) -> bool:
    """Whether `command`, after `previous`, keeps the limits the shield keeps: inside the margins, and no joint
    faster than its speed limit."""
    eps = 1e-9
    return all(lo - eps <= c <= hi + eps and abs(c - p) <= v * shield.dt + eps
               for c, p, lo, hi, v in zip(command, previous, shield.lower, shield.upper, shield.speed))


def test_random_and_saturated_actions_never_give_a_command_outside_the_limits_or_too_fast(tmp_path, xarm):
    """Policies that output random or saturated actions, on the simulated arm: every command sent is inside the
    margins, and no joint's command moves faster than its speed limit."""
    for name, policy in [("random", lambda obs, rng=np.random.default_rng(1): rng.uniform(-1, 1, xarm.dof)),
                         ("saturated", lambda obs, rng=np.random.default_rng(2): rng.choice([-1.0, 1.0], xarm.dof))]:
        robot = SimArm("xarm6", {"robot": "xarm6"})
        try:
            shield = Shield(xarm, ShieldSettings())
            sent = []
            send = robot.send_command
            robot.send_command = lambda names, positions: (sent.append(list(positions)), send(names, positions))
            deploy = Deploy(policy, xarm, robot, shield, DeployLog(tmp_path / f"{name}.jsonl", {}), realtime=False)
            figures = deploy.run(Goals(count=3, seed=5_000_000))
        finally:
            robot.close()
        assert figures["episodes"] == 3 and len(sent) > 100
        previous = xarm.home
        for command in sent:
            assert within_limits(shield, command, previous), name
            previous = command


def test_deploy_drives_the_simulated_arm_and_logs_every_period(tmp_path, exported):
    log = tmp_path / "deploy.jsonl"
    result = run_in_process("deploy.py", "--policy", str(exported), "--episodes", "2", "--fast", "--log", str(log))
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["robot"] == "light_arm" and figures["episodes"] == 2 and not figures["interrupted"]
    assert 0 <= figures["success_rate"] <= 1 and figures["self_contact_rate"] is not None
    assert set(figures["shield"]) == {"joint_limit", "speed", "acceleration", "contact", "stale_state", "overrun"}
    assert figures["compute_ms"]["p50"] > 0 and figures["period_ms"] is None  # --fast: no rate to hold to
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[0]["format"] == "arm-a3c-deploy-log/1" and lines[0]["joints"] and lines[0]["control_hz"] == 24
    steps = [line for line in lines[1:] if line["phase"] == "episode"]
    assert {line["episode"] for line in steps} == {0, 1}
    assert all(len(line["command"]) == len(lines[0]["joints"]) and len(line["action"]) == len(line["command"])
               for line in steps)
    assert [r["seed"] for r in figures["results"]] == [5_000_000, 5_000_001]
    results = [line for line in lines[1:] if line["phase"] == "result"]
    assert [r["success"] for r in results] == [r["success"] for r in figures["results"]]
    # the viewer replays the log: the arm where it was measured, each period
    gif = tmp_path / "replay.gif"
    replayed = run_in_process("view.py", "--deploy-log", str(log), "--record", str(gif), "--frames", "8")
    assert replayed.returncode == 0, replayed.stderr
    assert gif.read_bytes()[:3] == b"GIF" and "wrote" in replayed.stdout
    (tmp_path / "other.jsonl").write_text('{"format": "something else"}\n')
    assert_user_error(run_in_process("view.py", "--deploy-log", str(tmp_path / "other.jsonl"), "--record",
                                     str(tmp_path / "other.gif")), "is not a deploy log")


def test_deploy_mistakes_are_one_line_and_send_no_command(tmp_path, exported, monkeypatch):
    from arm_a3c.deploy import transports

    sent = []
    original = transports.SimArm.send_command
    monkeypatch.setattr(transports.SimArm, "send_command",
                        lambda self, names, positions: (sent.append(positions), original(self, names, positions)))
    policy = ("--policy", str(exported), "--fast")
    assert_user_error(run_in_process("deploy.py", *policy, "--robot", "kuka_iiwa", "--log", str(tmp_path / "a")),
                      "lack the policy's", "no command was sent")
    assert_user_error(run_in_process("deploy.py", *policy, "--goal", "5", "0", "0.3", "--log", str(tmp_path / "b")),
                      "--goal 5 0 0.3 is outside the arm's workspace")
    assert_user_error(run_in_process("deploy.py", *policy, "--goal", "0.2", "0", "0.3", "--goal", "0", "5", "0.3",
                                     "--log", str(tmp_path / "c")), "--goal 0 5 0.3 is outside")  # every goal
    assert_user_error(run_in_process("deploy.py", "--policy", str(tmp_path / "gone.onnx")), "no such file")
    (tmp_path / "taken.jsonl").write_text("mine")
    assert_user_error(run_in_process("deploy.py", *policy, "--log", str(tmp_path / "taken.jsonl")), "never writes over")
    assert (tmp_path / "taken.jsonl").read_text() == "mine"
    avoid = json.loads(exported.with_suffix(".json").read_text())
    avoid["environment"]["task"] = "avoid"
    (tmp_path / "avoid.onnx").write_bytes(exported.read_bytes())
    (tmp_path / "avoid.json").write_text(json.dumps(avoid))
    assert_user_error(run_in_process("deploy.py", "--policy", str(tmp_path / "avoid.onnx")), "not avoid")
    assert sent == []


def test_ctrl_c_leaves_the_arm_holding_its_last_command(tmp_path, xarm):
    calls = []

    def policy(obs):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return np.full(xarm.dof, 0.5)

    robot = SimArm("xarm6", {"robot": "xarm6"})
    try:
        shield = Shield(xarm, ShieldSettings(check_contacts=False))
        deploy = Deploy(policy, xarm, robot, shield, DeployLog(tmp_path / "log.jsonl", {}), realtime=False)
        figures = deploy.run(Goals(count=5, seed=5_000_000))
        assert figures["interrupted"] and figures["episodes"] == 0
        assert robot.robot.q_target == pytest.approx(shield.last)
    finally:
        robot.close()


# ---- ROS 2 over Cyclone DDS -----------------------------------------------------------------------------------

ROS2_FIELDS = {  # ROS 2's message definitions, field by field in their order (rosidl's .msg files)
    "Time": ["sec", "nanosec"],
    "Duration": ["sec", "nanosec"],
    "Header": ["stamp", "frame_id"],
    "JointState": ["header", "name", "position", "velocity", "effort"],
    "MultiArrayDimension": ["label", "size", "stride"],
    "MultiArrayLayout": ["dim", "data_offset"],
    "Float64MultiArray": ["layout", "data"],
    "JointTrajectoryPoint": ["positions", "velocities", "accelerations", "effort", "time_from_start"],
    "JointTrajectory": ["header", "joint_names", "points"],
}
ROS2_PACKAGES = {"Time": "builtin_interfaces", "Duration": "builtin_interfaces", "Header": "std_msgs",
                 "JointState": "sensor_msgs", "MultiArrayDimension": "std_msgs", "MultiArrayLayout": "std_msgs",
                 "Float64MultiArray": "std_msgs", "JointTrajectoryPoint": "trajectory_msgs",
                 "JointTrajectory": "trajectory_msgs"}


def test_the_ros2_messages_have_ros2s_fields_names_and_bytes():
    """Each type's fields in ROS 2's order under ROS 2's wire name; a JointState and a Float64MultiArray serialise
    to the bytes of ROS 2's CDR (little-endian, aligned), and every type round-trips."""
    import dataclasses
    import struct

    pytest.importorskip("cyclonedds")
    from arm_a3c.deploy.ros2_msgs import TYPES

    for name, fields in ROS2_FIELDS.items():
        assert [f.name for f in dataclasses.fields(TYPES[name])] == fields, name
        assert TYPES[name].__idl_typename__ == f"{ROS2_PACKAGES[name]}::msg::dds_::{name}_"
    state = TYPES["JointState"](TYPES["Header"](TYPES["Time"](7, 9), "base"), ["j1", "j2"], [0.5, -1.25], [2.0, 0.0],
                                [])

    def string(text: str) -> bytes:  # length with the terminating NUL, the bytes, then padding to 4
        raw = text.encode() + b"\0"
        return struct.pack("<I", len(raw)) + raw + b"\0" * (-len(raw) % 4)

    body = struct.pack("<iI", 7, 9) + string("base") + struct.pack("<I", 2) + string("j1") + string("j2")
    body += struct.pack("<I", 2) + b"\0" * (-(len(body) + 4) % 8) + struct.pack("<2d", 0.5, -1.25)
    body += struct.pack("<I", 2) + b"\0" * (-(len(body) + 4) % 8) + struct.pack("<2d", 2.0, 0.0)
    body += struct.pack("<I", 0)
    assert state.serialize() == b"\x00\x01\x00\x00" + body  # CDR, little-endian
    command = TYPES["Float64MultiArray"](data=[1.5, -2.0])
    body = struct.pack("<III", 0, 0, 2) + b"\0" * 4 + struct.pack("<2d", 1.5, -2.0)  # no dims, offset 0, 2 doubles
    assert command.serialize() == b"\x00\x01\x00\x00" + body
    trajectory = TYPES["JointTrajectory"](joint_names=["a"], points=[TYPES["JointTrajectoryPoint"](
        positions=[0.25], time_from_start=TYPES["Duration"](0, 41_666_667))])
    for message in (state, command, trajectory):
        assert type(message).deserialize(message.serialize()) == message


def udp_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of the UDP sockets process `pid` holds (from /proc: no tool needed)."""
    import os

    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for line in open("/proc/net/udp").read().splitlines()[1:]:
        parts = line.split()
        if parts[9] in inodes:
            address, port = parts[1].split(":")
            found.append((".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)), int(port, 16)))
    return found


def test_cyclone_dds_runs_on_the_loopback_configuration_unless_the_user_set_one(tmp_path, monkeypatch):
    """Without CYCLONEDDS_URI, the loopback configuration is written and set; a participant then sends from
    127.0.0.1 only and listens on the ports a participant index gives (7400 + 250 d + 10 + 2 i): the configuration
    is in force. A configuration of the user's own is left as it is."""
    pytest.importorskip("cyclonedds")
    import os

    from arm_a3c.deploy.ros2 import LOOPBACK_CONFIG, use_loopback

    monkeypatch.setenv("CYCLONEDDS_URI", "file:///somewhere/mine.xml")
    assert use_loopback(tmp_path) == "file:///somewhere/mine.xml" and not list(tmp_path.iterdir())
    monkeypatch.delenv("CYCLONEDDS_URI")
    uri = use_loopback(tmp_path)
    path = uri.removeprefix("file://")
    assert os.environ["CYCLONEDDS_URI"] == uri and open(path).read() == LOOPBACK_CONFIG
    assert '<NetworkInterface address="127.0.0.1" multicast="false"/>' in LOOPBACK_CONFIG
    assert "<AllowMulticast>false</AllowMulticast>" in LOOPBACK_CONFIG
    assert '<Peer address="127.0.0.1"/>' in LOOPBACK_CONFIG
    from cyclonedds.domain import DomainParticipant

    domain = 150 + os.getpid() % 50
    before = set(udp_sockets(os.getpid()))
    participant = DomainParticipant(domain)
    try:
        mine = set(udp_sockets(os.getpid())) - before
    finally:
        del participant
    senders = [address for address, port in mine if address != "0.0.0.0"]
    listeners = sorted(port for address, port in mine if address == "0.0.0.0")
    assert senders and set(senders) == {"127.0.0.1"}, mine
    base = 7400 + 250 * domain + 10
    assert listeners and all((port - base) % 2 in (0, 1) and 0 <= port - base < 62 for port in listeners), mine


@pytest.mark.slow
def test_deploy_drives_the_fake_robot_over_ros2_topics_on_loopback(tmp_path, exported):
    """Two processes on the loopback interface: the fake light arm (a ros2_control arm's topics) and deploy with
    --transport ros2, at the control rate; then once more with JointTrajectory commands."""
    pytest.importorskip("cyclonedds")
    import os
    import subprocess
    import sys

    from helpers import REPO

    domain = 100 + os.getpid() % 50
    for kind in ("float64_multi_array", "joint_trajectory"):
        fake = subprocess.Popen([sys.executable, str(REPO / "scripts" / "fake_robot.py"), "--robot", "light_arm",
                                 "--ros-domain-id", str(domain), "--command-type", kind, "--seconds", "60"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={k: v for k, v in os.environ.items() if k != "CYCLONEDDS_URI"})
        try:
            result = run_in_process("deploy.py", "--policy", str(exported), "--transport", "ros2", "--ros-domain-id",
                                    str(domain), "--command-type", kind, "--episodes", "1",
                                    "--log", str(tmp_path / f"{kind}.jsonl"))
        finally:
            fake.terminate()
            _, err = fake.communicate(timeout=30)
        assert result.returncode == 0, result.stderr + err
        figures = json.loads(result.stdout)
        assert figures["cyclonedds_uri"].startswith("file://") and "loopback" in figures["cyclonedds_uri"]
        assert figures["transport"] == "ros2" and figures["episodes"] == 1 and figures["realtime"]
        assert figures["period_ms"]["p50"] > 0 and figures["compute_ms"]["p99"] > 0
        followed = int(err.rsplit("followed ", 1)[1].split()[0])
        assert followed >= 40 and "ignored 0" in err, err  # the episode's 50 commands, all of the right shape


def test_a_ros2_robot_that_sends_no_state_is_one_line(tmp_path, exported, monkeypatch):
    pytest.importorskip("cyclonedds")
    import os

    from arm_a3c.deploy import loop

    monkeypatch.setattr(loop, "FIRST_STATE_SECONDS", 0.3)
    result = run_in_process("deploy.py", "--policy", str(exported), "--transport", "ros2", "--ros-domain-id",
                            str(200 + os.getpid() % 30), "--log", str(tmp_path / "none.jsonl"))
    assert_user_error(result, "sent no joint state within 0.3 s")


def test_the_fake_robot_applies_a_command_latency_after_it_arrives_and_drops_a_wrong_sized_one():
    pytest.importorskip("cyclonedds")
    import os

    from arm_a3c.deploy.ros2 import FakeRobot
    from arm_a3c.deploy.ros2_msgs import Float64MultiArray

    robot = FakeRobot("light_arm", domain_id=230 + os.getpid() % 2, latency=0.2)
    try:
        before = list(robot.robot.q_target)
        target = [q + 0.1 for q in before]
        robot.commands.queue.append((time.monotonic(), Float64MultiArray(data=target)))
        robot.follow()
        assert robot.robot.q_target == before and robot.followed == 0  # not yet: it came 0 s ago
        time.sleep(0.25)
        robot.follow()
        assert robot.robot.q_target == pytest.approx(target) and robot.followed == 1
        robot.commands.queue.append((time.monotonic() - 1.0, Float64MultiArray(data=[0.0])))
        robot.follow()
        assert robot.ignored == 1 and robot.robot.q_target == pytest.approx(target)
    finally:
        robot.close()
