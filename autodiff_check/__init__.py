"""The oracles: the same loss in JAX, finite differences, the complex step, and the tools that
say where two gradients disagree.

    >>> import autodiff_check as ac
    >>> J, grads = ac.loss_and_grad(params, x, y)          # same API as manual_backprop
    >>> print(ac.check_network(params, x, y))             # every oracle, localised verdict
    >>> ac.assert_vjp(layer, layer_backward, x, W, b)     # your own layer's backward pass

Finite differences, the complex step, ``compare`` and ``check_gradients`` need only NumPy; the
JAX twin (``loss``, ``loss_and_grad``, ...) is imported on first use. Importing it, or a check
given ``jax_fn=``, turns on JAX's float64 for the process (``jax.config.update("jax_enable_x64",
True)``); arrays keep their own dtype, so float32 work stays float32.
"""

from importlib import import_module

from .check import (
    EXACT_RTOL,
    activation_pattern,
    assert_gradients,
    assert_hvp,
    assert_jvp,
    assert_vjp,
    check_gradients,
    check_hvp,
    check_jvp,
    check_network,
    check_vjp,
    exact_atol,
)
from .compare import Comparison, Entry, LayerError, compare
from .error_bounds import RoundingBound, logits_bound, rounding_bound, unit_roundoff
from .oracles import (
    complex_step_directional,
    complex_step_grad,
    directional_fd,
    numerical_grad,
    numerical_grad_with_error,
    random_direction,
)
from .verdict import Mismatch, OracleResult, Verdict

_JAX_NAMES = {
    "ACTIVATIONS", "LOSSES", "accuracy", "add_bias", "directional_derivative", "forward",
    "init_params", "loss", "loss_and_grad", "loss_fn", "one_hot", "predict", "sgd_step",
}


_JAX_MODULES = {"layers", "sequential", "model"}  # JAX twins of manual_backprop.layers / .model / .network


def __getattr__(name: str):
    if name in _JAX_MODULES:
        try:
            return import_module(f".{name}", __name__)
        except ImportError as e:
            raise ImportError(
                f"autodiff_check.{name} needs JAX ({e}); install it with: pip install 'manual-backprop[jax]'"
            ) from e
    if name in _JAX_NAMES:
        try:
            model = import_module(".model", __name__)
        except ImportError as e:
            raise ImportError(
                f"autodiff_check.{name} needs JAX ({e}); install it with: pip install 'manual-backprop[jax]'"
            ) from e
        return getattr(model, name)
    raise AttributeError(f"module 'autodiff_check' has no attribute {name!r}")


__all__ = [   # a literal list, so that linters see the imports above as the public API
    "EXACT_RTOL", "Comparison", "Entry", "LayerError", "Mismatch", "OracleResult", "RoundingBound", "Verdict",
    "activation_pattern", "assert_gradients", "assert_hvp", "assert_jvp", "assert_vjp", "check_gradients",
    "check_hvp", "check_jvp", "check_network", "check_vjp", "compare", "complex_step_directional",
    "complex_step_grad", "directional_fd", "exact_atol", "logits_bound", "numerical_grad",
    "numerical_grad_with_error", "random_direction", "rounding_bound", "unit_roundoff",
]
__all__ += sorted(_JAX_NAMES)
