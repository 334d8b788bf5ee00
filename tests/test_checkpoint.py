"""Checkpoints: bit-exact round trips, clear errors on bad files, and atomic writes that survive
a process killed mid-save (tested with real subprocesses and SIGKILL)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import examples
from support import bits, call_on_a_fifo

from manual_backprop.app.checkpoint import FORMAT, load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[1]


def make_params(sizes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((a + 1, b)).astype(dtype) for a, b in zip(sizes[:-1], sizes[1:])]


@settings(max_examples=examples(40), deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
    special=st.booleans(),
)
def test_round_trip_is_bit_exact(tmp_path_factory, sizes, dtype, seed, special):
    params = make_params(sizes, dtype, seed)
    if special:  # values whose bits a careless format would change
        params[0].flat[: 4] = np.array([-0.0, np.nan, np.inf, np.finfo(dtype).tiny / 4], dtype)[: params[0].size]
    velocity = [np.full_like(W, 0.5) for W in params]
    meta = dict(activation="tanh", epoch=3, history=[{"epoch": 1, "loss": 0.1 + 0.2}],
                velocity=velocity, perm=np.arange(5, dtype=np.int64), note=None, shift=1 / 3)
    path = tmp_path_factory.mktemp("ck") / "c.npz"
    save_checkpoint(path, params, **meta)
    loaded, got = load_checkpoint(path)
    assert bits(loaded) == bits(params)
    assert bits(got["velocity"]) == bits(velocity)
    assert bits([got["perm"]]) == bits([meta["perm"]])
    for key in ("activation", "epoch", "history", "note", "shift"):
        assert got[key] == meta[key]
    assert got["layer_sizes"] == sizes and got["dtype"] == np.dtype(dtype).name
    assert [p.name for p in path.parent.iterdir()] == ["c.npz"]  # no temporary file left behind


def test_a_layered_networks_0_d_and_strided_arrays_round_trip(tmp_path):
    """A review (2026-12-05): a layered network with a 0-d parameter (a learned scale) was saved
    as shape (1,), np.ascontiguousarray's, while the manifest said (); load_checkpoint then
    refused the file it had just written."""
    rng = np.random.default_rng(0)
    params = [(rng.standard_normal((3, 2)).astype(np.float32), np.full((), 0.5, np.float32)),
              (rng.standard_normal((2, 4)).astype(np.float32).T,)]      # strided: saved C-ordered
    save_checkpoint(tmp_path / "c.npz", params, model="mynet")
    loaded, meta = load_checkpoint(tmp_path / "c.npz")
    assert [[a.shape for a in p] for p in loaded] == [[(3, 2), ()], [(4, 2)]]
    assert bits([a for p in loaded for a in p]) == bits([a for p in params for a in p])
    assert meta["model"] == "mynet"


def test_overwrite_replaces_previous(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, make_params([3, 2], np.float64), tag="old")
    save_checkpoint(path, make_params([4, 5, 2], np.float32), tag="new")
    params, meta = load_checkpoint(path)
    assert meta["tag"] == "new" and meta["layer_sizes"] == [4, 5, 2]


def test_save_refuses_bad_input_before_touching_the_file(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, make_params([3, 2], np.float64), tag="old")
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(path, make_params([3, 2], np.float64), bad=object())
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(path, make_params([3, 2], np.float64), dtype="float32")
    with pytest.raises(ValueError, match="at most 100000 arrays with its manifest; these params and metadata make 100002"):
        save_checkpoint(path, make_params([3, 2], np.float64), many=[np.zeros(1)] * 100_000)   # load refuses more
    with pytest.raises(ValueError, match="do not chain"):
        save_checkpoint(path, [np.zeros((3, 2)), np.zeros((4, 2))])
    for empty in (np.empty(3, np.void), np.empty(2, dtype=[])):   # written, then refused by load (a review)
        with pytest.raises(TypeError, match=r"^checkpoint array meta_array_extra has dtype \|V0, whose entries have no size$"):
            save_checkpoint(path, make_params([3, 2], np.float64), extra=empty)
    assert load_checkpoint(path)[1]["tag"] == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_save_into_missing_directory_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        save_checkpoint(tmp_path / "absent" / "c.npz", make_params([3, 2], np.float64))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.npz")


def _rewrite(path: Path, out: Path, *, drop=(), replace=None):
    """Copy the archive at ``path`` to ``out`` without the members in ``drop``, with ``replace``d ones."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in drop}
    arrays.update(replace or {})
    with open(out, "wb") as f:
        np.savez(f, **arrays)
    return out


def _manifest(path: Path) -> dict:
    with np.load(path) as npz:
        return json.loads(str(npz["manifest"][()]))


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "good.npz"
    save_checkpoint(path, make_params([5, 4, 3], np.float32), velocity=make_params([5, 4, 3], np.float32, 1))
    return path


def test_corrupt_and_mismatched_files_give_value_errors(good, tmp_path):
    raw = good.read_bytes()
    cases = {
        "empty": b"",
        "random": os.urandom(500),
        "truncated": raw[: len(raw) // 2],
        "zip-header-only": raw[:30],
    }
    flipped = bytearray(raw)
    flipped[200] ^= 0xFF  # inside param_0's data: the zip CRC check must notice
    cases["flipped"] = bytes(flipped)
    for name, content in cases.items():
        p = tmp_path / f"{name}.npz"
        p.write_bytes(content)
        with pytest.raises(ValueError, match="not a valid manual_backprop checkpoint"):
            load_checkpoint(p)

    p = tmp_path / "array.npy"
    np.save(p, np.zeros(3))
    with pytest.raises(ValueError, match="not an .npz"):
        load_checkpoint(p)

    p = tmp_path / "foreign.npz"
    np.savez(p, a=np.zeros(3))
    with pytest.raises(ValueError, match="no manifest"):
        load_checkpoint(p)

    with pytest.raises(ValueError, match="missing param_1"):
        load_checkpoint(_rewrite(good, tmp_path / "m1.npz", drop=["param_1"]))
    with pytest.raises(ValueError, match="missing array meta_list_velocity_1"):
        load_checkpoint(_rewrite(good, tmp_path / "m2.npz", drop=["meta_list_velocity_1"]))
    with pytest.raises(ValueError, match="param_0 is float64"):
        load_checkpoint(_rewrite(good, tmp_path / "m3.npz", replace={"param_0": np.zeros((6, 4))}))
    with pytest.raises(ValueError, match=r"shape \(7, 4\)"):
        load_checkpoint(_rewrite(good, tmp_path / "m4.npz", replace={"param_0": np.zeros((7, 4), np.float32)}))
    with pytest.raises(ValueError, match="unexpected arrays"):
        load_checkpoint(_rewrite(good, tmp_path / "m5.npz", replace={"extra": np.zeros(1)}))

    for edit, message in [
        ({"version": 99}, "version 99"),
        ({"format": "other"}, "format"),
        ({"layer_sizes": [5, 4]}, "unexpected arrays"),
        ({"layer_sizes": [5, 0, 3]}, "incomplete manifest"),
        ({"dtype": "int8"}, "incomplete manifest"),
        # a key load_checkpoint derives, or one key stored twice: the file says two things
        ({"metadata": {"model": "cnn"}}, r"key\(s\) \['model'\] reserved or stored twice"),
        ({"metadata": {"layer_sizes": [9, 9]}}, r"\['layer_sizes'\] reserved"),
        ({"metadata": {"velocity": [[0.0]]}}, r"\['velocity'\] reserved or stored twice"),
    ]:
        m = {**_manifest(good), **edit}
        bad = _rewrite(good, tmp_path / "edit.npz", replace={"manifest": np.array(json.dumps(m))})
        with pytest.raises(ValueError, match=message):
            load_checkpoint(bad)
    bad = _rewrite(good, tmp_path / "nojson.npz", replace={"manifest": np.array("{not json")})
    with pytest.raises(ValueError, match="not JSON"):
        load_checkpoint(bad)


@settings(max_examples=examples(60), deadline=None)
@given(cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=3))
def test_damaged_checkpoints_only_ever_raise_value_error(tmp_path_factory, cut, flips):
    d = tmp_path_factory.mktemp("dmg")
    path = d / "c.npz"
    save_checkpoint(path, make_params([4, 3, 2], np.float64), history=[1, 2], velocity=make_params([4, 3, 2], np.float64))
    raw = bytearray(path.read_bytes())
    raw = raw[: len(raw) - cut % len(raw)] if cut else raw
    for at, x in flips:
        if raw:
            raw[at % len(raw)] ^= x
    path.write_bytes(bytes(raw))
    try:
        params, meta = load_checkpoint(path)
    except ValueError as e:
        assert str(path) in str(e)
        return
    assert meta["layer_sizes"] == [4, 3, 2]  # damage the checks could not see (e.g. zip padding)


# ------------------------------------------------- killed while saving: the old file survives

CHILD = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from manual_backprop.app import checkpoint as ck

    path, mode = sys.argv[1], sys.argv[2]
    ck.save_checkpoint(path, [np.full((3, 2), 1.0)], tag="old")
    print("old saved", flush=True)
    if mode == "stall":
        def stall(fd):  # the new archive is fully written to the temp file, not yet renamed
            print("writing", flush=True)
            time.sleep(60)
        ck.os.fsync = stall
        ck.save_checkpoint(path, [np.full((3, 2), 2.0)], tag="new")
    else:  # save big checkpoints over and over until killed
        big = [np.random.default_rng(0).standard_normal((1001, 1000))]
        for i in range(10**6):
            ck.save_checkpoint(path, big, tag=f"big{i}")
            print("saved", i, flush=True)
    """
)


def _run_child(tmp_path: Path, mode: str, wait_for: str, extra_lines: int = 0) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "c.npz"), mode],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    deadline = time.monotonic() + 60
    seen = 0
    for line in proc.stdout:
        if line.startswith(wait_for):
            seen += 1
            if seen > extra_lines:
                break
        assert time.monotonic() < deadline, "child did not reach the save"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def test_killed_before_rename_leaves_previous_checkpoint(tmp_path):
    proc = _run_child(tmp_path, "stall", "writing")
    _kill(proc)
    params, meta = load_checkpoint(tmp_path / "c.npz")
    assert meta["tag"] == "old"
    np.testing.assert_array_equal(params[0], np.full((3, 2), 1.0))
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".c.npz.")]
    assert len(leftovers) == 1  # the new archive was written out, and never replaced the old one


@pytest.mark.parametrize("delay", [0.0, 0.013, 0.037])
def test_killed_at_any_moment_leaves_a_loadable_checkpoint(tmp_path, delay):
    proc = _run_child(tmp_path, "loop", "saved", extra_lines=1)
    time.sleep(delay)
    _kill(proc)
    params, meta = load_checkpoint(tmp_path / "c.npz")
    assert meta["tag"].startswith("big") and params[0].shape == (1001, 1000)
    np.testing.assert_array_equal(params[0], np.random.default_rng(0).standard_normal((1001, 1000)))


def test_zip_member_names_are_documented(good):
    with zipfile.ZipFile(good) as z:
        names = sorted(z.namelist())
    assert names == sorted(
        ["manifest.npy", "param_0.npy", "param_1.npy"] + [f"meta_list_velocity_{i}.npy" for i in range(2)]
    )


def test_next_save_and_the_next_runs_lock_remove_a_killed_saves_temporary(tmp_path):
    """A save killed by SIGKILL leaves its temporary (the test above); the next save of the same
    path removes it, and so does taking the path's lock at the start of a resumed run."""
    for next_step in ("save", "lock"):
        proc = _run_child(tmp_path, "stall", "writing")
        _kill(proc)
        leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".c.npz.")]
        assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0
        if next_step == "save":
            save_checkpoint(tmp_path / "c.npz", [np.full((3, 2), 3.0)], tag="next")
        else:
            from manual_backprop.app.checkpoint import CheckpointLock

            with CheckpointLock(tmp_path / "c.npz"):
                assert load_checkpoint(tmp_path / "c.npz")[1]["tag"] in ("old", "next")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz", "child.py"], next_step


# ------------------------------------------------- hostile archives: bounded before reading


def _bomb(path: Path, good: Path, zeros: int) -> Path:
    """``good`` plus a deflated member ``meta_array_x.npy`` of ``zeros`` bytes (~1000:1)."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros(0, np.uint8))
    header["shape"] = (zeros,)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        info = zipfile.ZipInfo("meta_array_x.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with dst.open(info, "w", force_zip64=True) as f:
            f.write(buf.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(zeros >> 20):
                f.write(chunk)
    return path


def _refused_at_peak(path: Path) -> tuple[ValueError, int]:
    """The ValueError load_checkpoint(path) raises, and the peak of Python's allocations meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            load_checkpoint(path)
        return info.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_zip_bomb_is_refused_before_it_is_inflated(good, tmp_path):
    """64 MiB of zeros deflated to ~64 KB. Refused from the zip directory alone (the member is
    compressed; save_checkpoint never compresses): the peak is the small members and zipfile's
    buffers, far below the bomb's 64 MiB (bound: 1/8 of it; the old loader inflated all of it)."""
    zeros = 64 << 20
    bomb = _bomb(tmp_path / "bomb.npz", good, zeros)
    assert bomb.stat().st_size < zeros // 500
    error, peak = _refused_at_peak(bomb)
    assert peak < zeros // 8, f"peak {peak} bytes while refusing a zip bomb"
    assert re.search(r"bomb\.npz: .*member meta_array_x\.npy is compressed", str(error)), error


def _many_entries(path: Path, n: int) -> Path:
    """A zip64 archive of one empty local member ``a`` and ``n`` central-directory entries
    naming it (47 bytes each): a directory that claims far more members than the file holds."""
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, 1, 0) + b"a"
    entry = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) + b"a"
    cd = entry * n
    record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(cd), len(local))
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(local) + len(cd), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(local + cd + record + locator + end)
    return path


def test_a_directory_of_too_many_entries_is_refused_within_the_files_size(tmp_path):
    """400,000 entries in a 19 MB file: zipfile makes an object of ~400 bytes per entry (160
    MB) before anyone can count them; the loader counts them in the directory's bytes first.
    Bound: the file's size (the directory is read once) plus 1 MiB."""
    path = _many_entries(tmp_path / "many.npz", 400_000)
    # and one whose end record lies at the far edge of zipfile's search window, 2^16 + 22 bytes
    # from the end: the count missed it (a window one byte short, a review) and zipfile did not
    far = _many_entries(tmp_path / "far.npz", 150_000)
    far.write_bytes(far.read_bytes() + bytes(1 << 16))
    for path in (path, far):
        size = path.stat().st_size
        error, peak = _refused_at_peak(path)
        assert peak < size + (1 << 20), f"peak {peak} bytes for a {size}-byte file"
        assert f"{path.name}: not a valid manual_backprop checkpoint: more than 100000 members" in str(error)

def _edit_member(good: Path, out: Path, name: str, content: bytes) -> Path:
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, content if info.filename == name else src.read(info))
    return out


def test_npy_headers_that_lie_about_their_size_are_refused_before_allocating(good, tmp_path):
    """A header declaring 2^40 float64 (8 TiB) over a few bytes of data, one declaring fewer bytes
    than the member holds, and one of negative sizes whose product matches the data (it failed
    in reshape without the file's name, a review, 2026-12-02): refused from the header, naming
    the member."""
    for shape, message in [((2**40,), r"declares shape \(1099511627776,\) of float64 \(8796093022208 bytes\)"),
                           ((1,), r"declares shape \(1,\) of float64 \(8 bytes\) but holds 16 bytes"),
                           ((-2, -1), r"declares shape \(-2, -1\), a negative size")]:   # 2 entries: 16 bytes
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
        bad = _edit_member(good, tmp_path / "lie.npz", "param_1.npy", buf.getvalue() + bytes(16))
        with pytest.raises(ValueError, match=rf"lie\.npz: not a valid .*member param_1\.npy {message}"):
            load_checkpoint(bad)
    # entries of no size: 2^28 of them checked as 0 bytes, then made as '<U1', 1 GiB (a review, 2026-12-04)
    for descr in ("<U0", "|S0", "|V0"):
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": (2**28,)})
        bad = _edit_member(good, tmp_path / "lie.npz", "param_1.npy", buf.getvalue())
        with pytest.raises(ValueError, match=rf"lie\.npz: not a valid .*param_1\.npy declares dtype {re.escape(descr)}, "
                                             "whose entries have no size"):
            load_checkpoint(bad)


def test_object_arrays_and_oversized_files_are_refused(good, tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    bad = _edit_member(good, tmp_path / "obj.npz", "param_1.npy", buf.getvalue() + b"\x80\x04N.")
    with pytest.raises(ValueError, match=r"obj\.npz: .*param_1\.npy holds Python objects"):
        load_checkpoint(bad)
    size = good.stat().st_size
    with pytest.raises(ValueError, match=rf"{size} bytes, more than the limit of {size - 1} bytes"):
        load_checkpoint(good, max_bytes=size - 1)
    assert load_checkpoint(good, max_bytes=size)[1]["layer_sizes"] == [5, 4, 3]


def test_a_fifo_or_directory_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "c.npz"
    os.mkfifo(fifo)
    outcome = [call_on_a_fifo(load_checkpoint, fifo)]
    assert isinstance(outcome[0], ValueError) and f"{fifo}: not a valid" in str(outcome[0])
    with pytest.raises(ValueError, match=rf"{tmp_path}: not a valid manual_backprop checkpoint: a directory"):
        load_checkpoint(tmp_path)


# ------------------------------------------------- crafted fields: refused naming file and field


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"list_keys": {"velocity": "abc"}}, r"field manifest\.list_keys\.velocity must be int; got 'abc'"),
        ({"list_keys": {"velocity": 10**9}}, r"field manifest\.list_keys\.velocity must be a count"),
        ({"list_keys": []}, r"field manifest\.list_keys must be dict\[str, int\]; got \[\]"),
        ({"array_keys": [3]}, r"field manifest\.array_keys\[0\] must be str; got 3"),
        ({"metadata": "x"}, r"field manifest\.metadata must be dict\[str, Any\]"),
    ],
)
def test_crafted_manifest_fields_are_refused_naming_file_and_field(good, tmp_path, edit, message):
    m = {**_manifest(good), **edit}
    bad = _rewrite(good, tmp_path / "crafted.npz", replace={"manifest": np.array(json.dumps(m))})
    with pytest.raises(ValueError, match=rf"crafted\.npz: not a valid manual_backprop checkpoint: {message}"):
        load_checkpoint(bad)


@dataclasses.dataclass(frozen=True)
class _Config:
    lr: float
    sizes: list[int]
    data_dir: str | None
    hidden: tuple[int, ...] = (2,)
    pair: tuple[str, float] = ("a", 1.0)


DROP = object()  # a field left out of the checkpoint
GOOD_CONFIG = {"lr": 0.1, "sizes": [1, 2], "data_dir": "d", "hidden": [3, 4], "pair": ["b", 2]}
SCHEMA = {"epoch": int, "history": list[dict[str, float]], "config": _Config}


@pytest.mark.parametrize(
    "meta, message",
    [
        (dict(epoch="abc"), r"field epoch must be int; got 'abc' \(str\)"),
        (dict(epoch=True), r"field epoch must be int; got True \(bool\)"),
        (dict(epoch=2.0), r"field epoch must be int; got 2\.0"),
        (dict(history={"epoch": 1}), r"field history must be list\[dict\[str, float\]\]"),
        (dict(history=[{"loss": "low"}]), r"field history\[0\]\.loss must be float; got 'low'"),
        (dict(config={**GOOD_CONFIG, "lr": "0.1"}), r"field config\.lr must be float"),
        (dict(config={**GOOD_CONFIG, "sizes": [1, "2"]}), r"field config\.sizes\[1\] must be int"),
        (dict(config={**GOOD_CONFIG, "data_dir": 3}), r"field config\.data_dir must be str \| None"),
        (dict(config={"lr": 0.1, "sizes": [1], "hidden": [], "pair": ["a", 1]}), r"field config has missing keys \['data_dir'\]"),
        (dict(config={**GOOD_CONFIG, "hidden": [3, 4.0]}), r"field config\.hidden\[1\] must be int; got 4\.0"),
        (dict(config={**GOOD_CONFIG, "pair": ["b"]}), r"field config\.pair must be tuple\[str, float\]"),
        (dict(config={**GOOD_CONFIG, "pair": [2, 2]}), r"field config\.pair\[0\] must be str"),
        (dict(config={**GOOD_CONFIG, "x": 1}), r"field config has unknown keys \['x'\] for _Config"),
        (dict(config=[0.1]), r"field config must be _Config"),
        (dict(epoch=DROP), r"no field 'epoch'"),
    ],
)
def test_check_metadata_names_file_and_field(tmp_path, meta, message):
    from manual_backprop.app.checkpoint import check_metadata

    fields = dict(epoch=3, history=[{"epoch": 1, "loss": 0.5}], config=dict(GOOD_CONFIG))
    fields.update(meta)
    fields = {k: v for k, v in fields.items() if v is not DROP}
    path = tmp_path / "c.npz"
    save_checkpoint(path, make_params([3, 2], np.float64), **fields)
    _, loaded = load_checkpoint(path)
    with pytest.raises(ValueError, match=rf"c\.npz: not a valid manual_backprop checkpoint: {message}"):
        check_metadata(path, loaded, SCHEMA)


def test_check_metadata_accepts_what_save_wrote(tmp_path):
    from manual_backprop.app.checkpoint import check_metadata

    path = tmp_path / "c.npz"
    save_checkpoint(path, make_params([3, 2], np.float64), epoch=3, history=[{"epoch": 1, "loss": 0.5}],
                    config={**GOOD_CONFIG, "lr": 1, "sizes": [], "data_dir": None, "hidden": []})
    check_metadata(path, load_checkpoint(path)[1], SCHEMA)


def test_a_manifest_nested_past_the_recursion_limit_is_a_value_error(tmp_path):
    """json.loads raises RecursionError (not a ValueError) on deep nesting: a few kB of '['."""
    path = tmp_path / "deep.npz"
    np.savez(path, manifest=np.array('{"format": "%s", "x": %s}' % (FORMAT, "[" * 100_000 + "]" * 100_000)))
    with pytest.raises(ValueError, match="manifest is not JSON"):
        load_checkpoint(path)
