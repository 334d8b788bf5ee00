"""Checkpoints: a network's parameters and metadata in one ``.npz`` file, written atomically.

    >>> save_checkpoint("run.npz", params, activation="sigmoid", epoch=3, velocity=[...])
    >>> params, meta = load_checkpoint("run.npz")

Layout inside the archive (no pickles; ``np.load(..., allow_pickle=False)`` reads it):

    param_0 .. param_{L-1}     the ``(n_in + 1, n_out)`` matrices, bit-exact
    param_<l>_<k>              or, for a layered network (``manual_backprop.model.Sequential``),
                               array k of layer l's tuple, bit-exact
    meta_array_<key>           a metadata value that is an ndarray
    meta_list_<key>_<i>        the items of a metadata value that is a list of ndarrays
    manifest                   JSON: format, version, layer_sizes, dtype, the JSON metadata and
                               the names of the array-valued metadata

``layer_sizes`` and ``dtype`` are derived from ``params`` and stored automatically; loading checks
them against the arrays, so a file whose parts disagree is refused with a ``ValueError``.
A layered network's params (a list of tuples of arrays, one tuple per layer, empty for layers
without parameters) are saved with ``model=NAME`` (e.g. ``"cnn"``); the manifest then holds
``model`` and ``param_shapes`` (one list of shapes per layer) instead of ``layer_sizes``, every
array is checked against its declared shape and the common dtype on loading, and ``params``
comes back as the same list of tuples. Whether the shapes fit the architecture NAME is the
caller's check (``Sequential`` refuses params of the wrong shapes, naming the layer).
Writing is :func:`~manual_backprop.app.paths.write_atomically`: a temporary file beside the
target, fsync'ed and ``os.replace``d over it, under the target's lock (``PATH.lock``); a
process killed mid-write leaves the previous file intact, and the next writer removes its
temporary. A target that is a directory, FIFO, device or socket is refused; a symlink is
written through to its target.

Bounded loading: the central directory's entries are counted in its bytes, at most
100,000 of them, before zipfile makes an object for each; members are stored (``np.savez``
never compresses), so a member is refused unless stored uncompressed with its declared size, the declared sizes add up to no more than
the file, and the file is at most ``max_bytes`` (default :data:`MAX_CHECKPOINT_BYTES`, 4 GiB).
Each ``.npy`` header (at most 64 KiB, parsed by NumPy, object dtypes refused) must declare
exactly the bytes its member holds, all before any array is allocated: reading never costs
more than the file's own size and zipfile's 100,000 entries at most (about 40 MB), whatever a
crafted zip directory claims.

Why ``.npz`` and not safetensors: safetensors gives the same guarantees (a length-prefixed JSON
header with shapes, no pickle) but would be a new compiled dependency for the core package,
holds metadata only as flat strings (history, config and momentum lists would need an encoding
of their own), and would orphan existing checkpoints. The checks above give ``.npz`` the
bounded, pickle-free reading that was the reason to consider it, with NumPy alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import struct
import types
import typing
import zipfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import _checks
from .paths import OutputLock, write_atomically

#: The same lock as :class:`~manual_backprop.app.paths.OutputLock`, under the checkpoint's name.
CheckpointLock = OutputLock

#: The largest checkpoint file read without being asked: 4 GiB.
MAX_CHECKPOINT_BYTES = 1 << 32
_MAX_MEMBERS = 100_000
_MAX_NPY_HEADER = 1 << 16

FORMAT = "manual_backprop.checkpoint"
#: metadata keys save_checkpoint derives from params (``model`` is its argument)
_RESERVED = frozenset({"model", "layer_sizes", "param_shapes", "dtype", "format", "version"})
VERSION = 1


def _is_array_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(
        isinstance(v, np.ndarray) for v in value
    )


def save_checkpoint(path: str | os.PathLike, params: list, **metadata: Any) -> None:
    """Write ``params`` (a valid parameter list) and ``metadata`` to ``path`` atomically.

    ``params``: the post's network's ``(n_in + 1, n_out)`` matrices, or a layered network's list
    of tuples of arrays, which needs ``model=NAME`` (a non-empty string naming the architecture;
    see the module docstring). Metadata values may be JSON-serialisable (numbers, strings,
    lists, dicts, None), NumPy arrays, or non-empty lists of NumPy arrays (e.g. momentum
    buffers); anything else is a ``TypeError`` before any file is touched. The keys
    ``layer_sizes``, ``param_shapes``, ``dtype``, ``format`` and ``version`` are reserved. At most
    100,000 arrays in all, the limit :func:`load_checkpoint` reads (a ValueError, the file untouched).
    """
    layered = _is_layered(params)
    model = metadata.pop("model", None)
    if layered:
        if not (isinstance(model, str) and model and model != "mlp"):
            raise ValueError(f"a layered network's params (a list of tuples) need model=NAME, the architecture's "
                             f"name (not 'mlp'); got model={model!r}")
        dtype = _check_layered(params)
        # np.asarray(order="C"), not np.ascontiguousarray, which makes a 0-d array (1,)
        flat = {f"param_{l}_{k}": np.asarray(a, order="C") for l, p in enumerate(params) for k, a in enumerate(p)}
        structure = {"model": model, "param_shapes": [[list(a.shape) for a in p] for p in params]}
    else:
        if model not in (None, "mlp"):
            raise ValueError(f"model={model!r} needs a layered network's params (a list of tuples of arrays); "
                             "got a list of matrices (the post's network, model 'mlp')")
        dtype = _checks.check_params(params, check_finite=False)
        flat = {f"param_{l}": np.ascontiguousarray(W) for l, W in enumerate(params)}
        structure = {"layer_sizes": [params[0].shape[0] - 1] + [W.shape[1] for W in params]}
    reserved = _RESERVED & metadata.keys()
    if reserved:
        raise ValueError(f"metadata keys {sorted(reserved)} are reserved (derived from params)")
    arrays: dict[str, np.ndarray] = dict(flat)
    json_meta: dict[str, Any] = {}
    array_keys: list[str] = []
    list_keys: dict[str, int] = {}
    for key, value in metadata.items():
        if isinstance(value, np.ndarray):
            arrays[f"meta_array_{key}"] = value
            array_keys.append(key)
        elif _is_array_list(value):
            for i, v in enumerate(value):
                arrays[f"meta_list_{key}_{i}"] = v
            list_keys[key] = len(value)
        else:
            json_meta[key] = value
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        **structure,
        "dtype": dtype.name,
        "metadata": json_meta,
        "array_keys": array_keys,
        "list_keys": list_keys,
    }
    try:
        text = json.dumps(manifest, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"checkpoint metadata must be JSON-serialisable or NumPy arrays: {e}") from None
    for name, a in arrays.items():
        if a.dtype.hasobject:
            raise TypeError(f"checkpoint array {name} has dtype object; only plain arrays are stored")
        if a.dtype.itemsize == 0:   # load_checkpoint refuses it: what is saved must load
            raise TypeError(f"checkpoint array {name} has dtype {a.dtype.str}, whose entries have no size")
    arrays["manifest"] = np.array(text)
    if len(arrays) > _MAX_MEMBERS:   # what is saved must load
        raise ValueError(f"a checkpoint holds at most {_MAX_MEMBERS} arrays with its manifest; these params and "
                         f"metadata make {len(arrays)}")

    write_atomically(path, lambda f: np.savez(f, **arrays), what="checkpoint")


def _is_layered(params: Any) -> bool:
    return isinstance(params, (list, tuple)) and len(params) > 0 and all(isinstance(p, tuple) for p in params)


def _check_layered(params: list[tuple]) -> np.dtype:
    """A layered network's params: tuples of real float arrays of one dtype, at least one array."""
    dtype = None
    for l, p in enumerate(params):
        for k, a in enumerate(p):
            if not isinstance(a, np.ndarray):
                raise TypeError(f"params[{l}][{k}] must be a NumPy array; got {type(a).__name__}")
            if dtype is None:
                dtype = _checks.check_dtype(a.dtype)
            elif a.dtype != dtype:
                raise TypeError(f"params mix dtypes: the first array is {dtype}, params[{l}][{k}] is {a.dtype}")
    if dtype is None:
        raise ValueError("params hold no arrays: a network needs at least one layer with parameters")
    return dtype


def _fail(path: Path, what: str) -> ValueError:
    return ValueError(f"{path}: not a valid manual_backprop checkpoint: {what}")


def _open_regular(path: Path):
    """``path`` opened for binary reading if it is a regular file; stat first, then the
    descriptor (opened non-blocking: a FIFO swapped in cannot hang the read)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO, device or socket"
        raise _fail(path, f"{kind}, not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _fail(path, "not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _directory_entries(f, size: int) -> int | None:
    """How many entries the archive's central directory holds, counted by walking its bytes
    (at most _MAX_MEMBERS + 1 of them), before zipfile builds an object of about 400 bytes
    for each: 2,000,000 entries of 47 bytes in a 94 MB file took it 773 MB (a review,
    2026-12-05). The records are found where zipfile finds them (``zipfile._EndRecData``): the
    end record in the last 22 bytes, else its last signature in the last 64 KiB + 22; zip64's
    record, where its locator says so, in the 76 bytes before it; the directory just before
    that, its size read from the record and clipped to the bytes there. None where no end
    record is found (zipfile then says what is wrong)."""
    tail = min(size, (1 << 16) + 22)                   # zipfile's window, to the byte (a review)
    f.seek(size - tail)
    data = f.read(tail)
    at_end = data[-22:-18] == b"PK\x05\x06" and data[-2:] == b"\0\0"
    end = len(data) - 22 if at_end else data.rfind(b"PK\x05\x06")
    if end < 0 or end + 22 > len(data):
        return None
    (cd_size,) = struct.unpack_from("<L", data, end + 12)
    end += size - tail                                 # the end record's offset in the file
    if end >= 76:
        f.seek(end - 76)
        zip64 = f.read(76)                             # its record (56 bytes), then its locator (20)
        if zip64[56:60] == b"PK\x06\x07" and zip64[:4] == b"PK\x06\x06":
            (cd_size,) = struct.unpack_from("<Q", zip64, 40)
            end -= 76
    start = max(0, end - cd_size)
    f.seek(start)
    cd, pos, n = f.read(end - start), 0, 0
    while n <= _MAX_MEMBERS and pos + 46 <= len(cd) and cd[pos:pos + 4] == b"PK\x01\x02":
        name, extra, comment = struct.unpack_from("<3H", cd, pos + 28)
        pos, n = pos + 46 + name + extra + comment, n + 1
    return n


def _read_members(path: Path, f, max_bytes: int) -> dict[str, np.ndarray]:
    """Every ``.npy`` member of the archive ``f``, with every declared size checked first."""
    size = os.fstat(f.fileno()).st_size
    if size > max_bytes:
        raise _fail(path, f"{size} bytes, more than the limit of {max_bytes} bytes (max_bytes)")
    if (_directory_entries(f, size) or 0) > _MAX_MEMBERS:
        raise _fail(path, f"more than {_MAX_MEMBERS} members")
    f.seek(0)
    try:
        archive = zipfile.ZipFile(f)
    except Exception as e:  # BadZipFile, EOFError, OSError, ValueError, ... from foreign bytes
        raise _fail(path, f"corrupt archive ({type(e).__name__}: {e})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > _MAX_MEMBERS:
            raise _fail(path, f"{len(infos)} members, more than {_MAX_MEMBERS}")
        declared = 0
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise _fail(
                    path, f"member {info.filename} is compressed ({info.compress_size} bytes declared to "
                          f"inflate to {info.file_size}); save_checkpoint stores members uncompressed"
                )
            declared += info.file_size
        if declared > size:
            raise _fail(path, f"members declare {declared} bytes, the file has {size}")
        names = [info.filename for info in infos]
        if len(set(names)) != len(names) or not all(n.endswith(".npy") for n in names):
            raise _fail(path, "member names are repeated or not .npy files")
        arrays = {}
        for info in infos:
            try:
                with archive.open(info) as member:
                    arrays[info.filename[:-4]] = _read_npy(path, info, member)
            except ValueError as e:   # ours name the file; NumPy's header parser's do not
                if str(e).startswith(f"{path}:"):
                    raise
                raise _fail(path, f"member {info.filename}: bad .npy header ({e})") from None
            except Exception as e:  # CRC mismatch, truncated member, bad npy header, ...
                raise _fail(path, f"corrupt archive ({type(e).__name__}: {e})") from None
    return arrays


def _read_npy(path: Path, info: zipfile.ZipInfo, member) -> np.ndarray:
    """One ``.npy`` member: header (bounded), declared bytes checked, then the data."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member, max_header_size=_MAX_NPY_HEADER)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member, max_header_size=_MAX_NPY_HEADER)
    else:
        raise _fail(path, f"member {info.filename}: .npy version {version}")
    if dtype.hasobject:
        raise _fail(path, f"member {info.filename} holds Python objects (dtype {dtype}); pickles are refused")
    if dtype.itemsize == 0:   # '<U0' x 2**28 checked as 0 bytes, then made as '<U1': 1 GiB (a review)
        raise _fail(path, f"member {info.filename} declares dtype {dtype.str}, whose entries have no size")
    if any(n < 0 for n in shape):   # (-2, -4) has 8 entries and failed in reshape, unnamed (a review)
        raise _fail(path, f"member {info.filename} declares shape {shape}, a negative size")
    count = 1
    for n in shape:
        count *= n
    nbytes = count * dtype.itemsize
    header = member.tell()
    if header + nbytes != info.file_size:
        raise _fail(
            path, f"member {info.filename} declares shape {shape} of {dtype} ({nbytes} bytes) but holds "
                  f"{info.file_size - header} bytes of data"
        )
    flat = np.empty(count, dtype=dtype)
    view, got = memoryview(flat.view(np.uint8)) if nbytes else memoryview(b""), 0
    while got < nbytes:
        n = member.readinto(view[got:])
        if not n:
            raise _fail(path, f"member {info.filename} is truncated")
        got += n
    if member.read(1):  # also makes zipfile check the member's CRC
        raise _fail(path, f"member {info.filename} is longer than declared")
    return flat.reshape(shape, order="F" if fortran else "C")


def load_checkpoint(
    path: str | os.PathLike, *, max_bytes: int = MAX_CHECKPOINT_BYTES
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """``(params, metadata)`` as saved by :func:`save_checkpoint`, bit-exact.

    ``metadata`` holds the saved keys plus ``layer_sizes`` and ``dtype`` (for a layered
    network: ``model``, ``param_shapes`` and ``dtype``, and ``params`` is a list of tuples). A missing file is a
    ``FileNotFoundError``; a corrupt, truncated, foreign, oversized (``max_bytes``), special
    (directory, FIFO, device) or internally inconsistent file is a ``ValueError`` naming the
    file and the problem. Memory: at most the file's size (see the module docstring).
    """
    if os.fspath(path) in ("", b""):
        raise ValueError("checkpoint path is empty")
    path = Path(path)
    with _open_regular(path) as f:
        head = f.read(4)
        if head[:2] != b"PK":
            raise _fail(path, f"not an .npz (zip) archive: starts with {head!r}")
        f.seek(0)
        arrays = _read_members(path, f, max_bytes)

    if "manifest" not in arrays:
        raise _fail(path, "no manifest (was it written by save_checkpoint?)")
    raw = arrays.pop("manifest")
    if raw.shape != () or raw.dtype.kind != "U":
        raise _fail(path, f"manifest is not a JSON string (a {raw.dtype} array of shape {raw.shape})")
    try:
        manifest = json.loads(str(raw[()]))
    except (json.JSONDecodeError, TypeError, IndexError, ValueError, RecursionError) as e:
        raise _fail(path, f"manifest is not JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _fail(path, f"manifest format is not {FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise _fail(path, f"version {manifest.get('version')!r}, this code reads version {VERSION}")
    model = manifest.get("model", "mlp")
    if not (isinstance(model, str) and model):
        raise _fail(path, f"field manifest.model must be a non-empty string; got {model!r}")
    try:
        dtype = _checks.check_dtype(manifest["dtype"])
        sizes = _checks.check_layer_sizes(manifest["layer_sizes"]) if model == "mlp" else None
    except (KeyError, TypeError, ValueError) as e:
        raise _fail(path, f"incomplete manifest ({type(e).__name__}: {e})") from None
    for field, hint in (("metadata", dict[str, Any]), ("array_keys", list[str]), ("list_keys", dict[str, int])):
        if field not in manifest:
            raise _fail(path, f"incomplete manifest (no field {field!r})")
        _conform(path, manifest[field], hint, f"manifest.{field}")
    meta = dict(manifest["metadata"])
    array_keys = list(manifest["array_keys"])
    list_keys = dict(manifest["list_keys"])
    for key, n in list_keys.items():
        if not 1 <= n <= _MAX_MEMBERS:
            raise _fail(path, f"field manifest.list_keys.{key} must be a count in 1..{_MAX_MEMBERS}; got {n}")
    counts = Counter([*meta, *array_keys, *list_keys])   # a key save_checkpoint derives, or one stored
    clash = sorted(k for k, n in counts.items() if k in _RESERVED or n > 1)   # twice, would be read over
    if clash:
        raise _fail(path, f"metadata key(s) {clash} reserved or stored twice (an edited manifest)")
    if model == "mlp":
        params: list = []
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            W = arrays.pop(f"param_{l}", None)
            if W is None:
                raise _fail(path, f"missing param_{l} for layer_sizes {sizes}")
            if W.shape != (n_in + 1, n_out) or W.dtype != dtype:
                raise _fail(
                    path,
                    f"param_{l} is {W.dtype} of shape {W.shape}, the manifest says {dtype} "
                    f"of shape {(n_in + 1, n_out)}",
                )
            params.append(W)
    else:
        params = _layered_params(path, manifest, arrays, dtype)
    try:
        for key in array_keys:
            meta[key] = arrays.pop(f"meta_array_{key}")
        for key, n in list_keys.items():
            meta[key] = [arrays.pop(f"meta_list_{key}_{i}") for i in range(int(n))]
    except KeyError as e:
        raise _fail(path, f"missing array {e.args[0]} listed in the manifest") from None
    if arrays:
        raise _fail(path, f"unexpected arrays {sorted(arrays)}")
    if model == "mlp":
        meta["layer_sizes"] = sizes
    else:
        meta["model"] = model
        meta["param_shapes"] = [[tuple(a.shape) for a in p] for p in params]
    meta["dtype"] = dtype.name
    return params, meta


def _layered_params(path: Path, manifest: dict, arrays: dict[str, np.ndarray], dtype: np.dtype) -> list[tuple]:
    """A layered network's params, each array checked against manifest.param_shapes and dtype."""
    if "param_shapes" not in manifest:
        raise _fail(path, f"incomplete manifest (no field 'param_shapes' for model {manifest['model']!r})")
    shapes = manifest["param_shapes"]
    _conform(path, shapes, list[list[list[int]]], "manifest.param_shapes")
    if not 1 <= len(shapes) <= _MAX_MEMBERS or not any(shapes):
        raise _fail(path, f"field manifest.param_shapes must list 1..{_MAX_MEMBERS} layers, one with parameters")
    params = []
    for l, layer in enumerate(shapes):
        p = []
        for k, shape in enumerate(layer):
            a = arrays.pop(f"param_{l}_{k}", None)
            if a is None:
                raise _fail(path, f"missing param_{l}_{k} listed in manifest.param_shapes")
            if list(a.shape) != shape or a.dtype != dtype:
                raise _fail(path, f"param_{l}_{k} is {a.dtype} of shape {a.shape}, the manifest says {dtype} "
                                  f"of shape {tuple(shape)}")
            p.append(a)
        params.append(tuple(p))
    return params


def _describe(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _conform(path: Path, value: Any, hint: Any, where: str) -> None:
    """Refuse ``value`` unless it has the type ``hint`` (see :func:`check_metadata`)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                _conform(path, value, option, where)
                return
            except ValueError:
                pass
        ok = False
    elif hint is None or hint is type(None):
        ok = value is None
    elif origin is list:
        if not isinstance(value, list):
            ok = False
        else:
            for i, item in enumerate(value):
                _conform(path, item, args[0] if args else Any, f"{where}[{i}]")
            return
    elif origin is tuple:  # JSON has no tuples: a list (or tuple) of the right items
        if not isinstance(value, (list, tuple)) or (
            not (len(args) == 2 and args[1] is Ellipsis) and len(value) != len(args)
        ):
            ok = False
        else:
            for i, item in enumerate(value):
                _conform(path, item, args[0] if len(args) == 2 and args[1] is Ellipsis else args[i], f"{where}[{i}]")
            return
    elif origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            ok = False
        else:
            for k, item in value.items():
                _conform(path, item, args[1] if args else Any, f"{where}.{k}")
            return
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            ok = False
        else:
            hints = typing.get_type_hints(hint)
            missing = [f.name for f in dataclasses.fields(hint) if f.name not in value]
            extra = sorted(set(value) - set(hints))
            if missing or extra:
                parts = ([f"missing keys {missing}"] if missing else []) + ([f"unknown keys {extra}"] if extra else [])
                raise _fail(path, f"field {where} has {' and '.join(parts)} for {hint.__name__} "
                                  "(written by another version?)")
            for f in dataclasses.fields(hint):
                _conform(path, value[f.name], hints[f.name], f"{where}.{f.name}")
            return
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, hint)
    if not ok:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise _fail(path, f"field {where} must be {_describe(hint)}; got {shown} ({type(value).__name__})")


def check_metadata(path: str | os.PathLike, meta: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Refuse (``ValueError`` naming ``path`` and the field) metadata that lacks a key of
    ``schema`` or holds a value of another type than the key's type hint.

    Hints: ``int`` (not bool), ``float`` (int or float), ``str``, ``bool``, ``None``,
    ``np.ndarray``, ``X | None``, ``list[T]``, ``tuple[T, ...]`` (a JSON list), ``dict[str, T]``,
    ``Any``, and a dataclass (a dict with exactly its fields, each of its annotated type). E.g. for a training checkpoint::

        check_metadata(path, meta, {"epoch": int, "history": list[dict[str, float]], "config": training.Config})
    """
    path = Path(path)
    for key, hint in schema.items():
        if key not in meta:
            raise _fail(path, f"no field {key!r}")
        _conform(path, meta[key], hint, key)
