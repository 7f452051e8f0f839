"""Augmentation methods: each turns one batch of work items into (image, mask, record extras)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .. import log as _log
from ..errors import UsageError
from .background import in_background
from .config import AugmentConfig
from .inputs import InputPreparer, Prepared
from .outputs import OutputDir
from .plan import WorkItem
from .relevance_stage import NodeWork

#: What a method returns per item: output image and mask in the working square, record extras.
#: The job cuts both out of the square with the item's :class:`Prepared` placement.
Result = tuple[np.ndarray, "np.ndarray | None", dict]


class Method:
    """Interface of an augmentation method over a batch of items."""

    name = ""

    def __init__(self, cfg: AugmentConfig, out: OutputDir, node: NodeWork | None = None):
        """``node``: every rank's pending batches and this node's rank count (the NST
        method's relevance stage shares one child per node on small jobs)."""
        self.cfg, self.out = cfg, out
        self.node = node or NodeWork(())
        self.inputs = InputPreparer(cfg.size, cfg.crop, cfg.fit)

    def prepare(self, batches: Sequence[Sequence[WorkItem]]) -> None:
        """Per-rank set-up for the batches this rank will process (models, caches).

        Also compiles the output filter for the batch shape: start-up cost, not generation.
        """
        if self.cfg.srad and batches:
            _srad_filter(np.zeros((len(batches[0]), self.cfg.size, self.cfg.size), np.float32),
                         self.cfg)

    def run(self, batch: Sequence[WorkItem], loaded: Sequence[Prepared]) -> list[Result]:
        """Augment a batch; ``loaded[i]`` is item i's content in the working square."""
        raise NotImplementedError


def _srad_filter(images: np.ndarray, cfg: AugmentConfig) -> np.ndarray:
    from ..filters.srad import SRADConfig
    from ..filters.srad_tf import srad_tf

    iterations = SRADConfig().iterations * cfg.srad_scale
    return np.asarray(srad_tf(images, iterations=iterations), dtype=np.float32)


class TraditionalMethod(Method):
    name = "traditional"

    def run(self, batch, loaded):
        from ..data.transforms import TraditionalConfig, random_geometric

        tcfg = TraditionalConfig()
        results = []
        warped = []
        for item, prepared in zip(batch, loaded):
            image, mask = prepared.image, prepared.mask
            out, out_mask, params = random_geometric(image, mask, np.random.default_rng(item.seed),
                                                     tcfg)
            warped.append(out)
            results.append([out, out_mask, {"params": params}])
        if self.cfg.srad:
            filtered = _srad_filter(np.stack(warped), self.cfg)
            for r, img in zip(results, filtered):
                r[0] = img
        return [tuple(r) for r in results]


class SRADMethod(Method):
    """Output k is scale k+1 of the SRAD multi-scale series (paper 002: n_t = 10, L = 8)."""

    name = "srad"

    def prepare(self, batches):
        """Nothing to set up: the outputs are the series itself, never filtered again."""

    def run(self, batch, loaded):
        from ..filters.srad import SRADConfig
        from ..filters.srad_tf import srad_tf

        scfg = SRADConfig()
        results = []
        for item, prepared in zip(batch, loaded):
            image, mask = prepared.image, prepared.mask
            scale = item.k + 1
            iterations = scfg.iterations * scale
            img = np.asarray(srad_tf(image[None], iterations=iterations), np.float32)[0]
            results.append((img, mask, {"params": {"scale": scale, "iterations": iterations,
                                                   "dt": scfg.dt}}))
        return results


def relevance_weights(cfg: AugmentConfig) -> str:
    """Weights of the relevance classifier: ``--relevance-weights``, else those of
    ``--weights`` when they are a name (imagenet / none). A weights *file* is the NST
    backbone's (often a ``*_notop.h5``) and does not fit the classifier: ask for its own."""
    if cfg.relevance_weights:
        return cfg.relevance_weights
    if cfg.relevance_model != "resnet50":
        return "none"  # a classifier file keeps its own weights
    if str(cfg.weights).lower() in ("imagenet", "none"):
        return str(cfg.weights).lower()
    raise UsageError(f"--weights {cfg.weights} is a file for the NST backbone; the relevance "
                     "classifier (ResNet50 with its top) needs its own: pass --relevance-weights "
                     "PATH (or imagenet), or --no-relevance")


def relevance_config(cfg: AugmentConfig):
    """The :class:`~tf_usaug.xai.relevance.RelevanceConfig` of ``cfg``. A classifier run
    folder (``--relevance-model RUN``) brings its model file, input mode and size; a random
    ResNet50 (weights none) is seeded with ``--seed``."""
    from ..xai.relevance import RelevanceConfig, classifier_run

    model, extra = cfg.relevance_model, {"size": cfg.size}
    run = None if str(model).lower() == "resnet50" else classifier_run(model)
    if run is not None:
        model, mode, size = run
        extra = {"size": size, "preprocess": mode}
    if cfg.relevance_preprocess is not None:
        extra["preprocess"] = cfg.relevance_preprocess
    return RelevanceConfig(model=str(model), weights=relevance_weights(cfg),
                           rule=cfg.relevance_rule, seed=cfg.seed,
                           batch_size=1,  # maps independent of the rank's other images
                           **extra)


class NSTMethod(Method):
    """Paper 002's XAI-based NST (see :mod:`tf_usaug.nst.stylizer`, :mod:`tf_usaug.nst.losses`)."""

    name = "nst"

    def __init__(self, cfg, out, node=None):
        super().__init__(cfg, out, node)
        self._relevance_paths: dict[Path, Path] = {}
        self.stylizer = None

    def relevance_config(self):
        return relevance_config(self.cfg)

    def prepare(self, batches):
        from ..nst.backbones import BackboneConfig
        from ..nst.losses import StyleLossConfig
        from ..nst.stylizer import NSTConfig, Stylizer

        super().prepare(batches)
        log = _log.get()
        if self.cfg.relevance and batches:
            from ..xai.relevance import ensure_relevance
            from .relevance_stage import cache_lock, share_relevance

            samples = {it.sample.image: it.sample for b in batches for it in b}
            cache = Path(self.cfg.cache or self.out.root / "cache")
            rcfg = self.relevance_config()
            if rcfg.is_resnet50 and str(rcfg.weights).lower() == "none":
                log.warning("relevance explains a RANDOM-weight ResNet50 (seed %d): its maps say "
                            "nothing about the task; train a classifier (python -m tf_usaug."
                            "train classifier) and pass --relevance-model RUN", rcfg.seed)
            # the classifier explains what the NST sees: the region in the working square
            views = {path: self._working_view(sample, cache)
                     for path, sample in sorted(samples.items())}
            # a small job asks for every rank's maps: one child per node (relevance_stage)
            job = {it.sample.image: it.sample for b in self.node.batches for it in b}
            shared = share_relevance(len(job | samples), self.node.local_size)
            ask = sorted({*views.values(), *(self._working_view(s, cache)
                                              for p, s in sorted(job.items())
                                              if shared and p not in views)})
            log.info("==> relevance maps (%s on %s) for %d content images, beside the "
                     "stylizer's start-up%s", rcfg.rule, rcfg.model, len(samples),
                     f" (one child per node for the job's {len(ask)})" if shared else "")

            cpus = self.node.cpus if shared else None

            def stage():
                with cache_lock(cache, shared):
                    return ensure_relevance(ask, rcfg, cache, verbose=self.cfg.verbose,
                                            threads=len(cpus) if cpus else None, cpus=cpus)

            # start-up overlaps: the relevance child process works while this process builds
            # and traces the stylizer (issue 12; docs/performance.md)
            relevance = in_background(stage, name="relevance")
        else:
            relevance = views = None
        with _log.Stage(f"building the {self.cfg.backbone} stylizer (weights: {self.cfg.weights})",
                        log):
            # BackboneConfig.seed: random ("none") weights are the same network in every
            # process and run
            self.stylizer = Stylizer(
                BackboneConfig(name=self.cfg.backbone, weights=self.cfg.weights,
                               seed=self.cfg.seed),
                StyleLossConfig(),
                NSTConfig(iterations=self.cfg.iterations, batch_size=self.cfg.batch_size))
        if batches:
            # graph tracing is start-up: done here, the first batch runs at full speed
            first = batches[0]
            with _log.Stage("compiling the NST step", log):
                self.stylizer.warm_up(len(first), len(first[0].styles), self.cfg.size,
                                      self.cfg.size, content_weights=self.cfg.relevance)
                if self.cfg.relevance:  # the heatmaps' plotting modules, imported once
                    import matplotlib.backends.backend_agg  # noqa: F401
                    import matplotlib.figure  # noqa: F401
        if relevance is not None:
            with _log.Stage("waiting for the relevance maps", log):
                maps = relevance.result()
            self._relevance_paths = {path: maps[view] for path, view in views.items()}

    def _working_view(self, sample, cache: Path) -> Path:
        """The content as the NST sees it (region fitted to the square), as a PNG in the cache.

        Named by its bytes, so the relevance cache (keyed by image bytes) hits across runs and
        ranks; two ranks writing the same view write the same bytes atomically.
        """
        import hashlib

        from ..files import atomic_write_bytes, encode_png

        data = encode_png(self.inputs.content(sample).image)
        path = cache / "views" / f"{hashlib.sha256(data).hexdigest()[:32]}.png"
        if not path.is_file():
            atomic_write_bytes(path, data)
        return path

    def run(self, batch, loaded):
        from ..metrics.relevance import relevance_mass_accuracy
        from ..xai.relevance import load_relevance, relevance_to_weight, save_heatmap

        size = self.cfg.size
        contents = np.stack([p.image for p in loaded])
        styles = np.stack([np.stack([self.inputs.style(p) for p in it.styles]) for it in batch])
        weights, relevances = None, []
        if self.cfg.relevance:
            relevances = [load_relevance(self._relevance_paths[it.sample.image]) for it in batch]
            weights = np.stack([relevance_to_weight(r, (size, size)) for r in relevances])
        result = self.stylizer.stylize(contents, styles, content_weights=weights)
        images = np.asarray(result.images, np.float32)
        if self.cfg.srad:
            images = _srad_filter(images, self.cfg)
        outs = []
        for i, item in enumerate(batch):
            extras = {
                "styles": [str(p) for p in item.styles],
                "iterations": int(result.iterations[i]),
                "losses": {
                    "initial": {k: float(v[i]) for k, v in result.initial.items()},
                    "final": {k: float(v[i]) for k, v in result.final.items()},
                },
                "params": {"size": size, "n_styles": len(item.styles),
                           "backbone": self.cfg.backbone, "weights": self.cfg.weights,
                           "relevance_rule": self.cfg.relevance_rule if self.cfg.relevance
                           else None},
                "relevance": None,
                "heatmap": None,
            }
            if self.cfg.relevance:
                heat = self.out.heatmap_path(item.name)
                # maps are of the working view (size x size): cut like the output
                save_heatmap(loaded[i].cut(contents[i]), loaded[i].cut(relevances[i]), heat)
                extras["relevance"] = str(self._relevance_paths[item.sample.image])
                extras["heatmap"] = self.out.relative(heat)
                if loaded[i].mask is not None:  # Arras et al. 2022 (tf_usaug.metrics.relevance)
                    extras["relevance_mass_in_mask"] = relevance_mass_accuracy(
                        relevances[i], loaded[i].mask)
            outs.append((images[i], loaded[i].mask, extras))
        return outs


METHOD_CLASSES = {m.name: m for m in (NSTMethod, TraditionalMethod, SRADMethod)}


class StylizerMethod(Method):
    """A trained feed-forward stylizer (``--model RUN`` of ``python -m tf_usaug.train
    stylizer``; :mod:`tf_usaug.models.stylizer`): one network call per output. Its noise
    layers draw from the item's seed, so the K outputs of one content differ and each is
    reproducible; the mask is the content's (the network keeps the geometry)."""

    name = "stylizer"

    def __init__(self, cfg, out, node=None):
        super().__init__(cfg, out, node)
        self.stylizer = None

    def prepare(self, batches):
        from ..files import path_digest
        from ..models.stylizer import load_stylizer_run, stylize

        super().prepare(batches)
        log = _log.get()
        with _log.Stage(f"loading the stylizer {self.cfg.model}", log):
            self.stylizer = load_stylizer_run(self.cfg.model)
            self._model_digest = path_digest(self.stylizer.path / "model.keras")
        trained = int(self.stylizer.info["size"])
        if trained != self.cfg.size:
            log.info("    the stylizer was trained at %d px, the job works at %d px: its "
                     "texture scale follows the pixels", trained, self.cfg.size)
        if batches:  # tracing is start-up: done here, the first batch runs at full speed
            with _log.Stage("compiling the stylizer", log):
                stylize(self.stylizer, [np.zeros((self.cfg.size,) * 2, np.float32)]
                        * len(batches[0]), seed=0, batch_size=self.cfg.batch_size)

    def run(self, batch, loaded):
        from ..models.stylizer import stylize

        images = stylize(self.stylizer, [p.image for p in loaded],
                         seed=[it.seed for it in batch], batch_size=self.cfg.batch_size)
        images = np.asarray(images, np.float32)
        if self.cfg.srad:
            images = _srad_filter(images, self.cfg)
        params = {"size": self.cfg.size, "model": str(self.cfg.model),
                  "model_sha256": self._model_digest, "trained_size": self.stylizer.info["size"],
                  "trained_steps": self.stylizer.info["steps"]}
        return [(images[i], loaded[i].mask, {"params": {**params, "noise_seed": item.seed}})
                for i, item in enumerate(batch)]


METHOD_CLASSES[StylizerMethod.name] = StylizerMethod


class _NoContentPixels:
    """A GAN output shows no pixel of its parent: the parent is never read as an image (its
    bytes are hashed by the job's input check), the output is the whole square."""

    def __init__(self, size: int):
        from ..data.fit import Placement

        self.size = int(size)
        whole = (0, self.size, 0, self.size)
        self.placement = Placement("stretch", self.size, whole, whole)

    def content(self, sample) -> Prepared:
        return Prepared(np.zeros((self.size, self.size), np.float32), None, self.placement,
                        (0, 0, 0, 0))  # the empty box: no parent pixel is shown


class GanMethod(Method):
    """A trained GAN (``--model RUN`` of ``python -m tf_usaug.train wgan`` / ``stylegan2``;
    :mod:`tf_usaug.models.gan`): item ``k`` of an original is a synthetic image of the
    original's class (per-class or conditional models) drawn from the item's seed; the
    original is its parent (the manifest's ``content``), so splits by source image keep
    holding. No mask: a GAN generates images only. Outputs at the model's size are resized to
    ``--size`` when it differs."""

    name = "gan"

    def __init__(self, cfg, out, node=None):
        super().__init__(cfg, out, node)
        self.inputs = _NoContentPixels(cfg.size)
        self.gan = None

    def prepare(self, batches):
        from ..models.gan.registry import load_gan_run, run_digest

        super().prepare(batches)
        log = _log.get()
        with _log.Stage(f"loading the GAN {self.cfg.model}", log):
            self.gan = load_gan_run(self.cfg.model)
            self._digest = run_digest(self.cfg.model)
        if self.gan.size != self.cfg.size:
            log.info("    the GAN makes %d px images, the job works at %d px: they are resized",
                     self.gan.size, self.cfg.size)
        if batches:  # tracing is start-up: done here, the first batch runs at full speed
            with _log.Stage("compiling the generator", log):
                self._generate(batches[0])

    def _generate(self, batch) -> np.ndarray:
        from ..data.image_io import resize
        from ..models.gan.registry import generate

        labels = None if self.gan.covers() is None else [it.sample.label for it in batch]
        images = generate(self.gan, len(batch), seed=[it.seed for it in batch], label=labels,
                          batch_size=self.cfg.batch_size)
        if self.gan.size != self.cfg.size:
            images = np.stack([resize(im, self.cfg.size) for im in images])
        return np.asarray(images, np.float32)

    def run(self, batch, loaded):
        images = self._generate(batch)
        if self.cfg.srad:
            images = _srad_filter(images, self.cfg)
        info = self.gan.info
        params = {"size": self.cfg.size, "model": str(self.cfg.model),
                  "model_sha256": self._digest, "model_type": info.model,
                  "trained_size": info.size,
                  "trained_steps": {k: v.steps for k, v in self.gan.sub_infos.items()}
                  if info.per_class else info.steps}
        return [(images[i], None, {"parent": str(item.sample.image),
                                   "params": {**params, "latent_seed": item.seed}})
                for i, item in enumerate(batch)]


METHOD_CLASSES[GanMethod.name] = GanMethod
