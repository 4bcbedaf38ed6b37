"""The user's own SMPL model file -> the rest-pose body mesh for the Blender dancer.

SMPL's model files are licensed by the Max Planck Institute and never shipped; a user who
has them names their folder in the extension's preferences. The file is read with smplx
(which reads SMPL's pickle or npz files); the mesh then travels to Blender in the dance's
NPZ (``body_*`` keys), so the extension itself never needs torch or smplx.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserInputError

GENDERS = ("neutral", "female", "male")
MODEL_SUFFIXES = (".pkl", ".npz")
# What reading a file that is not an SMPL model raises inside smplx: unpickling errors, missing
# keys, wrong shapes, and ImportError for SMPL's original files that need chumpy.
UNREADABLE_MODEL = (
    pickle.UnpicklingError, EOFError, KeyError, AttributeError, IndexError, ValueError, TypeError, ImportError,
    OSError, AssertionError, RuntimeError,
)  # fmt: skip


@dataclass(frozen=True)
class SmplBody:
    """The zero-shape rest pose, SMPL's frame (Y up, metres).

    vertices (V, 3); faces (F, 3) vertex indices; weights (V, 24) skinning weights per
    joint, rows summing to 1; joints (24, 3) rest joint positions (the joint regressor
    applied to the vertices).
    """

    vertices: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    joints: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "body_vertices": self.vertices.astype(np.float32),
            "body_faces": self.faces.astype(np.int32),
            "body_weights": self.weights.astype(np.float32),
            "body_joints": self.joints.astype(np.float32),
        }


def find_model_file(folder: str | Path, gender: str = "neutral") -> Path:
    """``SMPL_<GENDER>.pkl`` or ``.npz`` (smplx's names) in ``folder`` or its ``smpl/`` subfolder."""
    folder = Path(folder)
    if gender not in GENDERS:
        raise UserInputError("gender", f"must be one of {', '.join(GENDERS)}, got {gender}")
    if not folder.is_dir():
        raise UserInputError(folder, "the SMPL model folder does not exist")
    for place in (folder, folder / "smpl"):
        for suffix in MODEL_SUFFIXES:
            candidate = place / f"SMPL_{gender.upper()}{suffix}"
            if candidate.is_file():
                return candidate
    raise UserInputError(folder, f"has no SMPL_{gender.upper()}.pkl or .npz (nor in smpl/); rename your model file so")


def load_smpl_body(folder: str | Path, gender: str = "neutral") -> SmplBody:
    """Read the user's SMPL model (UserInputError when it is missing or unreadable)."""
    path = find_model_file(folder, gender)
    try:
        import smplx  # heavy (torch): only for users who set an SMPL folder
    except ImportError:
        raise UserInputError(folder, "reading SMPL model files needs smplx: pip install .[smpl]") from None

    try:
        model = smplx.SMPL(model_path=str(path), gender=gender)
    except UNREADABLE_MODEL as error:
        raise UserInputError(path, f"cannot be read as an SMPL model: {type(error).__name__}: {error}") from None
    vertices = model.v_template.detach().cpu().numpy().astype(np.float64)
    regressor = model.J_regressor.detach().cpu().numpy().astype(np.float64)
    weights = model.lbs_weights.detach().cpu().numpy().astype(np.float64)
    faces = np.asarray(model.faces, dtype=np.int64).reshape(-1, 3)
    if weights.shape != (len(vertices), 24) or regressor.shape != (24, len(vertices)):
        raise UserInputError(path, f"is not a 24-joint SMPL body (weights {weights.shape})")
    return SmplBody(vertices=vertices, faces=faces, weights=weights, joints=regressor @ vertices)
