"""Traditional geometric augmentation: rotation, translation, scaling, elastic deformation.

Paper 000 (Huang et al., MICCAI 2023, sec. 2.1) applies "rotation, translation, scaling, and
deformation transformations" to the content image before style transfer; the paper gives no
ranges, so the defaults below are conventional values for ultrasound (documented per field).
Image and mask go through ONE sampling grid, so the mask stays aligned with the lesion:
bilinear for the image, nearest for the mask, zero (black, like outside the scan sector) beyond
the border.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class TraditionalConfig:
    """Ranges of the random geometric transform (each drawn uniformly).

    Attributes:
        max_rotation_deg: rotation in [-r, r] degrees about the image centre (15).
        max_translation: shift in [-t, t] x image side, per axis (0.1).
        scale_range: isotropic zoom factor range ((0.9, 1.1)).
        elastic_alpha: elastic displacement amplitude as a fraction of the image side (0.03);
            0 disables the deformation (Simard et al. 2003 style smooth random field).
        elastic_sigma: Gaussian smoothing of the displacement field, fraction of the side (0.08).
    """

    max_rotation_deg: float = 15.0
    max_translation: float = 0.1
    scale_range: tuple[float, float] = (0.9, 1.1)
    elastic_alpha: float = 0.03
    elastic_sigma: float = 0.08


def affine_matrix(shape: tuple[int, int], angle_deg: float, scale: float,
                  shift_yx: tuple[float, float]) -> np.ndarray:
    """2x3 matrix mapping OUTPUT (x, y) pixel coordinates to INPUT coordinates.

    The forward transform rotates by ``angle_deg`` (counter-clockwise on screen), zooms by
    ``scale`` about the centre and then shifts by ``shift_yx`` pixels; this returns its inverse,
    which is what a backward-warping sampler needs.
    """
    h, w = shape
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    forward = cv2.getRotationMatrix2D(centre, angle_deg, scale)
    forward[0, 2] += shift_yx[1]
    forward[1, 2] += shift_yx[0]
    return cv2.invertAffineTransform(forward)


def elastic_field(shape: tuple[int, int], alpha: float, sigma: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random displacement field (dy, dx) in pixels, peak amplitude ~ alpha * side."""
    h, w = shape
    side = float(max(h, w))
    if alpha <= 0:
        zeros = np.zeros(shape, np.float32)
        return zeros, zeros
    ksigma = max(sigma * side, 0.5)
    fields = []
    for _ in range(2):
        noise = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
        smooth = cv2.GaussianBlur(noise, (0, 0), ksigma, borderType=cv2.BORDER_REFLECT)
        peak = float(np.abs(smooth).max()) or 1.0
        fields.append(smooth / peak * alpha * side)
    return fields[0], fields[1]


def sample_params(shape: tuple[int, int], rng: np.random.Generator,
                  cfg: TraditionalConfig = TraditionalConfig()) -> dict:
    """Draw the transform parameters (JSON-serialisable; stored in the manifest)."""
    h, w = shape
    return {
        "rotation_deg": float(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg)),
        "scale": float(rng.uniform(*cfg.scale_range)),
        "shift_y": float(rng.uniform(-cfg.max_translation, cfg.max_translation) * h),
        "shift_x": float(rng.uniform(-cfg.max_translation, cfg.max_translation) * w),
        "elastic_alpha": cfg.elastic_alpha,
        "elastic_sigma": cfg.elastic_sigma,
        "elastic_seed": int(rng.integers(0, 2**31 - 1)),
    }


def sampling_grid(shape: tuple[int, int], params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Input coordinates (map_x, map_y) for every output pixel: affine then elastic."""
    h, w = shape
    inv = affine_matrix(shape, params["rotation_deg"], params["scale"],
                        (params["shift_y"], params["shift_x"]))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = elastic_field(shape, params["elastic_alpha"], params["elastic_sigma"],
                           np.random.default_rng(params["elastic_seed"]))
    xs_d, ys_d = xs + dx, ys + dy
    map_x = inv[0, 0] * xs_d + inv[0, 1] * ys_d + inv[0, 2]
    map_y = inv[1, 0] * xs_d + inv[1, 1] * ys_d + inv[1, 2]
    return map_x.astype(np.float32), map_y.astype(np.float32)


def apply_geometric(image: np.ndarray, mask: np.ndarray | None,
                    params: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """Warp ``image`` (bilinear) and ``mask`` (nearest) with the same grid."""
    map_x, map_y = sampling_grid(image.shape, params)
    out = cv2.remap(image.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    out = np.clip(out, 0.0, 1.0)
    out_mask = None
    if mask is not None:
        out_mask = cv2.remap(mask.astype(np.uint8), map_x, map_y, cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    return out, out_mask


def random_geometric(image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator,
                     cfg: TraditionalConfig = TraditionalConfig()):
    """Random rotation + translation + scaling + elastic deformation of image and mask.

    Args:
        image: float32 HxW in [0, 1].
        mask: bool HxW aligned with ``image``, or None.
        rng: the random state (one per work item, so a seed reproduces a run).
        cfg: parameter ranges.

    Returns:
        ``(image, mask, params)`` with ``params`` the drawn values.
    """
    params = sample_params(image.shape, rng, cfg)
    out, out_mask = apply_geometric(image, mask, params)
    return out, out_mask, params


def config_dict(cfg: TraditionalConfig) -> dict:
    return asdict(cfg)
