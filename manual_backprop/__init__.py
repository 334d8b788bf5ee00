"""A fully connected network and its gradient, derived by hand in NumPy.

    >>> import manual_backprop as mb
    >>> params = mb.init_params([784, 500, 500, 10], seed=0)
    >>> J, grads = mb.loss_and_grad(params, x, mb.one_hot(labels, 10))
    >>> J, params = mb.sgd_step(params, x, mb.one_hot(labels, 10), lr=0.1)   # W -= lr dJ/dW, in place

The post's network is the default: sigmoid hidden layers and ``binary_cross_entropy``
(sigmoid outputs, output error ``predictions - y``). ``manual_backprop.as_published`` holds the
post's own, wrong, backward pass as a negative control. ``load_mnist`` reads the copy of MNIST
shipped in ``manual_backprop/mnist``; ``train`` runs SGD with momentum on it. This package needs
NumPy, and SciPy's BLAS wrappers for ``sgd_step`` (tqdm, threadpoolctl and matplotlib are used
when present).
"""

from .activations import ACTIVATIONS
from .losses import LOSSES
from .network import (
    Params,
    Workspace,
    accuracy,
    add_bias,
    forward,
    init_params,
    loss,
    loss_and_grad,
    one_hot,
    predict,
    sgd_step,
)

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "Params",
    "Workspace",
    "accuracy",
    "add_bias",
    "forward",
    "init_params",
    "loss",
    "loss_and_grad",
    "one_hot",
    "predict",
    "sgd_step",
]
