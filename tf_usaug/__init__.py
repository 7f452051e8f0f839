"""tf_usaug: explainable neural-style-transfer augmentation of ultrasound images.

Modules, one concept each:
    io           reading images (PNG/JPEG/BMP/TIFF/DICOM) as float32 [0, 1] grey
    datasets     BUSI / flat / CSV layouts, stratified splits
    crop         ``crop_to_scan``: cut the imaging sector out of scanner screenshots
    simulate     PyMUST B-mode phantoms (the bundled demo data)
    srad         speckle-reducing anisotropic diffusion (numpy and batched TF)
    metrics      SSIM, PSNR, speckle index, grey-histogram JS distance
    transforms   traditional geometric augmentation (image + mask together)
    backbones    ResNet50 / VGG19 feature extractors
    losses       NST losses (content, Gram, MMD, multi-reference, masked, TV)
    relevance    LRP relevance maps with iNNvestigate (own process, cached)
    nst          pixel optimisation: batched, multi-resolution, early stop
    distributed  Horovod glue: ranks, sharding, GPU pinning, training helpers
    outputs      atomic writes, per-item records, manifest and summary
    augment      the main job (``python -m tf_usaug.augment``)
    scaling      strong-scaling CSV, table and plot
    config       every configuration dataclass in one place
"""
import os as _os

# TensorFlow's C++ logging is noise for our users; --verbose lowers it again.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
