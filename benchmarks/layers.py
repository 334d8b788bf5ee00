"""Layer speed (issue 12): each hand-derived layer's forward + VJP against ``jax.jit`` of its JAX
twin's forward + ``jax.vjp`` and against PyTorch's forward + backward (when installed), with
the GEMM floor of the conv and dense cells, and a stretch of MNIST CNN training in NumPy and
in JAX. One process, interleaved rounds, medians (benchmarks.timing).

    python -m benchmarks layers [--quick] [--rounds 7] [--dtype float32] [--out layers.json]
    python -m benchmarks.layers ...                  (the same)

On a machine that pins OpenBLAS to an older kernel, unset the pin for the run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks layers

Per cell, before anything is timed, every backend's output and gradients are checked against
NumPy's with a tolerance derived from the layer's longest sum (:func:`tolerance`); a
disagreeing cell is reported and the exit status is 1. Definitions:

* ``numpy``: ``f(*primals)`` then ``f_vjp(dy, *primals)`` of manual_backprop.layers (the VJP
  recomputes what it needs from the primals, e.g. max pooling's window max, the recurrent
  layers' whole forward: a reference keeps no cache);
* ``jax``: one ``jax.jit`` of ``y, pullback = jax.vjp(twin, *primals); pullback(dy)``;
* ``torch``: ``torch.autograd.grad(f(*leaves), leaves, dy)``, on as many threads as NumPy's
  BLAS (``torch.set_num_threads``); recurrent layers as the same Python step loop;
* ``gemm`` (conv2d, dense): the three matrix products of the layer alone, at the shapes of
  im2col with one GEMM (conv: W (F, C kh kw) times X (C kh kw, N Ho Wo), dY X^T, W^T dY),
  on preallocated arrays: the floor an im2col implementation cannot beat.

Ratios are median over median in the same cell; ``gemm_fraction`` = gemm / numpy.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import report, timing
from .gradients import largest
from .options import integer, names, path, seconds

MAX_BATCH = 4096     # the im2col of mnist_cnn's conv at batch 4096: 8 x 24 x 24 x 25 windows per example, 3.8 GB in float64
MNIST_TRAIN = 60_000

# 2: settings.warmup_s (each turn after untimed calls: the timing protocol changed)
SCHEMA = "manual-backprop-layer-benchmark/2"
CANCELLATION = 8  # sum|terms| <= CANCELLATION * max|ref| for these O(1) random inputs (as tests/layer_checks.py)


@dataclass
class Cell:
    """One layer at one shape: ``n_terms`` is the longest sum any entry of y or of the VJP is
    (from the layer's equations), ``gemm`` the (A shape, B shape) of each product of its GEMM floor."""

    label: str
    name: str
    primals: tuple
    options: dict = field(default_factory=dict)
    n_terms: int = 1
    gemm: list = field(default_factory=list)


def _conv(label, rng, dtype, N, C, F, H, k=5):
    Ho = H - k + 1
    M, K = N * Ho * Ho, C * k * k
    p = (rng.standard_normal((N, C, H, H)), rng.standard_normal((F, C, k, k)) / np.sqrt(K), rng.standard_normal(F))
    return Cell(label, "conv2d", tuple(a.astype(dtype) for a in p), {}, max(K, F * k * k, M),
                [((F, K), (K, M)), ((F, M), (M, K)), ((K, F), (F, M))])


def _pool(kind, rng, dtype, N, C, H):
    x = rng.standard_normal((N, C, H, H)).astype(dtype)
    return Cell(f"{kind} 2x2 on {C}x{H}x{H}", kind, (x,), {"size": 2}, 4)


def cells(dtype, batch: int = 64, *, quick: bool = False) -> list[Cell]:
    """LeNet-5's conv and pool shapes and those of ``manual_backprop.model.mnist_cnn()`` at
    ``batch``, then the other layers at modest sizes (quick: the conv/pool cells of mnist_cnn,
    dense and softmax)."""
    rng = np.random.default_rng(0)
    r = lambda *s, scale=1.0: (scale * rng.standard_normal(s)).astype(dtype)  # noqa: E731
    N = batch
    out = []
    if not quick:
        out += [_conv("conv2d 1->6 5x5 on 28x28 (LeNet)", rng, dtype, N, 1, 6, 28),
                _conv("conv2d 6->16 5x5 on 12x12 (LeNet)", rng, dtype, N, 6, 16, 12)]
    out += [_conv("conv2d 1->8 5x5 on 28x28 (mnist_cnn)", rng, dtype, N, 1, 8, 28),
            _conv("conv2d 8->16 5x5 on 12x12 (mnist_cnn)", rng, dtype, N, 8, 16, 12)]
    for C, H in ([(8, 24), (16, 8)] if quick else [(6, 24), (8, 24), (16, 8)]):
        out += [_pool("max_pool2d", rng, dtype, N, C, H), _pool("avg_pool2d", rng, dtype, N, C, H)]
    n_in, n_out = 256, 128
    out.append(Cell(f"dense {n_in}->{n_out}", "dense", (r(N, n_in), r(n_in + 1, n_out, scale=n_in ** -0.5)), {},
                    max(n_in, n_out, N) + 1, [((N, n_in), (n_in, n_out)), ((n_in, N), (N, n_out)), ((N, n_out), (n_out, n_in))]))
    out.append(Cell("softmax (B, 128)", "softmax", (r(N, 128),), {"axis": -1}, 128))
    if quick:
        return out
    D = 128
    out += [
        Cell(f"batch_norm (B, {D})", "batch_norm", (r(N, D), r(D, scale=0.1) + 1, r(D)), {"eps": 1e-5}, 4 * N),
        Cell("batch_norm (B, 8, 24, 24)", "batch_norm", (r(N, 8, 24, 24), r(8, scale=0.1) + 1, r(8)), {"eps": 1e-5}, 4 * N * 576),
        Cell(f"layer_norm (B, {D})", "layer_norm", (r(N, D), r(D, scale=0.1) + 1, r(D)), {"eps": 1e-5}, 4 * max(D, N)),
    ]
    Na, T, d = 8, 32, 32
    out.append(Cell(f"attention ({Na}, {T}, {d})", "attention", (r(Na, T, d), r(Na, T, d), r(Na, T, d)),
                    {"causal": False}, 4 * T * d))
    Nr, T, Dr, H = 16, 20, 32, 64
    out.append(Cell(f"rnn N={Nr} T={T} D={Dr} H={H}", "rnn",
                    (r(Nr, T, Dr), r(Nr, H), r(Dr, H, scale=Dr ** -0.5), r(H, H, scale=H ** -0.5), r(H)), {}, T * (Dr + H) * Nr))
    out.append(Cell(f"lstm N={Nr} T={T} D={Dr} H={H}", "lstm",
                    (r(Nr, T, Dr), r(Nr, H), r(Nr, H), r(Dr, 4 * H, scale=Dr ** -0.5), r(H, 4 * H, scale=H ** -0.5), r(4 * H)),
                    {}, T * (Dr + 4 * H) * Nr))
    return out


def tolerance(ref: np.ndarray, n_terms: int, dtype) -> float:
    """How far two computations of the same array may differ: each entry is a sum of at most
    ``n_terms`` products of the primals, which errs by at most n u sum|terms| to first order
    (Higham ch. 3); sum|terms| <= CANCELLATION max|ref| for these O(1) random inputs; both
    computations err: 2 CANCELLATION n u max|ref|. A wrong derivative (a missing flip, a
    dropped term) errs by O(max|ref|), above this for every cell here (n u <= 0.03 in float32)."""
    u = float(np.finfo(dtype).eps) / 2
    return 2 * CANCELLATION * n_terms * u * float(np.max(np.abs(ref)))


def agreement(cell: Cell, a, b) -> dict:
    """Per output (y, then each gradient): max |a - b| against :func:`tolerance` of b, in the
    unit roundoff of the less precise of the two."""
    worst, agrees = 0.0, True
    for u, v in zip(a, b):
        if u is None and v is None:
            continue
        u, v = np.asarray(u), np.asarray(v)
        if u.shape != v.shape:
            return {"agrees": False, "error_to_tolerance": float("inf"), "why": f"shape {u.shape} vs {v.shape}"}
        coarser = max(u.dtype, v.dtype, key=lambda d: np.finfo(d).eps)   # the rounding of the less precise
        tol = tolerance(v, cell.n_terms, coarser)
        err = float(np.max(np.abs(u.astype(np.float64) - v)))
        worst = largest([worst, err / tol if tol > 0 else (0.0 if err == 0 else float("inf"))])
        agrees &= err <= tol
    return {"agrees": bool(agrees), "error_to_tolerance": worst}


# --------------------------------------------------------------------------------------------
# runners: each returns (run, result), run() the timed call, result() -> [y, *grads] as NumPy


def _cotangent(cell: Cell) -> np.ndarray:
    import manual_backprop.layers as L

    y = getattr(L, cell.name)(*cell.primals, **cell.options)
    return np.random.default_rng(1).standard_normal(y.shape).astype(y.dtype)


def numpy_runner(cell: Cell, dy: np.ndarray):
    import manual_backprop.layers as L

    f, vjp = getattr(L, cell.name), getattr(L, cell.name + "_vjp")

    def run():
        return f(*cell.primals, **cell.options), vjp(dy, *cell.primals, **cell.options)

    def result():
        y, g = run()
        return [y, *g]

    return run, result


def jax_runner(cell: Cell, dy: np.ndarray):
    import jax

    from autodiff_check.layers import FORWARD

    fn, options = FORWARD[cell.name], cell.options

    @jax.jit
    def both(primals, dy):
        y, pullback = jax.vjp(lambda *p: fn(*p, **options), *primals)
        return y, pullback(dy)

    dev = jax.device_put((cell.primals, dy))

    def run():
        return jax.block_until_ready(both(*dev))

    def result():
        y, g = run()
        return [np.asarray(y), *(np.asarray(a) for a in g)]

    return run, result


def _torch_fn(name: str, options: dict):
    import torch
    import torch.nn.functional as F

    if name == "conv2d":
        return lambda x, W, b: F.conv2d(x, W, b, stride=options.get("stride", 1), padding=options.get("padding", 0))
    if name in ("max_pool2d", "avg_pool2d"):
        pool = F.max_pool2d if name == "max_pool2d" else F.avg_pool2d
        return lambda x: pool(x, options["size"], options.get("stride") or options["size"])
    if name == "dense":
        return lambda x, W: torch.addmm(W[0], x, W[1:])
    if name == "softmax":
        return lambda x: torch.softmax(x, dim=options["axis"])
    if name == "batch_norm":
        return lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=options["eps"])
    if name == "layer_norm":
        return lambda x, g, b: F.layer_norm(x, (x.shape[-1],), g, b, eps=options["eps"])
    if name == "attention":
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=options["causal"])
    if name == "rnn":
        def rnn(x, h, Wx, Wh, b):
            hs = []
            for t in range(x.shape[1]):
                h = torch.tanh(x[:, t] @ Wx + h @ Wh + b)
                hs.append(h)
            return torch.stack(hs, 1)
        return rnn
    if name == "lstm":
        def lstm(x, h, c, Wx, Wh, b):
            hs = []
            for t in range(x.shape[1]):
                i, f, o, g = (x[:, t] @ Wx + h @ Wh + b).chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                hs.append(h)
            return torch.stack(hs, 1)
        return lstm
    raise KeyError(name)


class Unavailable(Exception):
    pass


def torch_runner(cell: Cell, dy: np.ndarray, threads: int):
    if importlib.util.find_spec("torch") is None:
        raise Unavailable("torch is not installed (optional peer: pip install torch)")
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    fn = _torch_fn(cell.name, cell.options)
    leaves = [torch.from_numpy(np.array(p)).requires_grad_() for p in cell.primals]
    dy_t = torch.from_numpy(dy)

    def run():
        y = fn(*leaves)
        return y, torch.autograd.grad(y, leaves, dy_t)

    def result():
        y, g = run()
        return [y.detach().numpy(), *(a.numpy() for a in g)]

    return run, result


def gemm_runner(cell: Cell):
    """The cell's matrix products on preallocated arrays (``np.matmul(a, b, out=c)``)."""
    rng = np.random.default_rng(2)
    dtype = cell.primals[0].dtype
    ops = [(rng.standard_normal(a).astype(dtype), rng.standard_normal(b).astype(dtype), np.empty((a[0], b[1]), dtype))
           for a, b in cell.gemm]

    def run():
        for a, b, c in ops:
            np.matmul(a, b, out=c)

    return run


# --------------------------------------------------------------------------------------------
# the MNIST CNN: training steps in NumPy and in JAX


def cnn(*, dtype, batch: int, steps: int, chunks: int, lr: float = 0.05, seed: int = 0, data=None,
        warmup: float = 0.0) -> dict:
    """``steps`` SGD steps of ``manual_backprop.model.mnist_cnn()`` (whatever its layers) at
    ``batch``, NumPy (loss_and_grad, then W -= lr g in place) against its JAX twin
    (``autodiff_check.sequential``: one jit of value_and_grad and the update, parameters
    donated), on the same MNIST batches from the same init, taking turns in ``chunks`` slices,
    each after ``warmup`` seconds of untimed steps on a copy of the parameters
    (:func:`benchmarks.timing.take_turns`);
    the first step of each agrees within the float tolerance before the clock starts, and the
    largest parameter difference after the run shows both trained alike."""
    import jax

    from autodiff_check import sequential
    import manual_backprop as mb
    from manual_backprop import model

    from .epoch import load_data

    dtype = np.dtype(dtype)
    data = data if data is not None else load_data(dtype)
    n = steps * batch
    idx = np.random.default_rng([seed, 0]).permutation(data.x_train.shape[0])[:n]
    X = np.ascontiguousarray(data.x_train[idx], dtype=dtype)
    Y = mb.one_hot(data.y_train[idx], 10, dtype=dtype)
    net, twin = model.mnist_cnn(), sequential.mnist_cnn()
    P_np = net.init(seed, dtype=dtype)
    rate = dtype.type(lr)

    def step_jax(P, x, y):
        J, g = jax.value_and_grad(twin.loss_fn)(P, x, y)
        return jax.tree_util.tree_map(lambda w, gw: w - lr * gw, P, g), J

    step_jax = jax.jit(step_jax, donate_argnums=(0,))
    J0, g0 = net.loss_and_grad(P_np, X[:batch], Y[:batch])
    Jj, gj = twin.loss_and_grad(P_np, X[:batch], Y[:batch])
    # the tolerance of a cell (:func:`tolerance`) with n = the batch's input entries, which bounds
    # the longest sum of the net (conv1's dW, over N * 24 * 24 windows)
    n_terms = batch * X.shape[1]
    tol = tolerance(np.array([Jj]), n_terms, dtype)
    grad_ok = all(float(np.max(np.abs(u - v))) <= tolerance(v, n_terms, dtype)
                  for gl, hl in zip(g0, gj) for u, v in zip(gl, hl))
    t0 = time.perf_counter()
    P_dev = jax.device_put([tuple(w.copy() for w in layer) for layer in P_np])
    jax.block_until_ready(step_jax(jax.device_put([tuple(w.copy() for w in layer) for layer in P_np]), X[:batch], Y[:batch]))
    compile_s = time.perf_counter() - t0
    state = {"P": P_dev}

    def step_np(P, i):
        J, g = net.loss_and_grad(P, X[i * batch:(i + 1) * batch], Y[i * batch:(i + 1) * batch])
        for layer, gl in zip(P, g):
            for w, gw in zip(layer, gl):
                gw *= rate
                w -= gw
        return J

    def run_np(lo, hi):
        return sum(step_np(P_np, i) for i in range(lo, hi))

    def run_jax(lo, hi):
        P, Js = state["P"], []
        for i in range(lo, hi):
            P, J = step_jax(P, X[i * batch:(i + 1) * batch], Y[i * batch:(i + 1) * batch])
            Js.append(J)
        jax.block_until_ready(P)
        state["P"] = P
        return float(sum(float(j) for j in Js))

    # untimed steps on copies of the parameters (the first batch), which the training never sees
    scratch = {"numpy": [tuple(w.copy() for w in layer) for layer in P_np],
               "jax": jax.device_put([tuple(w.copy() for w in layer) for layer in P_np])}

    def warm_jax():
        scratch["jax"] = jax.block_until_ready(step_jax(scratch["jax"], X[:batch], Y[:batch])[0])

    turns = {"numpy": (run_np, lambda: step_np(scratch["numpy"], 0)), "jax": (run_jax, warm_jax)}
    bounds = np.linspace(0, steps, min(chunks, steps) + 1).astype(int)
    chunk_s, sums = timing.take_turns(turns, bounds, warmup)
    loss = {name: sum(s) for name, s in sums.items()}
    P_j = [tuple(np.asarray(w) for w in layer) for layer in state["P"]]
    diff = largest(float(np.max(np.abs(u.astype(np.float64) - v))) / max(float(np.max(np.abs(v))), 1e-30)
                   for a, b in zip(P_np, P_j) for u, v in zip(a, b))
    per_chunk = np.array(chunk_s["numpy"]) / np.array(chunk_s["jax"])
    return {
        "network": repr(net), "batch": batch, "dtype": dtype.name, "steps": steps, "chunks": len(bounds) - 1,
        "lr": lr, "data": data.source,
        "first_step_agrees": bool(abs(J0 - Jj) <= tol and grad_ok),
        "backends": {k: {"seconds": sum(chunk_s[k]), "us_per_step": 1e6 * sum(chunk_s[k]) / steps,
                         "mean_train_loss": loss[k] / steps, "chunk_seconds": chunk_s[k]} for k in turns},
        "jax_compile_s": compile_s,
        "ratio_numpy_to_jax": sum(chunk_s["numpy"]) / sum(chunk_s["jax"]),
        "ratio_per_chunk_quartiles": [float(q) for q in np.percentile(per_chunk, [25, 50, 75])],
        "max_param_diff_rel": diff,
        "epoch_seconds_estimate": {k: sum(chunk_s[k]) / steps * (60000 // batch) for k in turns},
    }


# --------------------------------------------------------------------------------------------
# the run


def run_cells(cs: list[Cell], *, rounds: int, round_time: float, torch_threads: int, backends, log,
              warmup: float = 0.0) -> list[dict]:
    rows = []
    for cell in cs:
        dy = _cotangent(cell)
        makers = {"numpy": lambda: numpy_runner(cell, dy)}
        if "jax" in backends:
            makers["jax"] = lambda: jax_runner(cell, dy)
        if "torch" in backends:
            makers["torch"] = lambda: torch_runner(cell, dy, torch_threads)
        fns, first, checks, skipped = {}, {}, {}, {}
        ref = None
        for name, make in makers.items():
            try:
                run, result = make()
            except Unavailable as e:
                skipped[name] = str(e)
                continue
            t0 = time.perf_counter()
            out = result()
            first[name] = time.perf_counter() - t0
            if ref is None:
                ref = out
            else:
                checks[name] = agreement(cell, out, ref)
                if not checks[name]["agrees"]:
                    log(f"  WARNING: {name} disagrees with numpy on {cell.label}: "
                        f"error / tolerance {checks[name]['error_to_tolerance']:.3g}")
            fns[name] = run
        if cell.gemm:
            fns["gemm"] = gemm_runner(cell)
        stats = timing.interleaved(fns, rounds=rounds, round_time=round_time, first_calls=first, warmup=warmup)
        row = {"cell": cell.label, "layer": cell.name, "shapes": [list(np.shape(p)) for p in cell.primals],
               "options": cell.options, "n_terms": cell.n_terms, "gemm_products": cell.gemm,
               "backends": {k: {**s.as_dict(), **checks.get(k, {})} for k, s in stats.items()}, "skipped": skipped}
        npm = stats["numpy"].median_s
        for k in ("jax", "torch"):
            if k in stats:
                row[f"numpy_to_{k}"] = npm / stats[k].median_s
        if "gemm" in stats:
            row["gemm_fraction"] = stats["gemm"].median_s / npm
        rows.append(row)
        log(f"  {cell.label}: numpy {report._fmt_time(npm)}"
            + "".join(f", {k} {report._fmt_time(stats[k].median_s)}" for k in ("jax", "torch", "gemm") if k in stats)
            + f"; load {report.load_average()[0]:.1f}")
    return rows


def table(rows: list[dict], cnn_run: dict | None) -> list[str]:
    lines = ["", "forward + VJP per call, median (quartiles in the JSON); ratio = numpy / other; "
             "gemm% = GEMM floor / numpy; ! = disagrees with numpy", ""]
    lines.append(f"{'cell':40s} {'numpy':>9} {'jax.jit':>9} {'torch':>9} {'gemm':>9} "
                 f"{'np/jax':>7} {'np/torch':>8} {'gemm%':>6}")
    for r in rows:
        b = r["backends"]
        t = lambda k: (report._fmt_time(b[k]["median_s"]) + ("!" if b[k].get("agrees") is False else "")) if k in b else "-"  # noqa: E731
        q = lambda k: f"{r[k]:.2f}" if k in r else "-"  # noqa: E731
        frac = f"{100 * r['gemm_fraction']:.0f}%" if "gemm_fraction" in r else "-"
        lines.append(f"{r['cell']:40s} {t('numpy'):>9} {t('jax'):>9} {t('torch'):>9} {t('gemm'):>9} "
                     f"{q('numpy_to_jax'):>7} {q('numpy_to_torch'):>8} {frac:>6}")
    if cnn_run:
        c, b = cnn_run, cnn_run["backends"]
        lines += ["", f"{c['network']}: {c['steps']} SGD steps at batch {c['batch']}, {c['dtype']}, "
                      f"{c['chunks']} interleaved chunks, data {c['data']}",
                  f"  numpy {b['numpy']['us_per_step']:.0f} us/step, jax.jit {b['jax']['us_per_step']:.0f} us/step "
                  f"(compile {c['jax_compile_s']:.2f} s): numpy/jax = {c['ratio_numpy_to_jax']:.2f} "
                  f"(per chunk quartiles {', '.join(f'{v:.2f}' for v in c['ratio_per_chunk_quartiles'])})",
                  f"  one 60000-example epoch at this rate: numpy {c['epoch_seconds_estimate']['numpy']:.1f} s, "
                  f"jax {c['epoch_seconds_estimate']['jax']:.1f} s; mean loss numpy {b['numpy']['mean_train_loss']:.4f}, "
                  f"jax {b['jax']['mean_train_loss']:.4f}; max relative parameter difference {c['max_param_diff_rel']:.1e}; "
                  f"first step agrees: {c['first_step_agrees']}"]
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks layers", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: the mnist_cnn conv/pool cells, dense, softmax; "
                                                         "3 short rounds; 20 CNN steps")
    p.add_argument("--batch", type=integer(1, MAX_BATCH), default=64, help=f"examples per call, 1 to {MAX_BATCH} (default 64)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--rounds", type=integer(1, 1000), help="interleaved rounds per cell (default 7; quick 3)")
    p.add_argument("--round-time", type=seconds(60), help="seconds per backend per round, (0, 60] (default 0.1; quick 0.01)")
    p.add_argument("--warmup", type=seconds(10, zero=True),
                   help="seconds of a backend's own untimed calls before each of its turns, so that no other pool's "
                        f"workers still spin and its own are awake, [0, 10] (default {timing.WARMUP_S:g}; quick 0)")
    p.add_argument("--backends", type=names(["jax", "torch"], allow_empty=True), default=["jax", "torch"],
                   help="peers besides numpy, comma-separated (default jax,torch; empty: none)")
    p.add_argument("--cnn-steps", type=integer(0, MNIST_TRAIN),
                   help="CNN training steps per backend (default 200; quick 20; 0: none); steps x batch <= 60000")
    p.add_argument("--cnn-chunks", type=integer(1, 1000), default=10, help="interleaved chunks of the CNN run (default 10)")
    p.add_argument("--threads", type=integer(1, 4096),
                   help="hold every library to N threads: NumPy's BLAS (threadpoolctl), torch, and JAX (the process "
                        "is pinned to N CPUs). Default: NumPy's BLAS count for torch, JAX its own. On a busy machine "
                        "--threads 1 keeps a multithreaded call from stalling on a worker that waits for a core")
    p.add_argument("--out", type=path, help="JSON file (default runs/layers-<time>.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file (default: refuse)")
    args = p.parse_args(argv)
    for key, full, quick in (("rounds", 7, 3), ("round_time", 0.1, 0.01), ("warmup", timing.WARMUP_S, 0.0),
                             ("cnn_steps", 200, 20)):
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    cnn = "jax" in args.backends and args.cnn_steps and importlib.util.find_spec("jax") is not None
    if cnn and args.cnn_steps * args.batch > MNIST_TRAIN:
        p.error(f"--cnn-steps {args.cnn_steps} x --batch {args.batch} is more than MNIST's {MNIST_TRAIN} training "
                "examples (--cnn-steps 0 skips the CNN run)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_start, source = report.load_average(), report.source_state()
    log = lambda msg: report.say(msg, sys.stderr)  # noqa: E731
    backends = list(args.backends)
    out, reserved = args.out, ()
    try:
        if out is None:   # runs/layers-<time>.json, made here (a given --out's folder must exist)
            out, reserved = report.default_out("layers")
        from manual_backprop.app.data import data_files

        held = report.hold_outputs({"--out": out}, inputs=data_files(), overwrite=args.overwrite, reserved=reserved)
    except (ValueError, OSError) as e:   # before any timing: nothing is lost
        report.release(reserved)
        print(f"python -m benchmarks layers: error: {e}", file=sys.stderr)
        return 2
    with held:
        return _run(args, argv, out, started, load_start, source, log, backends)


def _run(args, argv, out, started, load_start, source, log, backends) -> int:
    """The run of :func:`main`, its output checked and locked."""
    if "jax" in backends and importlib.util.find_spec("jax") is None:
        log("jax is not installed: skipped")
        backends.remove("jax")
    limits = None
    if args.threads is not None:
        limits = report.hold_threads(args.threads, log)  # noqa: F841  held for the whole run
    threads = report.numpy_blas_threads()
    log(f"load average at start: {', '.join(f'{v:.2f}' for v in load_start)}; NumPy BLAS threads {threads}, "
        f"torch set to {threads}")
    dtype = np.dtype(args.dtype)
    rows = run_cells(cells(dtype, args.batch, quick=args.quick), rounds=args.rounds, round_time=args.round_time,
                     torch_threads=threads, backends=backends, log=log, warmup=args.warmup)
    cnn_run = None
    if args.cnn_steps and "jax" in backends:
        log(f"mnist_cnn: {args.cnn_steps} steps per backend at batch {args.batch}")
        cnn_run = cnn(dtype=dtype, batch=args.batch, steps=args.cnn_steps, chunks=args.cnn_chunks, warmup=args.warmup)
    env = report.environment(load_start=load_start, torch_threads=threads if "torch" in backends else None,
                             source=source)
    result = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks layers", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "settings": {"threads": args.threads, "batch": args.batch, "dtype": dtype.name, "rounds": args.rounds, "round_time_s": args.round_time, "warmup_s": args.warmup,
                     "backends": ["numpy", *backends], "torch_threads": threads,
                     "definitions": __doc__.split("disagreeing cell is reported and the exit status is 1. ")[1].strip()},
        "environment": env,
        "cells": rows,
        "cnn": cnn_run,
        "elapsed_s": time.perf_counter() - started,
    }
    report.write_json(out, result)
    lines = report.environment_lines(env) + table(rows, cnn_run)
    lines += ["", f"wrote {out} in {result['elapsed_s']:.0f} s"]
    unprinted = report.say("\n".join(lines))
    if unprinted:
        report.say(f"error: cannot write the table to standard output ({unprinted}); {out} holds the run", sys.stderr)
        return 3
    bad = [r["cell"] for r in rows for b in r["backends"].values() if b.get("agrees") is False]
    if cnn_run and not cnn_run["first_step_agrees"]:
        bad.append("mnist_cnn first step")
    return 1 if bad else 0


if __name__ == "__main__":
    report.exit_on_termination()
    raise SystemExit(main())
