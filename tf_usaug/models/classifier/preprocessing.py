"""How a grey image becomes the classifier's input: :class:`Preprocessing`, saved beside the
model as ``RUN/preprocessing.json`` so other tools (the relevance stage, the benefit report)
feed it exactly what it was trained on.

The rule, for a grey image ``g`` (float32 ``HxW`` in ``[0, 1]``, as
:func:`tf_usaug.data.image_io.read_image` returns it):

1. resize to ``size x size`` (stretched; area averaging when shrinking, bilinear when
   growing: :func:`tf_usaug.data.image_io.resize`, the same call the training data went
   through);
2. replicate to ``channels`` channels (grey -> RGB for the ImageNet backbones);
3. ``input[..., c] = g * scale[c] + offset[c]``.

Modes: ``caffe`` (ResNet50's ``preprocess_input``: x255, BGR, minus the ImageNet mean; the
relevance stage's ``--preprocess caffe``), ``rgb255`` (EfficientNet normalises inside the
model, it takes 0-255 RGB), ``unit`` (the ``[0, 1]`` values as they are, one channel; the
relevance stage's ``--preprocess unit``), ``signed`` (``2 g - 1``, one channel: the small CNN;
the relevance stage's ``--preprocess signed``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import InputError
from ...files import write_json

#: mode -> (per-channel scale, per-channel offset) for 3 channels (unit: 1 channel).
MODES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # keras.applications.resnet50.preprocess_input: RGB -> BGR, minus the ImageNet BGR mean.
    "caffe": ((255.0, 255.0, 255.0), (-103.939, -116.779, -123.68)),
    "rgb255": ((255.0, 255.0, 255.0), (0.0, 0.0, 0.0)),
    "unit": ((1.0,), (0.0,)),
    # 2 g - 1, one channel: black is -1, not 0, so rules of the form R ~ x w (LRP) can give
    # relevance to dark (hypoechoic) lesions; the small CNN's default (docs/classifier.md).
    "signed": ((2.0,), (-1.0,)),
}

PREPROCESSING_FILE = "preprocessing.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    """The classifier's input rule and its classes (see the module docstring).

    Attributes:
        backbone: the network it belongs to.
        size: input side in pixels (square).
        channels: 1 (grey) or 3 (grey replicated to RGB).
        mode: ``caffe``, ``rgb255``, ``unit`` or ``signed``.
        scale / offset: the per-channel affine map applied after replication.
        class_names: class of each output unit (sorted names).
        positive_class: the class whose sensitivity/specificity a binary task reports (the
            last sorted name, e.g. ``malignant``); None with more than two classes.
        resize: how the image reaches ``size x size`` (``stretch``: aspect ratio not kept).
        grey_to_rgb: ``replicate`` (the same grey value in every channel) or ``none``.
    """

    backbone: str
    size: int
    channels: int
    mode: str
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    class_names: tuple[str, ...]
    positive_class: str | None
    resize: str = "stretch"
    grey_to_rgb: str = "replicate"

    @classmethod
    def for_backbone(cls, backbone: str, mode: str, size: int,
                     class_names: Sequence[str]) -> "Preprocessing":
        scale, offset = MODES[mode]
        names = tuple(class_names)
        return cls(backbone=backbone, size=int(size), channels=len(scale), mode=mode,
                   scale=scale, offset=offset, class_names=names,
                   positive_class=names[-1] if len(names) == 2 else None,
                   grey_to_rgb="replicate" if len(scale) > 1 else "none")

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, **asdict(self)}

    def save(self, run_dir: str | Path) -> Path:
        return write_json(Path(run_dir) / PREPROCESSING_FILE, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Preprocessing":
        """From ``RUN/preprocessing.json`` (or the run folder itself)."""
        path = Path(path)
        if path.is_dir():
            path = path / PREPROCESSING_FILE
        try:
            data = json.loads(path.read_text())
            version = data.pop("format_version", None)
            if version != FORMAT_VERSION:
                raise ValueError(f"format_version {version}, expected {FORMAT_VERSION}")
            data.update({k: tuple(data[k]) for k in ("scale", "offset", "class_names")})
            return cls(**data)
        except FileNotFoundError:
            raise InputError(path, "no preprocessing file (is this a classifier run "
                             "folder?)") from None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise InputError(path, f"unreadable preprocessing file ({exc})") from None

    # ------------------------------------------------------------------ the rule
    def to_input(self, grey: np.ndarray) -> np.ndarray:
        """Grey ``[B, size, size]`` (or ``[B, size, size, 1]``) in [0, 1] -> model input
        ``[B, size, size, channels]`` float32 (steps 2 and 3; no resizing)."""
        g = np.asarray(grey, dtype=np.float32)
        if g.ndim == 3:
            g = g[..., None]
        scale = np.asarray(self.scale, np.float32)
        offset = np.asarray(self.offset, np.float32)
        return g * scale + offset  # broadcasting replicates the grey channel

    def tf_to_input(self, grey):
        """:meth:`to_input` on a TensorFlow tensor ``[..., size, size, 1]`` (data pipeline)."""
        import tensorflow as tf

        scale = tf.constant(self.scale, tf.float32)
        offset = tf.constant(self.offset, tf.float32)
        return tf.cast(grey, tf.float32) * scale + offset

    def prepare(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Grey images of any size (float32 ``HxW`` in [0, 1]) -> a model input batch."""
        from ...data.image_io import resize

        batch = []
        for i, image in enumerate(images):
            image = np.asarray(image, dtype=np.float32)
            if image.ndim != 2:
                raise ValueError(f"image {i}: expected a grey HxW array, got shape {image.shape}")
            if image.shape != (self.size, self.size):
                image = resize(image, self.size, kind="image")
            batch.append(image)
        return self.to_input(np.stack(batch) if batch else
                             np.zeros((0, self.size, self.size), np.float32))
