"""Backpropagation for a fully connected network, derived by hand in NumPy.

    >>> import manual_backprop as mb
    >>> params = mb.init_params([784, 500, 500, 10], seed=0)
    >>> J, grads = mb.loss_and_grad(params, x, mb.one_hot(labels, 10))       # the reference
    >>> J, params = mb.sgd_step(params, x, mb.one_hot(labels, 10), lr=0.1)   # W -= lr dJ/dW, in place

The post's network is the default: sigmoid hidden layers and ``binary_cross_entropy``
(sigmoid outputs, output error ``predictions - y``). ``network`` is the reference derivation,
``fast`` the same numbers from reused buffers (``Workspace``, ``out=``, ``sgd_step``; large
batches split over threads), ``as_published`` the post's own, wrong, backward pass (a
negative control), ``activations`` and ``losses`` the pieces with their derivatives. This
package is the bottom layer: it needs NumPy (threadpoolctl for the fast path's threads,
SciPy's BLAS for ``sgd_step`` at batch 1) and never imports its checker or the application
(data, checkpoints, training: ``manual_backprop.app``).
"""

from . import as_published, fast, layers, model
from ._checks import NonFiniteError
from .activations import ACTIVATIONS
from .fast import Workspace, sgd_step
from .losses import LOSSES
from .network import Params, accuracy, add_bias, forward, init_params, loss, loss_and_grad, one_hot, predict

__all__ = [
    "ACTIVATIONS", "LOSSES", "NonFiniteError", "Params", "Workspace", "accuracy", "add_bias", "as_published", "fast",
    "layers", "model",
    "forward", "init_params", "loss", "loss_and_grad", "one_hot", "predict", "sgd_step",
]
