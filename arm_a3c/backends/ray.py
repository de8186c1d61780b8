"""`--backend ray`: the A3C workers as Ray actors, so a run can spread over the cores of a cluster.

The picture is the local backend's, with processes that Ray places:

- The global Actor-Critic, its Adam (moments and step count) and the observation normaliser are one
  memory-mapped file on the launcher's machine (`backends.mapped.MappedShared`), the parameter server's memory.
- `ParameterServer` (one actor, pinned to the launcher's machine) serves it to workers elsewhere: a worker's
  `exchange` call applies its gradient, counts its steps and observations, and answers with the newest
  weights: A3C's push and pull in one round trip. Each version of the weights is `ray.put` once, when a
  worker first asks for it, and every worker that pulls that version reads that one object. The server also
  passes the workers' reports on to the launcher.
- `RayWorker` (one actor per worker, one CPU each, anywhere in the cluster) runs the local backend's worker
  loop, `worker.train_worker`. On the launcher's machine it maps the parameter server's memory and pushes and
  pulls there directly (`shared.SharedMemoryLink`, as the local backend's processes do: a Ray call per update
  costs more than the update itself, measured in docs/more-machines.md). Elsewhere (or with `--no-ray-shared-memory`) it
  does the same in its machine's copy of the model, which that machine's sync agent keeps in step with the
  server every `--ray-sync-ms` (`ray_sync.py`: one message per machine and period, not one per update); with
  `--ray-sync-ms 0`, each of its updates is one exchange with the server (`RayLink`).
- The launcher (`a3c.launcher.train`, handed a `RayBackend`) keeps everything else: the evaluator process,
  checkpoints, metrics, the progress line, the stopping rules; they read the mapped memory as they read the
  local backend's.
- A worker actor that dies is restarted by Ray (`max_restarts=-1`); the launcher starts its loop again with a
  new seed, and stops the run when one keeps dying (`processes.MAX_DEATHS`), as it does for local processes.

The parameter server is `ray_server.py`, the worker actors `ray_worker.py`, the sync agents `ray_sync.py`; this
module is the launcher's side. Ray is optional (`requirements-ray.txt`). Every machine of a cluster needs the repository at the same path as
the launcher's (it is put on the actors' PYTHONPATH) and the same Python packages.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

from arm_a3c.a3c.children import ONE_THREAD_ENV
from arm_a3c.a3c.config import TrainConfig
from arm_a3c.a3c.interfaces import EvaluatorArgs, Report
from arm_a3c.backends.mapped import MappedShared, build_mapped_shared
from arm_a3c.backends.processes import DEATH_WINDOW_SECONDS, EVALUATOR, JOIN_SECONDS, MAX_DEATHS, Children, DeathLog
from arm_a3c.backends.ray_server import ParameterServer
from arm_a3c.backends.ray_sync import agent_name, sync_agent_for
from arm_a3c.backends.ray_worker import RayWorker
from arm_a3c.errors import UserError, notice
from arm_a3c.sim.assets import ASSETS_VARIABLE

REPO = Path(__file__).resolve().parents[2]
OBJECT_STORE_BYTES = 256 * 2**20  # a local instance's object store: weights are ~50 KB a version
CONNECT_SECONDS = 5.0  # how long a --ray-address HOST:PORT may take to accept a connection
INSTALL_HINT = "python -m pip install -r requirements-ray.txt"
# Ray's own switch (meant for laptops): at "0" a node's address is 127.0.0.1, and its servers (GCS, raylets,
# workers, agents) listen there only. A run on a local instance, or on a cluster it reaches at a loopback address,
# is kept there: nothing of it can be reached from another machine or sends to one.
LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def on_loopback(address: str | None) -> bool:
    """Whether a run with `--ray-address address` stays on this machine's loopback interface: a local instance
    (no address), or a HOST:PORT whose host is a loopback address (`127.0.0.1`, `localhost`, `[::1]`)."""
    if not address or address == "local":
        return True
    if address == "auto" or "://" in address:
        return False  # a cluster already running here, at the address it was started with
    host = address.rpartition(":")[0].strip("[]")
    try:
        return ipaddress.ip_address(socket.gethostbyname(host) if host == "localhost" else host).is_loopback
    except (ValueError, OSError):
        return False


def keep_on_loopback() -> None:
    """Give the Ray nodes this process starts, and its own connection, the address 127.0.0.1 (see
    LOOPBACK_VARIABLE): set in the environment, which the node processes inherit, and in this process's Ray if
    it was imported already (Ray reads the variable once, at import)."""
    os.environ[LOOPBACK_VARIABLE] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


# A Ray node starts one Python worker per CPU as soon as the first driver connects, for tasks to come. arm-a3c
# runs actors only, and its actors carry a runtime environment (their thread counts and import path), so those
# workers, made without it, never serve them: each costs a Python start-up's CPU and then sits idle (measured: a
# local instance, two actors and its shutdown, 8.2 -> 7.8 core-s without them).
PRESTART_VARIABLE = "RAY_prestart_worker_first_driver"


def no_idle_workers() -> None:
    """Tell the Ray nodes this process starts (a local instance, a simulated cluster) not to start idle workers:
    set in the environment, which they inherit. A cluster started elsewhere keeps its own setting."""
    os.environ.setdefault(PRESTART_VARIABLE, "0")


# ---- the launcher's side ------------------------------------------------------------------------------------

def check_reachable(address: str | None) -> None:
    """A HOST:PORT address that nothing answers at is one line at once (Ray itself kept retrying for over 3
    minutes here)."""
    if not address or address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except ValueError:
        raise UserError(f"--ray-address {address}: expected HOST:PORT (the head's address, port 6379 by "
                        f"default) or auto") from None
    except OSError as err:
        raise UserError(f"--ray-address {address}: no Ray cluster there ({err.strerror or err}); start one with "
                        f"`ray start --head`, or leave --ray-address out for a local instance") from None


def start_ray(cfg: TrainConfig):
    """Join the cluster at cfg.ray_address, or start a local Ray instance with one CPU per worker (listening on
    the loopback interface only)."""
    if on_loopback(cfg.ray_address):
        keep_on_loopback()
    ray = import_ray()
    check_reachable(cfg.ray_address)
    runtime_env = {"env_vars": {**ONE_THREAD_ENV, "PYTHONPATH": os.pathsep.join(
        p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)}}
    if os.environ.get(ASSETS_VARIABLE):  # --assets folders: the actors look robots up there too
        runtime_env["env_vars"][ASSETS_VARIABLE] = os.environ[ASSETS_VARIABLE]
    try:
        if cfg.ray_address:
            ray.init(address=cfg.ray_address, runtime_env=runtime_env, logging_level=logging.WARNING)
        else:
            no_idle_workers()
            ray.init(address="local", num_cpus=cfg.workers, include_dashboard=False,
                     object_store_memory=OBJECT_STORE_BYTES, runtime_env=runtime_env, logging_level=logging.WARNING)
    except ConnectionError as err:
        raise UserError(f"--ray-address {cfg.ray_address}: no Ray cluster there ({str(err)[:120]}); start one "
                        f"with `ray start --head`, or leave --ray-address out for a local instance") from None
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < cfg.workers:
        ray.shutdown()
        raise UserError(f"--workers {cfg.workers} needs {cfg.workers} CPUs, and the Ray cluster has {cpus:g}; "
                        f"pass --workers {int(cpus)} or add machines to the cluster")
    return ray


MACHINES_CHECK_SECONDS = 5.0  # how often the launcher asks Ray which machines left the cluster
UNAVAILABLE_RETRY_SECONDS = 2.0  # a worker actor Ray is restarting (or that waits for a CPU) is asked again after this
BACK_AFTER_SECONDS = 5.0  # a restarted worker whose loop has run this long is back: its next failure is a new death


def kill_descendants() -> bool:
    """SIGKILL every process descended from this one (a local Ray instance's servers, agents and workers; the
    tree is read from /proc first, so no process is reparented away while it is killed). False where there is
    no /proc."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return False
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (name)": state, ppid, ...
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [os.getpid()]
    while todo:
        for pid in children.get(todo.pop(), []):
            found.append(pid)
            todo.append(pid)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return True


def mapped_path() -> Path:
    """A new file for a Ray run's `MappedShared`: in RAM (/dev/shm) where the machine has it."""
    folder = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    return folder / f"arm-a3c-{os.getpid()}-{uuid.uuid4().hex[:8]}.bin"


class RayWorkers:
    """The Ray backend's `WorkerSet`: the parameter server and the worker actors, plus the evaluator as a local
    process (`processes.Children` with only the evaluator's role)."""

    def __init__(self, ctx, cfg: TrainConfig, shared: MappedShared, run_dir: Path, resumed_steps: int,
                 evaluator_args: EvaluatorArgs):
        self.ray = import_ray()  # started or joined by `RayBackend.start`
        self.cfg, self.shared, self.resumed_steps = cfg, shared, resumed_steps
        self.spec = {**shared.spec, "run_dir": str(Path(run_dir).resolve())}
        self.evaluator = Children(ctx, cfg, shared, run_dir, resumed_steps, evaluator_args, roles=[EVALUATOR])
        # The server maps the launcher's file, so it runs on the launcher's machine, with no CPU reserved (it is
        # busy a few % of the time).
        self.node = self.ray.get_runtime_context().get_node_id()
        here = self.ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(self.node, soft=False)
        self.server_name = f"arm-a3c-server-{uuid.uuid4().hex[:8]}"
        self.server = self.ray.remote(num_cpus=0, max_restarts=0, scheduling_strategy=here)(ParameterServer).options(
            name=self.server_name).remote(self.spec)
        self.worker_class = self.ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)(RayWorker)
        self.actors: dict = {}
        self.runs: dict = {}  # rank -> ObjectRef of its running loop
        self.unavailable: dict = {}  # rank -> when to start its loop again (its actor was not available)
        self.recovering: dict = {}  # rank -> when its loop was last started, for workers coming back from a death
        self.starts: dict = {}
        self.deaths = DeathLog()
        self.restarts = 0
        self.figures: dict = {}  # the sync agents' and the server's figures, after the stop (summary.json's "sync")
        self.agents: list = []  # the sync agents this launcher made (and owns)
        self.machines_gone: set[str] = {node["NodeID"] for node in self.ray.nodes() if not node["Alive"]}
        self.machines_checked = time.monotonic()

    def start_all(self) -> None:
        self.ray.get(self.server.drain.remote())  # the server is up (and named) before workers look it up
        if self.cfg.ray_sync_ms > 0:
            # One sync agent per machine with CPUs for workers, made here so that it lives as long as the run (an
            # actor lives as long as its owner); a machine that joins later gets one from its first worker.
            for node in self.ray.nodes():
                if node["Alive"] and node["Resources"].get("CPU", 0) > 0 and (
                        node["NodeID"] != self.node or not self.cfg.ray_shared_memory):
                    self.agents.append(sync_agent_for(self.ray, self.cfg, self.server_name, self.spec, node["NodeID"]))
            self.ray.get([agent.attach.remote() for agent in self.agents])
        for rank in range(self.cfg.workers):
            self.actors[rank] = self.worker_class.remote(rank, self.cfg, self.server_name, self.spec, self.node,
                                                         self.resumed_steps)
            self._run(rank)
        self.evaluator.start_all()

    def _run(self, rank: int) -> None:
        self.runs[rank] = self.actors[rank].run.remote(self.starts.get(rank, 0))
        self.starts[rank] = self.starts.get(rank, 0) + 1

    def reports(self, timeout: float | None = None) -> list[Report]:
        """The workers' reports (through the server) and the evaluator's."""
        return self.ray.get(self.server.drain.remote(), timeout=timeout) + self.evaluator.reports()

    def replace_dead(self) -> str | None:
        """Start the loop again on every worker actor Ray restarted; the reason to stop if one keeps dying. Every
        few seconds, look for machines that left the cluster (a worker's call may hang rather than fail then)."""
        if time.monotonic() - self.machines_checked >= MACHINES_CHECK_SECONDS:
            self.machines_checked = time.monotonic()
            self.notice_machines_gone()
        now = time.monotonic()
        for rank, when in list(self.unavailable.items()):
            if now >= when:
                del self.unavailable[rank]
                self._run(rank)
                self.recovering[rank] = now
        ready = self.ray.wait(list(self.runs.values()), num_returns=len(self.runs), timeout=0)[0] if self.runs else []
        for rank, ref in list(self.runs.items()):
            if ref not in ready:
                if rank in self.recovering and now - self.recovering[rank] >= BACK_AFTER_SECONDS:
                    del self.recovering[rank]  # its loop has been running: the worker is back
                continue
            try:
                self.ray.get(ref)
                continue  # the loop ended because the run is stopping
            except self.ray.exceptions.RayActorError as err:
                how = type(err).__name__
                if rank in self.recovering and isinstance(err, self.ray.exceptions.ActorUnavailableError):
                    # Not a new death: Ray is still restarting the actor after the one counted, or the restarted
                    # actor waits for a free CPU (its machine left). Ask again shortly, without counting.
                    del self.runs[rank]
                    self.unavailable[rank] = time.monotonic() + UNAVAILABLE_RETRY_SECONDS
                    continue
            self.notice_machines_gone()
            deaths = self.deaths.record(rank)
            if deaths > MAX_DEATHS:
                return f"worker {rank + 1} died {deaths} times within {DEATH_WINDOW_SECONDS:.0f} s (last: {how})"
            notice(f"worker {rank + 1} (a Ray actor) died ({how}); Ray restarts it "
                   f"({deaths} death(s) of it in the last minute)")
            self.restarts += 1
            self._run(rank)
            self.recovering[rank] = time.monotonic()
        return self.evaluator.replace_dead()

    def notice_machines_gone(self) -> None:
        """Say once of each machine that left the cluster (its workers die with it; Ray starts them again where
        a CPU is free, or they wait for one, and the run goes on without them)."""
        gone = {node["NodeID"] for node in self.ray.nodes() if not node["Alive"]} - self.machines_gone
        for node in sorted(gone):
            notice(f"machine {node[:12]} left the Ray cluster: its workers are restarted where a CPU is free, "
                   f"or wait for one; training goes on")
        self.machines_gone |= gone

    def stop(self, on_report) -> None:
        """Set the stop flag, wait for the workers' loops, take their last reports, stop the evaluator, and shut
        Ray down."""
        ray = self.ray
        self.shared.request_stop()
        if self.runs:
            ray.wait(list(self.runs.values()), num_returns=len(self.runs), timeout=JOIN_SECONDS)
        try:
            self.figures = self.flush_agents()
            for event in self.reports(timeout=JOIN_SECONDS):
                on_report(event)
        except ray.exceptions.RayError as err:
            notice(f"warning: the parameter server did not answer at the stop ({type(err).__name__}): the "
                   f"workers' last reports are lost (the checkpoint is not: it is in this machine's memory)")
        try:
            self.notice_machines_gone()  # one that left since the last check (every MACHINES_CHECK_SECONDS) is told too
        except ray.exceptions.RayError:
            pass
        self.evaluator.stop(on_report)
        ray.shutdown()

    def flush_agents(self) -> dict:
        """The workers have stopped: every sync agent sends what its machine still holds; their figures and the
        server's, summed (summary.json's "sync"). A machine that left the cluster has no agent to ask: it is
        counted in `machines_lost`, and what it had not synced is gone with it."""
        ray = self.ray
        nodes = list(ray.get(self.server.load_figures.remote(), timeout=JOIN_SECONDS)["updates_per_node"])
        if not nodes:
            return {}
        flushes = []
        for node in nodes:
            try:
                flushes.append(ray.get_actor(agent_name(self.server_name, node)).flush.remote())
            except ValueError:  # no such actor any more: its machine left
                pass
        agents = []
        for ref in flushes:
            try:
                agents.append(ray.get(ref, timeout=JOIN_SECONDS))
            except ray.exceptions.RayError:
                pass
        server = ray.get(self.server.load_figures.remote(), timeout=JOIN_SECONDS)
        if not agents:
            return {"machines": 0, "machines_lost": len(nodes), "updates_applied": server["delta_updates"]}
        total = {key: int(sum(a[key] for a in agents)) for key in (
            "syncs", "updates_sent", "bytes_sent", "lost_updates", "restarts", "staleness_sum", "staleness_syncs",
            "node_updates")}
        round_trips = sum(a["round_trip_seconds"] for a in agents)
        return {
            "machines": len(agents), "machines_lost": len(nodes) - len(agents), "sync_ms": self.cfg.ray_sync_ms,
            "syncs": total["syncs"],
            "node_updates": total["node_updates"], "updates_sent": total["updates_sent"],
            "updates_applied": server["delta_updates"],
            "lost_updates": total["lost_updates"], "agent_restarts": total["restarts"],
            "bytes_per_sync": round(total["bytes_sent"] / max(total["syncs"], 1)),
            "round_trip_ms": round(1000 * round_trips / max(total["syncs"], 1), 3),
            "server_ms_per_sync": round(1000 * server["sync_busy_seconds"] / max(server["syncs"], 1), 4),
            "staleness_updates_mean": round(total["staleness_sum"] / max(total["staleness_syncs"], 1), 1),
            "staleness_updates_max": int(max(a["staleness_max"] for a in agents)),
            "per_machine": agents,
        }

    def abandon(self) -> None:
        """For an exit at once (a second Ctrl-C): remove the mapped file and end a local Ray instance's processes
        (its agents outlive a driver that exits without this). Not with `ray.shutdown()`: this runs in a signal
        handler, which Ray also runs from inside a waiting `ray.get`, and a shutdown from there can wait forever
        (a CI run hung 60 s so). The processes of a local instance are this process's descendants: they are
        killed. A joined cluster ends the actors of a driver that exits by itself."""
        Path(self.shared.spec["path"]).unlink(missing_ok=True)
        remove_node_files(self.shared.spec)
        if not self.cfg.ray_address:
            if not kill_descendants():
                self.ray.shutdown()  # no /proc to find them in (not Linux)


class RayBackend:
    """`--backend ray`: the global model in a file Ray's processes on this machine can map, served to the others
    by the parameter server."""

    name = "ray"

    def check(self, cfg: TrainConfig) -> None:
        if cfg.lock_updates:
            raise UserError("--lock-updates works with the local backend only (Ray actors cannot share a lock)")

    def start(self, cfg: TrainConfig) -> None:
        start_ray(cfg)

    def build_shared(self, cfg: TrainConfig, obs_dim: int, action_dim: int, ctx, run_dir: Path) -> MappedShared:
        return build_mapped_shared(cfg, obs_dim, action_dim, mapped_path(), run_dir)

    def workers(self, ctx, cfg: TrainConfig, shared: MappedShared, run_dir: Path, resumed_steps: int,
                evaluator_args: EvaluatorArgs) -> RayWorkers:
        return RayWorkers(ctx, cfg, shared, run_dir, resumed_steps, evaluator_args)

    def release(self, shared: MappedShared) -> None:
        Path(shared.spec["path"]).unlink(missing_ok=True)
        remove_node_files(shared.spec)


def remove_node_files(spec: dict) -> None:
    """Remove the node-local copies on this machine that no agent removed (simulated nodes on one host, or an
    agent that could not flush); other machines' agents remove theirs."""
    path = Path(spec["path"])
    for leftover in path.parent.glob(f"{path.stem}-node-*"):
        leftover.unlink(missing_ok=True)
