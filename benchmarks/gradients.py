"""Gradient backends, the problems they share, the JAX baseline and the GEMM reference.

Every backend computes ``(J, grads)`` for the same parameters and batch (a :class:`Problem`),
with ``grads`` shaped like ``params``. A backend's ``prepare(problem)`` returns a
:class:`Runner`: ``call()`` is what is timed (a full gradient, synchronised: JAX results are
blocked on, nothing is left pending), ``result()`` returns ``(J, grads as NumPy arrays)`` to
check the backend against the reference before it is timed (:func:`agreement`).

Backends:

================  ============================================================================
``fast``          ``manual_backprop.fast.loss_and_grad`` as a training loop calls it: reused
                  ``out=`` arrays from ``fast.empty_like``, a reused ``Workspace``, its default ``threads``
                  (blocks of rows on threads from 2 x 256 rows on two BLAS threads)
``plain``         the reference call ``manual_backprop.loss_and_grad(params, x, y)``: new arrays
                  each call; every other backend is checked against it
``per_example``   one example at a time in the post's style: ``add_bias(a) @ W`` forward,
                  ``add_bias(a).T @ delta`` per layer, gradients summed over the batch
``jax_eager``     ``jax.value_and_grad(jax_loss)`` without jit (the baseline's function)
``jax_jit``       ``jax.jit(jax.value_and_grad(jax_loss))`` on arrays already on the device:
                  the baseline of every ratio (:func:`jax_loss`)
``jax_jit_twin``  the same jit of ``autodiff_check.model.loss_fn``, the checker's twin, which
                  writes each layer in the post's bias-column form ``add_bias(a) @ W``
``jax_jit_wb``    :func:`jax_loss_wb`: weights and biases as separate arrays, a parameter layout
                  of JAX's own (not the shared one); says what the shared layout costs JAX
``jax_jit_api``   ``autodiff_check.loss_and_grad``: NumPy in and out, inputs validated
``torch``         PyTorch autograd on CPU (``addmm``, the same loss), when torch is installed,
                  on as many threads as NumPy's BLAS (``torch.set_num_threads``)
================  ============================================================================

The GEMM reference (:func:`gemm_reference`) runs only the matrix products a backward pass
needs, with the same shapes, through the same NumPy calls into preallocated arrays: its rate
is the practical peak a NumPy implementation can reach on this machine.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

import manual_backprop as mb
from autodiff_check.error_bounds import rounding_bound
from manual_backprop import fast
from manual_backprop.network import _a_T_delta   # the products' own call, private to the package

# name -> layer sizes
NETWORKS: dict[str, list[int]] = {
    "post": [784, 500, 500, 10],  # the post's network
    "deep": [784, 128, 128, 128, 128, 128, 128, 10],  # deep and narrow: six hidden layers of 128
    "wide": [784, 2048, 2048, 10],  # wide: two hidden layers of 2048
}

BASELINE = "jax_jit"   # the denominator of the table's /jit ratios
#: the jitted JAX formulations timed; per cell, the fastest of them is what the goals are judged
#: against (``fastest_jax``): above batch 1 the bias-column twin or separate biases can beat
#: ``a @ W[1:] + W[0]``, whose slices and pads of W XLA copies every call (a review, 2026-12-04)
JAX_JITTED = ("jax_jit", "jax_jit_twin", "jax_jit_wb")
REFERENCE = "plain"   # every backend's gradient is checked against it
TORCH_THREADS: int | None = None  # set by __main__: --threads, else NumPy's BLAS thread count


@dataclass
class Problem:
    """One benchmark cell: parameters, a batch, its targets, and the loss settings."""

    network: str
    sizes: list[int]
    batch: int
    dtype: np.dtype
    params: list[np.ndarray]
    x: np.ndarray
    y: np.ndarray
    activation: str = "sigmoid"
    loss: str = "binary_cross_entropy"
    bound: object = None  # autodiff_check.RoundingBound, made by agreement() on first use

    @property
    def flops(self) -> int:
        return flops(self.sizes, self.batch)


def flops(sizes: Sequence[int], batch: int) -> int:
    """Floating-point operations of the matrix products of one forward-and-backward pass:
    per layer 2 B n_in n_out for z = a W, as many for a^T delta, and as many for delta W^T
    except in the first layer (delta_0 is never needed). Elementwise work is not counted."""
    per_layer = [n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    return 2 * batch * (3 * sum(per_layer) - per_layer[0])


def make_problem(network: str, sizes: Sequence[int], batch: int, dtype, *, seed: int = 0,
                 activation: str = "sigmoid", loss: str = "binary_cross_entropy") -> Problem:
    """Parameters from ``init_params(seed)``, inputs uniform in [0, 1) like pixels, one-hot
    targets (probability rows for softmax, the same one-hot for the other losses)."""
    dtype = np.dtype(dtype)
    params = mb.init_params(list(sizes), seed=seed, dtype=dtype)
    rng = np.random.default_rng([seed, batch])
    x = rng.uniform(0, 1, size=(batch, sizes[0])).astype(dtype)
    y = mb.one_hot(rng.integers(0, sizes[-1], batch), sizes[-1], dtype=dtype)
    return Problem(network, list(sizes), batch, dtype, params, x, y, activation, loss)


@dataclass
class Runner:
    """``call()`` is timed; ``result()`` gives (J, NumPy grads) for the agreement check."""

    call: Callable[[], object]
    result: Callable[[], tuple[float, list[np.ndarray]]]
    notes: dict = field(default_factory=dict)


class Unavailable(RuntimeError):
    """The backend's library is not installed (the backend is skipped, with this reason)."""


# --------------------------------------------------------------------------------------------
# NumPy backends


def _fast(p: Problem) -> Runner:
    kw = dict(activation=p.activation, loss=p.loss, out=fast.empty_like(p.params), workspace=fast.Workspace())

    def call():
        return fast.loss_and_grad(p.params, p.x, p.y, **kw)

    def result():
        J, g = call()
        return J, [a.copy() for a in g]

    return Runner(call, result)


def _plain(p: Problem) -> Runner:
    def call():
        return mb.loss_and_grad(p.params, p.x, p.y, activation=p.activation, loss=p.loss)

    return Runner(call, call)


def post_style_loop(params, x, y, *, activation="sigmoid", loss="binary_cross_entropy"):
    """The gradient one example at a time, written as the post writes its layers
    (``add_bias(a) @ W``, ``add_bias(a).T @ delta``) with the correct derivation, summed over
    the batch and divided by its size."""
    act, lossfn = mb.ACTIVATIONS[activation], mb.LOSSES[loss]
    grads = [np.zeros_like(W) for W in params]
    J = 0.0
    for xb, yb in zip(x, y):
        a, zs = [xb[None, :]], []
        for W in params:
            zs.append(mb.add_bias(a[-1]) @ W)
            a.append(act.fn(zs[-1]))
        J += float(lossfn.value(zs[-1], yb[None, :])[0])
        delta = lossfn.delta(zs[-1], yb[None, :])
        for l in range(len(params) - 1, -1, -1):
            grads[l] += mb.add_bias(a[l]).T @ delta
            if l > 0:
                delta = (delta @ params[l][1:].T) * act.grad(zs[l - 1], a[l])
    B = x.shape[0]
    return J / B, [g / B for g in grads]


def _per_example(p: Problem) -> Runner:
    def call():
        return post_style_loop(p.params, p.x, p.y, activation=p.activation, loss=p.loss)

    return Runner(call, call)


# --------------------------------------------------------------------------------------------
# JAX backends


def _jax():
    if importlib.util.find_spec("jax") is None:
        raise Unavailable("jax is not installed (pip install 'manual-backprop[bench]')")
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 cells stay float64; float32 stays float32
    return jax


def _jax_activation(name: str):
    import jax
    import jax.numpy as jnp

    return {
        "sigmoid": jax.nn.sigmoid,
        "tanh": jnp.tanh,
        "relu": jax.nn.relu,
        "leaky_relu": lambda z: jax.nn.leaky_relu(z, 0.01),
        "softplus": jax.nn.softplus,
        "gelu": lambda z: jax.nn.gelu(z, approximate=True),
    }[name]


def _jax_loss_from_logits(name: str):
    """Summed loss of logits z against targets y, each in the form with the fewest elementwise
    operations that stays finite for any finite z. Binary cross-entropy:
    -[y log s(z) + (1 - y) log s(-z)] = softplus(z) - y z, since log s(z) = -softplus(-z) and
    softplus(z) - softplus(-z) = z: one softplus per logit (two log_sigmoid in the direct form),
    and the derivative JAX forms is s(z) - y, the derivation's delta_L."""
    import jax
    import jax.numpy as jnp

    return {
        "binary_cross_entropy": lambda z, y: jnp.sum(jax.nn.softplus(z) - y * z),
        "softmax_cross_entropy": lambda z, y: -jnp.sum(y * jax.nn.log_softmax(z, axis=-1)),
        "mean_squared_error": lambda z, y: 0.5 * jnp.sum((z - y) ** 2),
    }[name]


def jax_loss(params, x, y, activation: str = "sigmoid", loss: str = "binary_cross_entropy"):
    """J = 1/B sum_b l(z_L[b], y[b]) as a JAX user writes it for this parameter layout:
    ``a = g(a @ W[1:] + W[0])`` (no bias column copied into a wider array), the loss taken
    from the logits (:func:`_jax_loss_from_logits`). The benchmark's baseline; not the
    checker's twin (``autodiff_check.model``), which keeps the post's ``add_bias(a) @ W``."""
    g, ell = _jax_activation(activation), _jax_loss_from_logits(loss)
    a = x
    for W in params[:-1]:
        a = g(a @ W[1:] + W[0])
    z = a @ params[-1][1:] + params[-1][0]
    return ell(z, y) / x.shape[0]


def jax_loss_wb(weights_biases, x, y, activation: str = "sigmoid", loss: str = "binary_cross_entropy"):
    """:func:`jax_loss` with each layer as a pair (W_l[1:], W_l[0]) of separate arrays."""
    g, ell = _jax_activation(activation), _jax_loss_from_logits(loss)
    a = x
    for W, b in weights_biases[:-1]:
        a = g(a @ W + b)
    W, b = weights_biases[-1]
    return ell(a @ W + b, y) / x.shape[0]


def _jax_runner(jax, fn, p: Problem) -> Runner:
    params, x, y = [jax.device_put(W) for W in p.params], jax.device_put(p.x), jax.device_put(p.y)
    jax.block_until_ready((params, x, y))

    def call():
        return jax.block_until_ready(fn(params, x, y, p.activation, p.loss))

    def result():
        J, g = call()
        return float(J), [np.asarray(a) for a in g]

    return Runner(call, result)


def _jax_eager(p: Problem) -> Runner:
    jax = _jax()
    return _jax_runner(jax, jax.value_and_grad(jax_loss), p)


def _jax_jit(p: Problem) -> Runner:
    jax = _jax()
    return _jax_runner(jax, jax.jit(jax.value_and_grad(jax_loss), static_argnums=(3, 4)), p)


def _jax_jit_twin(p: Problem) -> Runner:
    jax = _jax()
    from autodiff_check import model

    return _jax_runner(jax, jax.jit(jax.value_and_grad(model.loss_fn), static_argnums=(3, 4)), p)


def _jax_jit_wb(p: Problem) -> Runner:
    jax = _jax()
    fn = jax.jit(jax.value_and_grad(jax_loss_wb), static_argnums=(3, 4))
    wb = [(jax.device_put(np.ascontiguousarray(W[1:])), jax.device_put(W[0])) for W in p.params]
    x, y = jax.device_put(p.x), jax.device_put(p.y)
    jax.block_until_ready((wb, x, y))

    def call():
        return jax.block_until_ready(fn(wb, x, y, p.activation, p.loss))

    def result():  # back to the shared layout, outside the clock
        J, g = call()
        return float(J), [np.vstack([np.asarray(gb)[None, :], np.asarray(gW)]) for gW, gb in g]

    return Runner(call, result)


def _jax_jit_api(p: Problem) -> Runner:
    _jax()
    import autodiff_check

    def call():
        return autodiff_check.loss_and_grad(p.params, p.x, p.y, activation=p.activation, loss=p.loss)

    return Runner(call, call)


# --------------------------------------------------------------------------------------------
# PyTorch


def _torch(p: Problem) -> Runner:
    if importlib.util.find_spec("torch") is None:
        raise Unavailable("torch is not installed (optional peer: pip install torch)")
    import torch
    import torch.nn.functional as F

    if TORCH_THREADS is not None and torch.get_num_threads() != TORCH_THREADS:
        torch.set_num_threads(TORCH_THREADS)

    acts = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
        "softplus": F.softplus,
        "gelu": lambda z: F.gelu(z, approximate="tanh"),
    }
    losses = {
        "binary_cross_entropy": lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="sum"),
        "softmax_cross_entropy": lambda z, y: -(y * F.log_softmax(z, dim=1)).sum(),
        "mean_squared_error": lambda z, y: 0.5 * ((z - y) ** 2).sum(),
    }
    g, lossfn = acts[p.activation], losses[p.loss]
    params = [torch.from_numpy(W.copy()).requires_grad_() for W in p.params]
    x, y = torch.from_numpy(p.x), torch.from_numpy(p.y)
    B = p.batch

    def call():
        for W in params:
            W.grad = None
        a = x
        for W in params[:-1]:
            a = g(torch.addmm(W[0], a, W[1:]))
        J = lossfn(torch.addmm(params[-1][0], a, params[-1][1:]), y) / B
        J.backward()
        return J

    def result():
        J = call()
        return float(J.detach()), [W.grad.numpy().copy() for W in params]

    return Runner(call, result, notes={"torch_threads": torch.get_num_threads()})


BACKENDS: dict[str, Callable[[Problem], Runner]] = {
    "fast": _fast,
    "plain": _plain,
    "per_example": _per_example,
    "jax_eager": _jax_eager,
    "jax_jit": _jax_jit,
    "jax_jit_twin": _jax_jit_twin,
    "jax_jit_wb": _jax_jit_wb,
    "jax_jit_api": _jax_jit_api,
    "torch": _torch,
}


# --------------------------------------------------------------------------------------------
# GEMM reference and agreement


def gemm_reference(p: Problem) -> Callable[[], None]:
    """The matrix products of one manual forward-and-backward pass, nothing else: for each
    layer ``a_{l-1} @ W_l[1:]``, ``a_{l-1}.T @ delta_l`` and, except for the first,
    ``delta_l @ W_l[1:].T``, each into a preallocated array, on realistic values. The second
    by the reference's and the fast path's call for it
    (``network._a_T_delta``: np.einsum's outer product at B = 1, else np.matmul); the
    gradients into arrays from ``fast.empty_like``."""
    rng = np.random.default_rng(1)
    acts = [p.x] + [rng.uniform(0, 1, (p.batch, n)).astype(p.dtype) for n in p.sizes[1:]]
    deltas = [rng.normal(0, 1e-2, (p.batch, n)).astype(p.dtype) for n in p.sizes]
    grads = fast.empty_like(p.params)
    L = len(p.params)

    def call():
        for l, W in enumerate(p.params):
            np.matmul(acts[l], W[1:], out=acts[l + 1])
        for l in range(L - 1, -1, -1):
            _a_T_delta(acts[l], deltas[l + 1], out=grads[l][1:])
            if l > 0:
                np.matmul(deltas[l + 1], p.params[l][1:].T, out=deltas[l])

    return call


def largest(values) -> float:
    """The largest of ``values`` (0 for none), a NaN counted as inf: Python's ``max`` keeps its
    first argument against a NaN (``max(0.0, nan)`` is 0.0), so a backend whose gradient was
    NaN read as agreeing exactly."""
    return max((math.inf if math.isnan(v) else v for v in map(float, values)), default=0.0)


def max_rel_error(grads: Sequence[np.ndarray], ref: Sequence[np.ndarray]) -> float:
    """The worst layer's ``max|g - ref| / max|ref|`` (norm-wise, so zeros in ref are harmless)."""
    errors = []
    for g, r in zip(grads, ref):
        g = np.asarray(g, dtype=np.float64)
        r = np.asarray(r, dtype=np.float64)
        if g.shape != r.shape:
            return float("inf")
        scale = float(np.max(np.abs(r))) or 1.0
        errors.append(float(np.max(np.abs(g - r))) / scale)
    return largest(errors)


def agreement(p: Problem, J: float, grads: Sequence[np.ndarray], ref_J: float,
              ref_grads: Sequence[np.ndarray]) -> dict:
    """Does a backend's ``(J, grads)`` agree with the reference's, computed in the same dtype?

    Tolerance: ``autodiff_check.rounding_bound`` bounds, per entry and to first order in u, how
    far a gradient computed in ``p.dtype`` can be from the exact one, whatever the order of the
    sums (every dot product of n terms errs by at most n u times their absolute sum, carried
    through the network run in absolute values). The backend and the reference each lie within
    it, so they differ by at most twice it; another factor 2 covers the second-order terms (as
    ``autodiff_check.exact_atol``). The bound comes from the parameters and the paper's
    derivative constants, not from either result. ``error_to_bound`` = max |g - ref| / (4 eG)
    over all entries: the backend agrees when it is at most 1 (and the loss likewise).

    The bound is a worst case: in float64 it is ~1e-9 of the largest entry for the post
    network at batch 100, so a wrong formula cannot pass; in float32 it reaches ~0.9 of the
    first layer's largest entry there, so a float32 cell catches only gross errors. Every
    backend runs the float64 cells too, which is where a formula is held to the reference."""
    if p.bound is None:
        p.bound = rounding_bound(p.params, p.x, p.y, p.activation, p.loss, dtype=p.dtype)
    ratios = []
    for g, r, e in zip(grads, ref_grads, p.bound.grad):
        g = np.asarray(g, dtype=np.float64)
        if g.shape != r.shape:
            ratios.append(float("inf"))
            break
        ratios.append(float(np.max(np.abs(g - r) / (4 * e))))
    worst = largest(ratios)
    loss_ratio = largest([abs(float(J) - float(ref_J)) / (4 * p.bound.loss)])
    return {"max_rel_error": max_rel_error(grads, ref_grads), "loss_rel_error": abs(J - ref_J) / max(1.0, abs(ref_J)),
            "error_to_bound": worst, "loss_error_to_bound": loss_ratio,
            "agrees": bool(worst <= 1.0 and loss_ratio <= 1.0)}
