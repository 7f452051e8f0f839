"""tf_usaug: explainable neural-style-transfer augmentation of ultrasound images.

Command lines (thin front ends over the library below):
    augment.py    python -m tf_usaug.augment     the augmentation job
    simulate.py   python -m tf_usaug.simulate    PyMUST phantom sets
    relevance.py  python -m tf_usaug.relevance   LRP maps in their own process
    scaling.py    python -m tf_usaug.scaling     strong-scaling table and plot
    config.py     python -m tf_usaug.config      every default with its source

The library, one folder per concern (ARCHITECTURE.md lists each file's public API):
    data/         reading images, datasets and splits, scan regions, fitting, simulator,
                  traditional transforms
    filters/      SRAD speckle filtering (numpy reference and batched TF)
    nst/          style transfer: backbones, losses (one file per term), the optimiser
    xai/          LRP relevance (library side, and the child-process stage)
    nn/           network surgery shared by nst/ and xai/ (BatchNorm folding)
    models/       trainable model families (classifier, multitask, GANs, stylizer)
    metrics/      image-quality metrics
    distributed/  Horovod glue: ranks, sharding, seeds, training helpers, scaling report
    pipeline/     the augmentation job: config, plan, inputs, methods, outputs, run
    report/       self-contained HTML reports
    errors.py     one error hierarchy; cli.py turns it into one line and exit code 2
    rundir.py     output folders: lock, run fingerprint, checks before any work
    files.py      atomic writes
    log.py        one line per stage; TensorFlow quiet unless --verbose
"""
import os as _os

# TensorFlow's C++ logging is noise for our users; --verbose lowers it again.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
