"""Sample grids: the same latents every ``--grid-every`` steps, so the PNGs show training move.

``RUN/grids/step-00000500.png`` is an ``rows x columns`` mosaic of generator outputs (grey,
one pixel of mid-grey between tiles); the latents come from ``(seed, "grid")`` alone and, for
class-conditional models, the labels cycle through the classes column by column, so every
grid of a run shows the same latents and labels.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...distributed.context import item_seed
from ...files import write_png

GRID_DIR = "grids"
#: Tiles of a grid (an 8 x 8 mosaic).
GRID_IMAGES = 64


def fixed_latents(seed: int, n: int, z_dim: int) -> np.ndarray:
    """``[n, z_dim]`` float32 standard normal latents from ``(seed, "grid")`` alone."""
    return np.random.default_rng(item_seed(seed, "grid")).standard_normal(
        (n, z_dim)).astype(np.float32)


def grid_labels(n: int, n_classes: int) -> np.ndarray | None:
    """Labels of the grid tiles (row-major): class ``i % n_classes``; None when unconditional."""
    if n_classes < 1:
        return None
    return (np.arange(n) % n_classes).astype(np.int32)


def image_grid(images: np.ndarray, columns: int | None = None, gap: int = 1,
               fill: float = 0.5) -> np.ndarray:
    """Tile ``[N, H, W]`` images in ``[0, 1]`` into one ``HxW`` mosaic (row-major).

    Args:
        images: the tiles; N >= 1.
        columns: tiles per row (default ``ceil(sqrt(N))``).
        gap: pixels between tiles, filled with ``fill``.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"image_grid: expected [N, H, W] with N >= 1, got {images.shape}")
    n, h, w = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    grid = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap), fill,
                   np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = image
    return np.clip(grid, 0.0, 1.0)


def grid_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / GRID_DIR / f"step-{step:08d}.png"


def save_grid(run_dir: str | Path, step: int, images: np.ndarray,
              columns: int | None = None) -> Path:
    """Write ``RUN/grids/step-XXXXXXXX.png`` (atomically) from images in ``[0, 1]``."""
    return write_png(grid_path(run_dir, step), image_grid(images, columns))


def seed_latents(seeds, z_dim: int) -> np.ndarray:
    """``[n, z_dim]`` float32 latents, row ``i`` standard normal from ``seeds[i]`` alone (what
    a generator's sampler feeds it: an item's output depends on its seed only)."""
    return np.stack([np.random.default_rng(int(s)).standard_normal(z_dim).astype(np.float32)
                     for s in seeds]) if len(seeds) else np.zeros((0, z_dim), np.float32)
