"""Hand-derived against autodiff gradients, timed side by side in one process (issues 5, 10).

    python -m benchmarks                 # full run: table on stdout, JSON and PNG under runs/
    python -m benchmarks --quick         # smoke run, about a minute
    python -m benchmarks --help

Modules:

* :mod:`benchmarks.gradients` - the networks, the problems (parameters and batches shared by
  every backend), the gradient backends, the JAX baseline (``jax_loss``), the agreement check
  against the reference and the GEMM reference;
* :mod:`benchmarks.timing` - interleaved repeated timing and its statistics;
* :mod:`benchmarks.epoch` - one MNIST training epoch, ``fast.sgd_step`` against a JAX-jit update loop;
* :mod:`benchmarks.report` - the environment (CPU, BLAS, threads, versions), the table, the
  JSON file and the plot;
* :mod:`benchmarks.faults` - one backend alone in a fresh process: its page faults per call;
* :mod:`benchmarks.layers` (``python -m benchmarks layers``), :mod:`benchmarks.peers`,
  :mod:`benchmarks.corpus_sweep`, :mod:`benchmarks.divergence` - each says what it measures.

JAX, PyTorch and matplotlib are optional: a backend whose library is missing
is skipped and said so; the run needs NumPy, ``manual_backprop`` and ``autodiff_check``'s
rounding bound (NumPy only).
"""

# 2: backends fast/plain, jax_jit = jax_loss; 3: settings.min_samples, environment.own_busy_threads;
# 4: settings.warmup_s and training[].warmup_s (each turn after untimed calls: the timing protocol changed)
SCHEMA = "manual-backprop-benchmark/4"

import os as _os

# PyTorch's OpenMP workers spin after each call by default; timed between NumPy's calls, two
# spinning workers took the cores from OpenBLAS's (a float32 batch-100 GEMM of the post network
# took 101 ms instead of 3 ms on 2 cores, before each turn had its warm-up). Passive waiting
# keeps the backends from timing each other, at a cost to torch: a review (2026-12-04) measured
# torch alone at batch 1 in 1.72-1.85 ms with it against 0.84-0.91 without, and 1.13x at batch
# 1000, so the torch column is torch under this setting. Set before torch is imported; a value
# the user exported wins (OMP_WAIT_POLICY= for libgomp's default).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
