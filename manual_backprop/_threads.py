"""Blocks of a batch run at once on threads, with NumPy's BLAS on one thread meanwhile.

``fast.loss_and_grad`` splits a large batch into blocks of rows. NumPy's elementwise passes
run on the calling thread only; k blocks on k threads put them on every core, but only while
the BLAS runs on one thread: k threads each calling a two-thread OpenBLAS spin against each
other (two to four times slower, docs/performance.md).

OpenBLAS built with pthreads (NumPy's and SciPy's wheels) has one thread count for the whole
process, set through threadpoolctl, which (since 3.8) lets one Python thread at a time set
it. Hence the rules here:

- one split at a time in the process (``_lock``); a call made inside a block (a loss that
  calls ``loss_and_grad``) runs as one block;
- the count is set to 1 only where this thread can set it, and set back on leaving only then;
- where it cannot (another thread holds OpenBLAS's count), or NumPy's BLAS is not OpenBLAS on
  pthreads (MKL and OpenBLAS on OpenMP count per thread; a library threadpoolctl does not
  know is not counted at all), the blocks run one after another on the calling thread, and
  the default is one block.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent import futures

_lock = threading.RLock()         # held by the split running, if any (re-entrant: a signal handler may split)
_local = threading.local()        # .in_block: this thread runs a block now
_pool: futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_held = None                      # the threadpoolctl limiter a split holds now, if any


def is_scipys_own(path: str) -> bool:
    """Whether ``path`` is the BLAS that SciPy's wheels bundle for SciPy alone (``scipy.libs``
    on Linux and Windows, ``scipy/.dylibs`` on macOS): NumPy never calls it."""
    return f"{os.sep}scipy.libs{os.sep}" in path or f"{os.sep}scipy{os.sep}.dylibs{os.sep}" in path


@functools.cache
def _numpy_blas() -> tuple:
    """(threadpoolctl controller of the BLAS libraries NumPy may call, whether every one of
    them is OpenBLAS on its own pthreads pool). The libraries are those loaded at the first
    call (NumPy's among them: NumPy is imported before this module) but SciPy's own."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController().select(user_api="blas")
    controller = controller.select(filepath=[c.filepath for c in controller.lib_controllers if not is_scipys_own(c.filepath)])
    libs = controller.lib_controllers
    pthreads = bool(libs) and all(c.internal_api == "openblas" and c.threading_layer == "pthreads" for c in libs)
    return controller, pthreads


def in_block() -> bool:
    """Whether the calling thread is running a block now."""
    return getattr(_local, "in_block", False)


def blas_threads() -> int:
    """NumPy's BLAS thread count, for the default number of blocks: read while no split
    holds it at 1 (so that the default, and with it a result's bits, does not depend on
    another thread's timing); 1 inside a block, or where blocks could not run at once."""
    if in_block():
        return 1
    controller, pthreads = _numpy_blas()
    if not pthreads:
        return 1
    with _lock:
        return max(c.num_threads for c in controller.lib_controllers)


@contextlib.contextmanager
def on_one_thread(controller) -> Iterator[bool]:
    """Hold the libraries of a threadpoolctl ``controller`` at one thread, and yield whether
    they are. A count this thread set is set back on leaving; where threadpoolctl ignored the
    setting (another thread holds OpenBLAS's count), nothing is set back either."""
    global _held
    libs = controller.lib_controllers
    if all(c.num_threads == 1 for c in libs):
        yield True
        return
    limiter = controller.limit(limits=1)
    if not all(c.num_threads == 1 for c in libs):
        yield False
        return
    with limiter:
        _held = limiter
        try:
            yield True
        finally:
            _held = None


def run_blocks(block: Callable[[int], float], k: int) -> list[float]:
    """[block(0), ..., block(k - 1)], one split at a time in the process: at once, block 0
    on the calling thread and the others on the pool's, while NumPy's BLAS is on one thread;
    else one after another on the calling thread. Returns, or raises the first block's error,
    only once every block is done."""
    controller, pthreads = _numpy_blas()
    with _lock, on_one_thread(controller) if pthreads else contextlib.nullcontext(False) as at_once:
        if not at_once:
            return [_in_block(block, i) for i in range(k)]
        pending: list[futures.Future] = []
        here = range(k, k)                             # blocks the pool could not take
        try:
            for i in range(1, k):
                try:
                    pending.append(_executor().submit(_in_block, block, i))
                except RuntimeError:                   # the pool is shut down (interpreter exit)
                    here = range(i, k)
                    break
            first = _in_block(block, 0)
        finally:
            _wait_all(pending)
        return [first] + [f.result() for f in pending] + [_in_block(block, i) for i in here]


def _in_block(block: Callable[[int], float], i: int) -> float:
    _local.in_block = True
    try:
        return block(i)
    finally:
        _local.in_block = False


def _wait_all(pending: list[futures.Future]) -> None:
    """Wait until every future is done, also through a KeyboardInterrupt, which is raised
    afterwards: no block outlives its call (nor the BLAS setting and Workspace it uses)."""
    interrupted: BaseException | None = None
    while True:
        try:
            if all(f.done() for f in pending):
                break
            futures.wait(pending)
        except BaseException as e:                     # noqa: BLE001 (raised below)
            interrupted = e
    if interrupted is not None:
        raise interrupted


def _executor() -> futures.ThreadPoolExecutor:
    """The module's thread pool, made on first use; its threads are named for a thread dump."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = futures.ThreadPoolExecutor(thread_name_prefix="manual_backprop.fast")
        return _pool


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads: not the pool's (a pool copied from the
    parent would queue blocks that no thread runs), nor one that held a lock or NumPy's BLAS
    at one thread at the fork (that count is set back here)."""
    global _pool, _pool_lock, _lock, _local, _held
    if _held is not None:
        _held.restore_original_limits()
    _pool, _pool_lock, _lock, _local, _held = None, threading.Lock(), threading.RLock(), threading.local(), None


os.register_at_fork(after_in_child=_after_fork_in_child)
