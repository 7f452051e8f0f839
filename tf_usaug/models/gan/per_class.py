"""``--per-class``: one model per class, each a complete run folder ``RUN/<class>/``.

Chosen over one run per class given by hand because a user of a small labelled set wants one
command and one folder to hand to ``augment --method gan --model RUN``; and over one model
holding several generators because every sub-run then keeps the single-run rules unchanged
(its own run.json, lock, checkpoints, resume, grids, metrics). The classes are trained one
after the other in sorted order; ``--resume`` skips finished ones, continues the one that was
interrupted and starts the rest. ``RUN/gan.json`` (``per_class: true``, ``runs``) is written
when every class has finished; ``RUN/run.json`` holds the settings and the classes, so a rerun
with other settings or another class list is refused unless ``--overwrite``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
from pathlib import Path
from typing import Callable

from ...cli import rank_from_env
from ...data.datasets import discover
from ...errors import DatasetError
from ...files import write_json
from ...rundir import RunDir
from .data import data_classes
from .run_files import INFO_FILE, GanInfo

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def class_folder(name: str) -> str:
    """The sub-folder of a class: its name with characters other than ``A-Za-z0-9._-`` as
    ``_`` (a class named ``a/b`` must not make two levels)."""
    folder = _UNSAFE.sub("_", name).strip("._") or "class"
    return folder


def train_per_class(cfg, train_one: Callable, job: str, model_type: str, settings: dict,
                    ctx=None) -> dict:
    """Train ``train_one(sub_cfg, ctx)`` for each class of ``cfg.data`` into ``RUN/<class>``.

    Args:
        cfg: the family's config (``data``, ``out``, ``resume``, ``overwrite``,
            ``class_filter``, ``per_class``, ``size``, ``seed``, ``threads``).
        train_one: the family's single-run trainer (accepts a started ``ctx``).
        job: the job's name for run.json (``train-wgan`` ...); model_type: gan.json's model.
        settings: the whole run's settings (compared with ``RUN/run.json``).
        ctx: a started distributed context (default: start one).

    Returns:
        ``{class: train_one's result}``.
    """
    from ..run_common import init_context

    classes = data_classes(discover(cfg.data))
    if not classes:
        raise DatasetError(cfg.data, "--per-class needs labelled images (the BUSI layout "
                                     "ROOT/<class>/<image> or a CSV with labels); found none")
    folders = {c: class_folder(c) for c in classes}
    if len(set(folders.values())) != len(folders):
        raise DatasetError(cfg.data, "two classes map to one folder name: "
                                     + ", ".join(f"{c!r} -> {f}" for c, f in folders.items()))
    rundir = RunDir(cfg.out)
    rundir.check_target()
    results = {}
    with contextlib.ExitStack() as held:
        if rank_from_env() == 0:
            held.enter_context(rundir)
            has = any((Path(cfg.out) / f).is_dir() for f in folders.values())
            rundir.check_settings(job + "-per-class", {**settings, "classes": list(classes)},
                                  cfg.overwrite, has)
        ctx = ctx or init_context(cfg.threads)
        for name in classes:
            sub = dataclasses.replace(cfg, out=Path(cfg.out) / folders[name], per_class=False,
                                      class_filter=(name,))
            results[name] = train_one(sub, ctx=ctx)
        if ctx.is_root:
            first = results[classes[0]]
            info = GanInfo(model=model_type, size=cfg.size,
                           z_dim=getattr(first, "z_dim", 0) or 0, classes=list(classes),
                           data=str(Path(cfg.data).resolve()), seed=cfg.seed, per_class=True,
                           runs=dict(folders))
            write_json(Path(cfg.out) / INFO_FILE, info.to_json())
        ctx.barrier()  # Horovod: nobody returns before rank 0 has written the index
    return results
