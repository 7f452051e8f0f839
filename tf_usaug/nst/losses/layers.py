"""Which style layers carry style *statistics* at a given size: :func:`usable_style_layers`.

The rule (docs/losses.md, "Thin layers"): a layer with ``M = h*w`` positions and ``N``
channels is used for style only when ``M >= min_positions_per_channel * N`` (default 1, i.e.
at least as many positions as channels). Every style term here compares second moments (or
kernel statistics) of the ``M`` feature vectors; such an ``N x N`` matrix has rank ``<= M``.
When ``M < N`` the generated image's ``M`` feature vectors can only match it by lying in the
``M``-dimensional span of the target's leading directions, i.e. by reproducing the reference's
own feature vectors up to a rotation of the positions: the loss then constrains the features
themselves (and copies the reference's content into the output) rather than their statistics.
ResNet50's ``conv4_block6_out`` (1024 channels, stride 16) is such a layer at every working
size up to 496 px, ``conv3_block4_out`` (512 channels, stride 8) up to 176 px.

Pure Python on shapes: no TensorFlow, callable before any model is built.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence


def _positions_channels(shape: Sequence[int]) -> tuple[int, int]:
    """``(h*w, c)`` of a feature shape ``(..., h, w, c)``."""
    dims = tuple(int(d) for d in shape)
    if len(dims) < 3:
        raise ValueError(f"a layer shape must end with (h, w, c), got {tuple(shape)}")
    return dims[-3] * dims[-2], dims[-1]


def is_thin(shape: Sequence[int], min_positions_per_channel: float = 1.0) -> bool:
    """True when a layer of ``shape`` ``(..., h, w, c)`` has fewer than
    ``min_positions_per_channel * c`` positions ``h*w`` (never with a ratio of 0)."""
    positions, channels = _positions_channels(shape)
    return positions < min_positions_per_channel * channels


def usable_style_layers(layer_shapes: Mapping[str, Sequence[int]],
                        min_positions_per_channel: float = 1.0) -> dict[str, float]:
    """Weight factor of every style layer at the size its ``layer_shapes`` were taken at.

    Args:
        layer_shapes: ``{layer: (h, w, c)}`` (leading batch dimensions are ignored): the
            layers' feature shapes at the size the style loss is evaluated at.
        min_positions_per_channel: a layer needs ``h*w >= ratio * c`` (1.0: at least as many
            positions as channels); 0 keeps every layer (the rule switched off).

    Returns:
        ``{layer: 1.0}`` for the layers kept and ``{layer: 0.0}`` for those left out, in the
        order of ``layer_shapes``. When every layer would be left out, the one with the most
        positions per channel (the shallowest) is kept: a style loss needs a layer.
    """
    if min_positions_per_channel < 0:
        raise ValueError(f"min_positions_per_channel must be >= 0, got "
                         f"{min_positions_per_channel}")
    if not layer_shapes:
        return {}
    weights = {layer: 0.0 if is_thin(shape, min_positions_per_channel) else 1.0
               for layer, shape in layer_shapes.items()}
    if not any(weights.values()):
        def ratio(layer):
            positions, channels = _positions_channels(layer_shapes[layer])
            return positions / channels

        weights[max(layer_shapes, key=ratio)] = 1.0  # max keeps the first of equals
    return weights


def describe_left_out(left_out: Mapping[tuple[int, int], tuple[Sequence, Sequence]]
                      ) -> tuple[str, str]:
    """Log text for ``{(h, w): ([(layer left out, (h, w, c))], [thin layers kept])}``.

    Returns ``(left out, kept although thin)``, larger sizes first, e.g.
    ``("at 64x64 conv4_block6_out (4x4 positions, 1024 channels)", "")``; empty strings when
    there is nothing to say.
    """
    parts, forced = [], []
    for (h, w), (left, thin_kept) in sorted(left_out.items(), reverse=True):
        if left:
            parts.append(f"at {h}x{w} " + ", ".join(
                f"{layer} ({s[-3]}x{s[-2]} positions, {s[-1]} channels)" for layer, s in left))
        forced += [f"{layer} at {h}x{w}" for layer in thin_kept]
    return "; ".join(parts), ", ".join(forced)
