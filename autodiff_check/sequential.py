"""The JAX twin of ``manual_backprop.model``: the same :class:`Layer` specs run through the JAX
layers of ``autodiff_check.layers``, differentiated by ``jax.value_and_grad`` under ``jax.jit``.

    >>> from autodiff_check.sequential import mnist_cnn
    >>> net = mnist_cnn()                                # same architecture, same init(seed)
    >>> J, grads = net.loss_and_grad(params, x, y)      # NumPy arrays, same structure as params

Only the architecture (the specs and ``init``) is shared with manual_backprop: parameters are
data, not derivation. The losses are ``autodiff_check.model``'s JAX losses (``jax.nn``).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from manual_backprop import model as _mb_model
from manual_backprop.model import Layer

from .layers import FORWARD
from .model import LOSSES

Params = list[tuple[np.ndarray, ...]]


class Sequential:
    """``layers`` then ``loss``, as manual_backprop.model.Sequential, in JAX."""

    def __init__(self, layers: Sequence[Layer], *, loss: str = "softmax_cross_entropy") -> None:
        self._spec = _mb_model.Sequential(layers, loss=loss)   # validation and init are shared
        self.layers, self.loss_name = self._spec.layers, loss
        lossfn = LOSSES[loss]

        def logits(params, x):
            a = x
            for layer, p in zip(self.layers, params):
                a = FORWARD[layer.name](a, *p, **layer.options)
            return a

        def loss_fn(params, x, y):
            return jnp.mean(lossfn(logits(params, x), y))

        self.loss_fn, self.logits_fn = loss_fn, logits
        self._value_and_grad = jax.jit(jax.value_and_grad(loss_fn))
        self._logits = jax.jit(logits)
        self._loss = jax.jit(loss_fn)

    def __repr__(self) -> str:
        return f"autodiff_check.sequential.{self._spec!r}"

    def init(self, seed: int = 0, *, dtype=np.float64) -> Params:
        """The same parameters as manual_backprop.model.Sequential.init(seed, dtype=dtype)."""
        return self._spec.init(seed, dtype=dtype)

    def forward(self, params: Params, x) -> np.ndarray:
        self._spec._check_params(params)
        return np.asarray(self._logits(params, x))

    def loss(self, params: Params, x, y) -> float:
        self._spec._check_params(params)
        return float(self._loss(params, x, y))

    def loss_and_grad(self, params: Params, x, y) -> tuple[float, Params]:
        """``(J, grads)`` by jit(value_and_grad); grads as NumPy arrays, structured like params."""
        self._spec._check_params(params)
        J, grads = self._value_and_grad(params, x, y)
        return float(J), [tuple(np.asarray(g) for g in gl) for gl in grads]

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
