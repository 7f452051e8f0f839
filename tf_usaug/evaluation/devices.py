"""Devices (scanners, probes) of a benefit dataset: found once, by one rule per layout.

Two layouts (:func:`discover_devices`):

``folders``
    ``DATA/<device>/<class>/<image>.png`` (+ ``<image>_mask.png``): one BUSI folder per
    device, as the simulator's benchmark builder writes them. Every visible sub-folder that
    holds class folders with images is a device, named by the folder.
``prefix``
    ``DATA/<class>/<device>_<class>_<i>.png``: one BUSI folder whose file names start with the
    device, like ``tf_usaug/demo_data`` (probes ``l11-5v`` and ``p4-2v``). The device is the
    part of the stem before the first ``_<class>_`` (the class being the image's folder).

The layout is ``prefix`` when a sub-folder of ``DATA`` holds images itself (it is a class
folder), else ``folders``. Device names are matched case-insensitively (``--train-device
L11-5v`` finds ``l11-5v``). Every sample keeps the key it has in its device's BUSI folder
(``<class>/<stem>``), which is the key the classifier sees: for ``prefix`` the device's images
are linked into a BUSI folder of their own (:func:`link_samples`).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..data.datasets import Sample, discover
from ..data.image_io import is_image_file
from ..errors import DatasetError, UsageError

LAYOUTS = ("folders", "prefix")


@dataclass(frozen=True)
class DeviceSet:
    """The devices of a dataset.

    Attributes:
        root: the ``--data`` folder.
        layout: ``"folders"`` or ``"prefix"``.
        devices: device name -> its samples (keys ``<class>/<stem>``), sorted by name.
        folders: device name -> its BUSI folder (``folders`` layout; empty for ``prefix``,
            whose folders are made by :func:`link_samples`).
    """

    root: Path
    layout: str
    devices: dict[str, list[Sample]]
    folders: dict[str, Path]

    def resolve(self, name: str, option: str) -> str:
        """The device called ``name`` (any case); UsageError naming those that exist."""
        hits = [d for d in self.devices if d.lower() == str(name).lower()]
        if not hits:
            raise UsageError(f"{option} {name}: no such device in {self.root} (found "
                             f"{', '.join(self.devices)}; {describe_layout(self.layout)})")
        return hits[0]

    def describe(self) -> str:
        parts = [f"{d} ({len(s)} images)" for d, s in self.devices.items()]
        return f"{self.root} ({self.layout} layout): {', '.join(parts)}"


def describe_layout(layout: str) -> str:
    return ("devices are the sub-folders DATA/<device>/<class>/<image>" if layout == "folders"
            else "devices are the file-name prefixes DATA/<class>/<device>_<class>_<i>.png")


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _holds_images(folder: Path) -> bool:
    return any(p.is_file() and not p.name.startswith(".") and is_image_file(p)
               for p in folder.iterdir())


def _labelled(samples: Sequence[Sample], where: Path) -> list[Sample]:
    unlabelled = [s for s in samples if s.label is None]
    if unlabelled:
        raise DatasetError(where, f"{len(unlabelled)} images have no class (e.g. "
                           f"{unlabelled[0].image.name}); give class folders: "
                           "<device>/<class>/<image>")
    return list(samples)


def device_of(sample: Sample) -> str:
    """The device prefix of a ``prefix``-layout sample: the stem before ``_<class>_``."""
    stem, label = Path(sample.image).stem, str(sample.label)
    at = stem.lower().find(f"_{label.lower()}_")
    if at <= 0:
        raise DatasetError(sample.image, f"file name does not start with <device>_{label}_ "
                           f"(in this layout, DATA/<class>/<device>_<class>_<i>.png, the "
                           "device is the part before _<class>_)")
    return stem[:at]


def discover_devices(root: str | os.PathLike) -> DeviceSet:
    """Find the devices of ``root`` (see the module docstring).

    Raises:
        DatasetError: not a folder, no devices, unlabelled images, a file name without its
            device, a device with only one name in different cases.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "not a folder (give DATA/<device>/<class>/<image> or "
                           "DATA/<class>/<device>_<class>_<i>.png)")
    subs = _visible_dirs(root)
    if _holds_images(root):
        raise DatasetError(root, "holds images at the top level; give DATA/<device>/<class>/"
                           "<image> or DATA/<class>/<device>_<class>_<i>.png")
    if any(_holds_images(sub) for sub in subs):  # class folders: device-prefixed names
        layout, folders = "prefix", {}
        grouped: dict[str, list[Sample]] = {}
        canonical: dict[str, str] = {}
        for sample in _labelled(discover(root), root):
            device = device_of(sample)
            name = canonical.setdefault(device.lower(), device)
            grouped.setdefault(name, []).append(sample)
    else:
        layout, folders, grouped = "folders", {}, {}
        for sub in subs:
            if not any(_holds_images(c) for c in _visible_dirs(sub)):
                continue  # not a device: no class folder with images
            lower = {d.lower(): d for d in grouped}
            if sub.name.lower() in lower:
                raise DatasetError(sub, f"device {sub.name} and {lower[sub.name.lower()]} "
                                   "differ only in case; rename one")
            grouped[sub.name] = _labelled(discover(sub), sub)
            folders[sub.name] = sub
    if not grouped:
        raise DatasetError(root, "no devices found (give DATA/<device>/<class>/<image> or "
                           "DATA/<class>/<device>_<class>_<i>.png)")
    devices = {name: sorted(grouped[name], key=lambda s: s.key) for name in sorted(grouped)}
    return DeviceSet(root, layout, devices, folders)


def link_samples(samples: Iterable[Sample], folder: str | os.PathLike) -> Path:
    """A BUSI folder of symbolic links (copies where links fail): each image and its masks
    at ``folder/<key's folder>/<file name>``, so :func:`discover` finds the same keys.

    Existing links to the same file are kept (reruns); anything else in the way is an error.
    """
    folder = Path(folder)
    for sample in samples:
        parent = folder / Path(sample.key).parent
        for src in (sample.image, *sample.masks):
            _link(Path(src), parent / Path(src).name)
    return folder


def link_flat(samples: Iterable[Sample], folder: str | os.PathLike, prefix: str = "") -> Path:
    """A flat folder of links (no masks, so no labels): ``<prefix><key with / -> __><suffix>``."""
    folder = Path(folder)
    for sample in samples:
        name = prefix + sample.key.replace("/", "__") + Path(sample.image).suffix
        _link(Path(sample.image), folder / name)
    return folder


def _link(src: Path, dst: Path) -> None:
    target = src.resolve()
    if dst.is_symlink() or dst.exists():
        if dst.resolve() == target:
            return
        if dst.is_file() and not dst.is_symlink() and dst.stat().st_size == target.stat().st_size:
            return  # a copy made where links are not allowed
        raise DatasetError(dst, f"is in the way of a link to {target}; remove it or choose "
                           "another --out")
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(target, dst)
    except OSError:
        shutil.copy2(target, dst)
