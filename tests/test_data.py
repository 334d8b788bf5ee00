"""IDX reading and MNIST loading, on synthetic files written here and on the shipped copy."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import socket
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import examples
from support import TYPE_CODES, call_on_a_fifo, fake_mnist, idx_bytes, write

from manual_backprop.app import data
from manual_backprop.app.data import MNIST_FILES, load_mnist, read_idx

# ---------------------------------------------------------------- read_idx


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", list(TYPE_CODES))
def test_round_trip_every_idx_type(tmp_path, dtype, gz):
    a = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4).astype(np.dtype(dtype).newbyteorder("="))
    if np.dtype(dtype).kind == "u":
        a = np.abs(a).astype(dtype)
    got = read_idx(write(tmp_path / "a.idx", idx_bytes(a), gz=gz))
    assert got.shape == a.shape and got.dtype.isnative
    np.testing.assert_array_equal(got, a)


def test_truncated_file_names_file_and_problem(tmp_path):
    content = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    path = write(tmp_path / "t.idx", content[:-1], gz=False)
    with pytest.raises(ValueError, match=r"t\.idx: truncated"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    packed = gzip.compress(idx_bytes(np.zeros((30, 8, 8), np.uint8)))
    path = tmp_path / "t.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match=r"t\.gz: corrupt gzip"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = write(tmp_path / "h.idx", bytes([0, 0, 8, 3]) + b"\x00\x00\x00\x02", gz=False)
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(path)


@pytest.mark.parametrize("ndim", [33, 65, 255])
def test_more_dimensions_than_an_array_takes_are_refused_naming_the_file(tmp_path, ndim):
    """Used to reach NumPy's reshape: 'maximum supported dimension ... is 64', no file named."""
    path = write(tmp_path / "d.idx", bytes([0, 0, 8, ndim]) + b"\x00\x00\x00\x01" * ndim + b"\x07", gz=True)
    with pytest.raises(ValueError, match=rf"d\.idx: IDX header declares {ndim} dimensions"):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    path = write(tmp_path / "x.idx", idx_bytes(np.zeros((2, 2), np.uint8)) + b"\x00", gz=True)
    with pytest.raises(ValueError, match="trailing bytes"):
        read_idx(path)


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"PK\x03\x04", b"\x00\x00\x08\x00"])
def test_wrong_magic(tmp_path, magic):
    path = write(tmp_path / "m.idx", magic + b"\x00\x00\x00\x01\x05", gz=False)
    with pytest.raises(ValueError, match=r"m\.idx: "):
        read_idx(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.gz")


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=64), st.booleans())
def test_random_bytes_only_ever_raise_value_error(tmp_path_factory, raw, gz):
    """Any file at all: an array or a ValueError (any other exception fails the test)."""
    path = write(tmp_path_factory.mktemp("rnd") / "r", raw, gz=gz)
    try:
        a = read_idx(path)
    except ValueError as e:
        assert str(path) in str(e)
        return
    assert isinstance(a, np.ndarray)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x0A, 0xFF]),
    st.lists(st.integers(0, 6), min_size=0, max_size=4),
    st.binary(max_size=100),
    st.booleans(),
)
def test_random_bodies_behind_plausible_headers(tmp_path_factory, code, dims, body, gz):
    """Headers that look right, bodies of any length: a correct array or a ValueError."""
    header = bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", n) for n in dims)
    path = write(tmp_path_factory.mktemp("idx") / "f", header + body, gz=gz)
    try:
        a = read_idx(path)
    except ValueError as e:
        assert str(path) in str(e)
        return
    assert a.shape == tuple(dims)
    assert a.nbytes == len(body)


@settings(max_examples=examples(150), deadline=None)
@given(st.binary(min_size=1, max_size=200), st.integers(0, 10_000), st.integers(0, 255))
def test_corrupted_gzip_files_only_ever_raise_value_error(tmp_path_factory, raw, at, byte):
    """A valid gzip-compressed IDX file with one byte overwritten: the array compressed (where the
    byte changed only the gzip header's name, time or flags, or was the same) or a ValueError,
    never another array (a reader that skipped the CRC-32 returned one in 122 of 2,000 draws)."""
    original = np.frombuffer(raw, np.uint8).copy()
    packed = bytearray(gzip.compress(idx_bytes(original)))
    packed[at % len(packed)] = byte
    path = write(tmp_path_factory.mktemp("gz") / "c.gz", bytes(packed), gz=False)
    try:
        a = read_idx(path)
    except ValueError as e:
        assert str(path) in str(e)
        return
    np.testing.assert_array_equal(a, original, strict=True)


# ---------------------------------------------------------------- load_mnist


@pytest.mark.parametrize("gz", [True, False])
def test_load_synthetic_directory(tmp_path, gz):
    arrays = fake_mnist(tmp_path, gz=gz)
    d = load_mnist(tmp_path)
    assert d.x_train.shape == (12, 20) and d.x_test.shape == (7, 20)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.n_classes == 10
    np.testing.assert_array_equal(d.x_train * 255, arrays["train_images"].reshape(12, 20).astype(np.float32))
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1
    np.testing.assert_array_equal(d.y_test, arrays["test_labels"])
    assert load_mnist(tmp_path, dtype=np.float64).x_test.dtype == np.float64


def test_checksum_verification_refuses_other_content(tmp_path):
    fake_mnist(tmp_path)
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_mnist(tmp_path, verify=True)


def test_missing_directory_and_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "absent")
    fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_mislabelled_files_are_refused(tmp_path):
    """Images where the labels belong (and labels where images belong): a ValueError, not a crash."""
    arrays = fake_mnist(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(arrays["train_images"]), gz=True)
    with pytest.raises(ValueError, match="train labels must be 1-D"):
        load_mnist(tmp_path)
    fake_mnist(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte.gz", idx_bytes(arrays["test_labels"][:3]), gz=True)
    with pytest.raises(ValueError, match="7 images but 3 labels"):
        load_mnist(tmp_path)


def test_an_empty_split_and_an_empty_path_are_named(tmp_path, monkeypatch):
    """A split of 0 images said "train has 0 images but 0 labels"; an empty data directory path
    read the current directory, whose MNIST files (if any) a run would then have used without
    saying so (a review, 2026-12-05)."""
    arrays = fake_mnist(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(arrays["train_images"][:0]), gz=True)
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(arrays["train_labels"][:0]), gz=True)
    with pytest.raises(ValueError, match=r": train has no images$"):
        load_mnist(tmp_path)
    fake_mnist(tmp_path)
    monkeypatch.chdir(tmp_path)                        # a good data set right here
    with pytest.raises(ValueError, match=r"^the data directory is an empty path"):
        load_mnist("")                                 # (Path("") is Path("."): a directory named)


def test_shipped_mnist_is_canonical():
    d = load_mnist()  # verifies the four MD5 sums
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert d.n_classes == 10
    counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    np.testing.assert_array_equal(np.bincount(d.y_train), counts)
    assert abs(float(d.x_train.mean()) - 0.1307) < 1e-4
    digest = hashlib.sha256()
    for stem, md5 in MNIST_FILES.values():
        raw = gzip.decompress((data.PACKAGED_DIR / f"{stem}.gz").read_bytes())
        assert hashlib.md5(raw).hexdigest() == md5
        digest.update(hashlib.sha256(raw).digest())
    assert d.digest == digest.hexdigest() and d.data_dir == str(data.PACKAGED_DIR)


# ---------------------------------------------------------------- hostile files (issue 13)


def _gzip_bomb(path: Path, header: bytes, zeros: int) -> Path:
    """``header`` followed by ``zeros`` zero bytes, gzip-compressed chunk by chunk (~1000:1)."""
    co = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    parts, chunk = [co.compress(header)], bytes(1 << 20)
    for _ in range(zeros >> 20):
        parts.append(co.compress(chunk))
    parts.append(co.flush())
    path.write_bytes(b"".join(parts))
    return path


def test_gzip_bomb_is_refused_in_bounded_memory(tmp_path):
    """A 64 KB file that inflates to 64 MiB: a 4-byte array declared, the rest is trailing data.

    Reading declared bytes plus one costs the payload and gzip's buffers (measured: 80 KB
    peak); inflating the whole stream costs >= 64 MiB. The bound, 1/8 of the stream, separates
    the two by a factor of 100 either way."""
    zeros = 64 << 20
    path = _gzip_bomb(tmp_path / "bomb.gz", bytes([0, 0, 8, 1]) + struct.pack(">I", 4) + b"abcd", zeros)
    assert path.stat().st_size < zeros // 500
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"bomb\.gz: has trailing bytes"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < zeros // 8, f"peak {peak} bytes while refusing the bomb"


@pytest.mark.parametrize("gz", [False, True])
def test_absurd_declared_size_is_refused_before_allocating(tmp_path, gz):
    """(2^32 - 1)^3 float64 values, about 6e29 bytes: refused from the header alone."""
    header = bytes([0, 0, 0x0E, 3]) + struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    path = write(tmp_path / "huge.idx", header + b"\x00" * 16, gz=gz)
    with pytest.raises(ValueError, match=r"huge\.idx: header declares shape .* more than the limit of 1073741824"):
        read_idx(path)
    assert data.MAX_IDX_BYTES == 1 << 30


@pytest.mark.parametrize("gz", [False, True])
def test_an_empty_shape_with_absurd_other_dimensions_is_refused_naming_the_file(tmp_path, gz):
    """A review (2026-12-05): shape (0, 2^32 - 1, 2^32 - 1) declares no values, passed the size
    limit, and NumPy's reshape raised "array is too big" without the file's name. An empty
    shape of ordinary dimensions still reads."""
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 0, 2**32 - 1, 2**32 - 1)
    path = write(tmp_path / "empty.idx", header, gz=gz)
    with pytest.raises(ValueError, match=r"empty\.idx: header declares shape \(0, 4294967295, 4294967295\) of uint8: "
                                         r"no values, and other dimensions whose product is more than the limit"):
        read_idx(path)
    ok = write(tmp_path / "ok.idx", bytes([0, 0, 0x08, 3]) + struct.pack(">III", 0, 28, 28), gz=gz)
    assert read_idx(ok).shape == (0, 28, 28)


def test_max_bytes_is_the_payload_limit(tmp_path):
    path = write(tmp_path / "a.idx", idx_bytes(np.zeros((10, 10), np.uint8)), gz=True)
    assert read_idx(path, max_bytes=100).shape == (10, 10)
    with pytest.raises(ValueError, match="100 bytes of values; more than the limit of 99 bytes"):
        read_idx(path, max_bytes=99)


def test_fifo_is_refused_without_blocking(tmp_path):
    """Opening a FIFO for reading blocks until a writer comes: refused from its stat instead."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    outcome = [call_on_a_fifo(read_idx, fifo)]
    assert isinstance(outcome[0], ValueError), outcome
    assert str(fifo) in str(outcome[0]) and "not a regular file" in str(outcome[0])


def test_directory_device_and_socket_are_value_errors_naming_the_path(tmp_path):
    directory = tmp_path / "d.idx"
    directory.mkdir()
    with pytest.raises(ValueError, match=rf"{re.escape(str(directory))}: not an IDX file: a directory"):
        read_idx(directory)
    with pytest.raises(ValueError, match=r"/dev/null: not an IDX file: not a regular file"):
        read_idx("/dev/null")
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        with pytest.raises(ValueError, match=r"s: not an IDX file: not a regular file"):
            read_idx(sock_path)


def test_symlink_to_a_regular_file_is_read(tmp_path):
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    target = write(tmp_path / "a.idx", idx_bytes(a), gz=True)
    (tmp_path / "link").symlink_to(target)
    np.testing.assert_array_equal(read_idx(tmp_path / "link"), a)


# ---------------------------------------------------------------- labels and classes (issue 13)


def _relabel(directory: Path, key: str, labels: np.ndarray) -> Path:
    path = directory / (MNIST_FILES[key][0] + ".gz")
    write(path, idx_bytes(labels.astype(np.uint8)), gz=True)
    return path


def test_one_label_outside_the_ten_classes_is_refused(tmp_path):
    arrays = fake_mnist(tmp_path)
    labels = arrays["train_labels"].copy()
    labels[5] = 200
    _relabel(tmp_path, "train_labels", labels)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: label 200 at index 5 is outside the 10 classes"):
        load_mnist(tmp_path)


def test_all_labels_255_are_refused(tmp_path):
    fake_mnist(tmp_path)
    _relabel(tmp_path, "train_labels", np.full(12, 255))
    _relabel(tmp_path, "test_labels", np.full(7, 255))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: label 255 at index 0 .* \(12 such labels"):
        load_mnist(tmp_path)


def test_test_label_outside_the_classes_names_the_test_file(tmp_path):
    fake_mnist(tmp_path)
    _relabel(tmp_path, "test_labels", np.array([0, 1, 2, 3, 4, 5, 10]))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: label 10 at index 6"):
        load_mnist(tmp_path)


def test_classes_absent_from_training_are_refused(tmp_path):
    fake_mnist(tmp_path)
    _relabel(tmp_path, "train_labels", np.arange(12) % 8)  # 8 and 9 never occur
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: classes \[8, 9\] of 0\.\.9 never occur"):
        load_mnist(tmp_path)
    d = load_mnist(tmp_path, n_classes=8)  # declared: eight classes
    assert d.n_classes == 8


def test_n_classes_option_admits_more_classes(tmp_path):
    fake_mnist(tmp_path, n_train=30)
    _relabel(tmp_path, "train_labels", np.arange(30) % 27)
    with pytest.raises(ValueError, match="label 10 at index 10 is outside the 10 classes"):
        load_mnist(tmp_path)
    d = load_mnist(tmp_path, n_classes=27)
    assert d.n_classes == 27 and d.y_train.max() == 26


@pytest.mark.parametrize("bad", [1, 0, 257, 2.5, True, "10"])
def test_n_classes_must_be_a_sensible_integer(tmp_path, bad):
    fake_mnist(tmp_path)
    with pytest.raises(ValueError, match="n_classes must be an integer in 2..256"):
        load_mnist(tmp_path, n_classes=bad)


# ---------------------------------------------------------------- identity of the data (issue 13)


def test_digest_identifies_content_not_compression_or_path(tmp_path, monkeypatch):
    arrays = fake_mnist(tmp_path / "gz", gz=True)
    fake_mnist(tmp_path / "raw", gz=False)
    monkeypatch.chdir(tmp_path)
    a, b = load_mnist("gz"), load_mnist(tmp_path / "raw")
    assert a.digest == b.digest and len(a.digest) == 64
    assert a.data_dir == str(tmp_path / "gz") and a.source == "gz"  # resolved, and as given
    expected = hashlib.sha256()
    for key in MNIST_FILES:
        expected.update(hashlib.sha256(idx_bytes(arrays[key])).digest())
    assert a.digest == expected.hexdigest()
    fake_mnist(tmp_path / "other", seed=1)  # same layout, other pixels
    assert load_mnist(tmp_path / "other").digest != a.digest


def test_check_labels_on_a_training_subset():
    """What training calls on the labels left to train on after validation examples are held out."""
    labels = np.array([0, 1, 2, 0, 1, 2, 3], np.int64)
    data.check_labels(labels, 4, "subset", all_present=True)
    with pytest.raises(ValueError, match=r"subset: classes \[3\] of 0\.\.3 never occur"):
        data.check_labels(labels[:6], 4, "subset", all_present=True)
    data.check_labels(labels[:6], 4, "test", all_present=False)
    with pytest.raises(ValueError, match=r"subset: label -1 at index 2 is outside the 4 classes"):
        data.check_labels(np.array([0, 1, -1, 3]), 4, "subset", all_present=False)


def test_images_without_pixels_are_refused_naming_the_directory(tmp_path):
    fake_mnist(tmp_path, rows=0, cols=0)
    with pytest.raises(ValueError, match=rf"{tmp_path}: train images are 0 x 0 pixels"):
        load_mnist(tmp_path)


def test_images_that_would_not_fit_as_floats_are_refused_before_converting(tmp_path, monkeypatch):
    """A 485 KB gzip whose header claims 637,000 images made a 2.4 GB float copy before any
    memory check, and a failed allocation surfaced as NumPy's own error (a review,
    2026-12-02): the float size is now judged from the arrays' shapes first. 12 + 7 images of
    5 x 4 pixels need 1,520 bytes in float32; 1,519 available is too little."""
    fake_mnist(tmp_path)
    monkeypatch.setattr(data, "memory_available", lambda: 1519)
    with pytest.raises(MemoryError, match=r"12 \+ 7 images need 0\.0 GiB in float32 and 0\.0 GiB is available"):
        load_mnist(tmp_path)
    monkeypatch.setattr(data, "memory_available", lambda: 1520)
    d = load_mnist(tmp_path)
    assert d.x_train.dtype == np.float32 and d.x_train.shape == (12, 20)
