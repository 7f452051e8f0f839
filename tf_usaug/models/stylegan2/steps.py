"""The compiled steps of StyleGAN2 training: the G step, the D step (with optional R1) and the
EMA update (:func:`make_steps`); the training loop (``training_loop.py``) draws their inputs.

The augmentation ``T`` (ADA at probability p, DiffAugment, or none) is applied to every image
the discriminator sees, with its own seed per call; the G step back-propagates through it
(paper 004 eq. 1) and R1 takes the gradient of ``D(T(x))`` with respect to the real ``x``
(StyleGAN2-ADA ``loss.py``).
"""
from __future__ import annotations

from ... import distributed as dist
from .augment import ada_augment
from .diffaugment import diffaugment
from .losses import discriminator_loss, generator_loss, r1_of
from .networks import mix_styles


def make_augment(tf, cfg, global_batch: int | None = None, offset: int = 0):
    """``T(images, p, seed)`` of ``cfg.augment``; the images are rows ``offset ...`` of a
    ``global_batch`` (one rank's slice; None: the whole batch)."""
    if cfg.augment == "ada":
        return lambda x, p, seed: ada_augment(x, p, seed, cfg.ada_pipeline, global_batch,
                                              offset)
    if cfg.augment == "diffaugment":
        return lambda x, p, seed: diffaugment(x, seed, cfg.diffaugment, cfg.translation_ratio,
                                              cfg.cutout_ratio, global_batch, offset)
    return lambda x, p, seed: x


def ema_beta(batch_size: int, ema_kimg: float) -> float:
    """Per-step EMA factor with a half-life of ``ema_kimg`` thousand images (StyleGAN2-ADA:
    ``0.5 ** (batch / (ema_kimg * 1000))``)."""
    return 0.5 ** (batch_size / max(ema_kimg * 1000.0, 1e-8))


def make_steps(tf, cfg, G, D, G_ema, optimizers, ctx):
    """``(g_step, d_step, ema_step)`` as ``tf.function`` s on this rank's share of a batch
    (``d_step``'s ``do_r1`` is a Python bool: one trace with R1, one without)."""
    per_rank = cfg.batch_size // ctx.size
    augment = make_augment(tf, cfg, cfg.batch_size if ctx.size > 1 else None,
                           ctx.rank * per_rank)  # Horovod: this rank's rows of the batch
    opt_G, opt_D = optimizers["generator"], optimizers["discriminator"]
    beta = ema_beta(cfg.batch_size, cfg.ema_kimg)

    def label(c):
        return None if c.shape[-1] == 0 else c

    def generate(z, z2, cutoff, c, noise, update_w_avg):
        c = label(c)
        ws = G.broadcast(G.mapping(z, c, update_w_avg=update_w_avg))
        ws2 = G.broadcast(G.mapping(z2, c))
        return G.synthesis(mix_styles(ws, ws2, cutoff), noise)

    @tf.function
    def g_step(z, z2, cutoff, c, noise, aug_seed, p):
        with tf.GradientTape() as tape:
            fake = generate(z, z2, cutoff, c, noise, True)
            logits = D(augment(fake, p, aug_seed[0]), label(c))
            loss = tf.reduce_mean(generator_loss(logits))
        tape = dist.distributed_tape(tape, ctx)  # Horovod: gradients averaged over ranks
        grads = tape.gradient(loss, G.trainable_variables)
        opt_G.apply_gradients(zip(grads, G.trainable_variables))
        return {"loss_G": loss}

    @tf.function
    def d_step(real, c_real, z, z2, cutoff, c, noise, aug_seed, p, do_r1):
        fake = tf.stop_gradient(generate(z, z2, cutoff, c, noise, False))

        def discriminate(images):
            return D(augment(images, p, aug_seed[1]), label(c_real))

        with tf.GradientTape() as tape:
            fake_logits = D(augment(fake, p, aug_seed[0]), label(c))
            if do_r1:
                r1, real_logits = r1_of(discriminate, real, cfg.r1_gamma)
            else:
                r1, real_logits = tf.zeros([tf.shape(real)[0]]), discriminate(real)
            loss_D = tf.reduce_mean(discriminator_loss(real_logits, fake_logits))
            penalty = tf.reduce_mean(r1) * float(cfg.r1_interval)  # lazy: k x R1 every k
            loss = loss_D + penalty
        tape = dist.distributed_tape(tape, ctx)  # Horovod: gradients averaged over ranks
        grads = tape.gradient(loss, D.trainable_variables)
        opt_D.apply_gradients(zip(grads, D.trainable_variables))
        return {"loss_D": loss_D, "r1": tf.reduce_mean(r1),
                "sign_sum": tf.reduce_sum(tf.sign(real_logits)),
                "real_logit": tf.reduce_mean(real_logits),
                "fake_logit": tf.reduce_mean(fake_logits)}

    pairs = [(e, s) for e, s in zip(G_ema.variables, G.variables)]

    @tf.function
    def ema_step():
        for target, source in pairs:
            if source.trainable:
                target.assign(source + (target - source) * beta)
            else:
                target.assign(source)  # buffers (the mean w): copied

    return g_step, d_step, ema_step
