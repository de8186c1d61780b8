"""`--backend ray`: real short trainings on a local Ray instance with 2 CPUs (they learn, survive the killing
of a worker actor, and write checkpoints that the local backend resumes and evaluate.py reads), the memory that
Ray's processes map, and the one-line errors of the Ray flags."""

from __future__ import annotations

import ipaddress
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (REPO, UNTIL_STOPPED, alive, assert_user_error, checkpoint_steps, run_in_process, run_script,
                     signal_and_wait, start_training, summary_of, untrained_figures)

from arm_a3c.a3c.checkpoint import load_checkpoint
from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.live import LiveBoard
from arm_a3c.a3c.shared import SharedMemoryLink
from arm_a3c.backends.mapped import MappedShared, build_mapped_shared

OBS_DIM, ACTION_DIM = 15, 3


RUN_TAG = f"ARM_A3C_TEST_RUN={os.getpid()}"  # in the environment of this test process's runs, and so of their actors
CLUSTER_TAG = f"ARM_A3C_TEST_CLUSTER={os.getpid()}"  # in that of its simulated cluster's nodes, and so of its actors


def tagged(pid: str, tag: str) -> bool:
    """Whether process `pid` has `tag` in its environment (a test's own processes, not another test's that runs
    beside it, or another training on the machine)."""
    return tag.encode() in (Path("/proc") / pid / "environ").read_bytes().split(b"\0")


def processes_named(name: str, tag: str = RUN_TAG) -> list[int]:
    """Pids of live processes whose name (as ps shows it) is `name` and whose environment holds `tag`: this
    test's Ray actors (Ray starts them outside the launcher's process tree, with its environment), never the
    workers of another training on the machine."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if (comm.read_text().strip() == name and alive(int(comm.parent.name))
                    and tagged(comm.parent.name, tag)):
                found.append(int(comm.parent.name))
        except OSError:
            continue
    return found


def wait_for(condition, what: str, process: subprocess.Popen, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"training ended before {what}: {out[-1500:]} {err[-1500:]}")
        time.sleep(0.25)
    process.kill()
    pytest.fail(f"no {what} within {timeout:.0f} s")


# ---- the mapped memory --------------------------------------------------------------------------------------

def _push_in_child(shared: MappedShared) -> None:
    link = SharedMemoryLink(shared, 1)
    link.push(np.ones(shared.model.flat.numel(), np.float32), 1e-2)
    link.observe(np.full((4, OBS_DIM), 2.0, np.float32))
    link.add_steps(20)


def test_mapped_memory_is_shared_with_the_processes_it_is_pickled_to(tmp_path):
    import torch.multiprocessing as mp

    cfg = TrainConfig(workers=2)
    shared = build_mapped_shared(cfg, OBS_DIM, ACTION_DIM, tmp_path / "memory.bin", tmp_path)
    assert len(pickle.dumps(shared)) < 10_000, "pickling must send the path, not the memory"
    before = shared.model.flat.clone()
    child = mp.get_context("spawn").Process(target=_push_in_child, args=(shared,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert not torch.equal(before, shared.model.flat), "the child's Adam step did not reach the parent's weights"
    assert shared.optimizer.step_count() == 1 and shared.global_steps() == 20
    mean, _, count = shared.normalizer.moments()
    assert count == 4 and np.allclose(mean, 2.0)
    again = pickle.loads(pickle.dumps(shared))  # a second mapping sees the same numbers and its writes show here
    again.request_stop()
    assert torch.equal(again.model.flat, shared.model.flat) and not shared.running()


def test_a_worker_through_the_parameter_server_pulls_what_it_and_the_others_pushed(tmp_path, monkeypatch):
    """`RayLink` against a real `ParameterServer` object, with Ray's transport replaced by direct calls (`ray.put`
    copies, as the object store does): pulls bring the newest weights and normaliser and only when they changed,
    pushes and step counts arrive with the next exchange, reports reach the launcher's drain."""
    ray = pytest.importorskip("ray")
    from arm_a3c.backends.ray_server import ParameterServer
    from arm_a3c.backends.ray_worker import RayLink

    monkeypatch.setattr(ray, "get", lambda value: value)
    monkeypatch.setattr(ray, "put", lambda value: np.array(value))
    cfg = TrainConfig(workers=2)
    shared = build_mapped_shared(cfg, OBS_DIM, ACTION_DIM, tmp_path / "memory.bin", tmp_path)
    server = ParameterServer(shared.spec)
    handle = types.SimpleNamespace(exchange=types.SimpleNamespace(remote=server.exchange))
    link, other = RayLink(handle, rank=0), RayLink(handle, rank=1)
    local = np.zeros(shared.model.flat.numel(), np.float32)

    link.pull(local)
    np.testing.assert_array_equal(local, shared.model.flat.numpy())
    assert link.add_steps(20) == 20 and shared.global_steps() == 0, "steps travel with the next exchange"
    link.push(np.ones_like(local), 1e-2)
    link.observe(np.full((20, OBS_DIM), 3.0, np.float32))
    link.report(("update", 0, 0, {}, []))
    before = local.copy()
    link.pull(local)  # delivers the push, then pulls the weights it made
    assert shared.optimizer.step_count() == 1 and shared.global_steps() == 20
    assert not np.array_equal(local, before)
    np.testing.assert_array_equal(local, shared.model.flat.numpy())
    mean, _, count = shared.normalizer.moments()
    assert count == 20 and np.allclose(mean, 3.0)
    assert server.drain() == [("update", 0, 0, {}, [])]

    other.add_steps(20)
    other.push(-np.ones_like(local), 1e-2)  # another worker's update ...
    other.pull(np.zeros_like(local))
    mine = local.copy()
    link.pull(local)  # ... reaches this worker at its next pull
    assert not np.array_equal(local, mine) and shared.global_steps() == 40
    np.testing.assert_array_equal(local, shared.model.flat.numpy())
    local[:] = 0.0
    link.pull(local)  # nothing new: no weights sent
    assert not local.any()
    shared.request_stop()
    link.pull(local)
    assert not link.running()


def test_a_nodes_statistics_are_the_global_ones_plus_what_it_has_not_sent():
    """The node normaliser's base is set so that base + its writers' sums (sent and unsent) are the moments of
    every observation: the global ones (other nodes' and the sent ones) and the unsent."""
    from arm_a3c.a3c.normalizer import RunningNormalizer
    from arm_a3c.backends.ray_sync import node_base_statistics

    rng = np.random.default_rng(0)
    elsewhere, sent, unsent = (rng.normal(loc, 2.0, (n, 4)) for loc, n in ((1.0, 300), (-2.0, 50), (5.0, 20)))
    everything = RunningNormalizer(4)
    everything.update(np.concatenate([elsewhere, sent]))
    g_mean, g_var, g_count = everything.moments()
    node = RunningNormalizer(4, writers=1)
    node.update(np.concatenate([sent, unsent]))
    mean, var, count = node_base_statistics(g_mean, g_var, g_count, len(sent), sent.sum(axis=0),
                                            np.square(sent).sum(axis=0))
    node.base_mean.numpy()[:], node.base_var.numpy()[:] = mean, var
    node.base_count.fill_(count)
    all_seen = np.concatenate([elsewhere, sent, unsent])
    got_mean, got_var, got_count = node.moments()
    assert got_count == len(all_seen)
    np.testing.assert_allclose(got_mean, all_seen.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(got_var, all_seen.var(axis=0), rtol=1e-9)
    assert node_base_statistics(g_mean, g_var, 50.0, 50.0, sent.sum(axis=0), np.square(sent).sum(axis=0)) is None


# ---- flags --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, fragment", [
    (["--backend", "spark"], "--backend must be one of local, ray, not 'spark'"),
    (["--ray-address", "auto"], "--ray-address needs --backend ray"),
    (["--backend", "ray", "--lock-updates"], "--lock-updates works with the local backend only"),
    (["--backend", "ray", "--ray-sync-ms", "-1"], "--ray-sync-ms must be 0 (an exchange per update) or positive"),
])
def test_ray_flag_mistakes_are_one_line_errors(flags, fragment):
    assert_user_error(run_in_process("train_arm.py", "--robot", "light_arm", *flags), fragment)


def test_backend_ray_without_ray_installed_says_how_to_install_it(tmp_path):
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError('No module named ray (test stand-in)')\n")
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "train_arm.py"), "--robot", "light_arm",
                             "--backend", "ray", "--run-dir", str(tmp_path / "run")], cwd=REPO, text=True,
                            capture_output=True, env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=120)
    assert_user_error(result, "pip install -r requirements-ray.txt")
    assert not (tmp_path / "run").exists(), "nothing is made before the error"


@pytest.mark.parametrize("address, loopback", [
    (None, True), ("local", True), ("127.0.0.1:6379", True), ("localhost:6379", True), ("[::1]:6379", True),
    ("127.8.9.1:6379", True), ("10.0.0.5:6379", False), ("192.0.2.2:6379", False), ("auto", False),
    ("ray://10.0.0.5:10001", False), ("head-node", False),
])
def test_a_local_instance_and_a_cluster_at_a_loopback_address_are_kept_on_the_loopback_interface(
        address, loopback, monkeypatch):
    from arm_a3c.backends import ray as ray_backend

    assert ray_backend.on_loopback(address) is loopback
    monkeypatch.delenv(ray_backend.LOOPBACK_VARIABLE, raising=False)
    ray_constants = pytest.importorskip("ray._private.ray_constants")
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    ray_backend.keep_on_loopback()  # (monkeypatch puts both back)
    assert os.environ[ray_backend.LOOPBACK_VARIABLE] == "0" and ray_constants.ENABLE_RAY_CLUSTER is False
    from ray._private.services import get_node_ip_address

    assert get_node_ip_address() == "127.0.0.1"  # the address Ray gives a node it starts from here


def test_the_nodes_arm_a3c_starts_start_no_idle_worker_and_a_users_setting_is_kept(monkeypatch):
    """A local instance or simulated cluster starts no Python worker ahead of time: arm-a3c runs only actors with
    a runtime environment of their own, which those workers cannot serve. A value the user set stays."""
    from arm_a3c.backends import ray as ray_backend

    monkeypatch.delenv(ray_backend.PRESTART_VARIABLE, raising=False)
    ray_backend.no_idle_workers()
    assert os.environ[ray_backend.PRESTART_VARIABLE] == "0"
    monkeypatch.setenv(ray_backend.PRESTART_VARIABLE, "1")
    ray_backend.no_idle_workers()
    assert os.environ[ray_backend.PRESTART_VARIABLE] == "1"


@pytest.mark.parametrize("address, fragment", [
    ("127.0.0.1:1", "--ray-address 127.0.0.1:1: no Ray cluster there"),
    ("auto", "--ray-address auto: no Ray cluster there"),
    ("head-node", "--ray-address head-node: expected HOST:PORT"),
])
def test_joining_a_cluster_that_is_not_there_is_one_line(tmp_path, address, fragment, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = run_in_process("train_arm.py", "--robot", "light_arm", "--backend", "ray", "--ray-address", address,
                            "--run-dir", str(tmp_path / "run"))
    assert_user_error(result, fragment)
    assert not (tmp_path / "run").exists(), "nothing is made before the error"


# ---- real trainings -----------------------------------------------------------------------------------------

def watched_episodes(run_dir) -> bool:
    """Watch the run's live board as view.py does; True once both workers have published an episode on it."""
    board = LiveBoard.attach(run_dir)
    if board is None:
        return False
    board.watch()
    return all(board.latest(rank) is not None for rank in (0, 1))


@pytest.mark.slow
def test_a_ray_run_through_the_parameter_server_survives_a_killed_actor_ends_at_a_second_ctrl_c_and_resumes_locally(
        tmp_path):
    """Every update through the parameter server (as workers on other machines make them): a killed worker actor
    is restarted; a second Ctrl-C exits at once and leaves no Ray process or mapped file; the local backend
    resumes the run from its last checkpoint. (A Ray run's clean stop, and its counts of steps and updates, are
    checked in the Ray benchmark's runs below; that the worker loop learns, in the shared local training: the
    loop is the same; that pulls bring the newest weights, in
    `test_a_worker_through_the_parameter_server_pulls_what_it_and_the_others_pushed`.)"""
    pytest.importorskip("ray")
    run_dir = tmp_path / "run"
    process = start_training(run_dir, "--backend", "ray", "--no-ray-shared-memory", "--ray-sync-ms", "0", *UNTIL_STOPPED,
                             "--eval-every-steps", "5000", "--seed", "3", env=dict([RUN_TAG.split("=")]))
    wait_for(lambda: (run_dir / "checkpoints" / "latest.pt").exists(), "first checkpoint", process)
    victim = wait_for(lambda: processes_named("a3c-worker-1"), "worker actor named a3c-worker-1", process)[0]
    time.sleep(1)
    os.kill(victim, signal.SIGKILL)
    # The actor names itself when the launcher starts its loop again, so a new one means the death was noticed.
    wait_for(lambda: [pid for pid in processes_named("a3c-worker-1") if pid != victim], "a restarted actor", process)
    wait_for(lambda: checkpoint_steps(run_dir) > 0, "a checkpoint of trained weights", process)
    wait_for(lambda: watched_episodes(run_dir), "both worker actors' episodes on the watched live board", process)
    assert_on_loopback(ray_processes())  # a local instance: its servers, agents and actors
    err, seconds = signal_and_wait(process, interrupt, signal.SIGINT)

    assert process.returncode == 130 and "exiting at once" in err, err[-2000:]
    assert seconds < 5, f"{seconds:.1f} s from the second Ctrl-C to the exit"
    assert "worker 1 (a Ray actor) died" in err, err[-2000:]
    assert_ray_is_gone(process)

    saved = load_checkpoint(run_dir / "checkpoints" / "latest.pt")["env_steps"]
    evaluated = run_in_process("evaluate.py", "--checkpoint", str(run_dir / "checkpoints" / "latest.pt"),
                               "--episodes", "5")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    resumed = run_in_process("train_arm.py", "--resume", str(run_dir), "--backend", "local",
                             "--max-steps", str(saved + 5_000), "--test-episodes", "0")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = summary_of(run_dir)
    assert summary["resumed_from_steps"] == saved > 0 and summary["env_steps"] >= saved + 5_000, (saved, summary)


def ray_processes(tag: str = RUN_TAG) -> list[int]:
    """Pids of processes of a local Ray instance that a run with RUN_TAG started (its servers and workers), or
    with CLUSTER_TAG those of the simulated cluster."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ")
            if (b"site-packages/ray/" in text or text.startswith(b"ray::")) and tagged(cmdline.parent.name, tag):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def assert_on_loopback(pids: list[int]) -> None:
    """Every socket that processes `pids` listen on (TCP) or have bound (UDP) is on the loopback interface: nothing
    of theirs can be reached from another machine."""
    import psutil

    addresses = set()
    for pid in pids:
        try:
            addresses |= {c.laddr.ip for c in psutil.Process(pid).net_connections(kind="inet")
                          if c.status == psutil.CONN_LISTEN or c.type == socket.SOCK_DGRAM}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    assert addresses, f"no listening socket among {len(pids)} process(es): the check would prove nothing"
    outside = [a for a in addresses if not ipaddress.ip_address(a.removeprefix("::ffff:")).is_loopback]
    assert not outside, f"listening on {outside}"


def assert_ray_is_gone(process: subprocess.Popen) -> None:
    """No process of the run's Ray instance, no worker actor and no mapped file outlived the run."""
    deadline = time.monotonic() + 30  # Ray's own processes take seconds to end on a loaded machine
    while ray_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ray_processes(), "Ray processes outlived the run"
    assert not processes_named("a3c-worker-1") and not processes_named("a3c-worker-2"), "an actor outlived the run"
    assert not list(Path("/dev/shm").glob(f"arm-a3c-{process.pid}-*")), "the mapped memory was left behind"


def interrupt(pid: int, signum: int) -> None:
    """Ctrl-C twice, 0.3 s apart: the second one exits at once."""
    os.killpg(pid, signum)
    time.sleep(0.3)
    os.killpg(pid, signum)


@pytest.mark.slow
def test_the_ray_benchmark_runs_its_throughput_and_capacity_parts_and_writes_its_table(tmp_path):
    """The throughput runs and the server's capacity in one quick run (the learning comparison has a test of its
    own). Runs of seconds: only what was run and how it is reported is checked, not the rates. --quick runs the
    local backend and the Ray backend with shared memory (the runs behind a sync agent and through the server
    have trainings of their own in this file), and says so in its table."""
    pytest.importorskip("ray")
    out = tmp_path / "bench_ray.json"
    result = run_script("bench_ray.py", "--quick", "--json", str(out), "--work-dir", str(tmp_path / "runs"),
                        timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    bench = json.loads(out.read_text())
    assert set(bench["throughput"]) == {"local", "ray"}
    summary = summary_of(tmp_path / "runs" / "throughput-ray")  # a Ray run stopped by its budget: a clean stop
    assert summary["error"] is None and "step budget" in summary["stop_reason"]
    # Every counted rollout of 20 steps made one update that reached the global model (Hogwild may lose a
    # step-count increment now and then where the workers share the memory).
    updates = summary["env_steps"] / 20
    assert summary["env_steps"] > 0 and abs(summary["optimizer_steps"] - updates) <= max(2, 0.02 * updates)
    assert load_checkpoint(tmp_path / "runs" / "throughput-ray" / "checkpoints" / "latest.pt")[
        "env_steps"] == summary["env_steps"]
    # Seconds-long runs, Ray's start-up included: only that each one trained is checked, not its rate.
    assert all(run["env_steps"] > 0 and run["steps_per_second"] > 0 for run in bench["throughput"].values())
    # The ratio is what the table reports, computed from the runs' own rates; its size is timing, not checked here
    # (seconds-long runs on a shared machine gave 1.54 once).
    rates = {name: run["steps_per_second"] for name, run in bench["throughput"].items()}
    assert bench["ray_to_local"] == pytest.approx(rates["ray"] / rates["local"], abs=0.005)
    assert bench["ray_through_server_to_local"] is None and bench["sync_agent_run"] is None
    assert bench["table"].count("not run (--quick") == 4  # through the server, its pace and workers, the agent
    server = bench["server"]
    assert server["exchanges"] == server["client_count"] > 20, "every exchange a client sent was applied"
    # (inside the method is wall time, the process total CPU time: on a loaded machine the first can be the larger)
    assert server["server_method_ms_per_exchange"] > 0 and server["server_cpu_ms_per_exchange"] > 0
    assert server["max_exchanges_per_second"] >= server["exchanges_per_second"] * 0.9
    assert not (tmp_path / "runs" / "server-memory.bin").exists()
    assert bench["workers_one_server_serves"]["local_pace"] >= 0 and bench["workers_one_server_serves"][
        "through_server"] is None
    syncs = bench["sync_server"]
    assert syncs["exchanges"] == syncs["client_count"] > 20, "every sync a client sent was applied"
    assert bench["machines_one_server_serves"]["50"] == int(syncs["max_exchanges_per_second"] * 0.05)
    assert bench["table"] in result.stdout
    assert bench["learning"] is None  # (no --learning-seeds)
    assert not [f for run in (tmp_path / "runs").glob("*/run.json") for f in left_in_shm(run.parent)]


@pytest.mark.slow
def test_the_ray_benchmarks_learning_comparison_runs_local_and_behind_sync_agents_and_writes_its_table(
        tmp_path, two_machines):
    """The learning comparison (`--learning-only`): a local run, then the same worker on the machines of the
    cluster at `--ray-address`, each with its sync agent (this file's simulated cluster; without the flag the
    benchmark makes one of its own, as `simulated_machines` makes this one). One worker: workers on two machines
    have a test of their own above; this one is about the comparison. Runs of seconds: only what was run and how
    it is reported is checked, not whether the runs learned."""
    pytest.importorskip("ray")
    out = tmp_path / "bench_ray.json"
    result = run_script("bench_ray.py", "--quick", "--learning-only", "--learning-seeds", "0", "--sync-periods", "100",
                        "--workers", "1", "--ray-address", two_machines.address,
                        "--json", str(out), "--work-dir", str(tmp_path / "runs"), timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    bench = json.loads(out.read_text())
    assert bench["table"] in result.stdout and "throughput" not in bench
    learning = bench["learning"]
    assert set(learning["configs"]) == {"local", "machines_100ms"} and learning["machines"] == 2
    local, machines = learning["configs"]["local"], learning["configs"]["machines_100ms"]
    assert machines["sync_ms"] == 100 and isinstance(machines["within_local_spread"], bool)
    run = machines["runs"][0]
    assert run["machines"] == 2 and run["syncs"] > 0 and run["lost_updates"] == 0, run
    summary = summary_of(tmp_path / "runs" / "learning-machines_100ms-0")
    assert summary["sync"]["sync_ms"] == 100 and len({m["node_id"] for m in summary["sync"]["per_machine"]}) == 2
    assert summary["optimizer_steps"] == 0  # every update went through an agent: none from the launcher's machine
    assert not summary_of(tmp_path / "runs" / "learning-local-0").get("sync")  # the local run: no agent
    for config in (local, machines):  # the figures are the runs' own
        steps = [r["env_steps"] for r in config["runs"] if r["env_steps"] is not None]
        assert config["env_steps"]["median"] == (steps[0] if steps else None)
    assert "behind sync agents, every 100 ms" in result.stdout
    assert f"2 machines of the Ray cluster at {two_machines.address}" in result.stdout
    assert not [f for run in (tmp_path / "runs").glob("*/run.json") for f in left_in_shm(run.parent)]


def test_the_learning_comparisons_medians_count_misses_and_its_verdict_allows_fewer_steps_not_more():
    from arm_a3c.bench.ray_backend import judge, spread

    assert spread([300, None, 100]) == {"median": 300.0, "min": 100, "max": 300}  # a miss counts as longest
    assert spread([None, None, 100])["median"] is None and spread([None])["min"] is None

    def config(steps, ms=50):
        return {"sync_ms": ms, "env_steps": spread(steps)}

    learning = {"configs": {"local": config([304, 254, 302], None), "a": config([252, 303, 252]),
                            "b": config([302, 310, 200]), "c": config([454, 356, 455]), "d": config([None, None, 1])}}
    judge(learning)
    verdicts = {name: c.get("within_local_spread") for name, c in learning["configs"].items()}
    assert verdicts == {"local": None, "a": True, "b": True, "c": False, "d": False}


def test_ray_benchmark_flags_are_checked():
    assert_user_error(run_in_process("bench_ray.py", "--workers", "0"), "--workers: 0 is out of range: between 1")
    assert_user_error(run_in_process("bench_ray.py", "--learning-only"), "--learning-only needs --learning-seeds")
    assert_user_error(run_in_process("bench_ray.py", "--learning-seeds", "0", "--machines", "3"),
                      "--machines must be between 1 and --workers (2)")
    assert_user_error(run_in_process("bench_ray.py", "--sync-periods", "0"), "--sync-periods: 0 is out of range: above 0")


# ---- two simulated machines behind sync agents ----------------------------------------------------------------

@pytest.fixture(scope="module")
def two_machines():
    """A Ray cluster on this host: a head with no CPU (the launcher's machine: no worker lands there) and two
    nodes of one CPU each, so each worker runs on a machine of its own, behind that machine's sync agent. One
    cluster serves this file's tests on it, as a real cluster serves run after run (the test that removes a
    machine comes last)."""
    pytest.importorskip("ray")
    from arm_a3c.bench.ray_backend import simulated_machines

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(*CLUSTER_TAG.split("="))  # the nodes' processes, and so the actors, carry it
        cluster = simulated_machines(machines=2, workers=2)
    yield cluster
    cluster.shutdown()


def left_in_shm(run_dir: Path, pattern: str = "*") -> list[Path]:
    """The files of the run's launcher still in /dev/shm (`arm-a3c-PID-...`: the mapped model, the node copies),
    not those of another run on the machine."""
    pid = json.loads((run_dir / "run.json").read_text())["launcher_pid"]
    return list(Path("/dev/shm").glob(f"arm-a3c-{pid}-{pattern}"))


def runs_on(node, pid: int) -> bool:
    """Whether process `pid` is one of a simulated machine's (a `ray.cluster_utils.Cluster` node's): the raylet
    that started it is among its ancestors."""
    raylets = {info.process.pid for info in node.all_processes["raylet"]}
    while pid > 1:
        if pid in raylets:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def sync_agents() -> list[int]:
    """Pids of the simulated cluster's sync agents (Ray titles an actor's process after its class)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if (b"SyncAgent" in cmdline.read_bytes() and alive(int(cmdline.parent.name))
                    and tagged(cmdline.parent.name, CLUSTER_TAG)):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_two_simulated_machines_behind_sync_agents_learn_apply_every_update_and_resume_locally(tmp_path,
                                                                                              two_machines):
    """Each worker on a node of its own, training that node's copy of the model, which its sync agent exchanges
    with the parameter server: the run learns clearly (against the untrained policy), every update an
    agent sent was applied, none was lost, the agents used two copies (one per node, none of them the global
    model's memory), and the local backend resumes the run."""
    run_dir = tmp_path / "run"
    result = run_script("train_arm.py", "--backend", "ray", "--ray-address", two_machines.address, "--robot",
                        "light_arm", "--workers", "2", "--max-steps", "30000", "--target-success", "1.01",
                        "--eval-every-steps", "15000", "--eval-episodes", "30", "--test-episodes", "0", "--seed", "0",
                        "--run-dir", str(run_dir), timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    summary = summary_of(run_dir)
    sync = summary["sync"]
    assert sync["machines"] == 2 and len({m["node_id"] for m in sync["per_machine"]}) == 2, sync
    assert sync["updates_sent"] == sync["updates_applied"] == sync["node_updates"] > 1000, sync
    assert sync["lost_updates"] == 0 and sync["agent_restarts"] == 0, sync
    assert sync["syncs"] > 100 and sync["bytes_per_sync"] > 2 * summary_params(run_dir), sync  # deltas went
    assert summary["optimizer_steps"] == 0  # nothing stepped the global Adam: every update came as a delta
    assert summary["env_steps"] >= 30_000
    untrained = untrained_figures(run_dir)["mean_final_distance_m"]
    final = summary["evaluations"][-1]["mean_final_distance_m"]
    assert final < 0.6 * untrained, (untrained, [e["mean_final_distance_m"] for e in summary["evaluations"]])
    assert not left_in_shm(run_dir, "*-node-*"), "a node's copy outlived the run"
    assert_on_loopback(ray_processes(CLUSTER_TAG))  # the simulated cluster's nodes and their actors

    resumed = run_in_process("train_arm.py", "--resume", str(run_dir), "--backend", "local",
                             "--max-steps", str(summary["env_steps"] + 5_000), "--test-episodes", "0")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert summary_of(run_dir)["resumed_from_steps"] == summary["env_steps"]


def summary_params(run_dir: Path) -> int:
    """Parameters of the run's network (a delta is that many float32)."""
    return sum(t.numel() for t in load_checkpoint(run_dir / "checkpoints" / "latest.pt")["model"].values())


@pytest.mark.slow
def test_a_killed_sync_agent_and_worker_are_replaced_and_a_machine_leaving_is_noticed_and_the_run_goes_on(
        tmp_path, two_machines):
    """One run through the faults a cluster has (one run, not two: each costs a Ray run's start-up). SIGKILL one
    machine's sync agent and one worker: Ray restarts both, the launcher says so, and training goes on through the
    restarted agent. Then remove one machine (its raylet, agent and worker end): the launcher says the machine
    left, the other machine's worker goes on training (checkpoints advance), Ctrl-C stops cleanly, the summary
    counts the restart, one machine flushed and one lost, and no node copy is left behind."""
    run_dir = tmp_path / "run"
    process = start_training(run_dir, "--backend", "ray", "--ray-address", two_machines.address, *UNTIL_STOPPED,
                             "--eval-every-steps", "2500", "--test-episodes", "0")
    wait_for(lambda: (run_dir / "checkpoints" / "latest.pt").exists(), "first checkpoint", process)
    agents = wait_for(lambda: len(sync_agents()) == 2 and sync_agents(), "two sync agents", process)
    os.kill(agents[0], signal.SIGKILL)
    wait_for(lambda: len(sync_agents()) == 2 and agents[0] not in sync_agents(), "a restarted agent", process)
    victim = wait_for(lambda: processes_named("a3c-worker-1", CLUSTER_TAG), "worker actor named a3c-worker-1",
                      process)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: [pid for pid in processes_named("a3c-worker-1", CLUSTER_TAG) if pid != victim],
             "a restarted worker", process)
    steps = checkpoint_steps(run_dir)
    wait_for(lambda: checkpoint_steps(run_dir) > steps, "a checkpoint after the restarts", process)

    # the machine that leaves is the one whose agent was not restarted: the summary counts the machines that stay
    restarted = [pid for pid in sync_agents() if pid not in agents]
    homes = [runs_on(node, restarted[0]) for node in two_machines.worker_nodes]
    assert sorted(homes) == [False, True], homes  # the restarted agent runs on one machine of the two
    two_machines.remove_node(list(two_machines.worker_nodes)[homes.index(False)])
    wait_for(lambda: len(sync_agents()) == 1, "the leaving machine's agent gone", process)
    steps = checkpoint_steps(run_dir)
    wait_for(lambda: checkpoint_steps(run_dir) >= steps + 2_500, "2,500 more steps on the remaining machine",
             process, timeout=180)
    err, _ = signal_and_wait(process, os.killpg, signal.SIGINT, timeout=120)

    assert process.returncode == 0, err[-3000:]
    assert "sync agent of machine" in err and "worker 1 (a Ray actor) died" in err, err[-3000:]
    assert "left the Ray cluster" in err, err[-3000:]
    summary = summary_of(run_dir)
    assert summary["error"] is None and summary["env_steps"] >= steps + 2_500
    sync = summary["sync"]
    assert sync["agent_restarts"] == 1 and sync["machines"] == 1 and sync["machines_lost"] == 1, sync
    assert sync["updates_applied"] >= sync["updates_sent"] > 0, sync  # the lost machine's applied updates count too
    # the remaining machine's every update is accounted for: sent and applied, or lost with a dead agent
    assert sync["node_updates"] == sync["updates_sent"] + sync["lost_updates"], sync
    assert not left_in_shm(run_dir, "*-node-*"), "a node's copy outlived the run"


def test_a_restarting_worker_actor_is_one_death_however_often_it_is_unavailable(monkeypatch):
    """Ray answers a call to an actor it is restarting (or that waits for a CPU, its machine gone) with
    ActorUnavailableError at once. One death must count once, not once per retry: counted per retry, a worker
    that waited for a CPU stopped the run ("died 6 times within 60 s") in a CI run of the machine-leaving test."""
    from arm_a3c.backends import ray as ray_backend
    from arm_a3c.backends.processes import DeathLog

    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])

    class Died(Exception):
        pass

    class Unavailable(Died):
        pass

    outcomes = []  # what each new call of the worker's loop does: an exception, or None (it keeps running)

    class Ref:
        def __init__(self):
            self.outcome = outcomes.pop(0)

    class FakeRay:
        exceptions = types.SimpleNamespace(RayActorError=Died, ActorUnavailableError=Unavailable)

        @staticmethod
        def wait(refs, num_returns, timeout):
            return [r for r in refs if r.outcome is not None], [r for r in refs if r.outcome is None]

        @staticmethod
        def get(ref):
            raise ref.outcome

    actor = types.SimpleNamespace(run=types.SimpleNamespace(remote=lambda starts: Ref()))
    workers = object.__new__(ray_backend.RayWorkers)
    workers.__dict__.update(ray=FakeRay, actors={0: actor}, runs={}, starts={}, unavailable={}, recovering={},
                            deaths=DeathLog(), restarts=0, machines_checked=clock[0], machines_gone=set(),
                            evaluator=types.SimpleNamespace(replace_dead=lambda: None))
    monkeypatch.setattr(workers, "notice_machines_gone", lambda: None, raising=False)
    outcomes.append(Unavailable())  # the first loop: its actor dies (Ray restarts it)
    workers._run(0)
    outcomes.extend([Unavailable()] * 12 + [None])  # 12 answers "not there yet", then the loop runs
    for _ in range(40):  # 40 s of the launcher's checks, one a second
        assert workers.replace_dead() is None, "one death stopped the run"
        clock[0] += 1.0
    assert workers.restarts == 1 and not outcomes  # every retry was made, one death counted
    assert 0 not in workers.recovering  # the loop has run for seconds: the worker is back
    workers.runs[0].outcome = Died()  # it dies again: a second death
    outcomes.append(None)
    assert workers.replace_dead() is None
    assert workers.restarts == 2
