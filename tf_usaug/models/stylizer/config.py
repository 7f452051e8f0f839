"""Settings of the feed-forward stylizer: :class:`StylizerConfig` (paper 001's values where it
gives them, Johnson et al. 2016's where it follows them, ours otherwise), checked by
:func:`check_config` before any work.

Sources: paper 001 (Menini 2020), sec. 2.3 (Johnson et al.'s image transform network trained
with perceptual losses), sec. 3.3 (VGG19 loss network, no TV loss, three learnable-weight
Gaussian noise layers in the decoder, active at training and test time), sec. 4.3 and
Table 4.6 (lr 1e-5, batch 1, 1000 x 1000 crops, content weight 1e2, style weight 5e6-5e7,
five epochs of 6000 images); Johnson, Alahi & Fei-Fei 2016, "Perceptual losses for real-time
style transfer and super-resolution", sec. 3.1 and the supplementary architecture (9x9 / 3x3
convolutions 32-64-128, five residual blocks, batch 4, Adam lr 1e-3, 40k iterations at
256 px); Ulyanov et al. 2016 (instance normalisation); Odena et al. 2016, "Deconvolution and
checkerboard artifacts" (nearest-neighbour resize + convolution instead of transposed
convolutions); Karras et al. 2019 (StyleGAN noise inputs: one noise image per layer, a learned
per-channel scale, initialised at 0 there).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import BackboneError, UsageError
from ...errors import require_whole as _whole

#: The bundled demo phantoms: the training contents when no --content is given.
DEMO_DATA = Path(__file__).resolve().parents[2] / "demo_data"
BACKBONES = ("resnet50", "vgg19")
CROPS = ("auto", "none")
STYLE_AVERAGES = ("none", "feature", "gram")
WEIGHT_SUFFIXES = (".h5", ".hdf5")
#: Both strided convolutions halve the side: inputs are padded to a multiple of this.
SIDE_MULTIPLE = 4


@dataclass
class StylizerConfig:
    """Everything one stylizer training run needs.

    Attributes:
        styles: folder (or CSV / file) of style images, e.g. frames of the target scanner.
            Every training step draws ``n_styles`` of them per content image.
        content: the training contents (BUSI or flat folder, CSV): the ORIGINAL images the
            network learns to restyle; default the bundled demo phantoms.
        out: the run folder (``model.keras``, ``stylizer.json``, ``metrics.json``, ...).
        size: training side in pixels, a multiple of 4 (Johnson et al.: 256; paper 001:
            1000 x 1000 centre crops, far beyond a CPU). The network is fully convolutional
            and runs at any size; it is trained at the scale the augmentation job feeds it.
        steps: optimisation steps (Johnson et al.: 40k at batch 4; paper 001: 5 epochs of
            6000 images at batch 1 = 30k).
        batch_size: GLOBAL batch, split evenly over the Horovod ranks (Johnson et al.: 4;
            paper 001: 1, "limited by GPU memory").
        learning_rate: Adam step size (Johnson et al.: 1e-3). Paper 001 used 1e-5 with its raw
            VGG19 losses weighted 1e2 / 5e6; with our balanced losses (below) 1e-5 barely
            moves the network within a CPU budget.
        beta_1 / beta_2 / epsilon: Adam moments (Keras defaults).
        content_weight / style_weight: alpha and beta (paper 002 eq. 1) on BALANCED terms:
            the content loss is divided by its value for an all-zero feature map and each
            style layer by its value at the content images (the identity mapping), both
            measured once on a calibration batch before training, as the NST engine does per
            image (docs/nst.md). 1 and 1 (ours; paper 001's 1e2 / 5e6 weigh raw losses of
            another network and scale).
        tv_weight: total-variation weight; 0 (paper 001 sec. 3.3 drops Johnson et al.'s TV
            term for its smoothing). When > 0 it is balanced by its value at the contents.
        n_styles: style references drawn per content image and step; the multi-reference
            and MMD terms compare the output with all of them (3, the augmentation job's
            ``--n-styles``). Drawing afresh every step makes the target the style pool's
            average (paper 001's "average style", sec. 3.2 / 4.3).
        style_average: "none" (references pooled as samples: for the second-moment terms
            the mean of the references' Gram matrices), "feature" or "gram" (paper 001
            sec. 3.2); ``StyleLossConfig.average``.
        backbone / weights: the loss network and its weights ("imagenet", a Keras ``.h5``
            file, or "none": random, seeded, for tests). ResNet50 (paper 002, the NST
            engine's default) or VGG19 (paper 001); the layers are the NST engine's.
        content_layer: the loss network's layer of the content loss; None: the NST engine's
            (ResNet50 ``conv4_block6_out``, VGG19 ``block4_conv2``; paper 001 took VGG19's
            ``block5_conv2``). Johnson et al. take a shallow one (VGG16 ``relu2_2``): a
            network that does not start from the content needs a finer constraint to keep
            it (measured: docs/stylizer.md).
        relevance_model: a classifier run (``python -m tf_usaug.train classifier``): its LRP
            relevance of each training content weights the content loss (paper 002 eq. 2).
            The maps are computed once before training, in a child process.
        relevance_rule: the iNNvestigate rule (paper 002: alpha 2, beta 1).
        cache: relevance cache folder (default RUN/cache; shareable with the augmentation
            job's).
        crop: "auto" trains on each image's scan region (screenshots carry text and bars),
            fitted like the augmentation job fits them (contents letterboxed, styles centre
            square); "none" uses the whole frame.
        filters: channels of the three encoder stages (Johnson et al.: 32, 64, 128).
        residual_blocks: residual blocks at 1/4 resolution (Johnson et al.: 5).
        noise_layers: learnable-weight Gaussian noise injections in the decoder, 0-3 (paper
            001: three): fine to coarse, after each of the two resize-convolutions and at the
            decoder's input. 0 gives Johnson et al.'s deterministic network.
        noise_init: initial per-channel scale of every noise injection. Ours: 0.1, so that
            outputs of one content differ from the first step (StyleGAN starts at 0).
        seed: initial weights, batch order, style draws and noise derive from it alone.
        checkpoint_every: steps between checkpoints (a kill loses at most this many).
        log_every: steps per history row (mean losses over the interval; the curves).
        eval_images: contents of the fixed evaluation batch whose losses are reported
            before and after training (metrics.json).
        deterministic: TensorFlow's deterministic ops, so a resumed run ends with the same
            weights as an uninterrupted one.
        resume / overwrite: continue the run in ``out`` / start it over.
        threads: CPU threads per rank (default cores / ranks on the node).
        verbose: TensorFlow's logs and tracebacks.
    """

    styles: Path | None = None
    content: Path = DEMO_DATA
    out: Path = Path("stylizer_run")
    size: int = 256
    steps: int = 40_000
    batch_size: int = 4
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    content_weight: float = 1.0
    style_weight: float = 1.0
    tv_weight: float = 0.0
    n_styles: int = 3
    style_average: str = "none"
    backbone: str = "resnet50"
    weights: str = "imagenet"
    content_layer: str | None = None
    relevance_model: Path | None = None
    relevance_rule: str = "lrp.alpha_2_beta_1"
    cache: Path | None = None
    crop: str = "auto"
    filters: tuple[int, int, int] = (32, 64, 128)
    residual_blocks: int = 5
    noise_layers: int = 3
    noise_init: float = 0.1
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 10
    eval_images: int = 8
    deterministic: bool = True
    resume: bool = False
    overwrite: bool = False
    threads: int | None = None
    verbose: bool = False

    def resolved(self) -> "StylizerConfig":
        """Checked (see :func:`check_config`), with paths as ``Path``."""
        check_config(self)
        import dataclasses

        return dataclasses.replace(
            self, styles=Path(self.styles), content=Path(self.content), out=Path(self.out),
            relevance_model=None if self.relevance_model is None else Path(self.relevance_model),
            cache=None if self.cache is None else Path(self.cache),
            filters=tuple(int(f) for f in self.filters), weights=str(self.weights))


def feature_layers(backbone: str) -> tuple[str, ...]:
    """Names of the 4-D feature layers of the Keras ResNet50 / VGG19 (no TensorFlow: checked
    before any work; ``tests/test_stylizer.py`` compares them with the built models)."""
    if backbone == "vgg19":
        names = []
        for block, convs in enumerate((2, 2, 4, 4, 4), start=1):
            names += [f"block{block}_conv{i}" for i in range(1, convs + 1)]
            names.append(f"block{block}_pool")
        return tuple(names)
    names = ["conv1_pad", "conv1_conv", "conv1_bn", "conv1_relu", "pool1_pad", "pool1_pool"]
    for stage, blocks in enumerate((3, 4, 6, 3), start=2):
        for b in range(1, blocks + 1):
            p = f"conv{stage}_block{b}"
            if b == 1:
                names += [f"{p}_0_conv", f"{p}_0_bn"]  # the projection shortcut
            names += [f"{p}_1_conv", f"{p}_1_bn", f"{p}_1_relu", f"{p}_2_conv", f"{p}_2_bn",
                      f"{p}_2_relu", f"{p}_3_conv", f"{p}_3_bn", f"{p}_add", f"{p}_out"]
    return tuple(names)


def check_config(cfg: StylizerConfig) -> None:
    """Refuse bad values and missing files (nothing is read, built or written)."""
    if cfg.styles is None:
        raise UsageError("--styles is required: the folder of style images (e.g. frames of "
                         "the target scanner) the network learns to imitate")
    for name in ("styles", "content"):
        path = Path(getattr(cfg, name))
        if not path.exists():
            raise UsageError(f"--{name} {path}: no such file or folder")
    for name in ("steps", "batch_size", "n_styles", "residual_blocks", "checkpoint_every",
                 "log_every", "eval_images"):
        _whole(name, getattr(cfg, name))
    _whole("seed", cfg.seed, minimum=0)
    _whole("size", cfg.size, minimum=32)
    if cfg.size % SIDE_MULTIPLE:
        raise UsageError(f"--size must be a multiple of {SIDE_MULTIPLE} (the network halves "
                         f"the side twice), got {cfg.size}")
    if cfg.threads is not None:
        _whole("threads", cfg.threads)
    if isinstance(cfg.noise_layers, bool) or cfg.noise_layers not in (0, 1, 2, 3):
        raise UsageError(f"--noise-layers must be 0, 1, 2 or 3, got {cfg.noise_layers!r}")
    filters = tuple(cfg.filters)
    if len(filters) != 3 or any(isinstance(f, bool) or not isinstance(f, int) or f < 1
                                for f in filters):
        raise UsageError(f"filters must be three positive channel counts, got {filters}")
    if not cfg.learning_rate > 0:
        raise UsageError(f"--lr must be > 0, got {cfg.learning_rate}")
    for name in ("content_weight", "style_weight", "tv_weight", "noise_init"):
        if not getattr(cfg, name) >= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got "
                             f"{getattr(cfg, name)}")
    if cfg.content_weight + cfg.style_weight == 0:
        raise UsageError("--content-weight and --style-weight are both 0: nothing to learn")
    if cfg.backbone not in BACKBONES:
        raise BackboneError(f"unknown backbone {cfg.backbone!r}; choose one of "
                            f"{', '.join(BACKBONES)}")
    if cfg.content_layer is not None and cfg.content_layer not in feature_layers(cfg.backbone):
        import difflib

        close = difflib.get_close_matches(str(cfg.content_layer), feature_layers(cfg.backbone), 3)
        raise BackboneError(f"unknown {cfg.backbone} layer {cfg.content_layer!r} for "
                            "--content-layer" + (f"; did you mean {', '.join(close)}?" if close
                                                 else ""))
    if cfg.style_average not in STYLE_AVERAGES:
        raise UsageError(f"unknown style average {cfg.style_average!r}; choose one of "
                         f"{', '.join(STYLE_AVERAGES)}")
    if cfg.crop not in CROPS:
        raise UsageError(f"unknown --crop {cfg.crop!r}; choose one of {', '.join(CROPS)}")
    if cfg.resume and cfg.overwrite:
        raise UsageError("--resume continues the run in --out, --overwrite starts it over: "
                         "give one of them")
    weights = str(cfg.weights)
    if weights.lower() not in ("imagenet", "none"):
        path = Path(weights)
        if not path.is_file():
            raise BackboneError(f"{path}: weights file not found (give a Keras .h5 weights "
                                "file, 'imagenet' or 'none')")
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            raise BackboneError(f"{path}: not a Keras weights file (expected "
                                f"{', '.join(WEIGHT_SUFFIXES)})")
    if cfg.relevance_model is not None:
        from ...errors import RelevanceError
        from ...xai.relevance import RULES, classifier_run

        if cfg.relevance_rule not in RULES:
            raise UsageError(f"unknown --relevance-rule {cfg.relevance_rule!r}; choose one of "
                             f"{', '.join(RULES)}")
        try:
            run = classifier_run(cfg.relevance_model)
        except RelevanceError as exc:
            raise UsageError(f"--relevance-model: {exc}") from None
        if run is None:
            raise UsageError(f"--relevance-model {cfg.relevance_model}: not a classifier run "
                             "(no model.keras and preprocessing.json; train one with python "
                             "-m tf_usaug.train classifier)")
    out = Path(cfg.out).resolve()
    for name in ("content", "styles"):
        folder = Path(getattr(cfg, name)).resolve()
        folder = folder if folder.is_dir() else folder.parent
        if out == folder or folder in out.parents:
            raise UsageError(f"--out {cfg.out} lies inside --{name} {getattr(cfg, name)}: its "
                             "files would be read as data; choose a folder outside")
