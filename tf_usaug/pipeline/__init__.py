"""The augmentation job (``python -m tf_usaug.augment``) as a library.

    config.py     AugmentConfig (the paper's defaults) and presets
    plan.py       work items and fixed batches, identical on every rank
    methods.py    nst / traditional / srad: a batch of items -> images, masks, record extras
    outputs.py    the output folder: per-item records, manifest, summary
    job.py        ``run(AugmentConfig) -> summary``
"""
