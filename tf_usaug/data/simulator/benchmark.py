"""The scanner-shift benchmark set: device phantoms, one BUSI folder per device, cached.

    python -m tf_usaug.simulate benchmark --devices linear-a,convex-b --per-class 150 --size 128

writes (``DIR`` = ``--out``, or by default ``~/.cache/tf_usaug/benchmark/<fingerprint>``)::

    DIR/<device>/<class>/<device>_<class>_<iii>.png + ..._mask.png   one BUSI folder per device
    DIR/benchmark.json                                              counts, settings, atypical
    DIR/run.json, DIR/.lock                                         the run record and its lock

Each image has its own seed, ``item_seed(seed, "<device>/<class>/<index>")`` (the same as
``python -m tf_usaug.simulate --device``), so the set is deterministic, does not depend on
``--jobs``, and an interrupted build resumes where it stopped. The folder is a
:class:`~tf_usaug.rundir.RunDir`: a rerun with other settings is refused unless
``overwrite``; the default folder name is the fingerprint of every setting that shapes the
set (presets, lesion tables, simulation settings, PyMUST version included), so a changed
preset gets a fresh folder instead of mixing with the old one. ``benchmark.json`` is written
when every image exists (and removed while a build is incomplete).

From a notebook::

    from tf_usaug.data.simulator.benchmark import build_benchmark
    bench = build_benchmark(devices=["linear-a", "phased-c"], per_class=150, jobs=8)
    bench.device_dir("linear-a")   # a BUSI folder: benign/, malignant/
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ...errors import UsageError
from .appearance import ATYPICAL_LESIONS, DEFAULT_OVERLAP, ECHO_JITTER_DB, lesion_variant
from .config import CLASSES, LESIONS, MIN_SIZE, SimulationConfig
from .devices import DEVICES, resolve_device
from .phantom_set import item_name, prune_phantoms, run

BENCHMARK_JOB = "simulate-benchmark"
SUMMARY_FILE = "benchmark.json"
FORMAT = 1
DEFAULT_DEVICES = tuple(DEVICES)
DEFAULT_PER_CLASS = 150
DEFAULT_SIZE = 128
CACHE_ENV = "TF_USAUG_CACHE"
LAYOUT = "<device>/<class>/<device>_<class>_<iii>.png + <device>_<class>_<iii>_mask.png"


# --------------------------------------------------------------------------------------
# Items: one device phantom each
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceItem:
    """One device phantom to write: the folder holding ``<class>/``, device, class, seed."""

    out: Path
    device: str
    label: str
    index: int
    seed: int
    size: int
    overlap: float

    @property
    def stem(self) -> str:
        return item_name(self.device, self.label, self.index)

    @property
    def image_path(self) -> Path:
        return self.out / self.label / f"{self.stem}.png"

    @property
    def mask_path(self) -> Path:
        return self.out / self.label / f"{self.stem}_mask.png"

    def done(self) -> bool:
        return self.image_path.exists() and self.mask_path.exists()

    def atypical(self) -> bool:
        """Whether this image's lesion is atypical for its class (known without simulating)."""
        return lesion_variant(self.label, self.seed, self.overlap).atypical


def plan_device_items(out: Path, devices: list[str], labels: list[str], n: int, seed: int,
                      size: int, overlap: float, per_device: bool = False) -> list[DeviceItem]:
    """All phantoms of a device run: ``out/<class>/`` or, with ``per_device``,
    ``out/<device>/<class>/``; seeds ``item_seed(seed, "<device>/<class>/<index>")``."""
    from ...distributed import item_seed

    items = []
    for device in devices:
        folder = Path(out) / device if per_device else Path(out)
        for label in labels:
            for i in range(n):
                items.append(DeviceItem(folder, device, label, i,
                                        item_seed(seed, f"{device.lower()}/{label}/{i}"),
                                        size, float(overlap)))
    return items


def write_device_item(item: DeviceItem) -> float:
    """Simulate one device phantom and write image + mask atomically (mask first); seconds."""
    from ...files import atomic_write_bytes, encode_png
    from .scanner import simulate_device_phantom

    t0 = time.perf_counter()
    phantom = simulate_device_phantom(item.label, item.device, item.seed, item.size, item.overlap)
    atomic_write_bytes(item.mask_path, encode_png(phantom.mask))
    atomic_write_bytes(item.image_path, encode_png(phantom.image))
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------
# Settings, fingerprint, cache folder
# --------------------------------------------------------------------------------------
def _jsonable(obj):
    """``obj`` as it reads back from JSON (tuples become lists), so records compare equal."""
    return json.loads(json.dumps(obj, sort_keys=True))


def simulator_settings() -> dict:
    """What else shapes the bytes: lesion tables, shared simulation settings, PyMUST."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pymust_version = version("pymust")
    except PackageNotFoundError:  # pragma: no cover
        pymust_version = "unknown"
    cfg = SimulationConfig()
    shared = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
              if f.name not in ("probes", "lesions")}
    return _jsonable({
        "format": FORMAT, "simulation": shared, "echo_jitter_db": ECHO_JITTER_DB,
        "lesions": {k: dataclasses.asdict(v) for k, v in LESIONS.items()},
        "atypical_lesions": {k: dataclasses.asdict(v) for k, v in ATYPICAL_LESIONS.items()},
        "pymust": pymust_version,
    })


def benchmark_settings(devices: list[str], labels: list[str], per_class: int, size: int,
                       seed: int, overlap: float) -> dict:
    """The settings recorded in ``run.json`` and fingerprinted into the default folder name."""
    return _jsonable({
        "devices": list(devices), "classes": list(labels), "per_class": int(per_class),
        "size": int(size), "seed": int(seed), "overlap": float(overlap),
        "device_configs": {d: dataclasses.asdict(DEVICES[d]) for d in devices},
        "simulator": simulator_settings(),
    })


def cache_root() -> Path:
    """``$TF_USAUG_CACHE/benchmark``, else ``$XDG_CACHE_HOME/tf_usaug/benchmark``, else
    ``~/.cache/tf_usaug/benchmark``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser() / "benchmark"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tf_usaug" / "benchmark"


def default_benchmark_dir(settings: dict) -> Path:
    """The cache folder of a set: ``cache_root() / fingerprint(settings)``."""
    from ...rundir import fingerprint

    return cache_root() / fingerprint(settings)


def stale_devices(old: dict | None, new: dict) -> set[str]:
    """Devices whose existing images no longer match ``new`` (after an accepted change)."""
    devices = set(new["devices"])
    if old is None:
        return devices
    making = ("seed", "size", "overlap", "simulator")
    if any(old.get(k) != new.get(k) for k in making):
        return devices
    old_configs = old.get("device_configs") or {}
    return {d for d in devices if old_configs.get(d) != new["device_configs"][d]}


# --------------------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchmarkSet:
    """A built set: its folder, what this call wrote and skipped, and ``benchmark.json``."""

    path: Path
    written: int
    skipped: int
    summary: dict

    def device_dir(self, device: str) -> Path:
        """The BUSI folder (``benign/``, ``malignant/``) of one device."""
        return self.path / resolve_device(device).name


def command_line(settings: dict) -> str:
    """The command that builds the same set."""
    return ("python -m tf_usaug.simulate benchmark --devices " + ",".join(settings["devices"])
            + f" --classes {','.join(settings['classes'])} --per-class {settings['per_class']}"
            f" --size {settings['size']} --seed {settings['seed']}"
            f" --overlap {settings['overlap']:g}")


def summarise(root: Path, items: list[DeviceItem], settings: dict) -> dict:
    """Content of ``benchmark.json``: counts on disk per device and class, the atypical
    images, the settings and the command."""
    from ...rundir import fingerprint

    counts = {d: {c: 0 for c in settings["classes"]} for d in settings["devices"]}
    atypical = {d: {c: [] for c in settings["classes"]} for d in settings["devices"]}
    for it in items:
        counts[it.device][it.label] += int(it.done())
        if it.atypical():
            atypical[it.device][it.label].append(it.stem)
    keys = ("devices", "classes", "per_class", "size", "seed", "overlap")
    return {
        "format": FORMAT, "fingerprint": fingerprint(settings), "layout": LAYOUT,
        **{k: settings[k] for k in keys},
        "images": sum(sum(c.values()) for c in counts.values()),
        "counts": counts, "atypical": atypical,
        "device_configs": settings["device_configs"], "command": command_line(settings),
    }


def _remove_empty_folders(root: Path) -> None:
    """Drop ``<device>/<class>/`` and ``<device>/`` folders that pruning left empty."""
    for pattern in ("*/*", "*"):
        for folder in sorted(root.glob(pattern)):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _check(devices, labels, per_class, size, seed, overlap, jobs) -> tuple[list, list]:
    names = []
    for name in devices:
        try:
            names.append(resolve_device(name).name)
        except ValueError as exc:
            raise UsageError(f"--devices: {exc}") from None
    unknown = [c for c in labels if c not in CLASSES]
    if not names:
        raise UsageError("--devices: give at least one device")
    if not labels or unknown:
        raise UsageError(f"--classes: unknown class(es) {unknown or list(labels)}; "
                         f"choose from {', '.join(CLASSES)}")
    for flag, value, low in (("--per-class", per_class, 1), ("--size", size, MIN_SIZE),
                             ("--seed", seed, 0), ("--jobs", jobs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UsageError(f"{flag} must be an integer >= {low}, got {value!r}")
    if not 0.0 <= float(overlap) <= 1.0:
        raise UsageError(f"--overlap must be within [0, 1], got {overlap!r}")
    return list(dict.fromkeys(names)), list(dict.fromkeys(labels))


def build_benchmark(out: str | os.PathLike | None = None, devices=DEFAULT_DEVICES,
                    per_class: int = DEFAULT_PER_CLASS, size: int = DEFAULT_SIZE, seed: int = 0,
                    overlap: float = DEFAULT_OVERLAP, classes=CLASSES, jobs: int = 1,
                    overwrite: bool = False) -> BenchmarkSet:
    """Build (or finish, or just check) the benchmark set; returns where it is and its summary.

    Args:
        out: folder of the set; None: ``default_benchmark_dir`` (fingerprinted cache folder).
        devices: ``DEVICES`` names (case-insensitive).
        per_class: images per class and device.
        size: image side in pixels.
        seed: global seed; each image gets ``item_seed(seed, "<device>/<class>/<index>")``.
        overlap: share of atypical lesions per class (``appearance``).
        classes: subset of ``CLASSES``.
        jobs: worker processes (the images do not depend on it).
        overwrite: accept an ``out`` made with other settings: regenerate what differs,
            remove what no longer belongs (otherwise such a folder is refused).
    """
    from ... import log as _log
    from ...files import write_json
    from ...rundir import RunDir

    devices, labels = _check(list(devices), list(classes), per_class, size, seed, overlap, jobs)
    settings = benchmark_settings(devices, labels, per_class, size, seed, overlap)
    root = Path(out) if out is not None else default_benchmark_dir(settings)
    rundir = RunDir(root)
    rundir.check_target()
    log = _log.get()
    with rundir:
        old = rundir.recorded_settings()
        has_results = any(root.glob("*/*/*.png"))
        changed = rundir.check_settings(BENCHMARK_JOB, settings, overwrite, has_results)
        with _log.Stage(f"plan {per_class} x {'/'.join(labels)} x {'/'.join(devices)} device "
                        f"phantoms ({size}x{size}, overlap {overlap:g}) in {root}", log):
            items = plan_device_items(root, devices, labels, per_class, seed, size, overlap,
                                      per_device=True)
            stale = stale_devices(old, {"job": BENCHMARK_JOB, **settings}) if changed else set()
            todo = [it for it in items if it.device in stale or not it.done()]
            if len(todo) < len(items):
                log.info("    %d already written, skipped", len(items) - len(todo))
            removed = prune_phantoms(root, items, pattern="*/*/*.png")
            _remove_empty_folders(root)
            if removed:
                log.info("    removed %d files that no longer belong to this set", removed)
        if todo:
            (root / SUMMARY_FILE).unlink(missing_ok=True)  # incomplete until the end
        t0 = time.perf_counter()
        with _log.Stage(f"simulate {len(todo)} device phantoms with PyMUST ({jobs} process"
                        f"{'es' if jobs > 1 else ''})", log):
            seconds = run(todo, jobs, writer=write_device_item)
        summary = summarise(root, items, settings)
        if _read_json(root / SUMMARY_FILE) != summary:
            write_json(root / SUMMARY_FILE, summary)
    if seconds:
        log.info("    wrote %d image+mask pairs in %.1f s (%.1f s per image)", len(seconds),
                 time.perf_counter() - t0, sum(seconds) / len(seconds))
    return BenchmarkSet(path=root, written=len(seconds), skipped=len(items) - len(todo),
                        summary=summary)
