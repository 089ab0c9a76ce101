"""Special functions with SciPy's semantics (erf, erfc, logit, xlogy) and what is built on them
(gelu; expit is sigmoid's op). Their NumPy form calls SciPy's ufuncs through ``special``, which
the emitter asks its context for (``ctx.library``: codegen binds scipy.special, imported at the
first call that needs it); their Python-float forms use math. The array-API backend has no
counterpart and refuses them when compiling.
Imports ops.core and ops.elementwise.
"""

import math
import numbers

import numpy as np

from ..errors import ArgumentError, UndefinedGradientError
from .core import (Expr, apply, broadcast_shape, const, constant_value, defop, literal, public,
                   same_shape)
from .elementwise import (_fold, _through_broadcasts, _to_input, exp, log, log1p, sigmoid, sign,
                          tanh, where)


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


def _emit_scipy_float32(name, orders=()):
    """SciPy's ufunc ``name`` as _emit_scipy writes it, with the attributes ``orders`` as leading
    literal arguments (a Bessel function's order), and ``dtype=np.float32`` on float32 results:
    some of SciPy's ufuncs pick their float64 loop for a Python number next to a float32 array."""
    def arguments(ctx):
        literals = [literal(float(ctx.attrs[o])) for o in orders]
        cast = ["dtype=np.float32"] if ctx.dtype == "float32" else []
        return literals + list(ctx.args), cast

    def emit(ctx):
        operands, cast = arguments(ctx)
        return f"{ctx.library('special')}.{name}({', '.join(operands + cast)})"

    def emit_into(ctx):
        operands, cast = arguments(ctx)
        return f"{ctx.library('special')}.{name}({', '.join(operands + cast)}, out={ctx.into})"
    return emit, emit_into


# the ops whose NumPy form calls SciPy
USES_SCIPY = ("erf", "erfc", "logit", "xlogy")
_ERF, _ERF_INTO = _emit_scipy("erf")
_ERFC, _ERFC_INTO = _emit_scipy("erfc")
_LOGIT, _LOGIT_INTO = _emit_scipy("logit")
_XLOGY, _XLOGY_INTO = _emit_scipy_float32("xlogy")
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
    """SciPy's logistic function, ``1 / (1 + exp(-x))``: sigmoid's op.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> float(sg.compile(sg.grad(sg.expit(x), x))(0.0))      # expit' = expit (1 - expit)
    0.25
    """
    return sigmoid(x)


_SQRT_HALF = math.sqrt(0.5)
_SQRT_TWO_OVER_PI = math.sqrt(2.0 / math.pi)


@public("gelu", static=("approximate",))
def gelu(x, approximate="none"):
    """The Gaussian error linear unit ``x Φ(x)``, as PyTorch's: exact (``approximate="none"``),
    written ``x erfc(-x / √2) / 2``, which keeps its relative accuracy for negative x where
    ``1 + erf`` cancels; or ``approximate="tanh"``,
    ``x (1 + tanh(√(2/π) (x + 0.044715 x³))) / 2``.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> float(sg.compile(sg.grad(sg.gelu(x), x))(0.0))       # Φ(0) + 0 φ(0)
    0.5
    """
    if approximate not in ("none", "tanh"):
        raise ArgumentError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    half_x = apply("multiply", 0.5, x)          # refuses what cannot be an operand, first
    if approximate == "none":
        return half_x * erfc(x * -_SQRT_HALF)
    return half_x * (1.0 + tanh(_SQRT_TWO_OVER_PI * (x + 0.044715 * (x * x * x))))




# -- issue 19: the gamma, error-function and Bessel families, with SciPy's names -----------------
# Each derivative is the next function of its family (gammaln' = digamma, digamma' =
# polygamma(1, .), i0' = i1, jv' = (jv(v-1) - jv(v+1)) / 2 ...), so that every order nests.

_SCIPY_OPS = []
_SQRT_PI_OVER_TWO = math.sqrt(math.pi) / 2.0
_SQRT_TWO_PI = math.sqrt(2.0 * math.pi)
_SQRT_TWO_OVER_PI = math.sqrt(2.0 / math.pi)
_ONE_OVER_SQRT_TWO_PI = 1.0 / math.sqrt(2.0 * math.pi)


def _fold_with(function):
    """_fold for an op with attributes: ``function(*values, **attrs)``."""
    def simplify(inputs, **attrs):
        return _fold(lambda *values: function(*values, **attrs))(inputs)
    return simplify


def _special(name, arity, vjp, sympy, scalar=None, public=None, scipy_name=None, orders=(),
             shape=None):
    """Register ``name``, SciPy's ufunc ``scipy_name`` (``name`` by default) of ``arity``
    operands, whose attributes ``orders`` come first in SciPy's call; its public function is
    ``public`` (none when the op takes attributes: it gets one with @public)."""
    scipy_name = scipy_name or name
    emit, emit_into = _emit_scipy_float32(scipy_name, orders)

    def folded(*values, **attrs):
        return _scipy(scipy_name)(*(attrs[o] for o in orders), *values)
    defop(name, arity, shape or (same_shape if arity == 1 else broadcast_shape), emit, vjp,
          simplify=_fold_with(folded), scalar=scalar, numpy_into=emit_into, public=public,
          sympy=sympy)
    _SCIPY_OPS.append(name)


def _sympy_order(sympy, v):
    """A Bessel or polygamma order in SymPy: an Integer where it is integral."""
    return sympy.Integer(int(v)) if float(v).is_integer() else sympy.Float(v)


def _no_gradient(function, operand):
    """What a rule gives for an operand whose derivative symgrad does not offer: the driver
    raises it if a gradient is asked through that operand (differentiate.backprop)."""
    return UndefinedGradientError(f"{function}: no derivative with respect to {operand} (SciPy "
                                  f"has no function for it); only the other operands are "
                                  f"differentiable")


# gammaln is log|Γ(x)| (SciPy's, and math.lgamma's), so its derivative is digamma on both sides
# of the poles
_special("gammaln", 1, lambda g, out, x: [g * digamma(x)], "loggamma",
         scalar="math.lgamma({0})", public="gammaln")
_special("digamma", 1, lambda g, out, x: [g * polygamma(1, x)], "digamma", public="digamma")


# polygamma(n, x) for n >= 1 is (-1)^(n+1) n! ζ(n+1, x), as SciPy computes it; written with the
# factor as a Python number so that a float32 x keeps its dtype (SciPy's polygamma multiplies by a
# float64 array)
def _polygamma_numpy(ctx):
    n = ctx.attrs["n"]
    factor = (-1.0) ** (n + 1) * math.gamma(n + 1.0) if n <= 170 else -math.inf * (-1) ** n
    return f"{literal(factor)} * {ctx.library('special')}.zeta({literal(n + 1.0)}, {ctx.args[0]})"


def _polygamma_fold(x, n):
    import scipy.special
    return scipy.special.polygamma(n, x)


defop("polygamma", 1, same_shape, _polygamma_numpy,
      lambda g, out, x, n: [g * apply("polygamma", x, n=n + 1)],
      simplify=_fold_with(_polygamma_fold),
      sympy=lambda sympy, x, n: sympy.polygamma(_sympy_order(sympy, n), x))
_SCIPY_OPS.append("polygamma")


def gammaln(x): return apply("gammaln", x)
def digamma(x): return apply("digamma", x)


@public("psi")
def psi(x):
    """SciPy's other name for ``digamma``.

    >>> import symgrad as sg
    >>> round(float(sg.compile(sg.psi(sg.var("x")))(1.0)), 10)     # -Euler's gamma
    -0.5772156649
    """
    return digamma(x)


def _nonnegative_ints(n, function):
    """``n`` as an int, or as an int64 array of non-negative integers; refuses anything else."""
    if isinstance(n, Expr):
        value = constant_value(n)
        if value is None:
            raise ArgumentError(f"{function}: the order n must be a number or a constant array, "
                                f"not an expression: it takes integer values and has no "
                                f"derivative")
        n = value
    array = np.asarray(n)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or (
            np.issubdtype(array.dtype, np.floating) and np.all(np.isfinite(array))
            and np.all(array == np.round(array)))) or np.any(array < 0):
        raise ArgumentError(f"{function}: the order n must be a non-negative integer or an array "
                            f"of them, got {n!r}")
    return int(array) if array.ndim == 0 else array.astype(np.int64)


@public("polygamma", static=("n",))
def polygamma(n, x):
    """SciPy's ``polygamma(n, x)``, the n-th derivative of digamma; ``n`` is a non-negative int,
    or an array of them, whose entries select an order each (it has no derivative).

    >>> import math
    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> trigamma = float(sg.compile(sg.polygamma(1, x))(1.0))
    >>> math.isclose(trigamma, math.pi ** 2 / 6)
    True
    """
    orders = _nonnegative_ints(n, "polygamma")
    return _each_order(orders, x, "polygamma", _polygamma_of_order, integer=True)


def _polygamma_of_order(order, x):
    return digamma(x) if order == 0 else apply("polygamma", x, n=int(order))


def _betaln_vjp(g, out, a, b):
    shared = digamma(a + b)
    return [_to_input(g * (digamma(a) - shared), out, a),
            _to_input(g * (digamma(b) - shared), out, b)]


_special("betaln", 2, _betaln_vjp,
         lambda sympy, a, b: sympy.loggamma(a) + sympy.loggamma(b) - sympy.loggamma(a + b),
         public="betaln")


def _gamma_vjp(g, out, x):
    return [g * (out * digamma(x))]


# Γ is 0 nowhere and its reciprocal rgamma is entire; at rgamma's zeros (the non-positive
# integers) out * digamma(x) is 0 * inf, nan, where the true derivative is ±n!
_special("gamma", 1, _gamma_vjp, "gamma", scalar="math.gamma({0})", public="gamma")
_special("rgamma", 1, lambda g, out, x: [-(g * (out * digamma(x)))],
         lambda sympy, x: 1 / sympy.gamma(x), public="rgamma")


def _beta_vjp(g, out, a, b):
    shared = digamma(a + b)
    return [_to_input(g * (out * (digamma(a) - shared)), out, a),
            _to_input(g * (out * (digamma(b) - shared)), out, b)]


_special("beta", 2, _beta_vjp, "beta", public="beta")
# the sign of Γ is a step at each pole: zero derivative between them
_special("gammasgn", 1, lambda g, out, x: [None], lambda sympy, x: sympy.sign(sympy.gamma(x)),
         public="gammasgn")


@public("multigammaln", static=("d",))
def multigammaln(a, d):
    """SciPy's multivariate log-gamma ``log Γ_d(a) = d(d-1)/4 log π + Σ_j gammaln(a - j/2)``,
    j = 0 ... d-1. SciPy refuses a <= (d-1)/2, where a symbolic ``a`` cannot be checked: there
    the terms are log|Γ| of negative numbers.

    >>> import math
    >>> import symgrad as sg
    >>> a = sg.var("a")
    >>> value = float(sg.compile(sg.multigammaln(a, 1))(3.0))    # d = 1: gammaln
    >>> math.isclose(value, math.lgamma(3.0))
    True
    """
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
        raise ArgumentError(f"multigammaln: the dimension d must be a positive int, got {d!r}")
    total = gammaln(a) + d * (d - 1) / 4.0 * math.log(math.pi)
    for j in range(1, d):
        total = total + gammaln(a - j / 2.0)
    return total


# -- the error function's family ----------------------------------------------------------------

_special("erfinv", 1, lambda g, out, x: [g * (_SQRT_PI_OVER_TWO * exp(out * out))], "erfinv",
         public="erfinv")
# SymPy's erfcinv evaluates to a complex number where erfinv(1 - x) does not
_special("erfcinv", 1, lambda g, out, x: [-(g * (_SQRT_PI_OVER_TWO * exp(out * out)))],
         lambda sympy, x: sympy.erfinv(1 - x), public="erfcinv")
# erfcx(x) = exp(x²) erfc(x), finite where erfc underflows: log_ndtr's derivative is built on it
_special("erfcx", 1, lambda g, out, x: [g * (2.0 * (x * out) - _TWO_OVER_SQRT_PI)],
         lambda sympy, x: sympy.exp(x ** 2) * sympy.erfc(x), public="erfcx")
_special("ndtr", 1, lambda g, out, x: [g * (_ONE_OVER_SQRT_TWO_PI * exp(-0.5 * (x * x)))],
         lambda sympy, x: sympy.erfc(-x / sympy.sqrt(2)) / 2, public="ndtr")
_special("ndtri", 1, lambda g, out, x: [g * (_SQRT_TWO_PI * exp(0.5 * (out * out)))],
         lambda sympy, x: sympy.sqrt(2) * sympy.erfinv(2 * x - 1), public="ndtri")


# log Φ(x)' = φ(x) / Φ(x) = exp(-x²/2 - log Φ(x)) / √(2π), which is √(2/π) / erfcx(-x/√2)
# (Φ(x) = erfc(-x/√2) / 2): no exponent of x² to cancel, accurate in both tails (about -x far
# to the left, φ(x) far to the right, where erfcx overflows to inf and the quotient to 0)
def _log_ndtr_vjp(g, out, x):
    return [g * (_SQRT_TWO_OVER_PI / erfcx(x * -_SQRT_HALF))]


_special("log_ndtr", 1, _log_ndtr_vjp,
         lambda sympy, x: sympy.log(sympy.erfc(-x / sympy.sqrt(2)) / 2), public="log_ndtr")


# xlog1py(x, y) = x log1p(y), and 0 where x = 0 unless y is nan (SciPy's); derivatives as xlogy's
def _xlog1py_vjp(g, out, x, y):
    return [_to_input(g * log1p(y), out, x), _to_input(g * (x / (1.0 + y)), out, y)]


_special("xlog1py", 2, _xlog1py_vjp, lambda sympy, x, y: x * sympy.log(1 + y),
         scalar="(0.0 if {0} == 0.0 and {1} == {1} else {0} * math.log1p({1}))",
         public="xlog1py")


def erfcx(x): return apply("erfcx", x)


# -- incomplete gamma and beta functions, Student's t distribution function ---------------------
# Their derivatives with respect to the shape parameters have no closed form in SciPy's
# functions: a gradient asked through a shape parameter is refused (UndefinedGradientError)


def _gamma_density(a, x):
    """x^(a-1) e^(-x) / Γ(a), the derivative of gammainc in x (xlogy: 1 at x = 0 when a = 1)."""
    return exp(xlogy(a - 1.0, x) - x - gammaln(a))


_special("gammainc", 2,
         lambda g, out, a, x: [_no_gradient("gammainc", "a"),
                               _to_input(g * _gamma_density(a, x), out, x)],
         lambda sympy, a, x: sympy.lowergamma(a, x) / sympy.gamma(a), public="gammainc")
_special("gammaincc", 2,
         lambda g, out, a, x: [_no_gradient("gammaincc", "a"),
                               _to_input(-(g * _gamma_density(a, x)), out, x)],
         lambda sympy, a, x: sympy.uppergamma(a, x) / sympy.gamma(a), public="gammaincc")


def _betainc_vjp(g, out, a, b, x):
    density = exp(xlogy(a - 1.0, x) + xlog1py(b - 1.0, -x) - betaln(a, b))
    return [_no_gradient("betainc", "a"), _no_gradient("betainc", "b"),
            _to_input(g * density, out, x)]


_special("betainc", 3, _betainc_vjp,
         lambda sympy, a, b, x: sympy.betainc_regularized(a, b, 0, x), public=None,
         shape=broadcast_shape)


@public("betainc")
def betainc(a, b, x):
    """SciPy's regularized incomplete beta function I_x(a, b), differentiable in x.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> dI = sg.compile(sg.grad(sg.betainc(2.0, 3.0, x), x))
    >>> round(float(dI(0.5)), 12)      # the Beta(2, 3) density at 0.5: 12 x (1 - x)**2
    1.5
    """
    return apply("betainc", a, b, x)


# Student's t distribution function of df degrees of freedom at t, differentiable in t: its
# derivative is t's density Γ((df+1)/2) / (Γ(df/2) √(df π)) (1 + t²/df)^(-(df+1)/2)
def _stdtr_vjp(g, out, df, t):
    log_density = (gammaln(0.5 * (df + 1.0)) - gammaln(0.5 * df) - 0.5 * log(df * math.pi)
                   - 0.5 * (df + 1.0) * log1p(t * t / df))
    return [_no_gradient("stdtr", "df"), _to_input(g * exp(log_density), out, t)]


_special("stdtr", 2, _stdtr_vjp,
         lambda sympy, df, t: sympy.Rational(1, 2) + t * sympy.gamma((df + 1) / 2)
         * sympy.hyper([sympy.Rational(1, 2), (df + 1) / 2], [sympy.Rational(3, 2)], -t ** 2 / df)
         / (sympy.sqrt(sympy.pi * df) * sympy.gamma(df / 2)), public="stdtr")


def betaln(a, b): return apply("betaln", a, b)
def xlog1py(x, y): return apply("xlog1py", x, y)


# -- Bessel functions ---------------------------------------------------------------------------
# d/dx J_v = (J_{v-1} - J_{v+1}) / 2, as for Y_v; d/dx I_v = (I_{v-1} + I_{v+1}) / 2. The
# exponentially scaled ive(v, x) = I_v(x) e^{-|x|} adds -sign(x) ive(v, x), and has the kink of
# |x| at 0 for v = 0 (i0e), where its derivative is JAX's: sign(0) = 0 gives i1e(0) = 0.


def _order(v, function, integer=False):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or (
            integer and not float(v).is_integer()):
        kind = "an integer" if integer else "a finite real number"
        raise ArgumentError(f"{function}: the order must be {kind} (it has no derivative), "
                            f"got {v!r}")
    return float(v)


def _each_order(v, x, function, build, integer=False):
    """``build(order, x)`` for a number ``v``; for an array of orders (SciPy broadcasts them
    against x), each entry's own order, selected by a chain of where over the distinct ones
    (the innermost branch's nan is never selected, and only the selected branch's derivative
    flows)."""
    if not isinstance(v, (np.ndarray, list, tuple)):
        return build(_order(v, function, integer), x)
    orders = np.asarray(v, dtype=float)
    for order in orders.ravel().tolist():
        _order(order, function, integer)
    x = apply("multiply", 1.0, x) if not isinstance(x, Expr) else x    # refuses non-operands
    selector = const(orders.astype(x.data["dtype"]), x.graph)
    result = np.nan         # never selected: every entry of the selector is one of the orders
    for order in sorted(set(orders.ravel().tolist())):
        result = where(selector == order, build(order, x), result)
    return result


def _jv(v, x): return apply("jv", x, v=v)
def _yn(n, x): return apply("yn", x, n=n)
def _iv(v, x): return apply("iv", x, v=v)
def _ive(v, x): return apply("ive", x, v=v)


_special("j0", 1, lambda g, out, x: [-(g * apply("j1", x))],
         lambda sympy, x: sympy.besselj(0, x), public="j0")
_special("j1", 1, lambda g, out, x: [g * (0.5 * (apply("j0", x) - _jv(2.0, x)))],
         lambda sympy, x: sympy.besselj(1, x), public="j1")
_special("jv", 1, lambda g, out, x, v: [g * (0.5 * (_jv(v - 1.0, x) - _jv(v + 1.0, x)))],
         lambda sympy, x, v: sympy.besselj(_sympy_order(sympy, v), x), orders=("v",))
_special("y0", 1, lambda g, out, x: [-(g * apply("y1", x))],
         lambda sympy, x: sympy.bessely(0, x), public="y0")
_special("y1", 1, lambda g, out, x: [g * (0.5 * (apply("y0", x) - _yn(2.0, x)))],
         lambda sympy, x: sympy.bessely(1, x), public="y1")
_special("yn", 1, lambda g, out, x, n: [g * (0.5 * (_yn(n - 1.0, x) - _yn(n + 1.0, x)))],
         lambda sympy, x, n: sympy.bessely(_sympy_order(sympy, n), x), orders=("n",))
_special("i0", 1, lambda g, out, x: [g * apply("i1", x)],
         lambda sympy, x: sympy.besseli(0, x), public="i0")
_special("i1", 1, lambda g, out, x: [g * (0.5 * (apply("i0", x) + _iv(2.0, x)))],
         lambda sympy, x: sympy.besseli(1, x), public="i1")
_special("iv", 1, lambda g, out, x, v: [g * (0.5 * (_iv(v - 1.0, x) + _iv(v + 1.0, x)))],
         lambda sympy, x, v: sympy.besseli(_sympy_order(sympy, v), x), orders=("v",))
_special("i0e", 1, lambda g, out, x: [g * (apply("i1e", x) - sign(x) * out)],
         lambda sympy, x: sympy.besseli(0, x) * sympy.exp(-sympy.Abs(x)), public="i0e")
_special("i1e", 1,
         lambda g, out, x: [g * (0.5 * (apply("i0e", x) + _ive(2.0, x)) - sign(x) * out)],
         lambda sympy, x: sympy.besseli(1, x) * sympy.exp(-sympy.Abs(x)), public="i1e")
_special("ive", 1,
         lambda g, out, x, v: [g * (0.5 * (_ive(v - 1.0, x) + _ive(v + 1.0, x)) - sign(x) * out)],
         lambda sympy, x, v: sympy.besseli(_sympy_order(sympy, v), x) * sympy.exp(-sympy.Abs(x)),
         orders=("v",))


@public("jv", static=("v",))
def jv(v, x):
    """SciPy's Bessel function of the first kind J_v(x) of real order ``v`` (a number or an
    array of them: it has no derivative), differentiable in x.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> round(float(sg.compile(sg.grad(sg.jv(0.0, x), x))(1.0)), 10)   # J_0' = -J_1
    -0.4400505857
    """
    return _each_order(v, x, "jv", _jv)


@public("jn", static=("n",))
def jn(n, x):
    """SciPy's ``jn``, its other name for ``jv``.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> round(float(sg.compile(sg.grad(sg.jn(0, x), x))(1.0)), 10)     # J_0' = -J_1
    -0.4400505857
    """
    return _each_order(n, x, "jn", _jv)


@public("yn", static=("n",))
def yn(n, x):
    """SciPy's Bessel function of the second kind Y_n(x) of integer order ``n`` (a number: it has
    no derivative), differentiable in x.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> round(float(sg.compile(sg.grad(sg.yn(0, x), x))(1.0)), 10)     # Y_0' = -Y_1
    0.7812128213
    """
    return _each_order(n, x, "yn", _yn, integer=True)


@public("iv", static=("v",))
def iv(v, x):
    """SciPy's modified Bessel function of the first kind I_v(x) of real order ``v`` (a number:
    it has no derivative), differentiable in x.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> d = sg.compile(sg.grad(sg.iv(1.0, x), x))      # I_1' = (I_0 + I_2) / 2
    >>> round(float(d(1.0)), 10)
    0.7009067738
    """
    return _each_order(v, x, "iv", _iv)


@public("ive", static=("v",))
def ive(v, x):
    """SciPy's exponentially scaled I_v(x) e^{-|x|} of real order ``v`` (a number: it has no
    derivative), differentiable in x; its derivative at the kink x = 0 uses sign(0) = 0.

    >>> import symgrad as sg
    >>> round(float(sg.compile(sg.ive(0.0, sg.var("x")))(1000.0)), 6)   # I_0(1000) e^-1000
    0.012617
    """
    return _each_order(v, x, "ive", _ive)


def gamma(x): return apply("gamma", x)
def rgamma(x): return apply("rgamma", x)
def beta(a, b): return apply("beta", a, b)
def gammasgn(x): return apply("gammasgn", x)
def erfinv(x): return apply("erfinv", x)
def erfcinv(x): return apply("erfcinv", x)
def ndtr(x): return apply("ndtr", x)
def ndtri(x): return apply("ndtri", x)
def log_ndtr(x): return apply("log_ndtr", x)
def gammainc(a, x): return apply("gammainc", a, x)
def gammaincc(a, x): return apply("gammaincc", a, x)
def stdtr(df, t): return apply("stdtr", df, t)
def j0(x): return apply("j0", x)
def j1(x): return apply("j1", x)
def y0(x): return apply("y0", x)
def y1(x): return apply("y1", x)
def i0(x): return apply("i0", x)
def i1(x): return apply("i1", x)
def i0e(x): return apply("i0e", x)
def i1e(x): return apply("i1e", x)


USES_SCIPY += tuple(_SCIPY_OPS)


__all__ = ["erf", "erfc", "logit", "xlogy", "expit", "gelu"]
__all__ += ["gammaln", "digamma", "psi", "polygamma", "betaln", "gamma", "rgamma", "beta",
            "gammasgn", "multigammaln", "erfinv", "erfcinv", "erfcx", "ndtr", "ndtri",
            "log_ndtr", "xlog1py", "gammainc", "gammaincc", "betainc", "stdtr", "j0", "j1",
            "jv", "jn", "y0", "y1", "yn", "i0", "i1", "iv", "i0e", "i1e", "ive"]
