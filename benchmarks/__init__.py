"""Hand-derived against autodiff gradients, timed side by side in one process (issues 5, 10).

    python -m benchmarks                 # full run: table on stdout, JSON and PNG under runs/
    python -m benchmarks --quick         # smoke run, well under a minute
    python -m benchmarks --help

Modules:

* :mod:`benchmarks.gradients` - the networks, the problems (parameters and batches shared by
  every backend), the gradient backends, the JAX baseline (``jax_loss``), the agreement check
  against the reference and the GEMM reference;
* :mod:`benchmarks.timing` - interleaved repeated timing and its statistics;
* :mod:`benchmarks.epoch` - one MNIST training epoch, ``fast.sgd_step`` against a JAX-jit update loop;
* :mod:`benchmarks.report` - the environment (CPU, BLAS, threads, versions), the table, the
  JSON file and the plot.

JAX, PyTorch, threadpoolctl and matplotlib are optional: a backend whose library is missing
is skipped and said so; the run needs NumPy, ``manual_backprop`` and ``autodiff_check``'s
rounding bound (NumPy only).
"""

SCHEMA = "manual-backprop-benchmark/2"  # 2: backends fast/plain, jax_jit = jax_loss
