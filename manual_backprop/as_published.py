"""The post's backward pass as published: KNOWN TO BE WRONG. A negative control only.

Kept so that the test suite and ``python -m autodiff_check --backward as_published`` can show
that the checks catch a wrong derivation. Do not train with it except to reproduce the post.

It is :func:`manual_backprop.network.loss_and_grad` with the post's two mistakes, each marked
MISTAKE below (notation and indices of ``manual_backprop.network``):

1. The loop walks the weights backwards (W_L, W_{L-1}, ..., W_2) but takes the derivative
   factors in forward order: delta_{l-1} is formed with g'(z_{L-l+1}) where g'(z_{l-1})
   belongs. Unless the hidden sizes read the same backwards (the post's 500, 500, or 3, 5, 3)
   the shapes cannot fit; with such sizes nothing complains.
2. The layer inputs are kept as the pre-activations: dJ/dW_l[1:] = z_{l-1}^T delta_l where
   a_{l-1}^T delta_l = g(z_{l-1})^T delta_l belongs (the first layer's input is x: right).

Gradients come in our layout (shapes of ``params``); the post returns them transposed.
"""

from __future__ import annotations

import numpy as np

from .network import Params, _prepare


def loss_and_grad(params: Params, x: np.ndarray, y: np.ndarray, *, activation: str = "sigmoid",
                  loss: str = "binary_cross_entropy") -> tuple[float, Params]:
    """``(J, grads)`` with the post's wrong gradient; ``J`` itself is the correct mean loss.

    ValueError when the hidden sizes do not read the same backwards (mistake 1 cannot even
    be computed then)."""
    g, ell, x, y = _prepare(params, x, y, activation, loss)
    L, B = len(params), x.shape[0]
    hidden = [W.shape[1] for W in params[:-1]]
    if hidden != hidden[::-1]:
        raise ValueError(
            f"the post's backward pairs hidden layer l with layer L - l, so its shapes fit only "
            f"when the hidden sizes read the same backwards; got {hidden}"
        )

    a, z, inputs = [x], [None], [x]
    for l in range(1, L + 1):
        W = params[l - 1]
        z.append(a[l - 1] @ W[1:] + W[0])
        a.append(g.fn(z[l]))
        inputs.append(z[l])                              # MISTAKE 2: z_l kept where a_l belongs
    J = float(np.sum(ell.value(z[L], y))) / B

    grads, delta = [None] * L, ell.delta(z[L], y) / B
    for l in range(L, 0, -1):
        W = params[l - 1]
        dW = grads[l - 1] = np.empty(W.shape, W.dtype)
        dW[0] = delta.sum(axis=0)
        dW[1:] = inputs[l - 1].T @ delta                 # MISTAKE 2: z_{l-1}^T delta_l for l > 1
        if l > 1:
            k = L - l + 1                                # MISTAKE 1: forward order; k = l - 1 is right
            delta = (delta @ W[1:].T) * g.grad(z[k], a[k])
    return J, grads
