"""Triangle meshes for drawing a robot without PyBullet's renderer: URDF visual geometry (OBJ and STL meshes,
boxes, cylinders, spheres) as numpy triangles in the link frame, simplified by vertex clustering so that a
software renderer can draw a whole arm many times a second."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arm_a3c.errors import notice

MAX_TRIANGLES_PER_MESH = 300  # after simplification; the KUKA's link meshes hold thousands each
PRIMITIVE_SEGMENTS = 12  # facets around cylinders and spheres


@dataclass(frozen=True)
class Mesh:
    vertices: np.ndarray  # (V, 3) float32, metres, in the mesh's own frame
    faces: np.ndarray  # (F, 3) int32 vertex indices, counter-clockwise seen from outside

    @property
    def triangles(self) -> np.ndarray:
        """(F, 3, 3): the corner positions of every face."""
        return self.vertices[self.faces]


def _obj_index(token: str, vertex_count: int) -> int:
    """The 0-based vertex index of an OBJ face corner ("7", "7/1/3", "-1"), or -1 if it names none."""
    try:
        index = int(token.split("/")[0])
    except ValueError:
        return -1
    if index > 0:
        return index - 1  # OBJ counts from 1
    return vertex_count + index if index < 0 else -1  # a negative index counts back from the last vertex


def load_obj(path: Path) -> Mesh:
    """The triangles of an OBJ file (polygons as fans). Triangles with a corner the file does not define (a face
    index past its vertices, a vertex that is not three finite numbers) are left out, with a notice: PyBullet loads
    such a file, so the robot may have trained with it, and the viewer should still show it."""
    vertices, faces = [], []
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            try:
                vertex = [float(x) for x in parts[1:4]]
            except ValueError:
                vertex = []
            vertices.append(vertex if len(vertex) == 3 else [math.nan] * 3)
        elif parts[0] == "f":
            index = [_obj_index(p, len(vertices)) for p in parts[1:]]
            faces.extend([index[0], index[k], index[k + 1]] for k in range(1, len(index) - 1))
    vertex_array = np.array(vertices, np.float64).reshape(-1, 3)
    face_array = np.array(faces, np.int64).reshape(-1, 3)
    defined = np.isfinite(vertex_array).all(axis=1)
    drawn = np.all((face_array >= 0) & (face_array < len(vertex_array)), axis=1)
    drawn[drawn] = defined[face_array[drawn]].all(axis=1)
    if not drawn.all():
        notice(f"{path}: the viewer leaves out {np.count_nonzero(~drawn)} of its {len(face_array)} triangles, "
               f"each with a corner that is not a vertex the file defines (it has {len(vertex_array)})")
    used, corners = np.unique(face_array[drawn], return_inverse=True)  # only the vertices that are drawn
    return Mesh(vertex_array[used].astype(np.float32), corners.reshape(-1, 3).astype(np.int32))


def load_stl(path: Path) -> Mesh:
    data = path.read_bytes()
    count = struct.unpack_from("<I", data, 80)[0] if len(data) >= 84 else 0
    if len(data) == 84 + 50 * count:  # binary STL: 50 bytes per facet
        record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attr", "<u2")])
        corners = np.frombuffer(data, dtype=record, count=count, offset=84)["corners"].reshape(-1, 3)
    else:  # ASCII STL
        corners = np.array([[float(x) for x in line.split()[1:4]] for line in data.decode(errors="replace").splitlines()
                            if line.strip().startswith("vertex")], np.float32).reshape(-1, 3)
    return Mesh(corners.astype(np.float32), np.arange(len(corners), dtype=np.int32).reshape(-1, 3))


def box(size: tuple[float, float, float]) -> Mesh:
    half = np.asarray(size, np.float32) / 2
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float32) * half
    faces = [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
             [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    return Mesh(corners, np.array(faces, np.int32))


def cylinder(radius: float, length: float, segments: int = PRIMITIVE_SEGMENTS) -> Mesh:
    """Along z, centred on the origin (the URDF convention)."""
    angles = np.linspace(0, 2 * math.pi, segments, endpoint=False)
    ring = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    bottom = np.hstack([ring, np.full((segments, 1), -length / 2)])
    top = np.hstack([ring, np.full((segments, 1), length / 2)])
    vertices = np.vstack([bottom, top, [[0, 0, -length / 2]], [[0, 0, length / 2]]]).astype(np.float32)
    faces = []
    for i in range(segments):
        j = (i + 1) % segments
        faces += [[i, j, segments + j], [i, segments + j, segments + i],
                  [2 * segments, j, i], [2 * segments + 1, segments + i, segments + j]]
    return Mesh(vertices, np.array(faces, np.int32))


def sphere(radius: float, segments: int = PRIMITIVE_SEGMENTS) -> Mesh:
    rings = segments // 2
    vertices = [[0, 0, radius]]
    for r in range(1, rings):
        theta = math.pi * r / rings
        for s in range(segments):
            phi = 2 * math.pi * s / segments
            vertices.append([radius * math.sin(theta) * math.cos(phi), radius * math.sin(theta) * math.sin(phi),
                             radius * math.cos(theta)])
    vertices.append([0, 0, -radius])
    faces, bottom = [], len(vertices) - 1
    for s in range(segments):
        t = (s + 1) % segments
        faces.append([0, 1 + s, 1 + t])
        faces.append([bottom, 1 + (rings - 2) * segments + t, 1 + (rings - 2) * segments + s])
        for r in range(rings - 2):
            a, b = 1 + r * segments, 1 + (r + 1) * segments
            faces += [[a + s, b + s, b + t], [a + s, b + t, a + t]]
    return Mesh(np.array(vertices, np.float32), np.array(faces, np.int32))


def simplify(mesh: Mesh, max_triangles: int = MAX_TRIANGLES_PER_MESH) -> Mesh:
    """Vertex clustering: snap vertices to a grid, merge those in one cell, drop collapsed faces; the grid
    coarsens until at most `max_triangles` remain. Keeps the silhouette, which is what a viewer needs."""
    if len(mesh.faces) <= max_triangles:
        return mesh
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    extent = float(np.max(hi - lo)) or 1.0
    cells = 64
    while True:
        size = extent / cells
        keys = np.floor((mesh.vertices - lo) / size).astype(np.int64)
        _, cluster, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        cluster = cluster.reshape(-1)
        centres = np.zeros((len(counts), 3))
        np.add.at(centres, cluster, mesh.vertices)
        centres /= counts[:, None]
        faces = cluster[mesh.faces]
        faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
        _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
        faces = faces[np.sort(first)]  # each face once, in its original winding
        if len(faces) <= max_triangles or cells <= 4:
            return Mesh(centres.astype(np.float32), faces.astype(np.int32))
        cells = int(cells * 0.8)
