"""tf_usaug.data.datasets: BUSI / flat / CSV discovery, mask merging, stratified splits, k-fold."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tf_usaug.data.datasets import (DatasetError, Sample, discover, discover_images, load_sample,
                                    mask_stem, split,
                                    stratified_kfold,
                                    stratum_counts)
from tf_usaug.data.image_io import ImageError

PAPER_002_FRACTIONS = (0.7, 0.15, 0.15)


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def disc_mask(shape, centre, radius) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


@pytest.fixture
def busi(tmp_path, rng):
    """BUSI-like tree: two lesions for 'benign (2)', an image without mask, mixed extensions."""
    root = tmp_path / "busi"
    shape = (24, 32)
    for cls, names in {"benign": ["benign (1)", "benign (2)", "benign (10)"],
                       "malignant": ["malignant (1)", "malignant (2)"],
                       "normal": ["normal (1)"]}.items():
        for name in names:
            save(root / cls / f"{name}.png", rng.integers(0, 256, shape, dtype=np.uint8))
            if cls != "normal":
                save(root / cls / f"{name}_mask.png",
                     disc_mask(shape, (8, 8), 4).astype(np.uint8) * 255)
    save(root / "benign" / "benign (2)_mask_1.png",
         disc_mask(shape, (16, 24), 5).astype(np.uint8) * 255)
    (root / "README.txt").write_text("not an image")
    (root / ".cache").mkdir()
    save(root / ".cache" / "thumb.png", np.zeros((2, 2), np.uint8))
    return root


def test_busi_layout_keys_labels_and_masks(busi):
    samples = discover(busi)
    keys = [s.key for s in samples]
    assert keys == sorted(keys) and len(set(keys)) == len(keys) == 6
    assert keys[:3] == ["benign/benign (1)", "benign/benign (10)", "benign/benign (2)"]
    by_key = {s.key: s for s in samples}
    two = by_key["benign/benign (2)"]
    assert two.label == "benign" and two.image == busi / "benign" / "benign (2).png"
    assert [m.name for m in two.masks] == ["benign (2)_mask.png", "benign (2)_mask_1.png"]
    assert by_key["normal/normal (1)"].masks == ()
    assert Counter(s.label for s in samples) == {"benign": 3, "malignant": 2, "normal": 1}
    assert not any("_mask" in s.image.name for s in samples)  # masks are never images
    assert discover_images(busi) == [s.image for s in samples]


def test_load_sample_merges_masks_with_or_and_resizes(busi):
    sample = {s.key: s for s in discover(busi)}["benign/benign (2)"]
    image, mask = load_sample(sample)
    expected = disc_mask((24, 32), (8, 8), 4) | disc_mask((24, 32), (16, 24), 5)
    assert image.shape == (24, 32) and image.dtype == np.float32
    np.testing.assert_array_equal(mask, expected)
    raw = np.asarray(Image.open(sample.image))
    np.testing.assert_array_equal(image, (raw / 255.0).astype(np.float32))

    small_image, small_mask = load_sample(sample, size=(12, 16))
    assert small_image.shape == small_mask.shape == (12, 16) and small_mask.dtype == bool
    np.testing.assert_array_equal(small_mask, expected[1::2, 1::2])  # nearest, exact centres
    np.testing.assert_allclose(small_image,
                               image.reshape(12, 2, 16, 2).mean(axis=(1, 3)), atol=1e-6)
    assert load_sample(sample, size=8)[0].shape == (8, 8)
    unmasked = {s.key: s for s in discover(busi)}["normal/normal (1)"]
    assert load_sample(unmasked)[1] is None


def test_load_sample_mask_of_wrong_size_names_the_mask(busi):
    bad = save(busi / "malignant" / "malignant (1)_mask_1.png", np.zeros((20, 32), np.uint8))
    sample = {s.key: s for s in discover(busi)}["malignant/malignant (1)"]
    with pytest.raises(ImageError) as info:
        load_sample(sample)
    message = str(info.value)
    assert message.startswith(str(bad)) and "20x32" in message and "24x32" in message


def test_flat_folder_without_labels(tmp_path, rng):
    for name in ("b", "a", "c"):
        save(tmp_path / f"{name}.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    save(tmp_path / "b_mask.png", np.eye(6, dtype=np.uint8))
    save(tmp_path / "._a.png", np.zeros((2, 2), np.uint8))  # macOS AppleDouble companion
    samples = discover(tmp_path)
    assert [s.key for s in samples] == ["a", "b", "c"]
    assert all(s.label is None for s in samples)
    assert [m.name for m in samples[1].masks] == ["b_mask.png"] and samples[0].masks == ()


def test_single_image_file_is_one_sample(tmp_path, rng):
    image = save(tmp_path / "style.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    save(tmp_path / "style_mask.png", np.eye(6, dtype=np.uint8))
    save(tmp_path / "other.png", np.eye(6, dtype=np.uint8))
    assert discover(image) == [Sample("style", image, (tmp_path / "style_mask.png",), None)]
    with pytest.raises(DatasetError, match="is a mask"):
        discover(tmp_path / "style_mask.png")


def test_mask_stem():
    assert mask_stem("x/benign (3)_mask.png") == "benign (3)"
    assert mask_stem("benign (3)_mask_12.png") == "benign (3)"
    assert mask_stem("benign (3).png") is None and mask_stem("masked.png") is None


# ----------------------------------------------------------------------------- CSV


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def csv_tree(tmp_path, rng):
    for rel in ("a/x.png", "b/x.png", "c/y.png", "c/z.png"):
        save(tmp_path / rel, rng.integers(0, 256, (5, 7), dtype=np.uint8))
    save(tmp_path / "masks/x_a.png", np.ones((5, 7), np.uint8))
    save(tmp_path / "masks/x_b.png", np.eye(5, 7, dtype=np.uint8))
    return tmp_path


def test_csv_layout_relative_paths_empty_cells_and_collisions(csv_tree):
    table = write_csv(csv_tree / "list.csv",
                      "\ufeffImage,Mask,Label,site\n"       # BOM, capitals, an extra column
                      "a/x.png,masks/x_a.png;masks/x_b.png,benign,1\n"
                      "b/x.png,,malignant,2\n"
                      "\n"
                      f"{csv_tree / 'c/y.png'},,,3\n"       # absolute path, no mask, no label
                      "c/z.png,,benign,4\n")
    samples = discover(table)
    keys = [s.key for s in samples]
    assert keys == sorted(keys) and len(set(keys)) == 4
    by_image = {s.image.relative_to(csv_tree).as_posix(): s for s in samples}
    xa, xb = by_image["a/x.png"], by_image["b/x.png"]
    assert xa.key != xb.key and xa.key.startswith("x-") and xb.key.startswith("x-")
    assert len(xa.key) == len("x-") + 8 and discover(table)[0].key == samples[0].key
    assert xa.masks == (csv_tree / "masks/x_a.png", csv_tree / "masks/x_b.png")
    assert xa.label == "benign" and xb.label == "malignant" and xb.masks == ()
    assert by_image["c/y.png"].key == "y" and by_image["c/y.png"].label is None
    _, merged = load_sample(xa)
    np.testing.assert_array_equal(merged, np.ones((5, 7), bool))


@pytest.mark.parametrize("text,reason", [
    ("image,label\na/x.png,benign\n", "lacks the column(s) mask"),
    ("", "lacks the column(s) image, mask, label"),
    ("image,mask,label\nmissing.png,,\n", "line 2: image file not found"),
    ("image,mask,label\na/x.png,nomask.png,\n", "line 2: mask file not found"),
    ("image,mask,label\n,,benign\n", "line 2: empty 'image' field"),
    ("image,mask,label\na/x.png,,\nc/y.png,,\na/x.png,,\n", "line 4: image a/x.png is already"),
    ("image,mask,label\nnotes.txt,,\n", "unsupported extension"),
])
def test_csv_errors_name_the_csv(csv_tree, text, reason):
    (csv_tree / "notes.txt").write_text("x")
    table = write_csv(csv_tree / "bad.csv", text)
    with pytest.raises(DatasetError) as info:
        discover(table)
    assert str(info.value).startswith(f"{table}: ") and reason in str(info.value)


# ----------------------------------------------------------------------------- errors


def test_discover_errors_name_the_folder_or_file(tmp_path, rng):
    with pytest.raises(DatasetError, match=f"^{tmp_path / 'nope'}: no such file or folder"):
        discover(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=f"^{empty}: no images found"):
        discover(empty)
    with pytest.raises(DatasetError, match="expected a folder, a .csv file or an image"):
        discover(empty / "notes.txt")

    orphan = tmp_path / "orphan"
    save(orphan / "a.png", np.zeros((4, 4), np.uint8))
    save(orphan / "b_mask.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match=f"^{orphan / 'b_mask.png'}: mask without its image"):
        discover(orphan)

    busi_orphan = tmp_path / "busi_orphan"
    save(busi_orphan / "benign" / "benign (1)_mask_1.png", np.zeros((4, 4), np.uint8))
    save(busi_orphan / "benign" / "benign (2).png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match=r"benign \(1\)_mask_1\.png: mask without its image"):
        discover(busi_orphan)

    mixed = tmp_path / "mixed"
    save(mixed / "top.png", np.zeros((4, 4), np.uint8))
    save(mixed / "benign" / "x.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match=f"^{mixed}: mixes images .* class sub-folders"):
        discover(mixed)

    twins = tmp_path / "twins"
    save(twins / "a.png", np.zeros((4, 4), np.uint8))
    save(twins / "a.bmp", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match="two images share the stem 'a'"):
        discover(twins)


def test_demo_data_is_a_busi_layout(demo_dir):
    if not demo_dir.exists():
        pytest.skip("demo data not generated")
    samples = discover(demo_dir)
    assert samples and all(s.label is not None and s.masks for s in samples)


# ----------------------------------------------------------------------------- splits


def make_samples(counts: dict) -> list[Sample]:
    return [Sample(f"{label or 'none'}/{i:03d}", Path(f"{label}/{i}.png"), (), label)
            for label, n in counts.items() for i in range(n)]


@pytest.mark.parametrize("n,expected", [(10, (7, 2, 1)), (20, (14, 3, 3)), (3, (2, 1, 0)),
                                        (1, (1, 0, 0)), (0, (0, 0, 0)), (100, (70, 15, 15))])
def test_stratum_counts_known_values(n, expected):
    assert tuple(stratum_counts(n, PAPER_002_FRACTIONS)) == expected


def test_stratum_counts_are_floor_or_ceil_and_sum(rng):
    for _ in range(200):
        fractions = rng.dirichlet([1, 1, 1])
        n = int(rng.integers(0, 500))
        counts = stratum_counts(n, fractions)
        assert counts.sum() == n
        for count, ideal in zip(counts, fractions * n):
            assert math.floor(ideal + 1e-9) <= count <= math.ceil(ideal - 1e-9)


def test_split_is_stratified_disjoint_covering_deterministic():
    samples = make_samples({"benign": 437, "malignant": 210, "normal": 133, None: 17})
    parts = split(samples, seed=3)
    assert set(parts) == {"train", "val", "test"}
    keys = [s.key for part in parts.values() for s in part]
    assert sorted(keys) == sorted(s.key for s in samples)  # disjoint and covering
    for label, n in Counter(s.label for s in samples).items():
        for name, fraction in zip(("train", "val", "test"), PAPER_002_FRACTIONS):
            got = sum(s.label == label for s in parts[name])
            assert math.floor(n * fraction) <= got <= math.ceil(n * fraction), (label, name)
    for name, fraction in zip(("train", "val", "test"), PAPER_002_FRACTIONS):
        assert abs(len(parts[name]) - fraction * len(samples)) <= 2  # rounding does not pile up
    assert all(part == sorted(part, key=lambda s: s.key) for part in parts.values())

    shuffled = [samples[i] for i in np.random.default_rng(9).permutation(len(samples))]
    assert split(shuffled, seed=3) == parts  # input order does not matter
    assert split(samples, seed=4)["test"] != parts["test"]


def test_split_adding_a_class_keeps_the_others():
    base = make_samples({"benign": 40, "malignant": 25})
    more = base + make_samples({"normal": 12})
    a, b = split(base, seed=1), split(more, seed=1)
    for name in a:
        assert [s for s in b[name] if s.label != "normal"] == a[name]


def test_split_fractions_and_edge_cases():
    samples = make_samples({"a": 10})
    parts = split(samples, fractions=(0.8, 0.2, 0.0))
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (8, 2, 0)
    assert split([], seed=0) == {"train": [], "val": [], "test": []}
    for bad in ((0.7, 0.3), (0.5, 0.6, -0.1), (0.5, 0.2, 0.2), (float("nan"), 0.5, 0.5)):
        with pytest.raises(ValueError, match="fractions"):
            split(samples, fractions=bad)


def test_stratified_kfold():
    samples = make_samples({"benign": 23, "malignant": 11, "normal": 7})
    folds = stratified_kfold(samples, k=5, seed=2)
    assert len(folds) == 5
    tests = [s.key for fold in folds for s in fold["test"]]
    assert sorted(tests) == sorted(s.key for s in samples)  # test parts partition the data
    sizes = [len(fold["test"]) for fold in folds]
    assert max(sizes) - min(sizes) <= 1
    for fold in folds:
        assert sorted(s.key for s in fold["train"] + fold["test"]) == sorted(tests)
        assert not {s.key for s in fold["train"]} & {s.key for s in fold["test"]}
        for label, n in Counter(s.label for s in samples).items():
            got = sum(s.label == label for s in fold["test"])
            assert n // 5 <= got <= -(-n // 5)
    assert stratified_kfold(samples, k=5, seed=2) == folds
    assert stratified_kfold(samples, k=5, seed=3) != folds
    for bad in (1, 0, len(samples) + 1, 2.0, True):
        with pytest.raises(ValueError, match="k must be"):
            stratified_kfold(samples, k=bad)
