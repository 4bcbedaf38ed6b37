"""Projection through a Blender camera: against numbers worked by hand, and against Blender's own."""

from __future__ import annotations

import numpy as np
import pytest

from bailando_blender.projection import CameraModel, project


def looking_down_minus_z(**settings: object) -> CameraModel:
    defaults = dict(
        world_to_camera=np.eye(4), orthographic=False, lens_mm=50.0, ortho_scale=6.0, sensor_width=36.0,
        sensor_height=24.0, sensor_fit="AUTO", shift_x=0.0, shift_y=0.0, resolution_x=1920, resolution_y=1080,
    )  # fmt: skip
    defaults.update(settings)
    return CameraModel(**defaults)  # type: ignore[arg-type]


def test_perspective_pixels_worked_by_hand() -> None:
    camera = looking_down_minus_z()
    # 50 mm on a 36 mm sensor spanning 1920 px: f = 1920 * 50 / 36 = 2666.67 px.
    pixels, depth = project(np.array([[0.0, 0.0, -5.0], [1.0, 0.5, -5.0]]), camera)
    np.testing.assert_allclose(pixels[0], [960.0, 540.0])
    np.testing.assert_allclose(pixels[1], [960.0 + 2666.6667 * 0.2, 540.0 - 2666.6667 * 0.1], atol=1e-3)
    np.testing.assert_allclose(depth, [5.0, 5.0])
    # Shift 0.1 moves the view plane by a tenth of its larger side: the image moves 192 px left.
    shifted, _ = project(np.array([0.0, 0.0, -5.0]), looking_down_minus_z(shift_x=0.1))
    np.testing.assert_allclose(shifted, [960.0 - 192.0, 540.0], atol=1e-9)
    behind, _ = project(np.array([0.0, 0.0, 5.0]), camera)
    assert np.isnan(behind).all()


def test_vertical_fit_and_orthographic_worked_by_hand() -> None:
    # Vertical fit: the 24 mm sensor height spans the 1080 px: f = 1080 * 50 / 24 = 2250 px.
    pixels, _ = project(np.array([0.0, 1.0, -10.0]), looking_down_minus_z(sensor_fit="VERTICAL"))
    np.testing.assert_allclose(pixels, [960.0, 540.0 - 225.0], atol=1e-9)
    # Orthographic, scale 6 m across 1920 px: 320 px a metre, whatever the depth.
    pixels, _ = project(np.array([[1.0, -1.0, -3.0], [1.0, -1.0, -30.0]]), looking_down_minus_z(orthographic=True))
    np.testing.assert_allclose(pixels, [[1280.0, 860.0], [1280.0, 860.0]], atol=1e-9)


@pytest.mark.parametrize(
    ("camera_type", "fit", "resolution", "aspect", "shift"),
    [
        ("PERSP", "AUTO", (1920, 1080), (1.0, 1.0), (0.0, 0.0)),
        ("PERSP", "AUTO", (512, 896), (1.0, 1.0), (0.1, -0.05)),
        ("PERSP", "VERTICAL", (896, 512), (2.0, 1.0), (-0.2, 0.1)),
        ("PERSP", "HORIZONTAL", (640, 800), (1.0, 1.5), (0.0, 0.3)),
        ("ORTHO", "AUTO", (896, 512), (1.0, 1.0), (0.15, 0.0)),
        ("ORTHO", "VERTICAL", (400, 700), (1.0, 2.0), (0.0, -0.1)),
    ],
)
def test_pixels_match_blenders_own_projection(camera_type, fit, resolution, aspect, shift) -> None:
    bpy = pytest.importorskip("bpy")
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    from bailando_blender.scene_camera import camera_model

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    data = bpy.data.cameras.new("cam")
    data.type, data.sensor_fit, data.lens, data.ortho_scale = camera_type, fit, 35.0, 4.0
    data.sensor_width, data.sensor_height = 36.0, 20.0
    data.shift_x, data.shift_y = shift
    camera = bpy.data.objects.new("cam", data)
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (1.0, -6.0, 1.5), (1.4, 0.1, 0.3)
    scene.render.resolution_x, scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 50
    scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = aspect
    bpy.context.view_layer.update()
    points = np.random.default_rng(0).uniform([-1.5, -1.0, 0.0], [1.5, 1.0, 2.0], (20, 3))
    model = camera_model(scene, camera)
    pixels, depth = project(points, model)
    for point, pixel, distance in zip(points, pixels, depth, strict=True):
        blender = world_to_camera_view(scene, camera, Vector(point))
        expected = [blender.x * model.resolution_x, (1.0 - blender.y) * model.resolution_y]
        np.testing.assert_allclose(pixel, expected, atol=1e-3)
        assert distance == pytest.approx(blender.z, abs=1e-5)


# --- whole-body keypoints -------------------------------------------------------------


def test_keypoints_of_the_rest_pose_sit_where_a_body_has_them() -> None:
    from bailando_blender import pose_keypoints as kp
    from bailando_blender import skeleton as sk

    rotations = np.tile(np.eye(3), (1, 24, 1, 1))
    positions, global_rotations = sk.forward_kinematics(rotations, np.array([[0.0, sk.REST_PELVIS_HEIGHT, 0.0]]))
    points = kp.whole_body_keypoints(positions, global_rotations)
    assert points.shape == (1, kp.NUM_KEYPOINTS, 3) and kp.NUM_KEYPOINTS == 18 + 6 + 42
    body = {name: points[0, i] for i, name in enumerate(kp.BODY_18)}
    np.testing.assert_allclose(body["left_wrist"], positions[0, sk.JOINT_NAMES.index("left_wrist")])
    assert body["nose"][2] > body["neck"][2] and body["nose"][1] > body["neck"][1]  # in front, above
    assert body["left_eye"][0] > 0 > body["right_eye"][0]  # SMPL's +X is the body's left
    feet = {name: points[0, 18 + i] for i, name in enumerate(kp.FEET)}
    assert feet["left_big_toe"][2] > feet["left_heel"][2] and abs(feet["left_heel"][1]) < 0.05  # on the floor
    hands = points[0, 24:].reshape(2, kp.HAND_POINTS, 3)
    np.testing.assert_allclose(
        hands[:, 0], positions[0, [sk.JOINT_NAMES.index("left_wrist"), sk.JOINT_NAMES.index("right_wrist")]]
    )
    middle_tip = hands[:, 12] - hands[:, 0]
    assert middle_tip[0, 0] > 0.15 and middle_tip[1, 0] < -0.15  # fingers on along each arm
    thumb_tip = hands[:, 4] - hands[:, 0]
    assert thumb_tip[0, 2] > 0.05 and thumb_tip[1, 2] > 0.05  # thumbs forward, palms down


def test_keypoints_turn_with_the_head() -> None:
    from bailando_blender import pose_keypoints as kp
    from bailando_blender import skeleton as sk

    rotations = np.tile(np.eye(3), (2, 24, 1, 1))
    rotations[1, 15] = sk.axis_angle_to_matrix(np.array([0.0, np.pi / 2, 0.0]))  # head turned to its left
    positions, global_rotations = sk.forward_kinematics(rotations, np.zeros((2, 3)))
    points = kp.whole_body_keypoints(positions, global_rotations)
    nose = kp.BODY_18.index("nose")
    head = positions[:, 15]
    assert points[0, nose, 2] - head[0, 2] > 0.1 and points[1, nose, 0] - head[1, 0] > 0.1
