"""Off-screen pictures of a simulation with PyBullet's TinyRenderer (CPU, no display needed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arm_a3c.sim.client import pybullet as pb

FIELD_OF_VIEW_DEG = 50.0
NEAR_M, FAR_M = 0.01, 20.0


@dataclass(frozen=True)
class Camera:
    """An orbit camera around `look_at` (m): `distance` m away, `yaw` and `pitch` in degrees."""

    look_at: tuple[float, float, float]
    distance: float
    yaw: float = 50.0
    pitch: float = -25.0


def render_rgb(client: int, camera: Camera, width: int, height: int) -> np.ndarray:
    """An RGB image of the client's scene: (height, width, 3) uint8."""
    view = pb.computeViewMatrixFromYawPitchRoll(
        cameraTargetPosition=camera.look_at, distance=camera.distance, yaw=camera.yaw, pitch=camera.pitch,
        roll=0.0, upAxisIndex=2,
    )
    projection = pb.computeProjectionMatrixFOV(FIELD_OF_VIEW_DEG, width / height, NEAR_M, FAR_M)
    _, _, rgba, _, _ = pb.getCameraImage(
        width, height, view, projection, renderer=pb.ER_TINY_RENDERER, physicsClientId=client
    )
    return np.reshape(np.asarray(rgba, dtype=np.uint8), (height, width, 4))[:, :, :3].copy()


def add_marker(client: int, radius_m: float, rgba: tuple[float, float, float, float]) -> int:
    """A visual-only sphere (no mass, no collision: it never touches the physics); returns its body id."""
    shape = pb.createVisualShape(pb.GEOM_SPHERE, radius=radius_m, rgbaColor=rgba, physicsClientId=client)
    return pb.createMultiBody(baseMass=0.0, baseVisualShapeIndex=shape, baseCollisionShapeIndex=-1,
                              physicsClientId=client)


def move_marker(client: int, marker: int, position: np.ndarray) -> None:
    pb.resetBasePositionAndOrientation(marker, position.tolist(), (0, 0, 0, 1), physicsClientId=client)
