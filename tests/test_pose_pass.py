"""The 2D pose pass in real Blender (the bpy module): the pose from keys, pixels, occlusion, files, video."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from bailando_blender import armature, keyframes, pose_pass  # noqa: E402
from bailando_blender.pose_channels import bone_rotations, root_location  # noqa: E402
from bailando_blender.pose_keypoints import (  # noqa: E402
    BODY_18,
    FEET,
    NUM_KEYPOINTS,
    SMPL_FINGERTIPS,
    SMPL_MESH_VERTICES,
    SMPL_VERTEX_KEYPOINTS,
)
from bailando_blender.skeleton import (  # noqa: E402
    JOINT_NAMES,
    PARENTS,
    REST_PELVIS_HEIGHT,
    axis_angle_to_quaternion,
    rest_positions,
)

from .conftest import empty_scene, write_song  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("registered_extension")]
FRAMES = 48  # two seconds at the scene's 24 fps


@pytest.fixture
def scene() -> bpy.types.Scene:
    scene = empty_scene(24)
    scene.frame_start, scene.frame_end = 1, FRAMES
    return scene


def synthetic_smpl_body() -> dict[str, np.ndarray]:
    """A stand-in for the user's SMPL mesh (the backend's NPZ keys): SMPL's vertex count, each
    vertex near a joint and skinned to it and its parent."""
    rng = np.random.default_rng(1)
    joints = rest_positions() + np.array([0.0, REST_PELVIS_HEIGHT, 0.0])
    owner = np.arange(SMPL_MESH_VERTICES) % 24
    vertices = joints[owner] + rng.normal(0.0, 0.05, (SMPL_MESH_VERTICES, 3))
    weights = np.zeros((SMPL_MESH_VERTICES, 24))
    weights[np.arange(SMPL_MESH_VERTICES), owner] = 0.7
    weights[np.arange(SMPL_MESH_VERTICES), np.maximum(np.array(PARENTS)[owner], 0)] += 0.3
    faces = np.array([[i, i + 1, i + 2] for i in range(0, SMPL_MESH_VERTICES - 2, 3)])
    return {"body_vertices": vertices, "body_faces": faces, "body_weights": weights, "body_joints": joints}


def keyed_dancer(
    scene: bpy.types.Scene, spread_rad: float = 0.35, body: dict[str, np.ndarray] | None = None
) -> bpy.types.Object:
    """A dancer keyed with random joint rotations and a wandering root, placed, turned and scaled."""
    rng = np.random.default_rng(0)
    rig = armature.build_dancer(scene.collection, body=body)
    rest, heads = armature.rest_rotations(rig)
    joint_rotations = axis_angle_to_quaternion(rng.normal(0.0, spread_rad, (FRAMES, 24, 3)))
    translation = np.cumsum(rng.normal(0.0, 0.01, (FRAMES, 3)), axis=0) + np.array([0.0, 0.95, 0.0])
    channels = keyframes.pose_channels(
        list(JOINT_NAMES),
        bone_rotations(joint_rotations, rest),
        JOINT_NAMES[0],
        root_location(translation, rest[0], heads[0]),
    )
    action, slot = keyframes.build_action("test dance", channels, 1)
    keyframes.assign_action(rig, action, slot)
    rig.location = (1.0, -2.0, 0.5)
    rig.rotation_euler = (0.0, 0.0, 1.2)
    rig.scale = (0.5, 0.5, 0.5)
    bpy.context.view_layer.update()
    return rig


def evaluated_heads(scene: bpy.types.Scene, rig: bpy.types.Object, frame: float) -> np.ndarray:
    scene.frame_set(math.floor(frame), subframe=frame - math.floor(frame))
    return np.array([list(rig.matrix_world @ rig.pose.bones[name].head) for name in JOINT_NAMES])


def test_the_pose_from_keys_matches_blenders_evaluated_pose(scene: bpy.types.Scene) -> None:
    rig = keyed_dancer(scene)
    frames = np.array([1.0, 7.5, 20.25, 48.0])
    motion = pose_pass.armature_motion(rig, frames)
    for index, frame in enumerate(frames):
        np.testing.assert_allclose(motion.positions[index], evaluated_heads(scene, rig, frame), atol=1e-5)
    assert motion.scale == pytest.approx(0.5)


def test_with_the_users_smpl_mesh_face_feet_and_fingertips_are_its_skinned_vertices(scene: bpy.types.Scene) -> None:
    rig = keyed_dancer(scene, body=synthetic_smpl_body())
    body = pose_pass.smpl_body(rig)
    assert body is not None
    frames = np.array([1.0, 30.0])
    points = pose_pass.armature_motion(rig, frames).keypoints()
    names = [*BODY_18, *FEET]
    checks = {names.index(name): vertex for name, vertex in SMPL_VERTEX_KEYPOINTS.items()}
    checks[len(names) + 12] = SMPL_FINGERTIPS["left"][2]  # left middle fingertip
    checks[len(names) + 21 + 4] = SMPL_FINGERTIPS["right"][0]  # right thumb tip
    for sample, frame in enumerate(frames):
        scene.frame_set(int(frame))
        evaluated = body.evaluated_get(bpy.context.evaluated_depsgraph_get())
        mesh = evaluated.to_mesh()
        world = np.array(body.matrix_world)
        for keypoint, vertex in checks.items():
            expected = (world @ np.array([*mesh.vertices[vertex].co, 1.0]))[:3]
            np.testing.assert_allclose(points[sample, keypoint], expected, atol=1e-5)
        evaluated.to_mesh_clear()


def test_keypoints_land_on_blenders_own_projection_and_the_back_of_the_body_is_hidden(
    scene: bpy.types.Scene, tmp_path: Path
) -> None:
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    rig = keyed_dancer(scene, spread_rad=0.15)  # the head turns a little: its face stays away from the camera
    camera = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    # Behind the dancer (it faces its armature's -Y, turned 1.2 rad), looking at it.
    back = np.array(rig.matrix_world)[:3, 1]
    back = back / np.linalg.norm(back)
    target = np.array(rig.matrix_world.translation) + np.array([0.0, 0.0, 0.45])
    camera.location = list(target + 4.0 * back)
    camera.rotation_euler = (math.pi / 2, 0.0, math.atan2(back[0], -back[1]))
    bpy.context.view_layer.update()
    bpy.context.view_layer.objects.active = rig
    # Blender's projection below uses the scene's render size: make it the pass's.
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 512, 896, 100
    properties = scene.bailando_pose2d
    properties.folder, properties.camera_mode, properties.video = str(tmp_path / "pass"), "SCENE", False
    assert bpy.ops.bailando.write_pose_pass() == {"FINISHED"}

    stored = np.load(tmp_path / "pass" / "keypoints.npz")
    keypoints, points = stored["keypoints"], stored["points_3d"]
    assert keypoints.shape == (round(FRAMES / 24 * 30), NUM_KEYPOINTS, 3)
    width, height = int(stored["width"]), int(stored["height"])
    for sample in (0, 17):
        for joint in (0, 5, 30):
            ndc = world_to_camera_view(scene, camera, Vector(points[sample, joint].tolist()))
            expected = (ndc.x * width, (1.0 - ndc.y) * height)
            assert keypoints[sample, joint, :2] == pytest.approx(expected, abs=0.05)
    nose = BODY_18.index("nose")
    assert (keypoints[:, nose, 2] == pose_pass.HIDDEN_CONFIDENCE).mean() > 0.9  # the face is behind the head
    assert (keypoints[:, BODY_18.index("neck"), 2] == 1.0).all()
    first = json.loads(next(iter(sorted((tmp_path / "pass" / "json").iterdir()))).read_text())
    assert first["people"][0]["pose_keypoints_2d"][:2] == pytest.approx(keypoints[0, 0, :2], abs=0.01)


def test_a_point_outside_the_frame_gets_confidence_zero(scene: bpy.types.Scene, tmp_path: Path) -> None:
    rig = keyed_dancer(scene)
    camera = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(camera)
    camera.location = list(np.array(rig.matrix_world.translation) + np.array([0.0, -3.0, 0.45]))
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    camera.data.lens = 300.0  # so narrow that the hands leave the frame
    settings = pose_pass.PosePassSettings(str(tmp_path), 1, FRAMES, camera="Cam", video=False)
    pose_pass.run_pose_pass(scene, rig, settings)
    keypoints = np.load(tmp_path / "keypoints.npz")["keypoints"]
    outside = (keypoints[..., 0] < 0) | (keypoints[..., 0] > 512) | (keypoints[..., 1] < 0) | (keypoints[..., 1] > 896)
    assert outside.any() and (keypoints[..., 2][outside] == 0.0).all()
    assert (keypoints[..., 2][~outside] > 0).all()


def test_the_guide_video_has_every_frame_and_the_song(scene: bpy.types.Scene, tmp_path: Path) -> None:
    song = write_song(tmp_path / "clicks.wav", duration_s=3.0)
    scene.sequence_editor_create()
    scene.sequence_editor.strips.new_sound("song", str(song), 1, 1)
    rig = keyed_dancer(scene)
    settings = pose_pass.PosePassSettings(str(tmp_path / "pass"), 1, FRAMES, camera="AUTO", width=128, height=224)
    pose_pass.run_pose_pass(scene, rig, settings)
    video = tmp_path / "pass" / pose_pass.VIDEO_NAME
    assert b"avc1" in video.read_bytes() and b"mp4a" in video.read_bytes()
    clip = bpy.data.movieclips.load(str(video))
    assert clip.frame_duration == round(FRAMES / 24 * 30) and tuple(clip.size) == (128, 224)
    assert bpy.data.objects[pose_pass.AUTO_CAMERA_NAME].type == "CAMERA"
    assert sorted(p.name for p in (tmp_path / "pass").iterdir()) == ["json", "keypoints.npz", pose_pass.VIDEO_NAME]


@pytest.mark.parametrize("problem", ["not an armature", "folder is a file", "odd size"])
def test_bad_settings_fail_in_one_line_and_write_nothing(scene: bpy.types.Scene, tmp_path: Path, problem: str) -> None:
    rig = keyed_dancer(scene)
    folder = tmp_path / "pass"
    settings = pose_pass.PosePassSettings(str(folder), 1, FRAMES, camera="AUTO", video=False)
    if problem == "not an armature":
        rig = bpy.data.objects[rig.name + armature.BODY_SUFFIX]
        expected = "is not an armature"
    elif problem == "folder is a file":
        folder.write_text("")
        expected = "is not a folder"
    else:
        settings.width = 511
        expected = "must be even"
    with pytest.raises(pose_pass.PosePassError, match=expected) as error:
        pose_pass.run_pose_pass(scene, rig, settings)
    assert "\n" not in str(error.value)
    assert not folder.is_dir() and pose_pass.AUTO_CAMERA_NAME not in bpy.data.objects


def test_a_pass_stopped_half_way_leaves_no_files(scene: bpy.types.Scene, tmp_path: Path) -> None:
    rig = keyed_dancer(scene)
    folder = tmp_path / "pass"
    steps = pose_pass.write_pose_pass(scene, rig, pose_pass.PosePassSettings(str(folder), 1, FRAMES, camera="AUTO"))
    for _ in range(5):  # into the guide frames
        next(steps)
    assert any(folder.iterdir())  # the staging folder
    steps.close()  # what Esc does in the panel
    assert list(folder.iterdir()) == [] and "Pose Guide" not in bpy.data.images


def test_the_following_camera_is_where_the_guides_say_and_frames_the_body(
    scene: bpy.types.Scene, tmp_path: Path
) -> None:
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    rig = keyed_dancer(scene)
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 512, 896, 100
    settings = pose_pass.PosePassSettings(str(tmp_path / "pass"), 1, FRAMES, camera="AUTO", video=False)
    summary = pose_pass.run_pose_pass(scene, rig, settings)
    stored = np.load(tmp_path / "pass" / "keypoints.npz")
    keypoints, points, matrices = stored["keypoints"], stored["points_3d"], stored["camera_matrices"]
    camera = bpy.data.objects[pose_pass.AUTO_CAMERA_NAME]
    assert matrices.shape == (len(keypoints), 4, 4) and np.ptp(matrices[:, :3, 3], axis=0).max() > 1e-3  # it moves
    for sample in (0, 13, len(keypoints) - 1):  # fractional scene frames: the pass runs at 30 fps, the scene 24
        frame = float(stored["scene_frames"][sample])
        scene.frame_set(math.floor(frame), subframe=frame - math.floor(frame))
        np.testing.assert_allclose(np.array(camera.matrix_world), matrices[sample], atol=1e-5)
        for joint in (0, 5, 30):
            ndc = world_to_camera_view(scene, camera, Vector(points[sample, joint].tolist()))
            assert keypoints[sample, joint, :2] == pytest.approx((ndc.x * 512, (1.0 - ndc.y) * 896), abs=0.05)
    assert np.allclose(matrices[:, 2, 1], 1.0) and np.allclose(matrices[:, 2, 0], 0.0)  # level: its up is Z
    boxes = stored["body_boxes"]
    fill = np.median((boxes[:, 3] - boxes[:, 1]) / 896)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 512).all() and (boxes[:, 3] <= 896).all()
    assert "of the frame's height" in summary

    settings = pose_pass.PosePassSettings(str(tmp_path / "wide"), 1, FRAMES, camera="WIDE", video=False)
    pose_pass.run_pose_pass(scene, rig, settings)
    wide = np.load(tmp_path / "wide" / "keypoints.npz")
    assert wide["camera_matrices"].shape == (4, 4)
    # This dancer barely travels and its random arms spread wide, so the portrait frame's width
    # rules (real dances: 69-72 % in the README): still the body is shown larger than by the
    # still camera that frames the whole dance.
    wide_boxes = wide["body_boxes"]
    assert 1.2 * np.median((wide_boxes[:, 3] - wide_boxes[:, 1]) / 896) < fill <= 0.77
    assert camera.animation_data is None or camera.animation_data.action is None  # still again
