"""A benchmark measured in sittings: each finished part is kept in the `--json` file's `.progress.json` twin, so an
interrupted benchmark goes on with `--resume` (same flags, same commit), and the commit the measurements belong to."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

from arm_a3c.bench.options import PACKAGE_ROOT, BenchOptions
from arm_a3c.errors import UserError
from arm_a3c.files import write_atomically


def source_commit() -> str | None:
    """The git commit the measured arm-a3c is at ("-dirty" if its files differ from it), or None outside a
    checkout: a benchmark's figures name the code they came from."""
    try:
        def git(*args):
            return subprocess.run(["git", "-C", str(PACKAGE_ROOT), *args], capture_output=True, text=True,
                                  check=True, timeout=30).stdout.strip()
        commit = git("rev-parse", "--short", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None

class BenchProgress:
    """A benchmark's finished parts, kept in a JSON file as each one ends, so an interrupted benchmark (hours long at
    the defaults) can go on where it stopped (`bench.py --resume`) instead of starting over.

    A part is one measurement that stands on its own: a robot's limits and throughput runs (measured back to back,
    never split), one time-to-success run of one algorithm and seed, the best policy's limit. A resumed benchmark
    takes its finished parts as they are and runs the rest: the same options and the same commit are required,
    so the results are those of one benchmark of one version of the code, only measured in more than one sitting.
    The file also says when each part ended (`sittings` lists when each sitting began)."""

    def __init__(self, path: Path | None, opts: BenchOptions, commit: str | None = None, started: str = ""):
        self.path, self.options = path, _jsonable(asdict(opts))
        self.state = {"options": self.options, "commit": commit, "started": started, "sittings": [started],
                      "parts": {}, "ended": {}}

    @classmethod
    def start(cls, path: Path, opts: BenchOptions, commit: str | None, resume: bool) -> "BenchProgress":
        """The progress of the benchmark `bench.py` runs: that of an interrupted one kept in `path` with `resume`,
        or a new one (a file left by an interrupted benchmark is never overwritten unasked: `UserError` saying how
        to go on or start over)."""
        if resume:
            return cls.resume(path, opts, commit)
        if path.exists():
            try:
                kept = json.loads(path.read_text())
                what = (f"{len(kept['parts'])} finished part(s) of a benchmark started {kept['started']} at commit "
                        f"{kept['commit'] or 'unknown'}")
            except (OSError, ValueError, KeyError, TypeError):
                what = "what looks like an interrupted benchmark's parts"
            raise UserError(f"{path} holds {what}: --resume goes on with them (same flags), or delete the file to "
                            f"start over")
        return cls(path, opts, commit, _now())

    @classmethod
    def resume(cls, path: Path, opts: BenchOptions, commit: str | None) -> "BenchProgress":
        """The progress kept in `path`, checked against this benchmark's options and commit (`UserError` if they
        differ: parts measured with other settings or other code would not be one benchmark)."""
        try:
            state = json.loads(path.read_text())
            state["parts"]  # a progress file has its parts, options and commit
            kept_options, kept_commit = state["options"], state["commit"]
        except FileNotFoundError:
            raise UserError(f"nothing to resume: {path} does not exist (it is written while a benchmark runs, and "
                            f"removed when it ends)") from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"cannot resume from {path}: not a benchmark's progress file ({err})") from None
        progress = cls(path, opts, kept_commit, state.get("started", ""))
        differ = [f"{k} {kept_options.get(k)!r} there, {v!r} now" for k, v in progress.options.items()
                  if kept_options.get(k) != v]
        if differ:
            raise UserError(f"cannot resume from {path}: it was started with other options ({'; '.join(differ)}); "
                            f"give the same flags, or delete it to start over")
        if kept_commit != commit:
            raise UserError(f"cannot resume from {path}: its parts were measured at commit {kept_commit or 'unknown'}, "
                            f"this arm-a3c is at {commit or 'an unknown commit'}; check that commit out, or delete the "
                            f"file to start over")
        if commit is not None and commit.endswith("-dirty"):
            raise UserError(f"cannot resume from {path}: this checkout has uncommitted changes, so the code its parts "
                            f"were measured with is not known to be this one; commit or stash them, or delete the "
                            f"file to start over")
        progress.state = {**state, "sittings": [*state.get("sittings", []), _now()]}
        progress.save()
        return progress

    @property
    def started(self) -> str:
        return self.state["started"]

    @property
    def commit(self) -> str | None:
        return self.state["commit"]

    def finished(self) -> list[str]:
        return list(self.state["parts"])

    def part(self, key: str, measure, log=print):
        """The result of part `key`: kept from an earlier sitting, or measured now (`measure()`) and kept."""
        if key in self.state["parts"]:
            log(f"  {key}: kept from an earlier sitting (ended {self.state['ended'].get(key, '?')})")
            return self.state["parts"][key]
        result = _jsonable(measure())
        self.state["parts"][key] = result
        self.state["ended"][key] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        self.save()
        return result

    def save(self) -> None:
        if self.path is None:
            return
        try:  # whole or not at all, if the benchmark is killed while writing
            write_atomically(self.path, (json.dumps(self.state, indent=1) + "\n").encode())
        except OSError as err:
            raise UserError(f"cannot write {self.path} ({err.strerror}); pass --json PATH") from None

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)

def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M %Z")

def _jsonable(value):
    """`value` as JSON gives it back (tuples become lists): a part kept in the file and a part measured now are the
    same thing."""
    return json.loads(json.dumps(value))
