"""The benchmarks' tables in the README and the docs, made from the JSON files the benchmarks write, never by hand.

A table sits between two markers that name its JSON file (a path from the repository's top folder) and, after
it, an optional view:

    <!-- table: docs/bench-full.json -->
    (what `table_for` makes of the file)
    <!-- end table -->

The default view is the table the benchmark itself prints (`format_table` of `bench.report` or
`bench.ray_backend`, `format_profile` of `bench.profile`, chosen by what the file holds), so a figure in the docs is
the figure in the file. `summary` (bench.py's files only) is one row per robot, with the command that wrote the
file: the README's results.

`python scripts/bench_tables.py` rewrites every marked table of README.md and docs/ from its file; `--check`
only lists the tables that differ from their files (exit status 1). A benchmark that has written its JSON calls
`update_tables(path)`, which rewrites the tables that name that file.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict
from pathlib import Path

from arm_a3c.errors import UserError
from arm_a3c.files import write_atomically

ROOT = Path(__file__).resolve().parents[2]  # the checkout: README.md and docs/ beside arm_a3c/
VIEWS = ("summary",)  # besides the default, the benchmark's own table
MARKER = re.compile(r"^<!-- table: (?P<path>\S+?)(?: (?P<view>\w+))? -->\n(?P<body>.*?)^<!-- end table -->",
                    re.S | re.M)
OPENING = re.compile(r"^<!-- table:", re.M)  # a marker is a line of its own


def documents(root: Path = ROOT) -> list[Path]:
    """The files whose marked tables are kept: README.md and every page under docs/."""
    readme = root / "README.md"
    return ([readme] if readme.is_file() else []) + sorted((root / "docs").rglob("*.md"))


def read_result(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; name a JSON file a benchmark wrote (a path from the repository's "
                        f"top folder)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not a benchmark's JSON file ({err}); run the benchmark again") from None


def kind_of(result: dict) -> str:
    """Which benchmark wrote `result`: "bench" (bench.py), "ray" (bench_ray.py), "arms" (bench_arms.py) or
    "profile" (profile_training.py)."""
    if "robots" in result and "options" in result:
        return "bench"
    if "options" in result and ("throughput" in result or "learning" in result):
        return "ray"
    if "roles" in result and "worker_parts" in result:
        return "profile"
    if "arms" in result and "not_arms" in result:
        return "arms"
    raise UserError("not a file bench.py, bench_ray.py, bench_arms.py or profile_training.py wrote (no robots, "
                    "throughput, learning, arms or roles in it)")


def bench_command(result: dict, json_path: str) -> str:
    """The bench.py command that writes a file like `result` to `json_path`: the flags that differ from the
    defaults (the workers' default is the machine's cores, as on the machine that measured it)."""
    from arm_a3c.bench.options import QUICK, BenchOptions

    opts = result["options"]
    # (a setting the file's benchmark did not have yet counts as its quick value)
    quick = all(opts.get(key, value) == (list(value) if isinstance(value, tuple) else value)
                for key, value in QUICK.items())
    default = BenchOptions(workers=result.get("cpu_count") or opts["workers"])
    default = asdict(default) | (QUICK if quick else {})
    words = ["python", "scripts/bench.py"]
    if list(opts["robots"]) != list(default["robots"]):
        words += ["--robots", *opts["robots"]]
    if opts["workers"] != default["workers"]:
        words += ["--workers", str(opts["workers"])]
    if quick:
        words.append("--quick")
    else:
        if opts["budget_seconds"] != default["budget_seconds"]:
            words += ["--budget-minutes", f"{opts['budget_seconds'] / 60:g}"]
        if list(opts["seeds"]) != list(default["seeds"]):
            words += ["--seeds", *map(str, opts["seeds"])]
    if list(opts["peers"]) != list(default["peers"]):
        words += ["--peers", *(opts["peers"] or ["none"])]
    return shlex.join([*words, "--json", json_path])


def summary_table(result: dict, json_path: str) -> str:
    """One row per robot of a bench.py file: arm-a3c's time to the target and held-out success beside the tuned
    peers', its training speed and memory, and the command that measured it."""
    from arm_a3c.bench.options import ALL_TUNED_PEERS

    opts = result["options"]
    n, budget, target = opts["workers"], opts["budget_seconds"], f"{opts['target_success']:.0%}"
    command = bench_command(result, json_path)
    lines = [f"| robot | arm-a3c: median time to {target} | held-out success | tuned peers | "
             f"training, {n} workers | peak memory | command |", "|---|---|---|---|---|---|---|"]
    for robot, r in result["robots"].items():
        ours = r["medians"]["arm-a3c"]["time_to_target_s"]
        ours = f"{ours:.0f} s" if ours is not None else f"not within {budget:.0f} s"
        peers = [name for name in r["runs"] if name in ALL_TUNED_PEERS]
        fastest = r["fastest_tuned_peer"]
        if not peers:
            theirs = "not run"
        else:
            best = max(peers, key=lambda name: r["median_test_success_rate"][name])
            reached = fastest and r["medians"][fastest]["time_to_target_s"]
            theirs = (f"fastest: {fastest}, {reached:.0f} s" if reached else f"none reached {target} in {budget:.0f} s")
            theirs += f"; best held-out: {best}, {r['median_test_success_rate'][best]:.1%}"
        speed = f"{r['a3c_n_workers']['steps_per_second']:,.0f} steps/s ({r['policy_limit_ratio']:.2f} of the limit)"
        lines.append(f"| {robot} | {ours} | {r['median_test_success_rate']['arm-a3c']:.1%} | {theirs} | {speed} | "
                     f"{r['peak_memory_mb']['pss']:,.0f} MB PSS | `{command}` |")
    seeds = opts["seeds"]
    seeds = f"medians over seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else f"seed {seeds[0]}"
    sittings = result.get("sittings", [])[1:]
    resumed = f", resumed {', '.join(sittings)}" if sittings else ""
    lines += ["", f"Measured at commit {result.get('commit') or 'unknown'} (started {result.get('started', '?')}"
                  f"{resumed}) on {result['cpu_count']} cores; {seeds}; "
                  f"held-out success of each run's best policy on {opts['test_episodes']} test episodes."]
    return "\n".join(lines)


def table_for(json_path: str, view: str | None = None, root: Path = ROOT) -> str:
    """The markdown table of the JSON file at `json_path` (from `root`) in `view` (None: the benchmark's own)."""
    result = read_result(root / json_path)
    try:
        kind = kind_of(result)
    except UserError as err:
        raise UserError(f"{json_path}: {err}") from None
    if view == "summary":
        if kind != "bench":
            raise UserError(f"{json_path}: the summary view is made of bench.py's files, not {kind}'s")
        return summary_table(result, json_path)
    if view is not None:
        raise UserError(f"{json_path}: unknown view {view!r}; one of {', '.join(VIEWS)}, or none")
    if kind == "bench":
        from arm_a3c.bench.report import format_table
    elif kind == "ray":
        from arm_a3c.bench.ray_backend import format_table
    elif kind == "arms":
        from arm_a3c.bench.arms import format_arms_table as format_table
    else:
        from arm_a3c.bench.profile import format_profile as format_table
    return format_table(result)


def marked_body(table: str) -> str:
    """What goes between the markers: the table with a blank line either side (markdown needs them)."""
    return f"\n{table}\n\n"


def _check_markers(text: str, where: str) -> None:
    if len(OPENING.findall(text)) != len(MARKER.findall(text)):
        raise UserError(f"{where}: a '<!-- table: PATH -->' marker without its '<!-- end table -->' (or a marker "
                        f"spelt otherwise); close it")


def _marked_tables(document: Path, root: Path) -> tuple[str, str, list[tuple[re.Match, str]]]:
    """A document's name (from `root`), its text, and each of its markers with the table its file gives."""
    where, text = document.relative_to(root).as_posix(), document.read_text()
    _check_markers(text, where)
    tables = []
    for match in MARKER.finditer(text):
        try:
            tables.append((match, table_for(match["path"], match["view"], root)))
        except UserError as err:
            raise UserError(f"{where}: {err}") from None
    return where, text, tables


def stale_tables(root: Path = ROOT) -> list[str]:
    """Each marked table that differs from what its file gives, as "DOCUMENT: PATH [VIEW]"."""
    stale = []
    for document in documents(root):
        where, _, tables = _marked_tables(document, root)
        stale += [f"{where}: {match['path']}" + (f" {match['view']}" if match["view"] else "")
                  for match, table in tables if match["body"] != marked_body(table)]
    return stale


def update_tables(json_path: Path | None = None, root: Path = ROOT) -> list[Path]:
    """Rewrite the marked tables of README.md and docs/ (only those naming `json_path`, when given: a benchmark
    calls this after writing its file); return the documents that changed."""
    changed = []
    for document in documents(root):
        _, text, tables = _marked_tables(document, root)
        new, end = [], 0
        for match, table in tables:
            if json_path is None or (root / match["path"]).resolve() == Path(json_path).resolve():
                new += [text[end:match.start("body")], marked_body(table)]
                end = match.end("body")
        new = "".join(new) + text[end:]
        if new != text:
            write_atomically(document, new.encode())
            changed.append(document)
    return changed
