"""MNIST-layout data: IDX files, read and validated, with the canonical MNIST shipped as package data.

    >>> from manual_backprop.data import load_mnist
    >>> d = load_mnist()                      # the bundled copy, checksums verified
    >>> d.x_train.shape, d.y_train.shape      # ((60000, 784), (60000,)), x in [0, 1]

IDX format (big-endian): two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16,
0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, one uint32 per dimension,
then the values. Every failure to read a file as IDX is a ``ValueError`` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

PACKAGED_DIR = Path(__file__).resolve().parent.parent / "mnist"

# name -> (kind, MD5 of the uncompressed canonical MNIST file)
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
    "train_labels": ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
    "test_images": ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
    "test_labels": ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
}

_IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class Dataset(NamedTuple):
    """Images flattened and scaled to [0, 1]; labels as int64 class indices.

    x_train (n_train, n_features), y_train (n_train,), x_test (n_test, n_features),
    y_test (n_test,); ``n_classes`` is 1 + the largest training label.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    source: str


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic number."""
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: corrupt gzip data ({e})") from None


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of one uncompressed IDX file into an array of its shape (native byte order)."""
    if len(data) < 4:
        raise ValueError(f"{name}: not an IDX file: {len(data)} bytes, shorter than the 4-byte magic")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(
            f"{name}: not an IDX file: bad magic number 0x{data[:4].hex()} "
            "(expected 00 00, a type code in 08 09 0b 0c 0d 0e, and the number of dimensions)"
        )
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{name}: truncated IDX header: {ndim} dimensions need {header} bytes, file has {len(data)}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=object)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(
            f"{name}: {what}: header says shape {shape} of {dtype.name} "
            f"({expected} bytes with the header), file has {len(data)} bytes"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file, gzip-compressed or raw, validating magic number, dimensions and length.

    Returns an array of the declared shape, e.g. (60000, 28, 28) uint8 for MNIST images.
    ``ValueError`` naming the file when it is truncated, corrupt or not IDX;
    ``FileNotFoundError`` when it does not exist.
    """
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def _find(data_dir: Path, stem: str) -> Path:
    for candidate in (data_dir / f"{stem}.gz", data_dir / stem):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{data_dir}: no {stem}.gz or {stem} (expected the MNIST file layout)")


def _load_one(data_dir: Path, key: str, verify: bool) -> np.ndarray:
    stem, md5 = MNIST_FILES[key]
    path = _find(data_dir, stem)
    data = _read_bytes(path)
    if verify:
        got = hashlib.md5(data).hexdigest()
        if got != md5:
            raise ValueError(
                f"{path}: checksum mismatch: MD5 of the uncompressed file is {got}, "
                f"canonical MNIST has {md5} (corrupt or not MNIST; pass verify=False for other data)"
            )
    return parse_idx(data, str(path))


def _check_pair(images: np.ndarray, labels: np.ndarray, split: str, source: str) -> None:
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"{source}: {split} images must be 3-D uint8 (count, rows, cols); "
            f"got {images.ndim}-D {images.dtype} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{source}: {split} labels must be 1-D uint8; got {labels.ndim}-D {labels.dtype} "
            f"of shape {labels.shape}"
        )
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(
            f"{source}: {split} has {images.shape[0]} images but {labels.shape[0]} labels"
        )


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    verify: bool | None = None,
    dtype=np.float32,
) -> Dataset:
    """The four MNIST-layout files of ``data_dir`` (default: the copy shipped in the package).

    Each of ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte`` is read with or without ``.gz``. ``verify`` checks the canonical
    MNIST MD5 sums; by default it is on for the shipped copy and off for another ``data_dir``
    (Fashion-MNIST has the same layout and other content). Images come back flattened to
    (count, rows * cols) in ``dtype``, scaled to [0, 1]; labels as int64.
    """
    source = PACKAGED_DIR if data_dir is None else Path(data_dir)
    if verify is None:
        verify = data_dir is None
    if not source.is_dir():
        raise FileNotFoundError(f"data directory {source} does not exist or is not a directory")
    arrays = {key: _load_one(source, key, verify) for key in MNIST_FILES}
    _check_pair(arrays["train_images"], arrays["train_labels"], "train", str(source))
    _check_pair(arrays["test_images"], arrays["test_labels"], "test", str(source))
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise ValueError(
            f"{source}: train images are {arrays['train_images'].shape[1:]} but test images are "
            f"{arrays['test_images'].shape[1:]}"
        )
    n_classes = int(arrays["train_labels"].max()) + 1
    if n_classes < 2 or arrays["test_labels"].max() >= n_classes:
        raise ValueError(
            f"{source}: labels must cover at least two classes and test labels must be among the "
            f"training classes 0..{n_classes - 1}; test labels go up to {arrays['test_labels'].max()}"
        )
    dt = np.dtype(dtype)

    def scale(images: np.ndarray) -> np.ndarray:
        return (images.reshape(images.shape[0], -1).astype(dt) / dt.type(255)).astype(dt, copy=False)

    return Dataset(
        x_train=scale(arrays["train_images"]),
        y_train=arrays["train_labels"].astype(np.int64),
        x_test=scale(arrays["test_images"]),
        y_test=arrays["test_labels"].astype(np.int64),
        n_classes=n_classes,
        source=str(source),
    )
