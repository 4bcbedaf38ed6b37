"""The user's SMPL model -> body mesh arrays (on a synthetic model file the tests write)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.errors import UserInputError
from backend.smpl_body import find_model_file, load_smpl_body
from bailando_blender.skeleton import rest_positions

from .conftest import write_synthetic_smpl_model


def test_a_model_is_found_in_the_folder_or_its_smpl_subfolder(tmp_path: Path) -> None:
    (tmp_path / "smpl").mkdir()
    written = write_synthetic_smpl_model(tmp_path / "smpl")
    assert find_model_file(tmp_path) == written
    assert find_model_file(tmp_path / "smpl") == written


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda folder: folder / "nowhere", "does not exist"),
        (lambda folder: folder, "has no SMPL_NEUTRAL.pkl"),
    ],
)
def test_a_folder_without_a_model_is_refused(tmp_path: Path, make, problem: str) -> None:
    with pytest.raises(UserInputError, match=problem):
        load_smpl_body(make(tmp_path))


def test_an_unreadable_model_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(b"not a pickle")
    with pytest.raises(UserInputError, match="cannot be read as an SMPL model") as caught:
        load_smpl_body(tmp_path)
    assert "\n" not in str(caught.value)


def test_the_body_has_smpls_mesh_weights_and_joints(tmp_path: Path) -> None:
    write_synthetic_smpl_model(tmp_path)
    body = load_smpl_body(tmp_path)
    assert body.vertices.shape == (6890, 3) and body.weights.shape == (6890, 24) and body.faces.shape == (2, 3)
    np.testing.assert_allclose(body.joints, rest_positions(), atol=1e-6)
    np.testing.assert_allclose(body.weights.sum(axis=1), 1.0, atol=1e-6)
    arrays = body.arrays()
    assert set(arrays) == {"body_vertices", "body_faces", "body_weights", "body_joints"}
