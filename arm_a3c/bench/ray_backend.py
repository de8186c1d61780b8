"""The Ray backend's benchmark (`scripts/bench_ray.py`), measured in one run on one machine:

1. Training throughput with N workers: the local backend, then `--backend ray` (workers on this machine map
   the global model's memory), then `--backend ray --no-ray-shared-memory` (the workers treated as another
   machine's: behind a sync agent, `backends.ray_sync`), then the same with `--ray-sync-ms 0` (every update
   through the parameter server, the way before sync agents); steady-state steps per second of real
   `train_arm.py` runs, and each Ray figure's ratio to the local one. The sync-agent run's summary gives the
   syncs, bytes per sync, round trip and staleness.
2. The parameter server's capacity for per-update exchanges: N client actors send it real-sized exchanges (a
   gradient, 20 observations, the weights pulled back) as fast as they can. Its CPU time per exchange (the
   whole server process: the update, the `ray.put` and Ray's own handling of the call) gives the exchanges per
   second one server can apply at most, and with the workers' own update rate from (1), how many workers one
   server can serve that way.
3. Its capacity for sync agents: N clients send real-sized syncs (a parameter delta, the observation sums of
   16 workers, the weights answered back) as fast as they can; the server's CPU per sync gives the syncs per
   second one core applies, and with one sync per machine every `--ray-sync-ms`, the machines it serves (each
   machine's workers train at the local pace: they never wait for a sync).
4. With `--learning-seeds`: learning per environment step behind sync agents against the local backend: one
   run per seed with the local backend, and with the same workers spread over `learning_machines` simulated
   machines (Ray nodes on this host, `ray.cluster_utils.Cluster`, a head with no CPU), each behind its own sync
   agent, for each sync period of `--sync-periods`; time and environment steps to the evaluator's
   `learning_target`, medians and ranges, the agents' staleness. `--learning-only` runs this part alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arm_a3c.a3c.config import TrainConfig
from arm_a3c.bench.options import BenchOptions
from arm_a3c.bench.training import a3c_run


# The throughput part's training runs: name -> the flags of `arm-a3c train` that make it
THROUGHPUT_RUNS = {"local": (), "ray": ("--backend", "ray"),
                   "ray_sync_agent": ("--backend", "ray", "--no-ray-shared-memory"),
                   "ray_through_server": ("--backend", "ray", "--no-ray-shared-memory", "--ray-sync-ms", "0")}
RUN_WORDS = {"local": "local", "ray": "Ray", "ray_sync_agent": "behind a sync agent",
             "ray_through_server": "through the server"}  # each in the table's words


@dataclass
class RayBenchOptions:
    robot: str = "light_arm"
    workers: int = 2
    throughput_seconds: float = 90.0  # length of each training run
    throughput_steps: int = 0  # ... or this many environment steps, if that comes first (0: no step limit)
    server_seconds: float = 20.0  # how long the clients flood the parameter server
    learning_seeds: tuple[int, ...] = ()  # with seeds: time and steps to `learning_target`, local vs sync agents
    learning_target: float = 0.8
    learning_seconds: float = 300.0  # budget of each of those runs
    learning_steps: int = 0  # ... or this many environment steps, if that comes first (0: no step limit)
    learning_machines: int = 2  # simulated machines (Ray nodes on this host) the sync configurations spread over
    sync_periods: tuple[float, ...] = ()  # sync periods (ms) to compare; none: the default
    learning_only: bool = False  # only the learning comparison (no throughput or capacity parts)
    eval_episodes: int = 100  # the evaluator's episodes per evaluation in every training run
    throughput_runs: tuple[str, ...] = tuple(THROUGHPUT_RUNS)  # which of them the throughput part runs
    ray_address: str | None = None  # the learning comparison on this cluster, not on simulated machines


# A smoke test of the benchmark, not a measurement: runs of a few thousand steps, which end soon after Ray's
# start-up however long that takes on the machine (a time budget of seconds can end before a Ray worker steps).
# Its throughput part runs the local backend and the Ray backend with shared memory only: the sync agents and the
# runs through the server have trainings of their own in the test suite (tests/test_ray.py). The server's floods
# last 2 s: floods of 0.5 s made 9 exchanges once on a loaded machine, too few to say every one was applied.
QUICK = dict(throughput_steps=5_000, server_seconds=2.0, learning_seconds=12.0, learning_steps=5_000, eval_episodes=10,
             throughput_runs=("local", "ray"))


class FloodClient:
    """Sends, as fast as the server answers, a worker's exchanges (a fixed gradient and observations) or a sync
    agent's syncs (a fixed delta and the running totals of `writers` workers, each sync one update and `n_steps`
    steps more per worker). One client serves both floods: a Ray actor's start costs a Python start-up."""

    def __init__(self, rank: int, params: int, obs_dim: int, writers: int, n_steps: int):
        self.rank, self.node, self.n_steps = rank, f"bench-node-{rank}", n_steps
        rng = np.random.default_rng(rank)
        self.grad = (rng.standard_normal(params) * 1e-3).astype(np.float32)
        self.obs = rng.standard_normal((n_steps, obs_dim)).astype(np.float32)
        self.delta = (rng.standard_normal(params) * 1e-6).astype(np.float32)
        self.ranks = np.arange(writers)
        self.row = rng.standard_normal((writers, obs_dim))
        self.syncs = 0  # over every flood: the totals only grow

    def exchanges(self, server_name: str, seconds: float) -> int:
        import ray

        server, weights, version, sent = ray.get_actor(server_name), None, -1, 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            version, refs, _, _, _ = ray.get(server.exchange.remote(
                self.rank, self.grad, 1e-6, self.obs, self.n_steps, [], version))
            if refs is not None:
                weights = np.array(ray.get(refs[0]))  # pulled and copied, as a worker does
            sent += 1
        return sent if weights is not None else 0

    def sync(self, server_name: str, seconds: float) -> int:
        import ray

        server, sent, deadline = ray.get_actor(server_name), 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.syncs += 1
            k = self.syncs
            totals = (self.ranks, np.full(len(self.ranks), k * self.n_steps, np.int64), self.ranks,
                      np.full(len(self.ranks), float(k * self.n_steps)), k * self.row, k * self.row**2)
            weights = ray.get(server.sync.remote(self.node, self.delta, k, totals, []))[0]
            np.array(weights)  # copied, as an agent does
            sent += 1
        return sent


SYNC_WRITERS = 16  # observation rows a sync of the capacity test carries: a machine of 16 workers


def server_capacities(robot: str, clients: int, seconds: float, work_dir: Path) -> tuple[dict, dict]:
    """Flood a parameter server (`backends.ray_server.ParameterServer`) with `clients` clients: first with
    per-update exchanges, then (a second server) with sync agents' syncs; each one's CPU per call. One local Ray
    instance for both, started as a training run starts it, and the same clients."""
    from arm_a3c.backends.ray import start_ray
    from arm_a3c.envs.arm_env import make_env

    probe = make_env(robot=robot)
    sizes = probe.obs_dim, probe.robot.dof
    probe.close()
    cfg = TrainConfig(robot=robot, workers=clients)
    ray = start_ray(cfg)  # a local instance with one CPU per client
    actors = []  # made by the first flood, once its server's model says how many parameters a gradient has
    try:
        return (_flood(ray, cfg, sizes, actors, seconds, work_dir, syncs=False),
                _flood(ray, cfg, sizes, actors, seconds, work_dir, syncs=True))
    finally:
        ray.shutdown()


def _flood(ray, cfg: TrainConfig, sizes: tuple[int, int], actors: list, seconds: float, work_dir: Path,
           syncs: bool) -> dict:
    """One flood of `server_capacities` by its clients `actors` (made here if empty; its server killed after it)."""
    from arm_a3c.backends.mapped import build_mapped_shared
    from arm_a3c.backends.ray_server import ParameterServer

    (obs_dim, action_dim), clients = sizes, cfg.workers
    memory = work_dir / "server-memory.bin"
    name = "bench-sync-server" if syncs else "bench-server"
    # The server's normaliser has a slot per worker: with syncs, those of a machine of SYNC_WRITERS workers.
    server_cfg = TrainConfig(robot=cfg.robot, workers=SYNC_WRITERS) if syncs else cfg
    try:
        shared = build_mapped_shared(server_cfg, obs_dim, action_dim, memory)
        server = ray.remote(num_cpus=0)(ParameterServer).options(name=name).remote(shared.spec)
        ray.get(server.drain.remote())
        if not actors:
            actors += [ray.remote(num_cpus=1)(FloodClient).remote(rank, shared.model.flat.numel(), obs_dim,
                                                                  SYNC_WRITERS, cfg.n_steps) for rank in range(clients)]
        flood = (lambda a, s: a.sync.remote(name, s)) if syncs else (lambda a, s: a.exchanges.remote(name, s))
        ray.get([flood(a, min(1.0, seconds / 4)) for a in actors])  # warm up (a quarter of the flood, at most 1 s)
        before = ray.get(server.load_figures.remote())
        started = time.monotonic()
        sent = sum(ray.get([flood(a, seconds) for a in actors]))
        elapsed = time.monotonic() - started
        after = ray.get(server.load_figures.remote())
        ray.kill(server)  # its CPU free for the next flood
    finally:
        memory.unlink(missing_ok=True)
    calls, busy = ("syncs", "sync_busy_seconds") if syncs else ("exchanges", "busy_seconds")
    exchanges = after[calls] - before[calls]
    cpu = after["cpu_seconds"] - before["cpu_seconds"]
    inside = after[busy] - before[busy]
    return {"clients": clients, "seconds": round(elapsed, 1), "exchanges": exchanges, "client_count": sent,
            "exchanges_per_second": round(exchanges / elapsed, 1),
            "server_cpu_ms_per_exchange": round(1e3 * cpu / exchanges, 3),
            "server_method_ms_per_exchange": round(1e3 * inside / exchanges, 3),
            "server_cpu_share": round(cpu / elapsed, 3),
            "max_exchanges_per_second": round(exchanges / cpu, 1)}


def run_ray_benchmark(opts: RayBenchOptions, work_dir: Path, log=print) -> dict:
    bench = BenchOptions(robots=(opts.robot,), workers=opts.workers, eval_episodes=opts.eval_episodes)
    if opts.learning_only:
        return {"options": opts.__dict__, "learning": learning_comparison(opts, bench, work_dir, log)}
    n, seconds = opts.workers, opts.throughput_seconds
    # Rates only: no held-out test or robustness grid after a throughput run (nothing here reports them).
    rates_only = BenchOptions(**{**bench.__dict__, "test_episodes": 0})
    runs = {}
    for name, flags in THROUGHPUT_RUNS.items():
        if name not in opts.throughput_runs:
            continue
        steps = f" or {opts.throughput_steps:,} steps" if opts.throughput_steps else ""
        log(f"training throughput: {name}, {n} workers, {seconds:g} s{steps}")
        runs[name] = a3c_run(rates_only, opts.robot, n, seconds, 1.01, work_dir / f"throughput-{name}", extra=flags,
                             max_steps=opts.throughput_steps)
    log(f"parameter server capacity: {n} clients flooding it with exchanges, then with syncs, for "
        f"{opts.server_seconds:g} s each")
    capacity, sync_capacity = server_capacities(opts.robot, n, opts.server_seconds, work_dir)
    sync_ms = TrainConfig().ray_sync_ms
    local_rate = runs["local"]["steps_per_second"]

    def to_local(name: str) -> float | None:  # a run's rate over the local backend's (None: not run)
        return round(runs[name]["steps_per_second"] / local_rate, 3) if name in runs else None

    n_steps = TrainConfig().n_steps  # one update per n_steps steps of a worker
    most = capacity["max_exchanges_per_second"]
    fast = local_rate / n / n_steps
    slow = runs["ray_through_server"]["steps_per_second"] / n / n_steps if "ray_through_server" in runs else None
    agent_run = runs["ray_sync_agent"]["sync"] if "ray_sync_agent" in runs else None
    return {
        "options": opts.__dict__, "throughput": runs,
        "ray_to_local": to_local("ray"),
        "ray_through_server_to_local": to_local("ray_through_server"),
        "server": capacity,
        # A worker's updates per second: at the local backend's pace (what it would ask for if calls were
        # free), and at the pace measured through the server.
        "updates_per_second_per_worker": {"local_pace": round(fast, 1),
                                          "through_server": round(slow, 1) if slow else None},
        "workers_one_server_serves": {"local_pace": int(most // fast),
                                      "through_server": int(most // slow) if slow else None},
        "ray_sync_agent_to_local": to_local("ray_sync_agent"),
        "sync_agent_run": ({k: v for k, v in agent_run.items() if k != "per_machine"}
                           if agent_run is not None else None),
        "sync_server": sync_capacity,
        # One sync per machine every sync_ms, whatever its workers: machines one server core serves.
        "machines_one_server_serves": {str(ms): int(sync_capacity["max_exchanges_per_second"] * ms / 1000)
                                       for ms in (20, 50, 100)},
        "sync_ms_default": sync_ms,
        "learning": learning_comparison(opts, bench, work_dir, log) if opts.learning_seeds else None,
    }


def simulated_machines(machines: int, workers: int):
    """A Ray cluster on this host (`ray.cluster_utils.Cluster`): a head with no CPU (the launcher's machine: no
    worker lands there) and `machines` nodes sharing `workers` CPUs, so the workers run on machines of their own,
    each behind its machine's sync agent, as on a real cluster (no memory shared between nodes). Its nodes listen
    on the loopback interface only, at 127.0.0.1 (`backends.ray.keep_on_loopback`)."""
    from arm_a3c.backends.ray import keep_on_loopback, no_idle_workers

    keep_on_loopback()
    no_idle_workers()
    from ray.cluster_utils import Cluster

    store = 80 * 2**20
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": store})
    for index in range(machines):
        cluster.add_node(num_cpus=workers // machines + (index < workers % machines), object_store_memory=store)
    cluster.wait_for_nodes()
    return cluster


def spread(values: list) -> dict:
    """Median over seeds (a run that did not reach the target counts as infinitely long: None when that is the
    median) and the range of the runs that reached it."""
    done = [v for v in values if v is not None]
    median = float(np.median([np.inf if v is None else v for v in values])) if values else np.inf
    return {"median": None if median == np.inf else median, "min": min(done) if done else None,
            "max": max(done) if done else None}


def learning_comparison(opts: RayBenchOptions, bench: BenchOptions, work_dir: Path, log) -> dict:
    """Time and environment steps to `opts.learning_target`, one run per seed each: the local backend, and the
    same workers spread over `opts.learning_machines` simulated machines behind sync agents, for each sync period
    of `opts.sync_periods` (the default period if none). Says whether each sync configuration's median steps lie
    within the local runs' seed-to-seed range or below it (`judge`)."""
    periods = opts.sync_periods or (TrainConfig().ray_sync_ms,)
    configs = [("local", (), None)] + [(f"machines_{ms:g}ms", ("--backend", "ray", "--ray-sync-ms", f"{ms:g}"), ms)
                                       for ms in periods]
    options = BenchOptions(**{**bench.__dict__, "target_success": opts.learning_target,
                              "first_target": opts.learning_target, "test_episodes": 0})
    result = {"machines": opts.learning_machines, "target": opts.learning_target, "configs": {}}
    cluster = None
    try:
        for name, flags, ms in configs:
            if ms is not None and cluster is None and not opts.ray_address:
                cluster = simulated_machines(opts.learning_machines, opts.workers)
            address = ("--ray-address", opts.ray_address or cluster.address) if ms is not None else ()
            runs = []
            for seed in opts.learning_seeds:
                log(f"learning: {name}, seed {seed}, to {opts.learning_target:.0%} "
                    f"(budget {opts.learning_seconds:g} s"
                    f"{f' or {opts.learning_steps:,} steps' if opts.learning_steps else ''})")
                run_dir = work_dir / f"learning-{name}-{seed}"
                run = a3c_run(options, opts.robot, opts.workers, opts.learning_seconds, opts.learning_target,
                              run_dir, seed=seed, max_steps=opts.learning_steps, extra=(*flags, *address))
                sync = run["sync"]
                runs.append({"seed": seed, "seconds": run["time_to_first_target_s"],
                             "env_steps": run["steps_to_first_target"], "steps_per_second": run["steps_per_second"],
                             **({"machines": sync.get("machines"), "syncs": sync.get("syncs"),
                                 "staleness_updates_mean": sync.get("staleness_updates_mean"),
                                 "staleness_updates_max": sync.get("staleness_updates_max"),
                                 "lost_updates": sync.get("lost_updates")} if ms is not None else {})})
            result["configs"][name] = {"sync_ms": ms, "runs": runs, "reached": sum(r["env_steps"] is not None
                                                                                   for r in runs),
                                       "env_steps": spread([r["env_steps"] for r in runs]),
                                       "seconds": spread([r["seconds"] for r in runs])}
    finally:
        if cluster is not None:
            cluster.shutdown()
    if opts.ray_address:  # the cluster's machines as they are: those its runs' workers ran on
        result["cluster"] = opts.ray_address
        result["machines"] = max((r["machines"] or 0 for c in result["configs"].values() for r in c["runs"]
                                  if "machines" in r), default=0)
    judge(result)
    return result


def judge(learning: dict) -> None:
    """Each sync configuration's verdict: its median steps to the target within the local runs' seed-to-seed
    range, or below it (fewer steps: learning no slower per step); a miss of the target is neither."""
    local = learning["configs"]["local"]["env_steps"]
    for name, config in learning["configs"].items():
        if name != "local":
            median = config["env_steps"]["median"]
            config["within_local_spread"] = (median is not None and local["max"] is not None
                                             and median <= local["max"])


def format_table(result: dict) -> str:
    if result["options"].get("learning_only"):
        return f"robot {result['options']['robot']}, {result['options']['workers']} workers\n\n" + format_learning(
            result["learning"])
    opts, runs, server = result["options"], result["throughput"], result["server"]
    sync, agent, learning = result["sync_server"], result["sync_agent_run"], result.get("learning")
    pace, served = result["updates_per_second_per_worker"], result["workers_one_server_serves"]
    n = opts["workers"]
    skipped = "not run (--quick: a smoke test of the benchmark)"

    def rate(name: str) -> str:
        if name not in runs:
            return skipped
        return f"{runs[name]['steps_per_second']:,.0f} steps/s ({result[f'{name}_to_local']:.2f} of local)"

    through_pace = skipped if pace["through_server"] is None else f"{pace['through_server']:,.0f}"
    through_served = skipped if served["through_server"] is None else served["through_server"]
    lines = [
        f"robot {opts['robot']}, {n} workers",
        "",
        "| measure | value |",
        "|---|---|",
        f"| local backend, {n} workers | {runs['local']['steps_per_second']:,.0f} steps/s |",
        f"| Ray backend, {n} workers (shared memory on the launcher's machine) | {rate('ray')} |",
        f"| Ray backend, {n} workers, every update through the parameter server | {rate('ray_through_server')} |",
        f"| parameter server: CPU per exchange (process total; inside the method) | "
        f"{server['server_cpu_ms_per_exchange']:.3f} ms; {server['server_method_ms_per_exchange']:.3f} ms |",
        f"| parameter server: exchanges/s with {server['clients']} clients flooding it | "
        f"{server['exchanges_per_second']:,.0f} (server busy {server['server_cpu_share']:.0%} of a core) |",
        f"| parameter server: at most, one core | {server['max_exchanges_per_second']:,.0f} exchanges/s |",
        f"| one worker's updates/s: at the local pace; through the server (runs above / {n} / n_steps) | "
        f"{pace['local_pace']:,.0f}; {through_pace} |",
        f"| workers one parameter server serves: at the local pace; at the pace through it | "
        f"{served['local_pace']}; {through_served} |",
        f"| Ray backend, {n} workers behind a sync agent (--no-ray-shared-memory, sync every "
        f"{result['sync_ms_default']:g} ms) | {rate('ray_sync_agent')} |",
    ]
    if agent is not None:
        lines += [
            f"| that run: syncs; bytes per sync (sent); round trip; staleness (global updates between a pull and the "
            f"delta's application: mean, max) | {agent.get('syncs', 0):,}; {agent.get('bytes_per_sync', 0):,} B; "
            f"{agent.get('round_trip_ms', 0):.2f} ms; {agent.get('staleness_updates_mean', 0):g}, "
            f"{agent.get('staleness_updates_max', 0)} |",
            f"| that run: updates sent by the agent; applied by the server; lost | {agent.get('updates_sent', 0):,}; "
            f"{agent.get('updates_applied', 0):,}; {agent.get('lost_updates', 0)} |",
        ]
    lines += [
        f"| parameter server: CPU per sync ({SYNC_WRITERS} workers' statistics; process total; inside the method) | "
        f"{sync['server_cpu_ms_per_exchange']:.3f} ms; {sync['server_method_ms_per_exchange']:.3f} ms |",
        f"| parameter server: at most, one core | {sync['max_exchanges_per_second']:,.0f} syncs/s |",
        "| machines (any number of workers each) one server core serves, one sync each per | "
        + "; ".join(f"{ms} ms: {count:,}" for ms, count in result["machines_one_server_serves"].items()) + " |",
        "| peak memory (PSS, all processes, Ray's own included): " + "; ".join(RUN_WORDS[name] for name in runs)
        + " | " + "; ".join(f"{run['peak_pss_mb']:,.0f} MB" for run in runs.values()) + " |",
    ]
    return "\n".join(lines) + ("\n\n" + format_learning(learning) if learning else "")


def format_learning(learning: dict) -> str:
    """The learning comparison's table: per configuration, each seed's steps and time to the target, medians with
    the seeds' range, and the sync agents' staleness."""
    def each(runs, key, unit):
        return ", ".join("-" if r[key] is None else (f"{r[key] / 1000:.0f}k" if unit == "k" else f"{r[key]:.0f} s")
                         for r in runs)

    def middle(figure, unit):
        if figure["median"] is None:
            return "not reached"
        show = (lambda v: f"{v / 1000:.0f}k") if unit == "k" else (lambda v: f"{v:.0f} s")
        return f"{show(figure['median'])} ({show(figure['min'])}-{show(figure['max'])})"

    seeds = ", ".join(str(r["seed"]) for r in learning["configs"]["local"]["runs"])
    machines = f"{learning['machines']} {'machine' if learning['machines'] == 1 else 'machines'}"
    where = (f"{machines} of the Ray cluster at {learning['cluster']}" if learning.get("cluster")
             else f"{machines.replace('machine', 'simulated machine')} (Ray nodes on this host)")
    lines = [f"to {learning['target']:.0%} success (evaluator), seeds {seeds}; sync configurations on {where}", "",
             "| configuration | steps, each seed | median steps (range) | time, each seed | median time (range) | "
             "staleness mean, max (global updates) | median steps within the local spread (or fewer) |",
             "|---|---|---|---|---|---|---|"]
    for name, config in learning["configs"].items():
        runs = config["runs"]
        label = "local backend" if config["sync_ms"] is None else f"behind sync agents, every {config['sync_ms']:g} ms"
        stale = ("" if config["sync_ms"] is None else "; ".join(
            f"{r['staleness_updates_mean']:g}, {r['staleness_updates_max']}" for r in runs
            if r.get("staleness_updates_mean") is not None))
        within = "" if config["sync_ms"] is None else ("yes" if config["within_local_spread"] else "no")
        lines.append(f"| {label} | {each(runs, 'env_steps', 'k')} | {middle(config['env_steps'], 'k')} | "
                     f"{each(runs, 'seconds', 's')} | {middle(config['seconds'], 's')} | {stale} | {within} |")
    return "\n".join(lines)
