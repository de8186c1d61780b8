"""How close the arm is to touching something, as the policy sees it: the clearance part of the observation.

A contact ends an episode (self-contact and floor contact with self-collision, an obstacle in avoid), but the rest of
the observation says only where the end effector is: where the elbow is beside the upper arm, or the forearm beside
an obstacle, the policy must infer from the joint angles alone. This part says it directly, the way the
Jacobian-transpose parts say which way closes the goal's error (the potential-field idea of Khatib 1986, and of the
repulsive terms of CHOMP and of RMPflow's collision avoidance): for the pairs of shapes closer than a band (a
fraction of the arm's reach), PyBullet's closest points between them give their distance d and the direction n that
separates them; the part is

- `clearance`: the smallest such distance over the band (1: nothing within it, 0: touching, below 0: overlapping),
- `clearance_push` (one value per controlled joint): the sum over the `NEAREST` closest pairs of
  w (J_a^T n - J_b^T n), w = 1 - d / band, J_a and J_b the Jacobians of the closest points on the two links: the
  direction in joint space that takes them apart, weighted by how near they are (zero when nothing is near).

The pairs are those `sim.contacts` checks (the links that count as a self-contact, the moving links and the floor)
and the task's obstacles (`Task.obstacle_bodies`), so the same arm and task see the same part in every simulator:
a second simulator's arm is measured on the PyBullet twin put in its configuration (`envs.mujoco_env`).
"""

from __future__ import annotations

from typing import Sequence

from arm_a3c.sim.client import pybullet as pb

BAND_FRACTION = 0.1  # pairs closer than this fraction of the arm's reach are seen; farther ones are not
NEAREST = 3  # the pairs that push: the closest ones (a few Jacobians a step, whatever the arm)


class Clearance:
    """The clearance part of the observation (`measure`) of `robot` (a `sim.robot.Robot`) against itself (the
    `pairs.checked` of `sim.contacts.find_contact_pairs`), the `floor` (for `pairs.floor_links`) and `obstacles`."""

    def __init__(self, robot, floor: int, pairs, obstacles: Sequence[int], reach_m: float):
        self.robot, self.client, self.body, self.floor = robot, robot.client, robot.body, floor
        self.band = BAND_FRACTION * reach_m
        self.pairs = tuple(pairs.checked)
        self.floor_links = frozenset(pairs.floor_links)
        self.obstacles = tuple(obstacles)
        self.moving = frozenset(robot.moving_links)
        self._inverse_band = 1.0 / self.band
        self._links = sorted({link for pair in self.pairs for link in pair})

    def near(self) -> list[tuple[float, int, list[float], int | None, list[float] | None, list[float]]]:
        """The pairs within the band, closest first: (distance m, link a, point on a, link b or None (not a moving
        link of the arm), point on b, normal n from b to a)."""
        client, body, band = self.client, self.body, self.band
        # Boxes first: two links whose bounding boxes are farther apart than the band are too (a tenth of the
        # cost of asking PyBullet for their closest points, which costs about 10 us a pair on the KUKA's meshes)
        boxes = {link: pb.getAABB(body, link, physicsClientId=client) for link in self._links}
        found = []
        for a, b in self.pairs:
            (low_a, high_a), (low_b, high_b) = boxes[a], boxes[b]
            if (low_a[0] - high_b[0] > band or low_b[0] - high_a[0] > band or low_a[1] - high_b[1] > band
                    or low_b[1] - high_a[1] > band or low_a[2] - high_b[2] > band or low_b[2] - high_a[2] > band):
                continue
            points = pb.getClosestPoints(body, body, band, linkIndexA=a, linkIndexB=b, physicsClientId=client)
            if points:
                p = min(points, key=lambda point: point[8])
                found.append((p[8], a, p[5], b, p[6], p[7]))
        others = [(self.floor, self.floor_links)] + [(obstacle, self.moving) for obstacle in self.obstacles]
        for other, links in others:
            closest: dict[int, tuple] = {}
            for p in pb.getClosestPoints(body, other, band, physicsClientId=client):
                if p[3] in links and (p[3] not in closest or p[8] < closest[p[3]][0]):
                    closest[p[3]] = (p[8], p[3], p[5], None, None, p[7])
            found.extend(closest.values())
        found.sort(key=lambda entry: entry[0])
        return found

    def measure(self, q_movable: Sequence[float]) -> list[float]:
        """`clearance` then `clearance_push` (1 + dof floats) with the arm as it is in PyBullet, its movable joints
        at `q_movable` (what PyBullet's Jacobian needs)."""
        near = self.near()
        robot = self.robot
        push = [0.0] * robot.dof
        if not near:
            return [1.0] + push
        for distance, a, point_a, b, point_b, normal in near[:NEAREST]:
            weight = 1.0 - max(distance, 0.0) * self._inverse_band
            for link, point, sign in ((a, point_a, weight), (b, point_b, -weight)):
                if link is not None and link in self.moving:
                    along = robot.point_jacobian_products(link, point, q_movable).linear_t(normal)  # J_point^T n
                    push = [p + sign * v for p, v in zip(push, along)]
        return [min(max(near[0][0] * self._inverse_band, -1.0), 1.0)] + push
