"""Every arm, one table: reach trained with the defaults on every fixed-base arm URDF arm-a3c finds in
pybullet_data, in the `example-robot-data` wheel (an optional benchmark dependency: `pip install
example-robot-data`) and in the folders given, each capped at a few minutes; one row per arm, the one-line reason
for each arm arm-a3c refuses, and a gallery of the arms at their homes. No per-arm setting exists here: the claim
"any URDF, no tuning", measured.

Which URDF files are arms is read from their joints alone, before anything loads them (`arm_structure`): a single
kinematic tree, fixed to the world (no floating or planar joint), with at least `MIN_ARM_JOINTS` movable joints on
the chain to the end effector that arm-a3c would choose (`sim.robot.end_effector_from_tree`); movable joints off
that chain are allowed only as a gripper's fingers: at most `MAX_FINGER_JOINTS` movable joints from the end
effector (or, for fingers of unequal length, branching off after at least `MIN_ARM_JOINTS` of the chain's joints
with at most `MAX_FINGER_JOINTS` of them below), not elsewhere (legs, wheels, propellers, a second arm, a head:
arm-a3c's end effector of a two-armed torso would be its chest). Everything else (objects, scenes, legged
and flying robots, humanoids) is counted with its reason, not trained.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from arm_a3c.bench.options import PACKAGE_ROOT
from arm_a3c.errors import UserError
from arm_a3c.files import write_atomically

MIN_ARM_JOINTS = 2  # fewer moving joints on the chain to the end effector: a pendulum, a door, a wheel
MAX_FINGER_JOINTS = 3  # a finger has at most this many joints; a longer branch is a second arm, a head or a leg
MOVABLE = ("revolute", "continuous", "prismatic")
GOAL_MINUTES = 5.0  # issue 35's goal: held-out >= the target within this many minutes
ERD_DISTRIBUTION = "example-robot-data"
ERD_ROBOTS = "cmeel.prefix/share/example-robot-data/robots"  # where the wheel installs its robots


@dataclass
class ArmsOptions:
    minutes: float = 10.0  # each arm's training budget (--max-minutes)
    seed: int = 0
    workers: int = 0  # 0: train_arm.py's default (one per core)
    quick: bool = False  # a smoke test: --max-minutes is `minutes`, the held-out test 10 episodes
    sources: tuple[str, ...] = ()  # the folders searched, in order: by path, or by name for the default ones
    only: tuple[str, ...] = ()  # train only the arms whose key holds one of these (none: every arm)


@dataclass
class Candidate:
    source: str  # the folder's label: pybullet_data, example-robot-data or the folder as given
    name: str  # the file's path inside its folder
    path: str
    joints: int | None = None  # movable joints on the chain to the end effector; None: not an arm
    not_arm: str = ""  # why it is not an arm

    @property
    def key(self) -> str:
        return f"{self.source}/{self.name}"


@dataclass
class ArmResult:
    key: str
    joints: int  # movable joints on the chain to the end effector
    controlled: int | None = None  # those arm-a3c controls (the others do not move the end effector's point)
    command: list[str] = field(default_factory=list)
    refused: str = ""  # train_arm.py's one line, when it refused the arm (or how it ended)
    stopped_minutes: float | None = None  # when the run stopped on a confirmed target; None: it did not
    first_target_minutes: float | None = None  # the evaluator's first evaluation at the target
    held_out: float | None = None
    self_contact: float | None = None
    floor_contact: float | None = None
    max_speed_fraction: float | None = None
    steps_per_second: float | None = None
    env_steps: int | None = None
    commit: str | None = None  # arm-a3c's commit when this arm was trained (a benchmark resumed goes on at another)


# ---- which files are arms -------------------------------------------------------------------------------------

def arm_structure(path: Path) -> tuple[int | None, str]:
    """(movable joints on the chain to the end effector, "") for a fixed-base arm; (None, why not) otherwise.
    Reads the URDF's joints only: nothing is loaded."""
    from arm_a3c.sim.robot import end_effector_from_tree

    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError) as err:
        return None, f"not readable XML ({err})"
    if root.tag != "robot":
        return None, f"not a URDF robot (its root element is <{root.tag}>)"
    links = [link.get("name") for link in root.findall("link")]
    joints = []
    for joint in root.findall("joint"):
        parent, child = joint.find("parent"), joint.find("child")
        if parent is None or child is None:
            return None, f"joint {joint.get('name')} lacks a parent or a child"
        joints.append((joint.get("name"), joint.get("type"), parent.get("link"), child.get("link")))
    if any(kind in ("floating", "planar") for _, kind, _, _ in joints):
        return None, "a floating or planar joint: not fixed to the world"
    if not any(kind in MOVABLE for _, kind, _, _ in joints):
        return None, "no joint moves a link"
    parent_of = {child: (parent, name, kind) for name, kind, parent, child in joints}
    roots = [link for link in links if link not in parent_of]
    if len(roots) != 1 or any(p not in links for p, _, _ in parent_of.values()):
        return None, "its links are not one tree"
    order, children = [], {}  # the links below the root, each after its parent (PyBullet's link order)
    for child, (parent, _, _) in parent_of.items():
        children.setdefault(parent, []).append(child)
    frontier = [roots[0]]
    while frontier:
        link = frontier.pop(0)
        for child in children.get(link, []):
            order.append(child)
            frontier.append(child)
    if len(order) != len(parent_of):
        return None, "its links are not one tree"
    index = {link: i for i, link in enumerate(order)}
    parents = [index.get(parent_of[link][0], -1) for link in order]
    ee = end_effector_from_tree(parents)
    chain, link = [], ee
    while link >= 0:  # the chain from the end effector up to the root: link i hangs from joint i
        chain.append(link)
        link = parents[link]
    on_chain = set(chain)
    chain_movable = [i for i in reversed(chain) if parent_of[order[i]][2] in MOVABLE]  # root to tip
    below_ee = set()
    for i, p in enumerate(parents):  # parents come first: one pass finds every descendant of the end effector
        if i == ee or p in below_ee or p == ee:
            below_ee.add(i)
    off = []
    for i, link in enumerate(order):
        if parent_of[link][2] not in MOVABLE or i in on_chain:
            continue
        if i in below_ee:  # a finger, unless a long chain hangs there (a torso's arms below the chest)
            fingers, j = 0, i
            while j != ee:
                fingers += parent_of[order[j]][2] in MOVABLE
                j = parents[j]
            if fingers > MAX_FINGER_JOINTS:
                off.append(parent_of[link][1])
            continue
        branch = parents[i]
        while branch >= 0 and branch not in on_chain:
            branch = parents[branch]
        above = sum(1 for j in chain_movable if _is_ancestor_or_self(j, branch, parents))
        if above < MIN_ARM_JOINTS or len(chain_movable) - above > MAX_FINGER_JOINTS:
            off.append(parent_of[link][1])
    if off:
        shown = ", ".join(off[:3]) + (f" and {len(off) - 3} more" if len(off) > 3 else "")
        return None, (f"movable joints off the chain to its end effector, not a gripper's fingers ({shown}): legs, "
                      f"wheels, propellers or a second arm, not one arm")
    if len(chain_movable) < MIN_ARM_JOINTS:
        return None, f"{len(chain_movable)} movable joint on the chain to its end effector: not an arm"
    return len(chain_movable), ""


def _is_ancestor_or_self(a: int, b: int, parents: list[int]) -> bool:
    while b >= 0:
        if b == a:
            return True
        b = parents[b]
    return False


def default_sources() -> list[tuple[str, Path]]:
    """(label, folder) of the robots searched by default: pybullet_data's, and the `example-robot-data` wheel's if it
    is installed."""
    import pybullet_data

    sources = [("pybullet_data", Path(pybullet_data.getDataPath()))]
    folder = example_robot_data()
    if folder is not None:
        sources.append((ERD_DISTRIBUTION, folder))
    return sources


def example_robot_data() -> Path | None:
    """The robots folder of the installed `example-robot-data` wheel, or None."""
    from importlib import metadata

    try:
        folder = Path(metadata.distribution(ERD_DISTRIBUTION).locate_file(ERD_ROBOTS))
    except metadata.PackageNotFoundError:
        return None
    return folder if folder.is_dir() else None


def candidates(sources: list[tuple[str, Path]]) -> list[Candidate]:
    """Every .urdf file under each folder (sorted), each classified by `arm_structure`."""
    found = []
    for label, folder in sources:
        for path in sorted(folder.rglob("*.urdf")):
            joints, why = arm_structure(path)
            found.append(Candidate(label, path.relative_to(folder).as_posix(), str(path), joints, why))
    return found


# ---- training each arm ----------------------------------------------------------------------------------------

def train_command(candidate: Candidate, opts: ArmsOptions, run_dir: Path) -> list[str]:
    """train_arm.py with the defaults: only the robot, the budget, the seed and where the run goes."""
    command = [sys.executable, str(PACKAGE_ROOT / "scripts" / "train_arm.py"), "--urdf", candidate.path,
               "--max-minutes", f"{opts.minutes:g}", "--seed", str(opts.seed), "--run-dir", str(run_dir)]
    if opts.workers:
        command += ["--workers", str(opts.workers)]
    if opts.quick:
        command += ["--test-episodes", "10", "--eval-episodes", "10", "--confirm-episodes", "10"]
    return command


def train_arm(candidate: Candidate, opts: ArmsOptions, work_dir: Path, log=print) -> ArmResult:
    """One arm's run, and what its summary says (or the one line with which train_arm.py refused it)."""
    run_dir = work_dir / candidate.key.replace("/", "__").removesuffix(".urdf")
    command = train_command(candidate, opts, run_dir)
    if (run_dir / "run.json").is_file():  # an arm an interrupted benchmark had begun: start it over (--force
        command.append("--force")          # deletes only the files that run wrote)
    result = ArmResult(candidate.key, candidate.joints, command=[Path(command[1]).name, *command[2:]])
    budget = opts.minutes * 60 + 900  # the budget, then the held-out test and the files
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=budget, cwd=PACKAGE_ROOT,
                              env=_environment())
    except subprocess.TimeoutExpired:
        result.refused = f"did not end within {budget / 60:.0f} minutes"
        return result
    summary_path = run_dir / "summary.json"
    if done.returncode != 0 or not summary_path.is_file():
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit status {done.returncode}"
        if done.returncode < 0:
            why = f"train_arm.py was killed by signal {-done.returncode} (a crash in PyBullet?)"
        result.refused = _relative(why.removeprefix("error: "), candidate)
        return result
    summary = json.loads(summary_path.read_text())
    rule = summary.get("stop_rule") or {}
    if rule.get("confirmed"):
        result.stopped_minutes = round(summary["wall_seconds"] / 60, 2)
    target = rule.get("target_success", 0.95)
    first = next((e for e in summary.get("evaluations", []) if e["success_rate"] >= target), None)
    result.first_target_minutes = round(first["wall_seconds"] / 60, 2) if first else None
    result.held_out = summary.get("test_success_rate")
    result.self_contact = summary.get("test_self_contact_rate")
    result.floor_contact = summary.get("test_floor_contact_rate")
    result.max_speed_fraction = summary.get("test_max_speed_fraction")
    result.steps_per_second = summary.get("steps_per_second")
    result.env_steps = summary.get("env_steps")
    home = json.loads((run_dir / "config.json").read_text()).get("home")
    if home is not None:
        result.controlled = len(home)
    return result


def _relative(line: str, candidate: Candidate) -> str:
    """`line` with the candidate's source folder named by the source's label, not by the machine's path."""
    folder = candidate.path[:-len(candidate.name)].rstrip("/")
    return line.replace(folder, candidate.source)


def _environment() -> dict:
    import os

    return {**os.environ, "PYTHONPATH": ""}


def run_arms_benchmark(opts: ArmsOptions, sources: list[tuple[str, Path]], work_dir: Path, progress: dict,
                       save, log=print, train: bool = True) -> dict:
    """Classify every candidate, train every arm not in `progress["arms"]` yet (saved after each with `save()`),
    and return the result: options, arms, the files that are not arms (with why) and the goal's figures. Without
    `train`, the result of the arms measured so far (the others listed as `not_measured`)."""
    found = candidates(sources)
    # the arms with the most joints first (the manipulators: two-joint toys and pendulums come last in a
    # benchmark cut short), in the sources' order within a joint count
    arms = sorted((c for c in found if c.joints is not None), key=lambda c: -c.joints)
    log(f"{len(found)} URDF files in {', '.join(label for label, _ in sources)}: {len(arms)} arms")
    if opts.only:
        arms = [c for c in arms if any(text in c.key for text in opts.only)]
        log(f"training the {len(arms)} whose name holds {' or '.join(opts.only)}")
    done = progress.setdefault("arms", {})
    from arm_a3c.bench.progress import source_commit

    commit = source_commit() if train else None  # this sitting's: a resumed benchmark may go on at another commit
    for number, candidate in enumerate(arms, 1):
        if candidate.key in done or not train:
            continue
        log(f"[{number}/{len(arms)}] {candidate.key}: {candidate.joints} joints, training up to "
            f"{opts.minutes:g} min")
        started = time.monotonic()
        result = train_arm(candidate, opts, work_dir, log)
        result.commit = commit
        done[candidate.key] = asdict(result)
        save()
        log(f"    {describe_result(result)} ({(time.monotonic() - started) / 60:.1f} min)")
    results = [ArmResult(**{**done[c.key], "refused": _relative(done[c.key]["refused"], c)}) for c in arms
               if c.key in done]
    not_arms = {}
    for c in found:
        if c.joints is None:
            not_arms.setdefault(_reason_kind(c.not_arm), []).append(c.key)
    return {"options": asdict(opts), "arms": [asdict(r) for r in results], "not_arms": not_arms,
            "not_measured": [c.key for c in arms if c.key not in done], "goal": goal_figures(results)}


def _reason_kind(why: str) -> str:
    """The reasons a file is not an arm, grouped (the joint names and counts left out)."""
    return why.split(" (")[0]


def goal_figures(results: list[ArmResult], target: float = 0.95) -> dict:
    loaded = [r for r in results if not r.refused]
    fast = [r for r in loaded if r.stopped_minutes is not None and r.stopped_minutes <= GOAL_MINUTES
            and (r.held_out or 0) >= target]
    return {"arms": len(results), "loaded": len(loaded), "refused": len(results) - len(loaded),
            "held_out_at_target_within_5_min": len(fast),
            "share": round(len(fast) / len(loaded), 3) if loaded else None}


def describe_result(r: ArmResult) -> str:
    if r.refused:
        return f"refused: {r.refused}"
    stop = f"stopped at {r.stopped_minutes:.1f} min" if r.stopped_minutes is not None else "did not stop"
    held = f"{100 * r.held_out:.1f}% held-out" if r.held_out is not None else "no held-out test"
    return f"{stop}, {held}"


# ---- the table and the gallery --------------------------------------------------------------------------------

def _percent(value) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def format_arms_table(result: dict) -> str:
    """The table the benchmark prints and the docs show: one row per arm, then the refused ones' reasons, the files
    that are not arms (counted by reason), and the goal."""
    opts = result["options"]
    started = result.get("commit") or "unknown"
    commits = sorted({r.get("commit") or started for r in result["arms"]})
    commit = (f"started at arm-a3c commit {started}, arms trained at {', '.join(commits)} (each arm's in the JSON)"
              if len(commits) > 1 else f"arm-a3c commit {started}")
    lines = [f"{commit}; reach, defaults, seed {opts['seed']}, at most "
             f"{opts['minutes']:g} min per arm"
             f"{' (--quick: a smoke test, not a measurement)' if opts.get('quick') else ''}; held-out: best.pt on "
             f"the run's own held-out episodes"
             f"{'; only the arms whose name holds ' + ' or '.join(opts['only']) if opts.get('only') else ''}",
             "",
             "| arm | joints: controlled of movable | stopped (confirmed) | evaluator first at target "
             "| held-out success | self-contact | floor contact | fastest joint / URDF limit | steps/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    refused = []
    for r in result["arms"]:
        if r["refused"]:
            refused.append(r)
            continue
        stopped = f"{r['stopped_minutes']:.2f} min" if r["stopped_minutes"] is not None else "not stopped"
        first = f"{r['first_target_minutes']:.2f} min" if r["first_target_minutes"] is not None else "never"
        speed = "" if r["max_speed_fraction"] is None else f"{r['max_speed_fraction']:.2f}"
        rate = "" if r["steps_per_second"] is None else f"{r['steps_per_second']:,.0f}"
        lines.append(f"| {r['key']} | {r['controlled']} of {r['joints']} | {stopped} | {first} | "
                     f"{_percent(r['held_out'])} | {_percent(r['self_contact'])} | {_percent(r['floor_contact'])} | "
                     f"{speed} | {rate} |")
    if result.get("not_measured"):
        lines += ["", f"Not measured yet (the benchmark goes on with --resume): {', '.join(result['not_measured'])}"]
    if refused:
        lines += ["", "Arms arm-a3c refused:", ""]
        lines += [f"- {r['key']}: {r['refused']}" for r in refused]
    if result.get("not_arms"):
        lines += ["", "Files that are not arms (not trained):", ""]
        by_count = sorted(result["not_arms"].items(), key=lambda kv: -len(kv[1]))
        lines += [f"- {why}: {len(keys)}" for why, keys in by_count]
    goal = result["goal"]
    share = "n/a" if goal["share"] is None else f"{100 * goal['share']:.0f}%"
    lines += ["", f"{goal['held_out_at_target_within_5_min']} of the {goal['loaded']} arms arm-a3c loads held out "
                  f"at or above 95% with a run that stopped within {GOAL_MINUTES:g} minutes ({share}; goal >= 90%); "
                  f"{goal['refused']} refused."]
    return "\n".join(lines)


def save_arms_gallery(result: dict, sources: list[tuple[str, Path]], path: Path) -> Path | None:
    """The arms that loaded, at their homes, each labelled with its held-out success (`describe.save_gallery`)."""
    from arm_a3c.envs.describe import save_gallery

    folders = dict(sources)
    robots, labels = [], {}
    for r in result["arms"]:
        if r["refused"]:
            continue
        source, _, name = r["key"].partition("/")
        if source not in folders:
            continue
        file = str(folders[source] / name)
        robots.append(file)
        labels[file] = (f"{r['key']}: {r['controlled']} of {r['joints']} joints, held-out "
                        f"{_percent(r['held_out']) or 'n/a'}")
    return save_gallery(robots, path, labels) if robots else None


def check_sources(folders: list[Path]) -> list[tuple[str, Path]]:
    for folder in folders:
        if not folder.is_dir():
            raise UserError(f"--from {folder}: no such folder; give a folder holding .urdf files (searched "
                            f"recursively)")
    labels = [folder.resolve().name or str(folder) for folder in folders]
    return [(label if labels.count(label) == 1 else str(folder), folder.resolve())
            for label, folder in zip(labels, folders)]


def save_progress(path: Path, progress: dict) -> None:
    write_atomically(path, (json.dumps(progress, indent=2) + "\n").encode())
