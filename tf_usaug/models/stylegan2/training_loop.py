"""StyleGAN2's training loop: :func:`train_stylegan2` (library side of ``python -m
tf_usaug.train stylegan2``), one function in commented phases as StyleGAN2-ADA's.

Per minibatch (Karras et al. 2020a/b; StyleGAN2-ADA ``training_loop.py`` / ``loss.py``):

1. G step: ``L_G = softplus(-D(T(G(z))))`` (paper 004 eq. 1), style mixing with probability
   0.9, the mean-w tracker updated;
2. D step: ``L_D = softplus(D(T(G(z)))) + softplus(-D(T(x)))``, plus every ``r1_interval``
   minibatches ``r1_interval * gamma/2 ||grad_x D(T(x))||^2`` (lazy R1, computed in the same
   pass: StyleGAN2-ADA's "Dboth" phase);
3. the EMA generator moves toward G (half-life ``ema_kimg``);
4. ADA: the signs of the real logits are summed, and every ``ada_interval`` minibatches p
   takes one step toward r_t = 0.6 (:func:`augment.ada_update`).

``T`` is the ADA pipeline at probability p, DiffAugment, or the identity (``cfg.augment``).

Whole-state resume (``tf_usaug.models.gan.checkpoint``): G, D and G_ema weights (with the
mean w), both Adam optimisers' moments and iteration counts, the ``tf.random.Generator``
(latents, noise, augmentation parameters) and, in ``state.json``, step, kimg, ADA p and its
running sign sums, the numpy Generator of the batch draws, history. A run resumed after
kill -9 ends with the uninterrupted run's weights.

Data-parallel with Horovod: every rank draws the same GLOBAL batch, latents and seeds and
takes its slice; gradients are averaged by the distributed tape; the ADA sign statistics are
summed over ranks; rank 0's state is broadcast at the start; only rank 0 writes. Lines that
exist because of Horovod are marked ``# Horovod:``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import distributed as dist
from ...rundir import RunDir
from ..gan import run_files as gan_files
from ..gan.checkpoint import GanCheckpoint, TrainingState
from ..gan.data import batch_indices, load_gan_data
from ..gan.grids import fixed_latents, grid_labels, save_grid
from ..gan.per_class import train_per_class
from ..run_common import op_determinism
from .augment import ada_update
from .config import StyleGAN2Config
from .run_files import JOB, MODEL_TYPE, gan_info, noise_seed_pairs

CURVE_KEYS = ("loss_G", "loss_D", "r1", "rt", "ada_p")


@dataclass
class StyleGAN2Result:
    """What :func:`train_stylegan2` returns (also in ``RUN/metrics.json``)."""

    out: Path
    metrics: dict
    steps: int               # minibatches trained in all (this call and earlier ones)
    resumed_from: int        # minibatches already finished when this call started
    seconds: float           # wall time of this call
    z_dim: int = 0


def train_stylegan2(cfg: StyleGAN2Config, ctx=None):
    """Train StyleGAN2 (ADA / DiffAugment / plain); write the run folder.

    Args:
        cfg: the settings (:class:`StyleGAN2Config`).
        ctx: a started distributed context (per-class runs pass theirs).

    Returns:
        A :class:`StyleGAN2Result` (with ``cfg.resume`` on a finished run, the stored one);
        with ``cfg.per_class`` a dict ``{class: StyleGAN2Result}``.
    """
    t_start = time.perf_counter()
    # Check settings, paths and data: nothing is built or written before this passes.
    cfg = cfg.resolved()
    if cfg.per_class:
        whole = load_gan_data(cfg.data, cfg.size, fit=cfg.fit)
        return train_per_class(cfg, train_stylegan2, JOB, MODEL_TYPE,
                               gan_files.run_settings(cfg, whole.fingerprint()), ctx)
    rundir = RunDir(cfg.out)
    rundir.check_target()
    data = load_gan_data(cfg.data, cfg.size, fit=cfg.fit, classes=cfg.class_filter,
                         conditional=cfg.conditional)
    c_dim = len(data.classes) if cfg.conditional else 0
    total = cfg.total_steps

    with contextlib.ExitStack() as held:
        # Take the run folder (rank 0, before TensorFlow starts: lock, settings, resume or
        # start over), then start the ranks (GPU pinning, CPU threads; TensorFlow quiet).
        ctx, log, state, stored, note = gan_files.start_ranks(
            rundir, cfg, JOB, gan_files.run_settings(cfg, data.fingerprint()), held, total,
            "steps", ctx)
        log.info("==> data: %d images from %s%s, %d px, grey in [-1, 1]", len(data), cfg.data,
                 f" ({', '.join(cfg.class_filter)})" if cfg.class_filter else
                 (f", {c_dim} classes" if c_dim else ""), cfg.size)
        if note:
            log.info(note)
        if stored is not None:
            return StyleGAN2Result(cfg.out, stored, state.step, state.step,
                                   time.perf_counter() - t_start, cfg.z_dim)
        resumed_from = state.step if state else 0
        per_rank, mine = gan_files.rank_batch(cfg.batch_size, ctx)

        # Construct networks, optimisers, the EMA generator and the random generator
        # (deterministic ops: exact resumes).
        import tensorflow as tf

        from .networks import clone_generator, networks_from_config
        from .steps import make_steps

        held.enter_context(op_determinism(cfg.deterministic))
        G, D = networks_from_config(cfg, c_dim)
        G_ema = clone_generator(G)
        opts = {name: tf.keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1,
                                               beta_2=cfg.beta_2, epsilon=cfg.epsilon)
                for name in ("generator", "discriminator")}
        opts["generator"].build(G.trainable_variables)
        opts["discriminator"].build(D.trainable_variables)
        tf_rng = tf.random.Generator.from_seed(cfg.seed)
        checkpoint = GanCheckpoint(cfg.out, {"generator": G, "discriminator": D,
                                             "generator_ema": G_ema}, opts, tf_rng)
        log.info("==> model: StyleGAN2 G %s / D %s parameters (mapping %d FC, z %d, w %d, "
                 "%d ws), augment %s, R1 gamma %g every %d, global batch %d (%d per rank x "
                 "%d), Adam lr %g betas (%g, %g), %d steps (%.1f kimg)",
                 f"{G.count_params():,}", f"{D.count_params():,}", cfg.mapping_layers,
                 cfg.z_dim, cfg.w_dim, G.num_ws, _augment_name(cfg), cfg.r1_gamma,
                 cfg.r1_interval, cfg.batch_size, per_rank, ctx.size, cfg.learning_rate,
                 cfg.beta_1, cfg.beta_2, total, total * cfg.batch_size / 1000)

        # Resume (rank 0 reads the checkpoint) or start; every rank continues from rank 0's
        # weights, optimiser moments and random generator.
        if state is None:
            state = TrainingState(ranks=ctx.size, extras={"ada_p": float(cfg.augment_p),
                                                          "ada_sign_sum": 0.0,
                                                          "ada_sign_count": 0, "rt": None})
        elif ctx.is_root:
            checkpoint.restore(state)
        if state.ranks != ctx.size:
            log.warning("resuming a %d-rank run on %d ranks: it continues, but not bit for bit",
                        state.ranks, ctx.size)
            state.ranks = ctx.size
        dist.broadcast_initial_state(G, opts["generator"], ctx)  # Horovod: rank 0's state
        dist.broadcast_initial_state(D, opts["discriminator"], ctx)  # Horovod: rank 0's state
        dist.broadcast_initial_state(G_ema, None, ctx)  # Horovod: rank 0's EMA weights
        if ctx.hvd is not None:
            ctx.hvd.broadcast_variables([tf_rng.state], root_rank=0)  # Horovod: same draws
        rng = state.make_rng(cfg.seed)  # batch draws (its state travels in state.json)
        g_step, d_step, ema_step = make_steps(tf, cfg, G, D, G_ema, opts, ctx)
        writer = gan_files.tensorboard_writer(cfg.out, dist.is_writer(ctx))
        grid = _grid_inputs(cfg, c_dim)

        # Train: each minibatch a G step, a D step (with R1 every r1_interval), the EMA, ADA.
        if state.step < total:
            log.info("==> train: steps %d-%d of %d, checkpoint every %d, grid every %d",
                     state.step + 1, total, total, cfg.checkpoint_every, cfg.grid_every)
        t_row = time.perf_counter()
        while state.step < total:
            t_step = time.perf_counter()
            p = float(state.extras["ada_p"])
            draws = _draw(tf, tf_rng, cfg, G.num_ws, c_dim, data, rng)
            part = {k: v[mine] if k not in ("aug_g", "aug_d") else v for k, v in draws.items()}
            do_r1 = cfg.r1_gamma > 0 and state.step % cfg.r1_interval == 0
            g_terms = g_step(part["z_g"], part["z2_g"], part["cut_g"], part["c_g"],
                             part["noise_g"], part["aug_g"], tf.constant(p))
            d_terms = d_step(part["real"], part["c_real"], part["z_d"], part["z2_d"],
                             part["cut_d"], part["c_d"], part["noise_d"], part["aug_d"],
                             tf.constant(p), do_r1)
            ema_step()
            signs = ctx.allreduce_sum([float(d_terms["sign_sum"]), per_rank])  # Horovod: sum
            values = dist.average_metrics({"loss_G": float(g_terms["loss_G"]),  # Horovod:
                                           "loss_D": float(d_terms["loss_D"]),  # mean over
                                           "real_logit": float(d_terms["real_logit"]),  # ranks
                                           "fake_logit": float(d_terms["fake_logit"])}, ctx)
            if do_r1:
                values["r1"] = float(dist.average_metrics(  # Horovod: mean over ranks
                    {"r1": float(d_terms["r1"])}, ctx)["r1"])
            _ada_bookkeeping(cfg, state, signs)
            state.step += 1
            state.kimg += cfg.batch_size / 1000.0
            state.accumulate({**values, "ada_p": state.extras["ada_p"]})
            state.seconds += time.perf_counter() - t_step
            last = state.step == total
            if state.step % cfg.log_every == 0 or last:
                row = state.close_row(time.perf_counter() - t_row)
                t_row = time.perf_counter()
                if state.extras.get("rt") is not None:
                    row["rt"] = state.extras["rt"]
                gan_files.write_scalars(writer, state.step, row)
                log.info("step %d/%d (%.2f kimg): G %.4f, D %.4f%s, r_t %s, p %.4f, %.2f s/step",
                         state.step, total, state.kimg, row["loss_G"], row["loss_D"],
                         f", R1 {row['r1']:.4f}" if "r1" in row else "",
                         "-" if state.extras.get("rt") is None else f"{state.extras['rt']:.3f}",
                         state.extras["ada_p"], row["seconds"] / max(1, row["steps"]))
            if dist.is_writer(ctx) and ((cfg.grid_every and state.step % cfg.grid_every == 0)
                                        or last):
                image = save_grid(cfg.out, state.step, _sample(tf, G_ema, *grid),
                                  columns=cfg.grid_size)  # Horovod: rank 0 writes
                gan_files.write_grid_summary(writer, state.step, _read_png(image))
            if dist.is_writer(ctx) and (state.step % cfg.checkpoint_every == 0 or last):
                checkpoint.save(state, rng)  # Horovod: rank 0 writes

        # Write the results (rank 0): the EMA generator, gan.json, curves, metrics last.
        metrics = _metrics(cfg, data, state, G, D)
        if dist.is_writer(ctx):
            if writer is not None:
                writer.close()
            gan_files.write_results(cfg.out, G_ema, gan_info(cfg, data, state, G),
                                    metrics, CURVE_KEYS)
        ctx.barrier()  # Horovod: nobody returns before rank 0 has written
    log.info("==> wrote %s: %d steps, %.2f kimg, ADA p %.4f, %.1f s training", cfg.out,
             state.step, state.kimg, state.extras["ada_p"], state.seconds)
    return StyleGAN2Result(cfg.out, metrics, state.step, resumed_from,
                           time.perf_counter() - t_start, cfg.z_dim)


# ----------------------------------------------------------------------------- helpers


def _augment_name(cfg: StyleGAN2Config) -> str:
    if cfg.augment == "ada":
        return (f"ADA ({cfg.ada_pipeline}, p0 {cfg.augment_p:g}, target "
                f"{cfg.ada_target if cfg.ada_target is not None else 'none (fixed p)'})")
    if cfg.augment == "diffaugment":
        return f"DiffAugment ({', '.join(cfg.diffaugment)})"
    return "none"


def _draw(tf, tf_rng, cfg: StyleGAN2Config, num_ws: int, c_dim: int, data, rng) -> dict:
    """Everything random of one minibatch, for the GLOBAL batch (ranks take slices): real
    images (numpy Generator), latents, mixing cut-offs, labels, noise and augmentation seeds
    (the TF Generator)."""
    b = cfg.batch_size
    idx = batch_indices(rng, len(data), b)
    out = {"real": tf.constant(data.images[idx][..., None])}
    out["c_real"] = _one_hot(tf, data.labels[idx], c_dim)
    for phase in ("g", "d"):
        out[f"z_{phase}"] = tf_rng.normal([b, cfg.z_dim])
        out[f"z2_{phase}"] = tf_rng.normal([b, cfg.z_dim])
        mix = tf_rng.uniform([b]) < cfg.style_mixing
        cut = tf_rng.uniform([b], 1, max(2, num_ws), dtype=tf.int32)
        out[f"cut_{phase}"] = tf.where(mix, cut, num_ws)
        labels = tf_rng.uniform([b], 0, max(1, c_dim), dtype=tf.int32)
        out[f"c_{phase}"] = _one_hot(tf, labels.numpy() if c_dim else None, c_dim)
        out[f"noise_{phase}"] = tf_rng.uniform_full_int([b, 2], tf.int32)
        out[f"aug_{phase}"] = tf_rng.uniform_full_int([2, 2], tf.int32)
    return out


def _one_hot(tf, labels, c_dim: int):
    if not c_dim:
        return tf.zeros([0, 0])
    return tf.one_hot(np.asarray(labels, np.int32), c_dim)


def _ada_bookkeeping(cfg: StyleGAN2Config, state: TrainingState, signs) -> None:
    """Sum the real logits' signs; every ``ada_interval`` steps move p (pure rule)."""
    if cfg.augment != "ada" or cfg.ada_target is None:
        return
    state.extras["ada_sign_sum"] += float(signs[0])
    state.extras["ada_sign_count"] += int(signs[1])
    if (state.step + 1) % cfg.ada_interval == 0:
        rt = state.extras["ada_sign_sum"] / max(1, state.extras["ada_sign_count"])
        state.extras["rt"] = rt
        state.extras["ada_p"] = ada_update(state.extras["ada_p"], rt, cfg.ada_target,
                                           cfg.batch_size, cfg.ada_interval, cfg.ada_kimg)
        state.extras["ada_sign_sum"], state.extras["ada_sign_count"] = 0.0, 0


def _grid_inputs(cfg: StyleGAN2Config, c_dim: int):
    """Fixed latents, labels and noise seeds of the sample grids."""
    import tensorflow as tf

    n = cfg.grid_size ** 2
    z = tf.constant(fixed_latents(cfg.seed, n, cfg.z_dim))
    labels = grid_labels(n, c_dim)
    c = None if labels is None else tf.one_hot(labels, c_dim)
    return z, c, tf.constant(noise_seed_pairs(list(range(n))))


def _sample(tf, G, z, c, seeds) -> np.ndarray:
    """Generator outputs in [0, 1] as ``[N, S, S]``."""
    images = G(z, c, seeds, training=False)
    return np.clip((images.numpy()[..., 0] + 1.0) / 2.0, 0.0, 1.0)


def _read_png(path) -> np.ndarray:
    from ...data.image_io import read_image

    return read_image(path)[0]


def _metrics(cfg: StyleGAN2Config, data, state: TrainingState, G, D) -> dict:
    seconds = state.seconds
    return {"steps": state.step, "kimg": round(state.kimg, 4), "batch_size": cfg.batch_size,
            "size": cfg.size, "ranks": state.ranks, "images": len(data),
            "classes": list(data.classes), "augment": cfg.augment,
            "ada_p": state.extras["ada_p"], "rt": state.extras.get("rt"),
            "generator_parameters": int(G.count_params()),
            "discriminator_parameters": int(D.count_params()),
            "train_seconds": round(seconds, 3),
            "train_images_per_second": round(state.kimg * 1000 / seconds, 3)
            if seconds > 0 else None,
            "config": {k: v for k, v in dataclasses.asdict(cfg).items()
                       if k not in ("data", "out", "resume", "overwrite", "verbose")},
            "history": state.history}
