"""The SMPL dancer's rest layout in Blender's frame: bones, and a capsule body (pure numpy).

Blender bones need a tail as well as a head; SMPL has joints only. Each bone's head is its
SMPL joint and its tail the joint that continues the limb (``TAIL_JOINT``); the five leaf
joints (toes, head, hands) get a short tail along their limb. The body is one capsule per
segment, skinned rigidly to the bone that moves that segment (the segment's parent joint),
so the dance can be seen without the licensed SMPL mesh.

Everything is in Blender's frame (Z up, the body faces -Y, metres) with the feet on z = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .skeleton import NUM_JOINTS, PARENTS, REST_PELVIS_HEIGHT, points_to_blender, rest_positions

# Which joint each bone points at: the next joint along the limb or the spine.
TAIL_JOINT: dict[int, int] = {
    0: 3, 1: 4, 2: 5, 3: 6, 4: 7, 5: 8, 6: 9, 7: 10, 8: 11, 9: 12, 12: 15,
    13: 16, 14: 17, 16: 18, 17: 19, 18: 20, 19: 21, 20: 22, 21: 23,
}  # fmt: skip

# Leaf bones (no joint to point at): direction in Blender's frame, or None to continue the
# parent's direction; and length, metres (toes ~ a toe's length, head ~ to the crown of
# the neutral SMPL head, hands ~ to the middle of the fingers).
LEAF_TAILS: dict[int, tuple[tuple[float, float, float] | None, float]] = {
    10: ((0.0, -1.0, 0.0), 0.08),
    11: ((0.0, -1.0, 0.0), 0.08),
    15: ((0.0, 0.0, 1.0), 0.2),
    22: (None, 0.1),
    23: (None, 0.1),
}

# Capsule radius of the body segment each bone moves, metres: a slim adult, chosen by eye
# against the neutral SMPL mesh.
SEGMENT_RADIUS: tuple[float, ...] = (
    0.085,  # pelvis: pelvis -> hips, pelvis -> spine1
    0.07, 0.07,  # hips: thighs
    0.095,  # spine1 -> spine2 (belly)
    0.05, 0.05,  # knees: shins
    0.1,  # spine2 -> spine3 (chest)
    0.035, 0.035,  # ankles: feet
    0.06,  # spine3 -> neck, spine3 -> collars
    0.03, 0.03,  # toes
    0.045,  # neck -> head
    0.045, 0.045,  # collars -> shoulders
    0.095,  # head (a sphere-ish capsule towards the crown)
    0.042, 0.042,  # upper arms
    0.035, 0.035,  # forearms
    0.03, 0.03,  # wrists -> hands
    0.032, 0.032,  # hands -> fingertips
)  # fmt: skip
CAPSULE_SIDES = 12  # vertices around each capsule
CAPSULE_CAP_RINGS = 3  # rings in each hemispherical end cap


@dataclass(frozen=True)
class RigLayout:
    """heads, tails: (24, 3) bone ends, metres, Blender's frame, feet on z = 0."""

    heads: np.ndarray
    tails: np.ndarray


def rest_layout() -> RigLayout:
    heads = points_to_blender(rest_positions() + np.array([0.0, REST_PELVIS_HEIGHT, 0.0]))
    tails = np.empty_like(heads)
    for joint in range(NUM_JOINTS):
        if joint in TAIL_JOINT:
            tails[joint] = heads[TAIL_JOINT[joint]]
            continue
        direction, length = LEAF_TAILS[joint]
        if direction is None:
            along = heads[joint] - heads[PARENTS[joint]]
            unit = along / np.linalg.norm(along)
        else:
            unit = np.asarray(direction)
        tails[joint] = heads[joint] + unit * length
    return RigLayout(heads=heads, tails=tails)


def capsule(start: np.ndarray, end: np.ndarray, radius: float) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """A closed capsule around the segment start -> end: (V, 3) vertices and polygon index tuples."""
    axis = end - start
    length = float(np.linalg.norm(axis))
    z = axis / length
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    # Rings from the bottom pole to the top pole: (height along the axis, ring radius). Each
    # cap runs from just off its pole to its equator.
    cap = np.linspace(0.0, np.pi / 2, CAPSULE_CAP_RINGS + 1)[1:]
    bottom = [(-radius * np.cos(a), radius * np.sin(a)) for a in cap]
    top = [(length + radius * np.cos(a), radius * np.sin(a)) for a in cap[::-1]]
    rings = bottom + top
    around = np.linspace(0.0, 2 * np.pi, CAPSULE_SIDES, endpoint=False)
    circle = np.cos(around)[:, None] * x + np.sin(around)[:, None] * y
    vertices = [start - z * radius]
    for height, ring_radius in rings:
        vertices.extend(start + z * height + circle * ring_radius)
    vertices.append(start + z * (length + radius))
    faces: list[tuple[int, ...]] = []
    n = CAPSULE_SIDES
    top_pole = 1 + len(rings) * n
    for i in range(n):
        faces.append((0, 1 + (i + 1) % n, 1 + i))
        for ring in range(len(rings) - 1):
            a, b = 1 + ring * n, 1 + (ring + 1) * n
            faces.append((a + i, a + (i + 1) % n, b + (i + 1) % n, b + i))
        last = 1 + (len(rings) - 1) * n
        faces.append((last + i, last + (i + 1) % n, top_pole))
    return np.asarray(vertices), faces


@dataclass(frozen=True)
class BodyMesh:
    """vertices (V, 3) metres; faces: index tuples; vertex_bones (V,) the joint each vertex follows."""

    vertices: np.ndarray
    faces: list[tuple[int, ...]]
    vertex_bones: np.ndarray


def capsule_body(layout: RigLayout) -> BodyMesh:
    """One capsule per body segment, each following the joint that moves it."""
    segments = [(PARENTS[joint], layout.heads[PARENTS[joint]], layout.heads[joint]) for joint in range(1, NUM_JOINTS)]
    segments += [(joint, layout.heads[joint], layout.tails[joint]) for joint in LEAF_TAILS]
    vertices, faces, bones = [], [], []
    offset = 0
    for bone, start, end in segments:
        points, polygons = capsule(start, end, SEGMENT_RADIUS[bone])
        vertices.append(points)
        faces.extend(tuple(index + offset for index in polygon) for polygon in polygons)
        bones.append(np.full(len(points), bone))
        offset += len(points)
    return BodyMesh(vertices=np.concatenate(vertices), faces=faces, vertex_bones=np.concatenate(bones))
