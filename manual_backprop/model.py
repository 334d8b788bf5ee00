"""Networks as sequences of layers from ``manual_backprop.layers``, trained with the hand-derived
VJPs: backpropagation is the chain of ``name_vjp`` calls from the loss back to the input.

    >>> from manual_backprop.model import mnist_cnn
    >>> net = mnist_cnn()
    >>> params = net.init(seed=0)                       # one tuple of arrays per layer
    >>> J, grads = net.loss_and_grad(params, x, y)      # grads: the same structure as params
    >>> labels = net.predict(params, x)

A :class:`Sequential` is a list of :class:`Layer` specs (a layer's name in
``manual_backprop.layers``, its parameter shapes and options) and a loss from
``manual_backprop.losses``. With a_0 = x and layer l = 1..L (``layers[l - 1]``, its parameters
``params[l - 1]``, as W_l in ``network``) computing a_l = f_l(a_{l-1}, *p_l):

    forward    z = a_L (the logits),   J = 1/B sum_b l(z[b], y[b])
    backward   da_L = (dl/dz) / B,   (da_{l-1}, *dp_l) = f_l_vjp(da_l, a_{l-1}, *p_l)   l = L..1

The JAX twin with the same specs and API is ``autodiff_check.sequential``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import _checks, layers
from .losses import get_loss

Params = list[tuple[np.ndarray, ...]]


@dataclass(frozen=True)
class Layer:
    """A layer of a :class:`Sequential`: ``name`` (a pair in manual_backprop.layers), the shapes
    of its parameters, its keyword options, and each parameter's init (``"he"``: normal with
    std sqrt(2 / fan_in); ``"zeros"``; ``"dense"``: He for W[1:] and a zero bias row).
    Shapes and inits are checked here (one init per shape, every size a positive int); the name
    by :class:`Sequential`."""

    name: str
    shapes: tuple[tuple[int, ...], ...] = ()
    options: dict = field(default_factory=dict)
    inits: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        what = f"Layer {self.name!r}"
        if not isinstance(self.shapes, (tuple, list)) or not all(isinstance(s, (tuple, list)) for s in self.shapes):
            raise TypeError(f"{what}: shapes must be a tuple of shape tuples, one per parameter; got {self.shapes!r}")
        for s in self.shapes:
            for n in s:
                _positive_int(what, "every size in shapes", n)
        if not isinstance(self.inits, (tuple, list)) or len(self.inits) != len(self.shapes):
            raise ValueError(f"{what}: inits must name one init per shape ({len(self.shapes)}); got {self.inits!r}")
        for kind, s in zip(self.inits, self.shapes):
            if kind not in INITS:
                raise ValueError(f"{what}: unknown init {kind!r}; supported: {', '.join(INITS)}")
            if kind == "dense" and (len(s) != 2 or s[0] < 2):
                raise ValueError(f"{what}: the 'dense' init needs a shape (n_in + 1, n_out) with n_in >= 1; got {tuple(s)}")
        if not isinstance(self.options, dict):
            raise TypeError(f"{what}: options must be a dict of keyword arguments; got {self.options!r}")
        object.__setattr__(self, "shapes", tuple(tuple(int(n) for n in s) for s in self.shapes))
        object.__setattr__(self, "inits", tuple(self.inits))


INITS = ("he", "zeros", "dense")


def _positive_int(where: str, name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{where}: {name} must be a positive int; got {v!r}")
    return int(v)


def Dense(n_in: int, n_out: int) -> Layer:
    """y = x W[1:] + W[0], W (n_in + 1, n_out)."""
    n_in, n_out = _positive_int("Dense", "n_in", n_in), _positive_int("Dense", "n_out", n_out)
    return Layer("dense", ((n_in + 1, n_out),), {}, ("dense",))


def Conv2d(c_in: int, c_out: int, kernel: int | tuple[int, int], *, stride=1, padding=0) -> Layer:
    """Cross-correlation with W (c_out, c_in, kh, kw) and b (c_out,)."""
    c_in, c_out = _positive_int("Conv2d", "c_in", c_in), _positive_int("Conv2d", "c_out", c_out)
    pair = kernel if isinstance(kernel, (tuple, list)) else (kernel, kernel)
    if len(pair) != 2:
        raise ValueError(f"Conv2d: kernel must be an int or a pair of ints (kh, kw); got {kernel!r}")
    kh, kw = (_positive_int("Conv2d", "kernel", k) for k in pair)
    return Layer("conv2d", ((c_out, c_in, kh, kw), (c_out,)), {"stride": stride, "padding": padding}, ("he", "zeros"))


def MaxPool2d(size=2, stride=None) -> Layer:
    return Layer("max_pool2d", options={"size": size, "stride": stride})


def AvgPool2d(size=2, stride=None) -> Layer:
    return Layer("avg_pool2d", options={"size": size, "stride": stride})


def ReLU() -> Layer:
    return Layer("relu")


def Sigmoid() -> Layer:
    return Layer("sigmoid")


def Reshape(*shape: int) -> Layer:
    """Each example reshaped to ``shape`` (one -1 allowed)."""
    return Layer("reshape", options={"shape": tuple(shape)})


def Flatten() -> Layer:
    return Reshape(-1)


def _init(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if kind == "zeros":
        return np.zeros(shape)
    if kind == "dense":
        W = rng.standard_normal(shape) * np.sqrt(2 / (shape[0] - 1))
        W[0] = 0
        return W
    fan_in = int(np.prod(shape[1:]))
    return rng.standard_normal(shape) * np.sqrt(2 / fan_in)


class Sequential:
    """A network: ``layers`` applied in order, then ``loss`` (a name from manual_backprop.losses)
    on the last layer's output (the logits, (B, n_out))."""

    def __init__(self, layers_: Sequence[Layer], *, loss: str = "softmax_cross_entropy") -> None:
        for i, layer in enumerate(layers_):
            if not (isinstance(layer, Layer) and isinstance(layer.name, str) and layer.name in layers.__all__
                    and layer.name + "_vjp" in layers.__all__):   # a pair; not a helper or an import of the module
                raise ValueError(f"layers[{i}] must be a Layer naming a pair in manual_backprop.layers; got {layer!r}")
        self.layers = tuple(layers_)
        self.loss_name = loss
        self._loss = get_loss(loss)

    def __repr__(self) -> str:
        return f"Sequential([{', '.join(l.name for l in self.layers)}], loss={self.loss_name!r})"

    def init(self, seed: int = 0, *, dtype=np.float64) -> Params:
        """One tuple of parameters per layer (empty for layers without), drawn in float64 from
        ``np.random.default_rng(seed)`` and then cast, so float32 and float64 start alike."""
        dt = _checks.check_dtype(dtype)
        rng = np.random.default_rng(_checks.check_seed(seed))
        return [tuple(_init(k, s, rng).astype(dt) for k, s in zip(l.inits, l.shapes)) for l in self.layers]

    def check_params(self, params) -> None:
        """Refuse params not shaped for this network (ValueError) or not floats (TypeError),
        naming the layer."""
        self._check_params(params)

    def _check_params(self, params) -> None:
        if not isinstance(params, Sequence) or len(params) != len(self.layers):
            raise ValueError(f"params must be a list of {len(self.layers)} tuples, one per layer")
        for i, (p, layer) in enumerate(zip(params, self.layers)):
            shapes = tuple(np.shape(a) for a in p) if isinstance(p, (tuple, list)) else None
            if shapes != layer.shapes:
                raise ValueError(f"params[{i}] ({layer.name}) must hold arrays of shapes {layer.shapes}; got {shapes}")
            for j, a in enumerate(p):   # trained: each gets a gradient (a boolean mask would get None)
                _checks.refuse_masked(f"params[{i}][{j}]", a)
                if np.asarray(a).dtype.kind != "f":
                    raise TypeError(f"params[{i}][{j}] ({layer.name}) must be a float array (parameters are "
                                    f"trained); got dtype {np.asarray(a).dtype}")

    def _check_finite(self, params: Params, x) -> None:
        """No NaN or inf in x or params (a ValueError naming the array and the first bad index), as
        the network's paths."""
        _checks.refuse_masked("x", x)   # before np.asarray reads the values under its mask
        for name, a in [("x", x)] + [(f"params[{i}][{j}]", w) for i, p in enumerate(params) for j, w in enumerate(p)]:
            try:
                a = np.asarray(a)              # a list too: its NaN is the caller's, not an overflow
            except (ValueError, TypeError):    # ragged: the layer names it
                continue
            if a.dtype.kind in "fc" and not _checks.all_finite(a):   # (other types: the layers name them)
                raise _checks.nonfinite_error(name, a)

    def forward(self, params: Params, x: np.ndarray) -> np.ndarray:
        """The logits a_L, (B, n_out)."""
        return self._forward(params, x, check=True)

    def _forward(self, params: Params, x: np.ndarray, *, check: bool, inputs: list | None = None) -> np.ndarray:
        """The logits, appending each layer's input a_l to ``inputs`` if given; with
        ``check=False`` every argument check of the layers and none of their results' (the JAX
        twin runs it on one example for the layers' messages, then judges the whole batch's
        overflows itself)."""
        self._check_params(params)
        self._check_finite(params, x)
        a = x
        for l in range(1, len(self.layers) + 1):
            if inputs is not None:
                inputs.append(a)
            a = self._apply(l, params, a, check=check)
        return a

    def _apply(self, l: int, params: Params, a: np.ndarray, *, check: bool) -> np.ndarray:
        """a_l = f_l(a_{l-1}, *p_l), layer l = ``layers[l - 1]``; NaN or inf in it is an overflow
        (as in the flat network's z_l: a saturating layer after it would hide it from the loss)."""
        layer = self.layers[l - 1]
        try:
            out = getattr(layers, layer.name)(a, *params[l - 1], **layer.options)
        except (TypeError, ValueError) as e:
            raise self._at_layer(l, e).with_traceback(e.__traceback__) from None   # where the layer raised it
        return self._finite(self._output_name(l), out) if check else out

    def _at_layer(self, l: int, e: TypeError | ValueError) -> TypeError | ValueError:
        """Layer l's refusal ``e`` with which layer it is: 'layer 3 of 4: dense: ...' (both Sequentials)."""
        return (TypeError if isinstance(e, TypeError) else ValueError)(f"layer {l} of {len(self.layers)}: {e}")

    def _output_name(self, l: int) -> str:
        """How an overflow names the outputs a_l of layer l = ``layers[l - 1]`` (both Sequentials)."""
        return "the logits" if l == len(self.layers) else f"the outputs of layer {l} ({self.layers[l - 1].name})"

    @staticmethod
    def _finite(what: str, a: np.ndarray) -> np.ndarray:
        """``a``, or NonFiniteError: with x and params finite (checked first), a NaN or inf is an
        overflow."""
        if not _checks.all_finite(a):
            Sequential._overflow(what)
        return a

    @staticmethod
    def _overflow(what: str) -> None:
        raise _checks.NonFiniteError(f"{what} are NaN or inf although x and params are finite: an overflow "
                                     "(inputs or weights too large)")

    def _targets(self, z: np.ndarray, y) -> np.ndarray:
        if y is None:
            raise TypeError("y is None; expected targets of shape (batch, n_out)")
        if z.ndim != 2:
            raise ValueError(f"the loss needs logits of shape (batch, n_out); the last layer's outputs have "
                             f"shape {z.shape} (end the model with Flatten() and a Dense layer)")
        _checks.refuse_masked("y", y)
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"y must be a real numeric array; got dtype {y.dtype}")
        if not np.isfinite(y).all():
            raise _checks.nonfinite_error("y", y)
        if y.shape != z.shape:
            raise ValueError(f"y must have shape (batch, n_out) = {z.shape}; got {y.shape}")
        y = y.astype(z.dtype, copy=False)
        self._loss.check_targets(y)
        return y

    def loss(self, params: Params, x: np.ndarray, y: np.ndarray) -> float:
        """J = 1/B sum_b l(z[b], y[b])."""
        z = self.forward(params, x)
        return self._finite_loss(float(self._loss.value(z, self._targets(z, y)).sum()) / z.shape[0])

    @staticmethod
    def _finite_loss(J: float) -> float:
        if not math.isfinite(J):
            raise _checks.NonFiniteError("the loss is NaN or inf although x and params are finite: an overflow "
                                         "(inputs, targets or weights too large)")
        return J

    def loss_and_grad(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        """``(J, grads)``, grads[l] a tuple shaped like params[l] (module docstring)."""
        inputs: list[np.ndarray] = []
        a = self._forward(params, x, check=True, inputs=inputs)
        y = self._targets(a, y)
        B = a.shape[0]
        J = self._finite_loss(float(self._loss.value(a, y).sum()) / B)
        d = self._loss.delta(a, y)
        d *= 1 / B
        grads: Params = [()] * len(self.layers)
        for l in range(len(self.layers), 0, -1):                 # layer l = layers[l - 1], input a_{l-1}
            layer = self.layers[l - 1]
            d, *dp = getattr(layers, layer.name + "_vjp")(d, inputs[l - 1], *params[l - 1], **layer.options)
            grads[l - 1] = tuple(self._finite(f"the gradients of layer {l} ({layer.name})", g) for g in dp)
        return J, grads

    def predict(self, params: Params, x: np.ndarray) -> np.ndarray:
        """Predicted classes: argmax of the logits."""
        return np.argmax(self.forward(params, x), axis=1)


# Wrapped, not decorated (mutmut mutates only undecorated functions): each checks its own results.
Sequential.forward = _checks.checks_overflow_itself(Sequential.forward)
Sequential.loss = _checks.checks_overflow_itself(Sequential.loss)
Sequential.loss_and_grad = _checks.checks_overflow_itself(Sequential.loss_and_grad)
Sequential._forward = _checks.checks_overflow_itself(Sequential._forward)


def mlp(layer_sizes: Sequence[int], *, loss: str = "binary_cross_entropy") -> Sequential:
    """The post's network as layers: Dense, Sigmoid, ..., Dense (sigmoid hidden units)."""
    sizes = _checks.check_layer_sizes(layer_sizes)
    out: list[Layer] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        out += [Dense(n_in, n_out), Sigmoid()]
    return Sequential(out[:-1], loss=loss)


#: The CNN's input: one 28 x 28 channel (MNIST), as (B, 784) rows or (B, 1, 28, 28).
CNN_INPUT = (1, 28, 28)


def mnist_cnn(*, channels: tuple[int, int] = (8, 16), hidden_sizes: Sequence[int] = (128,), n_classes: int = 10) -> Sequential:
    """A small LeNet-style CNN for MNIST, inputs (B, 784) or (B, 1, 28, 28), softmax cross-entropy;
    with ``channels`` = (c1, c2), by default (8, 16):

        (1, 28, 28) -conv 5x5, c1-> (c1, 24, 24) -relu, max 2x2-> (c1, 12, 12)
                    -conv 5x5, c2-> (c2, 8, 8) -relu, max 2x2-> (c2, 4, 4) -flatten-> 16 c2
                    -dense-> 128 -relu-> ... -dense-> n_classes

    ``hidden_sizes``: the widths of the dense hidden layers after the convolutions (relu each).
    """
    c1, c2 = _checks.check_layer_sizes(list(channels))
    sizes = _checks.check_layer_sizes([16 * c2, *hidden_sizes, n_classes])
    dense: list[Layer] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        dense += [Dense(n_in, n_out), ReLU()]
    return Sequential([
        Reshape(*CNN_INPUT),
        Conv2d(1, c1, 5), ReLU(), MaxPool2d(2),
        Conv2d(c1, c2, 5), ReLU(), MaxPool2d(2),
        Flatten(), *dense[:-1],
    ], loss="softmax_cross_entropy")
