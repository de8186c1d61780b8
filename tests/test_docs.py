"""The documentation stays true: the site builds with `mkdocs build --strict` (no broken link, anchor or API
reference), every command the README and the guide's pages show parses with its script's own parser, every
benchmark table is what its JSON file gives, the layout listing names every module, and the README stays a
front door."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import runpy
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
README_MAX_LINES = 200
# The guide's pages show commands to type; the journal and the study keep the commands of their day as written.
HISTORY = {"journal.md", "home_pose_study.md"}
COMMAND_PAGES = [README, *sorted(p for p in (REPO / "docs").glob("*.md") if p.name not in HISTORY)]
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```", re.S | re.M)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    return [(m["lang"], m["body"]) for m in FENCE.finditer(text)]


def commands_in(text: str) -> list[str]:
    """The arm-a3c commands a page shows: lines of its shell code blocks, and its inline code, that run a script
    (`python scripts/X.py ...`) or the package (`arm-a3c ...`, `python -m arm_a3c ...`); `a && b` is two."""
    pieces = [line for lang, body in fenced_blocks(text) if lang in SHELL_FENCES for line in body.splitlines()]
    prose = FENCE.sub("", text)
    pieces += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
    found = []
    for piece in pieces:
        for segment in re.split(r"\s(?:&&|\|\||;)\s", piece.strip()):
            segment = segment.strip()
            if segment.startswith(("python scripts/", "arm-a3c ", "python -m arm_a3c ")):  # a name alone is no command
                found.append(shlex.join(shlex.split(segment, comments=True)))
    return found


class Parsed(BaseException):
    """Raised by the patched parser once a command's arguments are parsed: nothing after parsing runs."""


def console_main():
    """The `arm-a3c` command's function, as pyproject.toml names it."""
    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["arm-a3c"]
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def parse_only(command: str, monkeypatch, capsys) -> str | None:
    """Parse `command` with its script's own argparse parser, as the script would when typed in a shell, and stop
    there. Returns None when it parsed, else what the parser or the argument types said."""
    words = shlex.split(command, comments=True)
    original_parse_args = argparse.ArgumentParser.parse_args
    original_parse_known = argparse.ArgumentParser.parse_known_args
    inside = []

    def parse_args(self, args=None, namespace=None):
        inside.append(True)
        try:
            result = original_parse_args(self, args, namespace)
        finally:
            inside.pop()
        raise Parsed(result)

    def parse_known_args(self, args=None, namespace=None):
        result = original_parse_known(self, args, namespace)
        if not inside:  # a script that parses only what it knows (profile_training.py passes the rest on)
            raise Parsed(result)
        return result

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", parse_known_args)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the scripts put the checkout on it
    capsys.readouterr()
    try:
        if words[0] == "arm-a3c" or words[:3] == ["python", "-m", "arm_a3c"]:
            args = words[1:] if words[0] == "arm-a3c" else words[3:]
            code = console_main()(args)
        else:
            script = REPO / words[1]
            assert script.is_file(), f"{command}: {words[1]} does not exist"
            monkeypatch.setattr(sys, "argv", [str(script), *words[2:]])
            try:
                runpy.run_path(str(script), run_name="__main__")
                code = 0
            except SystemExit as exit_:
                code = exit_.code
    except Parsed:
        return None
    except SystemExit as exit_:  # argparse's own errors and --help
        code = exit_.code
    err = capsys.readouterr().err.strip()
    if code == 0 and not err:
        return None  # --help
    if err.startswith("error: ") and re.search(r"not found|no such|does not exist", err, re.I):
        return None  # an argument type found that a file of the user's (runs/NAME/...) is not there: it parsed
    return err or f"exit status {code} without parsing"


@pytest.mark.parametrize("page, command", [(page.relative_to(REPO).as_posix(), command) for page in COMMAND_PAGES
                                           for command in commands_in(page.read_text())])
def test_every_command_shown_parses_with_its_scripts_parser(page, command, monkeypatch, capsys):
    problem = parse_only(command, monkeypatch, capsys)
    assert problem is None, f"{page}: `{command}` does not parse: {problem}"


def test_the_readme_shows_the_commands_of_train_watch_evaluate_export_and_its_test():
    commands = commands_in(README.read_text())
    for script in ("train_arm.py", "view.py", "evaluate.py", "export.py"):
        assert any(c.startswith(f"python scripts/{script}") for c in commands), f"the README shows no {script}"
    assert "python -m pytest -q" in README.read_text()  # .ci/run runs the README's test command


def test_the_command_check_can_fail(monkeypatch, capsys):
    """A flag the script does not have, a bad value and a missing required option fail; --help and good commands
    pass; nothing runs either way."""
    assert parse_only("python scripts/train_arm.py --robot light_arm --workers 2", monkeypatch, capsys) is None
    assert parse_only("python scripts/evaluate.py --help", monkeypatch, capsys) is None
    assert parse_only("arm-a3c export --checkpoint a.pt --out b.onnx", monkeypatch, capsys) is None
    assert "--no-such-flag" in parse_only("python scripts/train_arm.py --no-such-flag", monkeypatch, capsys)
    assert "--episodes" in parse_only("python scripts/evaluate.py --checkpoint a.pt --episodes 0", monkeypatch, capsys)
    assert "--checkpoint" in parse_only("python scripts/evaluate.py --test", monkeypatch, capsys)
    assert "unknown command" in parse_only("arm-a3c nope", monkeypatch, capsys)


def test_the_readme_installs_from_files_that_exist():
    for lang, body in fenced_blocks(README.read_text()):
        for name in re.findall(r"pip install -r (\S+)", body):
            assert (REPO / name).is_file(), f"the README installs from {name}, which does not exist"


def test_the_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move the details into docs/"


def test_the_readme_links_and_pictures_point_at_files():
    for target in re.findall(r"\]\(([^)\s]+)\)", README.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path = target.split("#")[0]
        assert (REPO / path).exists(), f"the README links to {target}, which does not exist"


def test_the_site_builds_with_no_warning(tmp_path):
    """`mkdocs build --strict`: a broken link or anchor, a page missing from the navigation, or an API reference
    that names a module griffe cannot find or parse fails the build."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                             str(REPO / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                            cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for module in ("arm_a3c.envs.arm_env", "arm_a3c.tasks.base", "arm_a3c.sim.robot", "arm_a3c.a3c.config",
                   "arm_a3c.a3c.model", "arm_a3c.a3c.worker", "arm_a3c.export"):
        assert f'id="{module}"' in api, f"the API reference has no section for {module}"


# ---- the benchmark tables ------------------------------------------------------------------------------------

def test_every_marked_table_is_what_its_file_gives():
    from arm_a3c.bench.tables import stale_tables

    assert stale_tables(REPO) == [], "run python scripts/bench_tables.py: these tables differ from their files"
    assert "<!-- table: docs/bench-full.json summary -->" in README.read_text()  # the README's results


def test_bench_tables_check_reports_every_table_matching(capsys):
    from arm_a3c.cli import bench_tables_main as main

    assert main(["--check"]) == 0
    assert "every table matches its file" in capsys.readouterr().out


def test_a_table_that_differs_from_its_file_is_found_and_remade(tmp_path):
    from arm_a3c.bench.tables import stale_tables, table_for, update_tables

    (tmp_path / "docs").mkdir()
    for name in ("bench-full.json", "bench_ray.json"):
        (tmp_path / "docs" / name).write_text((REPO / "docs" / name).read_text())
    page = tmp_path / "docs" / "page.md"
    page.write_text("# A page\n\n<!-- table: docs/bench-full.json -->\n| a hand-typed figure |\n<!-- end table -->\n\n"
                    "<!-- table: docs/bench_ray.json -->\nstale too\n<!-- end table -->\n")
    assert stale_tables(tmp_path) == ["docs/page.md: docs/bench-full.json", "docs/page.md: docs/bench_ray.json"]
    assert update_tables(tmp_path / "docs" / "bench_ray.json", tmp_path) == [page]  # the file a benchmark wrote
    assert stale_tables(tmp_path) == ["docs/page.md: docs/bench-full.json"]
    assert update_tables(root=tmp_path) == [page]
    assert stale_tables(tmp_path) == [] and table_for("docs/bench-full.json", root=tmp_path) in page.read_text()
    assert "a hand-typed figure" not in page.read_text()


def test_a_marker_without_its_end_or_naming_a_missing_file_is_one_clear_error(tmp_path):
    from arm_a3c.bench.tables import stale_tables
    from arm_a3c.errors import UserError

    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("<!-- table: docs/bench-full.json -->\nno end\n")
    with pytest.raises(UserError, match="docs/page.md: .*without its '<!-- end table -->'"):
        stale_tables(tmp_path)
    page.write_text("<!-- table: docs/gone.json -->\n<!-- end table -->\n")
    with pytest.raises(UserError, match="docs/page.md: .*gone.json: no such file"):
        stale_tables(tmp_path)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "docs").glob("bench*.json")
                                        if '"robots": {' in p.read_text()))  # bench.py's files
def test_a_summary_names_the_command_that_writes_its_file(name, monkeypatch, capsys):
    """The command in a summary table parses back into the settings the file was measured with."""
    import json

    from arm_a3c.bench.tables import bench_command

    result = json.loads((REPO / "docs" / name).read_text())
    command = bench_command(result, f"docs/{name}")
    monkeypatch.setattr(os, "cpu_count", lambda: result["cpu_count"])  # the workers' default, as on that machine
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    from arm_a3c.cli import bench_main

    with pytest.raises(Parsed) as parsed:
        bench_main(shlex.split(command)[2:])
    args, opts = parsed.value.args[0], result["options"]
    assert args.robots == opts["robots"] and args.workers == opts["workers"] and args.seeds == opts["seeds"]
    assert args.budget_minutes * 60 == opts["budget_seconds"] and str(args.json) == f"docs/{name}"
    assert [p for p in args.peers if p != "none"] == opts["peers"]


# ---- the layout listing --------------------------------------------------------------------------------------

def listed_modules() -> set[str]:
    """The module files the architecture page's layout listing names (arm_a3c/...)."""
    text = (REPO / "docs" / "architecture.md").read_text()
    block = next(body for _, body in fenced_blocks(text) if body.startswith("arm_a3c/\n"))
    listed, folder = set(), None
    for line in block.splitlines()[1:]:
        match = re.match(r"^( {2}| {4})(\S+)", line)
        if not match:
            if line and not line.startswith(" "):
                break  # assets/, scripts/, ...: the library's listing has ended
            continue
        indent, name = match.groups()
        if indent == "  " and name.endswith("/"):
            folder = name
        elif name.endswith(".py"):
            listed.add(f"{folder}{name}" if indent == "    " else name)
    return listed


def test_the_layout_listing_names_every_module_of_the_library():
    actual = {p.relative_to(REPO / "arm_a3c").as_posix() for p in (REPO / "arm_a3c").rglob("*.py")}
    listed = listed_modules()
    assert not listed - actual, f"docs/architecture.md's layout names modules that do not exist: {listed - actual}"
    missing = {m for m in actual - listed if not m.endswith(("__init__.py", "__main__.py"))}
    assert not missing, f"add these to the layout listing in docs/architecture.md: {sorted(missing)}"
