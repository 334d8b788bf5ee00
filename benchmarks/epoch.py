"""One MNIST training epoch of the post's network: the fast path against JAX-jit updates.

All loops are the same plain SGD, over the same examples in the same order, from the same
``init_params(seed)``; only the gradient-and-update step differs:

* ``sgd_step``: ``manual_backprop.fast.sgd_step(W, x, y, lr, workspace=ws)``: each layer's
  update is applied once the backward pass is done with that layer (a BLAS rank-1 update at
  batch 1; above it, one gemm that adds the product into the layer), so the gradient is
  never kept whole;
* ``fast_grad``: ``J, g = fast.loss_and_grad(W, x, y, out=g, workspace=ws)``, then
  ``g *= lr; W -= g`` in place (the gradient written, read back, then applied);
* ``jax_jit``: one ``jax.jit`` step ``W, S = W - lr * grad(W), S + J`` of the benchmark's
  baseline loss (``gradients.jax_loss``: ``a @ W[1:] + W[0]``, the loss from the logits),
  with the parameters and the loss sum donated, so XLA may update them in place and fuse
  the update into the gradient; one dispatch from Python per step, as JAX's
  ``mnist_classifier_fromscratch.py`` trains;
* ``jax_fori``: the same step, a chunk's steps in one jitted ``lax.fori_loop`` over the epoch's
  examples put on the device once (each batch a ``dynamic_slice``): no dispatch per step, the
  loop a JAX user writes when the Python loop is what costs.

Batches are NumPy slices of the shuffled training set in all loops but ``jax_fori``; the
running loss sum is kept on the device by JAX and in a Python float by the manual loops. The
JAX step is compiled before the clock starts (its compile time is reported apart). The loops
take turns, a twentieth of the epoch at a time, so that the machine's load (this is a shared
machine; a sequential run once measured the same loop 1.6x slower than the next) falls on all
of them.
After the epoch each reports the mean training loss and the test accuracy, and the largest
parameter differences of sgd_step and jax_fori from jax_jit show that they computed the same
thing. The manual loops' ratios are taken to jax_jit and to the faster JAX loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

import manual_backprop as mb
from manual_backprop import fast
from manual_backprop.app.data import load_mnist

from . import timing
from .gradients import largest

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


#: the JAX training loops: a jitted step per Python iteration, and one jitted loop over the steps
JAX_LOOPS = ("jax_jit", "jax_fori")


class Loop(NamedTuple):
    """One backend's training loop: ``run(lo, hi) -> (loss sum, seconds in a separate update)``
    takes steps lo..hi-1; ``final()`` gives the parameters; ``warm()`` takes one untimed step on
    a copy of the parameters (the first batch), which the training never sees."""

    run: Callable[[int, int], tuple[float, float]]
    final: Callable[[], list]
    warm: Callable[[], None]


def _manual_loop(params, X, Y, *, batch_size: int, lr: float, fused: bool) -> Loop:
    """``params`` are updated in place. ``fused``: fast.sgd_step; otherwise
    fast.loss_and_grad, then ``g *= lr; W -= g``."""
    grads = fast.empty_like(params)
    ws = fast.Workspace()
    rate = X.dtype.type(lr)
    clock = time.perf_counter

    def step(P, i: int) -> tuple[float, float]:
        s = slice(i * batch_size, (i + 1) * batch_size)
        if fused:
            return fast.sgd_step(P, X[s], Y[s], lr, workspace=ws)[0], 0.0
        J, _ = fast.loss_and_grad(P, X[s], Y[s], out=grads, workspace=ws)
        t_update = clock()
        for W, g in zip(P, grads):
            g *= rate
            W -= g
        return J, clock() - t_update

    def run(lo: int, hi: int) -> tuple[float, float]:
        loss_sum = update_s = 0.0
        for i in range(lo, hi):
            J, u = step(params, i)
            loss_sum += J
            update_s += u
        return loss_sum, update_s

    scratch = [W.copy() for W in params]
    return Loop(run, lambda: params, lambda: step(scratch, 0))


def _jax_loop(params, X, Y, *, batch_size: int, lr: float, fori: bool = False) -> tuple[Loop, float]:
    """The JAX loop (``jax_jit``, or ``jax_fori`` where ``fori``) and its compile seconds;
    ``run(lo, hi)`` and ``warm()`` wait for the device before they return, so a chunk's time is
    its own."""
    import jax
    import jax.numpy as jnp

    from .gradients import jax_loss

    jax.config.update("jax_enable_x64", True)  # the float64 epoch stays float64
    vg = jax.value_and_grad(jax_loss)

    def step(P, S, x, y):
        J, g = vg(P, x, y)  # sigmoid, binary cross-entropy: the post's network
        return [W - lr * gW for W, gW in zip(P, g)], S + J

    if fori:
        def steps(P, S, X, Y, lo, hi):  # steps lo..hi-1; lo and hi traced, so one compile
            def body(i, carry):
                x = jax.lax.dynamic_slice_in_dim(X, i * batch_size, batch_size)
                y = jax.lax.dynamic_slice_in_dim(Y, i * batch_size, batch_size)
                return step(*carry, x, y)
            return jax.lax.fori_loop(lo, hi, body, (P, S))

        jitted, Xd, Yd = jax.jit(steps, donate_argnums=(0, 1)), jax.device_put(X), jax.device_put(Y)

        def call(P, S, lo: int, hi: int):
            return jitted(P, S, Xd, Yd, lo, hi)
    else:
        jitted = jax.jit(step, donate_argnums=(0, 1))

        def call(P, S, lo: int, hi: int):
            for i in range(lo, hi):
                s = slice(i * batch_size, (i + 1) * batch_size)
                P, S = jitted(P, S, X[s], Y[s])
            return P, S

    t0 = time.perf_counter()  # compile on copies, outside the clock
    jax.block_until_ready(call([jnp.array(W) for W in params], jnp.zeros((), X.dtype), 0, 1))
    compile_s = time.perf_counter() - t0
    state = {"P": [jax.device_put(W) for W in params]}
    scratch = {"P": [jax.device_put(W.copy()) for W in params]}
    jax.block_until_ready((state["P"], scratch["P"]))

    def warm() -> None:
        scratch["P"], _ = jax.block_until_ready(call(scratch["P"], jnp.zeros((), X.dtype), 0, 1))

    def run(lo: int, hi: int) -> tuple[float, float]:
        state["P"], S = jax.block_until_ready(call(state["P"], jnp.zeros((), X.dtype), lo, hi))
        return float(S), 0.0

    return Loop(run, lambda: [np.asarray(W) for W in state["P"]], warm), compile_s


def run(*, batch_size: int, dtype, lr: float, n_examples: int | None, seed: int = 0,
        data: Data | None = None, backends=("sgd_step", "fast_grad", *JAX_LOOPS), chunks: int = 20,
        n_test: int | None = None, warmup: float = 0.0) -> dict:
    """One epoch (or its first ``n_examples``) per backend, the backends taking turns in
    ``chunks`` slices of the epoch (the first backend of a turn rotates), so that a change in
    the machine's load falls on all of them; a dict for the JSON report. The ratio to JAX is
    reported as total time over total time, with the quartiles of the per-chunk ratios, to
    jax_jit and to the faster JAX loop (``fastest_jax``, the goal's denominator). Each
    chunk follows ``warmup`` seconds of the backend's untimed steps on a copy of the parameters
    (:func:`benchmarks.timing.take_turns`). The test accuracy is taken on the first ``n_test``
    test examples (all when None)."""
    dtype = np.dtype(dtype)
    data = data if data is not None else load_data(dtype)
    n = data.x_train.shape[0] if n_examples is None else min(n_examples, data.x_train.shape[0])
    n -= n % batch_size
    steps = n // batch_size
    if steps == 0:
        raise ValueError(f"n_examples must hold at least one batch of {batch_size}; got {n_examples}")
    idx = _order(data.x_train.shape[0], n, seed)
    X = np.ascontiguousarray(data.x_train[idx], dtype=dtype)
    Y = mb.one_hot(data.y_train[idx], 10, dtype=dtype)
    x_test = data.x_test[:n_test].astype(dtype, copy=False)
    y_test = data.y_test[:n_test]
    out = {"batch_size": batch_size, "dtype": dtype.name, "lr": lr, "examples": n, "steps": steps,
           "chunks": chunks, "warmup_s": warmup, "test_examples": len(y_test), "data": data.source, "backends": {}}
    loops, compile_s = {}, {}
    for name in backends:
        params = mb.init_params([784, 500, 500, 10], seed=seed, dtype=dtype)
        if name in ("sgd_step", "fast_grad"):
            loops[name] = _manual_loop(params, X, Y, batch_size=batch_size, lr=lr, fused=name == "sgd_step")
            compile_s[name] = 0.0
        elif name in JAX_LOOPS:
            try:
                loops[name], compile_s[name] = _jax_loop(params, X, Y, batch_size=batch_size, lr=lr,
                                                         fori=name == "jax_fori")
            except ImportError as e:
                out["backends"][name] = {"skipped": f"jax unavailable: {e}"}
        else:
            raise ValueError(f"unknown training backend {name!r}")
    names = list(loops)
    bounds = np.linspace(0, steps, min(chunks, steps) + 1).astype(int)
    chunk_s, sums = timing.take_turns({name: (loops[name].run, loops[name].warm) for name in names}, bounds, warmup)
    loss_sum = {name: sum(J for J, _ in sums[name]) for name in names}
    update_s = {name: sum(u for _, u in sums[name]) for name in names}
    finals = {name: loops[name].final() for name in names}
    for name in names:
        seconds = sum(chunk_s[name])
        out["backends"][name] = {
            "seconds": seconds,
            "chunk_seconds": chunk_s[name],
            "compile_s": compile_s[name],
            "us_per_step": 1e6 * seconds / max(1, steps),
            "mean_train_loss": loss_sum[name] / max(1, steps),
            "test_accuracy": mb.accuracy(finals[name], x_test, y_test),
        }
    if "fast_grad" in names:
        out["fast_grad_update_us_per_step"] = 1e6 * update_s["fast_grad"] / max(1, steps)
    jax_names = [name for name in JAX_LOOPS if name in names]
    if jax_names:  # the lower of two noisy totals: a slight bias toward JAX, against our loops
        out["fastest_jax"] = min(jax_names, key=lambda name: out["backends"][name]["seconds"])
    for key, base in (("jax_jit", "jax_jit"), ("fastest_jax", out.get("fastest_jax"))):
        if base not in names:
            continue
        ratios, quartiles = {}, {}
        for name in names:
            if name not in JAX_LOOPS:
                ratios[name] = out["backends"][name]["seconds"] / out["backends"][base]["seconds"]
                per_chunk = np.array(chunk_s[name]) / np.array(chunk_s[base])
                quartiles[name] = [float(q) for q in np.percentile(per_chunk, [25, 50, 75])]
        out[f"ratio_to_{key}"] = ratios
        out["ratio_per_chunk_quartiles" if key == "jax_jit" else "fastest_jax_per_chunk_quartiles"] = quartiles
    for name, key in (("sgd_step", "max_param_diff_rel"), ("jax_fori", "max_param_diff_rel_jax_fori")):
        if {name, "jax_jit"} <= finals.keys():
            out[key] = largest(
                float(np.max(np.abs(u.astype(np.float64) - v))) / float(np.max(np.abs(v)))
                for u, v in zip(finals[name], finals["jax_jit"])
            )
    return out
