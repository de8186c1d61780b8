"""An arm's contacts with itself and with the floor, measured as safety figures: PyBullet loads the arm without
self-collision, so its links pass through each other and through the floor where a real arm's would break;
these are the moments to count.

Which link pairs count is decided once per robot, the way MoveIt's setup assistant decides an SRDF's disabled
pairs by sampling configurations: a pair is left out if its links are adjacent (a joint joins them), if they
touch at the home pose, or if they touch in nearly every random configuration (they always do, by design); every
other pair touching is a self-contact: two links overlapping by more than `CONTACT_DEPTH_M` (PyBullet's
`getClosestPoints`), so surfaces that graze do not count. A moving link touching the floor (which PyBullet does
simulate: the link presses on it, overlapping it by any amount) is a floor contact, unless it already touches
the floor at home.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arm_a3c.sim.client import pybullet as pb

CONTACT_DEPTH_M = 0.001  # two shapes count as in contact when they overlap by more than this
CONTACT_SAMPLES = 200  # random configurations sampled for the pairs that always touch
ALWAYS_TOUCHING = 0.95  # a pair touching in at least this share of the samples always touches: not counted


@dataclass(frozen=True)
class ContactPairs:
    """What a robot's contacts are checked for (`find_contact_pairs`); links by PyBullet index, -1 the base."""

    checked: tuple[tuple[int, int], ...]  # link pairs whose contact is a self-contact
    disabled: dict[tuple[int, int], str]  # link pairs not checked, with why: adjacent, touching at home, always
    floor_links: tuple[int, ...]  # moving links whose contact with the floor is a floor contact


def _touching(body_a: int, link_a: int, body_b: int, link_b: int, client: int, depth: float = CONTACT_DEPTH_M) -> bool:
    """The two links overlap by more than `depth` (m)."""
    points = pb.getClosestPoints(body_a, body_b, 0.0, linkIndexA=link_a, linkIndexB=link_b, physicsClientId=client)
    return any(point[8] < -depth for point in points)


def find_contact_pairs(robot, floor: int) -> ContactPairs:
    """The pairs to check on `robot` (a `sim.robot.Robot`) and its `floor` body. Moves the arm; leaves it at
    home."""
    client, body = robot.client, robot.body
    links = [link for link in range(-1, len(robot.link_names))
             if pb.getCollisionShapeData(body, link, physicsClientId=client)]
    parent = {link: robot.parent_link(link) for link in links}
    pairs = [(a, b) for i, a in enumerate(links) for b in links[i + 1:]]
    disabled = {pair: "adjacent" for pair in pairs if parent[pair[1]] == pair[0] or parent[pair[0]] == pair[1]}
    robot.reset(robot.home)
    pb.performCollisionDetection(physicsClientId=client)
    for pair in pairs:
        if pair not in disabled and _touching(body, pair[0], body, pair[1], client):
            disabled[pair] = "touching at home"
    floor_links = tuple(link for link in robot.moving_links if not _touching(body, link, floor, -1, client, 0.0))
    candidates = [pair for pair in pairs if pair not in disabled]
    touches = np.zeros(len(candidates))
    rng = np.random.default_rng(0)
    for _ in range(CONTACT_SAMPLES):
        robot.reset(robot.random_configuration(rng))
        pb.performCollisionDetection(physicsClientId=client)
        touches += [_touching(body, a, body, b, client) for a, b in candidates]
    for pair, count in zip(candidates, touches):
        if count >= ALWAYS_TOUCHING * CONTACT_SAMPLES:
            disabled[pair] = "always touching"
    robot.reset(robot.home)
    return ContactPairs(tuple(pair for pair in candidates if pair not in disabled), disabled, floor_links)


def contacts_now(robot, floor: int, pairs: ContactPairs) -> tuple[bool, bool]:
    """(a self-contact, a floor contact) in the arm's present state (after a simulation step: PyBullet's
    collision data is that step's)."""
    client, body = robot.client, robot.body
    self_contact = any(_touching(body, a, body, b, client) for a, b in pairs.checked)
    floor_contact = any(_touching(body, link, floor, -1, client, 0.0) for link in pairs.floor_links)
    return self_contact, floor_contact
