"""The Ray backend's benchmark (`scripts/bench_ray.py`), measured in one run on one machine:

1. Training throughput with N workers: the local backend, then `--backend ray` (workers on this machine map
   the global model's memory), then `--backend ray --no-ray-shared-memory` (every update through the
   parameter server, as a worker on another machine does); steady-state steps per second of real
   `train_arm.py` runs, and each Ray figure's ratio to the local one.
2. The parameter server's capacity: N client actors send it real-sized exchanges (a gradient, 20 observations,
   the weights pulled back) as fast as they can. Its CPU time per exchange (the whole server process: the
   update, the `ray.put` and Ray's own handling of the call) gives the exchanges per second one server can
   apply at most, and with the workers' own update rate from (1), how many workers one server can serve.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arm_a3c.a3c.config import TrainConfig
from arm_a3c.bench.training import BenchOptions, a3c_run


@dataclass
class RayBenchOptions:
    robot: str = "light_arm"
    workers: int = 2
    throughput_seconds: float = 90.0  # length of each training run
    throughput_steps: int = 0  # ... or this many environment steps, if that comes first (0: no step limit)
    server_seconds: float = 20.0  # how long the clients flood the parameter server


# A smoke test of the benchmark, not a measurement: runs of a few thousand steps, which end soon after Ray's
# start-up however long that takes on the machine (a time budget of seconds can end before a Ray worker steps).
QUICK = dict(throughput_steps=5_000, server_seconds=1.0)


class ExchangeClient:
    """Sends a worker's exchanges, with a fixed gradient and observations, as fast as the server answers."""

    def __init__(self, server_name: str, rank: int, params: int, obs_dim: int, n_steps: int):
        import ray

        self.server, self.rank, self.n_steps = ray.get_actor(server_name), rank, n_steps
        rng = np.random.default_rng(rank)
        self.grad = (rng.standard_normal(params) * 1e-3).astype(np.float32)
        self.obs = rng.standard_normal((n_steps, obs_dim)).astype(np.float32)

    def flood(self, seconds: float) -> int:
        import ray

        weights, version, sent = None, -1, 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            version, refs, _, _, _ = ray.get(self.server.exchange.remote(
                self.rank, self.grad, 1e-6, self.obs, self.n_steps, [], version))
            if refs is not None:
                weights = np.array(ray.get(refs[0]))  # pulled and copied, as a worker does
            sent += 1
        return sent if weights is not None else 0


def server_capacity(robot: str, clients: int, seconds: float, work_dir: Path) -> dict:
    """Flood one parameter server (`backends.ray.ParameterServer`) with `clients` clients; its CPU per exchange."""
    from arm_a3c.a3c.shared import build_shared
    from arm_a3c.backends.ray import ParameterServer, start_ray
    from arm_a3c.envs.arm_env import make_env

    probe = make_env(robot=robot)
    obs_dim, action_dim = probe.obs_dim, probe.robot.dof
    probe.close()
    cfg = TrainConfig(robot=robot, workers=clients)
    ray = start_ray(cfg)  # a local instance with one CPU per client, as a training run starts it
    memory = work_dir / "server-memory.bin"
    try:
        shared = build_shared(cfg, obs_dim, action_dim, None, None, mapped=memory)
        server = ray.remote(num_cpus=0)(ParameterServer).options(name="bench-server").remote(shared.spec)
        ray.get(server.drain.remote())
        client_class = ray.remote(num_cpus=1)(ExchangeClient)
        actors = [client_class.remote("bench-server", rank, shared.model.flat.numel(), obs_dim, cfg.n_steps)
                  for rank in range(clients)]
        ray.get([a.flood.remote(1.0) for a in actors])  # warm up
        before = ray.get(server.load_figures.remote())
        started = time.monotonic()
        sent = sum(ray.get([a.flood.remote(seconds) for a in actors]))
        elapsed = time.monotonic() - started
        after = ray.get(server.load_figures.remote())
    finally:
        ray.shutdown()
        memory.unlink(missing_ok=True)
    exchanges = after["exchanges"] - before["exchanges"]
    cpu = after["cpu_seconds"] - before["cpu_seconds"]
    inside = after["busy_seconds"] - before["busy_seconds"]
    return {"clients": clients, "seconds": round(elapsed, 1), "exchanges": exchanges, "client_count": sent,
            "exchanges_per_second": round(exchanges / elapsed, 1),
            "server_cpu_ms_per_exchange": round(1e3 * cpu / exchanges, 3),
            "server_method_ms_per_exchange": round(1e3 * inside / exchanges, 3),
            "server_cpu_share": round(cpu / elapsed, 3),
            "max_exchanges_per_second": round(exchanges / cpu, 1)}


def run_ray_benchmark(opts: RayBenchOptions, work_dir: Path, log=print) -> dict:
    bench = BenchOptions(robots=(opts.robot,), workers=opts.workers)
    n, seconds = opts.workers, opts.throughput_seconds
    runs = {}
    for name, flags in [("local", ()), ("ray", ("--backend", "ray")),
                        ("ray_through_server", ("--backend", "ray", "--no-ray-shared-memory"))]:
        steps = f" or {opts.throughput_steps:,} steps" if opts.throughput_steps else ""
        log(f"training throughput: {name}, {n} workers, {seconds:g} s{steps}")
        runs[name] = a3c_run(bench, opts.robot, n, seconds, 1.01, work_dir / f"throughput-{name}", extra=flags,
                             max_steps=opts.throughput_steps)
    log(f"parameter server capacity: {n} clients flooding it for {opts.server_seconds:g} s")
    capacity = server_capacity(opts.robot, n, opts.server_seconds, work_dir)
    local_rate, remote_rate = runs["local"]["steps_per_second"], runs["ray_through_server"]["steps_per_second"]
    n_steps = TrainConfig().n_steps  # one update per n_steps steps of a worker
    fast, slow = local_rate / n / n_steps, remote_rate / n / n_steps
    return {
        "options": opts.__dict__, "throughput": runs,
        "ray_to_local": round(runs["ray"]["steps_per_second"] / local_rate, 3),
        "ray_through_server_to_local": round(remote_rate / local_rate, 3),
        "server": capacity,
        # A worker's updates per second: at the local backend's pace (what it would ask for if calls were
        # free), and at the pace measured through the server.
        "updates_per_second_per_worker": {"local_pace": round(fast, 1), "through_server": round(slow, 1)},
        "workers_one_server_serves": {"local_pace": int(capacity["max_exchanges_per_second"] // fast),
                                      "through_server": int(capacity["max_exchanges_per_second"] // slow)},
    }


def format_table(result: dict) -> str:
    opts, runs, server = result["options"], result["throughput"], result["server"]
    pace, served = result["updates_per_second_per_worker"], result["workers_one_server_serves"]
    n = opts["workers"]
    return "\n".join([
        f"robot {opts['robot']}, {n} workers",
        "",
        "| measure | value |",
        "|---|---|",
        f"| local backend, {n} workers | {runs['local']['steps_per_second']:,.0f} steps/s |",
        f"| Ray backend, {n} workers (shared memory on the launcher's machine) | "
        f"{runs['ray']['steps_per_second']:,.0f} steps/s ({result['ray_to_local']:.2f} of local) |",
        f"| Ray backend, {n} workers, every update through the parameter server | "
        f"{runs['ray_through_server']['steps_per_second']:,.0f} steps/s ({result['ray_through_server_to_local']:.2f} "
        f"of local) |",
        f"| parameter server: CPU per exchange (process total; inside the method) | "
        f"{server['server_cpu_ms_per_exchange']:.3f} ms; {server['server_method_ms_per_exchange']:.3f} ms |",
        f"| parameter server: exchanges/s with {server['clients']} clients flooding it | "
        f"{server['exchanges_per_second']:,.0f} (server busy {server['server_cpu_share']:.0%} of a core) |",
        f"| parameter server: at most, one core | {server['max_exchanges_per_second']:,.0f} exchanges/s |",
        f"| one worker's updates/s: at the local pace; through the server (runs above / {n} / n_steps) | "
        f"{pace['local_pace']:,.0f}; {pace['through_server']:,.0f} |",
        f"| workers one parameter server serves: at the local pace; at the pace through it | "
        f"{served['local_pace']}; {served['through_server']} |",
        "| peak memory (PSS, all processes, Ray's own included): local; Ray; Ray through the server | "
        + "; ".join(f"{runs[name]['peak_pss_mb']:,.0f} MB" for name in ("local", "ray", "ray_through_server")) + " |",
    ])
