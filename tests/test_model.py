"""manual_backprop.model without its twin: Sequential networks of NumPy layers, their specs
and argument checks (JAX-free, so mutation testing runs it; the twin's comparisons are in
test_layers_model.py)."""

from __future__ import annotations

import numpy as np
import pytest

from manual_backprop import model
from support import cnn_batch


def test_cnn_float32_training_step_stays_float32_and_lowers_the_loss():
    net, params, x, y = cnn_batch(1, B=8, dtype=np.float32)
    J, grads = net.loss_and_grad(params, x, y)
    assert all(g.dtype == np.float32 for gl in grads for g in gl)
    stepped = [tuple(a - np.float32(0.05) * g for a, g in zip(p, gl)) for p, gl in zip(params, grads)]
    assert net.loss(stepped, x, y) < J


def test_bad_params_and_targets_are_named():
    net, params, x, y = cnn_batch(2)
    with pytest.raises(ValueError, match=r"params\[1\] \(conv2d\) must hold arrays of shapes"):
        net.loss_and_grad(params[:1] + [(params[1][0],)] + params[2:], x, y)
    with pytest.raises(ValueError, match=r"y must have shape \(batch, n_out\) = \(3, 10\)"):
        net.loss_and_grad(params, x, y[:, :5])
    with pytest.raises(ValueError, match=r"layers\[0\] must be a Layer"):
        model.Sequential(["dense"])


BAD_SPECS = [   # each refused where it is made, naming the factory or spec (a review, 2026-12-02)
    (lambda: model.Dense(0, 3), ValueError, r"^Dense: n_in must be a positive int; got 0$"),    # was ZeroDivisionError in init
    (lambda: model.Dense(-1, 3), ValueError, r"^Dense: n_in must be a positive int"),           # was sqrt's RuntimeWarning
    (lambda: model.Dense(3, True), ValueError, r"^Dense: n_out must be a positive int"),
    (lambda: model.Conv2d(1, 2, 0), ValueError, r"^Conv2d: kernel must be a positive int"),     # was ZeroDivisionError
    (lambda: model.Conv2d(1, 2, (3, 3, 3)), ValueError, r"^Conv2d: kernel must be an int or a pair"),  # was an unpacking error
    (lambda: model.Conv2d(1, 2, 3.0), ValueError, r"^Conv2d: kernel must be a positive int; got 3.0$"),
    (lambda: model.Conv2d(0, 2, 3), ValueError, r"^Conv2d: c_in must be a positive int"),
    (lambda: model.Conv2d(1, 0, 3), ValueError, r"^Conv2d: c_out must be a positive int; got 0$"),
    (lambda: model.Layer("dense", ((4, 2),), {}, ("bogus",)), ValueError,                         # was He, silently
     r"^Layer 'dense': unknown init 'bogus'; supported: he, zeros, dense$"),
    (lambda: model.Layer("dense", ((0, 2),), {}, ("dense",)), ValueError,
     r"^Layer 'dense': every size in shapes must be a positive int; got 0$"),
    (lambda: model.Layer("dense", ((4, 2),), {}, ()), ValueError, r"one init per shape \(1\)"),     # was an empty params tuple
    (lambda: model.Layer("dense", (4, 2), {}, ("dense",)), TypeError, r"shapes must be a tuple of shape tuples"),
    (lambda: model.Layer("dense", ((1, 2),), {}, ("dense",)), ValueError, r"'dense' init needs .* n_in >= 1"),
    (lambda: model.Layer("relu", (), None), TypeError, r"options must be a dict"),
]


@pytest.mark.parametrize("make, error, message", BAD_SPECS, ids=[   # plain ids: mutmut passes them on a command line
    "dense-n_in-0", "dense-n_in-negative", "dense-n_out-bool", "conv-kernel-0", "conv-kernel-3d", "conv-kernel-float",
    "conv-c_in-0", "conv-c_out-0", "layer-unknown-init", "layer-size-0", "layer-no-inits", "layer-shapes-not-tuples", "layer-dense-init-n_in-0",
    "layer-options-not-dict"])
def test_bad_layer_specs_are_refused_where_they_are_made(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("where", ["x", "params"])
def test_a_nan_in_a_list_is_named_as_in_an_array(where):
    """x (or a weight) given as a nested list with a NaN was reported as an overflow of finite
    inputs (NonFiniteError), the finiteness check looking at ndarrays only."""
    net = model.mlp([3, 4, 2])
    params, x, y = net.init(0), np.zeros((2, 3)), np.full((2, 2), 0.5)
    name = "x" if where == "x" else r"params\[0\]\[0\]"
    if where == "x":
        x[0, 0] = np.nan
        x = x.tolist()
    else:
        W = params[0][0].copy()
        W[1, 1] = np.nan
        params = [(W.tolist(),)] + params[1:]
    for call in (lambda: net.loss_and_grad(params, x, y), lambda: net.forward(params, x)):
        with pytest.raises(ValueError, match=rf"^{name} contains NaN or inf"):
            call()


def test_a_spec_holds_plain_tuples_of_ints():
    """Sizes given as NumPy ints and inits as a list are kept as a tuple of ints and a tuple, so
    that two specs of one layer compare equal however they were written."""
    layer = model.Layer("dense", ((np.int64(4), 2),), {}, ["dense"])
    assert layer.shapes == ((4, 2),) and type(layer.shapes[0][0]) is int and type(layer.shapes[0]) is tuple
    assert layer.inits == ("dense",) and type(layer.inits) is tuple
    assert layer == model.Layer("dense", ((4, 2),), {}, ("dense",)) == model.Dense(3, 2)
