"""The image-level augmentations of paper 000: traditional, MixStyleAug (sec. 2.1) and
MaskAug (sec. 2.3), applied to one (rank's share of a) batch. Masks and labels are never
changed by the style transfers; the traditional transform moves image and mask together.

Per image ``i`` of the batch at global position ``g`` of epoch ``e``, every draw comes from
``item_seed(seed, "aug/<e>/<g>")``: the outputs do not depend on the number of ranks, and a
resumed epoch repeats exactly.

    traditional   rotation, translation, zoom, elastic deformation (data/transforms.py)
    MixStyleAug   x_s = WCT(x_t -> random reference); x = m x_t + (1 - m) x_s,
                  m ~ Beta(alpha, alpha)                                   (AugMix's mixing)
    MaskAug       after the warm-up, with probability p: the content's predicted lesion
                  region restyled to a random reference's predicted lesion region (region
                  WCT), the rest of the image kept; when both are on, MaskAug replaces
                  MixStyleAug for that image
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...data.transforms import TraditionalConfig, random_geometric
from ...distributed.context import item_seed

#: A predicted region smaller than this share of the image is no region (MaskAug skips it).
MIN_REGION_SHARE = 0.002


def augmix_mix(augmented: np.ndarray, stylized: np.ndarray, weight: float) -> np.ndarray:
    """AugMix's final mix (Hendrycks et al. 2020): ``m * augmented + (1 - m) * stylized``."""
    return (weight * np.asarray(augmented, np.float32)
            + (1.0 - weight) * np.asarray(stylized, np.float32)).astype(np.float32)


def usable_region(region: np.ndarray) -> bool:
    return float(np.mean(region)) >= MIN_REGION_SHARE


@dataclass
class BatchPlan:
    """What happens to each image of a batch (recorded counts go into the history)."""

    references: np.ndarray      # [B] reference index per image
    mix_weights: np.ndarray     # [B] m of the AugMix mix
    maskaug: np.ndarray         # [B] bool: chosen for MaskAug (if its regions are usable)


def augment_batch(images, masks, positions, *, epoch: int, seed: int, traditional: bool,
                  mixstyle: bool, maskaug: bool, maskaug_p: float, alpha: float,
                  n_references: int, transfer=None, predict_regions=None,
                  reference_regions=None, traditional_cfg=TraditionalConfig()):
    """Augment one batch.

    Args:
        images / masks: ``[B, S, S]`` originals and their masks.
        positions: ``[B]`` global positions in the epoch (the random streams).
        epoch, seed: the streams' names.
        traditional / mixstyle / maskaug: which augmentations (MaskAug: active this epoch).
        maskaug_p, alpha: MaskAug's probability; MixStyleAug's Beta(alpha, alpha).
        n_references: size of the reference pool.
        transfer: a :class:`~.wct.StyleTransfer` (MixStyleAug, MaskAug) with ``.references``.
        predict_regions: ``images [B, S, S] -> bool [B, S, S]`` (MaskAug: the network's
            lesion prediction now); reference_regions: bool ``[M, S, S]`` of the references.

    Returns:
        ``(images, masks, counts)``: float32 ``[B, S, S]`` each, and how many images got
        MixStyleAug / MaskAug.
    """
    out_i = np.asarray(images, np.float32).copy()
    out_m = np.asarray(masks, np.float32).copy()
    b = len(out_i)
    refs = np.zeros(b, np.int64)
    weights = np.ones(b, np.float32)
    chosen = np.zeros(b, bool)
    for k in range(b):
        rng = np.random.default_rng(item_seed(seed, f"aug/{epoch}/{int(positions[k])}"))
        if traditional:
            out_i[k], m, _ = random_geometric(out_i[k], out_m[k] > 0.5, rng, traditional_cfg)
            out_m[k] = np.asarray(m, np.float32)
        if n_references:
            refs[k] = rng.integers(n_references)
        weights[k] = rng.beta(alpha, alpha)
        chosen[k] = maskaug and rng.random() < maskaug_p
    counts = {"mixstyle": 0, "maskaug": 0}
    if chosen.any():
        regions = predict_regions(out_i)
        ok = np.array([chosen[k] and usable_region(regions[k])
                       and usable_region(reference_regions[refs[k]]) for k in range(b)])
        chosen = ok
        if ok.any():
            idx = np.flatnonzero(ok)
            out_i[idx] = transfer.transfer(out_i[idx], transfer.references[refs[idx]],
                                           regions[idx], reference_regions[refs[idx]])
            counts["maskaug"] = len(idx)
    if mixstyle:
        idx = np.flatnonzero(~chosen)
        if len(idx):
            stylized = transfer.transfer(out_i[idx], transfer.references[refs[idx]])
            for j, k in enumerate(idx):
                out_i[k] = augmix_mix(out_i[k], stylized[j], weights[k])
            counts["mixstyle"] = len(idx)
    return np.clip(out_i, 0.0, 1.0), out_m, counts
