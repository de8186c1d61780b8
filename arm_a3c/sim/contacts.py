"""An arm's contacts with itself and with the floor: which link pairs count, and whether any touch now.

Which link pairs count is decided once per robot, the way MoveIt's setup assistant decides an SRDF's disabled
pairs by sampling configurations: a pair is left out if its links are adjacent (a joint joins them), if they
touch at the home pose, or if they touch in nearly every random configuration (they always do, by design); the
robot's settings file may leave out more pairs (`self_collision_disable`) or check some of those left out
(`self_collision_enable`). Finding them takes 20-35 ms on the xArm6 and the Panda (measured), so every
environment finds its own. A moving link touching the floor is a floor contact, unless it touches it at home.

With self-collision (`Robot.self_collision`, `EnvConfig.self_collision`), PyBullet simulates the pairs that
count and no other (`simulate_pairs`): the links push each other away, overlapping by a fraction of a millimetre
(0.7 mm, measured, for a hand driven into its upper arm at full force), and `SimulatedContacts` reads the
contacts from PyBullet's own contact points after a step, any overlap counting. Without it, links pass through
each other, and `contacts_now` measures the overlap of each pair instead: more than `CONTACT_DEPTH_M` counts, so
surfaces that graze do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arm_a3c.errors import UserError
from arm_a3c.sim.client import pybullet as pb

CONTACT_DEPTH_M = 0.001  # two shapes count as in contact when they overlap by more than this (links that pass
# through each other)
TOUCH_DEPTH_M = 1e-5  # ... and this where PyBullet keeps them apart (an overlap beyond rounding), or at home
CONTACT_SAMPLES = 200  # random configurations sampled for the pairs that always touch
ALWAYS_TOUCHING = 0.95  # a pair touching in at least this share of the samples always touches: not counted


@dataclass(frozen=True)
class ContactPairs:
    """What a robot's contacts are checked for (`find_contact_pairs`); links by PyBullet index, -1 the base."""

    checked: tuple[tuple[int, int], ...]  # link pairs whose contact is a self-contact
    disabled: dict[tuple[int, int], str]  # link pairs not checked, with why: adjacent, touching at home, always
    # touching, or the settings file
    floor_links: tuple[int, ...]  # moving links whose contact with the floor is a floor contact
    enabled_by_settings: tuple[tuple[int, int], ...] = ()  # checked pairs sampling left out, the settings file not


def _touching(body_a: int, link_a: int, body_b: int, link_b: int, client: int, depth: float = CONTACT_DEPTH_M) -> bool:
    """The two links overlap by more than `depth` (m)."""
    points = pb.getClosestPoints(body_a, body_b, 0.0, linkIndexA=link_a, linkIndexB=link_b, physicsClientId=client)
    return any(point[8] < -depth for point in points)


def _settings_pairs(robot, links: list[int], adjacent) -> None:
    """Refuse a settings file's pair that cannot be simulated (`UserError`, one line naming the file)."""
    for key, pairs in (("self_collision_disable", robot.sidecar_disable), ("self_collision_enable", robot.sidecar_enable)):
        for a, b in pairs:
            names = f"[\"{robot.link_name(a)}\", \"{robot.link_name(b)}\"]"
            shapeless = [link for link in (a, b) if link not in links]
            if a == b or shapeless:
                why = "names one link twice" if a == b else f"'{robot.link_name(shapeless[0])}' has no collision shape"
                raise UserError(f"{robot.spec.settings_file}: {key} {names}: {why}; name two links that have "
                                f"<collision> in {robot.spec.urdf_path.name}")
            if key == "self_collision_enable" and adjacent((a, b)):
                raise UserError(f"{robot.spec.settings_file}: {key} {names}: a joint joins them, and PyBullet never "
                                f"collides a link with its parent; delete the pair")
    both = set(robot.sidecar_disable) & set(robot.sidecar_enable)
    if both:
        a, b = sorted(both)[0]
        raise UserError(f"{robot.spec.settings_file}: the pair [\"{robot.link_name(a)}\", \"{robot.link_name(b)}\"] is "
                        f"in both self_collision_disable and self_collision_enable; keep it in one")


def find_contact_pairs(robot, floor: int) -> ContactPairs:
    """The pairs to check on `robot` (a `sim.robot.Robot`) and its `floor` body. Moves the arm; leaves it at
    home."""
    client, body = robot.client, robot.body
    links = [link for link in range(-1, len(robot.link_names))
             if pb.getCollisionShapeData(body, link, physicsClientId=client)]
    parent = {link: robot.parent_link(link) for link in links}

    def adjacent(pair: tuple[int, int]) -> bool:
        return robot.parent_link(pair[1]) == pair[0] or robot.parent_link(pair[0]) == pair[1]

    _settings_pairs(robot, links, adjacent)
    pairs = [(a, b) for i, a in enumerate(links) for b in links[i + 1:]]
    disabled = {pair: "adjacent" for pair in pairs if parent[pair[1]] == pair[0] or parent[pair[0]] == pair[1]}
    robot.reset(robot.home)
    pb.performCollisionDetection(physicsClientId=client)
    for pair in pairs:  # any overlap: PyBullet would push them apart at the start of every episode
        if pair not in disabled and _touching(body, pair[0], body, pair[1], client, TOUCH_DEPTH_M):
            disabled[pair] = "touching at home"
    floor_links = tuple(link for link in robot.moving_links
                        if not _touching(body, link, floor, -1, client, TOUCH_DEPTH_M))
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
    for pair in robot.sidecar_disable:
        disabled.setdefault(pair, "settings file")
    enabled = tuple(pair for pair in robot.sidecar_enable if disabled.pop(pair, None) is not None)
    return ContactPairs(tuple(pair for pair in pairs if pair not in disabled), disabled, floor_links, enabled)


def simulate_pairs(robot, pairs: ContactPairs) -> None:
    """Have PyBullet simulate the contacts of the pairs checked and no other: the pairs left out exert no force (a
    link and its parent never do, `robot.SELF_COLLISION_FLAGS`)."""
    for a, b in pairs.disabled:
        pb.setCollisionFilterPair(robot.body, robot.body, a, b, 0, physicsClientId=robot.client)


class SimulatedContacts:
    """The contacts of an arm whose self-collision PyBullet simulates (`simulate_pairs`), from the contact points
    its last collision detection found (each physics step's, or `performCollisionDetection`'s): two calls, where
    measuring each pair was one call a pair."""

    def __init__(self, robot, floor: int, pairs: ContactPairs):
        self.client, self.body, self.floor = robot.client, robot.body, floor
        self.checked, self.floor_links = frozenset(pairs.checked), frozenset(pairs.floor_links)

    def now(self) -> tuple[list[float] | None, list[float] | None]:
        """(where the arm touches itself, where it touches the floor): a point (3,) m on the arm, or None."""
        self_point = floor_point = None
        for point in pb.getContactPoints(self.body, self.body, physicsClientId=self.client):
            if point[8] < -TOUCH_DEPTH_M and (min(point[3], point[4]), max(point[3], point[4])) in self.checked:
                self_point = list(point[5])
                break
        for point in pb.getContactPoints(self.body, self.floor, physicsClientId=self.client):
            if point[8] < -TOUCH_DEPTH_M and point[3] in self.floor_links:
                floor_point = list(point[5])
                break
        return self_point, floor_point

    def free(self) -> bool:
        """Whether the arm, as it is now (teleported, say), touches neither itself nor the floor."""
        pb.performCollisionDetection(physicsClientId=self.client)
        return self.now() == (None, None)


def contacts_now(robot, floor: int, pairs: ContactPairs) -> tuple[bool, bool]:
    """(a self-contact, a floor contact) in the arm's present state, for an arm whose links pass through each
    other (after a simulation step: PyBullet's collision data is that step's)."""
    client, body = robot.client, robot.body
    self_contact = any(_touching(body, a, body, b, client) for a, b in pairs.checked)
    floor_contact = any(_touching(body, link, floor, -1, client, 0.0) for link in pairs.floor_links)
    return self_contact, floor_contact
