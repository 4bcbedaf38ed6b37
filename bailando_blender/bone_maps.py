"""Which bone of a humanoid armature carries which SMPL joint (pure Python + numpy).

Presets for the common rigs, matched by name (case-insensitive, any ``namespace:`` prefix
such as Mixamo's ``mixamorig:`` ignored), and a guess from the hierarchy and the rest pose
for any other humanoid. A map is ``{SMPL joint name: bone name}``; joints left out (SMPL's
hand joints on most rigs, say) simply do not drive a bone. Maps save and load as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .skeleton import JOINT_NAMES


def _sided(pattern: dict[str, str], left: str, right: str) -> dict[str, str]:
    """Expand ``{joint: bone with {side}}`` into left_ and right_ joints."""
    out = {}
    for joint, bone in pattern.items():
        if "{side}" in bone:
            out[f"left_{joint}"] = bone.format(side=left)
            out[f"right_{joint}"] = bone.format(side=right)
        else:
            out[joint] = bone
    return out


RIGIFY_META_RIG = "Rigify meta-rig"
PRESETS: dict[str, dict[str, str]] = {
    "SMPL": {name: name for name in JOINT_NAMES},
    "Mixamo": _sided(
        {
            "pelvis": "Hips", "spine1": "Spine", "spine2": "Spine1", "spine3": "Spine2", "neck": "Neck",
            "head": "Head", "hip": "{side}UpLeg", "knee": "{side}Leg", "ankle": "{side}Foot",
            "foot": "{side}ToeBase", "collar": "{side}Shoulder", "shoulder": "{side}Arm",
            "elbow": "{side}ForeArm", "wrist": "{side}Hand",
        },
        "Left", "Right",
    ),
    RIGIFY_META_RIG: _sided(
        {
            "pelvis": "spine", "spine1": "spine.001", "spine2": "spine.002", "spine3": "spine.003",
            "neck": "spine.004", "head": "spine.006", "hip": "thigh.{side}", "knee": "shin.{side}",
            "ankle": "foot.{side}", "foot": "toe.{side}", "collar": "shoulder.{side}",
            "shoulder": "upper_arm.{side}", "elbow": "forearm.{side}", "wrist": "hand.{side}",
        },
        "L", "R",
    ),
    "VRM humanoid": _sided(
        {
            "pelvis": "hips", "spine1": "spine", "spine2": "chest", "spine3": "upperChest", "neck": "neck",
            "head": "head", "hip": "{side}UpperLeg", "knee": "{side}LowerLeg", "ankle": "{side}Foot",
            "foot": "{side}Toes", "collar": "{side}Shoulder", "shoulder": "{side}UpperArm",
            "elbow": "{side}LowerArm", "wrist": "{side}Hand",
        },
        "left", "right",
    ),
    "VRoid": _sided(
        {
            "pelvis": "J_Bip_C_Hips", "spine1": "J_Bip_C_Spine", "spine2": "J_Bip_C_Chest",
            "spine3": "J_Bip_C_UpperChest", "neck": "J_Bip_C_Neck", "head": "J_Bip_C_Head",
            "hip": "J_Bip_{side}_UpperLeg", "knee": "J_Bip_{side}_LowerLeg", "ankle": "J_Bip_{side}_Foot",
            "foot": "J_Bip_{side}_ToeBase", "collar": "J_Bip_{side}_Shoulder", "shoulder": "J_Bip_{side}_UpperArm",
            "elbow": "J_Bip_{side}_LowerArm", "wrist": "J_Bip_{side}_Hand",
        },
        "L", "R",
    ),
    # Unreal's UE4 mannequin; MPFB's "game engine" rig uses the same names.
    "Unreal UE4 / MPFB game engine": _sided(
        {
            "pelvis": "pelvis", "spine1": "spine_01", "spine2": "spine_02", "spine3": "spine_03",
            "neck": "neck_01", "head": "head", "hip": "thigh_{side}", "knee": "calf_{side}",
            "ankle": "foot_{side}", "foot": "ball_{side}", "collar": "clavicle_{side}",
            "shoulder": "upperarm_{side}", "elbow": "lowerarm_{side}", "wrist": "hand_{side}",
        },
        "l", "r",
    ),
    # UE5's Manny has five spine bones and two neck bones: the skipped ones share the turn.
    "Unreal UE5": _sided(
        {
            "pelvis": "pelvis", "spine1": "spine_01", "spine2": "spine_03", "spine3": "spine_05",
            "neck": "neck_01", "head": "head", "hip": "thigh_{side}", "knee": "calf_{side}",
            "ankle": "foot_{side}", "foot": "ball_{side}", "collar": "clavicle_{side}",
            "shoulder": "upperarm_{side}", "elbow": "lowerarm_{side}", "wrist": "hand_{side}",
        },
        "l", "r",
    ),
}  # fmt: skip
MIN_PRESET_JOINTS = 12  # a preset is taken when at least this many of its bones exist (the pelvis among them)


def plain_name(name: str) -> str:
    """Lower case, without a ``namespace:`` prefix (``mixamorig:Hips`` -> ``hips``)."""
    return name.rsplit(":", 1)[-1].lower()


def apply_preset(preset: dict[str, str], bone_names: list[str]) -> dict[str, str]:
    """The preset's joints whose bone exists in ``bone_names`` (matched as ``plain_name``)."""
    by_plain = {plain_name(name): name for name in bone_names}
    return {joint: by_plain[plain_name(bone)] for joint, bone in preset.items() if plain_name(bone) in by_plain}


def best_preset(bone_names: list[str]) -> tuple[str, dict[str, str]] | None:
    """The preset that names the most of these bones, if it names enough of them."""
    scored = [
        (len(found), name, found) for name, preset in PRESETS.items() if (found := apply_preset(preset, bone_names))
    ]
    scored = [entry for entry in scored if "pelvis" in entry[2] and entry[0] >= MIN_PRESET_JOINTS]
    if not scored:
        return None
    _, name, found = max(scored, key=lambda entry: entry[0])
    return name, found


def _children(parents: list[int]) -> list[list[int]]:
    children: list[list[int]] = [[] for _ in parents]
    for bone, parent in enumerate(parents):
        if parent >= 0:
            children[parent].append(bone)
    return children


def _descendants(bone: int, children: list[list[int]]) -> int:
    return sum(1 + _descendants(child, children) for child in children[bone])


def _chain(start: int, children: list[list[int]], heads: np.ndarray) -> list[int]:
    """From ``start`` on down the hierarchy, at a fork into the child with the most below it."""
    chain = [start]
    while children[chain[-1]]:
        chain.append(max(children[chain[-1]], key=lambda child: _descendants(child, children)))
    return chain


def _pick(chain: list[int], count: int) -> list[int]:
    """``count`` bones spread along ``chain`` (its first and, if enough, its last included)."""
    if len(chain) <= count:
        return chain
    return [chain[round(i * (len(chain) - 1) / (count - 1))] for i in range(count)] if count > 1 else chain[:1]


def guess_from_hierarchy(bone_names: list[str], parents: list[int], heads: np.ndarray) -> dict[str, str]:
    """A map for an unknown humanoid from its hierarchy and rest pose (armature space, Z up, the
    character facing -Y, so its left is +X): the pelvis is the first bone with three branches
    (two going down, one up); each branch's bones are laid on SMPL's joints in order."""
    children = _children(parents)
    pelvis = next((bone for bone in range(len(bone_names)) if len(children[bone]) >= 3), None)
    if pelvis is None:
        return {}
    result = {"pelvis": pelvis}
    branches = sorted(children[pelvis], key=lambda child: heads[_chain(child, children, heads)[-1], 2])
    legs, spine_start = branches[:2], branches[-1]
    for leg in legs:
        side = "left" if heads[leg, 0] > heads[pelvis, 0] else "right"
        for joint, bone in zip(("hip", "knee", "ankle", "foot"), _chain(leg, children, heads), strict=False):
            result[f"{side}_{joint}"] = bone
    # Up the spine to the fork where the arms leave.
    spine = [spine_start]
    while len(children[spine[-1]]) == 1:
        spine.append(children[spine[-1]][0])
    fork = spine[-1]
    for joint, bone in zip(("spine1", "spine2", "spine3"), _pick(spine, 3), strict=False):
        result[joint] = bone
    if len(children[fork]) >= 3:
        up = max(children[fork], key=lambda child: heads[child, 2] - abs(heads[child, 0] - heads[fork, 0]))
        neck = _chain(up, children, heads)
        result["neck"] = neck[0]
        if len(neck) > 1:
            result["head"] = neck[1]
        for arm in (child for child in children[fork] if child != up):
            side = "left" if heads[_chain(arm, children, heads)[-1], 0] > heads[fork, 0] else "right"
            for joint, bone in zip(
                ("collar", "shoulder", "elbow", "wrist"), _chain(arm, children, heads), strict=False
            ):
                result[f"{side}_{joint}"] = bone
    return {joint: bone_names[bone] for joint, bone in result.items()}


def guess_map(bone_names: list[str], parents: list[int], heads: np.ndarray) -> tuple[str, dict[str, str]]:
    """(where the map came from, the map): the best preset, else the hierarchy guess (maybe empty)."""
    preset = best_preset(bone_names)
    if preset is not None:
        return preset
    return "guessed from the hierarchy", guess_from_hierarchy(bone_names, parents, heads)


def save_map(bone_map: dict[str, str], path: Path) -> None:
    path.write_text(json.dumps({"format": "bailando bone map", "map": bone_map}, indent=1))


def load_map(path: Path) -> dict[str, str]:
    """Raises ValueError (one line) for a file that is not a bone map."""
    try:
        data = json.loads(path.read_text())
        bone_map = data["map"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a bone map ({error})") from None
    unknown = sorted(set(bone_map) - set(JOINT_NAMES))
    if unknown or not all(isinstance(bone, str) for bone in bone_map.values()):
        raise ValueError(f"{path}: not a bone map (unknown joints {', '.join(unknown) or 'none'}, or non-text bones)")
    return dict(bone_map)
