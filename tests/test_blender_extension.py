"""The extension in real Blender (the bpy module): operator, keys, poses, errors, batch CLI, install.

The backend runs as its own process, as in Blender: $BAILANDO_BACKEND_PYTHON names its
Python (this interpreter by default), so the same tests run under another bpy version
whose environment has no torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from bailando_blender import backend_manager, generation  # noqa: E402
from bailando_blender.skeleton import (  # noqa: E402
    JOINT_NAMES,
    NUM_JOINTS,
    axis_angle_to_quaternion,
    forward_kinematics,
    points_to_blender,
    quaternion_to_matrix,
)
from bailando_blender.sound_strips import strip_frames  # noqa: E402

from .conftest import REPO, write_song  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("extension_with_backend")]
SONG_SECONDS = 4.0


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_song(tmp_path_factory.mktemp("blender") / "clicks.wav", duration_s=SONG_SECONDS, bpm=120.0)


@pytest.fixture
def scene() -> bpy.types.Scene:
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


def trim(strip: bpy.types.Strip, start_frames: int, end_frames: int) -> None:
    """Trim frames off both ends of a strip (5.3 names the offsets after the handles)."""
    if hasattr(strip, "left_handle_offset"):
        strip.left_handle_offset, strip.right_handle_offset = start_frames, end_frames
    else:
        strip.frame_offset_start, strip.frame_offset_end = start_frames, end_frames


def add_strip(scene: bpy.types.Scene, path: Path, frame_start: int, fps: int) -> bpy.types.Strip:
    scene.render.fps, scene.render.fps_base = fps, 1.0
    scene.sequence_editor_create()
    strip = scene.sequence_editor.strips.new_sound("song", str(path), 1, frame_start)
    scene.sequence_editor.active_strip = strip
    return strip


def fcurves(rig: bpy.types.Object) -> list[bpy.types.FCurve]:
    animation = rig.animation_data
    return list(animation.action.layers[0].strips[0].channelbag(animation.action_slot).fcurves)


def key_frames(fcurve: bpy.types.FCurve) -> np.ndarray:
    coordinates = np.empty(len(fcurve.keyframe_points) * 2, dtype=np.float32)
    fcurve.keyframe_points.foreach_get("co", coordinates)
    return coordinates[0::2]


def snapshot(scene: bpy.types.Scene) -> tuple:
    strips = [strip.name for strip in scene.sequence_editor.strips] if scene.sequence_editor else []
    return (
        sorted(bpy.data.objects.keys()),
        sorted(bpy.data.actions.keys()),
        len(scene.timeline_markers),
        strips,
        scene.frame_start,
        scene.frame_end,
    )


def dancer() -> bpy.types.Object:
    (rig,) = [obj for obj in bpy.data.objects if obj.type == "ARMATURE"]
    return rig


def world_joint_positions(rig: bpy.types.Object, scene: bpy.types.Scene, frame: int) -> np.ndarray:
    scene.frame_set(frame)
    bpy.context.view_layer.update()
    world = np.array(rig.matrix_world)
    heads = np.array([[*rig.pose.bones[name].head, 1.0] for name in JOINT_NAMES])
    return (heads @ world.T)[:, :3]


@pytest.mark.parametrize("fps", [24, 30, 60])
def test_keys_cover_exactly_the_strips_frames_at_the_scene_fps(scene: bpy.types.Scene, song: Path, fps: int) -> None:
    strip = add_strip(scene, song, 100, fps)
    assert bpy.ops.bailando.generate_dance() == {"FINISHED"}
    curves = fcurves(dancer())
    assert len(curves) == NUM_JOINTS * 4 + 3
    expected = np.arange(*strip_frames(strip)[1:])
    assert expected[0] == 100 and len(expected) == round(SONG_SECONDS * fps)
    for fcurve in curves:
        np.testing.assert_array_equal(key_frames(fcurve), expected)


def test_a_trimmed_strip_keys_only_what_plays(scene: bpy.types.Scene, song: Path) -> None:
    strip = add_strip(scene, song, 100, 24)
    trim(strip, 30, 12)
    assert strip_frames(strip)[1:] == (130, 184)
    assert bpy.ops.bailando.generate_dance() == {"FINISHED"}
    for fcurve in fcurves(dancer()):
        np.testing.assert_array_equal(key_frames(fcurve), np.arange(130, 184))


def test_a_frame_range_inside_the_strip(scene: bpy.types.Scene, song: Path) -> None:
    add_strip(scene, song, 1, 30)
    settings = scene.bailando
    settings.range_mode, settings.frame_first, settings.frame_last = "CUSTOM", 20, 75
    assert bpy.ops.bailando.generate_dance() == {"FINISHED"}
    for fcurve in fcurves(dancer()):
        np.testing.assert_array_equal(key_frames(fcurve), np.arange(20, 76))


def test_the_pose_at_a_frame_is_the_backends_dance(scene: bpy.types.Scene, song: Path, tmp_path: Path) -> None:
    strip = add_strip(scene, song, 100, 30)
    trim(strip, 15, 0)
    scene.bailando.seed = 7
    plan = generation.plan_job(bpy.context, scene.bailando)
    assert bpy.ops.bailando.generate_dance() == {"FINISHED"}
    rig = dancer()

    backend = backend_manager.current()
    job = backend.submit(plan.span.path, str(tmp_path / "same.npz"), **plan.request())
    result = backend.wait_job(job, timeout=120)
    assert result.error is None
    dance = generation.read_dance(str(tmp_path / "same.npz"), 30.0)
    positions, _ = forward_kinematics(quaternion_to_matrix(dance.joint_rotations), dance.root_translation)
    assert plan.span.first_frame == 115
    for index in (0, 17, len(positions) - 1):
        expected = points_to_blender(positions[index])
        np.testing.assert_allclose(world_joint_positions(rig, scene, 115 + index), expected, atol=1e-4)
    plan.clean_up()


def test_any_bone_roll_and_object_transform_get_the_same_joint_positions(scene: bpy.types.Scene) -> None:
    """apply_dance on an SMPL-named armature with other rolls, a turned and scaled object."""
    from bailando_blender.armature import build_dancer

    rig = build_dancer(scene.collection, "Rolled")
    bpy.context.view_layer.objects.active = rig
    with bpy.context.temp_override(active_object=rig, object=rig):
        bpy.ops.object.mode_set(mode="EDIT")
        for number, bone in enumerate(rig.data.edit_bones):
            bone.roll = 0.4 * number - 2.0
        bpy.ops.object.mode_set(mode="OBJECT")
    rig.location, rig.rotation_euler, rig.scale = (1.0, -2.0, 0.5), (0.0, 0.0, 1.2), (0.01, 0.01, 0.01)

    rng = np.random.default_rng(3)
    frames = 6
    rotations = axis_angle_to_quaternion(rng.normal(0.0, 0.5, (frames, NUM_JOINTS, 3)))
    translation = rng.normal(0.0, 0.3, (frames, 3)) + np.array([0.0, 0.9, 0.0])
    dance = generation.DanceArrays(30.0, rotations, translation, np.array([0.1]), trained=False)
    scratch = generation.tempfile.mkdtemp()
    plan = generation.JobPlan(
        span=generation.AudioSpan("x.wav", 0.0, None, 10, None, 30.0, "song"),
        target=rig.name,
        seed=0,
        temperature=1.0,
        top_k=0,
        beat_markers=False,
        scratch_dir=scratch,
    )
    generation.apply_dance(bpy.context, plan, dance)
    positions, _ = forward_kinematics(quaternion_to_matrix(rotations), translation)
    bpy.context.view_layer.update()
    world = np.array(rig.matrix_world)
    for index in range(frames):
        expected = points_to_blender(positions[index]) @ world[:3, :3].T + world[:3, 3]
        np.testing.assert_allclose(world_joint_positions(rig, scene, 10 + index), expected, atol=1e-5)
    plan.clean_up()


def test_beat_markers_sit_on_the_music_beats(scene: bpy.types.Scene, song: Path) -> None:
    add_strip(scene, song, 50, 30)
    assert bpy.ops.bailando.generate_dance() == {"FINISHED"}
    frames = sorted(marker.frame for marker in scene.timeline_markers)
    # The clicks start 0.25 s in and come every 0.5 s: frames 50 + 7.5, 22.5, ...
    expected = 50 + (0.25 + 0.5 * np.arange(8)) * 30
    assert 6 <= len(frames) <= 8
    assert all(np.min(np.abs(expected - frame)) <= 2 for frame in frames)


def test_a_file_goes_on_the_timeline_with_its_dance(scene: bpy.types.Scene, song: Path) -> None:
    scene.render.fps, scene.frame_start = 25, 40
    settings = scene.bailando
    settings.audio_source, settings.audio_file = "FILE", str(song)
    assert bpy.ops.bailando.generate_dance() == {"FINISHED"}
    (strip,) = scene.sequence_editor.strips
    assert (strip.type, strip_frames(strip)[1]) == ("SOUND", 40)
    for fcurve in fcurves(dancer()):
        np.testing.assert_array_equal(key_frames(fcurve), np.arange(40, 40 + SONG_SECONDS * 25))
    assert scene.frame_end >= 40 + SONG_SECONDS * 25 - 1


def test_a_second_dance_keeps_the_first_action(scene: bpy.types.Scene, song: Path) -> None:
    add_strip(scene, song, 1, 30)
    assert bpy.ops.bailando.generate_dance() == {"FINISHED"}
    rig = dancer()
    first = rig.animation_data.action
    bpy.context.view_layer.objects.active = rig
    scene.bailando.target, scene.bailando.seed = "SELECTED", 1
    assert bpy.ops.bailando.generate_dance() == {"FINISHED"}
    assert rig.animation_data.action != first and first.name in bpy.data.actions and first.use_fake_user
    assert len([obj for obj in bpy.data.objects if obj.type == "ARMATURE"]) == 1


def test_a_missing_sound_file_changes_nothing(scene: bpy.types.Scene, song: Path, tmp_path: Path) -> None:
    copy = tmp_path / "gone.wav"
    copy.write_bytes(song.read_bytes())
    add_strip(scene, copy, 1, 30)
    copy.unlink()
    before = snapshot(scene)
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.bailando.generate_dance()
    assert snapshot(scene) == before
    assert "does not exist" in bpy.context.window_manager.bailando_job.error


def test_a_corrupt_sound_file_changes_nothing(scene: bpy.types.Scene, song: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(song.read_bytes())
    add_strip(scene, broken, 1, 30)
    broken.write_bytes(b"RIFF this is not a wave file at all" * 100)
    before = snapshot(scene)
    with pytest.raises(RuntimeError, match="cannot be decoded"):
        bpy.ops.bailando.generate_dance()
    assert snapshot(scene) == before


def test_a_dead_backend_changes_nothing_and_says_why(
    scene: bpy.types.Scene, song: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'No module named backend' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(backend_manager.BACKEND_PYTHON_ENV, str(fake))
    add_strip(scene, song, 1, 30)
    before = snapshot(scene)
    try:
        with pytest.raises(RuntimeError, match=r"exited \(code 3\): No module named backend"):
            bpy.ops.bailando.generate_dance()
        assert snapshot(scene) == before
        assert backend_manager.describe()[0] == "failed"
    finally:
        backend_manager.shutdown()


def test_an_armature_that_is_no_humanoid_is_refused(scene: bpy.types.Scene, song: Path) -> None:
    add_strip(scene, song, 1, 30)
    data = bpy.data.armatures.new("Other")
    rig = bpy.data.objects.new("Other", data)
    scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    scene.bailando.target = "SELECTED"
    before = snapshot(scene)
    with pytest.raises(RuntimeError, match="only 0 SMPL joints could be mapped") as error:
        bpy.ops.bailando.generate_dance()
    assert "Traceback" not in str(error.value)
    assert snapshot(scene) == before


def test_generate_is_greyed_out_with_a_reason() -> None:
    bpy.ops.wm.read_homefile(use_empty=True)
    settings = bpy.context.scene.bailando
    settings.audio_source, settings.audio_file = "FILE", ""
    assert not bpy.ops.bailando.generate_dance.poll()
    settings.audio_source, settings.target = "STRIP", "SELECTED"
    assert not bpy.ops.bailando.generate_dance.poll()


def run_batch(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # the backend's Python travels in the environment (see the extension fixture)
        [sys.executable, "-m", "bailando_blender.batch", *arguments, "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_batch_cli_writes_a_blend_per_song_and_a_preview(song: Path, tmp_path: Path) -> None:
    songs = tmp_path / "songs"
    songs.mkdir()
    for name in ("a.wav", "b.wav"):
        (songs / name).write_bytes(song.read_bytes())
    result = run_batch(
        str(songs), "--out", str(tmp_path / "out"), "--fps", "24", "--preview", "--preview-seconds", "1",
        "--pose2d", str(tmp_path / "pose2d"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in ("a", "b"):  # a 2D pose pass per song, at its 30 fps over the 4-s song
        assert np.load(tmp_path / "pose2d" / name / "keypoints.npz")["keypoints"].shape[0] == SONG_SECONDS * 30
        assert b"mp4a" in (tmp_path / "pose2d" / name / "pose_guides.mp4").read_bytes()
    for name in ("a", "b"):
        video = (tmp_path / "out" / f"{name}.mp4").read_bytes()
        assert b"avc1" in video and b"mp4a" in video  # H.264 video with an AAC audio track
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "out" / "a.blend"))
    scene = bpy.context.scene
    assert scene.render.fps == 24 and [strip.type for strip in scene.sequence_editor.strips] == ["SOUND"]
    for fcurve in fcurves(dancer()):
        np.testing.assert_array_equal(key_frames(fcurve), np.arange(1, 1 + SONG_SECONDS * 24))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.ogg", "--out", "x.blend"], "missing.ogg: no such file or folder"),
        (["{song}", "{song}", "--out", "x.blend"], "one .blend holds one song"),
        (["{song}", "--out", "x.blend", "--fps", "0"], "--fps must be in"),
        (["{song}", "--out", "x.blend", "--backend-python", "/nonexistent/python"], "does not exist or cannot run"),
    ],
)
def test_batch_cli_refuses_bad_input_in_one_line(song: Path, tmp_path: Path, arguments: list, message: str) -> None:
    arguments = [argument.format(song=song) for argument in arguments]
    arguments = [str(tmp_path / a) if a == "x.blend" else a for a in arguments]
    result = run_batch(*arguments)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.blend").exists()


def test_batch_cli_checks_every_output_before_the_work(song: Path, tmp_path: Path, monkeypatch) -> None:
    """A .blend that is a folder, an unknown suffix, an export or preview that is a folder, a pose
    folder that is a file, a folder under a file, a folder that cannot be written to: one line
    each, exit 2, before the backend starts, and nothing written."""
    from bailando_blender import batch

    (tmp_path / "taken.blend").mkdir()
    (tmp_path / "taken.fbx").mkdir()
    (tmp_path / "clip.mp4").mkdir()
    (tmp_path / "notes.txt").write_text("a file")
    before = sorted(tmp_path.rglob("*"))
    cases = [
        (["--out", "taken.blend"], "taken.blend: is a folder, not a file name"),
        (["--out", "dance.mp4"], "unknown output format '.mp4' (use a .blend, or a folder)"),
        (["--out", "new.blend", "--export", "taken.fbx"], "taken.fbx: is a folder, not a file name"),
        (["--out", "clip.blend", "--preview"], "clip.mp4: is a folder, not a file name"),
        (["--out", "new.blend", "--pose2d", "notes.txt"], "--pose2d"),
        (["--out", "notes.txt/new.blend"], "notes.txt is a file, not a folder"),
    ]
    for arguments, message in cases:
        arguments = [str(tmp_path / a) if not a.startswith("--") else a for a in arguments]
        result = run_batch(str(song), *arguments)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], (arguments, result.stderr)
        assert "Traceback" not in result.stderr
    assert sorted(tmp_path.rglob("*")) == before
    monkeypatch.setattr(batch.os, "access", lambda path, mode: False)  # a read-only folder (root writes anywhere)
    monkeypatch.setattr(batch.backend_manager, "ensure_started", lambda *a, **k: pytest.fail("the backend started"))
    assert batch.main([str(song), "--out", str(tmp_path / "new.blend"), "--quiet"]) == 2
    assert sorted(tmp_path.rglob("*")) == before


def test_the_built_zip_installs_and_enables_in_blender(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "build_extension.py"),
            "build",
            "--ui-only",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (archive,) = tmp_path.glob("bailando_blender-*.zip")
    code = (
        "import bpy, sys\n"
        f"bpy.ops.extensions.package_install_files(filepath={str(archive)!r}, repo='user_default', "
        "enable_on_install=True)\n"
        "assert 'bl_ext.user_default.bailando_blender' in bpy.context.preferences.addons\n"
        "assert hasattr(bpy.types.Scene, 'bailando') and bpy.ops.bailando.generate_dance.idname()\n"
        "assert hasattr(bpy.types, 'VIEW3D_PT_bailando_generate')\n"
        "print('enabled')\n"
    )
    home = tmp_path / "home"
    home.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "HOME": str(home), "BLENDER_USER_RESOURCES": str(home / "blender")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "enabled" in result.stdout, result.stdout + result.stderr


def test_a_users_smpl_model_gives_a_skinned_smpl_body(song: Path, tmp_path: Path) -> None:
    from .conftest import write_synthetic_smpl_model

    (tmp_path / "smpl").mkdir()
    write_synthetic_smpl_model(tmp_path / "smpl")
    out = tmp_path / "dance.blend"
    result = run_batch(str(song), "--out", str(out), "--smpl-model-folder", str(tmp_path / "smpl"))
    assert result.returncode == 0, result.stderr
    bpy.ops.wm.open_mainfile(filepath=str(out))
    scene, rig = bpy.context.scene, dancer()
    (body,) = rig.children
    assert len(body.data.vertices) == 6890 and len(body.vertex_groups) == NUM_JOINTS
    # The synthetic model's first 24 vertices sit on the joints, each skinned to its own:
    # posed, they must land on the posed joints.
    for frame in (1, 40):
        joints = world_joint_positions(rig, scene, frame)
        evaluated = body.evaluated_get(bpy.context.evaluated_depsgraph_get())
        mesh = evaluated.to_mesh()
        world = np.array(body.matrix_world)
        posed = np.array([[*mesh.vertices[index].co, 1.0] for index in range(NUM_JOINTS)]) @ world.T
        evaluated.to_mesh_clear()
        np.testing.assert_allclose(posed[:, :3], joints, atol=1e-4)


def test_every_icon_the_extension_names_exists_in_this_blender() -> None:
    import re

    from bailando_blender import panels

    known = {item.identifier for item in bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items}
    named = {"BLANK1", *panels.STATE_ICONS.values()}
    for path in (REPO / "bailando_blender").glob("*.py"):
        named |= set(re.findall(r'icon="([A-Z_0-9]+)"', path.read_text()))
    assert named - known == set()


def test_a_cut_off_song_is_danced_and_the_panel_says_so(scene: bpy.types.Scene, song: Path, tmp_path: Path) -> None:
    # Put on the timeline as a strip, Blender shows the file as long as it decodes; chosen as a
    # file, the dance is asked for all its header claims.
    cut = tmp_path / "cut.wav"
    cut.write_bytes(song.read_bytes()[: song.stat().st_size // 2])
    settings = scene.bailando
    settings.audio_source, settings.audio_file = "FILE", str(cut)
    assert bpy.ops.bailando.generate_dance() == {"FINISHED"}
    message = bpy.context.window_manager.bailando_job.message
    assert message.startswith("Keyed on SMPL Dancer; ") and "its header claims (a cut-off file?)" in message
