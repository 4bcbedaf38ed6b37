"""Bone maps: presets by name, a guess from the hierarchy, JSON round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from bailando_blender import bone_maps
from bailando_blender.skeleton import JOINT_NAMES

from .test_retarget import smpl_like_rig


def test_mixamo_names_with_any_namespace_pick_the_mixamo_preset() -> None:
    names = ["mixamorig1:" + bone for bone in bone_maps.PRESETS["Mixamo"].values()] + ["mixamorig1:HeadTop_End"]
    source, found = bone_maps.guess_map(names, [-1] * len(names), None)
    assert source == "Mixamo" and found["pelvis"] == "mixamorig1:Hips" and found["left_wrist"] == "mixamorig1:LeftHand"
    assert len(found) == 22  # SMPL's two hand joints have no Mixamo bone of their own


@pytest.mark.parametrize("preset", sorted(bone_maps.PRESETS))
def test_each_preset_is_recognised_from_its_own_names(preset: str) -> None:
    names = list(bone_maps.PRESETS[preset].values())
    source, found = bone_maps.guess_map(names, [-1] * len(names), None)
    assert found == bone_maps.apply_preset(bone_maps.PRESETS[source], names)
    assert len(found) == len(bone_maps.PRESETS[preset])


def test_an_unknown_humanoid_is_mapped_from_its_hierarchy_and_rest_pose() -> None:
    rig, truth = smpl_like_rig(True, 100.0, 1.1)
    names = [f"Bone.{index:03d}" for index in range(len(rig.names))]  # names that say nothing
    source, found = bone_maps.guess_map(names, rig.parents, rig.rest[:, :3, 3])
    assert source == "guessed from the hierarchy"
    expected = {JOINT_NAMES[joint]: names[bone] for joint, bone in truth.items() if joint not in (22, 23)}
    assert found == expected


def test_a_map_saves_and_loads_and_a_bad_file_fails_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    bone_maps.save_map({"pelvis": "Hips", "head": "Head"}, path)
    assert bone_maps.load_map(path) == {"pelvis": "Hips", "head": "Head"}
    path.write_text('{"map": {"tail": "Tail"}}')
    with pytest.raises(ValueError, match="unknown joints tail") as error:
        bone_maps.load_map(path)
    assert "\n" not in str(error.value)
