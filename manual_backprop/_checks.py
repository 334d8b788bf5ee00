"""Argument validation shared by the public functions: every failure names the argument,
what was expected and what was given, before any arithmetic can fail deep inside."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: np.finfo's eps and max of each float dtype, looked up once (np.finfo costs a call per use)
EPS = {dt: float(np.finfo(dt).eps) for dt in FLOAT_DTYPES}
MAX = {dt: float(np.finfo(dt).max) for dt in FLOAT_DTYPES}


def check_dtype(dtype, *, allow_complex: bool = False) -> np.dtype:
    """``dtype`` as a NumPy dtype, if it is float32 or float64 (or complex128 when allowed)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64; got {dtype!r}") from None
    allowed = FLOAT_DTYPES + ((np.dtype(np.complex128),) if allow_complex else ())
    if dt not in allowed:
        names = ", ".join(str(d) for d in allowed)
        raise TypeError(f"dtype must be one of {names}; got {dt}")
    return dt


def check_layer_sizes(layer_sizes: Sequence[int]) -> list[int]:
    """Layer sizes as a list of positive ints, at least two of them (input and output)."""
    try:
        sizes = list(layer_sizes)
    except TypeError:
        raise TypeError(f"layer_sizes must be a sequence of ints; got {layer_sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(
            f"layer_sizes needs at least two sizes (inputs and outputs); got {sizes!r}"
        )
    for i, n in enumerate(sizes):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"layer_sizes[{i}] must be an int; got {n!r}")
        if n < 1:
            raise ValueError(f"layer_sizes[{i}] must be positive; got {n}")
    return [int(n) for n in sizes]


def refuse_masked(name: str, a, where: str = "") -> None:
    """A TypeError for a masked array (np.ma) or an np.matrix: ``np.asarray`` drops a mask, so the
    hidden values under it would be used, and a matrix breaks the 2-D products' broadcasting
    deep inside NumPy. Other ndarray subclasses (np.memmap, say) are plain arrays here. ``where``
    goes before the message (a layer's name)."""
    if type(a) is np.ndarray:   # the common case, at the cost of one comparison (batch 1 pays per call)
        return
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(f"{where}{name} is a masked array, whose mask would be ignored; pass {name}.filled(value) "
                        "or only the entries that are not masked")
    if isinstance(a, np.matrix):
        raise TypeError(f"{where}{name} is an np.matrix; pass np.asarray({name})")


def as_array(name: str, a, where: str = "") -> np.ndarray:
    """``np.asarray(a)``, refusing a masked array or np.matrix (:func:`refuse_masked`), or a
    ValueError naming the argument where NumPy cannot make an array of it (a ragged list)."""
    refuse_masked(name, a, where)
    try:
        return np.asarray(a)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where}{name} is not an array of numbers ({e})") from None


def _first_nonfinite(a: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])


def nonfinite_error(name: str, a: np.ndarray) -> ValueError:
    """The ValueError for an input ``a`` holding a NaN or inf, naming it and its first bad index
    (every path and both backends say it so)."""
    return ValueError(f"{name} contains NaN or inf (first at {_first_nonfinite(a)})")


class NonFiniteError(FloatingPointError):
    """The loss, a gradient or an update would be NaN or inf although the inputs are finite:
    an overflow (inputs, targets or weights too large for the dtype, or a divergent learning rate).
    Raised by ``loss_and_grad`` and ``sgd_step`` of every path; ``sgd_step`` raises it before
    any update when the loss overflows (its message says so otherwise)."""


def all_finite(a: np.ndarray) -> bool:
    """True when ``a`` has no NaN or inf. One BLAS dot product: the sum of squares of a finite
    array is finite unless it overflows (entries above ~1e154 in float64, ~1e19 in float32),
    so only a non-finite sum needs the exact, element-wise scan."""
    return math.isfinite(np.vdot(a, a).real) or bool(np.isfinite(a).all())


def raise_not_finite(what: str, params, x) -> None:
    """Say why a loss or z_l came out non-finite: a NaN or inf in ``x`` or in ``params`` (a
    ValueError naming the array and the first bad index), else an overflow (NonFiniteError)."""
    for name, a in [("x", x)] + [(f"params[{l}]", W) for l, W in enumerate(params)]:
        if not np.isfinite(a).all():
            raise nonfinite_error(name, a)
    raise NonFiniteError(
        f"{what} is NaN or inf although x and params are finite: an overflow in "
        f"{np.asarray(x).dtype} (inputs, targets or weights too large, or a divergent learning rate)"
    )


def checks_overflow_itself(fn):
    """Run ``fn`` without NumPy's overflow and invalid-value warnings: it checks its own
    results (``all_finite``, ``raise_not_finite``) and raises NonFiniteError instead."""

    @functools.wraps(fn)
    def quiet(*args, **kwargs):
        with np.errstate(over="ignore", invalid="ignore"):
            return fn(*args, **kwargs)

    return quiet


def check_params(params, *, allow_complex: bool = False, check_finite: bool = True) -> np.dtype:
    """Check that ``params`` is a non-empty list of 2-D arrays of one float dtype whose
    shapes chain, ``(n_0 + 1, n_1), (n_1 + 1, n_2), ...``. Returns their dtype."""
    if isinstance(params, np.ndarray) or not isinstance(params, Sequence):
        raise TypeError(
            "params must be a list of 2-D arrays, one (n_in + 1, n_out) matrix per layer; "
            f"got {type(params).__name__}"
        )
    if len(params) == 0:
        raise ValueError("params is empty: a network needs at least one layer")
    dtype = None
    for l, W in enumerate(params):
        if not isinstance(W, np.ndarray):
            raise TypeError(f"params[{l}] must be a NumPy array; got {type(W).__name__}")
        refuse_masked(f"params[{l}]", W)
        if W.ndim != 2:
            raise ValueError(
                f"params[{l}] must be 2-D, shape (n_in + 1, n_out); got shape {W.shape}"
            )
        if W.shape[0] < 2 or W.shape[1] < 1:
            raise ValueError(
                f"params[{l}] must have shape (n_in + 1, n_out) with n_in, n_out >= 1 "
                f"(row 0 is the bias); got shape {W.shape}"
            )
        if dtype is None:
            dtype = check_dtype(W.dtype, allow_complex=allow_complex)
        elif W.dtype != dtype:
            raise TypeError(f"params mix dtypes: params[0] is {dtype}, params[{l}] is {W.dtype}")
        if l > 0 and W.shape[0] != params[l - 1].shape[1] + 1:
            raise ValueError(
                f"params do not chain: params[{l - 1}] has shape {params[l - 1].shape}, so "
                f"params[{l}] needs {params[l - 1].shape[1] + 1} rows; got shape {W.shape}"
            )
        if check_finite and not np.isfinite(W).all():
            raise nonfinite_error(f"params[{l}]", W)
    return dtype


def _as_real_batch(name: str, a, dtype: np.dtype, check_finite: bool = True) -> np.ndarray:
    if a is None:
        raise TypeError(f"{name} is None; expected a 2-D array")
    a = as_array(name, a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array; got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D, shape (batch, features); got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {a.shape})")
    # np.isfinite, not all_finite: BLAS's dot would leave OpenBLAS's worker threads spinning into
    # the split that fast.loss_and_grad may start next (docs/performance.md)
    real = np.dtype(np.float64) if dtype.kind == "c" else dtype
    if (check_finite or a.dtype != real) and not np.isfinite(a).all():
        raise nonfinite_error(name, a)
    if a.dtype == real:
        return a
    with np.errstate(over="ignore"):   # judged just below: a finite number beyond the dtype's range
        cast = a.astype(real, copy=False)
    if not np.isfinite(cast).all():
        raise ValueError(f"{name} has values beyond {real}'s range (first at {_first_nonfinite(cast)}: "
                         f"{a[_first_nonfinite(cast)]:.3g}), the dtype of params")
    return cast


def check_inputs(params, x, dtype: np.dtype, *, check_finite: bool = True) -> np.ndarray:
    """``x`` as a ``(batch, n_in)`` array in the parameters' (real) dtype, finite unless
    ``check_finite`` is False and no cast was needed (the gradient paths: any NaN or inf in x
    reaches every entry of its row of z_1, which they check; ``raise_not_finite`` then names x
    as this would)."""
    x = _as_real_batch("x", x, dtype, check_finite)
    n_in = params[0].shape[0] - 1
    if x.shape[1] != n_in:
        raise ValueError(
            f"x has {x.shape[1]} features per example but params[0] has shape "
            f"{params[0].shape}, i.e. n_in = {n_in}"
        )
    return x


def check_targets(params, x: np.ndarray, y, dtype: np.dtype, loss) -> np.ndarray:
    """``y`` as finite ``(batch, n_out)`` targets in the loss's domain."""
    if np.ndim(y) == 1:
        raise ValueError(
            f"y must be 2-D targets of shape (batch, n_out); got shape {np.shape(y)} "
            "(for class labels use manual_backprop.one_hot(labels, n_out))"
        )
    y = _as_real_batch("y", y, dtype)
    n_out = params[-1].shape[1]
    if y.shape != (x.shape[0], n_out):
        raise ValueError(
            f"y must have shape (batch, n_out) = ({x.shape[0]}, {n_out}); got shape {y.shape}"
        )
    loss.check_targets(y)
    return y


#: ``y`` for the functions that take no targets (forward, predict): a None from a caller that
#: should have passed targets is then an error, not a silent skip of their checks
NO_TARGETS = object()


def check_seed(seed) -> int:
    """A seed for ``np.random.default_rng``: a non-negative integer."""
    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)) and seed >= 0):
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


def check_labels(labels, n_classes: int, batch: int | None = None) -> np.ndarray:
    """Integer class labels in ``[0, n_classes)`` as a 1-D int array."""
    if not (isinstance(n_classes, (int, np.integer)) and not isinstance(n_classes, (bool, np.bool_)) and n_classes >= 1):
        raise ValueError(f"n_classes must be a positive integer; got {n_classes!r}")
    refuse_masked("labels", labels)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D class indices; got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        whole = labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))
        if whole and labels.size and not (0 <= labels.min() and labels.max() < n_classes):   # before the cast
            raise ValueError(f"labels must lie in [0, {n_classes}); got values in [{labels.min():g}, {labels.max():g}]")
        if whole:
            labels = labels.astype(np.int64)
        else:
            raise TypeError(f"labels must be integers; got dtype {labels.dtype}")
    if batch is not None and labels.shape[0] != batch:
        raise ValueError(f"labels has {labels.shape[0]} entries but x has {batch} examples")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"labels must lie in [0, {n_classes}); got values in [{labels.min()}, {labels.max()}]"
        )
    return labels


def check_lr(lr, dtype: np.dtype):
    """The learning rate as a scalar of ``dtype``: a finite real number >= 0 that stays finite
    there. A negative rate climbs the loss (as torch.optim.SGD, refused; negate the loss to
    ascend); 0 is a step that changes nothing and returns J; a positive rate that is 0 in
    ``dtype`` would be such a step without saying so, and is refused."""
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, (int, float, np.integer, np.floating)):
        raise TypeError(f"lr must be a finite real number; got {lr!r}")
    try:
        value = float(lr)
    except OverflowError:   # an int beyond float64's range
        raise ValueError(f"lr = {lr!r} overflows {dtype}") from None
    if not math.isfinite(value):
        if np.isfinite(lr):   # a long double beyond float64's range
            raise ValueError(f"lr = {lr!r} overflows {dtype}")
        raise TypeError(f"lr must be a finite real number; got {lr!r}")
    if lr < 0:
        raise ValueError(f"lr must be >= 0 (a negative rate climbs the loss); got {value!r}")
    with np.errstate(over="ignore", under="ignore"):
        rate = dtype.type(lr)
    if not np.isfinite(rate):
        raise ValueError(f"lr = {lr!r} overflows {dtype}")
    if rate == 0 and lr > 0:   # lr itself: a long double 1e-400 is 0 as a Python float too
        raise ValueError(f"lr = {lr!r} is 0 in {dtype} (below its smallest positive number, "
                         f"{np.finfo(dtype).smallest_subnormal:.3g}): the step would change nothing")
    return rate
