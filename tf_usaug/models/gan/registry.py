"""Trained GANs of any family behind one call: ``generate(load_gan_run(RUN), n, seed, label)``.

A family registers how to load its generator, keyed by the ``model`` field of ``RUN/gan.json``::

    register_generator_loader("wgan", load_wgan_sampler)

``loader(run_dir, info) -> sample`` and ``sample(seeds, labels) -> [n, S, S]`` float32 in
``[0, 1]``, image ``i`` a function of ``seeds[i]`` (and ``labels[i]``) alone, so outputs do not
depend on batching or on the number of ranks. :func:`load_gan_run` imports
``tf_usaug.models.<model>`` when the type is not registered yet (a family registers at its
package's import, which must not import TensorFlow).

Which classes a run covers (:meth:`GanRun.covers`): a per-class run its sub-runs' classes, a
conditional run its classes, a run trained on one class filter that class, otherwise None
(unlabelled outputs).
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ...errors import InputError
from .checkpoint import read_state
from .run_files import GENERATOR_FILE, INFO_FILE, GanInfo

Sampler = Callable[[Sequence[int], "Sequence[int] | None"], np.ndarray]
Loader = Callable[[Path, dict], Sampler]
_LOADERS: dict[str, Loader] = {}


def register_generator_loader(model_type: str, loader: Loader) -> None:
    """Make ``load_gan_run`` able to load runs whose gan.json says ``model: model_type``."""
    _LOADERS[model_type] = loader


def _loader(model_type: str, path: Path) -> Loader:
    if model_type not in _LOADERS:
        try:
            importlib.import_module(f"tf_usaug.models.{model_type}")
        except ImportError:
            pass
    if model_type not in _LOADERS:
        raise InputError(path / INFO_FILE, f"unknown GAN model type {model_type!r} (known: "
                                           f"{', '.join(sorted(_LOADERS)) or 'none'})")
    return _LOADERS[model_type]


def _read_info(path: Path) -> GanInfo:
    info = path / INFO_FILE
    try:
        data = json.loads(info.read_text())
        result = GanInfo.from_json(data)
        str(result.model), int(result.size)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(info, f"not a GAN run's info file ({exc})") from None
    return result


def read_gan_info(path: str | Path) -> GanInfo:
    """``RUN/gan.json`` of a finished run (:func:`check_gan_run` first; no TensorFlow)."""
    return _read_info(check_gan_run(path))


def check_gan_run(path: str | Path) -> Path:
    """``path`` if it is a finished GAN run, single or per-class (no TensorFlow: usable in
    argument checks).

    Raises:
        InputError: no such folder, not a GAN run, or not finished.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "no such run folder (train one with python -m tf_usaug.train "
                               "wgan --data DIR --out RUN)")
    if not (path / INFO_FILE).is_file():
        if (path / "preprocessing.json").is_file():
            raise InputError(path, f"not a GAN run (no {INFO_FILE}): a classifier run")
        if (path / "stylizer.json").is_file():
            raise InputError(path, f"not a GAN run (no {INFO_FILE}): a stylizer run")
        if read_state(path) is not None or any(read_state(p) is not None
                                               for p in path.iterdir() if p.is_dir()):
            raise InputError(path, "the GAN run has not finished (continue it with the same "
                                   "python -m tf_usaug.train command and --resume)")
        raise InputError(path, f"not a GAN run (no {INFO_FILE}; train one with python -m "
                               "tf_usaug.train wgan --data DIR --out RUN)")
    info = _read_info(path)
    if info.per_class:
        if not info.runs:
            raise InputError(path / INFO_FILE, "a per-class run without sub-runs")
        for folder in info.runs.values():
            check_gan_run(path / folder)
    elif not (path / info.generator).is_file():
        raise InputError(path / info.generator, "missing (the run has not finished)")
    return path


@dataclass
class GanRun:
    """A trained GAN: :func:`load_gan_run`; sample it with :func:`generate`."""

    path: Path
    info: GanInfo
    samplers: dict = field(default_factory=dict)    # class name (per-class) or None -> sample
    sub_infos: dict = field(default_factory=dict)   # per-class: class -> GanInfo

    @property
    def model_type(self) -> str:
        return self.info.model

    @property
    def size(self) -> int:
        return int(self.info.size)

    def covers(self) -> list[str] | None:
        """The class names its outputs can carry (None: unlabelled outputs only)."""
        return covered_classes(self.info)


def covered_classes(info: GanInfo) -> list[str] | None:
    """See :meth:`GanRun.covers` (reads gan.json only)."""
    if info.per_class:
        return sorted(info.runs)
    if info.conditional:
        return list(info.classes)
    if info.class_filter and len(info.class_filter) == 1:
        return list(info.class_filter)
    return None


def load_gan_run(path: str | Path) -> GanRun:
    """The generator(s) of a finished run folder (``python -m tf_usaug.train wgan|stylegan2``).

    Raises:
        InputError: not a finished GAN run, an unknown model type, or an unloadable model.
    """
    path = check_gan_run(path)
    info = _read_info(path)
    if info.per_class:
        run = GanRun(path, info)
        for name, folder in sorted(info.runs.items()):
            sub = _read_info(path / folder)
            run.sub_infos[name] = sub
            run.samplers[name] = _loader(sub.model, path / folder)(path / folder, sub.to_json())
        return run
    return GanRun(path, info, {None: _loader(info.model, path)(path, info.to_json())})


def _label_index(run: GanRun, label) -> int | str | None:
    """A label as the run takes it: a class name (per-class), an index (conditional), None."""
    info = run.info
    names = sorted(info.runs) if info.per_class else list(info.classes)
    if label is None:
        return None
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        if not 0 <= int(label) < len(names):
            raise ValueError(f"generate: label index {label} out of range for classes {names}")
        label = names[int(label)]
    covered = run.covers()
    if covered is None:
        raise ValueError(f"generate: {run.path} is an unconditional model of several classes "
                         "(or none): it takes no label")
    if label not in covered:
        raise ValueError(f"generate: unknown class {label!r}; {run.path} covers "
                         f"{', '.join(covered)}")
    if info.per_class:
        return label
    return list(info.classes).index(label) if info.conditional else None


def generate(run: GanRun | str | Path, n: int, seed: int | Sequence[int] = 0, label=None,
             batch_size: int = 32) -> np.ndarray:
    """``n`` generated images ``[n, S, S]`` float32 in ``[0, 1]``.

    Args:
        run: a :class:`GanRun` or its folder.
        n: how many.
        seed: an int (image ``i`` gets ``item_seed(seed, "gan/<i>")``) or one seed per image.
        label: None, a class name or index, or one of those per image. Per-class runs need
            one; conditional runs without one cycle through the classes (image ``i`` gets
            class ``i % C``); unconditional runs of several classes take none.
        batch_size: images per generator call (outputs do not depend on it).
    """
    from ...distributed.context import item_seed

    if not isinstance(run, GanRun):
        run = load_gan_run(run)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        seeds = [item_seed(int(seed), f"gan/{i}") for i in range(n)]
    else:
        seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"generate: {len(seeds)} seeds for {n} images")
    if isinstance(label, (list, tuple, np.ndarray)):
        labels = [_label_index(run, x) for x in label]
        if len(labels) != n:
            raise ValueError(f"generate: {len(labels)} labels for {n} images")
    else:
        if label is None and run.info.per_class:
            raise ValueError(f"generate: {run.path} holds one model per class: give a label "
                             f"({', '.join(sorted(run.info.runs))})")
        if label is None and run.info.conditional:
            labels = [i % len(run.info.classes) for i in range(n)]
        else:
            labels = [_label_index(run, label)] * n
    out = np.zeros((n, run.size, run.size), np.float32)
    groups: dict = {}
    for i, lab in enumerate(labels):
        groups.setdefault(lab if run.info.per_class else None, []).append(i)
    for key, idx in groups.items():
        sample = run.samplers[key]
        for start in range(0, len(idx), batch_size):
            part = idx[start:start + batch_size]
            labs = None if run.info.per_class or not run.info.conditional \
                else [labels[i] for i in part]
            out[part] = np.clip(np.asarray(sample([seeds[i] for i in part], labs), np.float32),
                                0.0, 1.0)
    return out


def run_digest(path: str | Path) -> str:
    """sha256 of what a finished run's samples depend on: every ``gan.json`` and generator
    file (per-class sub-runs included), not its logs or checkpoints (no TensorFlow)."""
    import hashlib

    from ...files import file_digest

    path = check_gan_run(path)
    info = _read_info(path)
    parts = [(INFO_FILE, file_digest(path / INFO_FILE))]
    if info.per_class:
        parts += [(folder, run_digest(path / folder)) for _, folder in sorted(info.runs.items())]
    else:
        parts.append((info.generator, file_digest(path / info.generator)))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
