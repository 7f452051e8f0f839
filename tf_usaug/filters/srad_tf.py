"""SRAD for a batch in TensorFlow: the whole iteration loop in one (XLA-)compiled ``tf.function``,
and the multi-scale series of paper 002 (n_t = 10 iterations per scale, L = 8 scales).

The maths is shared with the numpy reference in :mod:`tf_usaug.filters.srad`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .srad import (ArrayOps, _DEFAULT, _check_box, _check_dtype, _check_finite_non_negative,
                   _check_not_empty, _check_params, _check_q0, _prepare_numpy,
                   _srad_numpy, q0_sq_from_moments, q0_sq_schedule, srad_step)


# --------------------------------------------------------------------------------------------
# TensorFlow: a batch [B, H, W] or [B, H, W, 1], whole loop in one compiled function
# --------------------------------------------------------------------------------------------

_TF_LOOPS: dict = {}


def _tf_ops() -> ArrayOps:
    import tensorflow as tf

    return ArrayOps(tf.concat, tf.minimum, tf.maximum, tf.exp)


def _tf_loop(jit_compile: bool, use_roi: bool):
    """The compiled iteration loop, built once per (jit_compile, use_roi).

    A fixed input signature keeps the per-call overhead low (no trace-type matching of the
    arguments); XLA still compiles one executable per concrete batch shape.
    """
    key = (jit_compile, use_roi)
    if key in _TF_LOOPS:
        return _TF_LOOPS[key]
    import tensorflow as tf

    ops = _tf_ops()
    scalar_f32 = tf.TensorSpec([], tf.float32)
    signature = [tf.TensorSpec([None, None, None], tf.float32),  # images [B, H, W]
                 tf.TensorSpec([None, None, None], tf.float32),  # ROI weights [B, H, W]
                 tf.TensorSpec([None], tf.float32),  # q0(0)^2 per image [B]
                 tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32),  # iterations, start
                 scalar_f32, scalar_f32, scalar_f32]  # dt, rho, eps

    @tf.function(jit_compile=jit_compile, input_signature=signature)
    def loop(images, roi_weights, q0_sq_initial, iterations, start_iteration, dt, rho, eps):
        """``iterations`` SRAD steps on images [B, H, W]; q0 per image (ROI or schedule)."""
        roi_count = tf.reduce_sum(roi_weights, axis=[1, 2])

        def body(n, image):
            if use_roi:  # Python bool: one trace per mode
                mean = tf.reduce_sum(roi_weights * image, axis=[1, 2]) / roi_count
                centred = image - mean[:, None, None]
                variance = tf.reduce_sum(roi_weights * centred * centred, axis=[1, 2]) / roi_count
                q0_sq = q0_sq_from_moments(mean, variance, eps, ops)
            else:
                t = tf.cast(n, image.dtype) * dt
                q0_sq = q0_sq_schedule(q0_sq_initial, t, rho, eps, ops)
            return n + 1, srad_step(image, q0_sq[:, None, None], dt, eps, ops)

        _, result = tf.while_loop(lambda n, _: n < start_iteration + iterations, body,
                                  (start_iteration, images))
        return result

    _TF_LOOPS[key] = loop
    return loop


def _roi_weights(roi, batch: int, shape: tuple[int, int]) -> np.ndarray:
    """[B, H, W] float32 indicator of each image's ROI (one box for all, or one per image)."""
    boxes = [roi] if len(roi) == 4 and np.ndim(roi[0]) == 0 else list(roi)
    if len(boxes) == 1:
        boxes = boxes * batch
    if len(boxes) != batch:
        raise ValueError(f"roi needs 1 box or {batch} boxes (one per image), got {len(boxes)}")
    weights = np.zeros((batch, *shape), np.float32)
    for index, box in enumerate(boxes):
        y0, y1, x0, x1 = _check_box(box, shape)
        weights[index, y0:y1, x0:x1] = 1.0
    return weights


def _prepare_tf(batch, roi, q0, dt, rho, eps, iterations):
    """Checked float32 [B, H, W] tensor, ROI weights, initial q0^2 [B], and the input rank."""
    import tensorflow as tf

    images = tf.convert_to_tensor(batch)
    rank = images.shape.rank
    if rank == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    elif rank != 3:
        raise ValueError(f"srad_tf expects a batch [B, H, W] or [B, H, W, 1], got shape "
                         f"{images.shape}")
    _check_not_empty(images.shape, "batch")
    _check_dtype(images.dtype.as_numpy_dtype, "batch")
    images = tf.cast(images, tf.float32)
    _check_params(iterations, dt, rho, eps)
    if roi is not None and q0 is not None:
        raise ValueError("give either roi (q0 measured every iteration) or q0 (exponential "
                         "schedule), not both")
    if tf.executing_eagerly():  # two scalar reductions: cheap on a GPU too (no image copy)
        _check_finite_non_negative(bool(tf.reduce_all(tf.math.is_finite(images))),
                                   float(tf.reduce_min(images)), "batch")
    count, height, width = images.shape
    if roi is not None:
        weights = _roi_weights(roi, count, (height, width))
        q0_sq = np.zeros(count, np.float32)
    else:
        weights = np.ones((1, 1, 1), np.float32)
        if q0 is not None:
            q0_sq = _check_q0(q0, count) ** 2
        else:  # std/mean of each whole image at t = 0, like whole_image_q0
            mean = tf.reduce_mean(images, axis=[1, 2])
            variance = tf.reduce_mean(tf.square(images - mean[:, None, None]), axis=[1, 2])
            q0_sq = q0_sq_from_moments(mean, variance, eps, _tf_ops())
    return images, tf.constant(weights), tf.cast(q0_sq, tf.float32), rank


CPU_CHUNK_PIXELS = 1 << 19  # 8 images of 256x256: ~2 MB per float32 array, fits the caches


def _images_per_chunk(count: int, height: int, width: int, chunk_pixels: int | None) -> int:
    """Images per call of the compiled loop: all on a GPU, ~``CPU_CHUNK_PIXELS`` on a CPU.

    On a CPU the fused loop is memory-bound once a batch's arrays outgrow the caches (measured
    here: B = 32 at 256x256 ran at about half the throughput of four B = 8 calls), so large
    batches are cut into chunks; images are independent, the result is the same.
    """
    if chunk_pixels is None:
        import tensorflow as tf

        if tf.config.list_logical_devices("GPU"):
            return count
        chunk_pixels = CPU_CHUNK_PIXELS
    if chunk_pixels < 1:
        raise ValueError(f"chunk_pixels must be >= 1 or None, got {chunk_pixels!r}")
    return max(1, min(count, chunk_pixels // (height * width)))


def _run_tf(images, weights, q0_sq, iterations, start_iteration, dt, rho, eps, use_roi,
            jit_compile, chunk_pixels):
    """Run the compiled loop over ``images`` [B, H, W], chunk by chunk (see above)."""
    import tensorflow as tf

    loop = _tf_loop(bool(jit_compile), bool(use_roi))
    scalars = (tf.constant(int(iterations), tf.int32), tf.constant(int(start_iteration), tf.int32),
               tf.constant(dt, tf.float32), tf.constant(rho, tf.float32),
               tf.constant(eps, tf.float32))
    count, height, width = images.shape
    step = _images_per_chunk(count, height, width, chunk_pixels)
    if step >= count:
        return loop(images, weights, q0_sq, *scalars)
    per_image_weights = weights.shape[0] == count
    chunks = [loop(images[i:i + step], weights[i:i + step] if per_image_weights else weights,
                   q0_sq[i:i + step], *scalars) for i in range(0, count, step)]
    return tf.concat(chunks, axis=0)


def srad_tf(batch, iterations: int = _DEFAULT.iterations, dt: float = _DEFAULT.dt,
            roi=None, q0=_DEFAULT.q0, rho: float = _DEFAULT.rho, eps: float = _DEFAULT.eps,
            jit_compile: bool = True, chunk_pixels: int | None = None):
    """SRAD-filter a batch of grey images with TensorFlow (the fast path; CPU or GPU).

    Same maths as ``srad`` (Yu & Acton 2002, eqs. 31-61), float32, every image with its own
    q0. The whole iteration loop runs inside one ``tf.function`` (a ``tf.while_loop``) which
    XLA compiles into a few fused kernels; it is compiled once per chunk shape (batch images
    of one size together, resize first if the sizes vary). Call it eagerly: it is compiled
    inside; within another ``tf.function`` the value checks (NaN, negative) are skipped.

    Args:
        batch: [B, H, W] or [B, H, W, 1] intensities >= 0 (tensor or array).
        iterations: number of iterations (n_t = 10 in paper 002).
        dt: time step, 0 < dt <= 1.
        roi: one (y0, y1, x0, x1) box for every image, or a list of B boxes: q0 = std/mean of
            each image's box, measured every iteration. Excludes ``q0``.
        q0: speckle scale at t = 0, a scalar or B values; None (and no ROI): std/mean of each
            whole input image.
        rho: decay rate of the schedule q0(t) = q0 exp(-rho t).
        eps: numerical floor (see ``SRADConfig``).
        jit_compile: compile the loop with XLA (several times faster on CPU than graph mode).
        chunk_pixels: pixels per call of the compiled loop; None: the whole batch on a GPU,
            chunks of ``CPU_CHUNK_PIXELS`` (2^19) on a CPU.

    Returns:
        float32 tensor of the input's shape.

    Example:
        >>> smooth = srad_tf(tf.stack(images)[..., None], iterations=10)
    """
    images, weights, q0_sq, rank = _prepare_tf(batch, roi, q0, dt, rho, eps, iterations)
    result = _run_tf(images, weights, q0_sq, iterations, 0, dt, rho, eps, roi is not None,
                     jit_compile, chunk_pixels)
    return result[..., None] if rank == 4 else result


# --------------------------------------------------------------------------------------------
# Multi-scale series (paper 002: n_t = 10 iterations per scale, L = 8 scales)
# --------------------------------------------------------------------------------------------

def _check_scales(scales: int, iterations_per_scale: int) -> None:
    if isinstance(scales, bool) or int(scales) != scales or scales < 1:
        raise ValueError(f"scales must be an integer >= 1, got {scales!r}")
    if isinstance(iterations_per_scale, bool) or int(iterations_per_scale) != iterations_per_scale \
            or iterations_per_scale < 1:
        raise ValueError(f"iterations_per_scale must be an integer >= 1, got "
                         f"{iterations_per_scale!r}")


def srad_multiscale_tf(batch, scales: int = _DEFAULT.scales,
                       iterations_per_scale: int = _DEFAULT.iterations, dt: float = _DEFAULT.dt,
                       roi=None, q0=_DEFAULT.q0, rho: float = _DEFAULT.rho,
                       eps: float = _DEFAULT.eps, jit_compile: bool = True,
                       chunk_pixels: int | None = None) -> list:
    """Multi-scale SRAD series of a batch with TensorFlow (see ``srad_multiscale``).

    Args:
        batch, dt, roi, q0, rho, eps, jit_compile, chunk_pixels: as in ``srad_tf``.
        scales: number of scales L (8 in paper 002).
        iterations_per_scale: n_t (10 in paper 002).

    Returns:
        List of ``scales`` float32 tensors shaped like ``batch``; entry s - 1 is the batch after
        s * iterations_per_scale iterations of one continuous diffusion.
    """
    _check_scales(scales, iterations_per_scale)
    images, weights, q0_sq, rank = _prepare_tf(batch, roi, q0, dt, rho, eps, iterations_per_scale)
    series = []
    for scale in range(scales):
        images = _run_tf(images, weights, q0_sq, iterations_per_scale,
                         scale * iterations_per_scale, dt, rho, eps, roi is not None, jit_compile,
                         chunk_pixels)
        series.append(images[..., None] if rank == 4 else images)
    return series


def srad_multiscale(image, scales: int = _DEFAULT.scales,
                    iterations_per_scale: int = _DEFAULT.iterations, dt: float = _DEFAULT.dt,
                    roi: Sequence[int] | None = None, q0: float | None = _DEFAULT.q0,
                    rho: float = _DEFAULT.rho, eps: float = _DEFAULT.eps,
                    backend: str = "tf") -> list[np.ndarray]:
    """Multi-scale SRAD series of one image (paper 002: n_t = 10, L = 8).

    Scale s (s = 1..L) is the image after s * iterations_per_scale iterations of ONE
    continuous diffusion: time, the q0(t) schedule and the default q0 (std/mean of the input
    image at t = 0) run on across scales, so scale s equals ``srad(image, s * n_t)``.

    Args:
        image: HxW intensities >= 0.
        scales: number of scales L.
        iterations_per_scale: n_t.
        dt, roi, q0, rho, eps: as in ``srad``.
        backend: "tf" (compiled, default) or "numpy" (the reference).

    Returns:
        List of ``scales`` HxW float32 arrays, least to most smoothed.
    """
    if backend == "tf":
        array = np.asarray(image)
        if array.ndim != 2:
            raise ValueError(f"srad_multiscale expects one grey HxW image, got shape "
                             f"{array.shape} (use srad_multiscale_tf for batches)")
        series = srad_multiscale_tf(array[None], scales, iterations_per_scale, dt, roi, q0,
                                    rho, eps)
        return [scale[0].numpy() for scale in series]
    if backend != "numpy":
        raise ValueError(f"backend must be 'tf' or 'numpy', got {backend!r}")
    _check_scales(scales, iterations_per_scale)
    current, box, q0_sq = _prepare_numpy(image, roi, q0, dt, rho, eps, iterations_per_scale)
    series = []
    for scale in range(scales):
        current = _srad_numpy(current, iterations_per_scale, dt, box, q0_sq, rho, eps,
                              scale * iterations_per_scale)
        series.append(current.astype(np.float32))
    return series
