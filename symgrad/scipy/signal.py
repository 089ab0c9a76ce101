"""``scipy.signal``'s convolutions on expressions, with SciPy's names and semantics: ``convolve``
and ``correlate`` of N-D arrays, ``convolve2d`` and ``correlate2d``, in the modes 'full', 'same'
and 'valid'. Each is one conv of a single channel (symgrad.ops.convolution), differentiable to
any order in both operands.
Imports errors and ops only.
"""

from ..errors import ArgumentError, ShapeError
from ..ops.arrays import flip
from ..ops.convolution import sliding_product
from ..ops.core import Expr, graph_of, lift, op_function

METHODS = ("auto", "direct", "fft")
BOUNDARIES = {"fill": "fill", "wrap": "wrap", "symm": "symmetric"}


def _operands(in1, in2):
    graph = graph_of(in1, in2)
    hint = next((o.dtype for o in (in1, in2) if isinstance(o, Expr) and o.dtype != "bool"),
                "float64")
    return lift(in1, graph, hint), lift(in2, graph, hint)


def _swapped(in1, in2, mode):
    """Whether SciPy swaps the operands: in 'valid' mode, when ``in2`` is the larger in every
    dimension; one operand must be at least as large as the other in every dimension there."""
    if mode != "valid":
        return False
    first = all(a >= b for a, b in zip(in1.shape, in2.shape))
    second = all(b >= a for a, b in zip(in1.shape, in2.shape))
    if not (first or second):
        raise ShapeError(f"in 'valid' mode one operand must be at least as large as the other "
                         f"in every dimension, got {in1.shape} and {in2.shape}")
    return not first


def _method(method):
    # the method changes how SciPy computes, not what: every one is this same sum
    if method not in METHODS:
        raise ArgumentError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


@op_function("convolve", operands=2)
def convolve(in1, in2, mode="full", method="auto"):
    """SciPy's N-D ``convolve``: ``mode`` 'full', 'same' (centred, ``in1``'s shape) or 'valid'
    (where the operands overlap completely; SciPy swaps them when ``in2`` is the larger).
    ``method`` is accepted and has no effect on the value."""
    in1, in2 = _operands(in1, in2)
    _method(method)
    _same_rank(in1, in2)
    if _swapped(in1, in2, mode):
        in1, in2 = in2, in1
    return sliding_product(in1, in2, mode, flipped=True)


@op_function("correlate", operands=2)
def correlate(in1, in2, mode="full", method="auto"):
    """SciPy's N-D ``correlate``, ``z[k] = sum_l in1[l + k - K] in2[l]`` over the offsets of
    ``mode`` (as ``convolve``); in 'valid' mode with ``in2`` the larger, the correlation of
    ``in2`` with ``in1`` reversed along every axis, as SciPy gives it."""
    in1, in2 = _operands(in1, in2)
    _method(method)
    _same_rank(in1, in2)
    if _swapped(in1, in2, mode):
        return flip(sliding_product(in2, in1, mode, flipped=False))
    return sliding_product(in1, in2, mode, flipped=False)


def _same_rank(in1, in2):
    if in1.ndim != in2.ndim:
        raise ShapeError(f"in1 and in2 must have one rank, got {in1.shape} and {in2.shape}")


def _boundary(boundary, fillvalue):
    if boundary not in BOUNDARIES:
        raise ArgumentError(f"boundary must be one of {', '.join(BOUNDARIES)}, "
                            f"got {boundary!r}")
    if isinstance(fillvalue, Expr):
        raise ArgumentError("fillvalue must be a number, not an expression")
    return BOUNDARIES[boundary]


def _matrices(in1, in2):
    if in1.ndim != 2 or in2.ndim != 2:
        raise ShapeError(f"in1 and in2 must be matrices, got {in1.shape} and {in2.shape}")


@op_function("convolve2d", operands=2)
def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """SciPy's ``convolve2d``: ``convolve`` of two matrices, ``in1`` extended beyond its edges
    by ``fillvalue`` (``boundary='fill'``), periodically ('wrap') or by its mirror image
    ('symm')."""
    in1, in2 = _operands(in1, in2)
    padding = _boundary(boundary, fillvalue)
    _matrices(in1, in2)
    if _swapped(in1, in2, mode):
        in1, in2 = in2, in1
    return sliding_product(in1, in2, mode, flipped=True, boundary=padding, fillvalue=fillvalue)


@op_function("correlate2d", operands=2)
def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """SciPy's ``correlate2d``: ``correlate`` of two matrices, with ``convolve2d``'s
    boundaries; in 'same' mode a kernel of even length is centred as ``convolve2d`` centres
    it reversed (one more row or column of padding after, where ``correlate`` puts it
    before)."""
    in1, in2 = _operands(in1, in2)
    padding = _boundary(boundary, fillvalue)
    _matrices(in1, in2)
    if _swapped(in1, in2, mode):
        in1, in2, reversed_ = in2, in1, True
    else:
        reversed_ = False
    result = sliding_product(in1, in2, mode, flipped=False, boundary=padding,
                             fillvalue=fillvalue, centre_late=True)
    return flip(result) if reversed_ else result


__all__ = ["convolve", "convolve2d", "correlate", "correlate2d"]
