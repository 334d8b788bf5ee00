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
- one setter of a count at a time (``_limiting``: a split, or a batch-1 ``sgd_step`` holding
  SciPy's own OpenBLAS); the count is set to 1 only where this thread can set it, and set
  back on leaving only then;
- where it cannot (another thread holds OpenBLAS's count, e.g. a batch-1 ``sgd_step`` loop in
  another thread), the blocks run one after another on the calling thread; where NumPy's
  BLAS is not OpenBLAS on pthreads (MKL and OpenBLAS on OpenMP count per thread; a library
  threadpoolctl does not know is not counted at all), so do they, and the default is one
  block.

Not covered: a user's ``threadpool_limits`` that begins while a count is held at 1 here and
ends after, in another thread, writes that 1 back when it ends (threadpoolctl restores what
it found); a Ctrl-C that lands inside threadpoolctl's own calls may leave a count at 1.
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
_pool_lock = threading.RLock()    # re-entrant too: a signal handler may split while the pool is made
_limiting: dict = {}              # "holder": the one on_one_thread that may set a count now
_held = None                      # the threadpoolctl limiter it holds, if any


def bundled_by(package: str, path: str) -> bool:
    """Whether ``path`` is a library that ``package``'s wheels bundle for it alone
    (``<package>.libs`` on Linux and Windows, ``<package>/.dylibs`` on macOS)."""
    return f"{os.sep}{package}.libs{os.sep}" in path or f"{os.sep}{package}{os.sep}.dylibs{os.sep}" in path


def is_scipys_own(path: str) -> bool:
    """Whether ``path`` is the BLAS that SciPy's wheels bundle for SciPy alone: NumPy never
    calls it."""
    return bundled_by("scipy", path)


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
    another thread's timing); 1 where blocks could not run at once."""
    controller, pthreads = _numpy_blas()
    if not pthreads:
        return 1
    with _lock:
        return max(c.num_threads for c in controller.lib_controllers)


@contextlib.contextmanager
def on_one_thread(controller) -> Iterator[bool]:
    """Hold the libraries of a threadpoolctl ``controller`` at one thread, and yield whether
    they are. One holder at a time in the process (``_limiting``): a call that finds it taken
    (a split, or a batch-1 ``sgd_step``, in another thread) sets nothing and yields whether
    the counts are 1 anyway. A count set here is set back on leaving; where threadpoolctl
    ignored the setting (another thread holds OpenBLAS's count), nothing is set back either."""
    global _held
    libs, token = controller.lib_controllers, object()
    try:
        if _limiting.setdefault("holder", token) is not token:   # one atomic step: nothing to leak
            yield all(c.num_threads == 1 for c in libs)
            return
        if all(c.num_threads == 1 for c in libs):
            yield True
            return
        limiter = controller.limit(limits=1)
        if not all(c.num_threads == 1 for c in libs):
            yield False
            return
        _held = limiter
        try:
            with limiter:
                yield True
        finally:
            _held = None                               # after the restore, for a fork meanwhile
    finally:
        if _limiting.get("holder") is token:
            del _limiting["holder"]


def run_blocks(block: Callable[[int], float], k: int) -> list[float]:
    """[block(0), ..., block(k - 1)], one split at a time in the process: at once, block 0
    on the calling thread and the others on the pool's, while NumPy's BLAS is on one thread;
    else one after another on the calling thread. Returns, or raises the first block's error,
    only once every block is done."""
    controller, pthreads = _numpy_blas()
    with _lock, on_one_thread(controller) if pthreads else contextlib.nullcontext(False) as at_once:
        if not at_once:
            return [_in_block(block, i) for i in range(k)]
        others = [_Block(block, i) for i in range(1, k)]
        first_done = False
        try:
            for b in others:
                try:
                    _executor().submit(b.take)
                except RuntimeError:                   # pool shut down (interpreter exit), or no thread
                    break                              # to be had: the caller runs the rest below
            first = _in_block(block, 0)
            first_done = True
        finally:
            _settle(others, run=first_done)
        for b in others:
            if b.error is not None:
                raise b.error
        return [first] + [b.result for b in others]


class _Block:
    """Block i, run once by whichever thread claims it first: a pool thread (``take``), or the
    caller once block 0 is done (``settle``); never by both, and never lost if a submission
    failed or was interrupted half-way. A claim is one dict.setdefault (atomic), and the
    thread that holds it may claim again (a caller interrupted between claiming and running
    must not then wait for itself)."""

    def __init__(self, block: Callable[[int], float], i: int) -> None:
        self.block, self.i = block, i
        self._claimed: dict[str, int] = {}
        self.done = threading.Event()
        self.result: float | None = None
        self.error: BaseException | None = None

    def _claim(self) -> bool:
        me = threading.get_ident()
        return self._claimed.setdefault("by", me) == me

    def take(self) -> None:
        """On a pool thread: run it unless the caller has claimed it; any error is kept for
        the caller to raise."""
        if self._claim():
            try:
                self.result = _in_block(self.block, self.i)
            except BaseException as e:                 # noqa: BLE001 (raised by run_blocks)
                self.error = e
            finally:
                self.done.set()

    def settle(self, run: bool) -> None:
        """On the caller: run it here if no pool thread has claimed it (``run`` False: make
        sure none will), else wait until it is done. An Exception is kept, in block order;
        anything else (KeyboardInterrupt) goes up at once, to ``_settle``."""
        if not self._claim():
            self.done.wait()
        elif run and not self.done.is_set():
            try:
                self.result = _in_block(self.block, self.i)
            except Exception as e:
                self.error = e
            finally:
                self.done.set()
        else:
            self.done.set()


def _settle(others: list[_Block], run: bool) -> None:
    """Every block done (``_Block.settle``), also through a KeyboardInterrupt, raised once
    they are: no block outlives its call (nor the BLAS setting and Workspace it uses). After
    an interrupt the blocks no thread has started are not run. (A Ctrl-C can still land in
    the few bytecodes between the checks; pure Python cannot close every such window.)"""
    interrupted: BaseException | None = None
    left = list(others)
    while left:
        try:
            while left:
                left[0].settle(run and interrupted is None)
                left.pop(0)
        except BaseException as e:                     # noqa: BLE001 (raised below)
            interrupted = e
    if interrupted is not None:
        raise interrupted


def _in_block(block: Callable[[int], float], i: int) -> float:
    _local.in_block = True
    try:
        return block(i)
    finally:
        _local.in_block = False


def _executor() -> futures.ThreadPoolExecutor:
    """The module's thread pool, made on first use; its threads are named for a thread dump."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = futures.ThreadPoolExecutor(thread_name_prefix="manual_backprop.fast")
        return _pool


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads: not the pool's (a pool copied from the
    parent would queue blocks that no thread runs), nor one that held a lock or a BLAS at one
    thread at the fork (that count is set back here, and threadpoolctl's record of which
    thread controls OpenBLAS cleared). A fork from inside a block is not supported: the child
    would wait for blocks that no thread of its own runs."""
    global _pool, _pool_lock, _lock, _local, _held
    _limiting.clear()
    if _held is not None:
        _held.restore_original_limits()
        for lib in _held._controller.lib_controllers:
            if hasattr(type(lib), "clear_controlling_thread"):
                type(lib).clear_controlling_thread(force=True)
    _pool, _pool_lock, _lock = None, threading.RLock(), threading.RLock()
    _local, _held = threading.local(), None


os.register_at_fork(after_in_child=_after_fork_in_child)
