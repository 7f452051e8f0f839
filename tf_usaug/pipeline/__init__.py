"""The augmentation job (``python -m tf_usaug.augment``) as a library.

    config.py     AugmentConfig (the paper's defaults) and presets
    plan.py       work items and fixed batches, identical on every rank
    methods.py    nst / traditional / srad / stylizer / gan: a batch of items -> images, masks,
                  record extras
    relevance_stage.py  which relevance maps a rank asks for (one child per node on small jobs)
    outputs.py    the output folder: per-item records, manifest, summary
    job.py        ``run(AugmentConfig) -> summary``
"""
