"""Offline image data sets and continual-learning task builders (SPEC §7.4).

The paper uses MNIST (three tasks built from digits 1, 4, 7; 100 samples per round) and,
after review, CIFAR-10/100. This machine cannot download them, so:

* :func:`load_fashion_mnist` reads the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``) — our **substitute** for MNIST in the book
  (same 28x28 grey format, same IDX files, different images);
* :func:`load_sklearn_digits` gives scikit-learn's bundled 8x8 digits (fast tests and
  the quick profile);
* :func:`load_mnist`, :func:`load_cifar10`, :func:`load_cifar100` read the paper's
  formats from a folder the user provides (IDX, gzipped or not; CIFAR python pickle
  batches).

All loaders return an :class:`ImageDataset` with float32 images in ``[0, 1]`` of shape
``(n, C, H, W)`` and int64 labels. Missing or malformed files raise
:class:`DatasetError` naming the file and what was expected.
"""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from moecl_lib.config import ConfigError
from moecl_lib.deep.learners import TaskData, make_class_tasks
from moecl_lib.paths import FASHION_MNIST_DIR

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
PAPER_MNIST_DIGITS: tuple[int, ...] = (1, 4, 7)
"""Digits of the paper's three MNIST tasks (SPEC §7.4, [R-L]); we reuse the same class
ids on substitutes."""

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DatasetError(ConfigError):
    """A data file is missing or not in the expected format (the message names the
    file)."""


@dataclass(frozen=True)
class ImageDataset:
    """Images ``(n, C, H, W)`` float32 in [0, 1] and int64 labels, with a train/test
    split.

    Attributes:
        name: e.g. ``"Fashion-MNIST"``.
        substitute_for: the paper's data set this one stands in for (``None`` if it is
            the paper's own).
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    class_names: tuple[str, ...]
    substitute_for: str | None = None

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


# ---------------------------------------------------------------------------------- IDX
def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (MNIST format; ``.gz`` is decompressed transparently).

    Format: magic = two zero bytes, a type byte (0x08 = unsigned byte, ...), a byte
    giving the number of dimensions, then one big-endian uint32 per dimension, then the
    data.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetError(
            f"{path} is not an IDX file: expected magic bytes 00 00 <type in "
            f"{sorted(_IDX_DTYPES)}> <ndim>, got "
            f"{raw[:4].hex(' ') if raw else 'an empty file'}"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header (ndim={ndim})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(
            f"{path}: IDX header announces shape {shape} ({expected} data bytes) but "
            f"the file holds {len(raw) - header} data bytes"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _find(folder: Path, stems: Sequence[str]) -> Path:
    for stem in stems:
        for cand in (folder / stem, folder / f"{stem}.gz"):
            if cand.is_file():
                return cand
    raise DatasetError(
        f"none of {[s + '[.gz]' for s in stems]} found in {folder}"
        + ("" if folder.is_dir() else " (the folder does not exist)")
    )


def _idx_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    img_path = _find(
        folder, [f"{split}-images-idx3-ubyte", f"{split}-images.idx3-ubyte"]
    )
    lab_path = _find(
        folder, [f"{split}-labels-idx1-ubyte", f"{split}-labels.idx1-ubyte"]
    )
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(
            f"{img_path}: expected uint8 images of shape (n, H, W), got {images.dtype} "
            f"{images.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DatasetError(
            f"{lab_path}: expected {images.shape[0]} labels (one per image in "
            f"{img_path.name}), got shape {labels.shape}"
        )
    return images, labels


def _to_dataset(
    name: str,
    tr: tuple[np.ndarray, np.ndarray],
    te: tuple[np.ndarray, np.ndarray],
    class_names: tuple[str, ...],
    substitute_for: str | None,
    scale: float = 255.0,
) -> ImageDataset:
    def conv(x: np.ndarray) -> Tensor:
        arr = x.astype(np.float32) / scale
        if arr.ndim == 3:
            arr = arr[:, None]
        return torch.from_numpy(np.ascontiguousarray(arr))

    return ImageDataset(
        name=name,
        x_train=conv(tr[0]),
        y_train=torch.from_numpy(tr[1].astype(np.int64)),
        x_test=conv(te[0]),
        y_test=torch.from_numpy(te[1].astype(np.int64)),
        class_names=class_names,
        substitute_for=substitute_for,
    )


def load_mnist(folder: str | Path) -> ImageDataset:
    """MNIST from ``folder`` holding
    ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` (paper's data)."""
    folder = Path(folder)
    return _to_dataset(
        "MNIST",
        _idx_split(folder, "train"),
        _idx_split(folder, "t10k"),
        tuple(str(d) for d in range(10)),
        None,
    )


def load_fashion_mnist(folder: str | Path = FASHION_MNIST_DIR) -> ImageDataset:
    """Fashion-MNIST (Debian ``dataset-fashion-mnist``): a **substitute** for the
    paper's MNIST."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(
            f"Fashion-MNIST folder {folder} not found: run `apt-get install -y "
            "dataset-fashion-mnist` or pass the folder holding the four *-ubyte.gz "
            "files"
        )
    return _to_dataset(
        "Fashion-MNIST",
        _idx_split(folder, "train"),
        _idx_split(folder, "t10k"),
        FASHION_MNIST_CLASSES,
        "MNIST",
    )


def load_sklearn_digits(test_fraction: float = 1 / 3, seed: int = 0) -> ImageDataset:
    """scikit-learn's 8x8 digits (1797 images, bundled): a small **substitute** for
    MNIST.

    There is no official split: a stratified split with ``test_fraction`` of each class
    in the test set.
    """
    from sklearn.datasets import load_digits

    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction={test_fraction!r} must be in (0, 1)")
    bunch = load_digits()
    images, labels = bunch.images.astype(np.float32), bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(labels.shape[0], dtype=bool)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test[idx[: int(round(test_fraction * idx.size))]] = True
    return _to_dataset(
        "sklearn digits",
        (images[~test], labels[~test]),
        (images[test], labels[test]),
        tuple(str(d) for d in range(10)),
        "MNIST",
        scale=16.0,
    )


# -------------------------------------------------------------------------------- CIFAR
def _unpickle(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"CIFAR batch file not found: {path}")
    try:
        with open(path, "rb") as fh:
            d = pickle.load(fh, encoding="bytes")
    except Exception as exc:  # noqa: BLE001
        # any unpickling failure means a malformed file
        raise DatasetError(
            f"{path} is not a CIFAR python pickle batch: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(d, dict) or b"data" not in d or label_key not in d:
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise DatasetError(
            f"{path}: expected a dict with keys b'data' and {label_key!r}, got {keys}"
        )
    data = np.asarray(d[b"data"])
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DatasetError(
            f"{path}: b'data' must be a uint8 array of shape (n, 3072), got "
            f"{data.dtype} {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise DatasetError(
            f"{path}: {label_key!r} must hold {data.shape[0]} labels, got shape "
            f"{labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_folder(folder: Path, sub: str) -> Path:
    if (folder / sub).is_dir():
        return folder / sub
    return folder


def load_cifar10(folder: str | Path) -> ImageDataset:
    """CIFAR-10 python version: ``data_batch_1..5`` and ``test_batch`` in ``folder`` (or
    its ``cifar-10-batches-py`` subfolder); class names from ``batches.meta`` if
    present."""
    folder = _cifar_folder(Path(folder), "cifar-10-batches-py")
    parts = [_unpickle(folder / f"data_batch_{i}", b"labels") for i in range(1, 6)]
    tr = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    te = _unpickle(folder / "test_batch", b"labels")
    names = _meta_names(folder / "batches.meta", b"label_names", 10)
    return _to_dataset("CIFAR-10", tr, te, names, None)


def load_cifar100(folder: str | Path, labels: str = "fine") -> ImageDataset:
    """CIFAR-100 python version: ``train`` and ``test`` in ``folder`` (or
    ``cifar-100-python``); ``labels="fine"`` (100 classes, key b'fine_labels') or
    ``"coarse"`` (20, b'coarse_labels')."""
    if labels not in ("fine", "coarse"):
        raise ConfigError(f"labels={labels!r} must be 'fine' or 'coarse'")
    folder = _cifar_folder(Path(folder), "cifar-100-python")
    key = f"{labels}_labels".encode()
    tr, te = _unpickle(folder / "train", key), _unpickle(folder / "test", key)
    n = 100 if labels == "fine" else 20
    names = _meta_names(folder / "meta", f"{labels}_label_names".encode(), n)
    return _to_dataset(f"CIFAR-100 ({labels})", tr, te, names, None)


def _meta_names(path: Path, key: bytes, n: int) -> tuple[str, ...]:
    if path.is_file():
        try:
            with open(path, "rb") as fh:
                meta = pickle.load(fh, encoding="bytes")
            names = meta[key]
            if len(names) == n:
                return tuple(
                    x.decode() if isinstance(x, bytes) else str(x) for x in names
                )
        except Exception:  # noqa: BLE001 - names are cosmetic; fall back to numbers
            pass
    return tuple(str(i) for i in range(n))


# ------------------------------------------------------------------------ task builders
def _subsample(
    x: Tensor, y: Tensor, n: int | None, rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    perm = torch.from_numpy(rng.permutation(x.shape[0]))
    if n is not None:
        perm = perm[:n]
    return x[perm], y[perm]


def class_split_tasks(
    ds: ImageDataset,
    class_subsets: Sequence[Sequence[int]],
    rng: np.random.Generator,
    max_train: int | None = None,
    max_test: int | None = None,
) -> list[TaskData]:
    """One task per class subset (labels relabelled ``subset[k] -> k``), samples
    shuffled by ``rng``.

    ``max_train`` / ``max_test`` cap the number of samples kept per task (after
    shuffling).
    """
    _check_classes(ds, [c for s in class_subsets for c in s])
    names = ["/".join(ds.class_names[c] for c in s) for s in class_subsets]
    tasks = make_class_tasks(
        ds.x_train, ds.y_train, ds.x_test, ds.y_test, class_subsets, names
    )
    out = []
    for tk in tasks:
        xtr, ytr = _subsample(tk.x_train, tk.y_train, max_train, rng)
        xte, yte = _subsample(tk.x_test, tk.y_test, max_test, rng)
        out.append(TaskData(tk.name, tk.classes, xtr, ytr, xte, yte))
    return out


def one_vs_rest_tasks(
    ds: ImageDataset,
    positives: Sequence[int] = PAPER_MNIST_DIGITS,
    rng: np.random.Generator | None = None,
    negatives: Sequence[int] | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
) -> list[TaskData]:
    """Binary task "recognise class p" for every ``p`` in ``positives`` (our reading of
    the paper's "recognising digits 1, 4 and 7" as three tasks, SPEC §7.4 [R-L]).

    Label 1 = class ``p``, label 0 = a sample of the ``negatives`` classes (default:
    every other class), drawn uniformly so that each task is balanced 50/50.
    ``TaskData.classes = (-1, p)`` (-1 = "rest"). ``max_train`` / ``max_test`` cap the
    samples per task (balanced).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    _check_classes(ds, list(positives) + list(negatives or []))
    if len(positives) == 0 or len(set(positives)) != len(positives):
        raise ConfigError(
            f"positives={list(positives)} must be non-empty without repeats"
        )
    tasks = []
    for p in positives:
        neg_classes = [
            c
            for c in (negatives if negatives is not None else range(ds.n_classes))
            if c != p
        ]
        if not neg_classes:
            raise ConfigError(f"no negative class left for positive class {p}")
        parts = []
        for x, y, cap in (
            (ds.x_train, ds.y_train, max_train),
            (ds.x_test, ds.y_test, max_test),
        ):
            pos = np.flatnonzero((y == p).numpy())
            neg = np.flatnonzero(np.isin(y.numpy(), neg_classes))
            k = (
                min(pos.size, neg.size)
                if cap is None
                else min(pos.size, neg.size, cap // 2)
            )
            if k < 1:
                raise ConfigError(
                    f"class {p}: not enough samples for a balanced task (cap={cap})"
                )
            idx = np.concatenate(
                [rng.choice(pos, k, replace=False), rng.choice(neg, k, replace=False)]
            )
            lab = np.concatenate([np.ones(k, np.int64), np.zeros(k, np.int64)])
            perm = rng.permutation(idx.size)
            parts.append((x[torch.from_numpy(idx[perm])], torch.from_numpy(lab[perm])))
        tasks.append(
            TaskData(
                f"{ds.class_names[p]} vs rest",
                (-1, int(p)),
                parts[0][0],
                parts[0][1],
                parts[1][0],
                parts[1][1],
            )
        )
    return tasks


def _check_classes(ds: ImageDataset, classes: Sequence[int]) -> None:
    bad = [c for c in classes if not 0 <= int(c) < ds.n_classes]
    if bad:
        raise ConfigError(
            f"class ids {bad} outside [0, {ds.n_classes - 1}] for {ds.name}"
        )


def standardise(ds: ImageDataset, mode: str = "pixel") -> ImageDataset:
    """Standard input normalisation with training-set statistics (all classes pooled, so
    no task information).

    ``mode="pixel"``: subtract the per-pixel mean image and divide by the overall std
    (mean-image subtraction); ``"channel"``: subtract the per-channel mean and divide by
    the per-channel std (torchvision ``Normalize`` style); ``"none"``: unchanged.
    Centering matters for the linear router: raw images share a large positive mean
    component, so the batch-summed inputs of different tasks are nearly parallel.
    """
    if mode == "none":
        return ds
    if mode == "pixel":
        mean = ds.x_train.mean(dim=0, keepdim=True)
        std = (ds.x_train - mean).std()
    elif mode == "channel":
        mean = ds.x_train.mean(dim=(0, 2, 3), keepdim=True)
        std = ds.x_train.std(dim=(0, 2, 3), keepdim=True)
    else:
        raise ConfigError(f"mode={mode!r} must be one of ['pixel', 'channel', 'none']")
    std = torch.clamp(std, min=1e-8)
    return dataclasses.replace(
        ds, x_train=(ds.x_train - mean) / std, x_test=(ds.x_test - mean) / std
    )
