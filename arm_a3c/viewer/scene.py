"""A fast software drawing of a robot scene with pygame: the robot's URDF visuals as simplified, flat-shaded
triangles sorted back to front (painter's algorithm), a checkered floor, the task's shapes (`tasks.base`: target
spheres, outlined over the robot so that a goal behind it stays in sight; obstacles, coordinate frames, paths)
and a trail. PyBullet's TinyRenderer needs about 80 ms for a KUKA frame on this machine; this needs a few milliseconds.

The robot is posed in the viewer's own PyBullet client (forward kinematics of the joint positions a worker
publishes); nothing here runs inside a worker."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pygame

from arm_a3c.sim.client import pybullet as pb
from arm_a3c.sim.robot import Robot
from arm_a3c.tasks.base import Box, Frame, Polyline, Shape, Sphere
from arm_a3c.viewer.meshes import Mesh, box, cylinder, load_obj, load_stl, simplify, sphere

LIGHT_DIRECTION = np.array([0.4, -0.5, 0.8]) / np.linalg.norm([0.4, -0.5, 0.8])  # towards the light
AMBIENT = 0.35  # share of a surface's colour seen without direct light
BACKGROUND = (232, 236, 242)
FLOOR_COLOURS = ((205, 212, 226), (178, 190, 212))
AXIS_RGB = ((220, 40, 40), (30, 170, 60), (40, 80, 230))  # a frame's x, y, z axes
TRAIL_RGB = (230, 120, 30)
TOOL_POINT_RGB = (210, 30, 60)  # the end-effector point: the point the task scores
FIELD_OF_VIEW_DEG = 50.0
NEAR_M = 0.05  # triangles closer to the camera than this are not drawn


@dataclass
class OrbitCamera:
    """Looks at `look_at` (m) from `distance` m; yaw about the vertical axis, pitch below the horizon (deg)."""

    look_at: np.ndarray
    distance: float
    yaw: float = 50.0
    pitch: float = 22.0

    def eye_and_axes(self) -> tuple[np.ndarray, np.ndarray]:
        yaw, pitch = math.radians(self.yaw), math.radians(self.pitch)
        back = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
        eye = self.look_at + self.distance * back
        forward = -back
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        return eye, np.stack([right, up, forward])  # rows: camera axes in world coordinates


def _rotation(rpy: tuple[float, float, float]) -> np.ndarray:
    return np.array(pb.getMatrixFromQuaternion(pb.getQuaternionFromEuler(rpy))).reshape(3, 3)


def _visual_mesh(visual) -> Mesh | None:
    if visual.kind == "mesh":
        if visual.mesh_path is None:
            return None
        suffix = visual.mesh_path.suffix.lower()
        loader = {".obj": load_obj, ".stl": load_stl}.get(suffix)
        if loader is None:  # .dae and others: drawn as their bounding box would mislead; skipped
            return None
        mesh = simplify(loader(visual.mesh_path))
        return Mesh(mesh.vertices * np.asarray(visual.size, np.float32), mesh.faces)
    if visual.kind == "box":
        return box(visual.size)
    if visual.kind == "cylinder":
        return cylinder(*visual.size)
    return sphere(visual.size[0])


class RobotDrawing:
    """The robot's visuals as triangles in their links' frames, ready to be posed and drawn."""

    def __init__(self, robot: Robot):
        self.robot = robot
        link_index = {robot.base_link_name: -1, **{name: i for i, name in enumerate(robot.link_names)}}
        per_link: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        for visual in robot.urdf.visuals:
            mesh = _visual_mesh(visual)
            if mesh is None or visual.link not in link_index:
                continue
            triangles = mesh.triangles @ _rotation(visual.rpy).T + np.asarray(visual.xyz)
            colours = np.tile(np.asarray(visual.rgba[:3]) * 255, (len(triangles), 1))
            per_link.setdefault(link_index[visual.link], []).append((triangles, colours))
        self.links = sorted(per_link)
        self.local = [np.concatenate([t for t, _ in per_link[k]]) for k in self.links]  # (F, 3, 3) each
        self.colours = np.concatenate([c for k in self.links for _, c in per_link[k]])
        self.triangle_count = len(self.colours)

    def world_triangles(self, joint_positions: np.ndarray) -> np.ndarray:
        """All triangles (F, 3, 3) in world coordinates for the given controlled-joint positions."""
        robot = self.robot
        for index, q in zip(robot.ctrl_index, joint_positions):
            pb.resetJointState(robot.body, index, float(q), 0.0, physicsClientId=robot.client)
        posed = []
        for link, local in zip(self.links, self.local):
            if link < 0:
                position, rotation = robot.base_position, np.eye(3)
            else:
                state = pb.getLinkState(robot.body, link, physicsClientId=robot.client)
                position = np.asarray(state[4])
                rotation = np.array(pb.getMatrixFromQuaternion(state[5])).reshape(3, 3)
            posed.append(local @ rotation.T + position)
        return np.concatenate(posed)


def floor_triangles(centre: np.ndarray, half_size: float, tiles: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A checkerboard at z = 0 around `centre`: (2 * tiles^2, 3, 3) triangles and their colours."""
    edges = np.linspace(-half_size, half_size, tiles + 1)
    triangles, colours = [], []
    for i in range(tiles):
        for j in range(tiles):
            x0, x1, y0, y1 = edges[i], edges[i + 1], edges[j], edges[j + 1]
            a, b, c, d = ([x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0])
            triangles += [[a, b, c], [a, c, d]]
            colours += [FLOOR_COLOURS[(i + j) % 2]] * 2
    return np.asarray(triangles, float) + [centre[0], centre[1], 0.0], np.asarray(colours, float)


class SceneRenderer:
    """Draws robot, floor, target and trail onto a pygame surface from an orbit camera."""

    def __init__(self, drawing: RobotDrawing, camera: OrbitCamera):
        self.drawing = drawing
        self.camera = camera
        reach = float(np.linalg.norm(camera.look_at)) + camera.distance / 2
        self.floor, self.floor_colours = floor_triangles(drawing.robot.base_position, max(reach, 0.5))
        self._meshes: dict = {}  # (kind, size) -> triangles centred on the origin

    def _solid(self, shape: Sphere | Box) -> tuple[np.ndarray, np.ndarray]:
        """World triangles and colours of a sphere or box shape."""
        if isinstance(shape, Sphere):
            key = ("sphere", round(float(shape.radius), 5))
            make = lambda: sphere(float(shape.radius), segments=10).triangles  # noqa: E731
        else:
            key = ("box", tuple(np.round(shape.half_extents, 5)))
            make = lambda: box(tuple(2 * np.asarray(shape.half_extents, float))).triangles  # noqa: E731
        if key not in self._meshes:
            self._meshes[key] = make()
        local = self._meshes[key]
        return local + np.asarray(shape.centre), np.tile(shape.rgb, (len(local), 1)).astype(float)

    def _lines(self, surface: pygame.Surface, shapes: list[Shape], size: tuple[int, int]) -> None:
        """Frames (x red, y green, z blue), paths and the rings of goal spheres, drawn over the solids."""
        for shape in shapes:
            if isinstance(shape, Sphere) and shape.ring:
                (centre,), (depth,) = self.project(np.asarray([shape.centre]), size)
                if depth > NEAR_M:
                    radius = max(self.focal_length(size[1]) * shape.radius / depth, 3.0)
                    pygame.draw.circle(surface, shape.rgb, centre.tolist(), radius, 2)
            elif isinstance(shape, Polyline) and len(shape.points) > 1:
                points, depth = self.project(np.asarray(shape.points), size)
                if depth.min() > NEAR_M:
                    pygame.draw.lines(surface, shape.rgb, False, points.tolist(), 2)
            elif isinstance(shape, Frame):
                ends = shape.origin + shape.length * np.asarray(shape.rotation).T  # rows: the axes' tips
                points, depth = self.project(np.vstack([shape.origin, ends]), size)
                if depth.min() > NEAR_M:
                    for tip, rgb in zip(points[1:], AXIS_RGB):
                        pygame.draw.line(surface, rgb, points[0].tolist(), tip.tolist(), shape.width)

    @staticmethod
    def focal_length(height: int) -> float:
        """Pixels per unit of camera-space slope, for the vertical field of view."""
        return (height / 2) / math.tan(math.radians(FIELD_OF_VIEW_DEG) / 2)

    def pixel_ray(self, pixel: tuple[int, int], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The inverse of `project`: (eye, direction) of the world-space ray through a screen pixel."""
        eye, axes = self.camera.eye_and_axes()
        focal = self.focal_length(size[1])
        return eye, axes[0] * (pixel[0] - size[0] / 2) / focal - axes[1] * (pixel[1] - size[1] / 2) / focal + axes[2]

    def project(self, points: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Screen pixels (..., 2) and camera depth (...) of world points (..., 3)."""
        eye, axes = self.camera.eye_and_axes()
        cam = (points - eye) @ axes.T  # x right, y up, z forward
        width, height = size
        focal = self.focal_length(height)
        depth = np.maximum(cam[..., 2], 1e-6)
        screen = np.stack([width / 2 + focal * cam[..., 0] / depth, height / 2 - focal * cam[..., 1] / depth], -1)
        return screen, cam[..., 2]

    def _shade(self, triangles: np.ndarray, colours: np.ndarray) -> np.ndarray:
        normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
        normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
        light = np.abs(normals @ LIGHT_DIRECTION)  # two-sided: mesh windings are not always consistent
        return np.clip(colours * (AMBIENT + (1 - AMBIENT) * light)[:, None], 0, 255)

    def draw(self, surface: pygame.Surface, joint_positions: np.ndarray, shapes: list[Shape] = (),
             trail: list[np.ndarray] | None = None) -> int:
        """Draw the scene with the task's `shapes`; returns the number of triangles drawn."""
        size = surface.get_size()
        surface.fill(BACKGROUND)
        floor_screen, floor_depth = self.project(self.floor, size)
        for points, depth, colour in zip(floor_screen, floor_depth, self.floor_colours):
            if depth.min() > NEAR_M:
                pygame.draw.polygon(surface, colour, points)

        triangles = [self.drawing.world_triangles(joint_positions)]
        colours = [self.drawing.colours]
        for shape in shapes:
            if isinstance(shape, (Sphere, Box)):
                solid, solid_colours = self._solid(shape)
                triangles.append(solid)
                colours.append(solid_colours)
        triangles, colours = np.concatenate(triangles), np.concatenate(colours)
        shaded = self._shade(triangles, colours)
        screen, depth = self.project(triangles, size)
        visible = depth.min(axis=1) > NEAR_M
        order = np.argsort(-depth.mean(axis=1)[visible])  # far to near
        screen, shaded = screen[visible][order], shaded[visible][order]
        draw_polygon = pygame.draw.polygon
        for points, colour in zip(screen.tolist(), shaded.tolist()):
            draw_polygon(surface, colour, points)
        self._lines(surface, shapes, size)
        if trail and len(trail) > 1:
            trail_screen, _ = self.project(np.asarray(trail), size)
            pygame.draw.lines(surface, TRAIL_RGB, False, trail_screen.tolist(), 2)
        if trail:  # the end-effector point (the tool point when the robot has one), on top of everything
            (tip,), _ = self.project(np.asarray(trail[-1:]), size)
            pygame.draw.circle(surface, TOOL_POINT_RGB, tip.tolist(), 5)
            pygame.draw.circle(surface, (255, 255, 255), tip.tolist(), 5, 1)
        return len(order)
