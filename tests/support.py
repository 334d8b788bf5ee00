"""What the tests share besides strategies: one comparison helper, so that a test shows the
math it compares and nothing else."""

from __future__ import annotations

import gzip
import os
import threading
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from manual_backprop.app.data import MNIST_FILES


def assert_same_gradient(g: Sequence[np.ndarray], ref: Sequence[np.ndarray], tol) -> None:
    """Every entry within its tolerance: |g - ref| <= tol, per layer; ``tol`` is one number, or
    one number or array per layer. The message names the layer, the entry and both values."""
    assert len(g) == len(ref), f"{len(g)} layers against {len(ref)}"
    tols = tol if isinstance(tol, (list, tuple)) else [tol] * len(ref)
    assert len(tols) == len(ref), f"{len(tols)} tolerances for {len(ref)} layers"
    for l, (a, b, t) in enumerate(zip(g, ref, tols)):
        assert a.shape == b.shape, f"layer {l}: shape {a.shape} against {b.shape}"
        err = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
        over = err - np.asarray(t, np.float64)
        if not np.all(over <= 0):
            i = np.unravel_index(int(np.nanargmax(np.where(np.isnan(over), np.inf, over))), a.shape)
            raise AssertionError(f"layer {l} {list(i)}: {a[i]!r} vs {b[i]!r}, error {err[i]:.3g} > tolerance "
                                 f"{np.broadcast_to(t, a.shape)[i]:.3g}")


def cnn_batch(seed, B=3, dtype=np.float64):
    """``(net, params, x, y)`` for ``model.mnist_cnn()``: inputs away from relu's kink and
    pooling ties (continuous values, biases made non-zero so that no pre-activation is exactly 0)."""
    from manual_backprop import model, one_hot

    rng = np.random.default_rng(seed)
    net = model.mnist_cnn()
    params = net.init(seed, dtype=dtype)
    params = [tuple(a + 0.01 * rng.standard_normal(a.shape).astype(dtype) for a in p) for p in params]
    x = rng.uniform(0, 1, (B, 784)).astype(dtype)
    y = one_hot(rng.integers(0, 10, B), 10, dtype=dtype)
    return net, params, x, y


def bits(arrays: Sequence[np.ndarray]) -> list[bytes]:
    """Each array's dtype, shape and bytes: equal only where the arrays are bit for bit the same
    (np.array_equal takes -0.0 for 0.0 and never NaN for NaN)."""
    return [a.dtype.str.encode() + str(a.shape).encode() + np.ascontiguousarray(a).tobytes() for a in arrays]


def assert_bit_equal(g: Sequence[np.ndarray], ref: Sequence[np.ndarray]) -> None:
    """The same numbers, bit for bit, dtype included."""
    assert len(g) == len(ref)
    for l, (a, b) in enumerate(zip(g, ref)):
        assert a.dtype == b.dtype and a.shape == b.shape, f"layer {l}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        assert bits([a]) == bits([b]), f"layer {l} differs"


# ------------------------------------------------------------------ MNIST-layout files

TYPE_CODES = {"u1": 0x08, "i1": 0x09, ">i2": 0x0B, ">i4": 0x0C, ">f4": 0x0D, ">f8": 0x0E}


def idx_bytes(a: np.ndarray, *, code: int | None = None) -> bytes:
    """An IDX file holding ``a`` (any dtype in TYPE_CODES), big-endian."""
    big = a.astype(a.dtype.newbyteorder(">")) if a.dtype.itemsize > 1 else a
    code = TYPE_CODES[big.dtype.str.lstrip("|")] if code is None else code
    header = bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", n) for n in a.shape)
    return header + big.tobytes()


def write(path: Path, content: bytes, *, gz: bool) -> Path:
    path.write_bytes(gzip.compress(content, mtime=0) if gz else content)
    return path


def fake_mnist(directory: Path, *, n_train=12, n_test=7, rows=5, cols=4, gz=True, seed=0) -> dict:
    """The four IDX files of MNIST's layout in ``directory``: random pixels, labels 0..9 in turn;
    returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for key, a in arrays.items():
        stem = MNIST_FILES[key][0]
        write(directory / (stem + (".gz" if gz else "")), idx_bytes(a), gz=gz)
    return arrays


def call_on_a_fifo(fn, fifo: Path):
    """``fn(fifo)``'s result or exception, from a thread: opening a FIFO for reading blocks until a
    writer comes, so a call still blocked after 10 s is unblocked (a writer appears and leaves)
    and reported as an AssertionError."""
    outcome: list = []

    def reader():
        try:
            outcome.append(fn(fifo))
        except Exception as e:  # returned to the caller, who judges it
            outcome.append(e)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout=10)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout=10)
        raise AssertionError(f"{getattr(fn, '__name__', fn)} blocked on a FIFO")
    return outcome[0]


def release_jax_executables() -> None:
    """Drop JAX's compiled executables (jax.clear_caches). conftest does it after every test;
    a property whose every example compiles new shapes (check_vjp with jax_fn: jax.vjp and
    jax.jvp of a twin) calls it after each example too: under the thorough profile one test's
    examples otherwise map more than vm.max_map_count (65,530) regions, and the next
    compilation segfaults (measured: ~40 maps per compiled shape, released by clear_caches)."""
    import sys

    jax = sys.modules.get("jax")
    if jax is not None:
        jax.clear_caches()
