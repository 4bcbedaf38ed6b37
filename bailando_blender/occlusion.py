"""Which keypoints the body hides from the camera (pure numpy), for the 2D pose pass.

The body is the dancer's capsule body (``rig_layout.SEGMENT_RADIUS``), each capsule
approximated by spheres along its segment. A keypoint is hidden when the line of sight from
the camera to it enters a sphere more than ``MARGIN_M`` before reaching it. A sphere around
the keypoint itself (the wrist sits inside the end of the forearm, the ears inside the
head) counts shrunk to the keypoint's distance minus the margin, so a body part hides its
own far side but never the point on its surface that faces the camera.
"""

from __future__ import annotations

import numpy as np

from .rig_layout import LEAF_TAILS, SEGMENT_RADIUS
from .skeleton import BLENDER_TO_SMPL, NUM_JOINTS, PARENTS, REST_OFFSETS

MARGIN_M = 0.02  # metres (before object scale): a point this close behind a surface still shows
SPHERES_PER_SEGMENT = 5  # along each capsule, ends included: ~10 cm apart on the longest bones
FRAMES_PER_CHUNK = 256  # bounds the (frames, keypoints, spheres) work arrays to ~50 MB


def _leaf_direction(joint: int) -> np.ndarray:
    """``rig_layout.LEAF_TAILS``'s direction for a leaf bone, in the joint's own frame (SMPL axes;
    the rest pose's frames are SMPL's): fixed ones turned from Blender's frame, "along the
    limb" as the joint's rest offset."""
    direction = LEAF_TAILS[joint][0]
    along = REST_OFFSETS[joint] if direction is None else BLENDER_TO_SMPL @ np.array(direction)
    return along / np.linalg.norm(along)


# Leaf segments past the last joint (toes, head, hands): joint -> (direction, length in
# metres), the capsules the dancer's bones carry.
LEAF_SEGMENTS = {joint: (_leaf_direction(joint), length) for joint, (_, length) in LEAF_TAILS.items()}


def body_spheres(positions: np.ndarray, frames: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(T, 24, 3) joint positions and (T, 24, 3, 3) joint frames -> (T, S, 3) sphere centres and (S,) radii.

    ``scale``: the armature object's scale, which the radii follow.
    """
    starts, ends, radii = [], [], []
    for joint in range(1, NUM_JOINTS):
        parent = PARENTS[joint]
        starts.append(positions[:, parent])
        ends.append(positions[:, joint])
        radii.append(SEGMENT_RADIUS[parent])
    for joint, (direction, length) in LEAF_SEGMENTS.items():
        starts.append(positions[:, joint])
        ends.append(positions[:, joint] + frames[:, joint] @ (direction * length))
        radii.append(SEGMENT_RADIUS[joint])
    start, end = np.stack(starts, axis=1), np.stack(ends, axis=1)  # (T, segments, 3)
    along = np.linspace(0.0, 1.0, SPHERES_PER_SEGMENT)
    centres = start[:, :, None] + along[None, None, :, None] * (end - start)[:, :, None]
    return centres.reshape(len(positions), -1, 3), np.repeat(np.array(radii) * scale, SPHERES_PER_SEGMENT)


def hidden(
    points: np.ndarray,
    centres: np.ndarray,
    radii: np.ndarray,
    eye: np.ndarray | None,
    view_direction: np.ndarray,
    scale: float = 1.0,
) -> np.ndarray:
    """(T, K, 3) points -> (T, K) True where the body hides them.

    eye: (3,) the perspective camera's position, or (T, 3) a moving one's, or None for an
    orthographic camera looking along ``view_direction`` (3,) or (T, 3) (unit, world).
    """
    result = np.zeros(points.shape[:2], dtype=bool)
    margin = MARGIN_M * scale
    for first in range(0, len(points), FRAMES_PER_CHUNK):
        chunk = slice(first, first + FRAMES_PER_CHUNK)
        # Relative to each frame's first sphere: small numbers, so the expanded squares stay exact.
        anchor = centres[chunk, :1]
        target, centre = points[chunk] - anchor, centres[chunk] - anchor  # (t, K, 3), (t, S, 3)
        if eye is None:
            view = view_direction if view_direction.ndim == 1 else view_direction[chunk][:, None, :]
            ray = np.broadcast_to(view, target.shape)
            reach = np.full(target.shape[:2], np.inf)
            centre_along = np.sum(centre * view, axis=-1)[:, None, :]  # (t, 1, S)
        else:
            eye_here = eye if eye.ndim == 1 else eye[chunk][:, None, :]
            ray = target - (eye_here - anchor)
            reach = np.linalg.norm(ray, axis=-1)  # (t, K): eye to point
            ray = ray / reach[..., None]
            centre_along = ray @ centre.transpose(0, 2, 1)  # (t, K, S)
        # e = centre - point: |e|^2 and e . ray, by expanding the products (two matrix products).
        offset_squared = (
            np.sum(centre**2, axis=-1)[:, None, :]
            - 2.0 * target @ centre.transpose(0, 2, 1)
            + np.sum(target**2, axis=-1)[..., None]
        )
        along = centre_along - np.sum(target * ray, axis=-1)[..., None]  # < 0: between the eye and the point
        miss_squared = np.maximum(offset_squared - along**2, 0.0)
        radius = np.minimum(radii, np.sqrt(np.maximum(offset_squared, 0.0)) - margin)
        with np.errstate(invalid="ignore"):
            entry = along - np.sqrt(radius**2 - miss_squared)  # where the ray enters the sphere
        blocks = (radius > 0) & (miss_squared < radius**2) & (entry < -margin) & (entry > -reach[..., None])
        result[chunk] = blocks.any(axis=-1)
    return result
