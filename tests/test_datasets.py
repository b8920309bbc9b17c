"""Loaders for the paper's formats (IDX, CIFAR pickles) on tiny files written here, and
task builders."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from moecl_lib.config import ConfigError
from moecl_lib.deep.datasets import (
    FASHION_MNIST_DIR,
    DatasetError,
    class_split_tasks,
    load_cifar10,
    load_cifar100,
    load_fashion_mnist,
    load_mnist,
    load_sklearn_digits,
    one_vs_rest_tasks,
    read_idx,
    standardise,
)
from moecl_lib.deep.learners import sample_stream


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    """IDX: 00 00 08 <ndim>, big-endian uint32 dims, uint8 data (the MNIST file
    format)."""
    arr = np.asarray(arr, dtype=np.uint8)
    raw = (
        bytes([0, 0, 0x08, arr.ndim])
        + struct.pack(f">{arr.ndim}I", *arr.shape)
        + arr.tobytes()
    )
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(raw)
    else:
        path.write_bytes(raw)


def make_mnist(
    folder: Path,
    gz: bool,
    kaggle_names: bool = False,
    n_train: int = 6,
    n_test: int = 4,
):
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(0, 256, size=(n, 5, 6), dtype=np.uint8)
        labs = (np.arange(n) % 10).astype(np.uint8)
        sep = "." if kaggle_names else "-"
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{split}-images{sep}idx3-ubyte{suffix}", imgs, gz)
        write_idx(folder / f"{split}-labels{sep}idx1-ubyte{suffix}", labs, gz)
        data[split] = (imgs, labs)
    return data


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    data = make_mnist(tmp_path, gz)
    ds = load_mnist(tmp_path)
    assert ds.x_train.shape == (6, 1, 5, 6) and ds.x_test.shape == (4, 1, 5, 6)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    np.testing.assert_allclose(
        ds.x_train[:, 0].numpy(), data["train"][0] / 255.0, rtol=1e-6
    )
    np.testing.assert_array_equal(ds.y_test.numpy(), data["t10k"][1])
    assert ds.substitute_for is None and ds.n_classes == 10


def test_mnist_kaggle_file_names(tmp_path: Path) -> None:
    make_mnist(tmp_path, gz=False, kaggle_names=True)
    assert load_mnist(tmp_path).x_train.shape[0] == 6


def test_idx_bad_magic_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"\x12\x34\x08\x03" + b"\x00" * 20)
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.*magic"):
        read_idx(bad)


def test_idx_truncated_data(tmp_path: Path) -> None:
    path = tmp_path / "x.idx"
    raw = (
        bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 4, 4) + b"\x00" * 10
    )  # 32 bytes announced
    path.write_bytes(raw)
    with pytest.raises(DatasetError, match=r"x\.idx.*\(2, 4, 4\).*32 data bytes.*10"):
        read_idx(path)


def test_idx_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.idx.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match=r"x\.idx\.gz"):
        read_idx(path)


def test_mnist_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_mnist(tmp_path / "nope")


def test_mnist_label_count_mismatch(tmp_path: Path) -> None:
    make_mnist(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, np.uint8), gz=False)
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.*6 labels"):
        load_mnist(tmp_path)


def cifar_batch(n: int, label_key: bytes, n_classes: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        label_key: list(rng.integers(0, n_classes, size=n)),
        b"batch_label": b"x",
    }


def dump(path: Path, obj: object) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def test_cifar10_roundtrip(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [cifar_batch(3, b"labels", 10, i) for i in range(6)]
    for i in range(5):
        dump(folder / f"data_batch_{i + 1}", batches[i])
    dump(folder / "test_batch", batches[5])
    dump(
        folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]}
    )
    ds = load_cifar10(tmp_path)  # finds the cifar-10-batches-py subfolder
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    row = batches[0][b"data"][0]
    # CIFAR rows: 1024 red, 1024 green, 1024 blue values, each row-major 32x32
    assert ds.x_train[0, 0, 0, 1].item() == pytest.approx(row[1] / 255, rel=1e-6)
    assert ds.x_train[0, 1, 0, 0].item() == pytest.approx(row[1024] / 255, rel=1e-6)
    assert ds.x_train[0, 2, 1, 0].item() == pytest.approx(
        row[2048 + 32] / 255, rel=1e-6
    )
    np.testing.assert_array_equal(ds.y_test.numpy(), batches[5][b"labels"])
    assert ds.class_names[3] == "c3"


def test_cifar100_fine_and_coarse(tmp_path: Path) -> None:
    tr = cifar_batch(4, b"fine_labels", 100, 0)
    tr[b"coarse_labels"] = [1, 2, 3, 4]
    te = cifar_batch(2, b"fine_labels", 100, 1)
    te[b"coarse_labels"] = [5, 6]
    dump(tmp_path / "train", tr)
    dump(tmp_path / "test", te)
    fine = load_cifar100(tmp_path)
    np.testing.assert_array_equal(fine.y_train.numpy(), tr[b"fine_labels"])
    assert fine.n_classes == 100
    coarse = load_cifar100(tmp_path, labels="coarse")
    np.testing.assert_array_equal(coarse.y_test.numpy(), [5, 6])
    assert coarse.n_classes == 20
    with pytest.raises(ConfigError, match="labels="):
        load_cifar100(tmp_path, labels="medium")


def test_cifar_malformed(tmp_path: Path) -> None:
    dump(
        tmp_path / "train", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    )
    dump(
        tmp_path / "test",
        {b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 1]},
    )
    with pytest.raises(DatasetError, match=r"train.*b'fine_labels'"):
        load_cifar100(tmp_path)
    (tmp_path / "data_batch_1").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="data_batch_1.*not a CIFAR python pickle"):
        load_cifar10(tmp_path)
    dump(
        tmp_path / "data_batch_1",
        {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]},
    )
    with pytest.raises(DatasetError, match=r"data_batch_1.*\(n, 3072\)"):
        load_cifar10(tmp_path)
    dump(
        tmp_path / "data_batch_1",
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]},
    )
    with pytest.raises(DatasetError, match="data_batch_2"):
        load_cifar10(tmp_path)


def test_sklearn_digits_split() -> None:
    ds = load_sklearn_digits()
    assert ds.x_train.shape[1:] == (1, 8, 8)
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 1797
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    counts = np.bincount(ds.y_test.numpy(), minlength=10)
    assert (
        counts.min() >= 55 and counts.max() <= 62
    )  # stratified: a third of ~180 per class
    assert ds.substitute_for == "MNIST"


@pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed"
)
def test_fashion_mnist_package() -> None:
    ds = load_fashion_mnist()
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (
        10000,
        1,
        28,
        28,
    )
    assert np.bincount(ds.y_train.numpy()).tolist() == [6000] * 10
    assert ds.substitute_for == "MNIST" and ds.class_names[7] == "Sneaker"


def test_fashion_mnist_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="apt-get install -y dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "absent")


def test_class_split_relabels() -> None:
    ds = load_sklearn_digits()
    tasks = class_split_tasks(ds, [(7, 2), (5,)], np.random.default_rng(0), max_test=20)
    t0 = tasks[0]
    assert t0.classes == (7, 2) and t0.n_classes == 2 and t0.x_test.shape[0] == 20
    # relabelled: label 0 <-> original 7; check against the source images
    src7 = ds.x_train[ds.y_train == 7]
    first0 = t0.x_train[t0.y_train == 0][0]
    assert any(torch.equal(first0, s) for s in src7)
    assert set(t0.y_train.tolist()) == {0, 1}
    assert tasks[1].y_train.unique().tolist() == [0]
    with pytest.raises(ConfigError, match="outside"):
        class_split_tasks(ds, [(3, 11)], np.random.default_rng(0))
    with pytest.raises(ConfigError, match="repeats"):
        class_split_tasks(ds, [(3, 3)], np.random.default_rng(0))


def test_one_vs_rest_balanced() -> None:
    ds = load_sklearn_digits()
    tasks = one_vs_rest_tasks(
        ds, (1, 4, 7), np.random.default_rng(0), max_train=100, max_test=40
    )
    assert [t.name for t in tasks] == ["1 vs rest", "4 vs rest", "7 vs rest"]
    for t, p in zip(tasks, (1, 4, 7)):
        assert t.x_train.shape[0] == 100 and t.y_train.float().mean().item() == 0.5
        assert t.x_test.shape[0] == 40 and t.classes == (-1, p)
    # every positive of task "4" is a real 4
    pos = tasks[1].x_train[tasks[1].y_train == 1]
    src4 = ds.x_train[ds.y_train == 4]
    assert all(any(torch.equal(x, s) for s in src4) for x in pos[:5])


def test_standardise_pixel() -> None:
    ds = standardise(load_sklearn_digits(), "pixel")
    assert ds.x_train.mean(dim=0).abs().max().item() < 1e-5
    assert ds.x_train.std().item() == pytest.approx(1.0, rel=1e-3)
    with pytest.raises(ConfigError, match="mode="):
        standardise(ds, "zca")


def test_sample_stream() -> None:
    ds = load_sklearn_digits()
    tasks = class_split_tasks(ds, [(0, 1), (2, 3), (4, 5)], np.random.default_rng(0))
    a = sample_stream(tasks, 30, 50, np.random.default_rng(3))
    b = sample_stream(tasks, 30, 50, np.random.default_rng(3))
    np.testing.assert_array_equal(a.task_ids, b.task_ids)
    assert all(np.array_equal(x, y) for x, y in zip(a.batch_idx, b.batch_idx))
    assert set(a.task_ids.tolist()) == {0, 1, 2} and a.n_rounds == 30
    assert all(len(np.unique(ix)) == 50 for ix in a.batch_idx)
    fixed = sample_stream(tasks, 3, 10, np.random.default_rng(0), task_ids=[2, 0, 2])
    assert fixed.task_ids.tolist() == [2, 0, 2]
    with pytest.raises(ConfigError, match="batch_size=500"):
        sample_stream(tasks, 3, 500, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="task_ids"):
        sample_stream(tasks, 3, 10, np.random.default_rng(0), task_ids=[0, 5, 1])
