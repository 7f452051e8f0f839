"""The stylizer's training loop: :func:`train_stylizer` (library side of ``python -m
tf_usaug.train stylizer``), one function in commented phases.

Johnson et al. 2016 / paper 001 sec. 3.3: an image transform network (``networks.py``) is
trained to minimise the NST engine's perceptual losses (``losses.py``: content loss, LRP-weighted
with a classifier run; poly-MMD + multi-reference style loss against references drawn from the
style pool every step) on a frozen loss network.

Data-parallel with Horovod (``horovodrun -np N``): the GLOBAL batch is split evenly over the
ranks; every rank draws the same global batch from ``(seed, step)`` and takes its slice, so a
step is the single-process step on the same images (no learning-rate scaling); gradients are
averaged by the distributed tape; rank 0's initial (or resumed) state and loss scales are
broadcast; only rank 0 writes. Lines that exist because of Horovod are marked ``# Horovod:``.
"""
from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import distributed as dist
from ... import log as _log
from ...cli import rank_from_env
from ...errors import UsageError
from ...rundir import RunDir
from ..run_common import init_context, op_determinism
from . import run_files
from .checkpoint import StylizerState, restore_checkpoint, save_checkpoint
from .config import StylizerConfig
from .data import batch_choices, eval_indices, load_data, step_indices

#: Evaluation-batch images per forward pass (bounds memory at large sizes).
EVAL_CHUNK = 4


@dataclass
class StylizerResult:
    """What :func:`train_stylizer` returns (also in ``RUN/metrics.json``)."""

    out: Path
    metrics: dict            # metrics.json: initial / final losses, scales, history
    steps: int               # steps trained in all (this call and earlier ones)
    resumed_from: int        # steps already finished when this call started
    seconds: float           # wall time of this call


def train_stylizer(cfg: StylizerConfig) -> StylizerResult:
    """Train the transform network; write its run folder (``run_files.py``).

    Args:
        cfg: the settings (:class:`StylizerConfig`).

    Returns:
        The :class:`StylizerResult`; with ``cfg.resume`` on a finished run, the stored one.
    """
    t_start = time.perf_counter()
    # Check settings, paths and data: nothing is built or written before this passes.
    cfg = cfg.resolved()
    rundir = RunDir(cfg.out)
    rundir.check_target()
    data = load_data(cfg.content, cfg.styles, cfg.size, cfg.crop)
    fingerprint = hashlib.sha256(data.contents.tobytes() + data.styles.tobytes()).hexdigest()

    with contextlib.ExitStack() as held:
        # Take the run folder (rank 0, before TensorFlow starts): lock, settings, then resume
        # or start over.
        verdict = (run_files.take_run_dir(rundir, cfg, run_files.run_settings(cfg, fingerprint),
                                          held) if rank_from_env() == 0 else None)

        # Start the ranks: GPU pinning, CPU threads; TensorFlow quiet unless verbose.
        ctx = init_context(cfg.threads)
        log = _log.setup(cfg.verbose, ctx.rank)
        state, stored, note = ctx.allgather_object(verdict)[0]  # Horovod: rank 0's verdict
        log.info("==> data: %d contents from %s, %d style images from %s, %d px", len(data),
                 cfg.content, len(data.styles), cfg.styles, cfg.size)
        if note:
            log.info(note)
        if stored is not None:
            return StylizerResult(cfg.out, stored, state.step, state.step,
                                  time.perf_counter() - t_start)
        resumed_from = state.step if state else 0
        if cfg.batch_size % ctx.size:
            raise UsageError(f"--batch-size {cfg.batch_size} is the global batch: it must be "
                             f"a multiple of the {ctx.size} ranks")
        per_rank = dist.per_rank_batch_size(cfg.batch_size, ctx)
        mine = slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)

        # Relevance (optional): the classifier's LRP maps of the training contents, computed
        # once in a child process (rank 0), read by every rank.
        weights = None
        if cfg.relevance_model is not None:
            weights = _relevance_weights(cfg, data, ctx, log)

        # Construct the networks and the optimiser (deterministic ops: exact resumes).
        import tensorflow as tf

        from ...nst.backbones import BackboneConfig, build_extractor
        from ...nst.losses import StyleLossConfig
        from .losses import PerceptualLoss
        from .networks import build_transform_net, noise_seeds

        held.enter_context(op_determinism(cfg.deterministic))
        net = build_transform_net(cfg.filters, cfg.residual_blocks, cfg.noise_layers,
                                  cfg.noise_init, seed=cfg.seed)
        extractor = build_extractor(BackboneConfig(name=cfg.backbone, weights=cfg.weights,
                                                   content_layer=cfg.content_layer,
                                                   seed=cfg.seed))
        style_cfg = StyleLossConfig(average=None if cfg.style_average == "none"
                                    else cfg.style_average)
        loss = PerceptualLoss(extractor, style_cfg, cfg.size, cfg.content_weight,
                              cfg.style_weight, cfg.tv_weight)
        optimizer = tf.keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1,
                                             beta_2=cfg.beta_2, epsilon=cfg.epsilon)
        optimizer.build(net.trainable_variables)
        log.info("==> model: transform net %s parameters (%d residual blocks, %d noise layers), "
                 "loss network %s (weights %s), content layer %s, style layers %s%s, global "
                 "batch %d (%d per rank x %d), Adam lr %g", f"{net.count_params():,}", cfg.residual_blocks,
                 cfg.noise_layers, cfg.backbone, cfg.weights, loss.content_layer,
                 ", ".join(loss.style_layers),
                 "" if not loss.left_out else " (left out, too few positions: "
                 + ", ".join(l for l, _ in loss.left_out) + ")", cfg.batch_size, per_rank,
                 ctx.size, cfg.learning_rate)

        def batch(indices, key):
            """Contents, weights, references and noise seeds of one (slice of a) batch."""
            refs, noise = batch_choices(data, indices, cfg.n_styles, cfg.seed, key)
            return (data.contents[indices][..., None],
                    None if weights is None else weights[indices],
                    data.styles[refs][..., None], noise_seeds(noise))

        evaluation = eval_indices(len(data), cfg.eval_images)
        eval_batch = batch(evaluation, "eval")

        # Resume, or balance the losses on the evaluation batch (rank 0 measures, every rank
        # uses its numbers); every rank starts from rank 0's weights and optimiser.
        if state is None:
            state = StylizerState(ranks=ctx.size)
            if ctx.is_root:
                contents, content_weights, references, _ = eval_batch
                state.scales = loss.calibrate(contents, references, content_weights)
            state.scales = ctx.allgather_object(state.scales)[0]  # Horovod: rank 0's scales
        elif ctx.is_root:
            restore_checkpoint(cfg.out, state.latest, net, optimizer)
        loss.scales = dict(state.scales)
        if state.ranks != ctx.size:
            log.warning("resuming a %d-rank run on %d ranks: it continues, but not bit for bit",
                        state.ranks, ctx.size)
            state.ranks = ctx.size
        dist.broadcast_initial_state(net, optimizer, ctx)  # Horovod: rank 0's state everywhere
        evaluate = _make_evaluate(tf, net, loss)
        if state.initial is None:
            state.initial = _evaluate_batch(evaluate, eval_batch)
        train_step = _make_train_step(tf, net, loss, optimizer, ctx)
        writer = tf.summary.create_file_writer(str(cfg.out / run_files.TENSORBOARD_DIR)) \
            if dist.is_writer(ctx) else None

        # Train: step s draws its batch, references and noise from (seed, s) alone.
        if state.step < cfg.steps:
            log.info("==> train: steps %d-%d of %d, %d references per image, checkpoint every "
                     "%d", state.step + 1, cfg.steps, cfg.steps, cfg.n_styles,
                     cfg.checkpoint_every)
        t_row = time.perf_counter()
        while state.step < cfg.steps:
            t_step = time.perf_counter()
            indices = step_indices(len(data), cfg.batch_size, cfg.seed, state.step)
            contents, w, refs, seeds = batch(indices, str(state.step))
            args = [contents[mine], refs[mine], seeds[mine]]
            losses = train_step(*args, *([] if w is None else [w[mine]]))
            state.accumulate(dist.average_metrics(  # Horovod: mean over ranks
                {k: float(v) for k, v in losses.items()}, ctx))
            state.step += 1
            state.seconds += time.perf_counter() - t_step
            if state.step % cfg.log_every == 0 or state.step == cfg.steps:
                row = state.close_row(time.perf_counter() - t_row)
                t_row = time.perf_counter()
                if writer is not None:
                    with writer.as_default(step=state.step):
                        for key in ("total", "content", "style"):
                            tf.summary.scalar(key, row[key])
                log.info("step %d/%d: loss %.4f (content %.4f, style %.4f) %.2f s/step",
                         state.step, cfg.steps, row["total"], row["content"], row["style"],
                         row["seconds"] / max(1, row["steps"]))
            if dist.is_writer(ctx) and (state.step % cfg.checkpoint_every == 0
                                        or state.step == cfg.steps):
                save_checkpoint(cfg.out, net, optimizer, state)  # Horovod: rank 0 writes

        # Evaluate the fixed batch again: the losses before and after training.
        log.info("==> evaluate: %d contents, the same references and noise as before "
                 "training", len(evaluation))
        final = _evaluate_batch(evaluate, eval_batch)
        metrics = _metrics(cfg, data, loss, state, final)

        # Write the results (rank 0): model, info, curves, metrics.
        if dist.is_writer(ctx):
            writer.close()
            run_files.write_results(cfg.out, net, run_files.run_info(
                cfg, loss.content_layer, loss.style_layers, state.step), metrics)
        ctx.barrier()  # Horovod: nobody returns before rank 0 has written
    log.info("==> wrote %s: style loss %.4f -> %.4f, content loss %.4f -> %.4f (%.1f s)",
             cfg.out, metrics["initial"]["style"], metrics["final"]["style"],
             metrics["initial"]["content"], metrics["final"]["content"],
             time.perf_counter() - t_start)
    return StylizerResult(cfg.out, metrics, state.step, resumed_from,
                          time.perf_counter() - t_start)


# ----------------------------------------------------------------------------- the steps


def _make_train_step(tf, net, loss, optimizer, ctx):
    """One Adam step on this rank's share of a global batch: the share's mean loss terms."""

    @tf.function
    def train_step(contents, styles, seeds, content_weights=None):
        content_features, targets = loss.features(contents, styles)
        with tf.GradientTape() as tape:
            generated = net([contents, seeds], training=True)
            terms = loss.terms(generated, content_features, targets, content_weights)
            objective = tf.reduce_mean(terms["total"])
        tape = dist.distributed_tape(tape, ctx)  # Horovod: gradients averaged over ranks
        grads = tape.gradient(objective, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        return {key: tf.reduce_mean(value) for key, value in terms.items()}

    return train_step


def _make_evaluate(tf, net, loss):
    @tf.function
    def evaluate(contents, styles, seeds, content_weights=None):
        content_features, targets = loss.features(contents, styles)
        generated = net([contents, seeds], training=False)
        return loss.terms(generated, content_features, targets, content_weights)

    return evaluate


def _evaluate_batch(evaluate, eval_batch) -> dict[str, float]:
    """Mean balanced loss terms of the evaluation batch (in chunks)."""
    contents, weights, refs, seeds = eval_batch
    sums: dict[str, float] = {}
    for start in range(0, len(contents), EVAL_CHUNK):
        part = slice(start, start + EVAL_CHUNK)
        terms = evaluate(contents[part], refs[part], seeds[part],
                         *([] if weights is None else [weights[part]]))
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(np.sum(value.numpy()))
    return {key: value / len(contents) for key, value in sums.items()}


# ----------------------------------------------------------------------------- set-up


def _relevance_weights(cfg: StylizerConfig, data, ctx, log) -> np.ndarray:
    """Content-loss weights ``[N, S, S]`` from the classifier's LRP maps of the training
    squares (paper 002 eq. 2). Rank 0 writes the squares as PNG views (named by their bytes)
    and runs the relevance stage for the missing maps; then every rank reads them."""
    from ...files import atomic_write_bytes, encode_png
    from ...xai.relevance import (RelevanceConfig, cache_path, classifier_run,
                                  ensure_relevance, load_relevance, relevance_to_weight)

    model, mode, size = classifier_run(cfg.relevance_model)
    rcfg = RelevanceConfig(model=str(model), weights="none", rule=cfg.relevance_rule,
                           size=size, preprocess=mode, seed=cfg.seed, batch_size=1)
    cache = Path(cfg.cache or cfg.out / "cache")
    views = []
    for image in data.contents:
        png = encode_png(image)
        views.append(cache / "views" / f"{hashlib.sha256(png).hexdigest()[:32]}.png")
        if ctx.is_root and not views[-1].is_file():
            atomic_write_bytes(views[-1], png)
    if ctx.is_root:
        with _log.Stage(f"relevance maps ({rcfg.rule} on {cfg.relevance_model}) for "
                        f"{len(views)} training contents", log):
            ensure_relevance(views, rcfg, cache, verbose=cfg.verbose)
    ctx.barrier()  # Horovod: the maps exist before any rank reads them
    return np.stack([relevance_to_weight(load_relevance(cache_path(v, rcfg, cache)),
                                         (cfg.size, cfg.size)) for v in views])




def _metrics(cfg: StylizerConfig, data, loss, state: StylizerState, final: dict) -> dict:
    seconds = state.seconds
    return {"initial": state.initial, "final": final,
            "ratio": {k: (final[k] / state.initial[k] if state.initial[k] else None)
                      for k in final},
            "steps": state.step, "batch_size": cfg.batch_size, "size": cfg.size,
            "ranks": state.ranks, "scales": state.scales, "style_layers": list(loss.style_layers),
            "left_out_style_layers": [l for l, _ in loss.left_out],
            "contents": len(data), "styles": len(data.styles),
            "eval_images": min(len(data), cfg.eval_images),
            "train_seconds": round(seconds, 3),
            "train_images_per_second": round(state.step * cfg.batch_size / seconds, 3)
            if seconds > 0 else None,
            "history": state.history}
