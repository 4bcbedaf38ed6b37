"""SMPL rotations -> Blender bone channels and the dancer's rest layout (pure numpy, no Blender)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from bailando_blender import pose_channels, rig_layout
from bailando_blender import skeleton as sk


def test_bone_channels_are_the_local_rotation_seen_from_the_bones_rest_frame() -> None:
    rest = Rotation.random(sk.NUM_JOINTS, random_state=0).as_matrix()
    joint_rotations = Rotation.random(5 * sk.NUM_JOINTS, random_state=1).as_quat(scalar_first=True)
    joint_rotations = joint_rotations.reshape(5, sk.NUM_JOINTS, 4)
    channels = pose_channels.bone_rotations(joint_rotations, rest)
    change = sk.SMPL_TO_BLENDER
    expected = rest.swapaxes(-1, -2) @ change @ sk.quaternion_to_matrix(joint_rotations) @ change.T @ rest
    np.testing.assert_allclose(sk.quaternion_to_matrix(channels), expected, atol=1e-12)


def test_channels_stay_continuous_when_the_dance_is() -> None:
    rest = Rotation.random(sk.NUM_JOINTS, random_state=2).as_matrix()
    angles = np.linspace(0, 6 * np.pi, 400)[:, None, None] * np.ones((1, sk.NUM_JOINTS, 1)) * [0.3, 1.0, 0.2]
    joint_rotations = sk.make_quaternions_continuous(sk.axis_angle_to_quaternion(angles))
    channels = pose_channels.bone_rotations(joint_rotations, rest)
    assert (np.sum(channels[1:] * channels[:-1], axis=-1) > 0).all()


def test_root_location_moves_the_pelvis_head_to_the_smpl_root() -> None:
    rest = Rotation.random(1, random_state=3).as_matrix()[0]
    head = np.array([0.1, -0.2, 0.95])
    translation = np.random.default_rng(4).normal(size=(7, 3))
    location = pose_channels.root_location(translation, rest, head)
    np.testing.assert_allclose(head + location @ rest.T, sk.points_to_blender(translation), atol=1e-12)


def test_the_rest_layout_stands_on_the_floor_and_keeps_smpls_offsets() -> None:
    layout = rig_layout.rest_layout()
    assert layout.heads[:, 2].min() == 0.0
    smpl_positions = sk.points_to_smpl(layout.heads)
    for joint, parent in enumerate(sk.PARENTS[1:], start=1):
        np.testing.assert_allclose(smpl_positions[joint] - smpl_positions[parent], sk.REST_OFFSETS[joint], atol=1e-12)
    lengths = np.linalg.norm(layout.tails - layout.heads, axis=1)
    assert (lengths > 0.02).all()


def test_capsules_are_closed_and_each_follows_one_bone() -> None:
    vertices, faces = rig_layout.capsule(np.zeros(3), np.array([0.0, 0.0, 0.5]), 0.1)
    edges: dict[tuple[int, int], int] = {}
    for face in faces:
        for a, b in zip(face, face[1:] + face[:1], strict=True):
            edges[tuple(sorted((a, b)))] = edges.get(tuple(sorted((a, b))), 0) + 1
    assert set(edges.values()) == {2}  # every edge shared by two faces: a closed surface
    assert np.isclose(vertices[:, 2].min(), -0.1) and np.isclose(vertices[:, 2].max(), 0.6)
    body = rig_layout.capsule_body(rig_layout.rest_layout())
    assert len(body.vertex_bones) == len(body.vertices)
    assert set(body.vertex_bones) <= set(range(sk.NUM_JOINTS))
