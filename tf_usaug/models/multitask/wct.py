"""Photorealistic whitening-colouring style transfer (WCT; Li et al. 2017, as in WCT2, Yoo et
al. 2019, the transfer paper 000 uses), with a small encoder/decoder this project trains.

* :func:`build_autoencoder`: a full-resolution encoder (two 3x3 convs + ReLU to ``C``
  channels, no pooling, so nothing is lost that the decoder must invent: the photorealism
  WCT2 gets from wavelet pooling) and its mirror decoder; trained on reconstruction
  (:func:`train_autoencoder`, mean squared error, Adam) on the training originals and the
  references.
* :func:`wct` (pure numpy): the content features whitened with their own covariance and
  coloured with the reference's, optionally restricted to a content region and a reference
  region (MaskAug, paper 000 sec. 2.3: "the intensity distribution of the ROI in the content
  image is changed to that of the style image").
* :class:`StyleTransfer`: encode, transfer, decode (and keep the content outside its region).
"""
from __future__ import annotations

import numpy as np

#: Added to the covariance diagonals (flat feature maps would not be invertible).
WCT_EPSILON = 1e-5


def _sqrt_pair(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(cov^-1/2, cov^1/2)`` of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh(cov)
    values = np.maximum(values, WCT_EPSILON)
    return ((vectors / np.sqrt(values)) @ vectors.T, (vectors * np.sqrt(values)) @ vectors.T)


def wct(content: np.ndarray, style: np.ndarray, content_region: np.ndarray | None = None,
        style_region: np.ndarray | None = None) -> np.ndarray:
    """Whitening-colouring transform of feature maps ``[H, W, C]`` (Li et al. 2017, eq. 1-2).

    ``f' = C_s^{1/2} C_c^{-1/2} (f - m_c) + m_s`` for the content features ``f``, with the
    means ``m`` and covariances ``C`` (+ epsilon I) of the content and the style features.
    With regions (bool ``[H, W]``) the statistics are those of the regions' pixels and only
    the content region is changed; the output has the style region's mean and covariance
    there (up to epsilon).
    """
    c = np.asarray(content, np.float64)
    s = np.asarray(style, np.float64)
    ch = c.shape[-1]
    cr = np.ones(c.shape[:2], bool) if content_region is None else np.asarray(content_region, bool)
    sr = np.ones(s.shape[:2], bool) if style_region is None else np.asarray(style_region, bool)
    fc, fs = c[cr], s[sr]
    mc, ms = fc.mean(0), fs.mean(0)
    eye = WCT_EPSILON * np.eye(ch)
    cov_c = np.cov(fc, rowvar=False, bias=True).reshape(ch, ch) + eye
    cov_s = np.cov(fs, rowvar=False, bias=True).reshape(ch, ch) + eye
    whiten, _ = _sqrt_pair(cov_c)
    _, colour = _sqrt_pair(cov_s)
    out = c.copy()
    out[cr] = (fc - mc) @ whiten @ colour + ms
    return out.astype(np.float32)


def build_autoencoder(channels: int = 16, seed: int = 0):
    """``(encoder, decoder)``: ``[B, H, W, 1] -> [B, H, W, C] -> [B, H, W, 1]``."""
    from tensorflow import keras

    init = lambda k: keras.initializers.GlorotUniform(seed=seed * 100 + k)  # noqa: E731
    enc = keras.Sequential([keras.Input((None, None, 1)),
                            keras.layers.Conv2D(channels, 3, padding="same", activation="relu",
                                                kernel_initializer=init(1)),
                            keras.layers.Conv2D(channels, 3, padding="same", activation="relu",
                                                kernel_initializer=init(2))], name="wct_encoder")
    dec = keras.Sequential([keras.Input((None, None, channels)),
                            keras.layers.Conv2D(channels, 3, padding="same", activation="relu",
                                                kernel_initializer=init(3)),
                            keras.layers.Conv2D(1, 3, padding="same", kernel_initializer=init(4))],
                           name="wct_decoder")
    return enc, dec


def train_autoencoder(images: np.ndarray, channels: int, steps: int, seed: int,
                      batch_size: int = 8, learning_rate: float = 1e-3):
    """Train :func:`build_autoencoder` on ``images [N, S, S]`` (reconstruction MSE).

    Returns:
        ``(encoder, decoder, losses)``: the per-step losses (the first and last tell how well
        it reconstructs).
    """
    import tensorflow as tf

    enc, dec = build_autoencoder(channels, seed)
    variables = enc.trainable_variables + dec.trainable_variables
    opt = tf.keras.optimizers.Adam(learning_rate)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(dec(enc(x)) - x))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    rng = np.random.default_rng([int(seed), 0x3C7])
    data = np.asarray(images, np.float32)[..., None]
    losses = [float(step(data[rng.choice(len(data), min(batch_size, len(data)),
                                           replace=False)])) for _ in range(steps)]
    return enc, dec, losses


class StyleTransfer:
    """Encode, WCT, decode: ``transfer(contents, styles, regions)`` on ``[B, S, S]`` batches."""

    def __init__(self, encoder, decoder):
        import tensorflow as tf

        self.encoder, self.decoder = encoder, decoder
        self._enc = tf.function(lambda x: encoder(x, training=False), reduce_retracing=True)
        self._dec = tf.function(lambda f: decoder(f, training=False), reduce_retracing=True)

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, np.float32)[..., None]
        return np.asarray(self._dec(self._enc(x)))[..., 0]

    def transfer(self, contents: np.ndarray, styles: np.ndarray,
                 content_regions: np.ndarray | None = None,
                 style_regions: np.ndarray | None = None) -> np.ndarray:
        """Stylised contents ``[B, S, S]`` in [0, 1]. With regions, only the content region
        changes: outside it the output is the content itself."""
        contents = np.asarray(contents, np.float32)
        if not len(contents):
            return contents.copy()
        fc = np.asarray(self._enc(contents[..., None]))
        fs = np.asarray(self._enc(np.asarray(styles, np.float32)[..., None]))
        mixed = np.stack([wct(fc[i], fs[i],
                              None if content_regions is None else content_regions[i],
                              None if style_regions is None else style_regions[i])
                          for i in range(len(contents))])
        out = np.clip(np.asarray(self._dec(mixed))[..., 0], 0.0, 1.0)
        if content_regions is not None:
            out = np.where(np.asarray(content_regions, bool), out, contents)
        return out.astype(np.float32)
