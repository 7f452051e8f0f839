"""The main job: multiply a folder of ultrasound images into a labelled, traceable augmented set.

    python -m tf_usaug.augment                       # the bundled demo data -> ./usaug_out/
    python -m tf_usaug.augment --content BUSI/ --styles other_scanner/ --out aug/ --per-image 5
    horovodrun -np 8 python -m tf_usaug.augment ...  # same outputs, eight ranks

Methods: ``nst`` (default; paper 002: ResNet50 style transfer with the MMD + multi-reference
style loss and an LRP-weighted content loss), ``traditional`` (rotation, translation, scaling,
elastic deformation; paper 000 sec. 2.1) and ``srad`` (the SRAD multi-scale series; paper 002).
Outputs are SRAD-filtered unless ``--no-srad`` (paper 002 denoises its augmented images).

Work is a list of items (content image, k) enumerated identically on every rank, grouped into
fixed batches (so a batch, and therefore every output, does not depend on the number of
ranks), and dealt out by cost. Each item's randomness comes from ``item_seed(seed, name)``.
Finished items are skipped on a rerun; see :mod:`tf_usaug.outputs` for the on-disk contract.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import _log
from .datasets import DatasetError, Sample, discover, load_sample
from .io import ImageError, read_image, resize
from .outputs import OutputDir, write_json, write_png
from .relevance import PREPROCESS_MODES, RelevanceError

DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
METHODS = ("nst", "traditional", "srad")


@dataclass
class AugmentConfig:
    """Everything one augmentation run needs. Defaults are the paper's (preset ``paper``).

    Attributes:
        content: folder (BUSI or flat layout) or CSV of content images.
        styles: folder or CSV of style references (None: the content set itself, excluding
            each item's own image).
        out: output folder (must not be, or be inside, an input folder).
        method: "nst", "traditional" or "srad".
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
        threads: CPU threads per rank (default: cores / ranks on the node).
    """

    content: Path = DEMO_DATA
    styles: Path | None = None
    out: Path = Path("usaug_out")
    method: str = "nst"
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


@dataclass(frozen=True)
class WorkItem:
    """One output image: the k-th augmentation of one content sample."""

    name: str                     # output name, e.g. "benign/l11-5v_benign_000__nst000"
    sample: Sample
    k: int
    seed: int
    styles: tuple[Path, ...] = field(default=())


class UsageError(ValueError):
    """A bad argument combination, reported as one line."""


# --------------------------------------------------------------------------------------------
# Planning: items and batches are the same on every rank.
# --------------------------------------------------------------------------------------------
def check_paths(cfg: AugmentConfig) -> None:
    """Refuse an output folder that is, or lies inside, an input folder (and vice versa)."""
    out = Path(cfg.out).resolve()
    for name, src in (("--content", cfg.content), ("--styles", cfg.styles)):
        if src is None:
            continue
        src = Path(src).resolve()
        root = src.parent if src.is_file() else src
        if out == root or root in out.parents:
            raise UsageError(f"--out {cfg.out} is inside the input folder {name} {root}; "
                             "choose an output folder outside your data")
        if out in root.parents:
            raise UsageError(f"input {name} {root} lies inside --out {cfg.out}; "
                             "choose an output folder outside your data")


def plan_items(cfg: AugmentConfig, contents: Sequence[Sample],
               style_pool: Sequence[Path]) -> list[WorkItem]:
    """Enumerate the work items deterministically (order: content key, then k)."""
    from .distributed import item_seed

    pool = [(Path(p), Path(p).resolve()) for p in style_pool]
    candidates_of = {}
    for sample in contents:
        own = Path(sample.image).resolve()
        candidates_of[sample.key] = [p for p, real in pool if real != own] or [p for p, _ in pool]
    # one n for every item, so that batches stack (a small pool that holds some content images
    # leaves those items one candidate fewer)
    n_styles = min([cfg.n_styles] + [len(c) for c in candidates_of.values()])
    items = []
    for sample in contents:
        candidates = candidates_of[sample.key]
        for k in range(cfg.per_image):
            name = f"{sample.key}__{cfg.method}{k:03d}"
            seed = item_seed(cfg.seed, name)
            styles: tuple[Path, ...] = ()
            if cfg.method == "nst":
                rng = np.random.default_rng(seed)
                picks = rng.choice(len(candidates), size=n_styles, replace=False)
                styles = tuple(candidates[i] for i in picks)
            items.append(WorkItem(name, sample, k, seed, styles))
    return items


def make_batches(items: Sequence[WorkItem], batch_size: int) -> list[list[WorkItem]]:
    """Fixed consecutive groups: a batch's content never depends on the number of ranks."""
    return [list(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]


# --------------------------------------------------------------------------------------------
# Methods: each turns one batch of items into (image, mask, record-extras) per item.
# --------------------------------------------------------------------------------------------
class Method:
    """Interface of an augmentation method over a batch of items."""

    name = ""

    def __init__(self, cfg: AugmentConfig, out: OutputDir):
        self.cfg, self.out = cfg, out

    def prepare(self, batches: Sequence[Sequence[WorkItem]]) -> None:
        """Per-rank set-up for the batches this rank will process (models, caches).

        Also compiles the output filter for the batch shape: start-up cost, not generation.
        """
        if self.cfg.srad and batches:
            _srad_filter(np.zeros((len(batches[0]), self.cfg.size, self.cfg.size), np.float32),
                         self.cfg)

    def run(self, batch: Sequence[WorkItem]) -> list[tuple[np.ndarray, np.ndarray | None, dict]]:
        raise NotImplementedError


def _load(item: WorkItem, size: int):
    image, mask = load_sample(item.sample, size=size)
    return image, mask


def _srad_filter(images: np.ndarray, cfg: AugmentConfig) -> np.ndarray:
    from .srad import SRADConfig, srad_tf

    iterations = SRADConfig().iterations * cfg.srad_scale
    return np.asarray(srad_tf(images, iterations=iterations), dtype=np.float32)


class TraditionalMethod(Method):
    name = "traditional"

    def run(self, batch):
        from .transforms import TraditionalConfig, random_geometric

        tcfg = TraditionalConfig()
        results = []
        warped = []
        for item in batch:
            image, mask = _load(item, self.cfg.size)
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

    def run(self, batch):
        from .srad import SRADConfig, srad_tf

        scfg = SRADConfig()
        results = []
        for item in batch:
            image, mask = _load(item, self.cfg.size)
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


class NSTMethod(Method):
    """Paper 002's XAI-based NST (see :mod:`tf_usaug.nst`, :mod:`tf_usaug.losses`)."""

    name = "nst"

    def __init__(self, cfg, out):
        super().__init__(cfg, out)
        self._style_cache: dict[Path, np.ndarray] = {}
        self._relevance_paths: dict[Path, Path] = {}
        self.stylizer = None

    def relevance_config(self):
        from .relevance import RelevanceConfig

        extra = {} if self.cfg.relevance_preprocess is None else {
            "preprocess": self.cfg.relevance_preprocess}
        return RelevanceConfig(model=self.cfg.relevance_model,
                               weights=relevance_weights(self.cfg),
                               rule=self.cfg.relevance_rule, size=self.cfg.size, **extra)

    def prepare(self, batches):
        from .backbones import BackboneConfig
        from .losses import StyleLossConfig
        from .nst import NSTConfig, Stylizer

        super().prepare(batches)
        log = _log.get()
        if self.cfg.relevance and batches:
            from .relevance import ensure_relevance

            images = sorted({it.sample.image for b in batches for it in b})
            cache = Path(self.cfg.cache or self.out.root / "cache")
            rcfg = self.relevance_config()
            with _log.Stage(f"relevance maps ({rcfg.rule} on {rcfg.model}) for "
                            f"{len(images)} content images", log):
                self._relevance_paths = ensure_relevance(images, rcfg, cache,
                                                         verbose=self.cfg.verbose)
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

    def _style(self, path: Path) -> np.ndarray:
        if path not in self._style_cache:
            img, _ = read_image(path)
            self._style_cache[path] = resize(img, self.cfg.size)
        return self._style_cache[path]

    def run(self, batch):
        from .relevance import load_relevance, relevance_to_weight, save_heatmap

        size = self.cfg.size
        loaded = [_load(it, size) for it in batch]
        contents = np.stack([im for im, _ in loaded])
        styles = np.stack([np.stack([self._style(p) for p in it.styles]) for it in batch])
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
                save_heatmap(contents[i], relevances[i], heat)
                extras["relevance"] = str(self._relevance_paths[item.sample.image])
                extras["heatmap"] = self.out.relative(heat)
            outs.append((images[i], loaded[i][1], extras))
        return outs


METHOD_CLASSES = {m.name: m for m in (NSTMethod, TraditionalMethod, SRADMethod)}


# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------
def _style_pool(cfg: AugmentConfig, contents: Sequence[Sample]) -> list[Path]:
    if cfg.method != "nst":
        return []
    if cfg.styles is None:
        return [s.image for s in contents]
    return [s.image for s in discover(cfg.styles)]


def _write_item(out: OutputDir, item: WorkItem, image, mask, extras: dict, cfg: AugmentConfig,
                rank: int, seconds: float) -> None:
    img_path = write_png(out.image_path(item.name), image)
    mask_rel = None
    if mask is not None:
        mask_rel = out.relative(write_png(out.mask_path(item.name), mask))
    record = {
        "output": out.relative(img_path),
        "content": str(item.sample.image),
        "content_masks": [str(m) for m in item.sample.masks],
        "mask": mask_rel,
        "label": item.sample.label,
        "method": cfg.method,
        "k": item.k,
        "seed": item.seed,
        "global_seed": cfg.seed,
        "srad": cfg.srad,
        "rank": rank,
        "seconds": round(seconds, 4),
        "params": {},
    }
    record.update(extras)
    out.write_record(item.name, record)


def run(cfg: AugmentConfig) -> dict:
    """Run the augmentation job (on every rank when under horovodrun). Returns the summary."""
    from . import distributed

    if cfg.method not in METHODS:
        raise UsageError(f"unknown --method {cfg.method!r}; choose from {', '.join(METHODS)}")
    for name in ("per_image", "batch_size", "n_styles", "iterations", "srad_scale"):
        if getattr(cfg, name) < 1:
            hint = " (use --no-srad to switch the filter off)" if name == "srad_scale" else ""
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got "
                             f"{getattr(cfg, name)}{hint}")
    if cfg.threads is not None and cfg.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {cfg.threads}")
    if cfg.size < 8:
        raise UsageError(f"--size must be >= 8, got {cfg.size}")
    if cfg.method == "nst" and cfg.relevance and cfg.size < 32:
        raise UsageError(f"--size {cfg.size} is too small for the relevance classifier "
                         "(ResNet50 downsamples by 32): use --size >= 32 or --no-relevance")
    if cfg.method == "srad":
        from .srad import SRADConfig

        if cfg.per_image > SRADConfig().scales:
            raise UsageError(f"--method srad gives at most {SRADConfig().scales} outputs per image "
                             f"(the L scales of the series); got --per-image {cfg.per_image}")
    if cfg.method == "nst" and cfg.relevance:
        relevance_weights(cfg)  # a weights file needs --relevance-weights: say so now
    check_paths(cfg)
    contents = discover(cfg.content)
    style_pool = _style_pool(cfg, contents)

    t_start = time.perf_counter()
    # one small collective per batch: a slow Horovod cycle leaves the cores to the work
    ctx = distributed.init(cfg.threads, cycle_time_ms=50)
    log = _log.setup(cfg.verbose, ctx.rank)
    out = OutputDir(cfg.out)
    if ctx.is_root:
        out.root.mkdir(parents=True, exist_ok=True)
        stale = out.remove_stale_temporaries()
        if stale:
            log.info("removed %d partial files left by an interrupted run", stale)
    ctx.barrier()  # Horovod: nobody scans or writes before rank 0 has cleaned up

    items = plan_items(cfg, contents, style_pool)
    if cfg.method == "nst" and items and len(items[0].styles) < cfg.n_styles:
        log.warning("only %d style references per output (asked --n-styles %d): the style "
                    "pool is that small", len(items[0].styles), cfg.n_styles)
    batches = make_batches(items, cfg.batch_size)
    pending = [b for b in batches if not all(out.is_done(it.name) for it in b)]
    done_before = sum(out.is_done(it.name) for it in items)
    costs = [sum(1 for it in b if not out.is_done(it.name)) for b in pending]
    shares = [distributed.shard(costs, r, ctx.size) for r in range(ctx.size)]
    mine = [pending[i] for i in shares[ctx.rank]]
    rounds = max((len(s) for s in shares), default=0)
    log.info("==> %s: %d content images x %d = %d outputs (%d already done), %d rank(s), "
             "method %s, %dx%d", cfg.content, len(contents), cfg.per_image, len(items),
             done_before, ctx.size, cfg.method, cfg.size, cfg.size)

    method = METHOD_CLASSES[cfg.method](cfg, out)
    t_prepare = time.perf_counter()
    method.prepare(mine)
    prepare_seconds = time.perf_counter() - t_prepare

    bar = None
    if ctx.is_root and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), initial=done_before, unit="img", desc="augment",
                   dynamic_ncols=True, file=sys.stderr)
    busy = 0.0
    written = 0
    for r in range(rounds):
        n_new = 0
        if r < len(mine):
            batch = mine[r]
            t0, cpu0 = time.perf_counter(), time.process_time()
            results = method.run(batch)
            seconds = (time.perf_counter() - t0) / max(1, len(batch))
            for item, (image, mask, extras) in zip(batch, results):
                if out.is_done(item.name):  # finished by an earlier, interrupted run
                    continue
                _write_item(out, item, image, mask, extras, cfg, ctx.rank, seconds)
                n_new += 1
            busy += time.perf_counter() - t0
            written += n_new
            log.debug("rank %d: batch %d/%d, %d images in %.2f s (CPU %.2f s)", ctx.rank, r + 1,
                      len(mine), len(batch), time.perf_counter() - t0,
                      time.process_time() - cpu0)
        total_new = int(ctx.allreduce_sum([n_new])[0])  # Horovod: global progress per round
        if bar is not None:
            bar.update(total_new)
    idle = ctx.barrier()  # Horovod: wait for the slowest rank
    if bar is not None:
        bar.close()
    stats = {"rank": ctx.rank, "images": written, "busy_seconds": round(busy, 3),
             "idle_seconds": round(idle, 3), "prepare_seconds": round(prepare_seconds, 3),
             "cpus": ctx.cpus, "host": os.uname().nodename}
    write_json(out.rank_path(ctx.rank), stats)
    per_rank = ctx.allgather_object(stats)

    summary = {}
    if ctx.is_root:
        n_manifest = out.write_manifest([it.name for it in items])
        wall = time.perf_counter() - t_start
        new = sum(s["images"] for s in per_rank)
        busy_total = sum(s["busy_seconds"] for s in per_rank)
        summary = {
            "images": n_manifest,
            "expected_images": len(items),
            "complete": n_manifest == len(items),
            "generated_this_run": new,
            "seconds": round(wall, 3),
            "images_per_second": round(new / wall, 4) if wall > 0 else 0.0,
            "images_per_busy_second": round(new / busy_total * ctx.size, 4) if busy_total else 0.0,
            "ranks": ctx.size,
            "per_rank": sorted(per_rank, key=lambda s: s["rank"]),
            "method": cfg.method,
            "config": {k: (str(v) if isinstance(v, Path) else v)
                       for k, v in dataclasses.asdict(cfg).items()},
        }
        write_json(out.summary_path, summary)
        log.info("==> wrote %d images (%d new) to %s in %.1f s (%.2f img/s); manifest: %s",
                 n_manifest, new, out.root, wall, summary["images_per_second"],
                 out.manifest_path)
    ctx.barrier()
    return summary


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tf_usaug.augment",
        description="Augment ultrasound images (NST with MMD + multi-reference style loss and "
                    "LRP-weighted content loss; traditional; SRAD). Without --content it runs "
                    "the 'demo' preset on the bundled demo data.",
        epilog="presets (explicit flags override them): paper = the AugmentConfig defaults "
               "(224 px, 1000 iterations, ImageNet weights, 5 outputs per image, 3 style "
               "references); demo = " + ", ".join(f"{k}={v}" for k, v in PRESETS["demo"].items()
                                                  if k != "content")
               + " on the bundled demo data. All defaults: python -m tf_usaug.config",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--preset", choices=sorted(PRESETS), default=None,
      help="named settings; default 'demo' without --content, else 'paper'")
    a("--demo", action="store_true", help="shorthand for --preset demo")
    a("--content", type=Path, help="content images: BUSI folder, flat folder or CSV")
    a("--styles", type=Path, help="style references (default: the content set)")
    a("--out", type=Path, help="output folder (default usaug_out)")
    a("--method", choices=METHODS, help="augmentation method (default nst)")
    a("--per-image", type=int, dest="per_image", help="outputs per content image")
    a("--size", type=int, help="working resolution (square side)")
    a("--seed", type=int, help="global seed")
    a("--srad", dest="srad", action="store_true", default=None, help="SRAD-filter outputs")
    a("--no-srad", dest="srad", action="store_false", help="do not SRAD-filter outputs")
    a("--srad-scale", type=int, dest="srad_scale", help="SRAD scale used to filter outputs")
    a("--n-styles", type=int, dest="n_styles", help="style references per output")
    a("--iterations", type=int, help="NST iterations (paper: 1000)")
    a("--batch-size", type=int, dest="batch_size", help="images optimised at once")
    a("--backbone", choices=("resnet50", "vgg19"), help="NST feature extractor")
    a("--weights", help="backbone weights: imagenet, PATH to .h5, or none")
    a("--no-relevance", dest="relevance", action="store_false", default=None,
      help="plain content loss (no LRP weighting)")
    a("--relevance-model", dest="relevance_model", help="classifier explained: resnet50 or PATH")
    a("--relevance-weights", dest="relevance_weights",
      help="weights of the relevance classifier (default: --weights if imagenet/none)")
    a("--relevance-rule", dest="relevance_rule", help="iNNvestigate rule, e.g. lrp.epsilon")
    a("--relevance-preprocess", dest="relevance_preprocess", choices=PREPROCESS_MODES,
      help="grey [0,1] -> classifier input (default caffe, ResNet50's; unit for a "
           "one-channel classifier on [0,1] images)")
    a("--cache", type=Path, help="relevance cache folder (default OUT/cache)")
    a("--threads", type=int, help="CPU threads per rank (default cores / local ranks)")
    a("--no-progress", dest="progress", action="store_false", default=None)
    a("--verbose", action="store_true", default=None, help="show TensorFlow logs and details")
    return p


def config_from_args(argv: Sequence[str] | None = None) -> AugmentConfig:
    args = build_parser().parse_args(argv)
    preset = "demo" if args.demo else args.preset
    if preset is None:
        preset = "paper" if args.content is not None else "demo"
    values = dict(PRESETS[preset])
    for f in dataclasses.fields(AugmentConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    return AugmentConfig(**values)


def _rank_from_env() -> int:
    for var in ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    cfg = config_from_args(argv)
    try:
        run(cfg)
    except (ImageError, DatasetError, UsageError, RelevanceError) as exc:
        rank = _rank_from_env()
        prefix = f"[rank {rank}] " if rank else ""
        print(f"{prefix}error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
