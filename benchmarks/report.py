"""The run's environment, the stdout table, the JSON file and the plot."""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import itertools
import json
import math
import os
import platform
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from manual_backprop.app.checkpoint import write_atomically
from manual_backprop.app.paths import discard

from .gradients import BASELINE

GOAL_GEMM_FRACTION = 0.8
GOAL_GEMM_MIN_BATCH = 100


# --------------------------------------------------------------------------------------------
# environment


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def source_state() -> dict:
    """The code a run measures, read when it starts: the commit (short hash, None outside a git
    checkout) and whether tracked files differ from it. Read at the end, a commit made during
    the run was recorded instead of the one measured (a run of 07:15 on 2026-12-05 says 4baf30e,
    committed five seconds after it began)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": _git("rev-parse", "--short", "HEAD") or None,
            "git_dirty": None if status is None else bool(status)}


def say(text: str, stream=None) -> str | None:
    """Print ``text`` to ``stream`` (standard output by default), flushed. A reader that stopped
    reading (``| head``) is not a failure: the descriptor then points at /dev/null, for the lines
    after it and the flush at exit. Any other failure to write (a full disk) does the same and is
    returned as text, for the caller to report once the measurements are saved; else None. The
    table was printed before the JSON and a broken pipe lost the run (a review, 2026-12-05)."""
    stream = sys.stdout if stream is None else stream
    try:
        print(text, file=stream, flush=True)
    except OSError as e:
        discard(stream)
        return None if isinstance(e, BrokenPipeError) else str(e)
    return None


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the platform has none)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else []


def _numpy_blas() -> dict | None:
    """threadpoolctl's entry for the BLAS NumPy calls: the library in NumPy's own folder
    (``numpy.libs`` in wheels; SciPy's wheels bring a second OpenBLAS), else the only one."""
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    own = [i for i in blas if f"{os.sep}numpy" in i.get("filepath", "")]
    if own:
        return own[0]
    return blas[0] if len(blas) == 1 else None


def hold_threads(n: int, log) -> threadpool_limits:
    """``--threads n``: every thread pool threadpoolctl sees (NumPy's BLAS) held at ``n`` for as
    long as the returned limiter lives, and this process pinned to ``n`` of its CPUs before JAX
    starts (XLA sizes its CPU pool from them; XLA_FLAGS no longer limit it). Says so through
    ``log``, and warns where ``n`` exceeds the CPUs or the platform cannot pin."""
    limits = threadpool_limits(n)
    pinned = None
    if hasattr(os, "sched_setaffinity") and "jax" not in sys.modules:
        cpus = sorted(os.sched_getaffinity(0))
        if n < len(cpus):
            os.sched_setaffinity(0, cpus[:n])
        pinned = sorted(os.sched_getaffinity(0))
    if pinned is None:
        log(f"--threads {n}: BLAS and torch limited; JAX NOT limited (cannot pin here)")
        return limits
    if n > len(pinned):
        log(f"WARNING: --threads {n} is more than the {len(pinned)} CPUs this process may use: "
            "the libraries' threads will share cores")
    log(f"--threads {n}: BLAS and torch limited; process pinned to CPUs {pinned}")
    return limits


def numpy_blas_threads() -> int:
    """Threads of NumPy's BLAS (threadpoolctl); the CPUs this process may use when unknown."""
    info = _numpy_blas()
    if info and info.get("num_threads"):
        return int(info["num_threads"])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def environment(*, load_start: list[float] | None = None, torch_threads: int | None = None,
                own_threads: float | None = None, source: dict | None = None) -> dict:
    """CPU, cores, load at start and end, BLAS (threadpoolctl), library versions and the thread
    count of each library. ``own_threads``: the run's process CPU time over its wall time, the
    threads it kept busy on average, which the load average at its end includes. ``source``:
    :func:`source_state` as the run began (read now where not given)."""
    source = source_state() if source is None else source
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    env = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "torch": _version("torch"),
        "git_commit": source["git_commit"],
        "git_dirty": source["git_dirty"],
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "own_busy_threads": own_threads,
        "env": {k: v for k, v in os.environ.items()   # glibc's malloc settings too (docs/performance.md)
                if k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS",
                         "MKL_NUM_THREADS", "XLA_FLAGS", "GLIBC_TUNABLES") or k.startswith("MALLOC_")},
        "threads": {"numpy_blas": numpy_blas_threads(),
                    "jax": "XLA's own pool, one thread per CPU the process may use: "
                           f"{len(affinity) if affinity is not None else os.cpu_count()}"},
    }
    numpy_blas = _numpy_blas()
    env["blas"] = [  # every thread pool threadpoolctl sees: BLAS libraries, and OpenMP (torch's)
        {**{k: info.get(k) for k in ("user_api", "internal_api", "prefix", "version", "architecture",
                                     "num_threads", "threading_layer", "filepath")},
         "used_by_numpy": info == numpy_blas}
        for info in threadpool_info()
    ]
    if "jax" in sys.modules:
        import jax

        env["jax_devices"] = [str(d) for d in jax.devices()]
    if "torch" in sys.modules:
        import torch

        env["threads"]["torch"] = torch.get_num_threads()
        env["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
        env["threads"]["torch_set_to"] = torch_threads
    return env


def _busy(load: list[float] | None, cpus: int | None, own: float = 0.0) -> bool:
    """A 1-minute load average, less ``own`` (the run's own busy threads, counted in the load at
    its end), above half the cores: other processes hold CPUs the run needs. The load average
    decays over a minute and ``own`` is a whole-run mean, so this is an estimate."""
    return bool(load and cpus and load[0] - own > 0.5 * cpus)


def environment_lines(env: dict) -> list[str]:
    fmt = lambda load: ", ".join(f"{v:.2f}" for v in load or []) or "unknown"  # noqa: E731
    lines = [f"CPU: {env['cpu']} ({env['cpu_count']} logical cores)",
             f"load average (1, 5, 15 min): {fmt(env['load_average_start'])} at start, "
             f"{fmt(env['load_average_end'])} at end"
             + (f" (this run kept {env['own_busy_threads']:.1f} threads busy on average)"
                if env.get("own_busy_threads") is not None else "")]
    if env.get("cpu_affinity") is not None and len(env["cpu_affinity"]) < (env["cpu_count"] or 0):
        lines.append(f"process pinned to CPUs {env['cpu_affinity']} (--threads)")
    lines.append(f"numpy {env['numpy']}, jax {env['jax']}, torch {env['torch']}, python {env['python']}")
    for b in env.get("blas") or []:
        where = "used by NumPy" if b.get("used_by_numpy") else Path(b["filepath"]).parent.name
        if b.get("user_api") == "blas":
            lines.append(f"BLAS: {b['internal_api']} {b['version']}, kernel {b['architecture']}, "
                         f"{b['num_threads']} threads ({b['threading_layer']}), {where}")
        else:
            lines.append(f"{b.get('user_api')}: {b['prefix']}, {b['num_threads']} threads, {where}")
    if env.get("blas") is None:
        lines.append(env.get("blas_note", "BLAS unknown"))
    t = env["threads"]
    lines.append(f"threads: NumPy BLAS {t['numpy_blas']}; "
                 + (f"torch {t['torch']} (set to NumPy's BLAS count); " if "torch" in t else "")
                 + f"JAX: {t['jax']}")
    for when, key, own in (("before", "load_average_start", 0.0),
                           ("at the end of", "load_average_end", env.get("own_busy_threads") or 0.0)):
        if _busy(env.get(key), env.get("cpu_count"), own):
            lines.append(f"WARNING: load average {env[key][0]:.1f} on {env['cpu_count']} cores {when} the run"
                         + (f" ({own:.1f} of it this run's own threads)" if own else "") + ": "
                         "other processes share the CPUs, and a multithreaded BLAS call stalls while its "
                         "worker thread waits for a core (medians over interleaved rounds limit, not remove, "
                         "the effect); do not publish these numbers")
    if env.get("env"):
        lines.append("environment: " + " ".join(f"{k}={v}" for k, v in env["env"].items()))
    if env.get("jax_devices"):
        lines.append(f"JAX devices: {', '.join(env['jax_devices'])}")
    return lines


# --------------------------------------------------------------------------------------------
# table


def _fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f}us"
    if s < 1:
        return f"{s * 1e3:.2f}ms"
    return f"{s:.2f}s"


RATIOS = ("plain", "fast")  # the ratios of the table: backend / jax_jit


def gradient_table(cells: list[dict], backends: list[str]) -> list[str]:
    """One block per (network, dtype): a row per batch with each backend's median time, then
    plain / jax_jit, fast / jax_jit and GEMM / fast (the fast path's fraction of the GEMM peak)."""
    lines: list[str] = []
    blocks: dict[tuple, list[dict]] = {}
    for c in cells:
        blocks.setdefault((c["network"], c["dtype"]), []).append(c)
    cols = ["gemm", *backends]
    width = max(11, *(len(c) + 1 for c in cols))
    for (network, dtype), rows in blocks.items():
        sizes = rows[0]["layer_sizes"]
        lines.append("")
        lines.append(f"{network} {sizes}, {dtype}: median time per gradient (quartiles and minimum in the JSON); "
                     f"/jit ratios are time / {BASELINE} time, /best time / the fastest jitted JAX formulation's "
                     "(best JAX; the goals' denominator); jit compile = first call - steady state; "
                     "! = disagrees with the reference")
        head = f"{'batch':>6} " + " ".join(f"{c:>{width}}" for c in cols)
        head += "".join(f" {r + '/jit':>10}" for r in RATIOS) + "".join(f" {r + '/best':>10}" for r in RATIOS)
        head += f" {'best JAX':>13} {'GEMM/fast':>10} {'GEMM GF/s':>10} {'jit compile':>12}"
        lines.append(head)
        for r in rows:
            vals = []
            for c in cols:
                if c == "gemm":
                    vals.append(_fmt_time(r["gemm"]["median_s"]))
                    continue
                b = r["backends"].get(c, {})
                if "median_s" in b:
                    mark = "" if b.get("agrees", True) else "!"
                    vals.append(_fmt_time(b["median_s"]) + mark)
                else:
                    vals.append("skip")
            ratios = [r["backends"].get(n, {}).get("ratio_to_baseline") for n in RATIOS]
            ratios += [r["backends"].get(n, {}).get("ratio_to_fastest_jax") for n in RATIOS]
            frac = r["backends"].get("fast", {}).get("gemm_fraction")
            lines.append(
                f"{r['batch']:>6} " + " ".join(f"{v:>{width}}" for v in vals)
                + "".join(f" {('%.2f' % q) if q is not None else '-':>10}" for q in ratios)
                + f" {r.get('fastest_jax') or '-':>13}"
                + f" {('%.2f' % frac) if frac is not None else '-':>10}"
                + f" {r['gemm']['gflops']:>10.0f}"
                + f" {_fmt_time(r['backends'].get(BASELINE, {}).get('compile_s')):>12}"
            )
        big = rows[-1]
        busy = [f"gemm {big['gemm']['cpu_per_wall']:.1f}"] + [
            f"{c} {big['backends'][c]['cpu_per_wall']:.1f}" for c in backends if "cpu_per_wall" in big["backends"].get(c, {})
        ]
        lines.append(f"{'':>6} CPU time / wall time at batch {big['batch']} (threads kept busy): " + ", ".join(busy))
        faults = [f"{c} {b['faults_per_call']:.0f} ({b['kernel_per_wall']:.0%})" for c in ["gemm"] + list(backends)
                  for b in [big["gemm"] if c == "gemm" else big["backends"].get(c, {})]
                  if b.get("faults_per_call") is not None]
        if faults:
            lines.append(f"{'':>6} minor page faults per call at batch {big['batch']} (kernel time / wall time): "
                         + ", ".join(faults))
    return lines


def training_table(runs: list[dict]) -> list[str]:
    if not runs:
        return []
    lines = ["", "training: one epoch (or the first N examples) of [784, 500, 500, 10], plain SGD; "
             f"test accuracy on {runs[0]['test_examples']} test examples"]
    lines.append(f"{'batch':>6} {'dtype':>8} {'examples':>9} {'backend':>11} {'time':>9} {'us/step':>9} "
                 f"{'compile':>8} {'loss':>8} {'test acc':>9}")
    for r in runs:
        for name, b in r["backends"].items():
            if "seconds" not in b:
                lines.append(f"{r['batch_size']:>6} {r['dtype']:>8} {r['examples']:>9} {name:>11} {b.get('skipped', '')}")
                continue
            lines.append(
                f"{r['batch_size']:>6} {r['dtype']:>8} {r['examples']:>9} {name:>11} {b['seconds']:>8.2f}s "
                f"{b['us_per_step']:>9.0f} {b['compile_s']:>7.2f}s {b['mean_train_loss']:>8.4f} "
                f"{b['test_accuracy']:>9.4f}"
            )
        extra = []
        if "fast_grad_update_us_per_step" in r:
            extra.append(f"fast_grad's update W -= lr g: {r['fast_grad_update_us_per_step']:.0f} us/step")
        bases = [("jax_jit", "ratio_to_jax_jit", "ratio_per_chunk_quartiles")]
        if r.get("fastest_jax") not in (None, "jax_jit"):   # jax_jit's ratios are printed once
            bases.append((r["fastest_jax"], "ratio_to_fastest_jax", "fastest_jax_per_chunk_quartiles"))
        for base, ratios, quartiles in bases:
            for name, ratio in r.get(ratios, {}).items():
                q = r[quartiles][name]
                extra.append(f"{name}/{base} = {ratio:.2f} (per chunk: median {q[1]:.2f}, "
                             f"quartiles {q[0]:.2f}-{q[2]:.2f})")
        for name, key in (("sgd_step", "max_param_diff_rel"), ("jax_fori", "max_param_diff_rel_jax_fori")):
            if key in r:
                extra.append(f"max relative parameter difference {name} - jax_jit after the epoch = {r[key]:.1e}")
        for e in extra:
            lines.append(f"{'':>6} {e}")
    lines.append(f"data: {runs[0]['data']}")
    return lines


# --------------------------------------------------------------------------------------------
# goals


def goals(cells: list[dict], training: list[dict]) -> list[dict]:
    """Issue 10's speed goals on this run: in every gradient cell the plain reference call and
    the fast path take at most the time of the fastest jitted JAX formulation timed there (the
    cell's ``fastest_jax``; jax_jit where a cell records none); the fast path reaches
    GOAL_GEMM_FRACTION of the in-run GEMM peak at batch >= GOAL_GEMM_MIN_BATCH (post network);
    sgd_step's epoch takes at most the faster JAX loop's (the run's ``fastest_jax``; jax_jit's
    where a run records none)."""
    out = []
    for c in cells:
        where = {"network": c["network"], "batch": c["batch"], "dtype": c["dtype"]}
        best = c.get("fastest_jax")
        for name in RATIOS:
            b = c["backends"].get(name, {})
            ratio = b.get("ratio_to_fastest_jax") if best else b.get("ratio_to_baseline")
            if ratio is not None:
                kernel = c["backends"].get(best or BASELINE, {}).get("kernel_per_wall")
                interval = b.get("fastest_jax_interval_90") if best else b.get("ratio_interval_90")
                out.append({"goal": f"{name} <= {best or BASELINE}", **where, "value": ratio, "met": ratio <= 1.0,
                            "threshold": 1.0,
                            "interval_90": interval, "baseline_kernel_per_wall": kernel})
        frac = c["backends"].get("fast", {}).get("gemm_fraction")
        if c["network"] == "post" and c["batch"] >= GOAL_GEMM_MIN_BATCH and frac is not None:
            out.append({"goal": f"fast >= {GOAL_GEMM_FRACTION:.0%} of GEMM peak", **where, "value": frac,
                        "met": frac >= GOAL_GEMM_FRACTION, "threshold": GOAL_GEMM_FRACTION})
    for r in training:
        best = r.get("fastest_jax") if "ratio_to_fastest_jax" in r else None
        ratio = r.get("ratio_to_fastest_jax" if best else "ratio_to_jax_jit", {}).get("sgd_step")
        if ratio is not None:
            out.append({"goal": f"sgd_step epoch <= {best or BASELINE} epoch", "network": "post",
                        "batch": r["batch_size"], "dtype": r["dtype"], "value": ratio, "met": ratio <= 1.0,
                        "threshold": 1.0})
    return out


def goal_lines(gs: list[dict]) -> list[str]:
    if not gs:
        return []
    missed = sum(not g["met"] for g in gs)
    faulting = [g for g in gs if g["met"] and _baseline_faulting(g)]
    ties = [g for g in gs if _tie(g)]
    lines = ["", f"goals: {len(gs) - missed} of {len(gs)} met"
             + (f"; {len(faulting)} of them (marked *) against a {BASELINE} that spent over "
                f"{BASELINE_KERNEL_LIMIT:.0%} of its time in the kernel (page faults of its allocator, "
                "not its arithmetic: not evidence either way)" if faulting else "")]
    if ties:
        lines.append(f"  {sum(g['met'] for g in ties)} met and {sum(not g['met'] for g in ties)} missed are ties "
                     "(marked ~): the 90 % interval of the ratio, resampling this run's rounds, holds 1")
    width = max(30, *(len(g["goal"]) for g in gs))
    for g in gs:
        interval = g.get("interval_90")
        lines.append(f"  {'met ' if g['met'] else 'MISS'}  {g['goal']:<{width}} {g['network']:>5} batch {g['batch']:>5} "
                     f"{g['dtype']:>8}: {_shown(g)}"
                     + (f" ({interval[0]:.2f}-{interval[1]:.2f})" if interval else "")
                     + (" ~" if _tie(g) else "") + (" *" if _baseline_faulting(g) else ""))
    return lines


def _shown(g: dict) -> str:
    """The goal's value to two decimals, or as many more (up to six) as it takes not to print
    its threshold (0.796 read "0.80 MISS" against the 80 % goal)."""
    v, threshold = g["value"], g.get("threshold")
    digits = 2
    while threshold is not None and v != threshold and digits < 6 and f"{v:.{digits}f}" == f"{threshold:.{digits}f}":
        digits += 1
    return f"{v:.{digits}f}"


def _tie(g: dict) -> bool:
    interval = g.get("interval_90")
    return interval is not None and interval[0] <= 1.0 <= interval[1]


#: above this share of its wall time in the kernel, a baseline's time is its page faults' (a
#: computing process spends ~0-3 % there; faulting jax_jit cells measured 20-95 %)
BASELINE_KERNEL_LIMIT = 0.25


def _baseline_faulting(g: dict) -> bool:
    return (g.get("baseline_kernel_per_wall") or 0.0) > BASELINE_KERNEL_LIMIT


# --------------------------------------------------------------------------------------------
# files


def default_out(kind: str = "benchmark", *, plot: bool = False) -> tuple[Path, tuple[Path, ...]]:
    """``(runs/<kind>-<time>.json, reserved)``: the name, and with ``plot`` its ``.png``, created
    empty with O_EXCL, so that another run of the same second (the time's resolution) takes
    ``-2``, ``-3``... and neither replaces the other's file; ``runs/`` is made if missing. The
    reservations are this run's outputs (:func:`check_outputs`' ``reserved``); :func:`release`
    removes those still empty, and so does the process's exit (SIGTERM and SIGHUP included where
    the command line installs :func:`exit_on_termination`). OSError names ``runs/``."""
    runs = Path("runs")
    try:
        runs.mkdir(exist_ok=True)
    except OSError as e:
        raise OSError(e.errno, f"cannot make the default output folder {runs}/: {e.strerror or e}") from None
    stem = f"{kind}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    for n in itertools.count(1):
        out = runs / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
        made: list[Path] = []
        try:
            for path in [out, out.with_suffix(".png")] if plot else [out]:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o666)
                st = os.fstat(fd)
                os.close(fd)
                _RESERVED[os.path.abspath(path)] = (st.st_dev, st.st_ino)
                made.append(path)
        except FileExistsError:
            release(made)
            continue
        except OSError as e:
            release(made)
            raise OSError(e.errno, f"cannot write in the default output folder {runs}/: {e.strerror or e}") from None
        atexit.register(release, made)
        return out, tuple(made)


#: reservations of :func:`default_out`: absolute path -> (device, inode) of the empty file made
_RESERVED: dict[str, tuple[int, int]] = {}


def release(paths) -> None:
    """Remove each reservation of :func:`default_out` among ``paths`` that is still the empty
    file it made (a run that wrote there replaced it: a new inode)."""
    for path in paths:
        key = os.path.abspath(path)
        made = _RESERVED.pop(key, None)
        try:
            st = os.stat(key)
            if made == (st.st_dev, st.st_ino) and st.st_size == 0:
                os.unlink(key)
        except OSError:
            pass


def exit_on_termination() -> None:
    """SIGTERM and SIGHUP exit through SystemExit (128 + the signal), as Ctrl-C does through
    KeyboardInterrupt, so that exit handlers run (the command lines; not over a signal the parent
    ignores, nohup's SIGHUP)."""
    for s in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(s) not in (signal.SIG_IGN, None):
            signal.signal(s, lambda n, frame: sys.exit(128 + n))


def check_outputs(given: dict[str, Path | None], inputs=(), overwrite: bool = False,
                  reserved: tuple[Path, ...] = ()) -> dict[str, Path]:
    """The output paths of a run (``{"--out": path, "--plot": path or None}``), checked before
    any timing by :mod:`manual_backprop.app.paths`' rules: each a new file in an existing
    directory (or, with ``overwrite``, an existing regular file), none a data file the run reads
    (``inputs``), the same file as another, or another's lock file. Returns them resolved;
    raises ``OutputPathError``, ``FileExistsError``, ``FileNotFoundError`` or
    ``PermissionError`` naming the option. ``reserved``: files this run made for itself
    (:func:`default_out`), which it may replace."""
    from manual_backprop.app import paths

    targets = {what: paths.check_output(p, what, overwrite=True) for what, p in given.items() if p is not None}
    for what, t in targets.items():
        for data in inputs:
            if paths.same_file(t, Path(os.path.realpath(data))):
                raise paths.OutputPathError(f"{what} {given[what]} is the data file {data}; refusing to overwrite it")
        for other, u in targets.items():
            if other != what and (paths.same_file(t, u) or paths.same_file(u, paths.lock_path(t))):
                raise paths.OutputPathError(f"{other} {given[other]} and {what} {given[what]} would overwrite "
                                            "each other (the same file, or one's lock file); give two names")
    ours = {Path(os.path.realpath(p)) for p in reserved}
    for what, t in targets.items():   # last: the errors above say more about an existing file
        paths.check_new(t, os.fspath(given[what]), what, overwrite or t in ours)
    return targets


def hold_outputs(given: dict[str, Path | None], inputs=(), overwrite: bool = False,
                 reserved: tuple[Path, ...] = ()) -> contextlib.ExitStack:
    """:func:`check_outputs`, then each output's lock (``manual_backprop.app.paths``), held
    until the returned stack is closed, and the same checks again under them: a run that wrote
    one of these files while this one started is seen, and none can write it meanwhile. The
    errors are :func:`check_outputs`' and ``OutputLockedError`` (another run holds a lock)."""
    from manual_backprop.app import paths

    check_outputs(given, inputs, overwrite, reserved)
    held = contextlib.ExitStack()
    try:
        held.enter_context(paths.lock_outputs(**given))
        check_outputs(given, inputs, overwrite, reserved)
    except BaseException:
        held.close()
        raise
    return held


def _json_safe(obj):
    """``obj`` with every non-finite float as the string float() reads back ("inf", "-inf",
    "nan"): strict JSON has no such numbers, and a backend that disagrees with an infinite
    error ratio (a NaN gradient) must still be written, not end the run (a review)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (``manual_backprop.app.paths.write_atomically``),
    non-finite numbers as strings (:func:`_json_safe`)."""

    def dump(f) -> None:
        json.dump(_json_safe(data), f, indent=1, allow_nan=False)
        f.write("\n")

    write_atomically(path, dump, mode="w", what="--out")


def plot(path: Path, cells: list[dict], backends: list[str]) -> str | None:
    """Time relative to jax_jit against batch size, one panel per (network, dtype); PNG at
    ``path``, written atomically. Returns why there is no plot (matplotlib missing, or no
    jax_jit time to divide by), else None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no plot (pip install 'manual-backprop[plot]')"
    if not any("median_s" in c["backends"].get(BASELINE, {}) for c in cells):
        return f"no plot: it shows times relative to {BASELINE}, which did not run"
    networks = list(dict.fromkeys(c["network"] for c in cells))
    dtypes = list(dict.fromkeys(c["dtype"] for c in cells))
    fig, axes = plt.subplots(len(networks), len(dtypes), figsize=(5.5 * len(dtypes), 3.6 * len(networks)),
                             squeeze=False, sharex=True)
    for i, net in enumerate(networks):
        for j, dt in enumerate(dtypes):
            ax = axes[i][j]
            rows = sorted((c for c in cells if c["network"] == net and c["dtype"] == dt), key=lambda c: c["batch"])
            for name in ["gemm", *backends]:
                xs, ys = [], []
                for c in rows:
                    base = c["backends"].get(BASELINE, {}).get("median_s")
                    t = c["gemm"]["median_s"] if name == "gemm" else c["backends"].get(name, {}).get("median_s")
                    if base and t:
                        xs.append(c["batch"])
                        ys.append(t / base)
                if xs:
                    style = {"gemm": dict(ls=":", color="k"), "fast": dict(lw=2.5), "plain": dict(lw=2.5)}.get(name, {})
                    ax.plot(xs, ys, marker="o", label=name if name != "gemm" else "GEMM only (numpy)", **style)
            ax.axhline(1.0, color="grey", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{net} {rows[0]['layer_sizes'] if rows else ''}, {dt}", fontsize=9)
            ax.set_ylabel("time / jax_jit time")
            ax.grid(True, which="both", alpha=0.3)
            if i == len(networks) - 1:
                ax.set_xlabel("batch size")
    handles, labels = axes[0][0].get_legend_handles_labels()
    ncol = min(len(labels), 5)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(f"Gradient time relative to {BASELINE}: jax.jit(value_and_grad) of a @ W[1:] + W[0] "
                 "(lower is faster)", fontsize=10)
    legend_rows = -(-len(labels) // ncol)
    fig.tight_layout(rect=(0, 0.25 * legend_rows / fig.get_figheight(), 1, 1))  # ~0.25 inch per legend row
    try:
        write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=110), what="--plot")
    finally:
        plt.close(fig)
    return None
