"""The checks must catch wrong gradients: the post's as published, and deliberate mutants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff_check as ac
import manual_backprop as mb
from manual_backprop import as_published
from strategies import examples


@st.composite
def post_like(draw, palindrome: bool):
    """A sigmoid/BCE network with 1-4 hidden layers, one-hot targets, |x| <= 1 like pixels.

    The post's loop pairs hidden layer L-j with layer j, so its shapes fit exactly when the
    hidden sizes read the same backwards (equal sizes, as in the post, or e.g. 3, 5, 3)."""
    n_hidden = draw(st.integers(1 if palindrome else 2, 4))
    hidden = draw(st.lists(st.integers(2, 8), min_size=n_hidden, max_size=n_hidden))
    if palindrome:
        hidden = hidden[: (n_hidden + 1) // 2] + hidden[: n_hidden // 2][::-1]
    elif hidden == hidden[::-1]:
        hidden[0] += 1
    sizes = [draw(st.integers(1, 8)), *hidden, draw(st.integers(2, 6))]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    batch = draw(st.integers(1, 6))
    x = rng.uniform(0, 1, size=(batch, sizes[0]))
    y = mb.one_hot(rng.integers(0, sizes[-1], batch), sizes[-1])
    return mb.init_params(sizes, seed=int(rng.integers(2**31))), x, y


@settings(max_examples=examples(10))
@given(problem=post_like(palindrome=True))
def test_as_published_is_caught_with_equal_hidden_sizes(problem):
    """Equal (or palindromic) hidden sizes: no shape error reveals it, but the comparison with
    JAX fails, in the output layer at least."""
    params, x, y = problem
    _, wrong = mb.as_published.loss_and_grad(params, x, y)   # as the package exposes it
    _, ref = ac.loss_and_grad(params, x, y)
    cmp = ac.compare(wrong, ref, rtol=0, atol=ac.exact_atol(ref), names=("as_published", "jax"))
    assert not cmp.passed
    # the output layer's weight rows always use z where g(z) belongs
    assert not cmp.layers[-1].passed


@settings(max_examples=examples(10))
@given(problem=post_like(palindrome=False))
def test_as_published_errors_with_unequal_hidden_sizes(problem):
    params, x, y = problem
    with pytest.raises(ValueError, match="read the same backwards"):
        as_published.loss_and_grad(params, x, y)


def test_as_published_is_caught_by_every_oracle_on_the_post_shape():
    """Equal hidden sizes as in the post ([784, 500, 500, 10] scaled down to [16, 8, 8, 10])."""
    params = mb.init_params([16, 8, 8, 10], seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (5, 16)), mb.one_hot(rng.integers(0, 10, 5), 10)
    verdict = ac.check_network(params, x, y, backward="as_published")
    assert [r.passed for r in verdict.results] == [False] * 4, str(verdict)
    assert all(not e.passed for r in verdict.results if r.comparison for e in r.comparison.layers)
    assert any("disagrees with finite_diff in" in s and "worst params[" in s for s in verdict.disagreements())


MUTANTS = {
    # name: (object, attribute, broken replacement)
    "sigmoid' uses z for a": (mb.ACTIVATIONS["sigmoid"], "grad", lambda z, a: z * (1 - z)),
    "tanh' sign flipped": (mb.ACTIVATIONS["tanh"], "grad", lambda z, a: 1 + a * a),
    "relu' from a >= 0": (mb.ACTIVATIONS["relu"], "grad", lambda z, a: np.ones_like(z)),
    "gelu' drops the tanh term": (mb.ACTIVATIONS["gelu"], "grad",
                                  lambda z, a: 0.5 * (1 + np.tanh(0.7978845608 * (z + 0.044715 * z**3)))),
    "bce delta is y - p": (mb.LOSSES["binary_cross_entropy"], "delta",
                           lambda z, y: y - mb.activations.sigmoid(z)),
    "softmax delta forgets sum(y)": (mb.LOSSES["softmax_cross_entropy"], "delta",
                                     lambda z, y: mb.LOSSES["softmax_cross_entropy"].output(z) - 0.5 * y),
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_broken_derivations_are_caught(mutant, monkeypatch):
    obj, attr, broken = MUTANTS[mutant]
    monkeypatch.setattr(obj, attr, broken)
    activation = obj.name if obj.name in mb.ACTIVATIONS else "sigmoid"
    loss = obj.name if obj.name in mb.LOSSES else "binary_cross_entropy"
    params = mb.init_params([3, 4, 4, 3], seed=1)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3))
    y = mb.one_hot(rng.integers(0, 3, 4), 3)
    if loss == "softmax_cross_entropy":
        y = np.full((4, 3), 1 / 3)
    verdict = ac.check_network(params, x, y, activation=activation, loss=loss)
    assert not verdict.passed
    assert all(not r.passed for r in verdict.results), str(verdict)
