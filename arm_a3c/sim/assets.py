"""Find robots: by name in assets/ or by URDF path, with their per-robot settings.

A robot name is found in assets/ as `NAME.urdf`, as a folder `NAME/` holding one URDF, or as a descriptor
`NAME.toml` whose `urdf` key points at a URDF elsewhere (how `panda` and `xarm6` come from the models that ship
inside pybullet, without copying them). A name is plain (no path separator, no '..'), so it never leads out of
those folders; a file is given by its path, ending in .urdf (or .toml for a descriptor). Next to a URDF, a sidecar
with the same stem and `.toml` (for example `assets/kuka_iiwa/model.toml`) holds the same settings:

    urdf = "pybullet_data:franka_panda/panda.urdf"  # descriptors only: a path relative to this file, an
                                                    # absolute path, or pybullet_data:PATH inside pybullet's data
    ee_link = "panda_hand"           # end-effector link, overrides the deepest-link heuristic
    ee_offset_m = [0, 0, 0.1034]     # the tool point: fixed in ee_link's frame (m); default its origin
    hold_joints = ["finger_joint"]   # movable joints to hold still instead of controlling
    home = [0, -0.785, 0, -2.356, 0, 1.571]  # start pose, one value per controlled joint (rad or m), in order;
                                     # or "auto" (the default rule in `robot.py`) or "zero"
    self_collision_disable = [["link3", "link5"]]  # link pairs whose touching is no self-contact (they may
                                     # overlap: a cable guide, say), beside those found by sampling (`sim.contacts`)
    self_collision_enable = [["link2", "link7"]]   # link pairs checked although sampling left them out
    source = "..."                   # where the model comes from, and its licence (shown by inspect_robot.py)
    licence = "Apache-2.0"

Command-line flags (`--ee-link`, `--ee-offset-m`, `--home`) override the file.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from arm_a3c.errors import UserError

# The shipped robots: assets/ beside the package in a checkout (or an editable install), else the copy that
# `pip install .` puts inside the package (pyproject.toml maps assets/ to arm_a3c/_assets).
_CHECKOUT_ASSETS = Path(__file__).resolve().parents[2] / "assets"
ASSETS_DIR = _CHECKOUT_ASSETS if _CHECKOUT_ASSETS.is_dir() else Path(__file__).resolve().parents[1] / "_assets"
ASSETS_VARIABLE = "ARM_A3C_ASSETS"  # more robot folders, separated like PATH; searched before the shipped ones
DEFAULT_ROBOT = "kuka_iiwa"
HOME_WORDS = ("auto", "zero")  # `home` as a word: the default rule, or every joint at zero (clipped to limits)
PYBULLET_DATA = "pybullet_data:"
# A tool point farther than this from its link's origin (m) is a slip (millimetres given as metres, say), and a
# far larger one (1e300) overflows the kinematics.
MAX_EE_OFFSET_M = 10.0


@dataclass(frozen=True)
class RobotSpec:
    """Which URDF to load and the per-robot settings that go with it."""

    name: str
    urdf_path: Path
    ee_link: str | None = None  # None: choose by the heuristic in `robot.py`
    ee_link_source: str = "heuristic"  # heuristic | sidecar | override
    hold_joints: tuple[str, ...] = field(default_factory=tuple)
    home: tuple[float, ...] | str = "auto"  # numbers, one per controlled joint, or a HOME_WORDS word
    home_source: str = "default"  # where `home` came from: "default", "--home", or the settings file's path
    ee_offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0)  # tool point in ee_link's frame
    ee_offset_source: str = "default"  # the same for `ee_offset_m`
    settings_file: Path | None = None  # the descriptor or sidecar the settings came from
    source: str = ""  # where the model comes from (descriptor/sidecar `source`)
    licence: str = ""
    # link pairs (by name) the settings file leaves out of, or adds to, the self-contacts `sim.contacts` finds
    self_collision_disable: tuple[tuple[str, str], ...] = ()
    self_collision_enable: tuple[tuple[str, str], ...] = ()


ROBOT_FILE_SUFFIXES = (".urdf", ".toml")  # a robot given by one of these is a file; anything else is a name


def is_robot_file(robot: str) -> bool:
    """Whether `robot` (a --robot or --urdf value, or a saved config's) names a file rather than a robot in the
    assets folders: by its suffix alone, so a name never leads out of those folders."""
    return str(robot).endswith(ROBOT_FILE_SUFFIXES)


def _descriptor_urdf(descriptor: Path, value: str) -> Path:
    """The URDF a descriptor's `urdf` key names."""
    if value.startswith(PYBULLET_DATA):
        import pybullet_data

        path = Path(pybullet_data.getDataPath()) / value[len(PYBULLET_DATA):]
    else:
        path = Path(value).expanduser()
        path = path if path.is_absolute() else descriptor.parent / path
    if not path.is_file():
        raise UserError(f"{descriptor}: urdf = '{value}' names no file ({path}); give a path relative to "
                        f"{descriptor.parent}, an absolute path or {PYBULLET_DATA}PATH")
    return path.resolve()


def _is_descriptor(path: Path) -> bool:
    return path.suffix == ".toml" and not path.with_suffix(".urdf").is_file()


def _files(folder: Path, pattern: str) -> list[Path]:
    """The files (not folders) in `folder` that match `pattern`, sorted."""
    return sorted(p for p in folder.glob(pattern) if p.is_file())


def search_path() -> list[Path]:
    """Where robot names are looked up, first match wins: the folders in $ARM_A3C_ASSETS (set by `--assets DIR`
    too, so that the processes a command starts see them), then the shipped assets."""
    extra = [Path(p).expanduser() for p in os.environ.get(ASSETS_VARIABLE, "").split(os.pathsep) if p]
    return [*extra, ASSETS_DIR]


def add_assets_dir(folder: Path) -> None:
    """`--assets DIR`: search DIR first, in this process and the ones it starts."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise UserError(f"--assets {folder}: no such folder; give a folder of robots (NAME.urdf, NAME/ or NAME.toml)")
    os.environ[ASSETS_VARIABLE] = os.pathsep.join([str(folder), *filter(None, [os.environ.get(ASSETS_VARIABLE)])])


def available_robots(assets_dir: Path | None = None) -> dict[str, Path]:
    """Robot name -> URDF path or descriptor (.toml) for every robot in `assets_dir`, or in the search path (the
    first folder that has a name wins); folders with several URDFs are skipped."""
    if assets_dir is None:
        found: dict[str, Path] = {}
        for folder in search_path():
            for name, path in available_robots(folder).items():
                found.setdefault(name, path)
        return dict(sorted(found.items()))
    if not assets_dir.is_dir():
        return {}
    robots = {p.stem: p for p in _files(assets_dir, "*.urdf")}
    for descriptor in (p for p in _files(assets_dir, "*.toml") if _is_descriptor(p)):
        robots.setdefault(descriptor.stem, descriptor)
    for folder in sorted(p for p in assets_dir.iterdir() if p.is_dir()):
        urdfs = _files(folder, "*.urdf")
        if len(urdfs) == 1:
            robots.setdefault(folder.name, urdfs[0])
    return dict(sorted(robots.items()))


def _plain_name(name: str) -> str:
    """`name` if it can only name a robot inside an assets folder: not empty or '.', no '..', no path separator."""
    if not name:
        raise UserError("the robot name is empty; name a robot in the assets folders (inspect_robot.py lists them) "
                        "or give a file with --urdf PATH.urdf")
    if name == "." or ".." in name or "/" in name or "\\" in name:
        raise UserError(f"robot '{name}' is not a plain name (no '/', '\\' or '..') nor a .urdf file; name a robot "
                        f"in the assets folders (inspect_robot.py lists them) or give a file with --urdf PATH.urdf")
    return name


def _file_for_name(name: str, assets_dir: Path | None) -> Path:
    """The URDF or descriptor that a robot name selects in `assets_dir`, or in the first folder of the search
    path that has it."""
    if assets_dir is None:
        folders = search_path()
        for folder in folders:
            if (folder / f"{name}.urdf").is_file() or (folder / f"{name}.toml").is_file() or (folder / name).is_dir():
                return _file_for_name(name, folder)
        known = ", ".join(available_robots()) or "none"
        raise UserError(f"unknown robot '{name}'; known: {known} (in {', '.join(str(f) for f in folders)}; add a "
                        f"folder with --assets DIR or ${ASSETS_VARIABLE}, or pass --urdf PATH to a .urdf file)")
    folder_urdfs = _files(assets_dir / name, "*.urdf") if (assets_dir / name).is_dir() else []
    if (assets_dir / f"{name}.urdf").is_file():
        return assets_dir / f"{name}.urdf"
    if (assets_dir / f"{name}.toml").is_file():
        return assets_dir / f"{name}.toml"
    if len(folder_urdfs) == 1:
        return folder_urdfs[0]
    if len(folder_urdfs) > 1:
        names = ", ".join(p.name for p in folder_urdfs)
        raise UserError(
            f"robot '{name}': {assets_dir / name} holds several URDFs ({names}); "
            f"keep one there or pass --urdf {assets_dir / name / folder_urdfs[0].name}"
        )
    known = ", ".join(available_robots(assets_dir)) or "none"
    raise UserError(
        f"unknown robot '{name}'; available in {assets_dir}: {known} (or pass --urdf PATH to a .urdf file)"
    )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_home(value: object, where: str) -> tuple[float, ...] | str:
    """A `home` setting as numbers or a word; `where` names the file and key (or the flag) in errors. Length
    and limits are checked by the robot, which knows its controlled joints."""
    if isinstance(value, str):
        if value not in HOME_WORDS:
            raise UserError(f"{where} is '{value}'; give one number per controlled joint (rad or m), or "
                            f"{' or '.join(repr(w) for w in HOME_WORDS)}")
        return value
    if not isinstance(value, (list, tuple)) or not value or not all(_is_number(v) for v in value):
        raise UserError(f"{where} must be a list of numbers, one per controlled joint (rad or m), or "
                        f"{' or '.join(repr(w) for w in HOME_WORDS)}; got {value!r}")
    return tuple(float(v) for v in value)


def check_ee_offset(value: object, where: str) -> tuple[float, float, float]:
    """An `ee_offset_m` setting: three finite numbers (m) in the end-effector link's frame, at most
    MAX_EE_OFFSET_M from its origin."""
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(_is_number(v) for v in value):
        raise UserError(f"{where} must be three numbers, x y z in metres in the end-effector link's frame "
                        f"(for example [0, 0, 0.1]); got {value!r}")
    if math.hypot(*value) > MAX_EE_OFFSET_M:
        raise UserError(f"{where} puts the tool point {math.hypot(*value):g} m from the end-effector link; give one "
                        f"within {MAX_EE_OFFSET_M:g} m, in metres (for example [0, 0, 0.1])")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def _check_text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"{where} must be a non-empty name or path in quotes; got {value!r}")
    return value


def _check_note(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{where} must be text in quotes; got {value!r}")
    return value


def _check_joint_names(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UserError(f"{where} must be a list of joint names in quotes, for example [\"finger_joint\"]; "
                        f"got {value!r}")
    return tuple(value)


def _check_link_pairs(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not all(isinstance(pair, list) and len(pair) == 2 and all(
            isinstance(name, str) and name for name in pair) for pair in value):
        raise UserError(f"{where} must be a list of pairs of link names in quotes, for example "
                        f"[[\"link3\", \"link5\"]]; got {value!r:.80}")
    return tuple((a, b) for a, b in value)


# Each setting of a descriptor or sidecar and its check, given the value and where it is ("FILE: KEY").
SIDECAR_KEYS = {"urdf": _check_text, "ee_link": _check_text, "ee_offset_m": check_ee_offset,
                "hold_joints": _check_joint_names, "home": check_home, "self_collision_disable": _check_link_pairs,
                "self_collision_enable": _check_link_pairs, "source": _check_note, "licence": _check_note}


def _read_settings(path: Path, descriptor: bool) -> tuple[dict, Path | None]:
    """The settings of a descriptor (`path` itself) or of a URDF's sidecar (`path` with .toml), checked, and
    the file they came from (None: no sidecar)."""
    settings_file = path if descriptor else path.with_suffix(".toml")
    if not settings_file.is_file():
        return {}, None
    try:
        settings = tomllib.loads(settings_file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{settings_file} is not valid TOML ({err}); fix it or delete it") from None
    except RecursionError:
        raise UserError(f"{settings_file} nests its arrays or tables too deeply to read; fix it or delete it") from None
    for key, value in settings.items():
        if key not in SIDECAR_KEYS:
            raise UserError(f"{settings_file}: unknown setting '{key}'; known settings: {', '.join(SIDECAR_KEYS)}")
        settings[key] = SIDECAR_KEYS[key](value, f"{settings_file}: {key}")
    if descriptor and "urdf" not in settings:
        raise UserError(f"{settings_file}: a robot descriptor needs urdf = \"PATH\" (relative to its folder, "
                        f"absolute, or {PYBULLET_DATA}PATH), or a URDF of the same name beside it")
    if not descriptor and "urdf" in settings:
        raise UserError(f"{settings_file}: 'urdf' belongs in a descriptor without a URDF beside it; "
                        f"{path.name} is already the URDF: delete the key")
    return settings, settings_file


def _flag_file_or_default(flag_value: object, flag: str, check, key: str, settings: dict, settings_file: Path | None,
                          default: object) -> tuple[object, str]:
    """A setting and where it came from: the command-line flag (checked), else the settings file, else the
    default; the source is the flag, the file's path, or "default"."""
    if flag_value is not None:
        return check(flag_value, flag), flag
    if key in settings:
        return settings[key], str(settings_file)
    return default, "default"


def resolve_robot(robot: str | Path | None = None, ee_link: str | None = None, home: object = None,
                  ee_offset_m: object = None, assets_dir: Path | None = None) -> RobotSpec:
    """A robot given by name (looked up in assets/) or by a path to a .urdf file or descriptor; None means the
    default.

    `ee_link`, `home` and `ee_offset_m` (from command-line flags) override the settings file's.
    """
    if ee_link is not None and not ee_link:
        raise UserError("--ee-link is empty; give the end-effector link's name (inspect_robot.py ROBOT lists the "
                        "links), or leave the flag out for the settings file's or the deepest link")
    robot = DEFAULT_ROBOT if robot is None else str(robot)
    if is_robot_file(robot):
        path = Path(robot).expanduser().resolve()
        if not path.is_file():
            raise UserError(f"robot file {robot} not found; give the path of an existing .urdf file")
        folders = [assets_dir] if assets_dir is not None else search_path()
        in_folder = path.suffix == ".urdf" and any(path.parent.parent == f.resolve() for f in folders)
        name = path.parent.name if in_folder else path.stem
    else:
        path, name = _file_for_name(_plain_name(robot), assets_dir), robot
    descriptor = _is_descriptor(path)
    if path.suffix == ".toml" and not descriptor:
        raise UserError(f"{path} is the settings file of {path.with_suffix('.urdf').name} beside it, not a robot "
                        f"descriptor (one has urdf = \"PATH\" and no URDF of its name beside it); give --urdf "
                        f"{path.with_suffix('.urdf')}")
    settings, settings_file = _read_settings(path, descriptor)
    urdf_path = _descriptor_urdf(path, settings["urdf"]) if descriptor else path
    home_value, home_source = _flag_file_or_default(home, "--home", check_home, "home", settings, settings_file,
                                                    "auto")
    offset, offset_source = _flag_file_or_default(ee_offset_m, "--ee-offset-m", check_ee_offset, "ee_offset_m",
                                                  settings, settings_file, (0.0, 0.0, 0.0))
    source = "override" if ee_link else ("sidecar" if "ee_link" in settings else "heuristic")
    return RobotSpec(
        name=name,
        urdf_path=urdf_path,
        ee_link=ee_link or settings.get("ee_link"),
        ee_link_source=source,
        hold_joints=settings.get("hold_joints", ()),
        home=home_value,
        home_source=home_source,
        ee_offset_m=offset,
        ee_offset_source=offset_source,
        settings_file=settings_file,
        source=settings.get("source", ""),
        licence=settings.get("licence", ""),
        self_collision_disable=settings.get("self_collision_disable", ()),
        self_collision_enable=settings.get("self_collision_enable", ()),
    )


def robot_catalogue(assets_dir: Path | None = None) -> list[dict]:
    """Every robot in assets/ with where its URDF comes from: name, urdf, found (the file in assets/ that names
    it), source, licence, and error (why it cannot be used, else None)."""
    rows = []
    for name, found in available_robots(assets_dir).items():
        row = {"name": name, "urdf": None, "found": str(found), "source": "", "licence": "", "error": None}
        try:
            spec = resolve_robot(name, assets_dir=assets_dir)
            row.update(urdf=str(spec.urdf_path), source=spec.source, licence=spec.licence)
        except UserError as err:
            row["error"] = str(err)
        rows.append(row)
    return rows
