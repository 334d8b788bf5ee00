"""The JAX twin of ``manual_backprop.model``: the same :class:`Layer` specs run through the JAX
layers of ``autodiff_check.layers``, differentiated by ``jax.value_and_grad`` under ``jax.jit``.

    >>> from autodiff_check.sequential import mnist_cnn
    >>> net = mnist_cnn()                                # same architecture, same init(seed)
    >>> J, grads = net.loss_and_grad(params, x, y)      # NumPy arrays, same structure as params

Shared with manual_backprop: the architecture (the specs and ``init``; parameters are data, not
derivation) and its argument checks (``layers_np._array``, ``_embedding_args`` and the
``Sequential`` checks of overflow and finiteness), so that both backends refuse the same input
with the same words; no derivative. The losses are ``autodiff_check.model``'s JAX losses (``jax.nn``).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from manual_backprop import _checks
from manual_backprop import layers as layers_np
from manual_backprop import model as _mb_model
from manual_backprop.model import Layer
from manual_backprop.model import Sequential as _Spec

from .layers import FORWARD
from .model import LOSSES

Params = list[tuple[np.ndarray, ...]]


class Sequential:
    """``layers`` then ``loss``, as manual_backprop.model.Sequential, in JAX."""

    def __init__(self, layers: Sequence[Layer], *, loss: str = "softmax_cross_entropy") -> None:
        self._spec = _mb_model.Sequential(layers, loss=loss)   # validation and init are shared
        self.layers, self.loss_name = self._spec.layers, loss
        lossfn = LOSSES[loss]

        def logits_and_finite(params, x):
            """The logits, and for each layer whether its outputs are finite."""
            a, finite = x, []
            for layer, p in zip(self.layers, params):
                a = FORWARD[layer.name](a, *p, **layer.options)
                finite.append(jnp.all(jnp.isfinite(a)))
            return a, jnp.array(finite, dtype=bool)       # () for no layers

        def logits(params, x):
            return logits_and_finite(params, x)[0]

        def loss_fn(params, x, y):
            return jnp.mean(lossfn(logits(params, x), y))

        def loss_and_finite(params, x, y):
            a, finite = logits_and_finite(params, x)
            return jnp.mean(lossfn(a, y)), finite

        self.loss_fn, self.logits_fn = loss_fn, logits
        self._value_and_grad = jax.jit(jax.value_and_grad(loss_and_finite, has_aux=True))
        self._logits = jax.jit(logits_and_finite)
        self._loss = jax.jit(loss_and_finite)

    def __repr__(self) -> str:
        return f"autodiff_check.sequential.{self._spec!r}"

    def init(self, seed: int = 0, *, dtype=np.float64) -> Params:
        """The same parameters as manual_backprop.model.Sequential.init(seed, dtype=dtype)."""
        return self._spec.init(seed, dtype=dtype)

    def check_params(self, params) -> None:
        """Refuse params not shaped for this network (ValueError) or not floats (TypeError),
        naming the layer."""
        self._spec.check_params(params)

    def _validate(self, params: Params, x, y=_checks.NO_TARGETS):
        """Refuse what manual_backprop.model.Sequential refuses, with its messages, before JAX
        traces anything: the NumPy network runs one example (shapes, dtypes, params), then x
        and y are checked whole (integer x, ids, by the first layer). Returns (x, y) as arrays.

        Where the one example is refused, the NumPy network runs the whole x instead (one
        NumPy forward, up to the refusing layer, on that path only): a layer whose parameters
        carry the batch (an rnn's h0, attention's k and v) accepts it, and any other refusal
        names x's own shape, not x[:1]'s; should that run not fit in memory, the one example's
        refusal is raised. A refusal that depends on values, not shapes (a layer's sum that
        overflows, as layer_norm's for |x| ~ 1e200), is judged on x[:1] run as a batch of one:
        another example that the NumPy network would refuse gets the JAX layers' result
        (layer_norm's, scaled by the group's largest deviation, is finite and right there), and
        for batch_norm, and the layers after it, a batch of one is not example 0 in the batch
        (a 2-D batch_norm's overflow is never refused here)."""
        if np.ndim(x) == 0:
            raise TypeError(f"x must be an array of examples; got {type(x).__name__}")
        x = layers_np._array("Sequential", "x", x)
        refused = None
        try:
            z1 = self._spec._forward(params, x[:1], check=False)
        except (TypeError, ValueError) as e:
            refused = e
        if refused is not None:           # outside the handler: one traceback, not two
            try:
                z1 = self._spec._forward(params, x, check=False)
            except MemoryError:
                raise refused from None
        self._spec._check_finite(params, x)
        if x.dtype.kind in "iu" and self.layers and self.layers[0].name == "embedding":
            try:                          # every example's ids (JAX would clamp), named as layer 1
                layers_np._embedding_args("embedding", x, *params[0])
            except (TypeError, ValueError) as e:
                raise self._spec._at_layer(1, e) from None
        if y is not _checks.NO_TARGETS:
            y = self._spec._targets(np.empty((x.shape[0], *z1.shape[1:]), z1.dtype), y)
        return x, y

    def _check_outputs(self, finite) -> None:
        """NonFiniteError, as manual_backprop's Sequential, for the first layer whose outputs
        are NaN or inf (``finite``: one boolean per layer)."""
        bad = np.flatnonzero(~np.asarray(finite))
        if bad.size:
            _Spec._overflow(self._spec._output_name(int(bad[0]) + 1))

    def forward(self, params: Params, x) -> np.ndarray:
        x, _ = self._validate(params, x)
        a, finite = self._logits(params, x)
        self._check_outputs(finite)
        return np.asarray(a)

    def loss(self, params: Params, x, y) -> float:
        x, y = self._validate(params, x, y)
        J, finite = self._loss(params, x, y)
        self._check_outputs(finite)
        return _Spec._finite_loss(float(J))

    def loss_and_grad(self, params: Params, x, y) -> tuple[float, Params]:
        """``(J, grads)`` by jit(value_and_grad); grads as NumPy arrays, structured like params.
        Inputs are refused and overflows raised as by manual_backprop.model.Sequential."""
        x, y = self._validate(params, x, y)
        (J, finite), grads = self._value_and_grad(params, x, y)
        self._check_outputs(finite)
        grads = [tuple(_Spec._finite(f"the gradients of layer {l} ({self.layers[l - 1].name})", np.asarray(g)) for g in gl)
                 for l, gl in enumerate(grads, start=1)]
        return _Spec._finite_loss(float(J)), grads

    def predict(self, params: Params, x) -> np.ndarray:
        return np.argmax(self.forward(params, x), axis=1)


def mlp(layer_sizes: Sequence[int], *, loss: str = "binary_cross_entropy") -> Sequential:
    """The post's network: Dense, Sigmoid, ..., Dense."""
    spec = _mb_model.mlp(layer_sizes, loss=loss)
    return Sequential(spec.layers, loss=loss)


def mnist_cnn(**options) -> Sequential:
    """The CNN of manual_backprop.model.mnist_cnn (same keyword options and defaults), in JAX."""
    spec = _mb_model.mnist_cnn(**options)
    return Sequential(spec.layers, loss=spec.loss_name)
