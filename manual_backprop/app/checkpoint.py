"""Checkpoints: a network's parameters and metadata in one ``.npz`` file, written atomically.

    >>> save_checkpoint("run.npz", params, activation="sigmoid", epoch=3, velocity=[...])
    >>> params, meta = load_checkpoint("run.npz")

Layout inside the archive (no pickles; ``np.load(..., allow_pickle=False)`` reads it):

    param_0 .. param_{L-1}     the ``(n_in + 1, n_out)`` matrices, bit-exact
    meta_array_<key>           a metadata value that is an ndarray
    meta_list_<key>_<i>        the items of a metadata value that is a list of ndarrays
    manifest                   JSON: format, version, layer_sizes, dtype, the JSON metadata and
                               the names of the array-valued metadata

``layer_sizes`` and ``dtype`` are derived from ``params`` and stored automatically; loading checks
them against the arrays, so a file whose parts disagree is refused with a ``ValueError``.
The write goes to a temporary file in the same directory, is flushed and fsync'ed, and then
``os.replace``d over the target: a process killed mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import _checks

FORMAT = "manual_backprop.checkpoint"
VERSION = 1


def _is_array_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(
        isinstance(v, np.ndarray) for v in value
    )


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


def save_checkpoint(path: str | os.PathLike, params: list[np.ndarray], **metadata: Any) -> None:
    """Write ``params`` (a valid parameter list) and ``metadata`` to ``path`` atomically.

    Metadata values may be JSON-serialisable (numbers, strings, lists, dicts, None), NumPy
    arrays, or non-empty lists of NumPy arrays (e.g. momentum buffers); anything else is a
    ``TypeError`` before any file is touched. The keys ``layer_sizes``, ``dtype``, ``format`` and
    ``version`` are reserved.
    """
    dtype = _checks.check_params(params, check_finite=False)
    reserved = {"layer_sizes", "dtype", "format", "version"} & metadata.keys()
    if reserved:
        raise ValueError(f"metadata keys {sorted(reserved)} are reserved (derived from params)")
    arrays: dict[str, np.ndarray] = {f"param_{l}": np.ascontiguousarray(W) for l, W in enumerate(params)}
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
        "layer_sizes": [params[0].shape[0] - 1] + [W.shape[1] for W in params],
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
    arrays["manifest"] = np.array(text)

    path = Path(path)
    write_atomically(path, lambda f: np.savez(f, **arrays))
    _fsync_dir(path.parent)


def write_atomically(path, write, *, mode: str = "wb") -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it and rename it over
    ``path``: a crash at any moment leaves either the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _fail(path: Path, what: str) -> ValueError:
    return ValueError(f"{path}: not a valid manual_backprop checkpoint: {what}")


def load_checkpoint(path: str | os.PathLike) -> tuple[list[np.ndarray], dict[str, Any]]:
    """``(params, metadata)`` as saved by :func:`save_checkpoint`, bit-exact.

    ``metadata`` holds the saved keys plus ``layer_sizes`` and ``dtype``. A missing file is a
    ``FileNotFoundError``; a corrupt, truncated, foreign or internally inconsistent file is a
    ``ValueError`` naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(4)
        if head[:2] != b"PK":
            raise _fail(path, f"not an .npz (zip) archive: starts with {head!r}")
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as npz:
                # reads every member, so the zip CRC checks run here
                arrays = {name: npz[name] for name in npz.files}
        except Exception as e:  # anything foreign bytes can raise: BadZipFile, zlib.error, EOFError, ...
            raise _fail(path, f"corrupt archive ({type(e).__name__}: {e})") from None

    if "manifest" not in arrays:
        raise _fail(path, "no manifest (was it written by save_checkpoint?)")
    try:
        manifest = json.loads(str(arrays.pop("manifest")[()]))
    except (json.JSONDecodeError, TypeError, IndexError, ValueError) as e:
        raise _fail(path, f"manifest is not JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _fail(path, f"manifest format is not {FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise _fail(path, f"version {manifest.get('version')!r}, this code reads version {VERSION}")
    try:
        sizes = _checks.check_layer_sizes(manifest["layer_sizes"])
        dtype = _checks.check_dtype(manifest["dtype"])
        meta = dict(manifest["metadata"])
        array_keys = list(manifest["array_keys"])
        list_keys = dict(manifest["list_keys"])
    except (KeyError, TypeError, ValueError) as e:
        raise _fail(path, f"incomplete manifest ({type(e).__name__}: {e})") from None

    params = []
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
    try:
        for key in array_keys:
            meta[key] = arrays.pop(f"meta_array_{key}")
        for key, n in list_keys.items():
            meta[key] = [arrays.pop(f"meta_list_{key}_{i}") for i in range(int(n))]
    except KeyError as e:
        raise _fail(path, f"missing array {e.args[0]} listed in the manifest") from None
    if arrays:
        raise _fail(path, f"unexpected arrays {sorted(arrays)}")
    meta["layer_sizes"] = sizes
    meta["dtype"] = dtype.name
    return params, meta
