"""The multitask segmentation + classification network of paper 000 (Huang et al., MICCAI
2023) with its three style augmentations, data-parallel with Horovod.

    config.py         MultitaskConfig (paper 000's values, ours where it is silent)
    layers.py         FeatAug (eq. 1), MaxPoolWithArgmax, MaxUnpool (registered Keras layers)
    networks.py       build_multitask_net: 4 encoders, 4 decoders, classification head
    losses.py         multitask_loss (eq. 2), dice_loss, dsc (eq. 3)
    wct.py            whitening-colouring transfer + the autoencoder it runs in
    augment.py        traditional, MixStyleAug, MaskAug on a batch
    data.py           originals, masks, labels, references; validation split; batches
    checkpoint.py     MultitaskState, save/restore: exact resume
    training_loop.py  train_multitask(cfg) -> MultitaskResult
    run_files.py      the run folder: results, curves, load_multitask_run, predict
    arguments.py      the ``multitask`` sub-command of python -m tf_usaug.train

Notebook use::

    from tf_usaug.models.multitask import MultitaskConfig, train_multitask, predict
    train_multitask(MultitaskConfig(data="scanner_a/", styles="scanner_b_refs/",
                                    mixstyle=True, feataug=True, maskaug=True, out="runs/mt"))
    masks, scores = predict("runs/mt", images)

Command line: ``python -m tf_usaug.train multitask --data DIR --out RUN`` (docs/multitask.md).
Importing this package does not import TensorFlow.
"""
from .config import MultitaskConfig, check_config


def __getattr__(name):
    if name in ("train_multitask", "MultitaskResult"):
        from . import training_loop

        return getattr(training_loop, name)
    if name in ("load_multitask_run", "predict", "MultitaskRun"):
        from . import run_files

        return getattr(run_files, name)
    raise AttributeError(name)


__all__ = ["MultitaskConfig", "check_config", "train_multitask", "MultitaskResult",
           "load_multitask_run", "predict", "MultitaskRun"]
