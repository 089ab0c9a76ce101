"""The derivative checks of a published peer's own test suite, ported from scratch: autograd's
(github.com/HIPS/autograd, tests/) differentiates NumPy's and SciPy's functions at random points,
on the shapes and axes its tests try, to second order, against central differences. Issue 18
asks how many of those functions symgrad supports, with none wrong.

How PEER_FUNCTIONS was counted. Read: test_systematic.py, test_numpy.py, test_binary_ops.py,
test_scalar_ops.py, test_linalg.py, test_scipy.py and test_fft.py. Counted: every NumPy or SciPy
function, ufunc or ndarray method that one of their checks differentiates (check_grads,
combo_check, grad), once under its own name; aliases are separate names and count separately
(abs and absolute, conj and conjugate, mod and remainder, psi and digamma, divide and
true_divide), a Python operator counts as the ufunc it calls (``x * y`` is numpy.multiply,
``x % y`` numpy.mod, ``-x`` numpy.negative), the six comparisons count (the peer checks that
their gradient is zero), and ``x.reshape`` or ``x.T`` count as the function they are. Excluded:
what only builds inputs (np.random, np.zeros, np.ones, np.eye, np.round of a point,
stats.dirichlet.rvs, the np.dot and np.swapaxes that make a matrix symmetric or positive
definite, np.ndim), autograd's own functions (np.make_diagonal, np.linalg._dot, its tuple), Python's
builtins (sum, len), np.int64 (a cast of an index, nothing flows through it), the index tricks
np.r_ and np.c_ (objects, not functions), np.msort (gone from NumPy 2), and the checks of complex
inputs: symgrad's values are real, so real, imag, conj, conjugate, angle and real_if_close are
checked on real inputs only. That makes 211 functions (issue 18 said 169; its count is not
published, so this one is written down here and in PEER_FUNCTIONS).

Each case applies the function to expressions as a program would: NumPy's own function through
the array protocols (``np.sin(x)``, ``np.sum(x, axis=0)``), symgrad.numpy where NumPy does not
dispatch (np.array), and symgrad.scipy.* for SciPy, whose functions do not dispatch. It then
compares the compiled value with NumPy's or SciPy's, the vjp with central differences of the
NumPy function itself, the jvp (where the peer checks forward mode) with directional
differences, and the second derivative (the gradient of <vjp, w>) with central differences of
the compiled vjp, as the peer's check_grads(order=2) does. A function symgrad does not support
is skipped with the SymgradError that says so and the issue that will add it; whether it is
supported is found by trying, never from a list, so a function that starts working is checked.

``python tests/test_peer_suite.py`` prints the count and the missing functions by issue.
"""

import functools
import importlib
import itertools
import operator
import warnings
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

import symgrad as sg

# -- the functions the peer's suite differentiates, by the file that checks them first ------------

PEER_FUNCTIONS = (
    # test_systematic.py: statistics, unary and binary ufuncs, and the rest
    *(f"numpy.{name}" for name in (
        "max", "min", "mean", "sum", "prod", "var", "std",
        "sin", "cos", "tan", "sinh", "cosh", "tanh", "arccosh", "arcsinh", "arctanh", "abs",
        "absolute", "fabs", "sign", "ceil", "floor", "exp", "exp2", "expm1", "log", "log2",
        "log10", "log1p", "sqrt", "square", "deg2rad", "rad2deg", "degrees", "radians", "real",
        "real_if_close", "imag", "conj", "conjugate", "angle",
        "add", "subtract", "multiply", "logaddexp", "logaddexp2", "remainder", "mod",
        "true_divide", "maximum", "minimum", "fmax", "fmin",
        "transpose", "moveaxis", "repeat", "diff", "gradient", "tile", "kron", "inner", "dot",
        "outer", "matmul", "tensordot", "sort", "partition", "atleast_1d", "atleast_2d",
        "atleast_3d", "einsum", "trace", "diag", "tril", "triu", "swapaxes", "rollaxis", "cross",
        "vsplit", "hsplit", "dsplit", "split", "array_split", "concatenate", "vstack", "hstack",
        "stack", "row_stack", "column_stack", "select", "pad",
        # test_numpy.py
        "flipud", "fliplr", "rot90", "cumsum", "reshape", "ravel", "append", "roll", "clip",
        "array", "where", "squeeze", "expand_dims", "diagonal", "nan_to_num", "linspace",
        # test_binary_ops.py and test_scalar_ops.py
        "divide", "power", "arctan2", "hypot", "less", "less_equal", "greater", "greater_equal",
        "equal", "not_equal", "arcsin", "arccos", "arctan", "negative", "reciprocal", "sinc")),
    "numpy.ndarray.flatten", "numpy.ndarray.astype",
    # test_linalg.py
    *(f"numpy.linalg.{name}" for name in (
        "inv", "pinv", "solve", "det", "slogdet", "norm", "eigh", "eig", "cholesky", "svd")),
    # test_fft.py
    *(f"numpy.fft.{name}" for name in (
        "fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2",
        "rfftn", "irfftn", "fftshift", "ifftshift")),
    # test_scipy.py
    *(f"scipy.stats.{distribution}.{method}" for distribution, methods in (
        ("chi2", ("pdf", "cdf", "logpdf")), ("beta", ("cdf", "pdf", "logpdf")),
        ("gamma", ("cdf", "pdf", "logpdf")),
        ("norm", ("pdf", "cdf", "sf", "logpdf", "logcdf", "logsf")),
        ("poisson", ("cdf", "logpmf", "pmf")), ("t", ("pdf", "cdf", "logpdf", "logcdf")),
        ("multivariate_normal", ("pdf", "logpdf", "entropy")), ("dirichlet", ("pdf", "logpdf")))
      for method in methods),
    *(f"scipy.special.{name}" for name in (
        "logsumexp", "beta", "betainc", "betaln", "gammainc", "gammaincc", "polygamma", "jn",
        "yn", "psi", "digamma", "gamma", "gammaln", "gammasgn", "rgamma", "multigammaln", "j0",
        "j1", "y0", "y1", "i0", "i1", "iv", "ive", "erf", "erfc", "erfinv", "erfcinv", "logit",
        "expit")),
    "scipy.signal.convolve", "scipy.linalg.sqrtm", "scipy.linalg.solve_sylvester",
    "scipy.linalg.solve_banded", "scipy.integrate.odeint",
)

# The issue that will add a function symgrad lacks, by the function's qualified name's prefix
# (the longest that matches). This says why a function is missing, never whether it is.
PLANNED = {
    "numpy.": "issue 18",
    "numpy.linalg.": "issue 19 (linear algebra)",
    "scipy.linalg.": "issue 19 (linear algebra)",
    "scipy.special.": "issue 19 (special functions)",
    "scipy.stats.": "issue 19 (statistics)",
    "scipy.signal.": "issue 19 (convolution)",
    "numpy.fft.": "not planned: the transforms' values are complex, and symgrad's are real",
    "scipy.integrate.": "not planned: odeint takes a Python callable; write the loop with sg.scan",
}

# The number of PEER_FUNCTIONS every one of whose cases passes now; the lead raises it as the
# branches of issues 18 and 19 merge.
SUPPORTED_AT_LEAST = 192

EPS = 1e-6                   # central-difference step
RTOL, ATOL = 1e-5, 1e-6      # tolerances against central differences (the peer's are 1e-6 on a
                             # single inner product; these hold entry by entry)


def planned(function):
    prefix = max((p for p in PLANNED if function.startswith(p)), key=len)
    return PLANNED[prefix]


# -- points, drawn as the peer draws them -----------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """An input drawn at random: ``draw(rng)`` gives the array (or float for ``shape=None``)."""
    shape: tuple | None
    low: float | None = None          # uniform in [low, high) when given, else standard normal
    high: float | None = None
    square_plus: float | None = None  # normal**2 + this: the peer's positive domain

    def draw(self, rng):
        size = () if self.shape is None else self.shape
        if self.low is not None:
            value = rng.uniform(self.low, self.high, size)
        else:
            value = rng.standard_normal(size)
            if self.square_plus is not None:
                value = value ** 2 + self.square_plus
        return float(value) if self.shape is None else np.asarray(value, dtype=np.float64)


def R(*shape):
    return Point(shape)


def U(low, high, *shape):
    return Point(shape, low, high)


def P(*shape, plus=1.1):
    return Point(shape, square_plus=plus)


def F(low=-2.0, high=2.0):
    """A Python float, as the peer passes scalars."""
    return Point(None, low, high)


def _called(f, *args, **kwargs):
    return f(*args, **kwargs)


@dataclass(frozen=True, eq=False)
class Case:
    function: str                  # the qualified name counted in PEER_FUNCTIONS
    args: tuple                    # Points (or lists of Points), and literal arguments
    kwargs: dict = field(default_factory=dict)
    wrt: tuple | None = None       # positions of the differentiated arguments; None: every Point
    modes: tuple = ("rev", "fwd")
    order: int = 2
    apply: Callable = _called      # (the function, *args, **kwargs) -> its value
    label: str = ""

    @property
    def id(self):
        return f"{self.function}[{self.label}]"


def _describe(value):
    if isinstance(value, Point):
        return "float" if value.shape is None else "x".join(map(str, value.shape)) or "()"
    if isinstance(value, (list, tuple)):
        return "(" + ",".join(_describe(v) for v in value) + ")"
    return repr(value)


def combos(function, *arg_options, wrt=None, modes=("rev", "fwd"), apply=_called, **kw_options):
    """Every combination of the options of each argument and keyword, as the peer's
    combo_check tries them."""
    keys = list(kw_options)
    found = []
    for args in itertools.product(*arg_options):
        for values in itertools.product(*(kw_options[k] for k in keys)):
            kwargs = dict(zip(keys, values))
            label = ",".join([_describe(a) for a in args]
                             + [f"{k}={_describe(v)}" for k, v in kwargs.items()])
            found.append(Case(function, tuple(args), kwargs, wrt, modes, 2, apply, label))
    return found


def statistic(function):
    """The peer's stat_check: a float and 0-d, then vectors and matrices along each axis."""
    return (combos(function, [F(3.5, 3.5), R()])
            + combos(function, [R(3), R(2, 3), R(1, 3)], axis=[None, 0], keepdims=[True, False])
            + combos(function, [R(2, 3), R(1, 3)], axis=[None, 0, 1], keepdims=[True, False]))


def unary(function, low=-2.0, high=2.0, modes=("rev", "fwd")):
    """The peer's unary_ufunc_check: a float, a vector and two matrices in [low, high)."""
    return combos(function, [F(low, high), U(low, high, 2), U(low, high, 3, 2),
                             U(low, high, 1, 2)], modes=modes)


SHAPES = ((), (2,), (3, 2), (1, 2))


def binary(function, a=(-2.0, 2.0), b=(-2.0, 2.0), apply=_called, modes=("rev", "fwd")):
    """The peer's binary_ufunc_check: every pair of a float, a vector and two matrices."""
    return combos(function, [U(*a, *s) for s in SHAPES], [U(*b, *s) for s in SHAPES],
                  apply=apply, modes=modes)


def pairs(function, apply, distinct=False):
    """test_binary_ops.py's arg_pairs: every pair of 2.0, a vector, and two matrices; with
    ``distinct``, not an option with itself (the peer leaves out x % x, at its jump)."""
    options = [F(2.0, 2.0), R(4), R(3, 4), R(1, 4)]
    found = combos(function, options, options, apply=apply)
    return [case for case in found if not (distinct and case.args[0] is case.args[1])]


def _operator(symbol):
    return lambda f, x, y: symbol(x, y)


def _away_from_zero(symbol):
    # test_binary_ops.py's sqrt(x**2 + 0.5): both operands at least sqrt(0.5) from zero
    return lambda f, x, y: symbol((x ** 2 + 0.5) ** 0.5, (y ** 2 + 0.5) ** 0.5)


def _method(name, *method_args):
    return lambda f, x: getattr(x, name)(*method_args)


def _second(f, *args, **kwargs):
    return f(*args, **kwargs)[1]


def _symmetrized(f, a, *args, **kwargs):
    """The function of the symmetric part of ``a`` (lower triangle mirrored), as the peer
    checks functions of symmetric matrices."""
    lower = np.tril(a)
    return f((lower + np.swapaxes(lower, -1, -2)) / 2.0, *args, **kwargs)


def _psd(n):
    rng = np.random.default_rng(n)
    m = rng.standard_normal((n, n))
    return m @ m.T + np.eye(n)


SPLITS = [4, [1, 2]]

CASES = [
    # test_systematic.py
    *(case for name in ("max", "mean", "min", "sum", "prod", "var", "std")
      for case in statistic(f"numpy.{name}")),
    *unary("numpy.sin"), *unary("numpy.abs", 0.1, 4.0), *unary("numpy.absolute", 0.1, 4.0),
    *unary("numpy.arccosh", 1.1, 4.0), *unary("numpy.arcsinh", -0.9, 0.9),
    *unary("numpy.arctanh", -0.9, 0.9), *unary("numpy.ceil", -1.5, 1.5), *unary("numpy.cos"),
    *unary("numpy.cosh"), *unary("numpy.deg2rad"), *unary("numpy.degrees"), *unary("numpy.exp"),
    *unary("numpy.exp2"), *unary("numpy.expm1"), *unary("numpy.fabs"),
    *unary("numpy.floor", -1.5, 1.5), *unary("numpy.log", 0.2, 2.0),
    *unary("numpy.log10", 0.2, 2.0), *unary("numpy.log1p", 0.2, 2.0),
    *unary("numpy.log2", 0.2, 2.0), *unary("numpy.rad2deg"), *unary("numpy.radians"),
    *unary("numpy.sign"), *unary("numpy.sinh"), *unary("numpy.sqrt", 1.0, 3.0),
    *unary("numpy.square"), *unary("numpy.tan", -1.1, 1.1), *unary("numpy.tanh"),
    *unary("numpy.real"), *unary("numpy.real_if_close"), *unary("numpy.imag"),
    *unary("numpy.conj"), *unary("numpy.conjugate"), *unary("numpy.angle"),
    *binary("numpy.add"), *binary("numpy.logaddexp"), *binary("numpy.logaddexp2"),
    *binary("numpy.remainder", (-0.9, 0.9), (0.7, 1.9)),
    *binary("numpy.true_divide", b=(0.8, 1.2)), *binary("numpy.true_divide", b=(-2.0, -0.3)),
    *binary("numpy.mod", b=(0.8, 2.1)), *binary("numpy.mod", b=(-2.0, -0.3)),
    *binary("numpy.multiply", apply=_operator(operator.mul)),
    *binary("numpy.subtract", apply=_operator(operator.sub)),
    *binary("numpy.mod", b=(0.3, 2.0), apply=_operator(operator.mod)),
    *combos("numpy.transpose", [R(2, 3, 4)],
            axes=[None, [0, 1, 2], [0, 2, 1], [2, 0, 1], [2, 1, 0], [1, 0, 2], [1, 2, 0]]),
    *combos("numpy.moveaxis", [R(2, 3, 4)], source=[0, 1, 2], destination=[0, 1, 2]),
    *combos("numpy.repeat", [R(2, 3, 4), R(3, 1)], repeats=[0, 1, 2], axis=[None, 0, 1]),
    *combos("numpy.diff", [R(5, 5), R(5, 5, 5)], n=[1, 2], axis=[0, 1]),
    *combos("numpy.diff", [R(1), R(1, 1)], axis=[0]),
    *combos("numpy.diff", [R(1, 1), R(3, 1)], axis=[1]),
    *combos("numpy.gradient", [R(5, 5), R(5, 5, 5)], axis=[None, 0, 1, -1]),
    *combos("numpy.gradient", [R(5, 5, 5)], axis=[(0, 1), (0, -1)]),
    *combos("numpy.tile", [R(2, 1, 3, 1)], reps=[(1, 4, 1, 2)]),
    *combos("numpy.tile", [R(1, 2)], reps=[(1, 2), (2, 3), (3, 2, 1)]),
    *combos("numpy.tile", [R(1)], reps=[(2,), 2]),
    *combos("numpy.kron", [R(5, 5), R(4, 4), R(5), R(5, 1), R(1, 5), R()],
            [R(3, 3), R(2, 2), R(3), R(1, 3), R(3, 1), R()]),
    *combos("numpy.inner", [F(1.5, 1.5), R(3), R(2, 3)], [F(0.3, 0.3), R(3), R(4, 3)]),
    *combos("numpy.dot", [F(1.5, 1.5), R(3), R(2, 3), R(2, 2, 3)],
            [F(0.3, 0.3), R(3), R(3, 4), R(2, 3, 4)]),
    *combos("numpy.outer", [R(3)], [R(3)]),
    *combos("numpy.matmul", [R(3), R(2, 3), R(2, 2, 3)], [R(3), R(3, 4), R(2, 3, 4)]),
    *combos("numpy.matmul", [R(1, 2, 2)], [R(3, 2, 1)]),
    *combos("numpy.tensordot", [R(1, 3), R(2, 3, 2)], [R(3), R(3, 1), R(3, 4, 2)],
            axes=[[(1,), (0,)]]),
    *combos("numpy.tensordot", [R(3), R(3, 1), R(3, 4, 2)], [R(1, 3), R(2, 3, 2)],
            axes=[[(0,), (1,)]]),
    *combos("numpy.tensordot", [R(2, 3), R(2, 3, 4)], [R(1, 2, 3), R(2, 2, 3, 4)],
            axes=[[(0, 1), (1, 2)], [(1, 0), (2, 1)]]),
    *combos("numpy.tensordot", [R(2, 2), R(4, 2, 2)], [R(2, 2), R(2, 2, 4)], axes=[1, 2]),
    *combos("numpy.tensordot", [R(4)], [R()], axes=[0]),
    *combos("numpy.tensordot", [R(2, 6)], [R(6, 3)], axes=[[[-1], [0]], [-1, 0]]),
    *combos("numpy.tensordot", [R(2)], [R(2, 2)], axes=[[0, 1]]),
    *(case for name in ("maximum", "fmax", "minimum", "fmin")
      for case in combos(f"numpy.{name}", [R(1), R(1, 4), R(3, 4)], [R(1), R(1, 4), R(3, 4)])),
    *combos("numpy.sort", [R(1), R(7)]),
    *combos("numpy.partition", [R(7), R(14)], kth=[0, 3, 6]),
    *(case for name in ("atleast_1d", "atleast_2d", "atleast_3d")
      for case in combos(f"numpy.{name}",
                         [F(1.2, 1.2), R(1), R(7), R(1, 4), R(2, 4), R(2, 4, 5), R(2, 4, 3, 5)])),
    *combos("numpy.einsum", ["ij->ji"], [R(1, 1), R(4, 4), R(3, 4)], wrt=(1,)),
    *combos("numpy.einsum", ["ij,jk->ik"], [R(2, 3)], [R(3, 4)], wrt=(1, 2)),
    *combos("numpy.einsum", ["...ij,...jk->...ik"], [R(2, 3), R(2, 2, 3)], [R(3, 4), R(2, 3, 4)],
            wrt=(1, 2)),
    *combos("numpy.einsum", ["...ij,...jk->...ik"], [R(0, 2, 3)], [R(0, 3, 4)], wrt=(1, 2)),
    *combos("numpy.einsum", ["ijk,lji->lki"], [R(3, 4, 4)], [R(4, 4, 3)], wrt=(1, 2)),
    *combos("numpy.einsum", ["...jk,...lj->...lk", "...,...->..."], [R(4, 4), R(3, 4, 4)],
            [R(4, 4), R(3, 4, 4)], wrt=(1, 2)),
    *combos("numpy.einsum", ["jk...,lj...->lk..."], [R(3, 2), R(3, 2, 4)], [R(2, 3), R(2, 3, 4)],
            wrt=(1, 2)),
    *combos("numpy.einsum", ["j...k,lj...->lk..."], [R(2, 2), R(2, 2, 2)], [R(2, 2), R(2, 2, 2)],
            wrt=(1, 2)),
    *combos("numpy.einsum", ["ijk,lji,lli->lki"], [R(3, 4, 4)], [R(4, 4, 3)], [R(4, 4, 3)],
            wrt=(1, 2)),
    *combos("numpy.einsum", [R(1, 1), R(4, 4), R(3, 4)], [(0, 1)], [(1, 0)], wrt=(0,)),
    *combos("numpy.einsum", [R(2, 3)], [(0, 1)], [R(3, 4)], [(1, 2)], [(0, 2)], wrt=(0, 2)),
    *combos("numpy.einsum", [R(2, 3), R(2, 2, 3)], [(Ellipsis, 0, 1)], [R(3, 4), R(2, 3, 4)],
            [(Ellipsis, 1, 2)], [(Ellipsis, 0, 2)], wrt=(0, 2)),
    *combos("numpy.einsum", [R(3, 4, 4)], [(0, 1, 2)], [R(4, 4, 3)], [(3, 1, 0)], [(3, 2, 0)],
            wrt=(0, 2)),
    *combos("numpy.einsum", [R(3, 4, 4)], [(0, 1, 2)], [R(4, 4, 3)], [(3, 1, 0)], [R(4, 4, 3)],
            [(3, 3, 0)], [(3, 2, 0)], wrt=(0, 2)),
    *combos("numpy.einsum", ["k,nk->"], [R(5)], [R(10, 5)], wrt=(1, 2)),
    *combos("numpy.einsum", ["abcd->bd"], [R(3, 2, 3, 2)], wrt=(1,)),
    *combos("numpy.einsum", ["...k,...nk->..."], [R(3, 5)], [R(3, 10, 5)], wrt=(1, 2)),
    *combos("numpy.einsum", ["ij,k"], [R(3, 4)], [R(3)], wrt=(1, 2)),
    *combos("numpy.trace", [R(5, 5), R(4, 5), R(5, 4), R(3, 4, 5)], offset=[-1, 0, 1]),
    *combos("numpy.diag", [R(5, 5), R(5)], k=[-1, 0, 1]),
    *combos("numpy.tril", [R(5, 5), R(5, 5, 4)], k=[-1, 0, 1]),
    *combos("numpy.triu", [R(5, 5), R(5, 5, 4)], k=[-1, 0, 1]),
    *combos("numpy.swapaxes", [R(3, 4, 5)], axis1=[0, 1, 2], axis2=[0, 1, 2]),
    *combos("numpy.rollaxis", [R(2, 3, 4)], axis=[0, 1, 2], start=[0, 1, 2]),
    *combos("numpy.cross", [R(3, 3)], [R(3, 3)], axisa=[-1, 0, 1], axisb=[-1, 0, 1],
            axisc=[-1, 0, 1], axis=[None, -1, 0, 1]),
    *combos("numpy.vsplit", [R(4, 8), R(4, 4, 4)], SPLITS),
    *combos("numpy.hsplit", [R(4, 8), R(4, 4, 4)], SPLITS),
    *combos("numpy.dsplit", [R(4, 4, 4)], [2, [1, 2]]),
    *combos("numpy.split", [R(1), R(7)], [1], axis=[0]),
    *combos("numpy.split", [R(4, 8)], SPLITS, axis=[0, 1]),
    *combos("numpy.split", [R(4, 4, 4)], [2, [1, 2]], axis=[0, 1, 2]),
    *combos("numpy.array_split", [R(1), R(7)], [1, 3], axis=[0]),
    *combos("numpy.array_split", [R(7, 7)], [4, [3, 5]], axis=[0, 1]),
    *combos("numpy.array_split", [R(7, 7, 7)], [4, [3, 5]], axis=[0, 1, 2]),
    *combos("numpy.concatenate", [(R(1), R(3)), [R(1), R(3)]], axis=[0]),
    *combos("numpy.concatenate", [(R(2, 2), R(2, 2))], axis=[0, 1]),
    *combos("numpy.concatenate", [(R(2, 2, 2), R(2, 2, 2))], axis=[0, 1, 2]),
    *(case for name in ("vstack", "row_stack")
      for case in combos(f"numpy.{name}", [R(2), (R(2), R(2)), R(2, 3), (R(2, 4), R(1, 4)),
                                            R(2, 3, 4), (R(2, 3, 4), R(5, 3, 4))])),
    *combos("numpy.hstack", [R(2), (R(2), R(2)), R(3, 2), (R(3, 4), R(3, 5)), R(2, 3, 4),
                             (R(2, 1, 4), R(2, 5, 4))]),
    *combos("numpy.stack", [(R(2),), (R(2), R(2))], axis=[0, 1]),
    *combos("numpy.column_stack", [R(2), (R(2), R(2)), R(2, 2), (R(2, 2), R(2, 2))]),
    *combos("numpy.select", [[np.array([True, False, True]), np.array([False, True, True]),
                              np.array([True, True, False])]],
            [[R(3), R(3), R(3)]], default=[0.0, 1.1], wrt=(1,)),
    *combos("numpy.pad", [R(2, 2)], [0, 3, (3,), (3, 2), ((3, 2),), ((1, 2), (3, 4)),
                                     ((0, 0), (0, 0))], ["constant"]),
    # test_numpy.py
    *combos("numpy.dot", [R(10, 11)], [R(11)]), *combos("numpy.dot", [R(10)], [R(10, 11)]),
    *combos("numpy.dot", [R(10, 11), R(10), F()], [F()]),
    *combos("numpy.outer", [R(11)], [R(11)]),
    *combos("numpy.max", [R(10, 11)]), *combos("numpy.max", [R(3, 4, 5)], axis=[1],
                                              keepdims=[False, True]),
    *combos("numpy.min", [R(10, 11)]), *combos("numpy.min", [R(3, 4, 5)], axis=[1],
                                              keepdims=[False, True]),
    *combos("numpy.sum", [R(10, 11)], axis=[None, 0]),
    *combos("numpy.sum", [R(10, 11, 7)], axis=[(1, 2)]),
    *combos("numpy.flipud", [R(10, 11)]), *combos("numpy.fliplr", [R(10, 11)]),
    *combos("numpy.rot90", [R(10, 11)]),
    *combos("numpy.cumsum", [R(10, 11)], axis=[None, 0, 1]), *combos("numpy.cumsum", [R(10)]),
    *combos("numpy.mean", [R(10, 11)], axis=[None, 0], keepdims=[False, True]),
    *combos("numpy.reshape", [R(5, 6, 4)], [(20, 6)]),
    *combos("numpy.reshape", [R(5, 6, 4)], apply=lambda f, x: x.reshape(20, 6)),
    *combos("numpy.ravel", [R(5, 6, 4)]),
    *combos("numpy.ndarray.flatten", [R(5, 6, 4)], apply=_method("flatten")),
    *combos("numpy.append", [R(3)], [F()]),
    *combos("numpy.append", [R(2, 3)], [R(1, 3)], axis=[0]),
    *combos("numpy.concatenate", [(R(5, 6, 4), R(4, 6, 4))]),
    *combos("numpy.concatenate", [(R(5, 6, 4), R(5, 6, 4), R(5, 6, 4))], axis=[0, 1]),
    *combos("numpy.trace", [R(10, 11), R(11, 10)], offset=[-3, 4]),
    *combos("numpy.trace", [R(5, 6, 4, 3)], offset=[2]),
    *combos("numpy.diag", [R(10, 10)]),
    *combos("numpy.transpose", [R(8, 8)], apply=lambda f, x: x.T),
    *combos("numpy.roll", [R(4, 5)], [2], axis=[1, None]),
    *combos("numpy.triu", [R(5, 5)], k=[2]), *combos("numpy.tril", [R(5, 5)], k=[2]),
    *combos("numpy.clip", [R(5, 5)], a_min=[0.1], a_max=[1.1]),
    *combos("numpy.prod", [P(2, 3, plus=0.1), P(7, plus=0.1)], axis=[None, 0],
            keepdims=[False, True]),
    *combos("numpy.array", [F(3.0, 3.0)], apply=lambda f, x: f([x, x * 1.0, x + 2.5])),
    *combos("numpy.array", [F(3.0, 3.0)],
            apply=lambda f, x: f([[x, x * 1.0, x + 2.5], [x ** 2, x, x / 2.0]])),
    *combos("numpy.array", [F(3.0, 3.0)], apply=lambda f, x: f(x)),
    *combos("numpy.array", [R(3, 2)], apply=lambda f, x: f([[2 * x, x + 1], [x, x]])),
    *combos("numpy.var", [R(3), R(3, 4), R(1, 3)], axis=[None], keepdims=[True, False],
            ddof=[0, 1]),
    *combos("numpy.var", [R(3, 4), R(1, 3)], axis=[None, 1], keepdims=[True, False], ddof=[2]),
    *combos("numpy.std", [R(3), R(3, 4), R(1, 3)], axis=[None], keepdims=[True, False],
            ddof=[0, 1]),
    *combos("numpy.std", [R(3, 4), R(1, 3)], axis=[None, 1], keepdims=[True, False], ddof=[2]),
    *combos("numpy.where", [np.array([[True, False, True], [False, False, True]])], [R(2, 3)],
            [R(2, 3)], wrt=(1, 2)),
    *combos("numpy.squeeze", [R(5, 1, 4)]),
    *combos("numpy.squeeze", [R(5, 1, 4)], apply=_method("squeeze")),
    *combos("numpy.repeat", [R(5, 3, 4)], [2, 1], axis=[1]),
    *combos("numpy.repeat", [R(5, 3), R(5), R(5, 1)], [2, 1], axis=[0]),
    *combos("numpy.expand_dims", [R(5, 1, 4)], [2]),
    *combos("numpy.diagonal", [R(4, 4), R(3, 4, 4)], axis1=[-1], axis2=[-2]),
    *combos("numpy.nan_to_num", [R(4)],
            apply=lambda f, x: np.sin(f(x + np.array([0.0, np.nan, np.inf, -np.inf])))),
    *combos("numpy.linspace", [F(1.2, 1.2)], [F(3.4, 3.4), F(-3.4, -3.4), F(1.2, 1.2)],
            [0, 1, 5]),
    *combos("numpy.ndarray.astype", [R(3)],
            apply=lambda f, x: np.sum(np.sin(x.astype("float64")))),
    *combos("numpy.gradient", [R(10), R(10, 10), R(10, 10, 10)]),
    *combos("numpy.gradient", [R(10, 10, 10)], axis=[None, 0, 1, -1, (0, 1), (0, -1)]),
    # test_binary_ops.py
    *pairs("numpy.multiply", _operator(operator.mul)),
    *pairs("numpy.add", _operator(operator.add)),
    *pairs("numpy.subtract", _operator(operator.sub)),
    *pairs("numpy.divide", _away_from_zero(operator.truediv)),
    *pairs("numpy.mod", _away_from_zero(operator.mod), distinct=True),
    *pairs("numpy.power", lambda f, x, y: (abs(x) + 1.1) ** y),
    *pairs("numpy.arctan2", _called),
    *combos("numpy.hypot", *[[F(2.0, 2.0), R(4), R(3, 4), R(1, 4)]] * 2, modes=("rev",)),
    *(case for name in ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal")
      for case in pairs(f"numpy.{name}", _called)),
    # test_scalar_ops.py
    *(case for name in ("arccos", "arcsin", "arctan", "arctanh")
      for case in combos(f"numpy.{name}", [F(0.1, 0.2)])),
    *combos("numpy.negative", [F(0.0, 1.0)]), *combos("numpy.reciprocal", [F(0.1, 1.0)]),
    *combos("numpy.sinc", [F(0.0, 10.0)]),
    *combos("numpy.power", [F(1.0, 2.0)], [Point(None, square_plus=1.0)]),
    *combos("numpy.divide", [F(0.1, 1.0)], [F(0.1, 1.0)]),
    *combos("numpy.true_divide", [F(0.1, 1.0)], [F(0.1, 1.0)]),
    # test_linalg.py (the peer checks them in reverse mode)
    *combos("numpy.linalg.inv", [U(-0.5, 0.5, 8, 8)],
            apply=lambda f, a: f(a + 4.0 * np.eye(8)), modes=("rev",)),
    *combos("numpy.linalg.pinv", [R(5, 3), R(5, 5), R(2, 5, 4)], modes=("rev",)),
    *combos("numpy.linalg.solve", [U(-0.5, 0.5, 8, 8)], [R(8, 7), R(8)],
            apply=lambda f, a, b: f(a + 10.0 * np.eye(8), b), modes=("rev",)),
    *combos("numpy.linalg.det", [R(6, 6), R(3, 3, 3)], modes=("rev",)),
    *combos("numpy.linalg.slogdet", [R(6, 6)], apply=_second, modes=("rev",)),
    *combos("numpy.linalg.norm", [R(6), R(6, 5)], modes=("rev", "fwd")),
    *combos("numpy.linalg.norm", [R(6, 5, 4)], axis=[(0, 1), 0, 1, 2]),
    *combos("numpy.linalg.norm", [R(6)], ord=[2, 3, 4]),
    *combos("numpy.linalg.eigh", [R(6, 6)], apply=_symmetrized, modes=("rev",)),
    *combos("numpy.linalg.eig", [R(8, 8)], modes=("rev",),
            apply=lambda f, a: np.abs(f(a)[0])),
    *combos("numpy.linalg.cholesky", [R(6, 6)], modes=("rev",),
            apply=lambda f, a: _symmetrized(f, a * 0.1 + _psd(6))),
    *combos("numpy.linalg.svd", [R(3, 5), R(4, 4), R(5, 3)], modes=("rev",),
            apply=lambda f, a: f(a, compute_uv=False)),
    # test_fft.py
    *(case for name in ("fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "rfft2",
                        "rfftn", "fftshift", "ifftshift")
      for case in combos(f"numpy.fft.{name}", [R(4, 4)], modes=("rev",))),
    *(case for name in ("irfft", "irfft2", "irfftn")
      for case in combos(f"numpy.fft.{name}", [R(4, 4)], modes=("rev",))),
    # test_scipy.py (the peer checks SciPy's functions in reverse mode)
    *(case for name in ("pdf", "cdf", "logpdf")
      for case in combos(f"scipy.stats.chi2.{name}", [P(4)], [1, 2, 3], modes=("rev",))),
    *combos("scipy.stats.beta.cdf", [U(0.0, 1.0, 4)], [P(4)], [P(4)], wrt=(0,),
            modes=("rev",)),
    *(case for name in ("pdf", "logpdf")
      for case in combos(f"scipy.stats.beta.{name}", [U(0.0, 1.0, 4)], [P(4)], [P(4)],
                         modes=("rev",))),
    *combos("scipy.stats.gamma.cdf", [P(4)], [P(4)], wrt=(0,), modes=("rev",)),
    *(case for name in ("pdf", "logpdf")
      for case in combos(f"scipy.stats.gamma.{name}", [P(4)], [P(4)], modes=("rev",))),
    *(case for name in ("pdf", "cdf", "sf", "logpdf", "logcdf", "logsf")
      for shapes in (((4,), (4,), (4,)), ((4, 3), (1, 3), (4, 1)))
      for case in combos(f"scipy.stats.norm.{name}", [R(*shapes[0])], [R(*shapes[1])],
                         [P(*shapes[2])], modes=("rev",))),
    *(case for name in ("cdf", "logpmf", "pmf")
      for shapes in (((4,), (4,)), ((4, 3), (4, 1)))
      for case in combos(f"scipy.stats.poisson.{name}",
                         [np.round(np.random.default_rng(4).standard_normal(shapes[0]) ** 2)],
                         [P(*shapes[1])], wrt=(1,), modes=("rev",))),
    *(case for name in ("pdf", "logpdf", "cdf", "logcdf")
      for shapes in (((4,), (4,), (4,), (4,)), ((4, 3), (1, 3), (4, 3), (4, 1)))
      for case in combos(f"scipy.stats.t.{name}", [R(*shapes[0])], [P(*shapes[1], plus=2.1)],
                         [R(*shapes[2])], [P(*shapes[3], plus=2.1)],
                         wrt=(0, 1, 2, 3) if name.endswith("pdf") else (0, 2), modes=("rev",))),
    *(case for name in ("pdf", "logpdf")
      for case in combos(f"scipy.stats.multivariate_normal.{name}", [R(4), R(5, 4)], [R(4)],
                         [R(4, 4)], modes=("rev",),
                         apply=lambda f, x, mean, a: _symmetrized(
                             lambda c: f(x, mean, c), a * 0.1 + _psd(4)))),
    *combos("scipy.stats.multivariate_normal.entropy", [R(4)], [R(4, 4)], modes=("rev",),
            apply=lambda f, mean, a: _symmetrized(lambda c: f(mean, c), a * 0.1 + _psd(4))),
    *(case for name in ("pdf", "logpdf")
      for case in combos(f"scipy.stats.dirichlet.{name}", [U(0.2, 1.0, 4)], [P(4, plus=1.2)],
                         modes=("rev",), apply=lambda f, x, alpha: f(x / np.sum(x), alpha))),
    *combos("scipy.special.logsumexp", [R(1), R(4), R(3, 4)], axis=[None, 0],
            keepdims=[True, False]),
    *combos("scipy.special.logsumexp", [R(3, 4), R(4, 5, 6), R(1, 5)], axis=[None, 0, 1],
            keepdims=[True, False]),
    *combos("scipy.special.logsumexp", [R(4)], b=[np.exp(np.linspace(-1.0, 1.0, 4))],
            axis=[None, 0], keepdims=[True, False]),
    *combos("scipy.special.logsumexp", [R(2, 3, 4)],
            b=[np.exp(np.linspace(-1.0, 1.0, 24)).reshape(2, 3, 4)], axis=[None, 0, 1],
            keepdims=[True, False]),
    *combos("scipy.signal.convolve", [R(4), R(5), R(6)], [R(2), R(3), R(4)],
            mode=["full", "valid", "same"], modes=("rev",)),
    *combos("scipy.signal.convolve", [R(4, 3), R(5, 4), R(6, 7)], [R(2, 2), R(3, 2), R(4, 1)],
            mode=["full", "valid", "same"], modes=("rev",)),
    *(case for name in ("beta", "betaln")
      for case in combos(f"scipy.special.{name}", [P(4)], [P(4)], modes=("rev",))),
    *combos("scipy.special.betainc", [P(4)], [P(4)], [U(0.0, 1.0, 4)], wrt=(2,), modes=("rev",)),
    *(case for name in ("gammainc", "gammaincc")
      for case in combos(f"scipy.special.{name}", [1], [P(4, plus=1.3)], modes=("rev",))),
    *combos("scipy.special.polygamma", [0], [P(4, plus=1.3)], modes=("rev",)),
    *(case for name in ("jn", "yn")
      for case in combos(f"scipy.special.{name}", [2], [P(4, plus=1.3)], modes=("rev",))),
    *(case for name in ("psi", "digamma", "gamma", "gammaln", "gammasgn", "rgamma")
      for case in unary(f"scipy.special.{name}", 0.3, 2.0, modes=("rev",))),
    *combos("scipy.special.multigammaln", [U(4.0, 5.0), U(4.0, 5.0, 2, 3)], [1, 2, 3],
            modes=("rev",)),
    *(case for name in ("j0", "j1", "y0", "y1", "i0", "i1")
      for case in unary(f"scipy.special.{name}", 0.2, 20.0, modes=("rev",))),
    *(case for name in ("iv", "ive")
      for case in combos(f"scipy.special.{name}", [np.array([1.5, 7.0, 20.0, 45.0])],
                         [P(4, plus=1.3)], modes=("rev",))),
    *unary("scipy.special.erf", -3.0, 3.0, modes=("rev",)),
    *unary("scipy.special.erfc", -3.0, 3.0, modes=("rev",)),
    *unary("scipy.special.erfinv", -0.95, 0.95, modes=("rev",)),
    *unary("scipy.special.erfcinv", 0.05, 1.95, modes=("rev",)),
    *unary("scipy.special.logit", 0.1, 0.9, modes=("rev",)),
    *unary("scipy.special.expit", -4.05, 4.95, modes=("rev",)),
    *combos("scipy.integrate.odeint", [R(3)], modes=("rev",),
            apply=lambda f, y0: f(lambda y, t: -y, y0, np.linspace(0.1, 0.2, 4))),
    *combos("scipy.linalg.sqrtm", [R(3, 3)],
            apply=lambda f, a: _symmetrized(f, a * 0.1 + _psd(3))),
    *combos("scipy.linalg.solve_sylvester", [R(3, 3)], [R(3, 3)], [R(3, 3)], modes=("rev",)),
    *combos("scipy.linalg.solve_banded", [(1, 1)], [R(3, 5)], [R(5)], wrt=(1, 2),
            modes=("rev",), apply=lambda f, bands, ab, b: f(bands, ab + np.array([[0.0], [4.0],
                                                                                  [0.0]]), b)),
]


# -- applying a function to arrays and to expressions ---------------------------------------------


class Unsupported(Exception):
    """symgrad said it does not support the function (or one of its arguments) yet."""


def reference_function(qualified):
    """NumPy's or SciPy's function of that qualified name (None for an ndarray method)."""
    if qualified.startswith("numpy.ndarray."):
        return None
    parts = qualified.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise LookupError(qualified)


def symbolic_function(qualified):
    """What a program calls on expressions: NumPy's own function, which hands expressions to
    symgrad through the array protocols, unless it is one of NumPy's C functions that do not
    dispatch (np.array); those, and SciPy's functions, are symgrad's namesakes in symgrad.numpy
    and symgrad.scipy."""
    reference = reference_function(qualified)
    if qualified.startswith("numpy.") and not isinstance(reference, type(np.array)):
        return reference
    parts = ["symgrad", *qualified.split(".")]
    for cut in range(len(parts) - 1, 1, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for position, name in enumerate(parts[cut:], cut):
            try:
                found = getattr(found, name)
            except sg.SymgradError as error:
                raise Unsupported(str(error)) from None
            except AttributeError:
                raise Unsupported(f"{'.'.join(parts[:position])} has no {name}") from None
        return found
    raise Unsupported(f"symgrad has no module {'.'.join(parts[:2])}")


@dataclass(frozen=True)
class Leaf:
    """The place of a differentiated input in a case's arguments."""
    index: int


def _template(case, rng):
    """The case's arguments with each differentiated Point replaced by a Leaf, the drawn value
    of each leaf, and the other Points drawn."""
    wrt = case.wrt if case.wrt is not None else tuple(
        position for position, arg in enumerate(case.args)
        if isinstance(arg, Point) or (isinstance(arg, (list, tuple))
                                      and any(isinstance(a, Point) for a in arg)))
    leaves = []

    def replace(value, differentiated):
        if isinstance(value, Point):
            drawn = value.draw(rng)
            if not differentiated:
                return drawn
            leaves.append(drawn)
            return Leaf(len(leaves) - 1)
        if isinstance(value, (list, tuple)) and differentiated:
            return type(value)(replace(v, True) for v in value)
        return value

    template = [replace(arg, position in wrt) for position, arg in enumerate(case.args)]
    return template, leaves


def _fill(value, leaves):
    if isinstance(value, Leaf):
        return leaves[value.index]
    if isinstance(value, (list, tuple)):
        return type(value)(_fill(v, leaves) for v in value)
    return value


def _outputs(result):
    return list(result) if isinstance(result, (list, tuple)) else [result]


def _evaluate(case, function, template, leaves):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)       # np.row_stack
        return _outputs(case.apply(function, *_fill(template, leaves), **case.kwargs))


def _build(case, template, leaves):
    """The case on expressions: its outputs and its variables, or Unsupported."""
    variables = [sg.var(f"x{i}", shape=np.shape(leaf)) for i, leaf in enumerate(leaves)]
    try:
        outputs = _evaluate(case, symbolic_function(case.function), template, variables)
    except sg.SymgradError as error:
        if "not supported" in str(error):
            raise Unsupported(str(error)) from None
        raise
    return [sg.const(np.asarray(o)) if not isinstance(o, sg.Expr) else o for o in outputs], \
        variables


def _derivatives(case, outputs, variables, cotangents, tangents, second_cotangents):
    try:
        loss = sum(sg.sum(o * u) for o, u in zip(outputs, cotangents))
        gradients = sg.grad(loss, variables, disconnected="zero")
        pushed = ([sg.jvp(o, variables, tangents, disconnected="zero") for o in outputs]
                  if "fwd" in case.modes else [])
        second = sg.grad(sum(sg.sum(g * w) for g, w in zip(gradients, second_cotangents)),
                         variables, disconnected="zero") if case.order >= 2 else []
    except sg.UndefinedGradientError as error:
        raise Unsupported(str(error)) from None
    return gradients, pushed, second


def _close(got, expected, what):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def _check(case):
    """Check one case; raise Unsupported if symgrad lacks what it needs."""
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    template, leaves = _template(case, rng)
    reference = reference_function(case.function)
    expected = [np.asarray(o) for o in _evaluate(case, reference, template, leaves)]
    cotangents = [rng.standard_normal(o.shape) for o in expected]
    second_cotangents = [rng.standard_normal(np.shape(leaf)) for leaf in leaves]
    tangent_values = [rng.standard_normal(np.shape(leaf)) for leaf in leaves]
    with sg.use_graph():
        outputs, variables = _build(case, template, leaves)
        tangents = [sg.var(f"t{i}", shape=v.shape) for i, v in enumerate(variables)]
        gradients, pushed, second = _derivatives(case, outputs, variables, cotangents, tangents,
                                                 second_cotangents)
        run = sg.compile([*outputs, *gradients, *pushed, *second],
                         inputs=[*variables, *tangents])

    def parts(leaf_values):
        results = list(run(*leaf_values, *tangent_values))
        cuts = np.cumsum([0, len(outputs), len(gradients), len(pushed), len(second)])
        return [results[start:stop] for start, stop in zip(cuts[:-1], cuts[1:])]

    values, got_gradients, got_pushed, got_second = parts(leaves)
    assert len(values) == len(expected), f"{len(values)} outputs, NumPy has {len(expected)}"
    for k, (value, e) in enumerate(zip(values, expected)):
        _close(value, e, f"value of output {k}")
    if all(e.dtype == bool for e in expected):
        # a comparison: as the peer checks, no gradient flows (differences would see the jumps)
        for derivative in [*got_gradients, *got_pushed, *got_second]:
            assert not np.any(derivative), "a comparison's derivative is not zero"
        return

    def substituted(i, x):
        return [x if j == i else leaf for j, leaf in enumerate(leaves)]

    for i, leaf in enumerate(leaves):
        _close(got_gradients[i],
               contracted_differences(lambda x: _evaluate(case, reference, template,
                                                          substituted(i, x)),
                                      np.asarray(leaf), cotangents),
               f"vjp of input {i}")
    if pushed:
        plus = _evaluate(case, reference, template,
                         [leaf + EPS * t for leaf, t in zip(leaves, tangent_values)])
        minus = _evaluate(case, reference, template,
                          [leaf - EPS * t for leaf, t in zip(leaves, tangent_values)])
        for k, (p, m) in enumerate(zip(plus, minus)):
            _close(got_pushed[k], (np.asarray(p) - np.asarray(m)) / (2 * EPS),
                   f"jvp of output {k}")
    if second:
        for i, leaf in enumerate(leaves):
            _close(got_second[i],
                   contracted_differences(lambda x: parts(substituted(i, x))[1],
                                          np.asarray(leaf), second_cotangents),
                   f"second derivative of input {i}")


def contracted_differences(outputs_of, x, cotangents):
    """The central differences of the arrays ``outputs_of(x)``, entry by entry of ``x``,
    contracted with ``cotangents``: a vjp. The outputs are subtracted before they are weighted
    and summed, so that entries that do not move cancel exactly: summed first, a large entry's
    rounding (i0 at 20 is 4e7) would swamp a small one's difference."""
    gradient = np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        offset = np.zeros(x.shape)
        offset[index] = EPS
        plus, minus = outputs_of(x + offset), outputs_of(x - offset)
        gradient[index] = sum(np.sum((np.asarray(p) - np.asarray(m)) * u)
                              for p, m, u in zip(plus, minus, cotangents)) / (2 * EPS)
    return gradient


@functools.cache
def unsupported_reason(case):
    """None when the case passes, else why symgrad cannot run it; a wrong value or derivative
    raises AssertionError."""
    try:
        _check(case)
    except Unsupported as error:
        return str(error)
    return None


def _ids(cases):
    seen = {}
    ids = []
    for case in cases:
        seen[case.id] = seen.get(case.id, 0) + 1
        ids.append(case.id if seen[case.id] == 1 else f"{case.id}#{seen[case.id]}")
    return ids


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_the_peers_check(case):
    reason = unsupported_reason(case)
    if reason is not None:
        pytest.skip(f"{reason} ({planned(case.function)})")


def test_every_function_counted_has_cases_and_every_case_is_counted():
    assert len(PEER_FUNCTIONS) == len(set(PEER_FUNCTIONS)) == 211
    assert {case.function for case in CASES} == set(PEER_FUNCTIONS)


def coverage():
    """The PEER_FUNCTIONS every case of which passes, and the others with a reason each."""
    missing = {}
    for case in CASES:
        if case.function in missing:
            continue
        try:
            reason = unsupported_reason(case)
        except AssertionError as error:
            reason = f"WRONG: {str(error).splitlines()[0]}"
        if reason is not None:
            missing[case.function] = reason
    return [f for f in PEER_FUNCTIONS if f not in missing], missing


def test_at_least_the_floor_of_the_peers_functions_are_supported():
    supported, missing = coverage()
    assert len(supported) >= SUPPORTED_AT_LEAST, \
        f"{len(supported)} of {len(PEER_FUNCTIONS)} supported; missing: {sorted(missing)}"


def main():
    supported, missing = coverage()
    print(f"{len(supported)} of {len(PEER_FUNCTIONS)} functions of the peer's suite supported")
    by_issue = {}
    for function, reason in missing.items():
        by_issue.setdefault(planned(function), []).append((function, reason))
    for issue, functions in sorted(by_issue.items()):
        print(f"\n{issue}: {len(functions)}")
        for function, reason in functions:
            print(f"  {function}: {reason}")


if __name__ == "__main__":
    main()


def test_std_over_one_entry_is_constant_so_its_derivatives_are_zero():
    # np.std over one entry is 0 whatever the entry: derivative 0 (it was nan, as at a zero
    # deviation among several entries, where nan stays: see test_reductions_more)
    x, v = sg.var("x"), sg.var("v", shape=(1, 3))
    first = sg.grad(np.std(x), x)
    fn = sg.compile([first, sg.grad(first, x), sg.grad(np.sum(np.std(v, axis=0)), v)],
                    inputs=[x, v])
    for derivative in fn(1.5, np.ones((1, 3))):
        assert np.array_equal(derivative, np.zeros(np.shape(derivative)))


def test_numpys_joining_functions_take_an_array_as_the_sequence_of_its_rows():
    v = sg.var("v", shape=(2, 3))
    value = np.arange(6.0).reshape(2, 3)
    for join in (np.vstack, np.hstack, np.column_stack, np.concatenate, np.stack, np.dstack):
        np.testing.assert_array_equal(sg.compile(join(v), inputs=[v])(value), join(value))
    assert [row.shape for row in v] == [(3,), (3,)]
    with pytest.raises(sg.SymgradError, match="not iterable"):
        iter(sg.var("s"))
    with pytest.raises(sg.SymgradError, match="not iterable"):
        iter(sg.var("w", shape=("n", 2)))
