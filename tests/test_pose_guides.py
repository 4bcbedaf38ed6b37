"""The 2D pose pass's pure parts: occlusion, guide drawing and the OpenPose files."""

from __future__ import annotations

import json

import numpy as np

from bailando_blender import occlusion, pose_files, pose_guides, pose_keypoints, skeleton


def rest_body(frames: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rotations = np.tile(np.eye(3), (frames, 24, 1, 1))
    return skeleton.forward_kinematics(rotations, np.zeros((frames, 3)))


def test_a_point_behind_the_torso_is_hidden_and_in_front_is_not() -> None:
    positions, frames = rest_body()
    centres, radii = occlusion.body_spheres(positions, frames)
    chest = positions[0, 6]  # spine2
    points = chest + np.array([[[0, 0, -0.3], [0, 0, 0.3], [0.6, 0, -0.3]]])
    eye = np.array([0.0, 1.0, 4.0])  # in front of the body (+Z)
    hidden = occlusion.hidden(points, centres, radii, eye, np.array([0.0, 0.0, -1.0]))
    assert hidden.tolist() == [[True, False, False]]
    # The same from behind, and with an orthographic camera looking along +Z.
    behind = occlusion.hidden(points, centres, radii, np.array([0.0, 1.0, -4.0]), np.array([0.0, 0.0, 1.0]))
    assert behind.tolist() == [[False, True, False]]
    ortho = occlusion.hidden(points, centres, radii, None, np.array([0.0, 0.0, -1.0]))
    assert ortho.tolist() == [[True, False, False]]


def test_the_far_ear_and_the_far_wrist_hide_but_points_facing_the_camera_show() -> None:
    positions, frames = rest_body()
    points = pose_keypoints.whole_body_keypoints(positions, frames)
    centres, radii = occlusion.body_spheres(positions, frames)
    names = list(pose_keypoints.BODY_18)
    side_view = occlusion.hidden(points, centres, radii, np.array([5.0, 0.3, 0.0]), np.array([-1.0, 0.0, 0.0]))[0]
    # Seen from the body's left (+X): the right ear, knee and wrist are behind the head, the left leg, the body.
    assert side_view[names.index("right_ear")] and not side_view[names.index("left_ear")]
    assert side_view[names.index("right_knee")] and not side_view[names.index("left_knee")]
    assert side_view[names.index("right_wrist")]
    front_view = occlusion.hidden(points, centres, radii, np.array([0.0, 0.3, 5.0]), np.array([0.0, 0.0, -1.0]))[0]
    for name in ("nose", "left_eye", "right_eye", "left_wrist", "right_wrist", "left_knee", "right_ankle"):
        assert not front_view[names.index(name)], name


def test_guides_draw_limbs_in_openpose_colours_and_skip_unseen_points() -> None:
    keypoints = np.zeros((pose_keypoints.NUM_KEYPOINTS, 3))
    names = list(pose_keypoints.BODY_18)
    neck, shoulder = names.index("neck"), names.index("right_shoulder")
    keypoints[neck] = (100.0, 100.0, 1.0)
    keypoints[shoulder] = (60.0, 100.0, 0.5)  # hidden by the body: still drawn
    keypoints[names.index("nose")] = (100.0, 60.0, 0.0)  # outside the frame: not drawn
    image = pose_guides.draw_pose(keypoints, 200, 160)
    assert image.shape == (160, 200, 3) and image.dtype == np.uint8
    # The neck-right shoulder limb is OpenPose's first: red at 60 %; the neck dot full orange-red.
    np.testing.assert_array_equal(image[100, 80], np.round(np.array([255, 0, 0]) * 0.6).astype(np.uint8))
    np.testing.assert_array_equal(image[100, 100], pose_guides.BODY_COLOURS[neck])
    assert not image[75, 100].any()  # no neck-nose limb
    assert not image[20:40].any()  # nothing far from the drawn limb


def test_openpose_json_has_the_layout_readers_expect(tmp_path) -> None:
    frames = 3
    keypoints = np.random.default_rng(0).uniform(0, 100, (frames, pose_keypoints.NUM_KEYPOINTS, 3))
    boxes, cameras = np.tile([1.0, 2.0, 3.0, 4.0], (frames, 1)), np.tile(np.eye(4), (frames, 1, 1))
    pose_files.write_keypoint_files(
        tmp_path, "song", keypoints, keypoints, np.arange(frames, dtype=float), 30.0, 512, 896, "Camera", boxes, cameras
    )
    files = sorted((tmp_path / "json").iterdir())
    assert [f.name for f in files] == [f"song_{i:012d}_keypoints.json" for i in range(frames)]
    person = json.loads(files[1].read_text())["people"][0]
    assert len(person["pose_keypoints_2d"]) == 18 * 3 and len(person["hand_right_keypoints_2d"]) == 21 * 3
    assert person["pose_keypoints_2d"][:3] == np.round(keypoints[1, 0], 2).tolist()
    assert person["hand_left_keypoints_2d"][:3] == np.round(keypoints[1, 24], 2).tolist()
    stored = np.load(tmp_path / "keypoints.npz")
    assert stored["keypoints"].shape == keypoints.shape and int(stored["height"]) == 896
    assert list(stored["names"][:2]) == ["nose", "neck"] and len(stored["names"]) == pose_keypoints.NUM_KEYPOINTS
    assert stored["body_boxes"].shape == (frames, 4) and stored["camera_matrices"].shape == (frames, 4, 4)


def test_mesh_keypoints_end_each_finger_on_its_tip_vertex_and_keep_the_wrist() -> None:
    positions, frames = rest_body()
    points = pose_keypoints.whole_body_keypoints(positions, frames)
    vertices = np.random.default_rng(0).normal(0.0, 1.0, (1, len(pose_keypoints.mesh_vertex_ids()), 3))
    placed = pose_keypoints.mesh_keypoints(points, vertices)
    first = 18 + 6
    hands = len(pose_keypoints.SMPL_VERTEX_KEYPOINTS)
    for hand in range(2):
        start = first + hand * pose_keypoints.HAND_POINTS
        np.testing.assert_array_equal(placed[0, start], points[0, start])  # the wrist is the skeleton's
        for finger in range(5):
            tip = start + 4 * (finger + 1)
            np.testing.assert_allclose(placed[0, tip], vertices[0, hands + 5 * hand + finger])
    nose = pose_keypoints.BODY_18.index("nose")
    np.testing.assert_array_equal(placed[0, nose], vertices[0, 0])
