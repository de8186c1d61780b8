"""Export a checkpoint's policy for use outside arm-a3c: `arm-a3c export --checkpoint best.pt --out policy.onnx`.

The exported model is the deterministic policy with the observation normaliser inside: input the raw observation
(float32, shape (batch, obs_dim)), output the mean action in [-1, 1] (shape (batch, action_dim)), exactly what
`evaluate.py` runs. Formats: ONNX (run it with onnxruntime, or any ONNX runtime) and TorchScript
(`torch.jit.load`). Beside it, a JSON file with the same stem says what goes in and what comes out: the robot, its
controlled joints in action order with their limits, the home pose, the task, the observation layout, and how an
action becomes a motor command.

Nothing is left behind on failure: both files are written under temporary names and renamed at the end.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from arm_a3c.a3c.model import squashed_mean
from arm_a3c.envs.arm_env import ENVIRONMENT_SETTINGS
from arm_a3c.errors import UserError
from arm_a3c.files import refuse_foreign, temporary_beside

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
POLICY_FORMAT = "arm-a3c-policy/1"
ONNX_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "observation", "action"


class DeterministicPolicy(nn.Module):
    """squashed_mean(actor, clip((obs - mean) / std, -clip, clip)): the normaliser and the actor's mean in one
    module."""

    def __init__(self, actor: nn.Sequential, mean, inv_std, clip: float):
        super().__init__()
        self.actor = actor
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("inv_std", torch.as_tensor(inv_std, dtype=torch.float32).clone())
        self.clip = float(clip)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        normalized = torch.clamp((observation - self.mean) * self.inv_std, -self.clip, self.clip)
        return squashed_mean(self.actor, normalized)


def policy_from_checkpoint(path: Path, urdf: str | None = None):
    """(DeterministicPolicy, description dict) of a checkpoint (`urdf`: its robot's file, if it has moved); its
    env is closed."""
    from arm_a3c.a3c.evaluator import load_policy

    data, cfg, env, model, normalizer = load_policy(path, urdf)
    try:
        actor = model.actor
        for p in actor.parameters():  # views of the model's flat vector: give each its own memory
            p.data = p.data.detach().clone()
            p.requires_grad_(False)
        mean, inv_std = normalizer.snapshot()
        policy = DeterministicPolicy(actor, mean, inv_std, normalizer.clip).eval()
        description = describe_policy(path, data, cfg, env)
    finally:
        env.close()
    return policy, description


def describe_policy(path: Path, data: dict, cfg, env) -> dict:
    robot = env.robot
    return {
        "format": POLICY_FORMAT,
        "checkpoint": str(path),
        "env_steps": data["env_steps"],
        "evaluator_success_rate": (data.get("eval") or {}).get("success_rate"),
        "robot": robot.name,
        "urdf": str(robot.spec.urdf_path),
        "end_effector_link": robot.ee_link_name,
        "tool_point_m": [float(v) for v in robot.ee_offset],
        "task": cfg.task,
        "gym_id": env.task.gym_id,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", env.obs_dim],
                  "meaning": "the raw observation, as the environment gives it (the normaliser is inside)"},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", robot.dof],
                   "meaning": "the deterministic action in [-1, 1], one value per controlled joint"},
        # What `make_env(**environment)` (or gymnasium.make(gym_id, ...)) needs to rebuild the same environment.
        "environment": {name: getattr(cfg, name) for name in ENVIRONMENT_SETTINGS if hasattr(cfg, name)},
        "observation_layout": env.observation_layout(),
        "controlled_joints": [{"name": j.name, "type": j.type, "lower": j.lower, "upper": j.upper,
                               "unit": "m" if j.type == "prismatic" else "rad", "max_step": step,
                               "max_speed": step * env.config.control_hz,
                               "urdf_velocity_limit": j.velocity or None}
                              for j, step in zip(robot.controlled, env.speeds.steps)],
        "home": [float(v) for v in robot.home],
        "control": {
            "hz": env.config.control_hz,
            "action_to_command": "each control step, joint i's position target = its present position + "
                                 "action[i] * controlled_joints[i].max_step (rad or m: max_joint_step_rad, or _m "
                                 "for a prismatic joint, or less where its URDF velocity limit or speed_clamp over "
                                 "the control rate is less), clipped to its limits",
            "speed_clamp": env.speeds.clamp,  # rad/s: every joint's speed is clamped there (None: no clamp)
            "max_joint_step_rad": env.config.max_joint_step_rad,
            "max_joint_step_m": env.config.max_joint_step_m,
            "episode_steps": env.config.episode_steps,
        },
    }


def export_policy(checkpoint: Path, out: Path, fmt: str | None = None, urdf: str | None = None) -> dict:
    """Write the policy of `checkpoint` to `out` (format from `fmt`, else from out's suffix: .onnx is ONNX,
    anything else TorchScript) and its description to out with the suffix .json; return the description. Either
    file may replace only an earlier export's (never the checkpoint, never a file arm-a3c did not write, never the
    description of another model still beside it)."""
    out = Path(out)
    if not out.name or out.name in (".", ".."):
        raise UserError(f"--out {str(out)!r}: give a file name such as policy.onnx")
    fmt = fmt or ("onnx" if out.suffix.lower() == ".onnx" else "torchscript")
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    meta_path = out.with_suffix(".json")
    if meta_path == out:
        raise UserError(f"--out {out}: the description goes to {meta_path}; give the model another suffix "
                        f"({FORMATS[fmt]})")
    _check_writable(out)
    _check_not_input(checkpoint, out, meta_path)
    refuse_foreign(meta_path, _is_description, "--out")  # the description's name follows from --out
    refuse_foreign(out, lambda path: _is_description(meta_path) and _described_model(meta_path) == path.name, "--out")
    earlier = _described_model(meta_path) if _is_description(meta_path) else None
    if earlier not in (None, out.name) and (meta_path.parent / earlier).is_file():
        # Replacing the description would leave that model with another one's, which run_exported.py trusts.
        raise UserError(f"--out {out}: {meta_path} describes {earlier}, an earlier export, which would be left "
                        f"without its description; nothing was written: give another --out (such as "
                        f"{out.stem}-{fmt}{out.suffix}) or delete {earlier} first")
    policy, description = policy_from_checkpoint(checkpoint, urdf)
    description["model_file"] = out.name
    description["model_format"] = fmt
    example = torch.zeros(1, description["input"]["shape"][1])
    temporaries = []
    try:
        model_tmp = _temporary(out, temporaries)
        if fmt == "onnx":
            try:
                import onnx  # noqa: F401  (torch's exporter needs it, and says so only deep in a traceback)
            except ImportError:
                raise UserError("--format onnx needs the onnx package: pip install -r requirements.txt") from None
            with warnings.catch_warnings():
                # The TorchScript-based exporter: one self-contained file in half a second (the newer torch.export
                # one takes seconds here and writes the weights to a second file); deprecated, not removed.
                warnings.simplefilter("ignore")
                torch.onnx.export(policy, (example,), str(model_tmp), input_names=[INPUT_NAME],
                                  output_names=[OUTPUT_NAME], opset_version=ONNX_OPSET, dynamo=False,
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.jit.save(torch.jit.trace(policy, example), str(model_tmp))
        meta_tmp = _temporary(meta_path, temporaries)
        meta_tmp.write_text(json.dumps(description, indent=2) + "\n")
        os.replace(model_tmp, out)
        os.replace(meta_tmp, meta_path)
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror or err}") from None
    finally:
        for path in temporaries:
            path.unlink(missing_ok=True)
    return description


def _check_writable(out: Path) -> None:
    folder = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'policy.onnx'}")
    if not folder.is_dir():
        raise UserError(f"--out {out}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UserError(f"--out {out}: the folder {folder} is not writable")


def _check_not_input(checkpoint: Path, out: Path, meta_path: Path) -> None:
    source = Path(checkpoint).resolve()
    for written in (out, meta_path):
        if written.resolve() == source:
            raise UserError(f"--out {out} would write {written} over the checkpoint it exports; give another --out "
                            f"(such as policy.onnx)")


def _is_description(path: Path) -> bool:
    """Whether `path` is the JSON description an export wrote."""
    try:
        return json.loads(path.read_text()).get("format") == POLICY_FORMAT
    except (OSError, ValueError, AttributeError, UnicodeDecodeError):
        return False


def _described_model(path: Path) -> str | None:
    """The name of the model file the description at `path` is for (None if it names no file beside it)."""
    name = json.loads(path.read_text()).get("model_file")
    return name if isinstance(name, str) and name and Path(name).name == name else None


def _temporary(final: Path, temporaries: list[Path]) -> Path:
    temporaries.append(temporary_beside(final))
    return temporaries[-1]

