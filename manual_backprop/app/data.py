"""MNIST-layout data: IDX files, read and validated, with the canonical MNIST shipped as package data.

    >>> from manual_backprop.app.data import load_mnist
    >>> d = load_mnist()                      # the bundled copy, checksums verified
    >>> d.x_train.shape, d.y_train.shape      # ((60000, 784), (60000,)), x in [0, 1]

IDX format (big-endian): two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16,
0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, one uint32 per dimension,
then the values. Every failure to read a file as IDX is a ``ValueError`` naming the file.

Bounded reading: the header is read first, the declared payload is refused before anything is
allocated when it exceeds ``max_bytes`` (default :data:`MAX_IDX_BYTES`, 1 GiB; canonical MNIST's
largest file holds 47 MB), then exactly the declared number of bytes is read and one more byte
must not exist. A gzip bomb therefore costs at most the declared size plus one buffer, never
what the stream would inflate to. Only regular files are opened (a FIFO would block, a device
never ends).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import stat
import zlib
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

PACKAGED_DIR = Path(__file__).resolve().parent.parent / "mnist"

# name -> (kind, MD5 of the uncompressed canonical MNIST file)
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
    "train_labels": ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
    "test_images": ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
    "test_labels": ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
}

#: Classes of the MNIST layout (digits 0-9; Fashion-MNIST, KMNIST likewise). Other data: ``n_classes=``.
MNIST_N_CLASSES = 10

#: The largest IDX payload (values, without the header) read without being asked: 1 GiB.
MAX_IDX_BYTES = 1 << 30

_IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class Dataset(NamedTuple):
    """Images flattened and scaled to [0, 1]; labels as int64 class indices.

    x_train (n_train, n_features), y_train (n_train,), x_test (n_test, n_features),
    y_test (n_test,); every label lies in 0 .. n_classes - 1 and every class occurs in
    y_train. ``source`` is the directory as given; ``data_dir`` the same, resolved to an
    absolute path; ``digest`` the SHA-256 that identifies the four files' content
    (:func:`load_mnist`); ``image_shape`` the files' (rows, cols). A Dataset built by hand has
    none of these (None).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    source: str
    digest: str | None = None
    data_dir: str | None = None
    image_shape: tuple[int, int] | None = None


class _Hashing(io.RawIOBase):
    """Reads from ``f`` and feeds every byte read to ``hashes`` (no copy of the stream kept)."""

    def __init__(self, f: BinaryIO, hashes) -> None:
        self._f, self._hashes = f, hashes

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        if n:
            view = memoryview(b)[:n]
            for h in self._hashes:
                h.update(view)
        return n


def _open_regular(path: Path) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file (symlinks followed).

    Stats before opening (opening a device can have effects) and again on the descriptor,
    which is opened non-blocking so that a FIFO swapped in between cannot hang the read.
    """
    st = os.stat(path)  # FileNotFoundError / PermissionError as they are
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (FIFO, device or socket)"
        raise ValueError(f"{path}: not an IDX file: {kind}")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path}: not an IDX file: not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_exactly(f, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _read_idx_stream(f, name: str, max_bytes: int) -> np.ndarray:
    """Header, then exactly the declared payload, then a check that nothing follows."""
    magic = _read_exactly(f, 4)
    if len(magic) < 4:
        raise ValueError(f"{name}: not an IDX file: {len(magic)} bytes, shorter than the 4-byte magic")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
        raise ValueError(
            f"{name}: not an IDX file: bad magic number 0x{magic.hex()} "
            "(expected 00 00, a type code in 08 09 0b 0c 0d 0e, and the number of dimensions)"
        )
    dtype, ndim = _IDX_TYPES[magic[2]], magic[3]
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    if ndim > 32:   # NumPy's arrays stop at 64; no IDX file has more than a few
        raise ValueError(f"{name}: IDX header declares {ndim} dimensions; an array here has at most 32")
    dims = _read_exactly(f, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(
            f"{name}: truncated IDX header: {ndim} dimensions need {4 + 4 * ndim} bytes, "
            f"file has {4 + len(dims)}"
        )
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    size = dtype.itemsize
    for n in shape:
        size *= n
    expected = 4 + 4 * ndim + size
    if size > max_bytes:
        raise ValueError(
            f"{name}: header declares shape {shape} of {dtype.name}, {size} bytes of values; "
            f"more than the limit of {max_bytes} bytes (max_bytes)"
        )
    if size == 0 and math.prod(n for n in shape if n) * dtype.itemsize > max_bytes:   # NumPy: "array is too big"
        raise ValueError(f"{name}: header declares shape {shape} of {dtype.name}: no values, and other dimensions "
                         f"whose product is more than the limit of {max_bytes} bytes (max_bytes)")
    buf = np.empty(size, dtype=np.uint8)
    view, got = memoryview(buf), 0
    while got < size:
        n = f.readinto(view[got : got + _CHUNK])
        if not n:
            break
        got += n
    if got < size:
        raise ValueError(
            f"{name}: truncated: header says shape {shape} of {dtype.name} "
            f"({expected} bytes with the header), file has {expected - size + got} bytes"
        )
    if f.read(1):  # one byte more, never the whole rest
        raise ValueError(
            f"{name}: has trailing bytes: header says shape {shape} of {dtype.name} "
            f"({expected} bytes with the header), the file goes on"
        )
    arr = buf.view(dtype).reshape(shape)
    return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))


def parse_idx(data: bytes, name: str = "<bytes>", *, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Parse the bytes of one uncompressed IDX file into an array of its shape (native byte order)."""
    return _read_idx_stream(io.BytesIO(data), name, max_bytes)


def _read_file(path: Path, max_bytes: int, hashes=()) -> np.ndarray:
    """One IDX file, gunzipped on the fly when it starts with the gzip magic number;
    ``hashes`` see the uncompressed bytes."""
    with _open_regular(path) as raw:
        gz = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        try:
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
            if hashes:
                stream = io.BufferedReader(_Hashing(stream, hashes), buffer_size=_CHUNK)
            return _read_idx_stream(stream, str(path), max_bytes)
        except (OSError, EOFError, zlib.error) as e:
            if not gz:
                raise
            raise ValueError(f"{path}: corrupt gzip data ({type(e).__name__}: {e})") from None


def read_idx(path: str | os.PathLike, *, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read one IDX file, gzip-compressed or raw, validating magic number, dimensions and length.

    Returns an array of the declared shape, e.g. (60000, 28, 28) uint8 for MNIST images.
    ``ValueError`` naming the file when it is truncated, corrupt, not IDX, not a regular file
    (a directory, FIFO, device or socket) or declares more than ``max_bytes`` of values;
    ``FileNotFoundError`` when it does not exist. Memory: the declared payload, whatever the
    file's compressed size or true length.
    """
    path = Path(path)
    return _read_file(path, max_bytes)


def _find(data_dir: Path, stem: str) -> Path:
    candidates = (data_dir / f"{stem}.gz", data_dir / stem)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    for candidate in candidates:   # there, but not a file to read: say what it is
        if os.path.lexists(candidate):
            try:
                mode = os.stat(candidate).st_mode
                kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO, device or socket"
            except OSError:
                kind = "a dangling symlink"
            raise ValueError(f"{candidate} is {kind}, not a regular file (expected the MNIST file layout)")
    raise FileNotFoundError(f"{data_dir}: no {stem}.gz or {stem} (expected the MNIST file layout)")


def data_files(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Both spellings, with and without ``.gz``, of the four MNIST-layout files of ``data_dir``
    (default: the shipped copy), whether they exist or not: what a run reads or would read
    (``.gz`` first), and so what no output of it may be. An output under the missing ``.gz``
    name of a raw file would be read as that file by every later run."""
    source = PACKAGED_DIR if data_dir is None else Path(data_dir)
    return [c for stem, _ in MNIST_FILES.values() for c in (source / f"{stem}.gz", source / stem)]


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
    if images.shape[0] == 0:
        raise ValueError(f"{source}: {split} has no images")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{source}: {split} has {images.shape[0]} images but {labels.shape[0]} labels"
        )
    if 0 in images.shape[1:]:
        raise ValueError(f"{source}: {split} images are {images.shape[1]} x {images.shape[2]} pixels; an image needs "
                         "at least one")


class LabelError(ValueError):
    """Labels that do not fit the classes (:func:`check_labels`); ``fact`` is the finding
    without the advice on declaring another count, for a caller whose count is not the user's
    to choose (``evaluate``: the network's outputs)."""

    def __init__(self, fact: str, advice: str) -> None:
        super().__init__(f"{fact} ({advice})")
        self.fact = fact


def check_labels(labels: np.ndarray, n_classes: int, source: str | os.PathLike, *, all_present: bool) -> None:
    """Refuse (``LabelError`` naming ``source``, the first offending value and its index) a label
    outside 0 .. n_classes - 1 and, with ``all_present`` (training labels), a class that never
    occurs. ``labels``: 1-D non-negative integers. For a training subset: call it on the subset."""
    labels = np.asarray(labels)
    path = source
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if bad.size:
        i = int(bad[0])
        raise LabelError(
            f"{path}: label {int(labels[i])} at index {i} is outside the {n_classes} classes 0..{n_classes - 1}",
            f"{bad.size} such labels; for data with more classes: n_classes=, on the command line --n-classes")
    if all_present:
        absent = np.flatnonzero(np.bincount(labels, minlength=n_classes) == 0)
        if absent.size:
            raise LabelError(
                f"{path}: classes {absent.tolist()} of 0..{n_classes - 1} never occur in the training labels",
                "a network cannot learn a class it never sees; to declare fewer: n_classes=, on the command "
                "line --n-classes")


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    verify: bool | None = None,
    dtype=np.float32,
    n_classes: int | None = None,
    max_bytes: int = MAX_IDX_BYTES,
) -> Dataset:
    """The four MNIST-layout files of ``data_dir`` (default: the copy shipped in the package).

    Each of ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte`` is read with or without ``.gz``. ``verify`` checks the canonical
    MNIST MD5 sums; by default it is on for the shipped copy and off for another ``data_dir``
    (Fashion-MNIST has the same layout and other content). Images come back flattened to
    (count, rows * cols) in ``dtype``, scaled to [0, 1]; labels as int64.

    ``n_classes`` (default :data:`MNIST_N_CLASSES`, the layout's 10): a label outside
    0 .. n_classes - 1, in either split, or a class that never occurs in the training labels
    is a ``ValueError`` naming the file and the value. ``digest`` on the result is
    SHA-256 over the four files' uncompressed contents (each file's SHA-256, in
    :data:`MNIST_FILES` order), so a gzipped and a raw copy of the same data agree and
    no path spelling enters it.
    """
    if n_classes is None:
        n_classes = MNIST_N_CLASSES
    elif isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or not 2 <= n_classes <= 256:
        raise ValueError(f"n_classes must be an integer in 2..256 (labels are uint8); got {n_classes!r}")
    n_classes = int(n_classes)
    if data_dir is not None and not os.fspath(data_dir):   # Path("") is ".": the current directory, silently
        raise ValueError("the data directory is an empty path; give a directory (or none, for the shipped copy)")
    source = PACKAGED_DIR if data_dir is None else Path(data_dir)
    if verify is None:
        verify = data_dir is None
    if not source.is_dir():
        raise FileNotFoundError(f"data directory {source} does not exist or is not a directory")
    arrays, paths, digest = {}, {}, hashlib.sha256()
    for key, (stem, md5) in MNIST_FILES.items():
        path = paths[key] = _find(source, stem)
        sha, check = hashlib.sha256(), hashlib.md5()
        arrays[key] = _read_file(path, max_bytes, (sha, check) if verify else (sha,))
        if verify and check.hexdigest() != md5:
            raise ValueError(
                f"{path}: checksum mismatch: MD5 of the uncompressed file is {check.hexdigest()}, "
                f"canonical MNIST has {md5} (corrupt or not MNIST; pass verify=False for other data)"
            )
        digest.update(sha.digest())
    _check_pair(arrays["train_images"], arrays["train_labels"], "train", str(source))
    _check_pair(arrays["test_images"], arrays["test_labels"], "test", str(source))
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise ValueError(
            f"{source}: train images are {arrays['train_images'].shape[1:]} but test images are "
            f"{arrays['test_images'].shape[1:]}"
        )
    check_labels(arrays["train_labels"], n_classes, paths["train_labels"], all_present=True)
    check_labels(arrays["test_labels"], n_classes, paths["test_labels"], all_present=False)
    dt = np.dtype(dtype)
    need, have = dt.itemsize * (arrays["train_images"].size + arrays["test_images"].size), memory_available()
    if need > have:   # the headers may claim 1 GiB of pixels: 4 or 8 GiB as floats
        raise MemoryError(f"{source}: its {arrays['train_images'].shape[0]} + {arrays['test_images'].shape[0]} "
                          f"images need {need / 2**30:.1f} GiB in {dt} and {have / 2**30:.1f} GiB is available")

    def scale(images: np.ndarray) -> np.ndarray:   # in place: one float copy at a time
        x = images.reshape(images.shape[0], -1).astype(dt)
        x /= dt.type(255)
        return x

    return Dataset(
        x_train=scale(arrays["train_images"]),
        y_train=arrays["train_labels"].astype(np.int64),
        x_test=scale(arrays["test_images"]),
        y_test=arrays["test_labels"].astype(np.int64),
        n_classes=n_classes,
        source=str(source),
        digest=digest.hexdigest(),
        data_dir=str(source.resolve()),
        image_shape=tuple(int(n) for n in arrays["train_images"].shape[1:]),
    )


def memory_available() -> int:
    """MemAvailable from /proc/meminfo (Linux), else the physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
