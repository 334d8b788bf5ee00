"""W += a^T delta in one BLAS call, for ``fast.sgd_step`` where it takes no rank-1 update.

NumPy has no call that adds a product into an array: ``W += a.T @ delta`` forms the product
in a temporary, then reads it and W again and writes W, two more passes over W than the GEMM
needs. BLAS's gemm does it in one: C <- alpha op(A) op(B) + beta C with beta = 1
(docs/performance.md has the times).

The gemm called is the one NumPy itself calls: the OpenBLAS its wheels bundle (under
``numpy.libs`` or ``numpy/.dylibs``), reached through ctypes: its symbol names found under
OpenBLAS's usual affixes, its integer width as ``openblas_get_config`` reports it
(``USE64BITINT`` for 64-bit integers). Not SciPy's: SciPy's wheels bundle another OpenBLAS,
whose thread pool spins against NumPy's when the two take turns (docs/performance.md). Where
NumPy's BLAS is anything else (conda's MKL, a system OpenBLAS, Accelerate) or an array's
layout is not one BLAS takes as it is, :func:`add_a_T_delta` does nothing and returns False;
the caller then takes NumPy's two calls.

BLAS adds the k = B products into C one block of them at a time: C is rounded once per block
(at most k times), besides the rounding of the products and of their sums.
"""

from __future__ import annotations

import ctypes
import functools
import itertools

import numpy as np

from . import _threads

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112   # the CBLAS enums (cblas.h)


def _is_numpys_own(path: str) -> bool:
    """Whether ``path`` is the BLAS NumPy's wheels bundle."""
    return _threads.bundled_by("numpy", path)


@functools.cache
def _gemm(dtype: np.dtype) -> tuple | None:
    """(cblas_sgemm or cblas_dgemm of NumPy's wheel OpenBLAS, typed for ctypes; the largest
    dimension its integers hold), or None."""
    controller, _ = _threads._numpy_blas()
    paths = [c.filepath for c in controller.lib_controllers
             if c.internal_api == "openblas" and _is_numpys_own(c.filepath)]
    if len(paths) != 1 or dtype not in (np.float32, np.float64):
        return None
    lib = ctypes.CDLL(paths[0])                      # loaded already: the same handle
    name = "cblas_sgemm" if dtype == np.float32 else "cblas_dgemm"
    for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
        config = getattr(lib, f"{prefix}openblas_get_config{suffix}", None)
        gemm = getattr(lib, f"{prefix}{name}{suffix}", None)
        if config is not None and gemm is not None:
            config.restype = ctypes.c_char_p
            integer = ctypes.c_int64 if b"USE64BITINT" in (config() or b"") else ctypes.c_int
            real = ctypes.c_float if dtype == np.float32 else ctypes.c_double
            gemm.restype = None
            gemm.argtypes = [ctypes.c_int] * 3 + [integer] * 3 + [real, ctypes.c_void_p, integer,
                                                                  ctypes.c_void_p, integer, real,
                                                                  ctypes.c_void_p, integer]
            return gemm, 2 ** (8 * ctypes.sizeof(integer) - 1) - 1   # ctypes would wrap a larger one
    return None


def _row_stride(A: np.ndarray) -> int | None:
    """The leading dimension of ``A`` as a row-major BLAS matrix (aligned, rows of unit step,
    each row at least a row's length after the one before, as BLAS requires), or None where
    it is not one."""
    cols, (row, col), item = A.shape[1], A.strides, A.itemsize
    if not A.flags.aligned or (cols > 1 and col != item) or row % item or row // item < cols:
        return None
    return row // item


def add_a_T_delta(W: np.ndarray, a: np.ndarray, delta: np.ndarray) -> bool:
    """``W += a^T delta`` for a (B, m), delta (B, n) and a writeable W (m, n), all of one dtype,
    by one gemm of NumPy's BLAS; returns whether it did (False: W untouched). W must not share
    memory with ``a`` or ``delta``."""
    (m, n), k = W.shape, a.shape[0]
    if a.shape != (k, m) or delta.shape != (k, n):   # BLAS would read past them
        raise ValueError(f"W += a^T delta needs a (B, {m}) and delta (B, {n}); got {a.shape} and {delta.shape}")
    found = _gemm(W.dtype)
    if found is None or not W.flags.writeable or not (W.dtype == a.dtype == delta.dtype):
        return False
    gemm, largest = found
    lds = [_row_stride(A) for A in (a, delta, W)]
    if None in lds or max(k, *lds) > largest:        # (each ld >= m or n: _row_stride)
        return False
    gemm(_ROW_MAJOR, _TRANS, _NO_TRANS, m, n, k, 1.0, a.ctypes.data, lds[0], delta.ctypes.data, lds[1],
         1.0, W.ctypes.data, lds[2])
    return True
