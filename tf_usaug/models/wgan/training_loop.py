"""The alpha-WGAN-GP's training loop: :func:`train_wgan` (library side of ``python -m
tf_usaug.train wgan``), one function in commented phases.

Paper 003 sec. II: an encoder E embeds real images, a code critic CD tells its codes from
prior samples, a generator G decodes both (reconstructions and new images), a critic D with
instance norm tells them from real images; losses of eq. 3 (``losses.py``). Each iteration
updates CD, E, D and G in that order, each with its own Adam optimiser stepped exactly once
(public alpha-WGAN-GP code steps the generator's optimiser twice per iteration).

Data-parallel with Horovod (``horovodrun -np N``): every rank draws the same GLOBAL batch
(numpy Generator) and the same global latents and interpolation weights
(``tf.random.Generator``) and takes its slice; every gradient goes through the distributed
tape; rank 0's initial (or resumed) weights, optimiser moments and random state are
broadcast; only rank 0 writes. Lines that exist because of Horovod are marked ``# Horovod:``.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import distributed as dist
from ...rundir import RunDir
from ..gan import grids
from ..gan import run_files as gan_files
from ..gan.checkpoint import GanCheckpoint, TrainingState
from ..gan.data import batch_indices, data_classes, load_gan_data, to_unit
from ..run_common import op_determinism
from .config import WganConfig

JOB = "train-wgan"
MODEL_TYPE = "wgan"
#: The update order of one iteration (paper 003 sec. II-B).
UPDATE_ORDER = ("code_critic", "encoder", "critic", "generator")
#: History keys shown in the training curves.
CURVE_KEYS = ("loss_critic", "loss_generator", "loss_code_critic", "loss_encoder",
              "wasserstein", "l1")


@dataclass
class WganResult:
    """What :func:`train_wgan` returns (also in ``RUN/metrics.json``)."""

    out: Path
    metrics: dict
    steps: int            # iterations trained in all (this call and earlier ones)
    resumed_from: int     # iterations already finished when this call started
    seconds: float        # wall time of this call
    z_dim: int = 256


def train_wgan(cfg: WganConfig, ctx=None):
    """Train the four networks; write the run folder (``..gan.run_files``).

    Args:
        cfg: the settings (:class:`WganConfig`).
        ctx: a started distributed context (the per-class driver passes its own).

    Returns:
        :class:`WganResult`; with ``cfg.per_class`` ``{class: WganResult}``.
    """
    t_start = time.perf_counter()
    # Check settings and read the data: nothing is built or written before this passes.
    cfg = cfg.resolved()
    if cfg.per_class:
        from ..gan.per_class import train_per_class

        whole = load_gan_data(cfg.data, cfg.size, fit=cfg.fit)
        return train_per_class(cfg, train_wgan, JOB, MODEL_TYPE,
                               gan_files.run_settings(cfg, whole.fingerprint()), ctx)
    rundir = RunDir(cfg.out)
    rundir.check_target()
    data = load_gan_data(cfg.data, cfg.size, fit=cfg.fit, classes=cfg.class_filter,
                         conditional=cfg.conditional)
    n_classes = len(data.classes) if cfg.conditional else 0

    with contextlib.ExitStack() as held:
        # Take the run folder (rank 0, before TensorFlow starts: lock, settings, resume or
        # start over), then start the ranks (GPU pinning, CPU threads; TensorFlow quiet).
        ctx, log, state, stored, note = gan_files.start_ranks(
            rundir, cfg, JOB, gan_files.run_settings(cfg, data.fingerprint()), held, cfg.steps,
            "steps", ctx)
        log.info("==> data: %d images from %s (%s), %d px, %s", len(data), cfg.data,
                 ", ".join(f"{c or 'unlabelled'} {n}" for c, n in data.counts().items()),
                 cfg.size, "conditional" if n_classes else "unconditional")
        if note:
            log.info(note)
        if stored is not None:
            return WganResult(cfg.out, stored, state.step, state.step,
                              time.perf_counter() - t_start, cfg.z_dim)
        resumed_from = state.step if state else 0
        per_rank, mine = gan_files.rank_batch(cfg.batch_size, ctx)

        # Construct the networks, their optimisers and the random generator (deterministic
        # ops: exact resumes).
        import tensorflow as tf

        from .networks import build_networks

        held.enter_context(op_determinism(cfg.deterministic))
        nets = build_networks(cfg, n_classes)
        opts = {name: tf.keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1,
                                               beta_2=cfg.beta_2) for name in UPDATE_ORDER}
        for name in UPDATE_ORDER:
            opts[name].build(nets[name].trainable_variables)
        tf_rng = tf.random.Generator.from_seed(cfg.seed)
        checkpoint = GanCheckpoint(cfg.out, nets, opts, tf_rng)
        log.info("==> model: G %s, D %s, E %s, CD %s parameters; z %d, global batch %d (%d "
                 "per rank x %d), Adam lr %g, lambda1 %g, lambda2 %g",
                 *(f"{nets[k].count_params():,}" for k in ("generator", "critic", "encoder",
                                                           "code_critic")),
                 cfg.z_dim, cfg.batch_size, per_rank, ctx.size, cfg.learning_rate,
                 cfg.lambda_gp, cfg.lambda_l1)

        # Resume or start; every rank continues from rank 0's weights, moments and RNG.
        if state is None:
            state = TrainingState(ranks=ctx.size)
        elif ctx.is_root:
            checkpoint.restore(state)
        if state.ranks != ctx.size:
            log.warning("resuming a %d-rank run on %d ranks: it continues, but not bit for bit",
                        state.ranks, ctx.size)
            state.ranks = ctx.size
        for name in UPDATE_ORDER:
            dist.broadcast_initial_state(nets[name], opts[name], ctx)  # Horovod: rank 0's
        if ctx.hvd is not None:
            ctx.hvd.broadcast_variables([tf_rng.state], root_rank=0)  # Horovod: same draws
        rng = state.make_rng(cfg.seed)  # state.json is rank 0's on every rank
        train_step = _make_train_step(tf, nets, opts, tf_rng, cfg, ctx, per_rank, n_classes)
        writer = gan_files.tensorboard_writer(cfg.out, dist.is_writer(ctx))
        grid_z = grids.fixed_latents(cfg.seed, grids.GRID_IMAGES, cfg.z_dim)
        grid_y = grids.grid_labels(grids.GRID_IMAGES, n_classes)
        columns = int(np.sqrt(grids.GRID_IMAGES))

        def write_grid():
            images = _sample(tf, nets["generator"], grid_z, grid_y, n_classes)
            path = grids.save_grid(cfg.out, state.step, images, columns)
            gan_files.write_grid_summary(writer, state.step, grids.image_grid(images, columns))
            return path

        # Train: each iteration draws its batch from the numpy Generator, its latents and
        # interpolation weights from the TF one (both checkpointed), then updates CD, E, D, G.
        if state.step < cfg.steps:
            log.info("==> train: iterations %d-%d of %d (update order %s), checkpoint every %d",
                     state.step + 1, cfg.steps, cfg.steps, ", ".join(UPDATE_ORDER),
                     cfg.checkpoint_every)
        t_row = time.perf_counter()
        while state.step < cfg.steps:
            t_step = time.perf_counter()
            idx = batch_indices(rng, len(data), cfg.batch_size)
            x = data.images[idx][..., None]
            y = _one_hot(data.labels[idx], n_classes)
            values = train_step(x[mine], y[mine])
            state.accumulate(dist.average_metrics(  # Horovod: mean over ranks
                {k: float(v) for k, v in values.items()}, ctx))
            state.step += 1
            state.kimg += cfg.batch_size / 1000.0
            state.seconds += time.perf_counter() - t_step
            if state.step % cfg.log_every == 0 or state.step == cfg.steps:
                row = state.close_row(time.perf_counter() - t_row)
                t_row = time.perf_counter()
                gan_files.write_scalars(writer, state.step, row, prefix="loss/")
                log.info("step %d/%d: D %.3f G %.3f CD %.3f E %.3f W %.3f L1 %.3f GP %.3f/%.3f "
                         "%.2f s/step", state.step, cfg.steps, row["loss_critic"],
                         row["loss_generator"], row["loss_code_critic"], row["loss_encoder"],
                         row["wasserstein"], row["l1"], row["gp_image"], row["gp_code"],
                         row["seconds"] / max(1, row["steps"]))
            if dist.is_writer(ctx):  # Horovod: rank 0 writes
                if cfg.grid_every and state.step % cfg.grid_every == 0:
                    write_grid()
                if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps:
                    checkpoint.save(state, rng)

        # Write the results (rank 0): the final grid, generator, gan.json, curves, metrics.
        metrics = _metrics(cfg, data, state)
        if dist.is_writer(ctx):
            grid = write_grid()
            metrics["grid"] = grid.relative_to(cfg.out).as_posix()
            writer.close()
            gan_files.write_results(cfg.out, nets["generator"], _info(cfg, data, state),
                                    metrics, CURVE_KEYS)
        ctx.barrier()  # Horovod: nobody returns before rank 0 has written
    final = metrics.get("final") or {}
    log.info("==> wrote %s: %d iterations, %.3f kimg, W %.3f, L1 %.3f (%.1f s)", cfg.out,
             state.step, state.kimg, final.get("wasserstein", float("nan")),
             final.get("l1", float("nan")), time.perf_counter() - t_start)
    return WganResult(cfg.out, metrics, state.step, resumed_from,
                      time.perf_counter() - t_start, cfg.z_dim)


# ----------------------------------------------------------------------------- the step


def _make_train_step(tf, nets, opts, tf_rng, cfg: WganConfig, ctx, per_rank: int,
                     n_classes: int):
    """One iteration on this rank's slice ``x [b, S, S, 1]``, ``y [b, C]`` of the global
    batch: CD, E, D, G, each one Adam step; returns the iteration's loss terms."""
    from .losses import (code_critic_loss, critic_loss, encoder_loss, generator_loss,
                         gradient_penalty, l1_distance, mean)

    G, D, E, CD = (nets[k] for k in ("generator", "critic", "encoder", "code_critic"))
    lo, hi, batch = ctx.rank * per_rank, (ctx.rank + 1) * per_rank, cfg.batch_size

    def g(z, y):
        return G([z, y] if n_classes else z, training=True)

    def d(x, y):
        return D([x, y] if n_classes else x, training=True)

    def step(name, tape, loss):
        tape = dist.distributed_tape(tape, ctx)  # Horovod: gradients averaged over ranks
        variables = nets[name].trainable_variables
        opts[name].apply_gradients(zip(tape.gradient(loss, variables), variables))

    @tf.function
    def train_step(x, y):
        # the same global draws on every rank, each rank its slice
        z_g = tf_rng.normal([batch, cfg.z_dim])[lo:hi]
        eps = tf_rng.uniform([2, batch])[:, lo:hi]

        # Phase 1, code critic: prior codes z_g are "real", embedded codes z_r "fake".
        z_r = tf.stop_gradient(E(x, training=True))
        with tf.GradientTape() as tape:
            cd_prior, cd_code = CD(z_g, training=True), CD(z_r, training=True)
            gp_code = gradient_penalty(lambda z: CD(z, training=True), z_g, z_r, eps[0])
            loss_cd = code_critic_loss(cd_prior, cd_code, gp_code, cfg.lambda_gp)
        step("code_critic", tape, loss_cd)

        # Phase 2, encoder: codes the (updated) code critic takes for prior samples, and,
        # with encoder_reconstruction, codes G reconstructs x from.
        with tf.GradientTape() as tape:
            z_r = E(x, training=True)
            cd_code = CD(z_r, training=True)
            if cfg.encoder_reconstruction:
                x_rec = g(z_r, y)
                loss_e = encoder_loss(cd_code, d(x_rec, y), x, x_rec, cfg.lambda_l1)
            else:
                loss_e = encoder_loss(cd_code)
        step("encoder", tape, loss_e)

        # Phase 3, critic: real images against generated and reconstructed ones.
        z_r = tf.stop_gradient(E(x, training=True))
        x_g, x_rec = tf.stop_gradient(g(z_g, y)), tf.stop_gradient(g(z_r, y))
        with tf.GradientTape() as tape:
            d_real, d_fake, d_rec = d(x, y), d(x_g, y), d(x_rec, y)
            gp_image = gradient_penalty(lambda v: d(v, y), x, x_g, eps[1])
            loss_d = critic_loss(d_real, d_fake, d_rec, gp_image, cfg.lambda_gp)
        step("critic", tape, loss_d)

        # Phase 4, generator: fool the (updated) critic, reconstruct x from its code.
        with tf.GradientTape() as tape:
            x_g, x_rec = g(z_g, y), g(z_r, y)
            d_fake, d_rec = d(x_g, y), d(x_rec, y)
            loss_g = generator_loss(d_fake, d_rec, x, x_rec, cfg.lambda_l1)
        step("generator", tape, loss_g)

        return {"loss_code_critic": loss_cd, "loss_encoder": loss_e, "loss_critic": loss_d,
                "loss_generator": loss_g, "gp_image": gp_image, "gp_code": gp_code,
                "wasserstein": mean(d_real) - mean(d_fake), "l1": l1_distance(x, x_rec)}

    return train_step


# ----------------------------------------------------------------------------- helpers


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``[B, C]`` float32 one-hot rows (``[B, 0]`` for unconditional models)."""
    out = np.zeros((len(labels), n_classes), np.float32)
    if n_classes:
        out[np.arange(len(labels)), labels] = 1.0
    return out


def _sample(tf, generator, z: np.ndarray, labels, n_classes: int) -> np.ndarray:
    """Generator outputs (inference mode) ``[N, S, S]`` in [0, 1]."""
    inputs = [z, _one_hot(labels, n_classes)] if n_classes else z
    return to_unit(generator(inputs, training=False).numpy()[..., 0])


def _info(cfg: WganConfig, data, state: TrainingState) -> gan_files.GanInfo:
    return gan_files.GanInfo(
        model=MODEL_TYPE, size=cfg.size, z_dim=cfg.z_dim, conditional=cfg.conditional,
        classes=list(data.classes) if cfg.conditional else list(data_classes(data.samples)),
        class_filter=None if cfg.class_filter is None else list(cfg.class_filter),
        steps=state.step, kimg=round(state.kimg, 4), data=str(Path(cfg.data).resolve()),
        images=len(data), seed=cfg.seed,
        extra={"width": cfg.width, "max_channels": cfg.max_channels,
               "code_units": cfg.code_units, "encoder_reconstruction":
                   cfg.encoder_reconstruction, "fit": cfg.fit})


def _metrics(cfg: WganConfig, data, state: TrainingState) -> dict:
    seconds = state.seconds
    return {"steps": state.step, "kimg": round(state.kimg, 4), "batch_size": cfg.batch_size,
            "size": cfg.size, "ranks": state.ranks, "images": len(data),
            "counts": data.counts(), "train_seconds": round(seconds, 3),
            "train_images_per_second": round(state.step * cfg.batch_size / seconds, 3)
            if seconds > 0 else None,
            "final": state.history[-1] if state.history else None,
            "history": state.history}
