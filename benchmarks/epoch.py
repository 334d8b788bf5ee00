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

Batches are NumPy slices of the shuffled training set in both loops; the running loss sum is
kept on the device by JAX and in a Python float by the manual loop. The JAX step is compiled
before the clock starts (its compile time is reported apart). After the epoch both report
the mean training loss and the test accuracy, and the largest parameter difference between
the two runs shows that they computed the same thing.
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
    """MNIST from ``manual_backprop.data.load_mnist`` (the shipped copy, else ``shared/``);
    synthetic pixels and labels when neither can be read, said so in ``source``."""
    errors = []
    try:
        from manual_backprop.data import load_mnist
    except ImportError as e:  # pragma: no cover - the module ships with the package
        load_mnist, errors = None, [f"manual_backprop.data: {e}"]
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


def manual_epoch(params, X, Y, *, batch_size: int, lr: float, fused: bool = True
                 ) -> tuple[float, float, float, list[np.ndarray]]:
    """(seconds, seconds spent in the separate update (0 when fused), mean loss, params after
    the epoch); ``params`` are updated in place."""
    grads = [np.empty_like(W) for W in params]
    ws = Workspace()
    steps = X.shape[0] // batch_size
    loss_sum = update_s = 0.0
    clock = time.perf_counter
    t0 = clock()
    if fused:
        for i in range(steps):
            s = slice(i * batch_size, (i + 1) * batch_size)
            J, _ = mb.sgd_step(params, X[s], Y[s], lr, check_finite=False, workspace=ws)
            loss_sum += J
    else:
        rate = X.dtype.type(lr)
        for i in range(steps):
            s = slice(i * batch_size, (i + 1) * batch_size)
            J, _ = mb.loss_and_grad(params, X[s], Y[s], check_finite=False, out=grads, workspace=ws)
            loss_sum += J
            t_update = clock()
            for W, g in zip(params, grads):
                g *= rate
                W -= g
            update_s += clock() - t_update
    seconds = clock() - t0
    return seconds, update_s, loss_sum / steps, params


def jax_epoch(params, X, Y, *, batch_size: int, lr: float) -> tuple[float, float, float, list[np.ndarray]]:
    """(seconds, compile seconds, mean loss, params after the epoch) for the JAX-jit loop."""
    import jax
    import jax.numpy as jnp

    from autodiff_check import model

    vg = jax.value_and_grad(model.loss_fn)

    def step(P, S, x, y):
        J, g = vg(P, x, y, "sigmoid", "binary_cross_entropy")
        return [W - lr * gW for W, gW in zip(P, g)], S + J

    step = jax.jit(step, donate_argnums=(0, 1))
    steps = X.shape[0] // batch_size
    # compile on copies, outside the clock
    t0 = time.perf_counter()
    jax.block_until_ready(step([jnp.array(W) for W in params], jnp.zeros((), X.dtype),
                               X[:batch_size], Y[:batch_size]))
    compile_s = time.perf_counter() - t0
    P = [jax.device_put(W) for W in params]
    S = jnp.zeros((), X.dtype)
    jax.block_until_ready((P, S))
    t0 = time.perf_counter()
    for i in range(steps):
        s = slice(i * batch_size, (i + 1) * batch_size)
        P, S = step(P, S, X[s], Y[s])
    jax.block_until_ready((P, S))
    seconds = time.perf_counter() - t0
    return seconds, compile_s, float(S) / steps, [np.asarray(W) for W in P]


def run(*, batch_size: int, dtype, lr: float, n_examples: int | None, seed: int = 0,
        data: Data | None = None, backends=("manual", "manual_grad", "jax_jit")) -> dict:
    """One epoch (or its first ``n_examples``) per backend; a dict for the JSON report."""
    dtype = np.dtype(dtype)
    data = data if data is not None else load_data(dtype)
    n = data.x_train.shape[0] if n_examples is None else min(n_examples, data.x_train.shape[0])
    n -= n % batch_size
    idx = _order(data.x_train.shape[0], n, seed)
    X = np.ascontiguousarray(data.x_train[idx], dtype=dtype)
    Y = mb.one_hot(data.y_train[idx], 10, dtype=dtype)
    x_test = data.x_test.astype(dtype, copy=False)
    out = {"batch_size": batch_size, "dtype": dtype.name, "lr": lr, "examples": n,
           "steps": n // batch_size, "data": data.source, "backends": {}}
    finals = {}
    for name in backends:
        params = mb.init_params([784, 500, 500, 10], seed=seed, dtype=dtype)
        if name in ("manual", "manual_grad"):
            seconds, update_s, mean_loss, P = manual_epoch(params, X, Y, batch_size=batch_size, lr=lr,
                                                           fused=name == "manual")
            compile_s = 0.0
        elif name == "jax_jit":
            try:
                seconds, compile_s, mean_loss, P = jax_epoch(params, X, Y, batch_size=batch_size, lr=lr)
            except ImportError as e:
                out["backends"][name] = {"skipped": f"jax unavailable: {e}"}
                continue
        else:
            raise ValueError(f"unknown training backend {name!r}")
        finals[name] = P
        if name == "manual_grad":
            out["manual_update_us_per_step"] = 1e6 * update_s / max(1, n // batch_size)
        out["backends"][name] = {
            "seconds": seconds,
            "compile_s": compile_s,
            "us_per_step": 1e6 * seconds / max(1, n // batch_size),
            "mean_train_loss": mean_loss,
            "test_accuracy": mb.accuracy(P, x_test, data.y_test),
        }
    if {"manual", "jax_jit"} <= finals.keys():
        a, b = finals["manual"], finals["jax_jit"]
        out["max_param_diff_rel"] = max(
            float(np.max(np.abs(u.astype(np.float64) - v))) / float(np.max(np.abs(v))) for u, v in zip(a, b)
        )
    if {"manual", "jax_jit"} <= {k for k, v in out["backends"].items() if "seconds" in v}:
        out["ratio_manual_to_jax_jit"] = out["backends"]["manual"]["seconds"] / out["backends"]["jax_jit"]["seconds"]
    return out
