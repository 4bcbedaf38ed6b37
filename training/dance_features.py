"""Whole-dance features and the distribution measures built on them: FID_k, FID_g, Div_k, Div_g.

The features are those of the AIST++ API as Bailando's evaluation uses them, rewritten here
in vectorised numpy from their definitions (facts, not code, carried over):

- **Kinetic** (72 = 24 joints x 3): with a sliding window of +-2 frames at 60 fps, the mean
  over frames of the squared norm of the window-averaged horizontal velocity, the same for the
  vertical velocity, and the mean norm of the window-averaged acceleration. The reference
  code computes the earlier velocity of each acceleration as ``p[k] - p[k-1] / dt`` (only
  ``p[k-1]`` divided); every published FID_k carries that slip, so ``kinetic_features``
  reproduces it by default (``published_quirk=False`` gives the corrected acceleration).
- **Geometric** (32): Müller-style boolean relations between body parts (a hand moving fast,
  a foot in front of the other leg's plane, a knee bent, ...), averaged over frames. The
  velocity relations use the reference's frame time of 1/120 s although its positions are at
  60 fps; kept, so that thresholds mean what they mean there.

Positions: (T, 24, 3) metres, SMPL's frame (Y up), at 60 fps, the first frame's root moved to
the origin (``prepare``).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .metrics import resample_positions

FEATURE_FPS = 60.0  # the features are defined on 60 fps positions
WINDOW = 2  # frames either side of the sliding window
RELATION_FRAME_TIME = 1.0 / 120.0  # the reference's velocity unit for the geometric relations

# Body measures of the AIST++ reference's template body, metres (the thresholds' units): its
# left shoulder, left elbow, right shoulder, left hip and right hip joints.
_TEMPLATE = {
    "lshoulder": (0.199113488, 0.236807942, -0.0180702247),
    "lelbow": (0.454445392, 0.221158922, -0.0410167128),
    "rshoulder": (-0.191692337, 0.236928746, -0.0123055102),
    "lhip": (0.0564076714, -0.323069185, 0.0109197125),
    "rhip": (-0.0624834076, -0.331302464, 0.0150412619),
}
HUMERUS_LENGTH = float(np.linalg.norm(np.subtract(_TEMPLATE["lshoulder"], _TEMPLATE["lelbow"])))
SHOULDER_WIDTH = float(np.linalg.norm(np.subtract(_TEMPLATE["lshoulder"], _TEMPLATE["rshoulder"])))
HIP_WIDTH = float(np.linalg.norm(np.subtract(_TEMPLATE["lhip"], _TEMPLATE["rhip"])))

# SMPL joint indices by the reference's short names.
J = {
    "root": 0, "lhip": 1, "rhip": 2, "belly": 3, "lknee": 4, "rknee": 5, "spine": 6, "lankle": 7, "rankle": 8,
    "chest": 9, "ltoes": 10, "rtoes": 11, "neck": 12, "linshoulder": 13, "rinshoulder": 14, "head": 15,
    "lshoulder": 16, "rshoulder": 17, "lelbow": 18, "relbow": 19, "lwrist": 20, "rwrist": 21, "lhand": 22, "rhand": 23,
}  # fmt: skip


def prepare(positions: np.ndarray, fps: float) -> np.ndarray:
    """(T, 24, 3) at fps -> at FEATURE_FPS with the first frame's root at the origin."""
    resampled = resample_positions(positions, fps, FEATURE_FPS) if fps != FEATURE_FPS else np.asarray(positions)
    return resampled - resampled[:1, :1]


def window_sum(values: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Sum of values[first[i] .. last[i]] (inclusive) along axis 0 for every i (empty: 0)."""
    padded = np.concatenate([np.zeros_like(values[:1]), np.cumsum(values, axis=0)])
    return padded[np.maximum(last + 1, first)] - padded[first]


def kinetic_features(positions: np.ndarray, published_quirk: bool = True) -> np.ndarray:
    """(72,) per joint: horizontal kinetic energy, vertical kinetic energy, energy expenditure."""
    dt = 1.0 / FEATURE_FPS
    count = positions.shape[0]
    frames = np.arange(1, count)
    # Velocity windows: displacements d[k] = p[k] - p[k-1], k in [i-2, i+2] within [1, T-1].
    displacement = np.concatenate([np.zeros_like(positions[:1]), np.diff(positions, axis=0)])
    first, last = np.maximum(frames - WINDOW, 1), np.minimum(frames + WINDOW, count - 1)
    velocity = window_sum(displacement, first, last) / ((last - first + 1)[:, None, None] * dt)
    horizontal = np.mean(np.sum(velocity[..., [0, 2]] ** 2, axis=-1), axis=0)
    vertical = np.mean(velocity[..., 1] ** 2, axis=0)
    # Acceleration windows: k in [i-2, i+2] within [1, T-2].
    later = np.zeros_like(positions)
    later[:-1] = (positions[1:] - positions[:-1]) / dt
    earlier = np.zeros_like(positions)
    if published_quirk:
        earlier[1:] = positions[1:] - positions[:-1] / dt
    else:
        earlier[1:] = (positions[1:] - positions[:-1]) / dt
    acceleration = (later - earlier) / dt
    acceleration[0] = acceleration[-1] = 0.0
    first, last = np.maximum(frames - WINDOW, 1), np.minimum(frames + WINDOW, count - 2)
    windows = np.maximum(last - first + 1, 1)[:, None, None]
    expenditure = np.mean(np.linalg.norm(window_sum(acceleration, first, last) / windows, axis=-1), axis=0)
    return np.stack([horizontal, vertical, expenditure], axis=1).reshape(-1).astype(np.float64)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


# The 32 relations, in the reference's order: (kind, joints, thresholds). Joint names are J's,
# plus "zero", "y_unit", "minus_y_unit" (fixed points) and "y_min" (the frame's lowest height);
# distances in metres (multiples of the template body's measures), angles in degrees. The
# reference lists its fifth relation twice; kept, so that FID_g means what it means there.
_HL, _SW, _HW = HUMERUS_LENGTH, SHOULDER_WIDTH, HIP_WIDTH
GEOMETRIC_RELATIONS: tuple[tuple[str, tuple[str, ...], tuple[float, ...]], ...] = (
    ("moving_normal", ("neck", "rhip", "lhip", "rwrist"), (1.8 * _HL,)),
    ("moving_normal", ("neck", "lhip", "rhip", "lwrist"), (1.8 * _HL,)),
    ("plane_normal", ("chest", "neck", "neck", "rwrist"), (0.2 * _HL,)),
    ("plane_normal", ("chest", "neck", "neck", "lwrist"), (0.2 * _HL,)),
    ("moving", ("belly", "chest", "chest"), (1.8 * _HL,)),
    ("moving", ("belly", "chest", "chest"), (1.8 * _HL,)),
    ("angle", ("relbow", "rshoulder", "relbow", "rwrist"), (0, 110)),
    ("angle", ("lelbow", "lshoulder", "lelbow", "lwrist"), (0, 110)),
    ("plane_normal", ("lshoulder", "rshoulder", "lwrist", "rwrist"), (2.5 * _SW,)),
    ("moving", ("lwrist", "rwrist", "rwrist"), (1.4 * _HL,)),
    ("moving", ("rwrist", "root", "lwrist"), (1.4 * _HL,)),
    ("moving", ("lwrist", "root", "rwrist"), (1.4 * _HL,)),
    ("fast", ("rwrist",), (2.5 * _HL,)),
    ("fast", ("lwrist",), (2.5 * _HL,)),
    ("plane", ("root", "lhip", "ltoes", "rankle"), (0.38 * _HL,)),
    ("plane", ("root", "rhip", "rtoes", "lankle"), (0.38 * _HL,)),
    ("plane_normal", ("zero", "y_unit", "y_min", "rankle"), (1.2 * _HL,)),
    ("plane_normal", ("zero", "y_unit", "y_min", "lankle"), (1.2 * _HL,)),
    ("plane_normal", ("lhip", "rhip", "lankle", "rankle"), (2.1 * _HW,)),
    ("angle", ("rknee", "rhip", "rknee", "rankle"), (0, 110)),
    ("angle", ("lknee", "lhip", "lknee", "lankle"), (0, 110)),
    ("fast", ("rankle",), (2.5 * _HL,)),
    ("fast", ("lankle",), (2.5 * _HL,)),
    ("angle", ("neck", "root", "rshoulder", "relbow"), (25, 180)),
    ("angle", ("neck", "root", "lshoulder", "lelbow"), (25, 180)),
    ("angle", ("neck", "root", "rhip", "rknee"), (50, 180)),
    ("angle", ("neck", "root", "lhip", "lknee"), (50, 180)),
    ("plane", ("rankle", "neck", "lankle", "root"), (0.5 * _HL,)),
    ("angle", ("neck", "root", "zero", "y_unit"), (70, 110)),
    ("plane_normal", ("zero", "minus_y_unit", "y_min", "rwrist"), (-1.2 * _HL,)),
    ("plane_normal", ("zero", "minus_y_unit", "y_min", "lwrist"), (-1.2 * _HL,)),
    ("fast", ("root",), (2.3 * _HL,)),
)
GEOMETRIC_NAMES = tuple(f"{kind}({', '.join(joints)})" for kind, joints, _ in GEOMETRIC_RELATIONS)


def geometric_relations(positions: np.ndarray) -> np.ndarray:
    """(T - 1, 32) bool: whether each relation of GEOMETRIC_RELATIONS holds in each frame after the first."""
    now, before = positions[1:], positions[:-1]
    count = len(now)
    y_min = np.zeros((count, 3))
    y_min[:, 1] = now[..., 1].min(axis=1)
    fixed = {"zero": np.zeros(3), "y_unit": np.array([0.0, 1.0, 0.0]), "minus_y_unit": np.array([0.0, -1.0, 0.0])}

    def at(name: str) -> np.ndarray:
        if name == "y_min":
            return y_min
        if name in fixed:
            return np.broadcast_to(fixed[name], (count, 3))
        return now[:, J[name]]

    def prev(name: str) -> np.ndarray:
        return before[:, J[name]]

    def moving(a: str, b: str, c: str, threshold: float) -> np.ndarray:
        """c's velocity relative to a, along a->b, above threshold (the reference passes its 3rd joint)."""
        velocity = (at(c) - at(a)) - (prev(c) - prev(a))
        along = np.sum(velocity * _unit(at(b) - at(a)), axis=-1) / RELATION_FRAME_TIME
        return along > threshold

    def moving_normal(a: str, b: str, c: str, p: str, threshold: float) -> np.ndarray:
        """p's velocity relative to a, along the normal of the plane (a, b, c), above threshold."""
        velocity = (at(p) - at(a)) - (prev(p) - prev(a))
        normal = _unit(np.cross(at(c) - at(a), at(b) - at(a)))
        return np.sum(velocity * normal, axis=-1) / RELATION_FRAME_TIME > threshold

    def plane(a: str, b: str, c: str, p: str, threshold: float) -> np.ndarray:
        normal = _unit(np.cross(at(c) - at(a), at(b) - at(a)))
        return np.sum(normal * (at(p) - at(a)), axis=-1) > threshold

    def plane_normal(n1: str, n2: str, a: str, p: str, threshold: float) -> np.ndarray:
        normal = _unit(at(n2) - at(n1))
        return np.sum(normal * (at(p) - at(a)), axis=-1) > threshold

    def angle(a: str, b: str, c: str, d: str, low: float, high: float) -> np.ndarray:
        cosine = np.sum(_unit(at(b) - at(a)) * _unit(at(d) - at(c)), axis=-1)
        degrees = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
        return (degrees > low) & (degrees < high)

    def fast(a: str, threshold: float) -> np.ndarray:
        return np.linalg.norm(at(a) - prev(a), axis=-1) / RELATION_FRAME_TIME > threshold

    kinds = {"moving": moving, "moving_normal": moving_normal, "plane": plane, "plane_normal": plane_normal}
    kinds |= {"angle": angle, "fast": fast}
    return np.stack([kinds[kind](*joints, *limits) for kind, joints, limits in GEOMETRIC_RELATIONS], axis=1)


def geometric_features(positions: np.ndarray) -> np.ndarray:
    """(32,) fraction of frames (after the first) in which each body relation holds."""
    return geometric_relations(positions).mean(axis=0).astype(np.float64)


KINETIC_DIMS = 72  # 24 joints x 3: the first part of dance_features' vector
FEATURE_DIMS = KINETIC_DIMS + 32  # and the geometric relations


def dance_features(positions: np.ndarray) -> np.ndarray:
    """(104,) the corrected kinetic features (72) then the geometric ones (32) of prepared positions."""
    return np.concatenate([kinetic_features(positions, published_quirk=False), geometric_features(positions)])


def standardise(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(..., D) features in units of a real set's (D,) mean and standard deviation; a feature
    the real set never varies stays in its own units."""
    return (features - mean) / np.where(std > 0, std, 1.0)


def normalise(real: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both (N, D) sets standardised by the real set's mean and standard deviation (Bailando)."""
    mean, std = real.mean(axis=0), real.std(axis=0)
    return standardise(real, mean, std), standardise(generated, mean, std)


def frechet_distance(real: np.ndarray, generated: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two (N, D) feature sets.

    tr(sqrt(sigma1 sigma2)) as the sum of the square roots of the product's eigenvalues (real
    and non-negative in exact arithmetic, as torchmetrics computes it): a matrix square root
    of the product fails (NaN) when few clips make both covariances singular, and the trace
    is all the distance needs.
    """
    mu1, mu2 = real.mean(axis=0), generated.mean(axis=0)
    sigma1, sigma2 = np.cov(real, rowvar=False), np.cov(generated, rowvar=False)
    eigenvalues = np.linalg.eigvals(sigma1 @ sigma2)
    trace_root = float(np.sqrt(np.clip(eigenvalues.real, 0.0, None)).sum())
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)


def diversity(features: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of (N, D) features."""
    count = len(features)
    if count < 2:
        return 0.0
    distances = np.linalg.norm(features[:, None] - features[None], axis=-1)
    return float(distances[np.triu_indices(count, k=1)].mean())


def distribution_scores(real: list[np.ndarray], generated: list[np.ndarray], fps: float) -> dict[str, float]:
    """FID_k, FID_g (generated vs real) and Div_k, Div_g (of the generated set), normalised as Bailando,
    and FID_k, Div_k again on the corrected kinetic features (``fid_k_fixed``, ``div_k_fixed``).

    real, generated: lists of (T, 24, 3) dances at ``fps``. The published kinetic features'
    "energy" third grows with each joint's distance from where the clip's root starts, so travel
    within a clip weighs in; the corrected ones see the acceleration only.
    """
    real = [prepare(dance, fps) for dance in real]
    generated = [prepare(dance, fps) for dance in generated]
    extractors = {
        "k": kinetic_features,
        "g": geometric_features,
        "k_fixed": partial(kinetic_features, published_quirk=False),
    }
    scores = {}
    for name, extract in extractors.items():
        real_normal, generated_normal = normalise(
            np.stack([extract(dance) for dance in real]), np.stack([extract(dance) for dance in generated])
        )
        scores[f"fid_{name}"] = frechet_distance(real_normal, generated_normal)
        scores[f"div_{name}"] = diversity(generated_normal)
    return scores
