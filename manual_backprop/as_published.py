"""The post's backward pass as published: KNOWN TO BE WRONG. A negative control only.

Kept so that the test suite and ``python -m autodiff_check --backward as_published`` can show
that the checks catch a wrong derivation. Do not train with it except to reproduce the post.

Reconstructed from the measured account in DESIGN.md ("The post's derivation, as published,
is wrong"); its two mistakes, in the notation of ``manual_backprop.network``:

1. The loop walks the weights backwards (W_L, W_{L-1}, ...) but takes the derivative
   factors g'(z) in forward order: the error term of hidden layer L-j is formed with
   g'(z_j) instead of g'(z_{L-j}). Unless the hidden sizes read the same backwards (equal
   sizes, as the post's 500, 500, or e.g. 3, 5, 3) the product cannot broadcast and NumPy
   raises; with equal hidden sizes nothing complains.
2. The gradient multiplies each error term by the layer's pre-activations: it uses
   add_bias(z_{l-1})^T delta_l where the layer's input add_bias(g(z_{l-1})) belongs
   (the first layer's input is x, which is right).

It returns gradients in our layout (same shapes as ``params``); the post returns them
transposed.
"""

from __future__ import annotations

import numpy as np

from .network import Params, _prepare, add_bias


def loss_and_grad(
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    *,
    activation: str = "sigmoid",
    loss: str = "binary_cross_entropy",
    check_finite: bool = True,
) -> tuple[float, Params]:
    """``(J, grads)`` with the post's wrong gradient; ``J`` itself is the correct mean loss."""
    act, lossfn, x, y = _prepare(params, x, y, activation, loss, check_finite=check_finite)
    L = len(params)

    # Forward as in the post: layer_inputs keeps x and then the pre-activations z_l.
    layer_inputs, zs, a = [x], [], x
    for W in params:
        z = add_bias(a) @ W
        zs.append(z)
        a = act.fn(z)
        layer_inputs.append(z)  # mistake 2: z_l stored where a_l = g(z_l) belongs
    z_L = zs[-1]
    J = float(np.mean(lossfn.value(z_L, y)))

    deltas = [lossfn.delta(z_L, y)]
    for j, i in enumerate(range(L - 1, 0, -1)):  # weights walked backwards: W_L, ..., W_2
        z_paired = zs[j]  # mistake 1: forward order, z_1, z_2, ... (should be zs[i - 1])
        deltas.append((deltas[-1] @ params[i][1:].T) * act.grad(z_paired, act.fn(z_paired)))
    deltas.reverse()  # now delta_1 .. delta_L

    B = len(y)
    grads = [add_bias(layer_inputs[l]).T @ deltas[l] / B for l in range(L)]
    return J, [g.astype(W.dtype, copy=False) for g, W in zip(grads, params)]
