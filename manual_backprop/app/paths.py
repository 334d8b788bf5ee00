"""Output files written safely: checked before any work, locked for the life of a run, written
atomically, and cleaned of what a killed writer left behind.

    >>> out = check_outputs(checkpoint="run.npz", plot="run.png", resume=None)   # before training
    >>> with OutputLock(out.checkpoint):                  # a second run on run.npz is refused
    ...     write_atomically(out.checkpoint, lambda f: f.write(b"..."))

Rules, each tested in ``tests/test_paths.py``:

* An output must be, or become, a *regular* file. A path naming a directory, a FIFO, a device
  or a socket is refused and never replaced; an empty path is refused. An existing file is
  another run's (or the user's): refused unless the caller says ``overwrite`` (a resumed run
  may continue its checkpoint in place); a live run's lock file, always.
* A symlink is written *through*: the new file replaces the link's target and the link stays
  (the temporary file goes beside the target, so the rename stays on one file system).
* A write goes to ``.NAME.tmp-PID-XXXXXXXX`` beside the target (with the replaced file's
  permissions, or those the umask gives a new file), is flushed and fsync'ed, then
  ``os.replace``d over it, and the directory is fsync'ed: a crash leaves the old file or the
  new one. A failure (full disk, I/O error) is an ``OSError`` of the same errno naming the file
  and saying that the previous file is intact. Ctrl-C, SIGTERM or SIGHUP arriving during the
  write, or while a lock is taken or released, is delivered once that is over
  (:func:`interrupts_deferred`).
* ``OutputLock(path)`` holds ``fcntl.flock`` on ``PATH.lock`` (the target's, symlinks resolved)
  and writes its pid there; a second holder, in this or another process, gets
  :class:`OutputLockedError` naming the path and the holder's pid. An existing ``PATH.lock``
  that holds anything but a pid is someone's file, not a lock: refused, never emptied.
  ``write_atomically`` takes the same lock for the length of one write when this process does
  not hold it already.
* The lock's and the temporaries' names carry the target's NAME whole where they fit in 255
  bytes; beyond, its first bytes and 16 hex digits of its SHA-256 (:func:`lock_path`): every
  name the file system takes can be written.
* Whoever holds the lock deletes the temporaries of that target whose writer (the PID in the
  name) no longer exists: what a save killed by SIGKILL left. Files of live processes are kept.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import secrets
import signal
import stat
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

__all__ = [
    "OutputLock",
    "OutputLockedError",
    "OutputPathError",
    "Outputs",
    "check_output",
    "check_new",
    "check_outputs",
    "cleanup_temporaries",
    "lock_outputs",
    "lock_path",
    "resolve_output",
    "same_file",
    "write_atomically",
]


class OutputPathError(ValueError):
    """An output path that cannot be written as a regular file, or that overlaps another."""


class OutputLockedError(OSError):
    """Another holder (another run, or another lock in this process) writes this output."""


def _kind(mode: int) -> str:
    for test, name in [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]:
        if test(mode):
            return name
    return "not a regular file"


def resolve_output(path: str | os.PathLike, what: str = "output") -> Path:
    """``path`` absolute, symlinks resolved (writes go through a link to its target).

    Refuses (:class:`OutputPathError`) an empty path, a path ending in a separator, a symlink
    loop, and an existing target that is not a regular file (directory, FIFO, device, socket).
    A target that does not exist yet is fine; its directory is checked by :func:`check_outputs`.
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if text == "":
        raise OutputPathError(f"{what} path is empty")
    if text.endswith(os.sep) or (os.altsep and text.endswith(os.altsep)):
        raise OutputPathError(f"{what} path {text!r} names a directory (ends in {text[-1]!r}); give a file name")
    target = Path(os.path.realpath(text))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    except OSError as e:
        raise OutputPathError(f"{what} path {text}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        shown = text if str(target) == os.path.abspath(text) else f"{text} (-> {target})"
        raise OutputPathError(
            f"{what} path {shown} is {_kind(st.st_mode)}, not a regular file; refusing to replace it"
        )
    return target


# ------------------------------------------------------------------ names beside a target


#: bytes in one file name on the file systems this runs on (NAME_MAX of ext4, XFS, Btrfs, tmpfs)
NAME_MAX = 255
#: bytes a temporary's name adds to its stem: ".", ".tmp-", a pid (pid_max <= 2^22: 7 digits),
#: "-" and 8 hex digits
_TEMP_ROOM = 1 + 5 + 7 + 1 + 8


def _stem(name: str, room: int) -> str:
    """``name``, or where ``room`` more bytes would take it past :data:`NAME_MAX`, its first
    bytes (cut between characters), "~" and 16 hex digits of its SHA-256: the stem of the lock
    and temporary files beside a target, so that every name the file system takes can be
    written, and each process derives the same names from it."""
    raw = os.fsencode(name)
    if len(raw) + room <= NAME_MAX:
        return name
    cut = NAME_MAX - room - 17
    while cut and raw[cut] & 0xC0 == 0x80:   # a UTF-8 continuation byte: back to the character's start
        cut -= 1
    return os.fsdecode(raw[:cut]) + "~" + hashlib.sha256(raw).hexdigest()[:16]


def lock_path(target: Path) -> Path:
    """The lock file of ``target`` (resolved): ``NAME.lock`` beside it, the name shortened as
    :func:`_stem` says where it would not fit."""
    return target.with_name(_stem(target.name, len(".lock")) + ".lock")


# ------------------------------------------------------------------ locks


_held: dict[Path, "OutputLock"] = {}
_held_guard = threading.Lock()


class OutputLock:
    """Exclusive right to write ``path`` (symlinks resolved), for this process, until released.

    ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``PATH.lock`` beside the target, which holds the
    holder's pid; the lock file is removed on release (and replaced if a killed holder left
    it: the kernel drops a dead process's flock). Use as a context manager, or call
    :meth:`acquire` / :meth:`release`. Acquiring also removes the temporaries that dead writers
    left for this target (:func:`cleanup_temporaries`).
    """

    def __init__(self, path: str | os.PathLike, what: str = "output") -> None:
        self.target = resolve_output(path, what)
        self.lock_path = lock_path(self.target)
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "OutputLock":
        if self._fd is not None:
            raise RuntimeError(f"{self.lock_path}: this OutputLock is already held")
        try:
            with interrupts_deferred(), _held_guard:   # an interrupt midway left an empty lock file
                other = _held.get(self.target)
                if other is not None:
                    raise OutputLockedError(
                        f"{self.what} {self.target} is already being written by this process (pid {os.getpid()}, "
                        f"lock {self.lock_path}); two runs must not write one file"
                    )
                self._fd = self._lock_file()
                _held[self.target] = self
            cleanup_temporaries(self.target)
        except BaseException:   # an interrupt delivered as the lock was taken: a caller's `with` never got it
            self.release()
            raise
        return self

    def _lock_file(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        for _ in range(100):  # a releaser may unlink the file we opened; then open it again
            try:
                fd = os.open(self.lock_path, flags, 0o644)
            except OSError as e:   # the errno kept, without its "[Errno 40]" in the message (a review)
                err = type(e)(f"cannot create the lock file {self.lock_path} for {self.what} {self.target}: {e.strerror}")
                err.errno = e.errno
                raise err from None
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise OutputPathError(f"lock file {self.lock_path} is not a regular file")
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                    who = f"pid {holder}" if holder.isdigit() else "a process that has not written its pid yet"
                    raise OutputLockedError(
                        f"{self.what} {self.target} is being written by another run ({who}, lock "
                        f"{self.lock_path}); wait for it to finish or choose another path"
                    ) from None
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.lock_path, follow_symlinks=False))
                except FileNotFoundError:
                    same = False
                if same:
                    before = os.pread(fd, 22, 0)   # a pid line is at most 21 bytes; more is not ours
                    if before and not (len(before) <= 21 and re.fullmatch(rb"\d+\n?", before)):
                        raise OutputPathError(
                            f"{self.lock_path} exists and is not a lock file (it holds other data); refusing to "
                            f"take it over for {self.what} {self.target}: move it or choose another path")
                    try:
                        os.ftruncate(fd, 0)
                        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                    except OSError as e:   # a full disk: name the file, as every other write here does
                        raise OSError(e.errno, f"cannot write the lock file {self.lock_path} for {self.what} "
                                               f"{self.target}: {e.strerror}") from None
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        raise OutputLockedError(f"{self.lock_path}: could not take the lock (it keeps being replaced)")

    def release(self) -> None:
        if self._fd is None:
            return
        # deferred: an interrupt between the stat and the unlink left the lock file behind
        with interrupts_deferred(), _held_guard:
            fd, self._fd = self._fd, None
            _held.pop(self.target, None)
            try:   # ours only: a file renamed over it since (another writer's) is not ours to delete
                if os.path.samestat(os.fstat(fd), os.stat(self.lock_path, follow_symlinks=False)):
                    os.unlink(self.lock_path)  # while still holding the flock: see _lock_file
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # a forgotten lock is released with its object, like a file
        try:
            self.release()
        except Exception:
            pass


@contextmanager
def lock_outputs(**paths: str | os.PathLike | None) -> Iterator[list[OutputLock]]:
    """Hold an :class:`OutputLock` on each path that is not None (the keyword names it in
    messages), all released on exit: ``with lock_outputs(checkpoint=c, plot=p): ...``."""
    with ExitStack() as stack:
        yield [stack.enter_context(OutputLock(p, what)) for what, p in paths.items() if p is not None]


@contextmanager
def _write_lock(target: Path, what: str) -> Iterator[None]:
    """The target's lock for one write, unless this process already holds it (a run does)."""
    with _held_guard:
        mine = target in _held
    if mine:
        yield
    else:
        with OutputLock(target, what):
            yield


# ------------------------------------------------------------------ temporaries


#: as tempfile.mkstemp opens its files: new (mode 0600 below), not through a symlink (and, as
#: every os.open, not inherited by programs this process runs)
_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def _temp_prefix(target: Path) -> str:
    return f".{_stem(target.name, _TEMP_ROOM)}.tmp-{os.getpid()}-"


def _create_temp(target: Path, made: list[str]) -> int:
    """A new ``.NAME.tmp-PID-XXXXXXXX`` beside ``target``, opened; returns its fd. Its path is
    in ``made`` before the file exists, so a caller that removes ``made`` in a ``finally``
    leaves nothing behind wherever an interrupt lands (Ctrl-C, SIGTERM; ``tempfile.mkstemp``
    tells the name only once the file is made)."""
    for _ in range(100):                       # 32 random bits: a clash is all but impossible
        made.append(os.path.join(target.parent, _temp_prefix(target) + secrets.token_hex(4)))
        try:
            return os.open(made[-1], _TEMP_FLAGS, 0o600)
        except FileExistsError:
            made.pop()
    raise FileExistsError(errno.EEXIST, f"no free temporary name beside {target}")


def _remove(paths: list[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (conservatively True when that cannot be told)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def cleanup_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete ``.NAME.tmp-PID-*`` beside ``path`` (symlinks resolved) whose process PID is gone.

    Only this target's temporaries are considered, never another process's that is alive, and
    only while this process holds the target's :class:`OutputLock` (every writer of the target
    does), so no write in progress can lose its file. Returns the paths removed.
    """
    target = resolve_output(path)
    with _held_guard:
        if target not in _held:
            raise RuntimeError(f"cleanup_temporaries({target}) needs the target's OutputLock held")
    # the 8 characters _temp_path writes (token_hex; mkstemp's alphabet too, as earlier versions
    # made them): a user's ".c.npz.tmp-999-notours_dir" is not one (a review, 2026-12-02)
    pattern = re.compile(rf"\.{re.escape(_stem(target.name, _TEMP_ROOM))}\.tmp-(\d+)-[a-z0-9_]{{8}}\Z")
    removed = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return removed
    for name in names:
        m = pattern.match(name)
        if m is None or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        candidate = target.parent / name
        try:
            if stat.S_ISREG(os.lstat(candidate).st_mode):
                os.unlink(candidate)
                removed.append(candidate)
        except FileNotFoundError:
            pass
    return removed


# ------------------------------------------------------------------ atomic writes


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable where the platform allows it (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: what ends a run from outside: Ctrl-C, kill and timeout(1), a closed terminal
_INTERRUPTS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block is over, then deliver them to the handlers
    they would have met (a Python handler raises there, the default action ends the process).

    A write interrupted inside a library's bookkeeping fails in ways of its own: ``np.savez``
    interrupted in ``zipfile`` while a member is open raises ``ValueError: Can't close the ZIP
    file while there is an open writing handle`` instead of the KeyboardInterrupt. Only the main
    thread runs Python's handlers, so elsewhere nothing needs holding (nor can be). A signal the
    process ignores, or whose handler was not set from Python, is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {}
    try:
        for s in _INTERRUPTS:
            handler = signal.getsignal(s)
            if handler not in (signal.SIG_IGN, None):
                previous[s] = handler          # before the swap: restored whatever lands after it
                signal.signal(s, lambda signum, frame: held.append(signum))
        yield
    finally:
        try:
            restore_handlers(previous)
        finally:
            _deliver(dict.fromkeys(held))  # each once, in order of arrival


def _deliver(signals: Iterable[int]) -> None:
    """``signal.raise_signal`` each: a raising handler does not keep the next from its own."""
    raised = None
    for s in signals:
        try:
            signal.raise_signal(s)
        except BaseException as e:
            raised = raised or e
    if raised is not None:
        raise raised


def restore_handlers(handlers: dict) -> None:
    """``signal.signal(s, h)`` for each item, every one of them even where a handler just put
    back raises meanwhile (Python runs it at the next bytecode, or as ``signal.signal`` starts);
    the first such exception is raised at the end. Python cannot close the window entirely: a
    signal landing on this function's first lines, or a second one between two retries, still
    escapes with some left out."""
    raised = None
    pending = list(handlers.items())
    for _ in range(len(pending) + 2):  # bounded: one retry per signal that raised
        try:
            while pending:
                signal.signal(*pending[0])
                pending.pop(0)
            break
        except BaseException as e:     # a KeyboardInterrupt, mostly: kept for the end
            raised = raised or e
    if raised is not None:
        raise raised


def write_atomically(path: str | os.PathLike, write: Callable, *, mode: str = "wb", what: str = "output") -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it and rename it over
    ``path``: a crash at any moment leaves either the old file or the new one, never half.

    ``path`` must be, or become, a regular file (:func:`resolve_output`; a symlink is written
    through). An ``OSError`` while writing (``ENOSPC``, ``EIO``, ...) comes back with its errno,
    naming the file and saying that the previous one is intact; the temporary file is removed.
    Holds the target's :class:`OutputLock` during the write unless this process holds it, and
    delivers an interrupt that arrives meanwhile once the file is in place and the lock released
    (:func:`interrupts_deferred`). ``what`` names the file in messages ("checkpoint", "plot").
    """
    target = resolve_output(path, what)
    with interrupts_deferred():
        with _write_lock(target, what):
            existed = target.exists()
            made: list[str] = []
            try:
                fd = _create_temp(target, made)
                # _create_temp makes 0600; the new file gets the old one's permissions, or a new file's
                os.fchmod(fd, stat.S_IMODE(os.stat(target).st_mode) if existed else 0o666 & ~_umask())
                with os.fdopen(fd, mode) as f:
                    write(f)
                    f.flush()
                    os.fsync(f.fileno())
                resolve_output(target, what)  # still not a special file, just before the rename
                os.replace(made[0], target)
                made.clear()
            except OSError as e:
                if isinstance(e, OutputLockedError):
                    raise
                before = f"the previous {what} {target} is intact" if existed else f"no {what} was written"
                message = f"could not write {target}: {e.strerror or e}; {before}"
                raise (OSError(e.errno, message) if e.errno is not None else OSError(message)) from e
            finally:
                _remove(made)
        _fsync_dir(target.parent)


def _umask() -> int:
    """This process's umask, read without changing it where Linux tells it (os.umask can only
    be read by setting it, which races with other threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------ checks before any work


class Outputs(NamedTuple):
    """The paths of a run, absolute with symlinks resolved (None where not given)."""

    checkpoint: Path | None
    plot: Path | None
    resume: Path | None


def _check_creatable(target: Path, text: str, what: str) -> None:
    """The directory exists and takes a new file: probed by creating and removing a temporary
    of the very name a write would use (catches /proc, read-only mounts, missing rights)."""
    directory = target.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"{what} directory {directory} does not exist (for {what} {text})")
    made: list[str] = []
    try:
        with interrupts_deferred():    # else an interrupt in the finally left the probe there
            try:
                os.close(_create_temp(target, made))
            finally:
                _remove(made)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            raise PermissionError(f"{what} directory {directory} is not writable (for {what} {text})") from None
        raise OutputPathError(
            f"{what} {text}: cannot create a regular file in {directory} ({e.strerror or e})"
        ) from None


def check_new(target: Path, text: str, what: str, overwrite: bool, hint: str = "") -> None:
    """An existing ``target`` (``text`` as the user gave it) is another run's file, or the user's:
    ``FileExistsError`` unless ``overwrite``. A lock file of a live run (:class:`OutputLock`: a
    ``.lock`` holding the pid of a process that exists) is :class:`OutputLockedError` even then;
    told by its content, not by flock, which would stand in that run's way for a moment."""
    try:   # non-blocking: a FIFO swapped in since resolve_output must not hang the check
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return
    except OSError:
        head = b""   # unreadable: it exists all the same
    else:
        try:
            head = os.pread(fd, 22, 0) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
        finally:
            os.close(fd)
    if target.name.endswith(".lock") and re.fullmatch(rb"\d{1,20}\n?", head) and _alive(int(head)):
        raise OutputLockedError(f"{what} {text} is the lock file of a running process (pid {int(head)}); refusing to "
                                "replace it (choose another path)")
    if not overwrite:
        raise FileExistsError(f"{what} {text} exists; refusing to replace a file this run did not write "
                              f"(--overwrite on the command line, overwrite=True from Python, replaces it{hint})")


def check_output(path: str | os.PathLike, what: str = "output", *, overwrite: bool = False) -> Path:
    """One file to write, checked before any work as :func:`check_outputs` checks each of its
    outputs: resolved (:func:`resolve_output`), not an existing file unless ``overwrite``
    (``FileExistsError``), never a live process's lock file, in an existing directory that
    takes a new file."""
    target = resolve_output(path, what)
    _check_creatable(target, os.fspath(path), what)
    check_new(target, os.fspath(path), what, overwrite)
    return target


def check_outputs(
    *,
    checkpoint: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
) -> Outputs:
    """Refuse, before any work, the output paths a run could not write or would clobber.

    ``checkpoint`` and ``plot`` (files to write): not empty, not a directory or special file,
    not an existing file unless ``overwrite`` (``FileExistsError``; a resumed run may continue
    its checkpoint in place), never a live run's lock file
    (:class:`OutputLockedError`), in an existing directory where a file can be created
    (:class:`OutputPathError`, ``FileNotFoundError`` for a missing directory,
    ``PermissionError`` for an unwritable one).
    ``resume`` (a file to read): an existing readable regular file (``FileNotFoundError``,
    :class:`OutputPathError`). ``plot`` may not be the same file as ``checkpoint`` or
    ``resume`` -- same resolved path, or the same inode through a hard link
    (:class:`OutputPathError`); ``checkpoint`` and ``resume`` may (a run continued in place).
    No output may be one of ``inputs`` (the data a run reads), another output's lock file
    (``NAME.lock``), nor may ``resume`` be an output's lock file.
    """
    resolved: dict[str, Path | None] = {"resume": None}
    if resume is not None:
        text = os.fspath(resume)
        if text == "":
            raise OutputPathError("resume path is empty")
        try:
            st = os.stat(text)
        except FileNotFoundError:
            raise FileNotFoundError(f"checkpoint {text} does not exist") from None
        except OSError as e:
            raise OutputPathError(f"resume checkpoint {text}: {e.strerror or e}") from None
        if not stat.S_ISREG(st.st_mode):
            raise OutputPathError(f"resume checkpoint {text} is {_kind(st.st_mode)}, not a regular file")
        if not os.access(text, os.R_OK):
            raise PermissionError(f"resume checkpoint {text} is not readable")
        resolved["resume"] = Path(os.path.realpath(text))
    for what, path in (("checkpoint", checkpoint), ("plot", plot)):
        if path is None:
            resolved[what] = None
            continue
        resolved[what] = resolve_output(path, what)
        _check_creatable(resolved[what], os.fspath(path), what)
    given = {"checkpoint": checkpoint, "plot": plot, "resume": resume}
    for what in ("checkpoint", "plot"):
        target = resolved[what]
        if target is None:
            continue
        for data in inputs:
            if same_file(target, Path(os.path.realpath(data))):
                why = ("refusing to overwrite the data a run reads" if os.path.lexists(data)
                       else "a name the data is looked up under, so later runs would read the output as data")
                raise OutputPathError(f"{what} path {os.fspath(given[what])} is the input file {data}; {why}")
        lock = lock_path(target)
        for other in ("checkpoint", "plot", "resume"):
            if other != what and resolved[other] is not None and same_file(resolved[other], lock):
                raise OutputPathError(f"{other} path {os.fspath(given[other])} is the lock file of {what} "
                                      f"{os.fspath(given[what])} ({lock}); choose another name")
    for a, b in (("plot", "checkpoint"), ("plot", "resume")):
        pa, pb = resolved[a], resolved[b]
        if pa is None or pb is None:
            continue
        if same_file(pa, pb):
            raise OutputPathError(
                f"{a} path {os.fspath(given[a])} and {b} path {os.fspath(given[b])} are the same file "
                f"({pa}); the plot would overwrite the {'checkpoint' if b == 'checkpoint' else 'checkpoint to resume from'}"
            )
    for what in ("checkpoint", "plot"):   # last: the errors above say more about an existing file
        target = resolved[what]
        if target is not None:   # a resumed run continues its checkpoint in place (whose plot is which, no file says)
            own = what == "checkpoint" and resolved["resume"] is not None and same_file(target, resolved["resume"])
            hint = f"; --resume {os.fspath(given[what])} continues it" if what == "checkpoint" and resume is None else ""
            check_new(target, os.fspath(given[what]), what, overwrite or own, hint)
    return Outputs(resolved["checkpoint"], resolved["plot"], resolved["resume"])


def discard(stream) -> None:
    """Point ``stream``'s descriptor at /dev/null: a reader that stopped reading (``| head``)
    leaves the rest of a report, and the flush at exit, nowhere to fail."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, stream.fileno())
    finally:
        os.close(null)


def same_file(a: Path, b: Path) -> bool:
    """The same resolved path, or the same inode (a hard link)."""
    return a == b or (a.exists() and b.exists() and os.path.samefile(a, b))
