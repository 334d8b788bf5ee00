"""The oracles: the same loss in JAX, finite differences, the complex step, and the tools that
say where two gradients disagree.

    >>> import autodiff_check as ac
    >>> J, grads = ac.loss_and_grad(params, x, y)          # same API as manual_backprop
    >>> print(ac.check_network(params, x, y))             # every oracle, localised verdict

Importing this package turns on JAX's float64 (``jax.config.update("jax_enable_x64", True)``);
arrays keep their own dtype, so float32 work stays float32.
"""

from .check import EXACT_RTOL, exact_atol, OracleResult, Verdict, activation_pattern, check_gradients, check_network
from .compare import Comparison, Entry, LayerError, compare
from .model import (
    ACTIVATIONS,
    LOSSES,
    accuracy,
    add_bias,
    forward,
    init_params,
    loss,
    loss_and_grad,
    one_hot,
    predict,
)
from .oracles import (
    complex_step_directional,
    complex_step_grad,
    directional_fd,
    numerical_grad,
    numerical_grad_with_error,
    random_direction,
)

__all__ = [
    "ACTIVATIONS", "LOSSES", "EXACT_RTOL", "exact_atol", "Comparison", "Entry", "LayerError", "OracleResult",
    "Verdict", "accuracy", "activation_pattern", "add_bias", "check_gradients", "check_network",
    "compare", "complex_step_directional", "complex_step_grad", "directional_fd", "forward",
    "init_params", "loss", "loss_and_grad", "numerical_grad", "numerical_grad_with_error",
    "one_hot", "predict", "random_direction",
]
