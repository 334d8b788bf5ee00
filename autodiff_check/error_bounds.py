"""How far a computed loss and gradient of the network can be from the exact ones.

First-order running error analysis (Higham, *Accuracy and Stability of Numerical Algorithms*,
ch. 3): a dot product of n computed terms errs by at most n u sum |terms|, plus the errors its
inputs carry in, propagated by the derivative of what follows. u is the unit roundoff of the
dtype the network is evaluated in (2^-53 for float64, 2^-24 for float32). With
z_l = a_{l-1} W_l[1:] + W_l[0], a_l = g(z_l), ã = [1, a], batch B and n_l units in layer l:

    forward   ez_l  = (n_{l-1} + 1) u |ã_{l-1}| |W_l|  +  ea_{l-1} |W_l[1:]|
              ea_l  = G1 ez_l  +  EVAL_ULPS u (|a_l| + [gelu] |z_l|)  +  tiny       G1 = max |g'|
    output    d_L   = (|f(z_L)| s + |y|) / B            the terms of delta_L (s = max(1, sum_k |y_k|))
              ed_L  = s c_f ez_L / B  +  (EVAL_ULPS [+ n_L for softmax]) u d_L
                                                     c_f = max slope of the output f, ez_L its row
                                                     max for softmax (p_k depends on the whole row)
    backward  d_{l-1}  = G1 d_l |W_l[1:]|^T
              ed_{l-1} = G1 (ed_l + n_l u d_l) |W_l[1:]|^T      error carried back, and the GEMM's own
                       + G2 ez_{l-1} (d_l |W_l[1:]|^T)           g' taken at a z that errs by ez (G2 = max |g''|)
                       + EVAL_ULPS u (d_l |W_l[1:]|^T)           g' = 1 - a^2, a (1 - a) known to ~8u absolutely
                       + J [|z_{l-1}| <= ez_{l-1}] (d_l |W_l[1:]|^T)   relu, leaky_relu: z may be on either
                                                                 side of the kink, g' jumps by J
    gradient  eG_l  = B u |ã_{l-1}|^T d_l  +  |ã_{l-1}|^T ed_l  +  [0, ea_{l-1}]^T d_l
    loss      eJ    = sum d_L (ez_L + u (|z_L| + |y|))  +  (B n_out + 16) u T,
              T = |J| + sum (1 + |y|)(1 + |z_L|) / B bounds the terms the loss formula adds

Below the normal range the model is fl(x op y) = (x op y)(1 + e) + t with |e| <= u and
|t| <= eta, the smallest subnormal: a product such as a_i delta_j of tiny numbers is known
only to eta absolutely. So every dot product of n terms above also carries n eta, and every
elementwise result eta (float32: eta = 1.4e-45; float64: 4.9e-324). An activation carries
``tiny``, the smallest normal number, instead: the in-place sigmoid gives 1 / (1 + inf) = 0
where the exact value is subnormal. G1, the largest slope, also covers a z_l within rounding
of a kink (relu, leaky_relu), where the slope used may be either side's.

The ``|`` ``|`` products run the network in absolute values, so cancellation anywhere (a z_L
that is a small difference of large terms, p - y with p ~ y, a saturated tanh') is covered.
Bounds are first order in u; callers multiply by a small safety factor and say so.

Independence: a tolerance must not depend on the code it judges, so nothing here calls
``manual_backprop``'s derivations (only its argument checks, ``_checks``). Derivative magnitudes are the constants below, maxima over the real line
derived on paper (and checked in tests/test_error_bounds.py against jax.grad on a fine grid);
the forward values (activations, outputs, the loss) come from this module's own formulas
(``_G``, ``_OUTPUT``, ``_LOSS``), written differently from the derivation's. A derivative under
test that is wrong by any factor leaves the bound unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from manual_backprop import _checks
from manual_backprop.losses import get_loss

# An activation, its derivative or the output function is computed to within 8 u of its terms:
# a few operations of 1 u each (exp, add, divide, tanh), and tanh' = 1 - a^2 from an a that is
# itself off by 4 u.
EVAL_ULPS = 8

#: max |g'| over the reals (gelu: 1.1290 at z ~ 1.5; softplus' = sigmoid < 1)
SLOPE = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "leaky_relu": 1.0, "softplus": 1.0, "gelu": 1.13}
#: max |g''| over the reals, away from kinks (sigmoid 1/(6 sqrt 3), tanh 4/(3 sqrt 3), gelu 2/sqrt(2 pi))
CURVATURE = {"sigmoid": 0.0963, "tanh": 0.770, "relu": 0.0, "leaky_relu": 0.0, "softplus": 0.25, "gelu": 0.798}
#: max slope of the output function in the max-norm (sigmoid 1/4, softmax 1/2: row i of its
#: Jacobian sums to 2 p_i (1 - p_i) in absolute value; identity 1)
OUTPUT_SLOPE = {"binary_cross_entropy": 0.25, "softmax_cross_entropy": 0.5, "mean_squared_error": 1.0}
#: the jump of g' at the kink z = 0
KINK_JUMP = {"relu": 1.0, "leaky_relu": 0.99}


_G = {  # hidden activations, written independently of manual_backprop.activations
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),
    "tanh": np.tanh,
    "relu": lambda z: np.where(z > 0, z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "softplus": lambda z: np.logaddexp(0.0, z),
    "gelu": lambda z: 0.5 * z * (1.0 + np.tanh(np.sqrt(2 / np.pi) * (np.clip(z, -100, 100)
                                                                    + 0.044715 * np.clip(z, -100, 100) ** 3))),
}


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


_OUTPUT = {
    "binary_cross_entropy": _G["sigmoid"],
    "softmax_cross_entropy": _softmax,
    "mean_squared_error": lambda z: z,
}
_LOSS = {  # per-example losses from the logits z and targets y
    "binary_cross_entropy": lambda z, y: np.sum(np.logaddexp(0.0, z) - y * z, axis=1),
    "softmax_cross_entropy": lambda z, y: np.sum(y * (np.log(np.sum(np.exp(z - z.max(axis=1, keepdims=True)), axis=1,
                                                                    keepdims=True)) + z.max(axis=1, keepdims=True) - z), axis=1),
    "mean_squared_error": lambda z, y: 0.5 * np.sum((z - y) ** 2, axis=1),
}


_OVERFLOW = ("the rounding bound overflows float64 for these inputs (|x| or |W| too large): no tolerance can be "
             "derived; scale them down")


@dataclass
class RoundingBound:
    """``loss``: bound on |J computed - J exact|; ``grad[l]``: per-entry bound on the computed
    gradient of layer l, shaped like W_l."""

    loss: float
    grad: list[np.ndarray]


def unit_roundoff(dtype) -> float:
    """u = eps / 2 of a float dtype: 2^-53 for float64, 2^-24 for float32."""
    try:
        with warnings.catch_warnings():   # NumPy 2's deprecated aliases ('a'): refused below, not warned
            warnings.simplefilter("ignore", DeprecationWarning)
            dt = np.dtype(dtype) if dtype is not None else None   # np.dtype(None) is float64
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise TypeError(f"unit_roundoff needs a floating-point dtype; got {dtype!r}")
    return float(np.finfo(dt).eps) / 2


def rounding_bound(
    params: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray, activation: str, loss: str, dtype=np.float64
) -> RoundingBound:
    """The bounds of the module docstring for the network evaluated in ``dtype``.

    Shapes: params[l] (n_l + 1, n_{l+1}), x (B, n_0), y (B, n_L), checked as
    ``manual_backprop.loss_and_grad`` checks them (finite, chaining, targets in the loss's
    domain). Everything here is computed in float64 from float64 copies; a bound that overflows
    float64 (inputs or weights near 1e150 and beyond) is a ValueError: no tolerance follows."""
    if activation not in _G or loss not in _LOSS:
        raise ValueError(f"no rounding bound for activation {activation!r} with loss {loss!r}; "
                         f"known: {', '.join(_G)} / {', '.join(_LOSS)}")
    dtype = _checks.check_dtype(dtype)
    own = _checks.check_params(params)
    _checks.check_targets(params, _checks.check_inputs(params, x, own), y, own, get_loss(loss))
    with np.errstate(over="ignore", invalid="ignore"):   # judged below: an inf bound is refused
        bound = _bound(params, x, y, activation, loss, dtype)
    if not (np.isfinite(bound.loss) and all(np.isfinite(e).all() for e in bound.grad)):
        raise ValueError(_OVERFLOW)
    return bound


def logits_bound(params: Sequence[np.ndarray], x: np.ndarray, activation: str, dtype=np.float64) -> np.ndarray:
    """ez_L, (B, n_L): a bound on |z_L computed in ``dtype`` - z_L exact|, entry by entry (the
    forward rows of the module docstring), for z_L summed in any order, as ``a @ W[1:] + W[0]``
    or as the post's ``add_bias(a) @ W``. Checked and refused like :func:`rounding_bound`."""
    if activation not in _G:
        raise ValueError(f"no rounding bound for activation {activation!r}; known: {', '.join(_G)}")
    dtype = _checks.check_dtype(dtype)
    _checks.check_inputs(params, x, _checks.check_params(params))
    with np.errstate(over="ignore", invalid="ignore"):   # judged below: an inf bound is refused
        ez_L = _forward([np.asarray(W, np.float64) for W in params], x, activation, dtype)[3][-1]
    if not np.isfinite(ez_L).all():
        raise ValueError(_OVERFLOW)
    return ez_L


def _forward(P: list[np.ndarray], x, activation: str, dtype: np.dtype) -> tuple[list, list, list, list]:
    """The forward rows of the model in float64 (``P``: float64 params): for l = 1..L the
    layer's input a_{l-1} and its error ea_{l-1}, z_l and its error ez_l."""
    g, u = _G[activation], unit_roundoff(dtype)
    eta, tiny = float(np.finfo(dtype).smallest_subnormal), float(np.finfo(dtype).tiny)
    a = np.asarray(x, np.float64)
    ea = np.zeros_like(a)
    a_in, ea_in, zs, ezs = [], [], [], []
    for l, W in enumerate(P):
        a_in.append(a)
        ea_in.append(ea)
        z = a @ W[1:] + W[0]
        n = W.shape[0]  # terms in each z: n_{l-1} products and the bias
        ez = n * u * (np.abs(a) @ np.abs(W[1:]) + np.abs(W[0])) + n * eta + ea @ np.abs(W[1:])
        zs.append(z)
        ezs.append(ez)
        if l < len(P) - 1:
            a = g(z)
            ea = SLOPE[activation] * ez + EVAL_ULPS * u * (np.abs(a) + (np.abs(z) if activation == "gelu" else 0)) + tiny
    return a_in, ea_in, zs, ezs


def _bound(params, x, y, activation: str, loss: str, dtype: np.dtype) -> RoundingBound:
    output = _OUTPUT[loss]
    u = unit_roundoff(dtype)
    eta = float(np.finfo(dtype).smallest_subnormal)
    jump = KINK_JUMP.get(activation, 0.0)
    P = [np.asarray(W, np.float64) for W in params]
    y = np.asarray(y, np.float64)
    B = len(y)
    a_in, ea_in, zs, ezs = _forward(P, x, activation, dtype)

    # output error: its terms d and its error ed
    z_L, ez_L = zs[-1], ezs[-1]
    s = np.maximum(1.0, np.abs(y).sum(axis=1, keepdims=True))
    d = (np.abs(output(z_L)) * s + np.abs(y)) / B
    ez_out = ez_L.max(axis=1, keepdims=True) if loss == "softmax_cross_entropy" else ez_L
    ulps = EVAL_ULPS + (z_L.shape[1] if loss == "softmax_cross_entropy" else 0)  # softmax sums its row
    ed = s * OUTPUT_SLOPE[loss] * ez_out / B + ulps * u * d + eta

    J = float(np.mean(_LOSS[loss](z_L, y)))
    terms = abs(J) + float(np.sum((1 + np.abs(y)) * (1 + np.abs(z_L)))) / B
    e_loss = float(np.sum(d * (ez_L + u * (np.abs(z_L) + np.abs(y))))) + (y.size + 16) * u * terms

    G1, G2 = SLOPE[activation], CURVATURE[activation]
    grad = [np.empty(0)] * len(P)
    for l in range(len(P) - 1, -1, -1):
        A, EA = np.abs(a_in[l]), ea_in[l]
        eG = B * u * (A.T @ d) + A.T @ ed + EA.T @ d + B * eta
        eb = B * u * d.sum(axis=0) + ed.sum(axis=0) + B * eta
        grad[l] = np.vstack([eb, eG])
        if l:
            absW = np.abs(P[l][1:]).T
            back = d @ absW  # the terms delta_l W_l[1:]^T before g'
            m = P[l].shape[1]  # terms in each entry of delta_l W_l[1:]^T
            ed = G1 * ((ed + m * u * d) @ absW + m * eta) + G2 * ezs[l - 1] * back + EVAL_ULPS * u * back + eta
            if jump:
                ed = ed + jump * (np.abs(zs[l - 1]) <= ezs[l - 1]) * back
            d = G1 * back
    return RoundingBound(e_loss, grad)
