"""Retargeting an SMPL dance onto other armatures (pure numpy): directions, root path, feet."""

from __future__ import annotations

import numpy as np
import pytest

from bailando_blender import retarget as rt
from bailando_blender.rig_layout import TAIL_JOINT, rest_layout
from bailando_blender.skeleton import (
    JOINT_NAMES,
    PARENTS,
    REST_PELVIS_HEIGHT,
    SMPL_TO_BLENDER,
    axis_angle_to_matrix,
    forward_kinematics,
)

LEFT_ARM = (13, 16, 18, 20, 22)  # left collar, shoulder, elbow, wrist, hand
RIGHT_ARM = (14, 17, 19, 21, 23)


def bone_matrix(head: np.ndarray, tail: np.ndarray, roll: float) -> np.ndarray:
    """A rest matrix with Y along the bone, turned by ``roll`` about it."""
    turn = rt.rotation_between(np.array([0.0, 1.0, 0.0]), tail - head)
    c, s = np.cos(roll), np.sin(roll)
    matrix = np.eye(4)
    matrix[:3, :3] = turn @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    matrix[:3, 3] = head
    return matrix


def smpl_like_rig(a_pose: bool, unit: float, legs: float, seed: int = 0) -> tuple[rt.Rig, dict[int, int]]:
    """Our dancer's skeleton renamed and reordered, arms down 45 degrees (A-pose) if asked, in
    other units and proportions, with random bone rolls; returns it and its bone map."""
    layout = rest_layout()
    heads, tails = layout.heads.copy(), layout.tails.copy()
    if a_pose:
        for side, chain in ((1.0, LEFT_ARM), (-1.0, RIGHT_ARM)):
            pivot = heads[chain[1]].copy()
            turn = axis_angle_to_matrix(np.array([0.0, side * np.pi / 4, 0.0]))
            for joint in chain[1:]:
                heads[joint] = pivot + turn @ (heads[joint] - pivot)
                tails[joint] = pivot + turn @ (tails[joint] - pivot)
    hips = heads[0].copy()
    for joint in (1, 2, 4, 5, 7, 8, 10, 11):
        heads[joint] = hips + (heads[joint] - hips) * [1.0, 1.0, legs]
        tails[joint] = hips + (tails[joint] - hips) * [1.0, 1.0, legs]
    lift = heads[[7, 8], 2].min() - rest_layout().heads[[7, 8], 2].min()
    heads[:, 2] -= lift
    tails[:, 2] -= lift
    rng = np.random.default_rng(seed)
    order = [0, *rng.permutation(np.arange(1, 24))]
    order = sorted(order, key=lambda joint: depth(joint))  # parents before children
    names = [f"bone_{JOINT_NAMES[j]}" for j in order]
    parents = [order.index(PARENTS[j]) if PARENTS[j] >= 0 else -1 for j in order]
    rest = np.stack([bone_matrix(heads[j] * unit, tails[j] * unit, rng.uniform(-np.pi, np.pi)) for j in order])
    return rt.Rig(names, parents, rest), {j: order.index(j) for j in range(24)}


def depth(joint: int) -> int:
    return 0 if PARENTS[joint] < 0 else 1 + depth(PARENTS[joint])


def random_dance(frames: int = 20, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rotations = axis_angle_to_matrix(rng.normal(0.0, 0.3, (frames, 24, 3)))
    translation = np.cumsum(rng.normal(0.0, 0.02, (frames, 3)), axis=0) + np.array([0.0, REST_PELVIS_HEIGHT, 0.0])
    return rotations, translation


def posed_heads(rig: rt.Rig, dance: rt.RetargetedDance) -> np.ndarray:
    return rt._chain_matrices(rig, dance.rotations, dance.hips, dance.hips_location)[..., :3, 3]


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cosine = np.sum(a * b, axis=-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


@pytest.mark.parametrize(("a_pose", "unit", "legs"), [(False, 1.0, 1.0), (True, 100.0, 1.15), (True, 1.0, 0.9)])
def test_every_mapped_bone_points_where_the_source_does(a_pose: bool, unit: float, legs: float) -> None:
    rig, bone_map = smpl_like_rig(a_pose, unit, legs)
    rotations, translation = random_dance()
    dance = rt.retarget(rotations, translation, rig, bone_map)
    heads = posed_heads(rig, dance)
    source, _ = forward_kinematics(rotations, translation)
    source = source @ SMPL_TO_BLENDER.T
    for joint, child in TAIL_JOINT.items():
        target_direction = heads[:, bone_map[child]] - heads[:, bone_map[joint]]
        source_direction = source[:, child] - source[:, joint]
        assert angle_deg(target_direction, source_direction).max() < 2.0, JOINT_NAMES[joint]


def test_the_root_path_is_the_sources_scaled_by_hip_height_and_the_feet_stay_down() -> None:
    rig, bone_map = smpl_like_rig(True, 100.0, 1.15)
    rotations, translation = random_dance(40)
    dance = rt.retarget(rotations, translation, rig, bone_map)
    heads = posed_heads(rig, dance)
    source, _ = forward_kinematics(rotations, translation)
    source = source @ SMPL_TO_BLENDER.T
    ratio, floor = rt.scale_and_floor(rig, bone_map, rest_layout().heads)
    assert ratio == pytest.approx(100.0 * 1.15, rel=0.02)  # longer legs: a higher hip above the ankles
    moved = heads[:, bone_map[0], :2] - heads[0, bone_map[0], :2]
    np.testing.assert_allclose(moved, ratio * (source[:, 0, :2] - source[0, 0, :2]), atol=1e-6 * ratio)
    feet = [bone_map[j] for j in rt.FOOT_JOINTS]
    target_low = heads[:, feet, 2].min(axis=1) - floor
    source_low = source[:, list(rt.FOOT_JOINTS), 2].min(axis=1)
    np.testing.assert_allclose(target_low, ratio * source_low, atol=1e-6 * ratio)


def test_smpls_rest_pose_lifts_an_a_posed_target_into_the_t_pose() -> None:
    rig, bone_map = smpl_like_rig(True, 1.0, 1.0)
    rest_dance = rt.retarget(
        np.tile(np.eye(3), (1, 24, 1, 1)), np.array([[0.0, REST_PELVIS_HEIGHT, 0.0]]), rig, bone_map
    )
    heads = posed_heads(rig, rest_dance)
    upper_arm = heads[0, bone_map[18]] - heads[0, bone_map[16]]  # left shoulder -> elbow
    smpl_rest = rest_layout().heads
    assert angle_deg(upper_arm, smpl_rest[18] - smpl_rest[16]) < 1e-4  # the A-posed arm lifted to SMPL's T-pose


def test_a_bone_the_map_skips_turns_with_its_parent_and_the_chain_still_lands() -> None:
    rig, bone_map = smpl_like_rig(False, 1.0, 1.0)
    spine2 = bone_map.pop(6)  # spine2 unmapped: between spine1 and spine3
    rotations, translation = random_dance(5)
    dance = rt.retarget(rotations, translation, rig, bone_map)
    np.testing.assert_allclose(np.abs(dance.rotations[:, spine2, 0]), 1.0)  # its rest pose
    heads = posed_heads(rig, dance)
    source, _ = forward_kinematics(rotations, translation)
    source = source @ SMPL_TO_BLENDER.T
    neck = heads[:, bone_map[12]] - heads[:, bone_map[9]]
    assert angle_deg(neck, source[:, 12] - source[:, 9]).max() < 2.0


# Blender's frame (Z up, facing -Y) -> an armature space: glTF's Y-up facing +Z (what Blender's
# glTF and FBX importers keep inside the armature, turning the object instead), a rig facing +Y,
# and one lying along X.
ARMATURE_SPACES = {
    "y-up, facing +z": np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]),
    "z-up, facing +y": np.array([[-1.0, 0, 0], [0, -1, 0], [0, 0, 1]]),
    "x-up, facing -y": np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]]),
}


def turned(rig: rt.Rig, turn: np.ndarray, tails_guessed: bool = False) -> rt.Rig:
    """``rig`` in another armature space; with ``tails_guessed``, every bone's axes replaced by
    an importer's guess (a random rotation: joints have no tails in glTF)."""
    change = np.eye(4)
    change[:3, :3] = turn
    rest = change @ rig.rest
    if tails_guessed:
        rng = np.random.default_rng(7)
        for bone in range(len(rest)):
            rest[bone, :3, :3] = axis_angle_to_matrix(rng.normal(0.0, 1.5, 3))
    return rt.Rig(rig.names, rig.parents, rest)


@pytest.mark.parametrize("space", sorted(ARMATURE_SPACES))
def test_a_rig_in_another_armature_space_gets_the_same_channels(space: str) -> None:
    rig, bone_map = smpl_like_rig(True, 100.0, 1.1)
    other = turned(rig, ARMATURE_SPACES[space])
    np.testing.assert_array_equal(rt.armature_turn(other, bone_map), ARMATURE_SPACES[space])
    rotations, translation = random_dance()
    here, there = (
        rt.retarget(rotations, translation, rig, bone_map),
        rt.retarget(rotations, translation, other, bone_map),
    )
    np.testing.assert_allclose(np.abs(np.sum(here.rotations * there.rotations, axis=-1)), 1.0, atol=1e-9)
    np.testing.assert_allclose(there.hips_location, here.hips_location, atol=1e-6)
    assert rt.limb_angles(there, other, bone_map, rotations, translation).max() < 2.0


def test_bones_whose_axes_an_importer_guessed_still_point_where_the_source_does() -> None:
    rig, bone_map = smpl_like_rig(False, 1.0, 1.0)
    rig = rt.Rig([*rig.names, "head_end"], [*rig.parents, bone_map[15]], np.concatenate([rig.rest, rig.rest[:1]]))
    rig.rest[-1, :3, 3] = rig.rest[bone_map[15], :3, 3] + [0.0, 0.0, 0.2]  # the head's end bone: the crown
    other = turned(rig, ARMATURE_SPACES["y-up, facing +z"], tails_guessed=True)
    rotations, translation = random_dance()
    dance = rt.retarget(rotations, translation, other, bone_map)
    assert rt.limb_angles(dance, other, bone_map, rotations, translation).max() < 2.0
    heads = posed_heads(other, dance) @ ARMATURE_SPACES["y-up, facing +z"]  # back in Blender's frame
    _, global_rotations = forward_kinematics(rotations, translation)
    head_turn = SMPL_TO_BLENDER @ global_rotations[:, 15] @ SMPL_TO_BLENDER.T
    crown = heads[:, -1] - heads[:, bone_map[15]]
    assert angle_deg(crown, head_turn @ [0.0, 0.0, 1.0]).max() < 2.0  # the head turns as SMPL's, up at rest


def test_the_limb_check_catches_a_wrong_bone_map() -> None:
    rig, bone_map = smpl_like_rig(True, 1.0, 1.0)
    rotations, translation = random_dance()
    good = rt.limb_angles(rt.retarget(rotations, translation, rig, bone_map), rig, bone_map, rotations, translation)
    wrong = dict(bone_map)
    for left, right in zip(LEFT_ARM[:4], RIGHT_ARM[:4], strict=True):  # the arms swapped
        wrong[left], wrong[right] = bone_map[right], bone_map[left]
    wrong[1], wrong[4] = bone_map[4], bone_map[1]  # a hip and its knee swapped
    bad = rt.limb_angles(rt.retarget(rotations, translation, rig, wrong), rig, wrong, rotations, translation)
    assert good.mean() < 1.0 and bad.mean() > rt.POOR_RETARGET_DEG


def test_rotation_between_takes_each_direction_onto_its_target_in_batches() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    a[0], b[0] = [0.0, 1.0, 0.0], [0.0, 2.0, 0.0]  # the same direction: no turn
    a[1], b[1] = [1.0, 0.0, 0.0], [-3.0, 0.0, 0.0]  # opposite: a half turn
    turns = rt.rotation_between(a, b)
    unit_b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    np.testing.assert_allclose(
        (turns @ (a / np.linalg.norm(a, axis=-1, keepdims=True))[..., None])[..., 0], unit_b, atol=1e-12
    )
    np.testing.assert_allclose(turns @ np.swapaxes(turns, 1, 2), np.broadcast_to(np.eye(3), turns.shape), atol=1e-12)
    np.testing.assert_array_equal(turns[0], np.eye(3))
    np.testing.assert_allclose(np.linalg.det(turns), 1.0, atol=1e-12)
    np.testing.assert_array_equal(rt.rotation_between(a[5], b[5]), turns[5])  # one pair as in a batch
