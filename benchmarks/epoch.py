"""One MNIST training epoch of the post's network: the manual backend against JAX-jit updates.

Both loops are the same plain SGD, over the same examples in the same order, from the same
``init_params(seed)``; only the gradient-and-update step differs:

* ``manual``:  ``sgd_step(W, x, y, lr, workspace=ws, check_finite=False)``: the update is
  applied by the BLAS call that forms each layer's gradient (ger at batch 1, gemm with
  beta = 1 otherwise), so the gradient is never stored;
* ``manual_grad``: ``J, g = loss_and_grad(W, x, y, out=g, workspace=ws, check_finite=False)``,
  then ``g *= lr; W -= g`` in place (the gradient written, read back, then applied);
* ``jax_jit``: one ``jax.jit`` step ``W, S = W - lr * grad(W), S + J`` with the parameters
  donated, so XLA may update them in place and fuse the update into the gradient.

Batches are NumPy slices of the shuffled training set in all loops; the running loss sum is
kept on the device by JAX and in a Python float by the manual loops. The JAX step is compiled
before the clock starts (its compile time is reported apart). The loops take turns, a
twentieth of the epoch at a time, so that the machine's load (this is a shared machine; a
sequential run once measured the same loop 1.6x slower than the next) falls on all of them.
After the epoch each reports the mean training loss and the test accuracy, and the largest
parameter difference between manual and jax_jit shows that they computed the same thing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import manual_backprop as mb
from manual_backprop.network import Workspace

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@dataclass
class Data:
    x_train: np.ndarray
    y_train: np.ndarray  # int labels
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def load_data(dtype) -> Data:
    """MNIST from ``manual_backprop.app.data.load_mnist`` (the shipped copy, else ``shared/``);
    synthetic pixels and labels when neither can be read, said so in ``source``."""
    errors = []
    try:
        from manual_backprop.app.data import load_mnist
    except ImportError as e:  # pragma: no cover - the module ships with the package
        load_mnist, errors = None, [f"manual_backprop.app.data: {e}"]
    if load_mnist is not None:
        for where in (None, SHARED_MNIST):
            try:
                d = load_mnist(where, dtype=dtype) if where is not None else load_mnist(dtype=dtype)
                return Data(d.x_train, d.y_train, d.x_test, d.y_test, f"mnist ({d.source})")
            except (OSError, ValueError) as e:
                errors.append(str(e))
    rng = np.random.default_rng(0)
    n_train, n_test = 60000, 10000
    x = rng.uniform(0, 1, (n_train + n_test, 784)).astype(dtype)
    labels = rng.integers(0, 10, n_train + n_test)
    return Data(x[:n_train], labels[:n_train], x[n_train:], labels[n_train:],
                "synthetic (MNIST unavailable: " + "; ".join(errors) + ")")


def _order(n: int, n_examples: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 0]).permutation(n)[:n_examples]


def _manual_loop(params, X, Y, *, batch_size: int, lr: float, fused: bool):
    """``run(lo, hi) -> (loss sum, seconds in the separate update)`` over steps lo..hi-1;
    ``params`` are updated in place. ``fused``: sgd_step; otherwise loss_and_grad, then
    ``g *= lr; W -= g``."""
    grads = [np.empty_like(W) for W in params]
    ws = Workspace()
    rate = X.dtype.type(lr)
    clock = time.perf_counter

    def run(lo: int, hi: int) -> tuple[float, float]:
        loss_sum = update_s = 0.0
        for i in range(lo, hi):
            s = slice(i * batch_size, (i + 1) * batch_size)
            if fused:
                J, _ = mb.sgd_step(params, X[s], Y[s], lr, check_finite=False, workspace=ws)
            else:
                J, _ = mb.loss_and_grad(params, X[s], Y[s], check_finite=False, out=grads, workspace=ws)
                t_update = clock()
                for W, g in zip(params, grads):
                    g *= rate
                    W -= g
                update_s += clock() - t_update
            loss_sum += J
        return loss_sum, update_s

    return run, lambda: params


def _jax_loop(params, X, Y, *, batch_size: int, lr: float):
    """``(run, final params, compile seconds)`` for the JAX-jit loop; ``run(lo, hi)`` waits
    for the device before it returns, so a chunk's time is its own."""
    import jax
    import jax.numpy as jnp

    from autodiff_check import model

    vg = jax.value_and_grad(model.loss_fn)

    def step(P, S, x, y):
        J, g = vg(P, x, y, "sigmoid", "binary_cross_entropy")
        return [W - lr * gW for W, gW in zip(P, g)], S + J

    step = jax.jit(step, donate_argnums=(0, 1))
    t0 = time.perf_counter()  # compile on copies, outside the clock
    jax.block_until_ready(step([jnp.array(W) for W in params], jnp.zeros((), X.dtype),
                               X[:batch_size], Y[:batch_size]))
    compile_s = time.perf_counter() - t0
    state = {"P": [jax.device_put(W) for W in params], "S": jnp.zeros((), X.dtype)}
    jax.block_until_ready(state["P"])

    def run(lo: int, hi: int) -> tuple[float, float]:
        P, S = state["P"], jnp.zeros((), X.dtype)
        for i in range(lo, hi):
            s = slice(i * batch_size, (i + 1) * batch_size)
            P, S = step(P, S, X[s], Y[s])
        jax.block_until_ready((P, S))
        state["P"] = P
        return float(S), 0.0

    return run, lambda: [np.asarray(W) for W in state["P"]], compile_s


def run(*, batch_size: int, dtype, lr: float, n_examples: int | None, seed: int = 0,
        data: Data | None = None, backends=("manual", "manual_grad", "jax_jit"), chunks: int = 20) -> dict:
    """One epoch (or its first ``n_examples``) per backend, the backends taking turns in
    ``chunks`` slices of the epoch (the first backend of a turn rotates), so that a change in
    the machine's load falls on all of them; a dict for the JSON report. The ratio to JAX is
    reported as total time over total time, with the quartiles of the per-chunk ratios."""
    dtype = np.dtype(dtype)
    data = data if data is not None else load_data(dtype)
    n = data.x_train.shape[0] if n_examples is None else min(n_examples, data.x_train.shape[0])
    n -= n % batch_size
    steps = n // batch_size
    idx = _order(data.x_train.shape[0], n, seed)
    X = np.ascontiguousarray(data.x_train[idx], dtype=dtype)
    Y = mb.one_hot(data.y_train[idx], 10, dtype=dtype)
    x_test = data.x_test.astype(dtype, copy=False)
    out = {"batch_size": batch_size, "dtype": dtype.name, "lr": lr, "examples": n, "steps": steps,
           "chunks": chunks, "data": data.source, "backends": {}}
    loops, compile_s = {}, {}
    for name in backends:
        params = mb.init_params([784, 500, 500, 10], seed=seed, dtype=dtype)
        if name in ("manual", "manual_grad"):
            loops[name] = _manual_loop(params, X, Y, batch_size=batch_size, lr=lr, fused=name == "manual")
            compile_s[name] = 0.0
        elif name == "jax_jit":
            try:
                *loops[name], compile_s[name] = _jax_loop(params, X, Y, batch_size=batch_size, lr=lr)
            except ImportError as e:
                out["backends"][name] = {"skipped": f"jax unavailable: {e}"}
        else:
            raise ValueError(f"unknown training backend {name!r}")
    names = list(loops)
    bounds = np.linspace(0, steps, min(chunks, steps) + 1).astype(int)
    chunk_s = {name: [] for name in names}
    loss_sum = dict.fromkeys(names, 0.0)
    update_s = dict.fromkeys(names, 0.0)
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        for name in names[k % len(names):] + names[:k % len(names)]:
            t0 = time.perf_counter()
            J_sum, u_s = loops[name][0](int(lo), int(hi))
            chunk_s[name].append(time.perf_counter() - t0)
            loss_sum[name] += J_sum
            update_s[name] += u_s
    finals = {name: loops[name][1]() for name in names}
    for name in names:
        seconds = sum(chunk_s[name])
        out["backends"][name] = {
            "seconds": seconds,
            "chunk_seconds": chunk_s[name],
            "compile_s": compile_s[name],
            "us_per_step": 1e6 * seconds / max(1, steps),
            "mean_train_loss": loss_sum[name] / max(1, steps),
            "test_accuracy": mb.accuracy(finals[name], x_test, data.y_test),
        }
    if "manual_grad" in names:
        out["manual_update_us_per_step"] = 1e6 * update_s["manual_grad"] / max(1, steps)
    if {"manual", "jax_jit"} <= finals.keys():
        a, b = finals["manual"], finals["jax_jit"]
        out["max_param_diff_rel"] = max(
            float(np.max(np.abs(u.astype(np.float64) - v))) / float(np.max(np.abs(v))) for u, v in zip(a, b)
        )
        out["ratio_manual_to_jax_jit"] = out["backends"]["manual"]["seconds"] / out["backends"]["jax_jit"]["seconds"]
        per_chunk = np.array(chunk_s["manual"]) / np.array(chunk_s["jax_jit"])
        out["ratio_per_chunk_quartiles"] = [float(q) for q in np.percentile(per_chunk, [25, 50, 75])]
    return out
