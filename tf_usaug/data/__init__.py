"""Data in and out of the pipeline: reading images, datasets and splits, scanner screenshots,
the PyMUST simulator, and traditional (geometric) augmentation.

    image_io.py     read PNG/JPEG/BMP/TIFF/DICOM as float32 grey in [0, 1]; resize
    datasets.py     BUSI / flat / CSV layouts, stratified splits and k-fold
    scan_region.py  the imaging region of scanner screenshots (rectangle, sector, convex);
                    DICOM SequenceOfUltrasoundRegions
    screenshots.py  synthetic scanner screenshots with known scan regions (for tests)
    crop.py         crop_to_scan over scan_region; brightness (grey-scale) bars
    fit.py          region -> working square and back: pad, crop, stretch
    simulator/      PyMUST B-mode phantoms with exact lesion masks
    transforms.py   traditional augmentation (paper 000 sec. 2.1), image and mask together

Submodules are imported on use (``from tf_usaug.data.datasets import discover``), so reading
an image never pulls in TensorFlow.
"""
