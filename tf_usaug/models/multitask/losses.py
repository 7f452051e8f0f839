"""Loss (paper 000 eq. 2) and the segmentation score (eq. 3), as small pure functions.

TensorFlow (training): :func:`dice_loss`, :func:`multitask_loss`; numpy (evaluation):
:func:`dsc`. Everything per image: shape ``[B]``; the training objective is the batch mean.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

#: Added to the Dice quotient's numerator and denominator (V-Net's "smooth" term): an image
#: without lesion whose prediction is empty scores loss 0, not 0/0.
DICE_SMOOTH = 1.0


def dice_loss(seg_logits, masks, smooth: float = DICE_SMOOTH):
    """Soft Dice loss (Milletari et al. 2016) per image: ``1 - (2 sum(p g) + s) / (sum(p) +
    sum(g) + s)`` with ``p = sigmoid(logits)``, sums over the pixels. ``[B]``."""
    p = tf.reshape(tf.sigmoid(seg_logits), [tf.shape(seg_logits)[0], -1])
    g = tf.reshape(tf.cast(masks, p.dtype), [tf.shape(masks)[0], -1])
    inter = tf.reduce_sum(p * g, axis=1)
    return 1.0 - (2.0 * inter + smooth) / (tf.reduce_sum(p, 1) + tf.reduce_sum(g, 1) + smooth)


def binary_cross_entropy(logits, targets):
    """Mean binary cross-entropy per image (all but the batch axis averaged). ``[B]``."""
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(targets, logits.dtype),
                                                 logits=logits)
    return tf.reduce_mean(tf.reshape(ce, [tf.shape(ce)[0], -1]), axis=1)


def multitask_loss(seg_logits, cls_logits, masks, labels) -> dict:
    """Paper 000 eq. 2: ``L_m = L_CE^Seg + L_Dice^Seg + L_CE^Cls`` per image.

    Args:
        seg_logits: ``[B, H, W, 1]``; masks: ``[B, H, W, 1]`` in {0, 1}.
        cls_logits: ``[B, 1]``; labels: ``[B]`` or ``[B, 1]`` in {0, 1} (1: the positive class).

    Returns:
        ``{"total", "seg_ce", "dice", "cls_ce"}``, each ``[B]``.
    """
    seg_ce = binary_cross_entropy(seg_logits, masks)
    dice = dice_loss(seg_logits, masks)
    cls_ce = binary_cross_entropy(cls_logits, tf.reshape(labels, tf.shape(cls_logits)))
    return {"total": seg_ce + dice + cls_ce, "seg_ce": seg_ce, "dice": dice, "cls_ce": cls_ce}


def dsc(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Paper 000 eq. 3: ``DSC = 2 TP / (FP + 2 TP + FN)`` of two binary masks.

    Both empty (no lesion, none predicted): 1.0 (the prediction is perfect; eq. 3 is 0/0).
    """
    p, g = np.asarray(predicted, bool), np.asarray(truth, bool)
    tp = float(np.sum(p & g))
    fp = float(np.sum(p & ~g))
    fn = float(np.sum(~p & g))
    return 1.0 if tp + fp + fn == 0 else 2.0 * tp / (fp + 2.0 * tp + fn)
