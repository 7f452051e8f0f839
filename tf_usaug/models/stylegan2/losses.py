"""StyleGAN2's losses as pure functions of logits and images.

* Non-saturating logistic loss (Goodfellow et al. 2014 sec. 3; StyleGAN2-ADA ``loss.py``),
  per sample, with ``softplus(t) = log(1 + e^t)``:
  generator ``L_G = softplus(-D(G(z)))`` (paper 004 eq. 1 with ``f_G = softplus`` and the
  augmentation ``T`` inside ``D``), discriminator
  ``L_D = softplus(D(G(z))) + softplus(-D(x))``.
* R1 (Mescheder et al. 2018, "Which training methods for GANs do actually converge?",
  eq. 9): ``R1 = gamma / 2 * ||grad_x D(x)||^2`` on REAL images; with lazy regularisation
  (Karras et al. 2020a sec. 3.1) it is added every ``k`` minibatches, weighted by ``k``.
"""
from __future__ import annotations

import tensorflow as tf


def generator_loss(fake_logits):
    """``softplus(-D(G(z)))`` per sample (non-saturating)."""
    return tf.nn.softplus(-tf.reshape(fake_logits, [-1]))


def discriminator_loss(real_logits, fake_logits):
    """``softplus(D(G(z))) + softplus(-D(x))`` per sample (pairs of one real, one fake)."""
    return tf.nn.softplus(tf.reshape(fake_logits, [-1])) + \
        tf.nn.softplus(-tf.reshape(real_logits, [-1]))


def r1_penalty(real_grads, gamma: float):
    """``gamma / 2 * ||grad_x D(x)||^2`` per sample from the gradients ``[B, ...]`` of the
    summed real logits with respect to the real images (Mescheder et al. 2018 eq. 9)."""
    squared = tf.reduce_sum(tf.square(real_grads), axis=list(range(1, real_grads.shape.rank)))
    return 0.5 * gamma * squared


def r1_of(discriminate, real_images, gamma: float):
    """``(R1 per sample, real logits)`` of ``discriminate`` (images -> logits) at
    ``real_images``: the gradient taken with an inner tape (so an outer tape can
    differentiate the penalty with respect to D's weights)."""
    with tf.GradientTape() as tape:
        tape.watch(real_images)
        logits = discriminate(real_images)
        total = tf.reduce_sum(logits)
    grads = tape.gradient(total, real_images)
    return r1_penalty(grads, gamma), logits
