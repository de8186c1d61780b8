"""The viewer's drawing: meshes load and simplify, and the software renderer draws the posed robot and the
target where they are."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
import pygame  # noqa: E402
from helpers import REPO, goal_pixels  # noqa: E402

from arm_a3c.envs.arm_env import ArmReachEnv  # noqa: E402
from arm_a3c.tasks.base import Sphere
from arm_a3c.viewer.meshes import box, cylinder, load_obj, load_stl, simplify, sphere  # noqa: E402
from arm_a3c.viewer.scene import OrbitCamera, RobotDrawing, SceneRenderer  # noqa: E402

KUKA_MESHES = REPO / "assets" / "kuka_iiwa" / "meshes"


def test_obj_and_stl_of_the_same_link_agree_and_simplify_keeps_the_shape():
    obj, stl = load_obj(KUKA_MESHES / "link_1.obj"), load_stl(KUKA_MESHES / "link_1.stl")
    assert len(obj.faces) > 1000 and len(stl.faces) > 1000
    np.testing.assert_allclose(obj.vertices.min(0), stl.vertices.min(0), atol=2e-3)
    np.testing.assert_allclose(obj.vertices.max(0), stl.vertices.max(0), atol=2e-3)
    small = simplify(obj, max_triangles=300)
    assert 50 < len(small.faces) <= 300
    extent = obj.vertices.max(0) - obj.vertices.min(0)
    np.testing.assert_allclose(small.vertices.max(0) - small.vertices.min(0), extent, rtol=0.15)


def test_primitives_have_the_size_the_urdf_asks_for():
    np.testing.assert_allclose(np.ptp(box((0.1, 0.2, 0.3)).vertices, axis=0), [0.1, 0.2, 0.3], atol=1e-6)
    c = cylinder(0.05, 0.4).vertices
    assert np.ptp(c[:, 2]) == pytest.approx(0.4) and np.abs(c[:, :2]).max() == pytest.approx(0.05, abs=1e-6)
    assert np.linalg.norm(sphere(0.1).vertices, axis=1) == pytest.approx(0.1, abs=1e-6)


def _render(env: ArmReachEnv, joint_positions, target) -> np.ndarray:
    camera = OrbitCamera(look_at=np.array([0.0, 0.0, 0.3]), distance=1.6)
    renderer = SceneRenderer(RobotDrawing(env.robot), camera)
    surface = pygame.Surface((400, 300))
    renderer.draw(surface, np.asarray(joint_positions), [] if target is None else [Sphere(target, 0.05)])
    return pygame.surfarray.array3d(surface).transpose(1, 0, 2).astype(int)


def test_renderer_draws_the_arm_and_the_target_and_follows_the_joints():
    env = ArmReachEnv("light_arm")
    upright = _render(env, [0.0, 0.0, 0.0], np.array([0.3, 0.3, 0.4]))
    r, g, b = upright[..., 0], upright[..., 1], upright[..., 2]
    assert goal_pixels(upright).sum() > 30, "target not drawn"
    orange = (r > 120) & (r > 1.6 * g) & (b < 80)
    assert orange.sum() > 100, "arm not drawn"

    bent = _render(env, [1.0, 1.2, 0.5], np.array([0.3, 0.3, 0.4]))
    bent_orange = (bent[..., 0] > 120) & (bent[..., 0] > 1.6 * bent[..., 1]) & (bent[..., 2] < 80)
    moved = np.abs(np.argwhere(orange).mean(0) - np.argwhere(bent_orange).mean(0)).max()
    assert moved > 10, "the drawn upper arm did not move with the shoulder joint"
    env.close()


def test_a_goal_behind_the_robot_is_outlined_over_it_and_an_obstacle_is_not():
    env = ArmReachEnv("kuka_iiwa")
    inside_the_base = env.robot.base_position + [0.0, 0.0, 0.08]  # within the base link's mesh, hidden by it
    camera = OrbitCamera(look_at=np.array([0.0, 0.0, 0.2]), distance=1.2)
    renderer = SceneRenderer(RobotDrawing(env.robot), camera)
    drawn = {}
    for ring in (True, False):
        surface = pygame.Surface((400, 300))
        renderer.draw(surface, env.robot.home, [Sphere(inside_the_base, 0.04, ring=ring)])
        drawn[ring] = pygame.surfarray.array3d(surface).transpose(1, 0, 2).astype(int)
    assert goal_pixels(drawn[False]).sum() == 0, "the sphere is not hidden in the base: the test proves nothing"
    ring = np.argwhere(goal_pixels(drawn[True]))
    (centre,), _ = renderer.project(inside_the_base[None], (400, 300))
    assert len(ring) > 20, "the hidden goal's ring is not drawn"
    assert np.abs(ring.mean(0)[::-1] - centre).max() < 2.0, "the ring is not around the goal"
    env.close()


def test_the_kuka_meshes_are_drawn_simplified():
    env = ArmReachEnv("kuka_iiwa")
    drawing = RobotDrawing(env.robot)
    assert len(drawing.links) == 8  # the base and seven links, each with its mesh
    assert 800 < drawing.triangle_count < 8 * 300
    env.close()


def test_the_end_effector_point_is_drawn_where_it_is():
    from arm_a3c.viewer.scene import TOOL_POINT_RGB

    env = ArmReachEnv("panda")  # its tool point sits 0.1034 m beyond the hand, between the fingertips
    q = env.robot.home
    point = env.robot.forward_kinematics(q)
    camera = OrbitCamera(look_at=np.array([0.0, 0.0, 0.4]), distance=2.0)
    renderer = SceneRenderer(RobotDrawing(env.robot), camera)
    surface = pygame.Surface((400, 300))
    renderer.draw(surface, q, [], [point - [0.05, 0, 0], point])
    pixels = pygame.surfarray.array3d(surface).transpose(1, 0, 2).astype(int)
    marked = np.argwhere((np.abs(pixels - TOOL_POINT_RGB) <= 2).all(-1))
    (expected,), _ = renderer.project(point[None], (400, 300))
    assert len(marked) > 20, "tool point not drawn"
    assert np.abs(marked.mean(0)[::-1] - expected).max() < 2.0  # (row, col) -> (x, y)
    env.close()
