"""The task classifier: ResNet50 (paper 002), EfficientNetB2 (paper 004) or a small CNN under
paper 002's head, trained data-parallel with Horovod on a split made by source image.

    config.py         ClassifierConfig (the papers' values), BACKBONES, check_config
    data.py           split by source image, augmented children of training originals, tf.data
    networks.py       build_classifier: backbone + head, one serialisable Keras model
    preprocessing.py  Preprocessing: grey image -> model input (RUN/preprocessing.json)
    checkpoint.py     TrainingState, ReduceLROnPlateau / EarlyStopping rules, save/restore
    training_loop.py  train_classifier(cfg) -> ClassifierResult
    run_files.py      the run folder: results, plots, load_classifier_run, predict

Notebook use::

    from tf_usaug.models.classifier import (ClassifierConfig, train_classifier,
                                            load_classifier_run, predict)
    result = train_classifier(ClassifierConfig(data="busi/", out="runs/r50"))
    probs = predict(load_classifier_run("runs/r50"), images)

Command line: ``python -m tf_usaug.train classifier --data DIR --out RUN`` (docs/classifier.md).
Importing this package does not import TensorFlow.
"""
from .config import BACKBONES, OPTIMIZERS, BackboneDefaults, ClassifierConfig, check_config
from .preprocessing import MODES, Preprocessing
from .run_files import ClassifierRun, load_classifier_run, predict
from .training_loop import ClassifierResult, train_classifier

__all__ = ["BACKBONES", "OPTIMIZERS", "BackboneDefaults", "ClassifierConfig", "check_config",
           "MODES", "Preprocessing", "ClassifierRun", "load_classifier_run", "predict",
           "ClassifierResult", "train_classifier"]
