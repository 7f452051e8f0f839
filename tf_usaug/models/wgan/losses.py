"""The losses of paper 003, eq. 3, as pure functions of critic outputs and images.

    L_D  = -2 E[D(x_r)] + E[D(x_g)] + E[D(x_rec)] + lambda1 L_GP1
    L_G  = -E[D(x_g)] - E[D(x_rec)] + lambda2 |x_r - x_rec|_1
    L_CD = -E[CD(z_g)] + E[CD(z_r)] + lambda1 L_GP2
    L_E  = -E[CD(z_r)]                (+ lambda2 |x_r - x_rec|_1 - E[D(x_rec)], see config)
    L_GP = E[(|grad f(x_p)|_2 - 1)^2],  x_p = eps x_r + (1 - eps) x_g,  eps ~ U[0, 1]

with x_g = G(z_g), z_g ~ N(0, I), z_r = E(x_r), x_rec = G(z_r). The printed L_G reads
``|x_r - x_g|_1``; the text defines lambda2 as the weight of the L1 loss "between real images
x_r and their reconstructed images x_rec", and a generated image has no real counterpart, so
we use x_rec. The L1 norm is the mean absolute difference per pixel (PyTorch's ``L1Loss``, as
in the baseline's code). GP1 interpolates real and generated images (eq. 2's x_p), GP2 real
and prior codes; the norm is taken per sample over all its other axes.
"""
from __future__ import annotations


def _tf():
    import tensorflow as tf

    return tf


def mean(values):
    """E[.] over the batch of a critic's output ``[B]`` or ``[B, 1]``."""
    return _tf().reduce_mean(values)


def l1_distance(a, b):
    """``|a - b|_1`` as the mean absolute difference over every element (eq. 3's L1 term)."""
    tf = _tf()
    return tf.reduce_mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))


def interpolate(real, fake, eps):
    """``x_p = eps * real + (1 - eps) * fake`` (eq. 2); ``eps`` ``[B]``, broadcast per sample."""
    tf = _tf()
    eps = tf.reshape(tf.cast(eps, real.dtype), [-1] + [1] * (len(real.shape) - 1))
    return eps * real + (1.0 - eps) * fake


def gradient_penalty(critic, real, fake, eps):
    """``E[(|grad critic(x_p)|_2 - 1)^2]`` at ``x_p = interpolate(real, fake, eps)`` (eq. 3's
    L_GP1 / L_GP2; Gulrajani et al. 2017 eq. 3).

    Args:
        critic: a callable ``x -> [B, ...]`` (a bound network, labels fixed).
        real / fake: ``[B, ...]`` tensors of one shape (images or codes; not differentiated).
        eps: ``[B]`` interpolation weights in [0, 1].
    """
    tf = _tf()
    x_p = interpolate(tf.stop_gradient(real), tf.stop_gradient(fake), eps)
    with tf.GradientTape() as tape:
        tape.watch(x_p)
        out = critic(x_p)
    grad = tape.gradient(out, x_p)
    axes = list(range(1, len(grad.shape)))
    norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=axes) + 1e-12)
    return tf.reduce_mean(tf.square(norm - 1.0))


def critic_loss(d_real, d_fake, d_rec, gp, lambda_gp: float):
    """``L_D = -2 E[D(x_r)] + E[D(x_g)] + E[D(x_rec)] + lambda1 L_GP1`` (eq. 3)."""
    return -2.0 * mean(d_real) + mean(d_fake) + mean(d_rec) + lambda_gp * gp


def generator_loss(d_fake, d_rec, real, rec, lambda_l1: float):
    """``L_G = -E[D(x_g)] - E[D(x_rec)] + lambda2 |x_r - x_rec|_1`` (eq. 3)."""
    return -mean(d_fake) - mean(d_rec) + lambda_l1 * l1_distance(real, rec)


def code_critic_loss(cd_prior, cd_code, gp, lambda_gp: float):
    """``L_CD = -E[CD(z_g)] + E[CD(z_r)] + lambda1 L_GP2`` (eq. 3): prior codes are "real"."""
    return -mean(cd_prior) + mean(cd_code) + lambda_gp * gp


def encoder_loss(cd_code, d_rec=None, real=None, rec=None, lambda_l1: float = 0.0):
    """``L_E = -E[CD(z_r)]`` (eq. 3); with ``d_rec`` / ``real`` / ``rec`` also the
    reconstruction terms of L_G that depend on the code, ``- E[D(x_rec)] + lambda2
    |x_r - x_rec|_1`` (``WganConfig.encoder_reconstruction``)."""
    loss = -mean(cd_code)
    if d_rec is not None:
        loss = loss - mean(d_rec) + lambda_l1 * l1_distance(real, rec)
    return loss
