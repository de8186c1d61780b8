"""An exported policy (`arm-a3c export`): the ONNX model run with onnxruntime (no torch), and its description
(`policy.json`), both checked: a damaged or foreign file is one line, not a traceback further on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from arm_a3c.errors import UserError


def read_description(path: Path) -> dict:
    """policy.json, checked; the environment settings of an older export completed with their old values."""
    from arm_a3c.envs.arm_env import ENVIRONMENT_SAVED_BEFORE_FIELD_EXISTED, ENVIRONMENT_SETTINGS

    try:
        meta = json.loads(path.read_text())
        fits = isinstance(meta["environment"], dict) and set(meta["environment"]) <= set(ENVIRONMENT_SETTINGS)
    except (OSError, ValueError, KeyError, TypeError):
        fits = False
    if not fits:
        raise UserError(f"{path} is not a policy description written by arm-a3c export (damaged, or another file); "
                        f"export the policy again")
    meta["environment"] = {**ENVIRONMENT_SAVED_BEFORE_FIELD_EXISTED, **meta["environment"]}  # an older export's
    return meta


def load_session(path: Path, obs_dim: int, action_dim: int):
    """The policy as an onnxruntime session, checked to take `obs_dim` floats to `action_dim` actions: a damaged
    model, or another environment's, is one line."""
    import onnxruntime
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, InvalidGraph, InvalidProtobuf

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except (Fail, InvalidArgument, InvalidGraph, InvalidProtobuf) as err:
        reason = str(err).rpartition(":")[2].strip(" .")  # after onnxruntime's "[ONNXRuntimeError] : 7 : ..."
        raise UserError(f"{path} is not an ONNX model onnxruntime can load ({reason}); export the policy again") \
            from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1 or inputs[0].type != "tensor(float)" \
            or (inputs[0].shape[1:], outputs[0].shape[1:]) != ([obs_dim], [action_dim]):
        raise UserError(f"{path} is not the policy its description is for (one that takes {obs_dim} observation "
                        f"floats to {action_dim} actions); export the policy again")
    return session


def policy_files(policy: Path) -> tuple[Path, dict]:
    """(the description's path, the description) of the exported policy `policy`, both files checked to be there."""
    if not policy.is_file():
        raise UserError(f"--policy {policy}: no such file; give the .onnx file arm-a3c export wrote")
    meta_path = policy.with_suffix(".json")
    if not meta_path.is_file():
        raise UserError(f"{meta_path} is missing: arm-a3c export writes it beside {policy}; keep the two together")
    return meta_path, read_description(meta_path)


class ExportedPolicy:
    """The deterministic policy of an ONNX file: observation (float32) in, action in [-1, 1] out."""

    def __init__(self, path: Path, obs_dim: int, action_dim: int):
        self.session = load_session(path, obs_dim, action_dim)
        self._input = self.session.get_inputs()[0].name

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input: np.asarray(obs, dtype=np.float32)[None, :]})[0][0]
