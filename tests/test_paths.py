"""Output paths (issue 13): checked before any work, never a special file replaced, symlinks
written through, one writer per path (a lock, tested across processes), failures that name the
file, and temporaries of killed writers removed by the next writer."""

from __future__ import annotations

import errno
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from manual_backprop.app import checkpoint as ck
from manual_backprop.app import paths
from manual_backprop.app.checkpoint import write_atomically

REPO = Path(__file__).resolve().parents[1]
ROOT = os.geteuid() == 0


def _special(kind: str, path: Path) -> Path:
    """A directory, FIFO, socket or character device (a twin of /dev/null) at ``path``."""
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()  # the socket file stays
    elif kind == "device":
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except (PermissionError, OSError) as e:
            pytest.skip(f"cannot create a device node here ({e})")
    return path


def _kind_of(path: Path) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


# ------------------------------------------------------------------ check_outputs


@pytest.mark.parametrize("kind", ["directory", "fifo", "socket", "device"])
@pytest.mark.parametrize("what", ["checkpoint", "plot"])
def test_check_outputs_refuses_special_files(tmp_path, kind, what):
    target = _special(kind, tmp_path / "out")
    with pytest.raises(paths.OutputPathError, match=rf"{what} path {target} is a .*not a regular file"):
        paths.check_outputs(**{what: target})


@pytest.mark.parametrize(
    "path, error, message",
    [
        ("", paths.OutputPathError, "checkpoint path is empty"),
        ("{tmp}/", paths.OutputPathError, "names a directory"),
        ("{tmp}/absent/c.npz", FileNotFoundError, "checkpoint directory .*absent does not exist"),
        ("/proc/c.npz", paths.OutputPathError, "cannot create a regular file in /proc"),
        ("/proc/self/status", paths.OutputPathError, "cannot create a regular file in /proc/"),
    ],
)
def test_check_outputs_refuses_uncreatable_checkpoints(tmp_path, path, error, message):
    with pytest.raises(error, match=message):
        paths.check_outputs(checkpoint=path.format(tmp=tmp_path))


@pytest.mark.parametrize("path", ["/proc/curve.png", "/proc/self/cmdline", "/sys/curve.png"])
def test_check_outputs_refuses_plots_in_proc_and_sys(path):
    if not Path(path).parent.is_dir():
        pytest.skip(f"{Path(path).parent} is not mounted here")
    # The kernel's errno differs (ENOENT in /proc, EACCES or EROFS in /sys): either refusal,
    # naming the plot, before any work.
    with pytest.raises((paths.OutputPathError, PermissionError), match=rf"plot .*{path}") as info:
        paths.check_outputs(plot=path)
    assert "cannot create a regular file" in str(info.value) or "is not writable" in str(info.value)


@pytest.mark.skipif(ROOT, reason="root writes into any directory")
def test_check_outputs_refuses_an_unwritable_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(PermissionError, match=r"plot directory .*ro is not writable"):
        paths.check_outputs(plot=ro / "c.png")


def test_check_outputs_leaves_nothing_behind_and_resolves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real.npz").write_bytes(b"x")
    (tmp_path / "link.npz").symlink_to("real.npz")
    out = paths.check_outputs(checkpoint="link.npz", plot="c.png", resume="link.npz")
    assert out == paths.Outputs(tmp_path / "real.npz", tmp_path / "c.png", tmp_path / "real.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "real.npz"]  # the probe is gone


def test_check_outputs_refuses_overlapping_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = tmp_path / "c.npz"
    c.write_bytes(b"checkpoint")
    (tmp_path / "sym.npz").symlink_to(c)
    os.link(c, tmp_path / "hard.npz")
    (tmp_path / "sub").mkdir()
    overlaps = [
        dict(checkpoint=c, plot=c),
        dict(checkpoint="c.npz", plot=str(c)),  # relative and absolute spellings
        dict(checkpoint="./sub/../c.npz", plot="c.npz"),
        dict(checkpoint=c, plot=tmp_path / "sym.npz"),  # through a symlink
        dict(checkpoint=c, plot=tmp_path / "hard.npz"),  # a hard link: same inode
        dict(resume=c, plot=c),
        dict(resume=tmp_path / "hard.npz", plot=c),
        dict(checkpoint=tmp_path / "new.npz", plot=tmp_path / "new.npz"),  # neither exists yet
    ]
    for kwargs in overlaps:
        with pytest.raises(paths.OutputPathError, match="are the same file.*the plot would overwrite the checkpoint"):
            paths.check_outputs(**kwargs)
    assert c.read_bytes() == b"checkpoint"
    paths.check_outputs(checkpoint=c, resume=tmp_path / "sym.npz")  # continuing in place is fine


def test_check_outputs_resume_must_be_a_readable_regular_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        paths.check_outputs(resume=tmp_path / "absent.npz")
    with pytest.raises(paths.OutputPathError, match="resume checkpoint .* is a FIFO, not a regular file"):
        paths.check_outputs(resume=_special("fifo", tmp_path / "f"))
    with pytest.raises(paths.OutputPathError, match="is a directory"):
        paths.check_outputs(resume=tmp_path)
    with pytest.raises(paths.OutputPathError, match="resume path is empty"):
        paths.check_outputs(resume="")


# ------------------------------------------------------------------ writing


@pytest.mark.parametrize("kind", ["fifo", "socket", "device", "directory"])
def test_a_special_file_is_never_replaced(tmp_path, kind):
    target = _special(kind, tmp_path / "c.npz")
    before = _kind_of(target)
    with pytest.raises(paths.OutputPathError, match="not a regular file; refusing to replace it"):
        ck.save_checkpoint(target, [np.zeros((3, 2))])
    with pytest.raises(paths.OutputPathError, match="not a regular file"):
        write_atomically(target, lambda f: f.write(b"x"))
    assert _kind_of(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_a_symlink_is_written_through_to_its_target(tmp_path):
    real = tmp_path / "runs" / "real.npz"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "latest.npz"
    link.symlink_to(real)
    write_atomically(link, lambda f: f.write(b"new"))
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"new"
    dangling = tmp_path / "dangling.npz"
    dangling.symlink_to(tmp_path / "runs" / "made.npz")
    write_atomically(dangling, lambda f: f.write(b"made"))
    assert dangling.is_symlink() and (tmp_path / "runs" / "made.npz").read_bytes() == b"made"


def test_a_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    ck.save_checkpoint(path, [np.full((3, 2), 1.0)], tag="old")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=rf"could not write {path}: No space left on device; "
                                      rf"the previous checkpoint {path} is intact") as info:
        ck.save_checkpoint(path, [np.full((3, 2), 2.0)], tag="new")
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match=rf"could not write {tmp_path / 'new.json'}: .*no output was written"):
        write_atomically(tmp_path / "new.json", lambda f: f.write(b"{}"))
    monkeypatch.undo()
    assert ck.load_checkpoint(path)[1]["tag"] == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]  # no temporary, no lock file


@pytest.mark.parametrize("where", ["save", "check_outputs"])
def test_an_interrupt_as_the_temporary_is_made_leaves_nothing_behind(tmp_path, monkeypatch, where):
    """Ctrl-C (or SIGTERM, which the command line turns into the same unwinding) landing just
    after the temporary file is made and before its name is returned: the file is removed, the
    previous checkpoint kept. tempfile.mkstemp's files were left behind there (the SIGTERM test
    of tests/test_training.py failed about one run in eight)."""
    path = tmp_path / "c.npz"
    ck.save_checkpoint(path, [np.full((3, 2), 1.0)], tag="old")
    real_open = os.open

    def made_then_interrupted(name, flags, *args, **kwargs):
        fd = real_open(name, flags, *args, **kwargs)
        if ".tmp-" not in os.fsdecode(name):       # the lock file: opened as usual
            return fd
        os.close(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "open", made_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        if where == "save":
            ck.save_checkpoint(path, [np.full((3, 2), 2.0)], tag="new")
        else:
            paths.check_outputs(checkpoint=tmp_path / "d.npz", plot=None, resume=None)
    monkeypatch.undo()
    assert ck.load_checkpoint(path)[1]["tag"] == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]  # no temporary, no lock file


@pytest.mark.signals
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_an_interrupt_inside_np_savez_is_delivered_once_the_checkpoint_is_in_place(tmp_path, monkeypatch, signame):
    """A signal landing as ``zipfile`` closes a member of ``np.savez``: the close never ran, and
    closing the archive raised ``ValueError: Can't close the ZIP file while there is an open
    writing handle``, which the command line reported as an error, exit 1 (CI, 2026-12-03: the
    SIGHUP test of tests/test_training.py). Now the signal waits for the write: the new file is
    in place, then the handler raises."""
    import zipfile

    def interrupt(signum, frame):     # as the command line turns SIGTERM and SIGHUP into Ctrl-C
        raise KeyboardInterrupt

    sig = getattr(signal, signame)
    previous = signal.signal(sig, interrupt)
    path = tmp_path / "c.npz"
    ck.save_checkpoint(path, [np.full((3, 2), 1.0)], tag="old")
    real_close = zipfile._ZipWriteFile.close

    armed = []

    def close_interrupted(self):
        if armed:                     # once, in this save only (not from a __del__ later)
            armed.clear()
            os.kill(os.getpid(), sig)     # pending; Python runs the handler at the next line
        real_close(self)

    monkeypatch.setattr(zipfile._ZipWriteFile, "close", close_interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            armed.append(True)
            ck.save_checkpoint(path, [np.full((3, 2), 2.0)], tag="new")
    finally:
        armed.clear()
        signal.signal(sig, previous)
    monkeypatch.undo()
    assert signal.getsignal(sig) is previous
    assert ck.load_checkpoint(path)[1]["tag"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]  # no temporary, no lock file


def _handlers():
    return {s: signal.getsignal(s) for s in paths._INTERRUPTS}


@pytest.mark.signals
@pytest.mark.parametrize("window", ["installing", "restoring"])
def test_interrupts_deferred_puts_every_handler_back_whatever_raises_meanwhile(monkeypatch, window):
    """A handler raising while interrupts_deferred swaps the handlers in or out (another signal
    arriving then) left the rest replaced for good: a later SIGTERM swallowed, the process alive
    (a review, 2026-12-03). The swap is simulated raising just after one handler is put in
    (installing) or put back (restoring)."""
    before = _handlers()
    real = signal.signal
    fired = []

    def swap(s, handler):
        old = real(s, handler)
        putting_back = handler is before.get(s)
        if s == signal.SIGTERM and not fired and putting_back == (window == "restoring"):
            fired.append(s)
            raise KeyboardInterrupt       # what a raising handler does at the next bytecode
        return old

    monkeypatch.setattr(signal, "signal", swap)
    with pytest.raises(KeyboardInterrupt):
        with paths.interrupts_deferred():
            pass
    monkeypatch.undo()
    assert fired == [signal.SIGTERM] and _handlers() == before


def test_every_held_signal_is_delivered_though_the_first_raises():
    """Ctrl-C and SIGTERM both held: Ctrl-C's handler raises, and SIGTERM's still runs."""
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with pytest.raises(KeyboardInterrupt):
            with paths.interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIGTERM]


def test_a_lock_file_that_cannot_be_made_says_so_without_an_errno_prefix(tmp_path):
    """A directory where NAME.lock goes: "[Errno 21] cannot create the lock file ..." (a review,
    2026-12-05); the message now reads as the others, the errno kept on the exception."""
    (tmp_path / "c.npz.lock").mkdir()
    with pytest.raises(OSError) as raised:
        with paths.OutputLock(tmp_path / "c.npz", "checkpoint"):
            pass
    assert str(raised.value).startswith("cannot create the lock file ") and raised.value.errno == errno.EISDIR


def test_an_interrupt_delivered_as_the_lock_is_taken_leaves_it_free(tmp_path, monkeypatch):
    """An interrupt held while acquire takes the lock is delivered as acquire ends, before a
    caller's ``with`` holds the lock: acquire must let it go, or the path stays locked in this
    process for good (a review, 2026-12-03)."""
    target = tmp_path / "c.npz"
    real = paths.OutputLock._lock_file

    def taken_interrupted(self):
        fd = real(self)
        os.kill(os.getpid(), signal.SIGINT)   # held until acquire's deferral ends
        return fd

    monkeypatch.setattr(paths.OutputLock, "_lock_file", taken_interrupted)
    with pytest.raises(KeyboardInterrupt):
        with paths.OutputLock(target):
            pass
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    paths.OutputLock(target).acquire().release()    # this process can take it again


def test_a_lock_released_as_an_interrupt_lands_leaves_no_lock_file(tmp_path, monkeypatch):
    """Ctrl-C between release's check that the lock file is still ours and its unlink left
    ``PATH.lock`` behind at the end of a run (a review, 2026-12-03): now the release finishes,
    then the interrupt is raised."""
    target = tmp_path / "c.npz"
    lock = paths.OutputLock(target).acquire()
    real_stat = os.stat

    def stat_interrupted(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if os.fspath(path) == os.fspath(lock.lock_path):
            os.kill(os.getpid(), signal.SIGINT)   # Python's own handler raises at the next line
        return result

    monkeypatch.setattr(os, "stat", stat_interrupted)
    with pytest.raises(KeyboardInterrupt):
        lock.release()
    monkeypatch.undo()
    assert not lock.held and list(tmp_path.iterdir()) == []
    paths.OutputLock(target).acquire().release()    # this process can take it again


@pytest.mark.signals
def test_sigterm_with_its_default_action_ends_the_process_after_the_write(tmp_path):
    """Where nothing handles SIGTERM (a library user's script), it still waits for the write:
    the process ends by the signal, the file complete, no temporary or lock left."""
    script = textwrap.dedent(
        """
        import os, signal, sys
        from manual_backprop.app.paths import write_atomically

        def write(f):
            f.write(b"first half, ")
            os.kill(os.getpid(), signal.SIGTERM)
            f.write(b"second half")

        write_atomically(sys.argv[1], write)
        print("not reached", flush=True)
        """
    )
    path = tmp_path / "out.bin"
    run = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert run.returncode == -signal.SIGTERM and "not reached" not in run.stdout, run.stderr
    assert path.read_bytes() == b"first half, second half"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


# ------------------------------------------------------------------ one writer per path

HOLDER = textwrap.dedent(
    """
    import sys, time
    from manual_backprop.app.checkpoint import CheckpointLock
    with CheckpointLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def _holder(tmp_path: Path, target: Path) -> subprocess.Popen:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(script), str(target)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _stop(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=30)
    proc.stdout.close()


def test_a_second_run_is_refused_naming_path_and_pid(tmp_path):
    target = tmp_path / "c.npz"
    proc = _holder(tmp_path, target)
    try:
        with pytest.raises(paths.OutputLockedError, match=rf"checkpoint {target} is being written by another run "
                                                         rf"\(pid {proc.pid}, lock {target}\.lock\)"):
            ck.CheckpointLock(target, "checkpoint").acquire()
        with pytest.raises(paths.OutputLockedError, match=rf"pid {proc.pid}"):  # a bare save as well
            ck.save_checkpoint(target, [np.zeros((3, 2))])
        (tmp_path / "alias.npz").symlink_to(target)
        with pytest.raises(paths.OutputLockedError, match=rf"pid {proc.pid}"):  # another spelling
            paths.OutputLock(tmp_path / "alias.npz").acquire()
        assert not target.exists()
    finally:
        _stop(proc)
    # The holder was killed: the kernel dropped its flock; its stale lock file is taken over.
    assert (tmp_path / "c.npz.lock").exists()
    with paths.lock_outputs(checkpoint=target, plot=tmp_path / "c.png") as held:
        assert [h.held for h in held] == [True, True]
        assert (tmp_path / "c.npz.lock").read_text() == f"{os.getpid()}\n"
        ck.save_checkpoint(target, [np.zeros((3, 2))])  # the holder itself may write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alias.npz", "c.npz", "holder.py"]


def test_two_locks_in_one_process_are_refused(tmp_path):
    with paths.OutputLock(tmp_path / "c.npz"):
        with pytest.raises(paths.OutputLockedError, match=rf"already being written by this process \(pid {os.getpid()}"):
            paths.OutputLock(tmp_path / "c.npz").acquire()
    with paths.OutputLock(tmp_path / "c.npz"):  # released: free again
        pass


# ------------------------------------------------------------------ temporaries of dead writers


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid  # reaped: no such process (until the pid is reused, which only keeps files)


def test_only_dead_writers_temporaries_of_this_target_are_removed(tmp_path):
    dead, live = _dead_pid(), os.getppid()
    files = {
        f".c.npz.tmp-{dead}-abc123xy": False,  # this target, writer gone: removed
        f".c.npz.tmp-{live}-abc123xy": True,  # this target, writer alive: kept
        f".d.npz.tmp-{dead}-abc123xy": True,  # another target: kept
        f".c.npz.x.tmp-{dead}-abc123xy": True,  # another target whose name extends this one
        ".c.npz.abc123xy.tmp": True,  # not ours to judge: kept
        f".c.npz.tmp-{dead}-notours_dir": True,  # not a suffix we write (8 characters): kept
        f".c.npz.tmp-{dead}-ABC123XY": True,   # nor is this
    }
    for name in files:
        (tmp_path / name).write_bytes(b"partial")
    ck.save_checkpoint(tmp_path / "c.npz", [np.zeros((3, 2))])
    kept = {p.name for p in tmp_path.iterdir()} - {"c.npz"}
    assert kept == {name for name, keep in files.items() if keep}
    with pytest.raises(RuntimeError, match="needs the target's OutputLock held"):
        paths.cleanup_temporaries(tmp_path / "c.npz")


def test_a_written_file_keeps_the_mode_it_had_or_gets_the_umasks(tmp_path):
    """mkstemp makes 0600: every checkpoint and plot used to come out unreadable to the group,
    and a file the user had made 0644 lost its mode on the first save."""
    new, old = tmp_path / "new.bin", tmp_path / "old.bin"
    old.write_bytes(b"before")
    old.chmod(0o640)
    mask = os.umask(0o027)   # not the usual 022: a constant in place of the umask would fail here
    try:
        paths.write_atomically(new, lambda f: f.write(b"x"))
        paths.write_atomically(old, lambda f: f.write(b"after"))
    finally:
        os.umask(mask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o640
    assert stat.S_IMODE(old.stat().st_mode) == 0o640 and old.read_bytes() == b"after"


def test_a_file_named_like_a_lock_is_never_taken_over(tmp_path):
    """An existing NAME.lock that holds anything but a pid is the user's, not a stale lock: it
    used to be emptied, written with our pid and deleted at the end of the run."""
    target = tmp_path / "model.npz"
    notes = tmp_path / "model.npz.lock"
    notes.write_text("my notes\n")
    with pytest.raises(paths.OutputPathError, match="is not a lock file"):
        paths.OutputLock(target, "checkpoint").acquire()
    assert notes.read_text() == "my notes\n" and not target.exists()
    notes.write_text("0" * 64 + "\nmy notes\n")   # digits first, then more: still not a lock
    with pytest.raises(paths.OutputPathError, match="is not a lock file"):
        paths.OutputLock(target, "checkpoint").acquire()
    assert notes.read_text().endswith("my notes\n")
    with pytest.raises(paths.OutputPathError, match="is the lock file of checkpoint"):
        paths.check_outputs(checkpoint=target, resume=notes)
    data = tmp_path / "train-images-idx3-ubyte.gz"
    data.write_bytes(b"")
    with pytest.raises(paths.OutputPathError, match="is the input file"):
        paths.check_outputs(plot=tmp_path / "." / data.name, inputs=[data])


def test_only_a_pid_line_is_taken_for_a_stale_lock(tmp_path):
    """A pid is at most 20 digits and a newline; 22 digits are someone's file."""
    target = tmp_path / "run.npz"
    lock = tmp_path / "run.npz.lock"
    lock.write_bytes(b"9" * 22)
    with pytest.raises(paths.OutputPathError, match="is not a lock file"):
        paths.OutputLock(target).acquire()
    lock.write_bytes(b"4194303\n")   # a dead run's pid: taken over, and removed on release
    with paths.OutputLock(target):
        assert lock.read_text() == f"{os.getpid()}\n"
    assert not lock.exists()


# ---------------------------------------------------------------- existing files: another run's, or the user's


def test_an_existing_output_is_refused_unless_overwrite_or_the_checkpoint_being_resumed(tmp_path):
    done, notes = tmp_path / "done.npz", tmp_path / "notes.txt"
    done.write_bytes(b"another run's checkpoint")
    notes.write_text("my notes\n")
    for kw in (dict(checkpoint=done), dict(plot=notes), dict(checkpoint=tmp_path / "new.npz", plot=done)):
        with pytest.raises(FileExistsError, match="exists; refusing to replace a file this run did not write"):
            paths.check_outputs(**kw)
    assert paths.check_outputs(checkpoint=done, plot=notes, overwrite=True).checkpoint == done
    assert paths.check_outputs(checkpoint=done, resume=done).checkpoint == done          # continued in place
    with pytest.raises(FileExistsError):           # a plot is no run's own: resuming does not license replacing one
        paths.check_outputs(plot=notes, resume=done)
    with pytest.raises(FileExistsError, match=r"--resume .*done.npz continues it"):
        paths.check_outputs(checkpoint=done, resume=None)
    other = tmp_path / "other.npz"
    other.write_bytes(b"x")
    with pytest.raises(FileExistsError) as e:       # resuming done.npz: no hint to resume other.npz instead
        paths.check_outputs(checkpoint=other, resume=done)
    assert "--resume" not in str(e.value)
    link = tmp_path / "link.npz"
    link.symlink_to(done)                               # written through: its target exists
    with pytest.raises(FileExistsError):
        paths.check_output(link, "checkpoint")
    assert done.read_bytes() == b"another run's checkpoint" and notes.read_text() == "my notes\n"


def test_a_live_lock_file_is_never_an_output_and_a_replaced_lock_is_not_deleted(tmp_path):
    """A second run given ``--checkpoint a.npz.lock --overwrite`` while a first holds a.npz's lock
    used to replace the lock file with its checkpoint, and the first run's release then deleted
    that checkpoint."""
    target = tmp_path / "a.npz"
    with paths.OutputLock(target) as lock:
        with pytest.raises(paths.OutputLockedError, match="lock file of a running process"):
            paths.check_outputs(checkpoint=lock.lock_path, overwrite=True)
        other = tmp_path / "other"
        other.write_bytes(b"a file renamed over the lock")
        os.replace(other, lock.lock_path)
    assert lock.lock_path.read_bytes() == b"a file renamed over the lock"


def test_a_lock_file_that_cannot_be_written_is_an_error_naming_it(tmp_path, monkeypatch):
    """A full disk at the start of a run: '[Errno 28] No space left on device', no path."""
    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(OSError, match=r"cannot write the lock file .*c\.npz\.lock for output .*No space left") as info:
        paths.OutputLock(tmp_path / "c.npz").acquire()
    assert info.value.errno == errno.ENOSPC


# ------------------------------------------------------------------ long names


@pytest.mark.parametrize("name", ["c" * 229 + ".npz",      # the longest whose temporary keeps it whole
                                  "c" * 230 + ".npz",      # the shortest whose temporary shortens it
                                  "c" * 246 + ".npz",      # the longest whose lock keeps it whole
                                  "c" * 247 + ".npz",
                                  "c" * 251 + ".npz",      # NAME_MAX (255 bytes)
                                  "é" * 124 + "cc.npz"])   # 254 bytes of UTF-8, cut between characters
def test_every_name_the_file_system_takes_can_be_saved_locked_and_cleaned(tmp_path, name):
    target = tmp_path / name
    dead = _dead_pid()
    with paths.OutputLock(target) as lock:
        lock_name = lock.lock_path.name
        assert lock.lock_path.exists() and len(os.fsencode(lock_name)) <= 255 and lock_name.endswith(".lock")
        with pytest.raises(paths.OutputLockedError, match="already being written by this process"):
            paths.OutputLock(tmp_path / name).acquire()           # the same lock file, derived again
        stray = paths._temp_prefix(target).replace(f"-{os.getpid()}-", f"-{dead}-") + "abc123xy"
        assert len(os.fsencode(stray)) <= 255
        (tmp_path / stray).write_bytes(b"partial")                # what a killed writer left
    ck.save_checkpoint(target, [np.zeros((3, 2))])
    assert [p.name for p in tmp_path.iterdir()] == [name]      # the stray removed, no lock left
    np.testing.assert_array_equal(ck.load_checkpoint(target)[0][0], np.zeros((3, 2)))
    whole = len(os.fsencode(name)) + 5 <= 255
    assert (lock_name == name + ".lock") == whole


def test_long_names_that_share_a_prefix_get_their_own_locks_and_temporaries(tmp_path):
    a, b = tmp_path / ("c" * 247 + "a.npz"), tmp_path / ("c" * 247 + "b.npz")
    assert paths.lock_path(a) != paths.lock_path(b) and paths._temp_prefix(a) != paths._temp_prefix(b)
    with paths.OutputLock(a), paths.OutputLock(b):                # two runs, two files: no clash
        ck.save_checkpoint(a, [np.zeros((3, 2))])
        ck.save_checkpoint(b, [np.ones((3, 2))])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([a.name, b.name])


def test_a_name_past_name_max_is_refused_before_any_work(tmp_path):
    with pytest.raises((paths.OutputPathError, OSError), match="too long"):
        paths.check_outputs(checkpoint=tmp_path / ("c" * 252 + ".npz"), plot=None, resume=None)
