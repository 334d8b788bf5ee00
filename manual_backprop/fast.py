"""The network's gradient again, fast: the same numbers as :mod:`manual_backprop.network`.

``loss_and_grad`` with ``out=`` and ``workspace=`` writes the gradient into arrays the caller
keeps and takes every activation and error term from a :class:`Workspace` reused between
calls; sigmoid and tanh run in place (:data:`IN_PLACE`), so a warm call allocates nothing the
size of a hidden layer. ``sgd_step`` applies ``W_l -= lr dJ/dW_l`` as
soon as the backward pass is done with W_l, without storing the gradient: at B = 1 a BLAS
rank-1 update, above it a gemm that adds the product into W_l (:mod:`manual_backprop._blas`),
each reading and writing W_l once. At large batches ``loss_and_grad`` splits the
batch into blocks of rows, one thread each with NumPy's BLAS on one thread, and sums their
gradients: the elementwise passes, which NumPy runs on one thread, then use every core the
BLAS would have used (``threads=``).

Notation and index convention as in :mod:`manual_backprop.network` (layers l = 1..L, W_l =
``params[l - 1]``). The tests hold this module to the reference: bit-equal where the
arithmetic is the same, within the rounding bound where it is not.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from . import _blas, _checks, _threads
from .network import Params, _a_T_delta, _check_bounded, _check_no_overflow, _prepare, _product_bound

#: Rows per block below which a split batch did not pay (docs/performance.md): with ``threads``
#: unset, a batch of B rows is split into min(BLAS threads, B // SPLIT_ROWS) blocks.
SPLIT_ROWS = 256


class Workspace:
    """Scratch arrays reused by :func:`loss_and_grad` and :func:`sgd_step`.

    Holds z_l (turned into a_l in place) and delta_l W_l[1:]^T (turned into delta_{l-1}) for
    the hidden layers, and for ``sgd_step`` where neither a rank-1 update nor NumPy's BLAS can
    add a product into W_l (``_blas.add_a_T_delta``), one array the size of the largest W_l[1:]
    (a_{l-1}^T delta_l, one layer at a time); for a
    batch split into k blocks, a Workspace per block and k - 1 sets of gradient arrays.
    Arrays are made on the first call and kept while the shapes, batch size, dtype and number
    of blocks stay; others make new ones. One workspace serves one call at a time: a second thread
    using it concurrently gets a RuntimeError, never mixed-up buffers.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._busy = threading.Lock()

    def _use(self, params: Params, B: int, dtype: np.dtype, blocks: int = 1) -> Iterator[Workspace]:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("this Workspace is in use by another call; give each thread its own Workspace")
        try:
            key = (tuple(W.shape for W in params), B, dtype, blocks)
            if self._key != key:
                rows = B if blocks == 1 else 0                                         # blocks: their own
                self.z = [np.empty((rows, W.shape[1]), dtype) for W in params[:-1]]    # z_l, then a_l
                self.back = [np.empty((rows, W.shape[0] - 1), dtype) for W in params[1:]]  # delta_{l-1}
                self.blocks = [Workspace() for _ in range(blocks if blocks > 1 else 0)]
                self.partial = [[np.empty(W.shape, dtype) for W in params] for _ in self.blocks[1:]]
                self._scratch: np.ndarray | None = None
                self._key = key
            yield self
        finally:
            self._busy.release()

    _use = contextlib.contextmanager(_use)   # not a decorator: mutmut skips decorated functions

    def scratch(self, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
        """A C-contiguous array of ``shape``: a view of one buffer as large as the largest
        W_l[1:] (so ``sgd_step`` at B > 1 holds one layer's product, not every layer's)."""
        size = shape[0] * shape[1]
        if self._scratch is None or self._scratch.size < size:
            largest = max((W_shape[0] - 1) * W_shape[1] for W_shape in self._key[0])
            self._scratch = np.empty(largest, dtype)
        return self._scratch[:size].reshape(shape)


def empty_like(params: Params) -> list[np.ndarray]:
    """Uninitialised arrays shaped and typed like ``params``, for ``out=``: as ``np.empty``,
    except that each W_l[1:] part starts on a 64-byte boundary (a cache line). NumPy's
    allocation promises 16 bytes; a BLAS GEMM stores rows that start on a vector boundary
    faster (a k = 1 GEMM at B = 1 in float64: 0.89 of the time; np.einsum's outer product,
    which forms that product now, does not care: docs/performance.md). NumPy offers no
    aligned allocation from Python, hence these lines (as pyFFTW's ``empty_aligned``)."""
    _checks.check_params(params, check_finite=False)
    out = []
    for W in params:
        nbytes = W.size * W.dtype.itemsize
        buf = np.empty(nbytes + 64, np.uint8)
        start = -(buf.ctypes.data + W.shape[1] * W.dtype.itemsize) % 64   # W_l[1:] on a multiple of 64
        out.append(buf[start:start + nbytes].view(W.dtype).reshape(W.shape))
    return out


def _workspace(workspace) -> Workspace:
    """The caller's Workspace, or a new one for None; anything else is a TypeError."""
    if workspace is None:
        return Workspace()
    if not isinstance(workspace, Workspace):
        raise TypeError(f"workspace must be a manual_backprop.fast.Workspace or None; got {type(workspace).__name__}")
    return workspace


def _sigmoid_inplace(z: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, bool]:
    """z <- sigma(z + b) = 1 / (1 + e^{-(z + b)}) in four passes over z and a fifth that reads
    it (the check), no temporary of its size; also whether z + b was finite (sigma hides +-inf
    as 1 or 0). Where e^{-(z + b)} overflows (z + b < -88.7 in float32, -709.8 in float64)
    a = 1 / inf = 0, within the smallest normal number of the exact value (the callers run
    under errstate(over="ignore"))."""
    t = np.subtract(-b, z, out=z)                      # -(z + b)
    finite = _checks.all_finite(t)
    np.exp(t, out=t)
    t += 1
    return np.divide(1, t, out=t), finite


def _sigmoid_times_grad(delta: np.ndarray, a: np.ndarray) -> None:
    """delta *= sigma'(z) = a (1 - a); a is overwritten with 1 - a."""
    delta *= a
    np.subtract(1, a, out=a)
    delta *= a


def _tanh_inplace(z: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, bool]:
    """z <- tanh(z + b); also whether z + b was finite."""
    z += b
    finite = _checks.all_finite(z)
    return np.tanh(z, out=z), finite


def _tanh_times_grad(delta: np.ndarray, a: np.ndarray) -> None:
    """delta *= tanh'(z) = 1 - a^2; a is overwritten with 1 - a^2."""
    np.multiply(a, a, out=a)
    np.subtract(1, a, out=a)
    delta *= a


#: Activations whose g' is a function of a = g(z) alone, so z need not be kept: a_l is written
#: over z_l, and delta_l W_l[1:]^T is multiplied by g'(z_{l-1}) in place (overwriting a_{l-1},
#: which nothing needs after that). The others take g.fn and g.grad of the reference.
IN_PLACE = {"sigmoid": (_sigmoid_inplace, _sigmoid_times_grad), "tanh": (_tanh_inplace, _tanh_times_grad)}


def _backprop(params: Params, x: np.ndarray, y: np.ndarray, g, ell, ws: Workspace,
              use: Callable[[int, np.ndarray, np.ndarray], None], rows: slice = slice(None)) -> float:
    """Forward and backward pass over the examples ``rows`` of a batch of B; returns their
    share of J, 1/B sum_{b in rows} l(z_L[b], y[b]). For l = L..1, ``use(l, a_{l-1},
    delta_l)`` gets what their share of dJ/dW_l is made of, after W_l has served to compute
    delta_{l-1} (so ``use`` may update W_l in place). Refuses, before calling ``use``, a J or
    z_l that is NaN or inf."""
    L, B = len(params), x.shape[0]
    x_rows, y = x[rows], y[rows]
    fn_inplace, times_grad_inplace = IN_PLACE.get(g.name, (None, None))
    a, z = [x_rows], [None]                # a[l] = a_l; z[l] = z_l, kept only if g' needs it
    finite = True
    for l in range(1, L):
        W = params[l - 1]
        z_l = np.matmul(a[l - 1], W[1:], out=ws.z[l - 1])
        if fn_inplace:
            a_l, finite_l = fn_inplace(z_l, W[0])      # z_l + b_l, then a_l, written over it
            z.append(None)
        else:
            z_l += W[0]
            finite_l = _checks.all_finite(z_l)
            z.append(z_l)
            a_l = g.fn(z_l)
        finite = finite and finite_l
        a.append(a_l)
    z_L = a[L - 1] @ params[L - 1][1:]
    z_L += params[L - 1][0]
    J = float(ell.value(z_L, y).sum()) / B
    if not (finite and math.isfinite(J) and _checks.all_finite(z_L)):
        _checks.raise_not_finite("the loss", params, x)   # the whole batch: it names the caller's index

    delta = ell.delta(z_L, y)
    delta /= B                                         # delta_L
    for l in range(L, 1, -1):
        back = np.matmul(delta, params[l - 1][1:].T, out=ws.back[l - 2])
        use(l, a[l - 1], delta)                        # W_l is not needed after this
        if times_grad_inplace:
            times_grad_inplace(back, a[l - 1])         # nor a_{l-1}, overwritten here
        else:
            back *= g.grad(z[l - 1], a[l - 1])
        delta = back                                   # delta_{l-1}
    use(1, x_rows, delta)
    return J


def _check_out(out, params: Params, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """``out`` as a list of writeable, aligned, C-contiguous arrays shaped and typed like
    ``params`` (the products write them in place; an unaligned one would go through a copy),
    none of them sharing memory with ``x`` (read again for dJ/dW_1 after the other layers are
    written) or ``y`` (a split batch's later blocks read their targets after block 0 writes
    ``out``)."""
    if isinstance(out, np.ndarray) or not isinstance(out, Sequence) or len(out) != len(params):
        raise TypeError(f"out must be a list of {len(params)} arrays shaped like params")
    for i, (G, W) in enumerate(zip(out, params)):
        if not isinstance(G, np.ndarray) or G.shape != W.shape or G.dtype != W.dtype:
            what = f"{G.dtype} array of shape {G.shape}" if isinstance(G, np.ndarray) else type(G).__name__
            raise ValueError(f"out[{i}] must be a {W.dtype} array of shape {W.shape}; got {what}")
        if not (G.flags.c_contiguous and G.flags.writeable and G.flags.aligned):
            raise ValueError(f"out[{i}] must be a writeable, aligned, C-contiguous array")
        for V in params:                               # loops, not any(): batch 1 pays per call
            if np.may_share_memory(G, V):
                raise ValueError(f"out[{i}] overlaps the parameters; gradients need their own memory")
        for name, a in (("x", x), ("y", y)):
            if np.may_share_memory(G, a):
                raise ValueError(f"out[{i}] overlaps {name}; gradients need their own memory")
        for H in out[:i]:
            if np.may_share_memory(G, H):
                raise ValueError(f"out[{i}] overlaps another entry of out; each layer needs its own array")
    return out if isinstance(out, list) else list(out)   # a list: returned as it is, as README shows


def loss_and_grad(params: Params, x: np.ndarray, y: np.ndarray, *, activation: str = "sigmoid",
                  loss: str = "binary_cross_entropy", out: Params | None = None,
                  workspace: Workspace | None = None, threads: int | None = None) -> tuple[float, Params]:
    """``(J, grads)`` as :func:`manual_backprop.network.loss_and_grad`, from reused buffers.

    ``out``: a list of aligned C-contiguous arrays (as np.empty makes them) shaped and typed
    like ``params``, receives the gradient and is returned as ``grads`` (a tuple of arrays: as
    a list of them). ``workspace``: a :class:`Workspace` kept across calls. With both, and
    sigmoid or tanh, a warm call allocates only the output layer's (B, n_L) arrays; other
    activations allocate g(z) and g'(z) per hidden layer.

    ``threads``: split the batch into this many blocks of rows (at most B), each run on its own
    thread with NumPy's BLAS on one thread meanwhile, and sum the blocks' J and gradients (the
    workspace then holds k - 1 more sets of gradient arrays; split calls from several threads
    take turns). Where NumPy's BLAS cannot be held at one thread (it is not OpenBLAS on
    pthreads, or another thread holds its count through threadpoolctl), the blocks run one
    after another. Default: as many blocks as NumPy's BLAS has threads, but at least
    :data:`SPLIT_ROWS` rows each; so one block below 2 SPLIT_ROWS rows, with one BLAS thread,
    where NumPy's BLAS is not OpenBLAS on pthreads, or for a call made inside a block.

    In one block the products are the reference's calls (a_{l-1}^T delta_l by the same
    ``network._a_T_delta``) and the arithmetic is the reference's, except sigmoid's in-place kernels
    (-(z + b) in one subtraction, and the product delta a (1 - a) in another order): results
    are bit-equal for the other activations and within the rounding bound for sigmoid. In
    several, J and each gradient entry are sums in another order: within the rounding bound.
    """
    g, ell, x, y = _prepare(params, x, y, activation, loss, check_finite=False)
    grads = [np.empty(W.shape, W.dtype) for W in params] if out is None else _check_out(out, params, x, y)
    ws = _workspace(workspace)
    B = x.shape[0]
    k = _block_count(B, threads)
    with ws._use(params, B, x.dtype, k):
        if k == 1:
            J = _backprop(params, x, y, g, ell, ws, _storing(grads))
        else:
            J = _split(params, x, y, g, ell, ws, grads, k)
    return J, grads


def _storing(grads: Params, bounds: list[float] | None = None) -> Callable[[int, np.ndarray, np.ndarray], None]:
    """The ``use`` of :func:`_backprop` that writes dJ/dW_l into ``grads[l - 1]`` (and, given
    ``bounds``, its overflow bound into ``bounds[l - 1]``)."""
    def store(l: int, a: np.ndarray, delta: np.ndarray) -> None:
        dW = grads[l - 1]
        np.add.reduce(delta, axis=0, out=dW[0])        # dJ/dW_l[0]  = sum_b delta_l[b]
        _a_T_delta(a, delta, out=dW[1:])               # dJ/dW_l[1:] = a_{l-1}^T delta_l
        if bounds is None:
            _check_no_overflow(a, delta, dW, l)
        else:                                          # a block: judged in the total (_split)
            bounds[l - 1] = _product_bound(a, delta)
    return store


def _split(params: Params, x: np.ndarray, y: np.ndarray, g, ell, ws: Workspace, grads: Params, k: int) -> float:
    """J, with dJ/dW_l written into ``grads``, from k blocks of rows (run by
    ``_threads.run_blocks``: at once where NumPy's BLAS can be held at one thread, else one
    after another): block 0 into ``grads``, the others into their own arrays, then
    grads[l] += each block's, in block order. A loss whose sum over the batch overflows the
    dtype is refused, as the reference (which sums it in the dtype) refuses it. Each block
    bounds its gradient (``network._product_bound``) and the total is judged by the sum of the
    bounds, which also covers every block's own (an inf or NaN in a block stays in the sum);
    where that sum is too large to vouch for it, the total is scanned with np.isfinite (no
    BLAS call outside the blocks)."""
    B, L = x.shape[0], len(params)
    edges = [B * i // k for i in range(k + 1)]
    outs, bounds = [grads, *ws.partial], [[math.inf] * L for _ in range(k)]
    errors, call = np.geterr(), np.geterrcall()        # per thread in NumPy: the caller's, in every block

    def block(i: int) -> float:
        with np.errstate(call=call, **errors), ws.blocks[i]._use(params, edges[i + 1] - edges[i], x.dtype):
            return _backprop(params, x, y, g, ell, ws.blocks[i], _storing(outs[i], bounds[i]),
                             slice(edges[i], edges[i + 1]))

    Js = _threads.run_blocks(block, k)
    if not np.isfinite(np.asarray([J * B for J in Js], x.dtype).sum()):   # the blocks' loss sums
        _checks.raise_not_finite("the loss", params, x)
    for l in range(1, L + 1):
        for partial in outs[1:]:
            grads[l - 1] += partial[l - 1]
        _check_bounded(sum(b[l - 1] for b in bounds), grads[l - 1], l)
    return sum(Js)


def _block_count(B: int, threads) -> int:
    """Blocks for a batch of B rows: ``threads`` (at most B), or by default min(NumPy's BLAS
    threads, B // SPLIT_ROWS), at least 1; 1 for a call made inside a block."""
    if _threads.in_block():
        return 1
    if threads is None:
        return 1 if B < 2 * SPLIT_ROWS else min(_threads.blas_threads(), B // SPLIT_ROWS)
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be a positive int or None; got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be at least 1; got {threads}")
    return min(int(threads), B)


# Wrapped here rather than decorated: mutmut mutates only undecorated functions (docs/mutation.md).
loss_and_grad = _checks.checks_overflow_itself(loss_and_grad)


def sgd_step(params: Params, x: np.ndarray, y: np.ndarray, lr: float, *, activation: str = "sigmoid",
             loss: str = "binary_cross_entropy", workspace: Workspace | None = None) -> tuple[float, Params]:
    """One step of gradient descent, ``W_l <- W_l - lr dJ/dW_l`` for every layer, in place.

    Returns ``(J, params)``: J before the step, and ``params`` itself, updated (the JAX
    backend returns new arrays; ``J, params = sgd_step(params, ...)`` reads the same for
    both). ``params`` must be writeable; any memory layout works, C-contiguous is fastest.

    Once W_l has served to compute delta_{l-1}, delta_l is scaled by -lr in place and added:
    W_l[0] += 1^T delta_l, W_l[1:] += a_{l-1}^T delta_l. At B = 1, for a C-contiguous aligned
    W_l, the second is a rank-1 update (BLAS ger, through SciPy) that reads and writes W_l
    once, where forming g and applying it cost three passes over W_l; otherwise one gemm of
    NumPy's BLAS adds the product into W_l (``_blas.add_a_T_delta``; where NumPy's BLAS is not
    its wheel's OpenBLAS, or a layout is not BLAS's, the product goes into one workspace array
    as large as the largest layer, then is added). A loss or z_l that is NaN or inf raises
    before any update (ValueError naming a NaN or inf input, else NonFiniteError). An update
    whose bound (``network._product_bound`` of a_{l-1} and lr delta_l) comes within a factor 4
    of the dtype's largest number is formed apart and applied only if finite; otherwise
    NonFiniteError says which layers above were already updated (the backward pass updates
    W_L first).
    """
    g, ell, x, y = _prepare(params, x, y, activation, loss, check_finite=False)
    for i, W in enumerate(params):
        if not W.flags.writeable:
            raise ValueError(f"sgd_step updates params in place: params[{i}] is read-only")
        if np.may_share_memory(W, x):
            raise ValueError(f"sgd_step updates params in place: params[{i}] overlaps x")
        if 0 in W.strides and any(s == 0 and n > 1 for s, n in zip(W.strides, W.shape)):   # entries tied within W
            raise ValueError(f"sgd_step updates params in place: params[{i}] has a zero stride (entries that are "
                             "one number: each update would overwrite the others)")
        for j in range(i):   # tied weights: W_l would change before delta_{l-1} is formed from it
            if np.may_share_memory(W, params[j]) and np.shares_memory(W, params[j]):
                raise ValueError(f"sgd_step updates params in place: params[{i}] shares memory with params[{j}] "
                                 "(tied weights: step a copy, or add the gradients of loss_and_grad yourself)")
    minus_lr = -_checks.check_lr(lr, x.dtype)
    ws = _workspace(workspace)
    B = x.shape[0]
    ger, scipy_on_one_thread = _scipy_ger(x.dtype) if B == 1 else (None, contextlib.nullcontext)

    def update(l: int, a: np.ndarray, delta: np.ndarray) -> None:
        W = params[l - 1]
        delta *= minus_lr                              # delta_l is not needed after this
        if not _product_bound(a, delta) < _checks.MAX[W.dtype] / 4:
            return _checked_update(W, a, delta, l)     # near the top of the range: look first
        W[0] += delta.sum(axis=0)
        if B == 1 and W.flags.c_contiguous and W.flags.aligned:
            # W_l[1:] seen in Fortran order is W^T (n_l, n_{l-1}); ger updates it in place
            ger(1.0, delta[0], a[0], a=W[1:].T, overwrite_a=True)
        elif not _blas.add_a_T_delta(W[1:], a, delta):   # one gemm of NumPy's BLAS, where it can
            W[1:] += _a_T_delta(a, delta, out=ws.scratch(W[1:].shape, W.dtype))

    def _checked_update(W: np.ndarray, a: np.ndarray, delta: np.ndarray, l: int) -> None:
        new = W + np.vstack([delta.sum(axis=0), a.T @ delta])
        if not np.isfinite(new).all():
            done = "no layer was updated" if l == len(params) else f"W_{l + 1}..W_{len(params)} were already updated"
            raise _checks.NonFiniteError(f"the update of W_{l} overflows {W.dtype}; {done}")
        W[...] = new

    with ws._use(params, B, x.dtype), scipy_on_one_thread():
        J = _backprop(params, x, y, g, ell, ws, update)
    return J, params


sgd_step = _checks.checks_overflow_itself(sgd_step)


@functools.cache
def _scipy_ger(dtype: np.dtype) -> tuple:
    """SciPy's BLAS ger for ``dtype``, and a context manager factory that holds the BLAS
    SciPy's wheels bundle apart from NumPy's at one thread (``_threads.on_one_thread``; a
    no-op when both share one library).

    Two OpenBLAS thread pools taking turns every few microseconds on few cores spin against
    each other (docs/performance.md), and the rank-1 update is memory-bound: it runs on the
    calling thread."""
    from scipy.linalg import blas
    from threadpoolctl import ThreadpoolController

    ger = blas.get_blas_funcs("ger", dtype=dtype)
    controller = ThreadpoolController().select(user_api="blas")
    scipys = [c.filepath for c in controller.lib_controllers if _threads.is_scipys_own(c.filepath)]
    return ger, functools.partial(_threads.on_one_thread, controller.select(filepath=scipys)) if scipys else contextlib.nullcontext
