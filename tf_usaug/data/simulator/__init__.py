"""PyMUST B-mode phantoms of breast lesions (benign / malignant) with exact masks.

This is how the bundled demo data (``tf_usaug/demo_data``) was made, and how to make more::

    python -m tf_usaug.simulate --out phantoms --n 8 --probe L11-5v,P4-2v --seed 0

One image, step by step (each step is a small function below):

1. Lesion outline, star-shaped around its centre. ``benign``: smooth oval, wider than tall.
   ``malignant``: irregular, spiculated, taller than wide. These are the sonographic
   descriptors that separate the two classes (Stavros et al., Radiology 196:123-134, 1995;
   ACR BI-RADS ultrasound lexicon).
2. Scatterers uniformly at random, at a density set like PyMUST's ``genscat`` by a spacing
   in shortest wavelengths (per probe, see ``PROBES``), Rayleigh amplitudes (as in
   ``genscat``) scaled by a smooth tissue texture and the lesion's lower echogenicity.
3. RF signals with ``pymust.simus`` (Garcia, CMPB 2022) for 3 unfocused transmits: tilted
   plane waves for the linear ``L11-5v``, diverging waves for the phased ``P4-2v``. For each
   transmit, the scatterers behind the lesion lose the excess attenuation of their transmit
   and echo paths through it (posterior acoustic shadowing; PyMUST itself only models a
   uniform attenuation).
4. I/Q demodulation (``rf2iq``), delay-and-sum beamforming (``dasmtx``; Perrot et al.,
   Ultrasonics 2021) evaluated directly at the Cartesian output pixels (so the phased-array
   sector needs no polar-to-Cartesian interpolation), coherent compounding of the transmits
   (Montaldo et al., IEEE TUFFC 2009; Papadacci et al., IEEE TUFFC 2014).
5. Intensity averaged over ``oversample`` x ``oversample`` sub-pixels, time-gain compensation
   fitted on the tissue, log compression with a 50 dB dynamic range into [0, 1].

The mask is the lesion outline evaluated at the same pixel centres as the image, so it is
exact in the output grid. Everything is deterministic for a given seed.

    config.py       ProbeConfig / LesionConfig / SimulationConfig, the PROBES and LESIONS presets
    lesion.py       step 1: outlines, and the shadow path length behind a lesion
    acoustics.py    steps 2-4: scatterers, PyMUST simus, I/Q, beamforming
    phantom.py      step 5 and ``simulate_phantom(label, probe, seed, size) -> (image, mask)``
    phantom_set.py  writing many phantoms (seeded items, resumable, parallel)

Scanner shift (docs/simulator.md, "Devices and the benchmark set"): the same lesions as three
scanner presets show them (probe geometry, centre frequency, TGC, dynamic range, gain), with
a share of atypical lesions per class so that the classes overlap::

    python -m tf_usaug.simulate --out scans --n 8 --device phased-c --seed 0
    python -m tf_usaug.simulate benchmark --devices linear-a,convex-b --per-class 150

    devices.py      DeviceConfig and the DEVICES presets
    appearance.py   class overlap: ATYPICAL_LESIONS, ``lesion_variant(label, seed, overlap)``
    scanner.py      imaging areas, display chain, ``simulate_device_phantom``
    benchmark.py    the benchmark set: ``build_benchmark`` (BUSI folder per device, cached)
"""
from .config import CLASSES, LESIONS, MIN_SIZE, PROBES, LesionConfig, ProbeConfig, SimulationConfig
from .devices import DEVICES, DeviceConfig, resolve_device
from .phantom import resolve_probe, simulate_phantom
from .scanner import DevicePhantom, simulate_device_phantom
from .benchmark import build_benchmark
