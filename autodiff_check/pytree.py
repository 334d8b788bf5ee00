"""Pytrees of arrays without JAX: flatten to leaves with their paths, and rebuild.

A pytree here is an array (any rank, 0-d included), a Python or NumPy scalar, or a list,
tuple (named tuples included) or dict (subclasses rebuilt by their constructor) of pytrees,
nested. Leaves come out in a fixed order (dicts by insertion order, as ``jax.tree_util`` does
for its own leaves up to key sorting), each with its path: ``params['W1']``,
``params[0]['b']``, ``primal 2``.

:class:`Flat` is the checker's view of such a tree: its floating-point entries as one float64
vector (integer and boolean leaves held constant), refusing complex and non-finite inputs.
"""

from __future__ import annotations

import collections
import copy

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Path = tuple  # keys from the root: ints for list/tuple positions, dict keys otherwise


@dataclass(frozen=True)
class TreeDef:
    """How to rebuild a pytree from its leaves: ``kind`` is "leaf", "scalar" (a Python or NumPy
    scalar, rebuilt as a NumPy scalar), "list", "tuple", "namedtuple" or "dict"."""

    kind: str
    children: tuple = ()
    keys: tuple = ()
    type_: Any = None
    factory: Any = field(default=None, compare=False, repr=False)   # a defaultdict's default_factory

    @property
    def n_leaves(self) -> int:
        return 1 if self.kind in ("leaf", "scalar") else sum(c.n_leaves for c in self.children)


def _verb(what: str) -> str:
    """A user's function "returned" a tree; the cotangent (check_vjp) or vector (check_hvp) a user
    gave "has" one."""
    return "has" if what in ("cotangent", "vector") else "returned"


def _shape_hint(got: tuple, expected: tuple) -> str:
    """The likely slip behind a wrong shape: an axis of length 1 dropped or added (the same
    numbers, which would broadcast against the input: (n,) - (n, 1) is (n, n)), a transpose,
    or the bias row 0 left out (or in)."""
    if len(got) == len(expected) == 2:
        if got == expected[::-1]:
            return " (transposed?)"
        if got == (expected[0] - 1, expected[1]):
            return " (one row short: a bias row 0 left out?)"
        if got == (expected[0] + 1, expected[1]):
            return " (a bias row 0 too many?)"
    if tuple(n for n in got if n != 1) == tuple(n for n in expected if n != 1):
        return f" (an axis of length 1 dropped or added: keepdims=True, or reshape to {expected}?)"
    extra = len(got) - len(expected)
    if extra > 0 and got[extra:] == expected:   # a bias's gradient left per example: dy, not dy.sum(0)
        axes = 0 if extra == 1 else tuple(range(extra))
        lead = "the leading axis" if extra == 1 else f"the {extra} leading axes"
        return f" (not summed over {lead} it is broadcast along: .sum(axis={axes})?)"
    return ""


def _broadcast(a: tuple, b: tuple) -> tuple | None:
    """The shape a and b broadcast to, or None where they do not."""
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        return None


def flatten(tree, *, what: str = "params", none_leaf: bool = False) -> tuple[list[np.ndarray], list[Path], TreeDef]:
    """``(leaves, paths, treedef)``: every leaf as an array (a copy is not made), its path, and
    the structure. Raises ``TypeError`` naming the path of anything that is not an array,
    a number, or a list/tuple/dict. ``none_leaf``: a None is a leaf (kept as None), as a
    derivative function may return for an integer input."""
    leaves: list[np.ndarray] = []
    paths: list[Path] = []
    return leaves, paths, _flatten_into(tree, (), leaves, paths, what, none_leaf)


# The walks below are module functions taking their state as arguments, not closures: a recursive
# inner function refers to itself through its closure cell, a cycle that kept what the cell held
# (every leaf flattened, every copy made) until Python's cyclic collector ran, which large arrays
# do not prompt; a check_vjp of 10^6 float32 inputs held ~200 copies of them, 1.7 GB (a review).


def _flatten_into(node, path: Path, leaves: list, paths: list, what: str, none_leaf: bool) -> TreeDef:
    def go(child, key) -> TreeDef:
        return _flatten_into(child, path + (key,), leaves, paths, what, none_leaf)

    if node is None and none_leaf:
        leaves.append(None)
        paths.append(path)
        return TreeDef("leaf")
    if isinstance(node, np.ndarray):
        if isinstance(node, np.ma.MaskedArray):   # a review: the mask dropped, the values under it checked
            raise TypeError(f"{format_path(what, path)}: a masked array, whose mask the checks would ignore; "
                            "pass a plain array (np.ma.filled(a, value))")
        if isinstance(node, np.matrix):
            raise TypeError(f"{format_path(what, path)}: an np.matrix; pass np.asarray of it")
        leaves.append(node)
        paths.append(path)
        return TreeDef("leaf")
    if isinstance(node, (bool, int, float, complex, np.generic)):
        leaves.append(np.asarray(node))
        paths.append(path)
        return TreeDef("scalar")
    if isinstance(node, dict):
        keys = tuple(node)
        return TreeDef("dict", tuple(go(node[k], k) for k in keys), keys, type(node),
                       node.default_factory if isinstance(node, collections.defaultdict) else None)
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return TreeDef("namedtuple", tuple(go(c, Field(i, name)) for i, (c, name) in enumerate(zip(node, node._fields))),
                       node._fields, type(node))
    if isinstance(node, (list, tuple)):
        return TreeDef("list" if isinstance(node, list) else "tuple",
                       tuple(go(c, i) for i, c in enumerate(node)))
    if hasattr(node, "__array__"):  # a JAX array or similar: read it as NumPy
        leaves.append(np.asarray(node))
        paths.append(path)
        return TreeDef("leaf")
    where = format_path(what, path)
    raise TypeError(f"{where}: expected an array, a number, or a list/tuple/dict of them; got {type(node).__name__}")


def unflatten(treedef: TreeDef, leaves: list, *, scalars: bool = True) -> Any:
    """Rebuild the structure of ``treedef`` around ``leaves`` (in flatten's order).
    ``scalars=False`` puts leaves back as given where the tree had a Python/NumPy scalar (a
    JAX float0 tangent must stay an array: ``np.asarray(float0)[()]`` is a numpy.void)."""
    return _unflatten_from(treedef, iter(leaves), scalars)


def _unflatten_from(d: TreeDef, it, scalars: bool) -> Any:
    if d.kind == "leaf" or (d.kind == "scalar" and not scalars):
        return next(it)
    if d.kind == "scalar":
        return np.asarray(next(it))[()]
    kids = [_unflatten_from(c, it, scalars) for c in d.children]
    if d.kind == "dict":
        return _dict_of(d, zip(d.keys, kids))
    if d.kind == "namedtuple":
        return d.type_(*kids)
    return kids if d.kind == "list" else tuple(kids)


def copy_tree(tree) -> Any:
    """A deep copy of ``tree`` whose dicts, lists and tuples are rebuilt as :func:`unflatten`
    rebuilds them (a dict subclass by its constructor) and whose other nodes are deep copies.
    copy.deepcopy makes a dict subclass without calling its ``__init__``: one that keeps its
    attributes in itself (``self.__dict__ = self``, an AttrDict) came back without them."""
    return _copy_tree(tree, {})


def _copy_tree(node, memo: dict) -> Any:
    if isinstance(node, dict):
        factory = node.default_factory if isinstance(node, collections.defaultdict) else None
        return _dict_of(TreeDef("dict", (), tuple(node), type(node), factory),
                        [(k, _copy_tree(v, memo)) for k, v in node.items()])
    if type(node) in (list, tuple):
        return type(node)(_copy_tree(c, memo) for c in node)
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return type(node)(*(_copy_tree(c, memo) for c in node))
    return copy.deepcopy(node, memo)


def _dict_of(d: TreeDef, pairs) -> dict:
    """A new dict of ``d``'s type holding ``pairs``: a defaultdict with its factory, any other
    subclass (OrderedDict, Counter) through its constructor, given the pairs or a dict of them;
    one whose constructor gives back no such dict is a TypeError naming it. A new object each time, nothing
    shared with the user's (a copy of theirs carried cached attributes into every point, and a
    ``__copy__`` returning self let the checker write into their params: a review)."""
    pairs = list(pairs)
    if d.type_ is dict:
        return dict(pairs)
    # the pairs, or a dict of them (Counter); a defaultdict with its factory first (a subclass may
    # fix its own). Not keywords: Cfg(**pairs) of a class taking lr=0.1, **kw rebuilt it with the
    # default lr, and checked another function (a review). A constructor's other arguments take
    # their defaults in any rebuild: such a class is for the user to pass as a dict
    makers = [lambda: d.type_(d.factory, pairs)] if issubclass(d.type_, collections.defaultdict) else []
    makers += [lambda: d.type_(pairs), lambda: d.type_(dict(pairs))]
    why = ""
    for make in makers:
        try:
            out = make()
        except Exception as e:   # noqa: BLE001 - any failure of the user's class is named below
            why = f" ({type(e).__name__}: {e})"
            continue
        if (type(out) is d.type_ and list(out) == [k for k, _ in pairs]
                and all(dict.__getitem__(out, k) is v for k, v in pairs)):
            return out
    raise TypeError(f"cannot rebuild a {d.type_.__name__} from key-value pairs (its constructor, given them, did not "
                    f"give one holding them{why}): pass the tree's dicts as dict")


class Field(int):
    """A namedtuple's position in a path, as an int (it indexes the tuple, and equals the plain
    position another flattening gives), named by its field in messages: ``params.w``."""

    def __new__(cls, position: int, name: str) -> "Field":
        field = super().__new__(cls, position)
        field.name = name
        return field

    def __getnewargs__(self) -> tuple[int, str]:   # copy and pickle: int's would drop the name
        return int(self), self.name

    def __repr__(self) -> str:
        return f"Field({int(self)}, {self.name!r})"


def format_path(root: str, path: Path) -> str:
    """``params['W1']``, ``params[0]``, ``params.w`` (a namedtuple's field); a root "primal"
    with a leading int key reads ``primal 0``, then the rest: ``primal 1['b']``."""
    s = root
    rest = path
    if root in ("primal", "tangent", "output") and path and isinstance(path[0], int) and not isinstance(path[0], Field):
        s, rest = f"{root} {int(path[0])}", path[1:]
    for k in rest:
        s += f".{k.name}" if isinstance(k, Field) else f"[{k!r}]"
    return s


def format_index(idx: tuple) -> str:
    """``[3, 7]`` for a 2-D entry, ``[2, 1, 4]`` for 3-D, ``""`` for a 0-d array."""
    return "[" + ", ".join(str(int(i)) for i in idx) + "]" if idx else ""


def _holds_numbers(tree) -> bool:
    """A list or tuple with a Python number in it, at any depth (``x.tolist()``)."""
    return isinstance(tree, (list, tuple)) and any(
        isinstance(t, (int, float, complex)) or _holds_numbers(t) for t in tree)


def same_structure(tree, treedef: TreeDef, leaves_ref: list[np.ndarray], paths: list[Path], *,
                   root: str, what: str) -> list[np.ndarray]:
    """Flatten ``tree`` (what a user's function returned) and check it has one leaf per leaf of
    the reference, each of the reference's shape; a single leaf may come back as a 1-list/tuple.
    None stands for zeros at an integer or boolean leaf (a constant). Raises ``ValueError``
    naming the first path that differs. Dicts are matched by key, not by order: a dict whose
    keys differ from the reference's is an error naming both sets."""
    leaves, _, _ = flatten(_by_key(tree, treedef, (), root, what), what=what, none_leaf=True)
    if len(leaves) != len(leaves_ref):
        numbers = len(leaves) > len(leaves_ref) and _holds_numbers(tree)
        raise ValueError(f"{what} {_verb(what)} {len(leaves)} array(s); expected {len(leaves_ref)}, one per leaf of "
                         f"{root} ({', '.join(format_path(root, p) for p in paths) or 'none'})"
                         + ("; Python numbers in a list (dx.tolist()?) are read as one array each: return "
                            "np.asarray(...)" if numbers else ""))
    out = []
    for got, ref, p in zip(leaves, leaves_ref, paths):
        if got is None:
            if np.issubdtype(np.asarray(ref).dtype, np.inexact):
                raise ValueError(f"{what} {_verb(what)} None for {format_path(root, p)}; expected an array of shape "
                                 f"{np.shape(ref)} (None is accepted only for integer or boolean inputs)")
            got = np.zeros(np.shape(ref))
        got = np.asarray(got)
        if got.shape != ref.shape:
            if got.size == ref.size and _broadcast(got.shape, ref.shape) == ref.shape:
                got = got.reshape(ref.shape)   # a scalar for a (1,) bias: W - lr g keeps W's shape
            else:                              # (7,) for (7, 1) would broadcast W - lr g to (7, 7)
                raise ValueError(f"{what} {_verb(what)} shape {got.shape} for {format_path(root, p)}; expected {ref.shape}"
                                 + _shape_hint(got.shape, ref.shape))
        if not (np.issubdtype(got.dtype, np.number) or got.dtype == bool):
            raise ValueError(f"{what} {_verb(what)} dtype {got.dtype} for {format_path(root, p)}; expected numbers")
        if np.iscomplexobj(got) and not np.iscomplexobj(ref):
            if np.any(got.imag != 0):
                raise ValueError(f"{what} {_verb(what)} complex values for {format_path(root, p)} (largest |imaginary part| "
                                 f"{np.abs(got.imag).max():.3g}); the derivative of a real function at real inputs "
                                 "is real")
            got = got.real
        out.append(got)
    return out


def by_key(tree, treedef: TreeDef, *, root: str, what: str):
    """``tree`` with its dicts in the key order of ``treedef`` (JAX returns dicts with sorted
    keys; a user's may have any order), so that flattening pairs leaves by key."""
    return _by_key(tree, treedef, (), root, what)


def _by_key(node, d: TreeDef, path: Path, root: str, what: str):
    """``node`` with every dict reordered to the keys of the reference ``d`` (where ``d`` has a
    dict), so that flattening pairs leaves by key. A dict against a non-dict, or a dict with
    other keys, is a ValueError."""
    if d.kind == "dict" or isinstance(node, dict):
        where = format_path(root, path) if path else root
        if not (d.kind == "dict" and isinstance(node, dict)):
            expected = f"a dict with keys {list(d.keys)}" if d.kind == "dict" else f"a {d.kind}"
            raise ValueError(f"{what} {_verb(what)} a {type(node).__name__} for {where}; expected {expected}")
        if set(node) != set(d.keys):
            raise ValueError(f"{what} {_verb(what)} keys {list(node)} for {where}; expected {list(d.keys)}")
        return {k: _by_key(node[k], c, path + (k,), root, what) for k, c in zip(d.keys, d.children)}
    if d.kind in ("list", "tuple", "namedtuple") and isinstance(node, (list, tuple)):
        if len(node) != len(d.children):   # an extra empty [] would keep the leaf count and shift the pairing
            where = format_path(root, path) if path else root
            raise ValueError(f"{what} {_verb(what)} a {type(node).__name__} of {len(node)} entries for {where}; "
                             f"expected {len(d.children)}")
        keys = [Field(i, name) for i, name in enumerate(d.keys)] if d.kind == "namedtuple" else range(len(node))
        return [_by_key(n, c, path + (k,), root, what) for k, n, c in zip(keys, node, d.children)]
    return node


def tree_map(fn: Callable, treedef: TreeDef, leaves: list) -> Any:
    return unflatten(treedef, [fn(x) for x in leaves])


class Flat:
    """A pytree of arrays seen as one float64 vector of its floating-point entries; integer and
    boolean leaves are constants. ``build(x)`` rebuilds the tree with every leaf in its own
    dtype (complex128 when x is complex); ``rnd(x)`` rounds x through those dtypes."""

    def __init__(self, tree, root: str, *, what: str):
        leaves, paths, treedef = flatten(tree, what=what)
        self.leaves = [np.asarray(L) for L in leaves]
        self.paths, self.treedef, self.root = paths, treedef, root
        self.sep = " " if root in ("primal", "tangent") else ""
        self.float_ = []
        for L, p in zip(self.leaves, paths):
            if np.iscomplexobj(L):
                raise ValueError(f"{format_path(root, p)} is complex ({L.dtype}); only real inputs are supported")
            if L.dtype.kind not in "biuf":   # an object array of floats was held constant, unchecked
                raise TypeError(f"{format_path(root, p)} has dtype {L.dtype}; inputs are arrays of real numbers "
                                "(floating point, or integer and boolean held constant): convert with astype(float)")
            self.float_.append(bool(np.issubdtype(L.dtype, np.floating)))
        self.dtypes = [L.dtype for L in self.leaves]
        self.slices, start = [], 0
        for L, fl in zip(self.leaves, self.float_):
            self.slices.append(slice(start, start + (L.size if fl else 0)))
            start += L.size if fl else 0
        self.n = start
        self.x = np.concatenate([L.astype(np.float64).ravel() for L, fl in zip(self.leaves, self.float_) if fl] or [np.zeros(0)])
        if not np.all(np.isfinite(self.x)):
            bad = int(np.flatnonzero(~np.isfinite(self.x))[0])
            raise ValueError(f"{what}: {self.where(bad)} is not finite ({self.x[bad]}); derivatives need finite inputs")
        if not self.n:
            raise ValueError(f"{what} have no floating-point entries (only integer or boolean leaves, or none): "
                             "nothing to differentiate")
        us = [float(np.finfo(d).eps) / 2 for d, f in zip(self.dtypes, self.float_) if f]
        self.u = max(us, default=2.0**-53)        # the coarsest leaf's: along directions that move them all
        self._u_finest = min(us, default=2.0**-53)
        self.u_out = self.u                       # the precision of f's value (:meth:`set_output`)
        self.value_dtype: np.dtype | None = None  # the dtype of f's value, once known (:meth:`set_output`)
        self.output_known = False

    def set_output(self, dtype) -> None:
        """The dtype f's value comes in (a Python float: float64): its unit roundoff, within the
        finest and the coarsest leaf's, becomes ``u_out``. With leaves of one dtype that is theirs,
        as before this was known; with float32 and float64 leaves and a float64 value, an entry of
        a float64 leaf is held to float64 rounding, not to float32's (a 1 % error in it passed)."""
        dtype = np.dtype(dtype)
        u = float(np.finfo(dtype).eps) / 2 if np.issubdtype(dtype, np.floating) else self.u
        self.u_out, self.output_known = min(max(u, self._u_finest), self.u), True
        self.value_dtype = dtype   # coarser than every input: f computes in it (check._complex_step_r)

    def promoted(self) -> "Flat | None":
        """This tree with every floating leaf float64 (the same entries and layout), or None
        when they all are: f evaluated at it computes in float64 where its code lets NumPy
        promote (:func:`autodiff_check.check._check_core`'s second opinion)."""
        if all(d == np.float64 for d, fl in zip(self.dtypes, self.float_) if fl):
            return None
        other = copy.copy(self)
        other.dtypes = [np.dtype(np.float64) if fl else d for d, fl in zip(self.dtypes, self.float_)]
        other.u = other._u_finest = other.u_out = 2.0**-53
        other.value_dtype = np.dtype(np.float64)
        other.output_known = True
        return other

    def ulp(self) -> np.ndarray:
        """Per entry, the spacing of its leaf's dtype at |x_i| (``np.spacing``), as float64."""
        out = np.zeros(self.n)
        for fl, s, d in zip(self.float_, self.slices, self.dtypes):
            if fl:
                out[s] = np.spacing(np.abs(self.x[s]).astype(d)).astype(np.float64)
        return out

    def u_at(self, i: int) -> float:
        """The unit roundoff of entry i's difference: its leaf's or f's value's, the coarser."""
        return max(self.u_out, float(np.finfo(self.dtypes[self.leaf_of(i)]).eps) / 2)

    def u_along(self, v: np.ndarray) -> float:
        """:meth:`u_at` of the one entry ``v`` moves, else the coarsest leaf's."""
        nz = np.flatnonzero(v)
        return self.u_at(int(nz[0])) if nz.size == 1 else self.u

    def build(self, x: np.ndarray):
        cplx = np.iscomplexobj(x)
        out = []
        for L, fl, s, d in zip(self.leaves, self.float_, self.slices, self.dtypes):
            if not fl:
                out.append(L.copy())
            else:
                out.append(x[s].reshape(L.shape).astype(np.complex128 if cplx else d))
        return unflatten(self.treedef, out)

    def rnd(self, x: np.ndarray) -> np.ndarray:
        y = np.array(x, dtype=np.float64)
        for fl, s, d in zip(self.float_, self.slices, self.dtypes):
            if fl and d != np.float64:
                with np.errstate(over="ignore"):   # a step past the dtype's largest: inf, as f would see it
                    y[s] = y[s].astype(d).astype(np.float64)
        return y

    def flat(self, tree_leaves: list[np.ndarray]) -> np.ndarray:
        parts = [np.real(np.asarray(G)).astype(np.float64).ravel() for G, fl in zip(tree_leaves, self.float_) if fl]
        return np.concatenate(parts) if parts else np.zeros(0)

    def where(self, i: int) -> str:
        for L, fl, s, p in zip(self.leaves, self.float_, self.slices, self.paths):
            if fl and s.start <= i < s.stop:
                idx = np.unravel_index(i - s.start, L.shape) if L.shape else ()
                name = format_path(self.root, p)
                return name + (self.sep if idx else "") + format_index(idx)
        raise IndexError(i)

    def leaf_of(self, i: int) -> int:
        for k, (fl, s) in enumerate(zip(self.float_, self.slices)):
            if fl and s.start <= i < s.stop:
                return k
        raise IndexError(i)

    def inputs(self) -> list[tuple[str, tuple, int, int]]:
        return [(format_path(self.root, p), L.shape, s.start, L.size)
                for L, fl, s, p in zip(self.leaves, self.float_, self.slices, self.paths) if fl]
