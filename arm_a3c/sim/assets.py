"""Find robots: by name in assets/ (`assets/NAME.urdf` or `assets/NAME/<one>.urdf`) or by URDF path.

A robot may have a sidecar file next to its URDF with the same stem and `.toml` (for example
`assets/kuka_iiwa/model.toml`) holding per-robot settings:

    ee_link = "lbr_iiwa_link_7"      # end-effector link, overrides the deepest-link heuristic
    hold_joints = ["finger_joint"]   # movable joints to hold still instead of controlling
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from arm_a3c.errors import UserError

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
DEFAULT_ROBOT = "kuka_iiwa"
SIDECAR_KEYS = {"ee_link": str, "hold_joints": list}


@dataclass(frozen=True)
class RobotSpec:
    """Which URDF to load and the per-robot settings that go with it."""

    name: str
    urdf_path: Path
    ee_link: str | None = None  # None: choose by the heuristic in `robot.py`
    ee_link_source: str = "heuristic"  # heuristic | sidecar | override
    hold_joints: tuple[str, ...] = field(default_factory=tuple)


def available_robots(assets_dir: Path = ASSETS_DIR) -> dict[str, Path]:
    """Robot name -> URDF path for every robot in assets/ (folders with several URDFs are skipped)."""
    robots = {p.stem: p for p in sorted(assets_dir.glob("*.urdf"))}
    for folder in sorted(p for p in assets_dir.iterdir() if p.is_dir()) if assets_dir.is_dir() else []:
        urdfs = sorted(folder.glob("*.urdf"))
        if len(urdfs) == 1:
            robots.setdefault(folder.name, urdfs[0])
    return dict(sorted(robots.items()))


def _urdf_for_name(name: str, assets_dir: Path) -> Path:
    folder_urdfs = sorted((assets_dir / name).glob("*.urdf")) if (assets_dir / name).is_dir() else []
    if (assets_dir / f"{name}.urdf").is_file():
        return assets_dir / f"{name}.urdf"
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


def _read_sidecar(urdf_path: Path) -> dict:
    sidecar = urdf_path.with_suffix(".toml")
    if not sidecar.is_file():
        return {}
    try:
        settings = tomllib.loads(sidecar.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{sidecar} is not valid TOML ({err}); fix it or delete it") from None
    for key, value in settings.items():
        if key not in SIDECAR_KEYS:
            raise UserError(f"{sidecar}: unknown setting '{key}'; known settings: {', '.join(SIDECAR_KEYS)}")
        if not isinstance(value, SIDECAR_KEYS[key]):
            raise UserError(f"{sidecar}: '{key}' must be a {SIDECAR_KEYS[key].__name__}")
    return settings


def resolve_robot(robot: str | Path | None = None, ee_link: str | None = None,
                  assets_dir: Path = ASSETS_DIR) -> RobotSpec:
    """A robot given by name (looked up in assets/) or by a path to a .urdf file; None means the default.

    `ee_link` overrides both the sidecar's and the heuristic's end-effector choice.
    """
    robot = DEFAULT_ROBOT if robot is None else str(robot)
    looks_like_path = robot.endswith(".urdf") or "/" in robot or "\\" in robot
    if looks_like_path:
        urdf_path = Path(robot).expanduser().resolve()
        if not urdf_path.is_file():
            raise UserError(f"robot file {robot} not found; give the path of an existing .urdf file")
        name = urdf_path.parent.name if urdf_path.parent.parent == assets_dir else urdf_path.stem
    else:
        urdf_path, name = _urdf_for_name(robot, assets_dir), robot
    settings = _read_sidecar(urdf_path)
    source = "override" if ee_link else ("sidecar" if settings.get("ee_link") else "heuristic")
    return RobotSpec(
        name=name,
        urdf_path=urdf_path,
        ee_link=ee_link or settings.get("ee_link"),
        ee_link_source=source,
        hold_joints=tuple(settings.get("hold_joints", ())),
    )
