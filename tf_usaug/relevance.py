"""``python -m tf_usaug.relevance``: LRP relevance maps in their own (graph-mode) process.

Started by :func:`tf_usaug.xai.relevance.ensure_relevance`; also usable by hand::

    python -m tf_usaug.relevance --cache DIR [--model resnet50] [--rule lrp.epsilon] IMAGE...
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from . import log as _log
from .cli import ArgumentParser, entry_point
from .errors import RelevanceError
from .xai.relevance import PREPROCESS_MODES, RULES, RelevanceConfig
from .xai.lrp import compute_relevance, read_list


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m tf_usaug.relevance``."""
    d = RelevanceConfig()
    p = ArgumentParser(
        prog="python -m tf_usaug.relevance",
        description="Compute LRP relevance maps (iNNvestigate) of images into a cache folder, "
                    "one <key>.npy per image; cached maps are never recomputed.")
    a = p.add_argument
    a("images", nargs="*", type=Path, metavar="IMAGE", help="content images")
    a("--list", type=Path, help="file with one image path per line, - for standard input (added to IMAGE...)")
    a("--cache", type=Path, required=True, help="relevance cache folder")
    a("--model", default=d.model, help="resnet50 or PATH of a Keras classifier (.h5/.keras)")
    a("--weights", default=d.weights, help="imagenet, PATH of an .h5, or none")
    a("--rule", default=d.rule, choices=RULES, metavar="RULE",
      help=f"iNNvestigate LRP analyzer (default {d.rule}, paper eq. 16): " + ", ".join(RULES))
    a("--neuron-selection", default=d.neuron_selection,
      help="max_activation (predicted class) or a class index")
    a("--size", type=int, default=d.size, help=f"classifier input side (default {d.size})")
    a("--preprocess", default=d.preprocess, choices=PREPROCESS_MODES,
      help=f"grey [0,1] -> classifier input (default {d.preprocess}: ResNet50's)")
    a("--seed", type=int, default=d.seed, help="seed of random weights (--weights none)")
    a("--no-fold-bn", dest="fold_bn", action="store_false", help="keep BatchNormalization")
    a("--batch-size", type=int, default=d.batch_size, help="images per analyze call")
    a("--threads", type=int, help="TensorFlow CPU threads")
    a("--parent-pid", type=int, help="exit when this process (the job) is gone")
    a("--cpus", help="bind to these CPUs, comma-separated (the job's one child per node runs "
                     "on every CPU of the node's ranks)")
    a("--no-progress", dest="progress", action="store_false", help="no progress bar")
    a("--keras-constant-evaluation", dest="fast_build", action="store_false",
      help="build the analyzer as Keras does by default (same maps; minutes slower)")
    a("--verbose", action="store_true", help="TensorFlow logs and per-stage timings")
    return p


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tf_usaug.relevance``: the relevance stage in its own (graph-mode) process."""
    args = build_parser().parse_args(argv)
    _log.setup(args.verbose)
    if not args.verbose:  # Keras v1 graph-mode deprecation chatter
        warnings.filterwarnings("ignore", category=UserWarning, module=r"keras(\.|$)")
    _exit_with_parent(args.parent_pid)
    if args.cpus:
        _bind(args.cpus)
    images = [*args.images, *(read_list(args.list) if args.list else [])]
    if not images:
        raise RelevanceError("no images given (IMAGE... or --list FILE)")
    cfg = RelevanceConfig(model=args.model, weights=args.weights, rule=args.rule,
                          neuron_selection=args.neuron_selection, size=args.size,
                          fold_bn=args.fold_bn, preprocess=args.preprocess,
                          seed=args.seed, batch_size=args.batch_size)
    compute_relevance(images, cfg, args.cache, threads=args.threads, progress=args.progress,
                      fast_build=args.fast_build)
    return 0


def _exit_with_parent(parent: int | None, poll_seconds: float = 0.5) -> None:
    """``--parent-pid PID``: stop when the job that started this process has gone (it failed,
    was killed or interrupted); a daemon thread watches the parent's PID. Without it a job
    whose stylizer build fails would leave this child computing maps nobody waits for."""
    import threading
    import time

    if not parent:
        return

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _bind(text: str) -> None:
    """``--cpus 0,1``: bind this process (before TensorFlow starts its threads)."""
    try:
        cpus = {int(c) for c in text.split(",") if c.strip()}
    except ValueError:
        raise RelevanceError(f"--cpus {text!r}: give CPU numbers, comma-separated") from None
    if cpus and hasattr(os, "sched_setaffinity"):
        from .distributed.context import bind_process

        count = os.cpu_count() or 1
        if not cpus <= set(range(count)):
            raise RelevanceError(f"--cpus {text}: this machine has CPUs 0-{count - 1}")
        bind_process(sorted(cpus))
        _log.get().debug("bound to CPUs %s", ",".join(map(str, sorted(os.sched_getaffinity(0)))))


if __name__ == "__main__":
    sys.exit(main())
