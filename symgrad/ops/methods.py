"""Expr's methods that build ops of the families above core (indexing, reshape, transpose, the
reductions) and its text forms, given to Expr by ``attach_methods`` once those families are loaded.

Imports ops.core, ops.shape, ops.reduce and ops.printing: last in ops' import order (see
ops/__init__), so core imports none of the modules that import it.
"""

from .core import Expr
from .printing import to_text
from .reduce import cumprod, cumsum, max, mean, min, prod, std, sum, variance
from .shape import getitem, reshape, transpose


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


def _max(self, axis=None, keepdims=False):
    return max(self, axis, keepdims)


def _min(self, axis=None, keepdims=False):
    return min(self, axis, keepdims)


def _prod(self, axis=None, keepdims=False):
    return prod(self, axis, keepdims)


def _var(self, axis=None, ddof=0, keepdims=False):
    return variance(self, axis, ddof, keepdims)


def _std(self, axis=None, ddof=0, keepdims=False):
    return std(self, axis, ddof, keepdims)


def _cumsum(self, axis=None):
    return cumsum(self, axis)


def _cumprod(self, axis=None):
    return cumprod(self, axis)


EXPR_METHODS = {"__repr__": _repr, "__str__": _str, "__getitem__": _getitem, "reshape": _reshape,
                "transpose": _transpose, "sum": _sum, "mean": _mean, "max": _max, "min": _min}
# the reductions and scans of issue 18
EXPR_METHODS.update({"prod": _prod, "var": _var, "std": _std, "cumsum": _cumsum,
                     "cumprod": _cumprod})


def attach_methods():
    """Give Expr the methods of EXPR_METHODS, under the names NumPy's arrays use."""
    for name, method in EXPR_METHODS.items():
        method.__name__ = name
        method.__qualname__ = f"Expr.{name}"
        setattr(Expr, name, method)
