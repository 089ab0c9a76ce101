"""Expr's methods that build ops of the families above core (indexing, reshape, transpose, the
reductions) and its text forms, given to Expr by ``attach_methods`` once those families are loaded.

Imports ops.core, ops.shape, ops.elementwise, ops.reduce and ops.printing: last in ops' import
order (see ops/__init__), so core imports none of the modules that import it.
"""

import numpy as np

from ..errors import ShapeError, SymgradError
from .core import Expr, apply, const, numpy_protocol, op_function, static_shape
from .elementwise import astype, where
from .printing import to_text
from .reduce import mean, sum
from .shape import broadcast_to_like, getitem, normalize_index, reshape, transpose


def _repr(self):
    return f"Expr({to_text(self, limit=120)}, shape={self.shape})"


def _str(self):
    return to_text(self)


def _getitem(self, index):
    return getitem(self, index)


def _reshape(self, *shape):
    """``e.reshape((2, 3))`` or ``e.reshape(2, 3)``, as NumPy accepts both."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return reshape(self, shape)


def _transpose(self, *axes):
    """``e.transpose()``, ``e.transpose((1, 0))`` or ``e.transpose(1, 0)``."""
    if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
        axes = axes[0]
    return transpose(self, axes or None)


def _sum(self, axis=None, keepdims=False):
    return sum(self, axis, keepdims)


def _mean(self, axis=None, keepdims=False):
    return mean(self, axis, keepdims)


def _numpy_method(function_name):
    """ndarray's method that is NumPy's function ``function_name`` on the array: the function of
    symgrad.numpy, which raises SymgradError naming it until the op table has it (``e.prod()``
    works once ``prod`` is a public function)."""
    def method(self, *args, **kwargs):
        return numpy_protocol("function")(function_name)(self, *args, **kwargs)
    return method


# ndarray's method -> NumPy's function of the same arguments after the array
NUMPY_METHODS = {"squeeze": "squeeze", "ravel": "ravel", "flatten": "ravel", "swapaxes": "swapaxes",
                 "dot": "dot", "clip": "clip", "prod": "prod", "var": "var", "std": "std",
                 "cumsum": "cumsum", "cumprod": "cumprod", "argmax": "argmax", "argmin": "argmin",
                 "round": "round", "trace": "trace", "diagonal": "diagonal", "repeat": "repeat",
                 "take": "take", "argsort": "argsort", "max": "max", "min": "min"}


def _sort(self, *args, **kwargs):
    raise SymgradError("expressions are immutable: e.sort() would sort in place; np.sort(e) "
                       "(or sg.sort(e)) returns a sorted copy")


def _astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
    """ndarray's ``astype``: the expression in ``dtype`` (elementwise.astype); NumPy's memory
    layout arguments other than their defaults are refused."""
    if order != "K" or casting != "unsafe" or subok is not True:
        raise SymgradError("astype: only dtype and copy are supported (expressions have no "
                           "memory layout)")
    return astype(self, dtype, copy=copy)


# -- functional updates: e.at[index].set(v) and .add(v), as JAX's ---------------------------------


class IndexUpdates:
    """``e.at``: ``e.at[index].set(v)``, ``.add(v)`` and ``.get()`` return new expressions
    (expressions are immutable), each differentiable in ``e`` and ``v``. ``index`` is a basic
    index (ints, slices, None, ...), as ``e[index]`` takes.

    >>> from symgrad import var
    >>> var("v", shape=(3,)).at[1:].add(1.0).shape
    (3,)
    """

    __slots__ = ("expr",)

    def __init__(self, expr):
        self.expr = expr

    def __getitem__(self, index):
        return IndexUpdate(self.expr, index)


class IndexUpdate:
    """``e.at[index]``: see IndexUpdates."""

    __slots__ = ("expr", "index")

    def __init__(self, expr, index):
        self.expr, self.index = expr, index

    def get(self):
        return getitem(self.expr, self.index)

    def add(self, value):
        return add_at(self.expr, value, self.index)

    def set(self, value):
        return set_at(self.expr, value, self.index)


def _update(x, index, value):
    """(the normalised index, ``value`` broadcast to the shape ``x[index]`` has)."""
    selection = getitem(x, index)
    update = broadcast_to_like(value, selection)
    if update.shape != selection.shape:
        raise ShapeError(f"a value of shape {update.shape} cannot be written into "
                         f"{selection.shape} entries")
    return normalize_index(index, x.ndim), update


@op_function("at.add", operands=2)
def add_at(x, value, index):
    """``x`` with ``value`` added at ``index`` (``x.at[index].add(value)``)."""
    index, update = _update(x, index, value)
    return apply("index_add", x, update, index=index, keep=0)


@op_function("at.set", operands=2)
def set_at(x, value, index):
    """``x`` with ``value`` written at ``index`` (``x.at[index].set(value)``): a selection of
    the value scattered at the index and of ``x`` elsewhere, so each entry is exactly one of
    them (adding ``value - x[index]`` would round)."""
    normalized, update = _update(x, index, value)
    scattered = apply("index_grad", update, x, index=normalized, keep=0)
    if static_shape(x.shape):
        mask = np.zeros(x.shape, dtype=bool)
        mask[index] = True             # a basic index, checked by normalize_index
        selected = const(mask, x.graph)
    else:
        ones = broadcast_to_like(const(1.0, x.graph, dtype=x.data["dtype"]), update)
        selected = apply("index_grad", ones, x, index=normalized, keep=0) != 0.0
    return where(selected, scattered, x)


def _at(self):
    return IndexUpdates(self)


EXPR_METHODS = {"__repr__": _repr, "__str__": _str, "__getitem__": _getitem, "reshape": _reshape,
                "transpose": _transpose, "sum": _sum, "mean": _mean, "astype": _astype,
                "sort": _sort,
                **{name: _numpy_method(function) for name, function in NUMPY_METHODS.items()}}


def attach_methods():
    """Give Expr the methods of EXPR_METHODS, under the names NumPy's arrays use."""
    for name, method in EXPR_METHODS.items():
        method.__name__ = name
        method.__qualname__ = f"Expr.{name}"
        setattr(Expr, name, method)
    Expr.at = property(_at, doc="Functional updates: ``e.at[index].set(v)``, ``.add(v)``.")
