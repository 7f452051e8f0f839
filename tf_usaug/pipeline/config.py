"""Configuration of the augmentation job: :class:`AugmentConfig` (the paper's values) and presets."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEMO_DATA = Path(__file__).resolve().parents[1] / "demo_data"
METHODS = ("nst", "traditional", "srad", "stylizer", "gan")
#: Where the style references of an output come from when there is no ``--styles`` folder.
STYLE_POOLS = ("same-label", "any")


@dataclass
class AugmentConfig:
    """Everything one augmentation run needs. Defaults are the paper's (preset ``paper``).

    Attributes:
        content: folder (BUSI or flat layout) or CSV of content images.
        styles: folder or CSV of style references (None: the content set itself, excluding
            each item's own image).
        style_pool: without ``styles``, which content images may be an output's style
            references: "same-label" (default: only images of the content's own label, so an
            output never takes texture from another class; a label with fewer other images
            than ``n_styles`` repeats them, a label of one image is its own reference;
            unlabelled content draws from all images, as with "any") or
            "any" (every other content image). Ignored with ``styles``.
        out: output folder (must not be, or be inside, an input folder).
        method: "nst", "traditional", "srad", "stylizer" (a trained feed-forward stylizer,
            ``model``) or "gan" (a trained GAN, ``model``: K synthetic images per original,
            labelled with its class, the original recorded as their parent; docs/gan.md).
        model: the stylizer run folder (``python -m tf_usaug.train stylizer``) of
            ``method="stylizer"``, or the GAN run folder (``python -m tf_usaug.train wgan``
            / ``stylegan2``) of ``method="gan"``; each output's noise / latent comes from
            its item seed.
        per_image: outputs per content image (K).
        size: side of the square working resolution (ResNet50's 224 in the paper).
        seed: global seed; item seeds derive from it and the item name.
        srad: SRAD-filter the outputs (paper 002: n_t = 10 iterations per scale).
        srad_scale: which scale of the SRAD series filters the outputs (scale s = s x n_t
            iterations). 1 keeps texture: the filter's purpose is to remove speckle that the
            optimisation adds, not to blur the style away.
        n_styles: style references per output (n of the multi-reference loss).
        iterations: NST Adam iterations (paper: 1000).
        batch_size: content/style pairs optimised at once.
        backbone / weights: NST feature extractor and its weights ("imagenet", a .h5 path,
            or "none" for random weights).
        relevance: weight the content loss by LRP relevance (paper 002, "with XAI").
        relevance_model / relevance_weights / relevance_rule / relevance_preprocess: the
            classifier explained, its weights (default: ``weights`` when that is "imagenet"
            or "none"; a weights file must be given explicitly), the iNNvestigate rule, and
            how grey [0, 1] images become its input (default "caffe", ResNet50's; "unit" for
            a one-channel classifier trained on [0, 1] images).
        cache: relevance-map cache folder (default OUT/cache, shareable between runs).
        crop: "auto" finds each input's scan region (scanner screenshots carry text, rulers
            and grey bars around it; DICOM ``SequenceOfUltrasoundRegions`` when present) and
            works on it only; "none" uses the whole frame.
        fit: how the region becomes the working square: "pad" (letterbox, then cut the
            padding off the output: the output keeps the region's aspect ratio), "crop" (the
            centred square) or "stretch" (aspect ratio lost).
        skip_bad: go on without unusable input files (listed in summary.json) instead of
            stopping before any work.
        report: write ``OUT/index.html`` at the end of the run.
        overwrite: accept an ``out`` folder made with other settings: outputs that do not
            match the new settings are regenerated, those that no longer belong are removed
            (without it such a rerun is refused, naming the differing settings).
        threads: CPU threads per rank (default: cores / ranks on the node).
    """

    content: Path = DEMO_DATA
    styles: Path | None = None
    style_pool: str = "same-label"
    out: Path = Path("usaug_out")
    method: str = "nst"
    model: Path | None = None
    per_image: int = 5
    size: int = 224
    seed: int = 0
    srad: bool = True
    srad_scale: int = 1
    n_styles: int = 3
    iterations: int = 1000
    batch_size: int = 8
    backbone: str = "resnet50"
    weights: str = "imagenet"
    relevance: bool = True
    relevance_model: str = "resnet50"
    relevance_weights: str | None = None  # None: see relevance_weights()
    relevance_rule: str = "lrp.alpha_2_beta_1"
    relevance_preprocess: str | None = None  # None: RelevanceConfig's ("caffe", ResNet50's)
    cache: Path | None = None
    crop: str = "auto"
    fit: str = "pad"
    skip_bad: bool = False
    report: bool = True
    overwrite: bool = False
    threads: int | None = None
    verbose: bool = False
    progress: bool = True


PRESETS: dict[str, dict] = {
    # The paper's settings (ImageNet ResNet50 at 224x224, 1000 iterations).
    "paper": {},
    # Finishes in a few minutes on 2 CPU cores: small images, fewer iterations, and random
    # backbone weights because nothing may be downloaded (pass --weights for ImageNet ones).
    "demo": dict(content=DEMO_DATA, size=64, per_image=1, iterations=150, n_styles=2,
                 weights="none", out=Path("usaug_out")),
}
