"""Retargeting in real Blender (the bpy module): rigs with other names, rest poses, rolls and scale; Rigify."""

from __future__ import annotations

import math

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from bailando_blender import bone_maps, generation, pose_pass, retarget, rig_mapping, rigify_rig  # noqa: E402
from bailando_blender.rig_layout import TAIL_JOINT, rest_layout  # noqa: E402
from bailando_blender.skeleton import (  # noqa: E402
    JOINT_NAMES,
    REST_PELVIS_HEIGHT,
    SMPL_TO_BLENDER,
    axis_angle_to_quaternion,
    forward_kinematics,
    quaternion_to_matrix,
)

from .conftest import empty_scene  # noqa: E402
from .test_retarget import smpl_like_rig  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("registered_extension")]
FRAMES = 30
FEET = (7, 8, 10, 11)


@pytest.fixture
def scene() -> bpy.types.Scene:
    return empty_scene(30)


def dance(frames: int = FRAMES, seed: int = 3) -> generation.DanceArrays:
    rng = np.random.default_rng(seed)
    times = np.arange(frames)[:, None, None] / 30.0
    axis_angles = 0.5 * np.sin(2 * np.pi * times + rng.uniform(0, 2 * np.pi, (1, 24, 3)))
    translation = np.zeros((frames, 3))
    translation[:, 0] = 0.3 * np.sin(np.arange(frames) / 10)
    translation[:, 1] = REST_PELVIS_HEIGHT - 0.05
    return generation.DanceArrays(30.0, axis_angle_to_quaternion(axis_angles), translation, np.zeros(0), False)


def armature_from(scene, rig, truth: dict[int, int], names: dict[str, str], prefix: str, change=None):
    """An armature object with ``rig``'s bones (rest matrices turned by ``change``, 4 x 4),
    named by ``names`` (SMPL joint -> bone name), left in edit mode; returns (object, edit bones)."""
    from mathutils import Matrix

    change = np.eye(4) if change is None else change
    data = bpy.data.armatures.new("Character")
    obj = bpy.data.objects.new("Character", data)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    joint_of = {bone: joint for joint, bone in truth.items()}
    created = {}
    for bone, parent in enumerate(rig.parents):
        joint = JOINT_NAMES[joint_of[bone]]
        edit = data.edit_bones.new(names.get(joint, f"{prefix}Extra_{joint}"))
        edit.head, edit.tail = (0, 0, 0), (0, 10, 0)
        edit.matrix = Matrix((change @ rig.rest[bone]).tolist())
        edit.length = 8.0
        if parent >= 0:
            edit.parent = created[parent]
        created[bone] = edit
    return obj, created


def mixamo_rig(scene: bpy.types.Scene) -> bpy.types.Object:
    """Our skeleton in centimetres with Mixamo's names, A-posed, random rolls, longer legs, scale 0.01."""
    rig, truth = smpl_like_rig(True, 100.0, 1.1)
    names = {joint: "mixamorig:" + bone for joint, bone in bone_maps.PRESETS["Mixamo"].items()}
    obj, _ = armature_from(scene, rig, truth, names, "mixamorig:")
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.scale = (0.01, 0.01, 0.01)
    obj.location = (2.0, 1.0, 0.0)
    obj.rotation_euler = (0.0, 0.0, 0.7)
    return obj


def key(scene: bpy.types.Scene, rig: bpy.types.Object, arrays: generation.DanceArrays) -> None:
    generation.key_arrays(bpy.context, arrays, rig.name)


def world_heads(scene, rig, frame: int) -> dict[str, np.ndarray]:
    scene.frame_set(frame)
    return {bone.name: np.array(rig.matrix_world @ bone.head) for bone in rig.pose.bones}


def source_positions(arrays: generation.DanceArrays) -> np.ndarray:
    positions, _ = forward_kinematics(quaternion_to_matrix(arrays.joint_rotations), arrays.root_translation)
    return positions @ SMPL_TO_BLENDER.T


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cosine = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def check_directions(scene, rig, arrays, bone_map: dict[str, str]) -> None:
    source = source_positions(arrays)
    bpy.context.view_layer.update()
    turn = np.array(rig.matrix_world.to_3x3().normalized())
    for frame in (1, 11, 23):
        heads = world_heads(scene, rig, frame)
        for joint, child in TAIL_JOINT.items():
            a, b = JOINT_NAMES[joint], JOINT_NAMES[child]
            if a in bone_map and b in bone_map:
                target = heads[bone_map[b]] - heads[bone_map[a]]
                wanted = turn @ (source[frame - 1, child] - source[frame - 1, joint])
                assert angle_deg(target, wanted) < 2.0, (frame, a)


def pose_pass_motions(scene, rig, arrays, frames: np.ndarray):
    """The pose pass's motions of the SMPL dancer and of ``rig`` dancing ``arrays``, after checking that
    ``rig``'s face and foot keypoints sit as the dancer's do, turned and sized as the rig."""
    from bailando_blender import armature
    from bailando_blender.pose_keypoints import BODY_18, FEET

    smpl = armature.build_dancer(scene.collection)
    key(scene, smpl, arrays)
    ours, theirs = pose_pass.armature_motion(smpl, frames), pose_pass.armature_motion(rig, frames)
    points, other = ours.keypoints(), theirs.keypoints()
    turn = np.array(rig.matrix_world.to_3x3().normalized())
    size = theirs.scale / ours.scale  # the character's size against SMPL's, object scale included
    names = [*BODY_18, *FEET]
    for point, joint in (("nose", 15), ("left_ear", 15), ("left_heel", 7), ("right_big_toe", 8)):
        k = names.index(point)
        wanted = size * turn @ (points[:, k] - ours.positions[:, joint]).T
        np.testing.assert_allclose((other[:, k] - theirs.positions[:, joint]).T, wanted, atol=2e-3 * size)
    return ours, theirs


def test_a_mixamo_character_in_a_pose_at_scale_0_01_dances_like_the_source(scene) -> None:
    rig = mixamo_rig(scene)
    arrays = dance()
    previous = bpy.data.actions.new("earlier animation")
    rig.animation_data_create().action = previous
    key(scene, rig, arrays)
    source, bone_map = rig_mapping.guessed_map(rig)
    assert source == "Mixamo"
    check_directions(scene, rig, arrays, bone_map)
    # Root path: the source's, scaled by the hip-height ratio, turned and scaled with the object.
    target = rig_mapping.armature_rig(rig)
    index = {name: number for number, name in enumerate(target.names)}
    ratio, floor = retarget.scale_and_floor(
        target, {JOINT_NAMES.index(j): index[b] for j, b in bone_map.items()}, rest_layout().heads
    )
    world = np.array(rig.matrix_world)
    source = source_positions(arrays)
    start, later = world_heads(scene, rig, 1)[bone_map["pelvis"]], world_heads(scene, rig, 16)[bone_map["pelvis"]]
    moved = world[:3, :3] @ (ratio * (source[15, 0] - source[0, 0]))
    np.testing.assert_allclose((later - start)[:2], moved[:2], atol=1e-4)  # height: set by the feet, below
    # The lowest foot is as high above the floor as the source's, in the character's size.
    floor_z = (world @ [0.0, 0.0, floor, 1.0])[2]
    for frame in range(1, FRAMES + 1, 4):
        heads = world_heads(scene, rig, frame)
        lowest = min(heads[bone_map[JOINT_NAMES[j]]][2] for j in FEET) - floor_z
        wanted = 0.01 * ratio * source[frame - 1, list(FEET), 2].min()
        assert abs(lowest - wanted) < 0.02, frame
    assert previous.use_fake_user and rig.animation_data.action is not previous


def test_rigifys_human_meta_rig_dances(scene) -> None:
    bpy.ops.preferences.addon_enable(module="rigify")
    bpy.ops.object.armature_human_metarig_add()
    rig = bpy.context.active_object
    arrays = dance()
    key(scene, rig, arrays)
    source, bone_map = rig_mapping.guessed_map(rig)
    assert source == "Rigify meta-rig" and len(bone_map) == 22
    check_directions(scene, rig, arrays, bone_map)


def generated_rigify_rig(scene: bpy.types.Scene) -> tuple[bpy.types.Object, bpy.types.Object]:
    """(the rig Rigify generates from its human meta-rig, that meta-rig)."""
    bpy.ops.preferences.addon_enable(module="rigify")
    bpy.ops.object.armature_human_metarig_add()
    meta = bpy.context.active_object
    bpy.ops.pose.rigify_generate()
    return next(obj for obj in scene.objects if obj.type == "ARMATURE" and obj is not meta), meta


def test_rigifys_generated_rig_dances_through_its_fk_controls(scene, tmp_path) -> None:
    """The deform bones follow the keyed FK controls (through Rigify's constraints) as the source."""
    rig, meta = generated_rigify_rig(scene)
    rig.location, rig.rotation_euler, rig.scale = (1.0, 2.0, 0.0), (0.0, 0.0, 0.5), (0.5, 0.5, 0.5)
    previous = bpy.data.actions.new("earlier animation")
    rig.animation_data_create().action = previous
    objects, armatures = set(bpy.data.objects.keys()), set(bpy.data.armatures.keys())
    arrays = dance()
    key(scene, rig, arrays)
    assert rigify_rig.is_generated_rig(rig) and not rigify_rig.is_generated_rig(meta)
    deform = {joint: "DEF-" + bone for joint, bone in bone_maps.PRESETS["Rigify meta-rig"].items()}
    check_directions(scene, rig, arrays, deform)
    assert set(bpy.data.objects.keys()) == objects and set(bpy.data.armatures.keys()) == armatures  # no helper left
    assert previous.use_fake_user and rig.animation_data.action is not previous
    keyed = {data_path for data_path, _ in pose_pass._fcurves(rig)}
    assert 'pose.bones["upper_arm_fk.L"].rotation_quaternion' in keyed and 'pose.bones["torso"].location' in keyed
    assert 'pose.bones["thigh_parent.R"]["IK_FK"]' in keyed and rig.pose.bones["thigh_parent.R"]["IK_FK"] == 1.0
    assert not any(path.startswith('pose.bones["DEF-') for path in keyed)
    assert not any(constraint.type == "COPY_TRANSFORMS" for constraint in rig.pose.bones["torso"].constraints)
    # The 2D pose pass reads its deform bones through Blender's evaluation: as on the SMPL dancer.
    _, theirs = pose_pass_motions(scene, rig, arrays, np.array([5.0, 17.5]))
    np.testing.assert_allclose(theirs.positions[0, 18], world_heads(scene, rig, 5)["DEF-forearm.L"], atol=1e-5)
    folder = tmp_path / "pass"
    settings = pose_pass.PosePassSettings(str(folder), 1, FRAMES, camera="AUTO", video=False)
    assert pose_pass.run_pose_pass(scene, rig, settings)
    assert len(list((folder / "json").glob("*.json"))) == FRAMES


def test_a_rigify_bake_runs_a_slice_at_a_time_and_a_cancel_leaves_the_rig_as_it_was(scene, monkeypatch) -> None:
    """The modal operator bakes a slice a timer tick; ESC closes the steps mid-bake."""
    rig, _ = generated_rigify_rig(scene)
    previous = bpy.data.actions.new("earlier animation")
    rig.animation_data_create().action = previous
    rig.pose.bones["thigh_parent.R"]["IK_FK"] = 0.0
    rig.pose.bones["upper_arm_fk.L"].rotation_mode = "XYZ"
    rig.pose.bones["upper_arm_fk.L"].rotation_euler = (0.3, 0.0, 0.1)
    scene.frame_set(7)
    objects, actions = set(bpy.data.objects.keys()), set(bpy.data.actions.keys())
    monkeypatch.setattr(rigify_rig, "BAKE_SLICE_S", 0.0)  # a slice a frame
    arrays = dance()
    plan = generation.arrays_plan(arrays, rig.name)

    steps = generation.apply_dance_steps(bpy.context, plan, arrays)
    fractions = [next(steps) for _ in range(3)]
    assert fractions == pytest.approx([1 / FRAMES, 2 / FRAMES, 3 / FRAMES])
    assert rigify_rig.HELPER_NAME in bpy.data.objects  # mid-bake
    steps.close()
    assert set(bpy.data.objects.keys()) == objects and set(bpy.data.actions.keys()) == actions
    assert rig.animation_data.action is previous and rig.pose.bones["thigh_parent.R"]["IK_FK"] == 0.0
    arm = rig.pose.bones["upper_arm_fk.L"]
    assert arm.rotation_mode == "XYZ" and tuple(arm.rotation_euler) == pytest.approx((0.3, 0.0, 0.1))
    assert not any(constraint.type == "COPY_TRANSFORMS" for constraint in arm.constraints)
    assert scene.frame_current == 7

    steps = generation.apply_dance_steps(bpy.context, plan, arrays)
    fractions = []
    while True:
        try:
            fractions.append(next(steps))
        except StopIteration as done:
            assert done.value is rig
            break
    assert len(fractions) == FRAMES - 1 and fractions == sorted(fractions)
    scene.frame_set(2)
    assert rig.animation_data.action is not previous and rig.pose.bones["thigh_parent.R"]["IK_FK"] == 1.0
    assert rigify_rig.HELPER_NAME not in bpy.data.objects


def test_the_generate_operator_bakes_a_rigify_rig_across_timer_ticks(scene, monkeypatch, tmp_path) -> None:
    """The modal operator's tick (``step``) with a finished backend job: one bake slice a tick,
    events other than the timer and ESC held back meanwhile, ESC mid-bake keys nothing."""
    from types import SimpleNamespace

    from bailando_blender.operators import BAILANDO_OT_generate_dance as Generate

    rig, _ = generated_rigify_rig(scene)
    actions = set(bpy.data.actions.keys())
    monkeypatch.setattr(rigify_rig, "BAKE_SLICE_S", 0.0)
    arrays = dance()
    out = tmp_path / "dance.npz"
    np.savez(out, fps=30.0, joint_rotations=arrays.joint_rotations, root_translation=arrays.root_translation,
             beat_times=arrays.beat_times, trained=False)  # fmt: skip
    job = SimpleNamespace(done=True, cancelled=False, error=None, result={"out": str(out), "frames": FRAMES},
                          fraction=1.0, stage="done")  # fmt: skip
    backend = SimpleNamespace(state="ready", failure=None, jobs={"job": job}, poll=lambda: None, alive=lambda: True)
    backend.check_heard = lambda job: None  # a backend that just answered

    def operator() -> SimpleNamespace:
        fake = SimpleNamespace(backend=backend, job="job", plan=generation.arrays_plan(arrays, rig.name), keying=None)
        fake.stop = lambda context, message, failed, cancelled=False, warning=False: (message, failed, cancelled)
        return fake

    state = SimpleNamespace(cancel_requested=False, progress=0.0, stage="")
    fake = operator()
    assert Generate.step(fake, bpy.context, state) == {"RUNNING_MODAL"} and state.progress == pytest.approx(1 / FRAMES)
    assert "Rigify" in state.stage
    click = SimpleNamespace(type="LEFTMOUSE", value="PRESS")
    assert Generate.modal(fake, bpy.context, click) == {"RUNNING_MODAL"}  # not passed to the half-changed scene
    state.cancel_requested = True
    assert Generate.step(fake, bpy.context, state) == ("Cancelled", False, True)
    assert set(bpy.data.actions.keys()) == actions and rigify_rig.HELPER_NAME not in bpy.data.objects

    state.cancel_requested = False
    fake = operator()
    ticks = 0
    while (outcome := Generate.step(fake, bpy.context, state)) == {"RUNNING_MODAL"}:
        ticks += 1
    assert outcome[0].startswith(f"Keyed {FRAMES} frames on {rig.name}; limbs within") and ticks == FRAMES - 1
    assert outcome[1:] == (False, False)
    assert set(bpy.data.actions.keys()) - actions == {"Dance arrays seed 0"}


def test_a_rig_that_is_no_humanoid_fails_in_one_line_and_keys_nothing(scene) -> None:
    data = bpy.data.armatures.new("Snake")
    obj = bpy.data.objects.new("Snake", data)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    parent = None
    for index in range(6):
        bone = data.edit_bones.new(f"seg{index}")
        bone.head, bone.tail, bone.parent = (0, index, 0), (0, index + 1, 0), parent
        parent = bone
    bpy.ops.object.mode_set(mode="OBJECT")
    actions = set(bpy.data.actions.keys())
    with pytest.raises(generation.DanceError, match="SMPL joints could be mapped") as error:
        key(scene, obj, dance())
    assert "\n" not in str(error.value) and set(bpy.data.actions.keys()) == actions


def test_the_bone_map_is_guessed_edited_saved_and_loaded_from_the_panel(scene, tmp_path) -> None:
    rig = mixamo_rig(scene)
    assert bpy.ops.bailando.guess_bone_map() == {"FINISHED"}
    rows = {row.joint: row for row in rig.bailando_bone_map}
    assert len(rows) == 24 and rows["left_elbow"].bone == "mixamorig:LeftForeArm" and rows["left_hand"].bone == ""
    rows["left_elbow"].bone = ""  # the user unmaps the left forearm: it keeps its rest pose
    key(scene, rig, dance())
    assert rig_mapping.stored_map(rig).get("left_elbow") is None
    curves = {
        fcurve.data_path
        for fcurve in rig.animation_data.action.layers[0].strips[0].channelbag(rig.animation_data.action_slot).fcurves
    }
    assert 'pose.bones["mixamorig:LeftArm"].rotation_quaternion' in curves
    assert 'pose.bones["mixamorig:LeftForeArm"].rotation_quaternion' not in curves
    path = tmp_path / "map.json"
    assert bpy.ops.bailando.save_bone_map(filepath=str(path)) == {"FINISHED"}
    rig.bailando_bone_map.clear()
    assert bpy.ops.bailando.load_bone_map(filepath=str(path)) == {"FINISHED"}
    assert rig_mapping.stored_map(rig) == bone_maps.load_map(path) and "left_elbow" not in bone_maps.load_map(path)
    path.write_text('{"map": {"pelvis": "NoSuchBone"}}')
    with pytest.raises(RuntimeError, match="has no bone 'NoSuchBone'") as error:
        bpy.ops.bailando.load_bone_map(filepath=str(path))
    assert "Traceback" not in str(error.value)


@pytest.mark.parametrize("suffix", [".fbx", ".glb", ".bvh"])
def test_each_export_reimports_with_every_frame_and_the_same_pose(scene, tmp_path, suffix: str) -> None:
    from bailando_blender import export

    rig = mixamo_rig(scene)
    key(scene, rig, dance())
    scene.frame_start, scene.frame_end = 1, FRAMES
    sampled = 12
    before = world_heads(scene, rig, sampled)
    inverse = np.linalg.inv(np.array(rig.matrix_world))
    path = tmp_path / f"dance{suffix}"
    export.export_dance(scene, rig, path)
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.scene.render.fps = 30
    if suffix == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path))
    elif suffix == ".glb":
        bpy.ops.import_scene.gltf(filepath=str(path))
    else:  # BVH holds the armature's own space, Z up
        bpy.ops.import_anim.bvh(filepath=str(path), axis_forward="Y", axis_up="Z")
    (imported,) = [obj for obj in bpy.context.scene.objects if obj.type == "ARMATURE"]
    first, last = imported.animation_data.action.frame_range
    assert round(last - first) + 1 == FRAMES
    after = world_heads(bpy.context.scene, imported, sampled + round(first) - 1)
    if suffix == ".bvh":  # compare in each armature's own space
        back = np.linalg.inv(np.array(imported.matrix_world))
        before = {name: (inverse @ [*head, 1.0])[:3] for name, head in before.items()}
        after = {name: (back @ [*head, 1.0])[:3] for name, head in after.items()}
    _, bone_map = bone_maps.best_preset(list(before))
    for joint, child in TAIL_JOINT.items():
        a, b = bone_map.get(JOINT_NAMES[joint]), bone_map.get(JOINT_NAMES[child])
        if a and b:
            assert angle_deg(after[b] - after[a], before[b] - before[a]) < 1.0, (suffix, a)


def test_the_batch_retargets_a_character_and_exports_fbx_glb_and_bvh_in_one_call(tmp_path) -> None:
    import subprocess
    import sys

    from .conftest import REPO, write_song

    character = tmp_path / "character.glb"
    bpy.ops.wm.read_homefile(use_empty=True)
    rig = mixamo_rig(bpy.context.scene)
    bpy.context.view_layer.objects.active = rig
    rig.select_set(True)
    bpy.ops.export_scene.gltf(filepath=str(character), export_format="GLB", use_selection=True)
    song = write_song(tmp_path / "song.wav", duration_s=2.0)
    outputs = [tmp_path / "out" / f"dance{suffix}" for suffix in (".fbx", ".glb", ".bvh")]
    result = subprocess.run(
        [sys.executable, "-m", "bailando_blender.batch", str(song), "--out", str(tmp_path / "out" / "dance.blend"),
         "--character", str(character), "--export", *map(str, outputs), "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "BAILANDO_BACKEND_PYTHON": __import__("os").environ.get(
            "BAILANDO_BACKEND_PYTHON", sys.executable)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert all(path.stat().st_size > 0 for path in outputs)
    assert "limbs within" in result.stdout and result.stderr == ""  # the retarget's check, no warning
    bad = subprocess.run(
        [sys.executable, "-m", "bailando_blender.batch", str(song), "--export", str(tmp_path / "x.obj")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2 and "--export" in bad.stderr and "Traceback" not in bad.stderr


def test_the_export_operator_writes_the_file_and_refuses_an_unknown_format(scene, tmp_path) -> None:
    rig = mixamo_rig(scene)
    key(scene, rig, dance())
    bpy.context.view_layer.objects.active = rig
    assert bpy.ops.bailando.export_dance(filepath=str(tmp_path / "d.bvh")) == {"FINISHED"}
    assert (tmp_path / "d.bvh").read_text().startswith("HIERARCHY")
    with pytest.raises(RuntimeError, match="unknown export format") as error:
        bpy.ops.bailando.export_dance(filepath=str(tmp_path / "d.obj"))
    assert "Traceback" not in str(error.value) and not (tmp_path / "d.obj").exists()


def test_the_pose_pass_reads_a_retargeted_character_like_the_smpl_dancer(scene) -> None:
    from bailando_blender.pose_keypoints import BODY_18, FEET

    arrays = dance()
    rig = mixamo_rig(scene)
    key(scene, rig, arrays)
    ours, theirs = pose_pass_motions(scene, rig, arrays, np.array([5.0, 17.0]))
    points, other = ours.keypoints(), theirs.keypoints()
    turn = np.array(rig.matrix_world.to_3x3().normalized())
    size = theirs.scale / ours.scale
    names = [*BODY_18, *FEET]
    hand = len(names) + 12  # left middle fingertip, from the left wrist
    wanted = size * turn @ (points[:, hand] - ours.positions[:, 20]).T
    np.testing.assert_allclose((other[:, hand] - theirs.positions[:, 20]).T, wanted, atol=2e-3 * size)


# --- characters as users get them: through Blender's own importers ----------------------------

# Blender's frame -> glTF's Y-up, facing +Z: what Mixamo's glTF and FBX files keep inside the
# armature (the importers turn the object by 90 degrees about X instead).
Y_UP_INSIDE = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
CHECK_LIMBS = ((1, 4), (2, 5), (4, 7), (5, 8), (16, 18), (17, 19), (18, 20), (19, 21), (0, 12))


def named_character(scene, preset: str, y_up_inside: bool, prefix: str = "") -> bpy.types.Object:
    """Our skeleton in centimetres, A-posed, random rolls, with ``preset``'s bone names and an
    end bone on the head (as exporters write them), at scale 0.01, facing -Y in the world."""
    from mathutils import Vector

    rig, truth = smpl_like_rig(True, 100.0, 1.05)
    names = {joint: prefix + bone for joint, bone in bone_maps.PRESETS[preset].items()}
    change = np.eye(4)
    change[:3, :3] = Y_UP_INSIDE if y_up_inside else np.eye(3)
    obj, created = armature_from(scene, rig, truth, names, prefix, change)
    data = obj.data
    head = created[truth[15]]
    end = data.edit_bones.new(f"{prefix}HeadTop_End")
    end.head = head.head + Vector((change[:3, :3] @ [0.0, 0.0, 20.0]).tolist())  # the crown
    end.tail = end.head + (head.tail - head.head)
    end.parent = head
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.scale = (0.01, 0.01, 0.01)
    obj.rotation_euler = (math.pi / 2, 0.0, 0.0) if y_up_inside else (0.0, 0.0, 0.0)
    return obj


def through_file(scene, rig: bpy.types.Object, suffix: str, folder, **import_options) -> bpy.types.Object:
    """``rig`` exported by Blender's glTF or FBX exporter and imported again into an empty scene."""
    path = str(folder / f"character{suffix}")
    bpy.ops.object.select_all(action="DESELECT")
    rig.select_set(True)
    bpy.context.view_layer.objects.active = rig
    if suffix == ".glb":
        bpy.ops.export_scene.gltf(filepath=path, use_selection=True)
    else:
        bpy.ops.export_scene.fbx(filepath=path, use_selection=True, add_leaf_bones=False)
    scene = empty_scene(30)
    (bpy.ops.import_scene.gltf if suffix == ".glb" else bpy.ops.import_scene.fbx)(filepath=path, **import_options)
    return next(obj for obj in scene.objects if obj.type == "ARMATURE")


def world_limb_check(scene, rig, arrays, bone_map: dict[str, str]) -> tuple[float, float, float]:
    """(mean angle in degrees between the character's and the source's limbs in the world, every
    5th frame; the head's height above the lowest foot against its rest height, median frame;
    the largest gap between the lowest foot's height and the source's at the character's size, m)."""
    source = source_positions(arrays)
    world = rig.matrix_world
    rest = {bone.name: np.array(world @ bone.head_local) for bone in rig.data.bones}
    feet = [bone_map[JOINT_NAMES[joint]] for joint in FEET if JOINT_NAMES[joint] in bone_map]
    rest_height = rest[bone_map["head"]][2] - min(rest[foot][2] for foot in feet)
    layout = rest_layout().heads
    size = (rest[bone_map["pelvis"]][2] - np.mean([rest[bone_map[a]][2] for a in ("left_ankle", "right_ankle")])) / (
        layout[0, 2] - layout[[7, 8], 2].mean()
    )
    floor = np.mean([rest[bone_map[a]][2] for a in ("left_ankle", "right_ankle")]) - size * layout[[7, 8], 2].mean()
    angles, heights, gaps = [], [], []
    for frame in range(1, FRAMES + 1, 5):
        heads = world_heads(scene, rig, frame)
        for a, b in CHECK_LIMBS:
            target = heads[bone_map[JOINT_NAMES[b]]] - heads[bone_map[JOINT_NAMES[a]]]
            angles.append(angle_deg(target, source[frame - 1, b] - source[frame - 1, a]))
        lowest = min(heads[foot][2] for foot in feet)
        heights.append((heads[bone_map["head"]][2] - lowest) / rest_height)
        gaps.append(abs(lowest - floor - size * source[frame - 1, list(FEET), 2].min()))
    return float(np.mean(angles)), float(np.median(heights)), float(max(gaps))


CHARACTERS = {
    # name: (preset, bone name prefix, Y-up inside the armature, file suffix, import options)
    "mixamo glb, y-up inside": ("Mixamo", "mixamorig:", True, ".glb", {}),
    "mixamo fbx, y-up inside": ("Mixamo", "mixamorig:", True, ".fbx", {}),
    "mixamo fbx, automatic bone orientation": (
        "Mixamo",
        "mixamorig:",
        True,
        ".fbx",
        {"automatic_bone_orientation": True},
    ),
    "mixamo glb, z-up": ("Mixamo", "mixamorig:", False, ".glb", {}),
    "vrm (vroid) glb": ("VRoid", "", True, ".glb", {}),
    "vrm humanoid names glb": ("VRM humanoid", "", True, ".glb", {}),
    "mpfb game engine fbx": ("Unreal UE4 / MPFB game engine", "", False, ".fbx", {}),
}


@pytest.mark.parametrize("character", sorted(CHARACTERS))
def test_an_imported_character_dances_the_dance_upright(scene, tmp_path, character: str) -> None:
    preset, prefix, y_up_inside, suffix, options = CHARACTERS[character]
    rig = through_file(scene, named_character(scene, preset, y_up_inside, prefix), suffix, tmp_path, **options)
    scene = bpy.context.scene
    arrays = dance()
    key(scene, rig, arrays)
    source, bone_map = rig_mapping.guessed_map(rig)
    assert source == preset
    limbs, upright, floor_gap = world_limb_check(scene, rig, arrays, bone_map)
    assert limbs <= 10.0 and upright >= 0.8, (limbs, upright)
    assert floor_gap < 0.02  # metres: the feet meet the floor as the source's do
    limb_error = generation.limb_error_of(rig)
    assert limb_error is not None and limb_error == pytest.approx(limbs, abs=2.0)
    assert not generation.is_poor_retarget(limb_error)


def test_a_wrong_bone_map_is_reported(scene) -> None:
    rig = named_character(scene, "Mixamo", True, "mixamorig:")
    _, bone_map = rig_mapping.guessed_map(rig)
    for joint in ("collar", "shoulder", "elbow", "wrist"):  # the arms swapped
        bone_map[f"left_{joint}"], bone_map[f"right_{joint}"] = bone_map[f"right_{joint}"], bone_map[f"left_{joint}"]
    bone_map["left_hip"], bone_map["left_knee"] = bone_map["left_knee"], bone_map["left_hip"]
    rig_mapping.store_map(rig, bone_map)
    key(scene, rig, dance())
    limb_error = generation.limb_error_of(rig)
    assert generation.is_poor_retarget(limb_error)
    assert generation.retarget_words(limb_error).startswith("retargeting looks wrong")
