"""The checker corpus (benchmarks/checker_corpus.py) through autodiff_check and its peers.

    python -m benchmarks.peers [--seeds 3] [--markdown]

Peers, each when installed: ``torch.autograd.gradcheck`` (float64 inputs, its default
eps=1e-6, atol=1e-5, rtol=1e-3; float32 cases are given to it as float64 since it refuses
lower precision) and ``jax.test_util.check_grads`` (order 1, modes rev, compared with its
numerical differences; the function is wrapped in ``jax.pure_callback`` so the user's NumPy
code is what gets checked, with the user's derivative as the custom VJP). Each peer is
called the plain way, as its documentation shows. Counted per (case, dtype, seed): a bug
"caught" when the tool reports failure, a "false alarm" when it fails a correct derivative,
"error" when it raises something other than its failure signal.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import autodiff_check as ac

from .checker_corpus import CASES
from .options import integer


def _as_grad_problem(case, fn, deriv, args):
    """(flat loss, flat grad, x0, unflatten): both shapes as one function of a flat vector."""
    if case.kind == "grad":
        flat = ac.pytree.Flat(args, "params", what="params")
        loss = lambda x: float(np.real(fn(flat.build(x))))  # noqa: E731
        grad = lambda x: flat.flat(ac.pytree.flatten(deriv(flat.build(x)))[0])  # noqa: E731
        return loss, grad, flat.x
    flat = ac.pytree.Flat(tuple(args), "primal", what="primals")
    rng = np.random.default_rng(1)
    out = fn(*args)
    c = rng.standard_normal(np.shape(out))
    loss = lambda x: float(np.sum(c * fn(*flat.build(x))))  # noqa: E731
    grad = lambda x: flat.flat(list(deriv(c.astype(np.asarray(out).dtype), *flat.build(x))))  # noqa: E731
    return loss, grad, flat.x


def run_ours(case, fn, deriv, args) -> bool:
    v = ac.check_gradients(fn, deriv, args) if case.kind == "grad" else ac.check_vjp(fn, deriv, *args)
    return v.passed


def run_torch(case, fn, deriv, args) -> bool:
    import torch

    loss, grad, x0 = _as_grad_problem(case, fn, deriv, args)

    class F(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.tensor(loss(x.detach().numpy()), dtype=torch.float64)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * torch.from_numpy(grad(x.detach().numpy()))

    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    return bool(torch.autograd.gradcheck(F.apply, (x,), raise_exception=False))


def run_jax(case, fn, deriv, args) -> bool:
    import jax
    import jax.numpy as jnp
    from jax.test_util import check_grads

    jax.config.update("jax_enable_x64", True)  # float64, as the other two check in
    loss, grad, x0 = _as_grad_problem(case, fn, deriv, args)

    @jax.custom_vjp
    def f(x):
        return jax.pure_callback(lambda x: np.float64(loss(np.asarray(x))), jax.ShapeDtypeStruct((), jnp.float64), x)

    def fwd(x):
        return f(x), x

    def bwd(x, g):
        return (g * jax.pure_callback(lambda x: grad(np.asarray(x)), jax.ShapeDtypeStruct(x.shape, jnp.float64), x),)

    f.defvjp(fwd, bwd)
    try:
        check_grads(f, (jnp.asarray(x0),), order=1, modes=["rev"])
        return True
    except AssertionError:
        return False


TOOLS = {"autodiff_check": run_ours, "torch.autograd.gradcheck": run_torch, "jax.test_util.check_grads": run_jax}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=integer(1, 10_000), default=3, help="seeds per case and dtype (default 3)")
    p.add_argument("--markdown", action="store_true", help="print a markdown table (for docs/checker.md)")
    args = p.parse_args(argv)
    rows = []
    for tool, run in TOOLS.items():
        try:
            {"torch.autograd.gradcheck": lambda: __import__("torch"),
             "jax.test_util.check_grads": lambda: __import__("jax.test_util")}.get(tool, lambda: None)()
        except ImportError:
            rows.append((tool, "not installed", "", "", "", ""))
            continue
        caught = bugs = alarms = correct = errors = 0
        missed, alarmed = set(), set()
        start = time.perf_counter()
        for case in CASES:
            for dt in case.dtypes:
                for seed in range(args.seeds):
                    fn, deriv, a = case.build(np.random.default_rng(seed), case.min_n + 2, dt)
                    try:
                        ok = run(case, fn, deriv, a)
                    except Exception:  # noqa: BLE001 - counted, not hidden
                        errors += 1
                        ok = None
                    if case.bug:
                        bugs += 1
                        caught += ok is False
                        if ok is not False:
                            missed.add(f"{case.name} ({case.bug})")
                    else:
                        correct += 1
                        alarms += ok is False
                        if ok is False:
                            alarmed.add(f"{case.name} {np.dtype(dt).name}")
        rows.append((tool, f"{caught} of {bugs}", f"{alarms} of {correct}", str(errors),
                     f"{time.perf_counter() - start:.1f} s", "; ".join(sorted(missed | {"FALSE ALARM: " + a for a in alarmed}))))
    head = ("tool", "bugs caught", "false alarms", "errors", "time", "missed / false alarms")
    if args.markdown:
        print("| " + " | ".join(head) + " |\n|" + " --- |" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        for r in rows:
            print("  ".join(f"{c}" for c in r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
