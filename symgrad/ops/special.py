"""Special functions with SciPy's semantics (erf, erfc, logit, xlogy) and what is built on them
(gelu; expit is sigmoid's op). Their NumPy form calls SciPy's ufuncs through ``special``, which
the emitter asks its context for (``ctx.library``: codegen binds scipy.special, imported at the
first call that needs it); their Python-float forms use math. The array-API backend has no
counterpart and refuses them when compiling.
Imports ops.core and ops.elementwise.
"""

import math

from ..errors import ArgumentError
from .core import apply, broadcast_shape, defop, public, same_shape
from .elementwise import _fold, _through_broadcasts, _to_input, exp, log, sigmoid, tanh


def _scipy(name):
    """SciPy's ufunc ``name``, imported only when a constant is folded with it."""
    def function(*values):
        import scipy.special
        return getattr(scipy.special, name)(*values)
    return function


def _emit_scipy(name):
    """The NumPy emission of SciPy's ufunc ``name``, and the one writing into ``ctx.into``."""
    def emit(ctx):
        return f"{ctx.library('special')}.{name}({', '.join(ctx.args)})"

    def emit_into(ctx):
        return f"{ctx.library('special')}.{name}({', '.join(ctx.args)}, out={ctx.into})"
    return emit, emit_into


# the ops whose NumPy form calls SciPy
USES_SCIPY = ("erf", "erfc", "logit", "xlogy")
_ERF, _ERF_INTO = _emit_scipy("erf")
_ERFC, _ERFC_INTO = _emit_scipy("erfc")
_LOGIT, _LOGIT_INTO = _emit_scipy("logit")
_XLOGY, _XLOGY_INTO = _emit_scipy("xlogy")
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

defop("erf", 1, same_shape, _ERF,
      lambda g, out, x: [g * (_TWO_OVER_SQRT_PI * exp(-(x * x)))],
      simplify=_fold(_scipy("erf")), scalar="math.erf({0})",
      numpy_into=_ERF_INTO, public="erf", sympy="erf")
defop("erfc", 1, same_shape, _ERFC,
      lambda g, out, x: [-(g * (_TWO_OVER_SQRT_PI * exp(-(x * x))))],
      simplify=_fold(_scipy("erfc")), scalar="math.erfc({0})",
      numpy_into=_ERFC_INTO, public="erfc", sympy="erfc")
# SciPy's logit, branch for branch: log(x / (1 - x)), and near 1/2, where that loses the
# relative accuracy of a small result, log1p(s) - log1p(-s) with s = 2 (x - 1/2). Its derivative
# 1 / (x (1 - x)) is exact near 1 (1 - x is exact there).
defop("logit", 1, same_shape, _LOGIT,
      lambda g, out, x: [g / (x * (1.0 - x))],
      simplify=_fold(_scipy("logit")),
      scalar="(math.log({0} / (1.0 - {0})) if {0} < 0.3 or {0} > 0.65 "
             "else math.log1p(2.0 * ({0} - 0.5)) - math.log1p(-2.0 * ({0} - 0.5)))",
      numpy_into=_LOGIT_INTO, public="logit",
      sympy=lambda sympy, x: sympy.log(x / (1 - x)))


# xlogy(x, y) = x log y, and 0 where x = 0 unless y is nan (SciPy's). Its derivatives are JAX's:
# log y with respect to x, x / y with respect to y (nan at x = y = 0, as in JAX).
def _xlogy_vjp(g, out, x, y):
    return [_to_input(g * log(y), out, x), _to_input(g * (x / y), out, y)]


defop("xlogy", 2, broadcast_shape, _XLOGY, _xlogy_vjp,
      simplify=(_fold(_scipy("xlogy")), _through_broadcasts("xlogy")),
      scalar="(0.0 if {0} == 0.0 and {1} == {1} else {0} * math.log({1}))",
      numpy_into=_XLOGY_INTO, public="xlogy",
      sympy=lambda sympy, x, y: x * sympy.log(y))


def erf(x): return apply("erf", x)
def erfc(x): return apply("erfc", x)
def logit(x): return apply("logit", x)
def xlogy(x, y): return apply("xlogy", x, y)


@public("expit")
def expit(x):
    """SciPy's logistic function, ``1 / (1 + exp(-x))``: sigmoid's op."""
    return sigmoid(x)


_SQRT_HALF = math.sqrt(0.5)
_SQRT_TWO_OVER_PI = math.sqrt(2.0 / math.pi)


@public("gelu", static=("approximate",))
def gelu(x, approximate="none"):
    """The Gaussian error linear unit ``x Φ(x)``, as PyTorch's: exact (``approximate="none"``),
    written ``x erfc(-x / √2) / 2``, which keeps its relative accuracy for negative x where
    ``1 + erf`` cancels; or ``approximate="tanh"``,
    ``x (1 + tanh(√(2/π) (x + 0.044715 x³))) / 2``."""
    if approximate not in ("none", "tanh"):
        raise ArgumentError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    half_x = apply("multiply", 0.5, x)          # refuses what cannot be an operand, first
    if approximate == "none":
        return half_x * erfc(x * -_SQRT_HALF)
    return half_x * (1.0 + tanh(_SQRT_TWO_OVER_PI * (x + 0.044715 * (x * x * x))))


__all__ = ["erf", "erfc", "logit", "xlogy", "expit", "gelu"]
