"""Rewrite safety: the optimiser may make a program faster, never less accurate.

Every program here is compiled twice, with and without the optimiser, and both results are judged
against SymPy's own derivative of the same formula evaluated at 50 digits, at points chosen to
break rewrites that change how floating-point values are computed: near roots and repeated roots,
under shifts of 1e3 to 1e6, at magnitudes from 1e-300 to 1e300, at kinks and signed zeros.

The optimised result passes at a point when its error is within a small factor of the error the
unoptimised graph makes around that point (its largest over the neighbouring floats, so that a
lucky exact answer at one float is not taken as the graph's accuracy), plus a few units in the
last place of the exact value. A rewrite that expands, reassociates or refactors into a form that
cancels where the written one did not fails by orders of magnitude, not by a factor.

The programs are a fixed corpus aimed at each rewrite of ``symgrad/optimize`` and each emission
choice of the code generator, plus Hypothesis-drawn shifted polynomials in a plain or a bounded
leaf. The long profile (``SYMGRAD_HYPOTHESIS_PROFILE=long``) draws 5,000 of those.
"""

import math

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import given, note, strategies as st

import symgrad as sg

DIGITS = 50
ERROR_FACTOR = 8.0          # how much worse than the unoptimised graph the optimised one may be
ULPS = 8                    # plus this many units in the last place of the exact value
NEIGHBOURS = 4              # floats on each side over which the unoptimised error is taken

SHIFTS = [1e3, 1e4, 1e5, 1e6, -1e3, -1e6]
MAGNITUDES = [1e-300, 1e-150, 1e-20, 1e-5, 1e5, 1e20, 1e150, 1e300]


# -- the two sides of every formula ----------------------------------------------------------------

class SymgradSide:
    tanh, sin, cos, exp, log = sg.tanh, sg.sin, sg.cos, sg.exp, sg.log
    sigmoid, abs, maximum, sqrt = sg.sigmoid, sg.abs, sg.maximum, sg.sqrt


class SympySide:
    tanh, sin, cos, exp, log = sympy.tanh, sympy.sin, sympy.cos, sympy.exp, sympy.log
    sqrt, abs, maximum = sympy.sqrt, sympy.Abs, sympy.Max

    @staticmethod
    def sigmoid(x):
        return 1 / (1 + sympy.exp(-x))


def near(root):
    """Points at and around ``root``: the float itself, its neighbours, and relative offsets."""
    points = [root]
    for ulps in (1, 3, 64, 4096):
        points += [root + ulps * math.ulp(root), root - ulps * math.ulp(root)]
    for offset in (1e-12, 1e-8, 1e-4, 1e-2):
        points += [root + offset * max(abs(root), 1.0), root - offset * max(abs(root), 1.0)]
    return points


def adversarial_points(roots=(), kinks=()):
    points = [0.0, -0.0, 0.5, 1.0, -1.0, 2.0]
    for root in roots:
        points += near(root)
    for kink in kinks:
        points += [kink, -kink, np.nextafter(kink, np.inf), np.nextafter(kink, -np.inf)]
    points += SHIFTS + [s + 1.0 for s in SHIFTS] + MAGNITUDES + [-m for m in MAGNITUDES]
    return sorted(set(float(p) for p in points), key=lambda p: (abs(p), p))


# -- the judge -------------------------------------------------------------------------------------

def _reference(expression, symbol, points):
    # off a kink the derivative of sign is 0; SymPy writes it as a DiracDelta
    expression = expression.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)
    function = sympy.lambdify(symbol, expression, modules="mpmath")
    values = []
    with mpmath.workdps(DIGITS):
        for point in points:
            try:
                value = function(mpmath.mpf(point))
                values.append(float(value) if mpmath.isfinite(value) and mpmath.im(value) == 0
                              else math.nan)
            except (ZeroDivisionError, ValueError, OverflowError, TypeError):
                values.append(math.nan)
    return np.array(values)


def _neighbourhood(points):
    """Each point with its NEIGHBOURS floats on either side, and as many points on either side
    spaced by one unit of rounding of max(|x|, 1): where a derivative is a polynomial in a
    rounded leaf such as sigmoid(x), how well the graph did at one float is luck, and its error
    over the leaf's own rounding is the scale to compare with. Shape (points, 4k + 1)."""
    around = [points]
    below, above = points.copy(), points.copy()
    step = np.finfo(float).eps * np.maximum(np.abs(points), 1.0)
    for k in range(1, NEIGHBOURS + 1):
        below, above = np.nextafter(below, -np.inf), np.nextafter(above, np.inf)
        around += [below, above, points - k * step, points + k * step]
    return np.stack(around, axis=1)


def _at_each(function, points):
    # a scalar program compiles to the scalar fast path: called once per point
    return np.array([float(function(p)) for p in points])


def judge(name, symgrad_expr, x, sympy_expr, symbol, points):
    """Compile ``symgrad_expr`` with and without the optimiser and check the optimised one at
    every point against the reference; returns how many points were judged."""
    return judge_functions(name, sg.compile(symgrad_expr, inputs=[x]),
                           sg.compile(symgrad_expr, inputs=[x], optimize=False),
                           sympy_expr, symbol, points)


def judge_functions(name, optimised_function, plain_function, sympy_expr, symbol, points):
    """The judgement itself, of two compiled functions of one scalar."""
    points = np.array(points, dtype=np.float64)
    around = _neighbourhood(points)
    with np.errstate(all="ignore"):
        optimised = _at_each(optimised_function, points)
        plain = _at_each(plain_function, around.ravel()).reshape(around.shape)
    exact_around = _reference(sympy_expr, symbol, around.ravel()).reshape(around.shape)
    exact = exact_around[:, 0]
    judged, failures = 0, []
    for k, point in enumerate(points):
        if not np.isfinite(exact[k]):
            continue            # a pole or an overflow of the value itself: nothing to judge
        judged += 1
        if not np.isfinite(optimised[k]):
            if np.isfinite(plain[k, 0]):
                failures.append((point, optimised[k], plain[k, 0], exact[k]))
            continue
        # the unoptimised graph's error scale near the point (NaN or inf there counts as no bound)
        errors = np.abs(plain[k] - exact_around[k])
        known = np.isfinite(errors)
        plain_error = errors[known].max() if known[0] else math.inf
        allowed = ERROR_FACTOR * plain_error + ULPS * math.ulp(abs(exact[k])) + 2.0 ** -1060
        if abs(optimised[k] - exact[k]) > allowed:
            failures.append((point, optimised[k], plain[k, 0], exact[k]))
    assert not failures, (f"{name}: the optimised program is less accurate than the graph at "
                          f"{len(failures)} points; (x, optimised, unoptimised, exact): "
                          f"{failures[:5]}")
    return judged


# -- the corpus ------------------------------------------------------------------------------------

def _product(factor, times):
    result = factor
    for _ in range(times - 1):
        result = result * factor
    return result


# name: (formula of one variable written against either side, derivative orders, roots, kinks)
CORPUS = {
    "eight shifted factors": (lambda m, x: _product(x - 1000.0, 8), (1, 2, 3), [1000.0], []),
    "ten shifted factors": (lambda m, x: _product(x - 100.0, 10), (1, 2), [100.0], []),
    "shifted cube times fifth power": (
        lambda m, x: (x - 1000.0) ** 3 * (x - 1000.0) ** 5, (1, 2), [1000.0], []),
    "expanded square to the fourth": (
        lambda m, x: (x * x - 2000.0 * x + 1000000.0) ** 4, (1, 2), [1000.0], []),
    "power of a shift": (lambda m, x: (x - 5.0) ** 8, (1, 2, 3), [5.0], []),
    "distinct close roots": (
        lambda m, x: (x - 1.0) * (x - 1.001) * (x - 1.002) * (x - 1.003), (1, 2), [1.0, 1.0015],
        []),
    "wilkinson-like": (
        lambda m, x: (x - 1.0) * (x - 2.0) * (x - 3.0) * (x - 4.0) * (x - 5.0) * (x - 6.0),
        (1, 2), [1.0, 3.5, 6.0], []),
    "polynomial with x ** 0": (
        lambda m, x: 1.0 * x ** 0 + 2.0 * x ** 1 + 3.0 * x ** 2 + 4.0 * x ** 3, (1, 2, 3), [0.0],
        []),
    "x ** 0 times x": (lambda m, x: x ** 0 * x, (1, 2), [0.0], []),
    "tanh": (lambda m, x: m.tanh(x), (1, 2, 3, 4, 5, 6), [0.6584789484624084, 1.146216],
             []),
    "shifted tanh to the sixth": (lambda m, x: (m.tanh(x) - 0.5) ** 6, (1, 2, 3),
                                  [0.5493061443340549], []),
    "tanh product with a shift": (lambda m, x: _product(m.tanh(x) - 0.999, 5), (1, 2),
                                  [3.8002011672502], []),
    "sigmoid": (lambda m, x: m.sigmoid(x), (1, 2, 3, 4), [0.0, 1.3169578969248166], []),
    "sine to the sixth": (lambda m, x: m.sin(x) ** 6, (1, 2, 3), [0.0, math.pi], []),
    "common factor near a root": (
        lambda m, x: 3.0 * (1.0 - x) + 2.0 * x * (x - 1.0), (1,), [1.0, 1.5], []),
    "rosenbrock along a valley": (
        lambda m, x: (1.0 - x) ** 2 + 100.0 * (x * x - x) ** 2, (1, 2), [1.0, 0.0], []),
    "constants times a difference": (
        lambda m, x: 7.0 * (3.0 * (x - 1.0) - 2.0 * (x - 1.0) * x), (1, 2), [1.0, 1.5], []),
    "log of exp": (lambda m, x: m.log(m.exp(x)) * x, (1, 2), [], []),
    "exp of a log": (lambda m, x: m.exp(m.log(x * x + 1.0)) * x, (1, 2), [], []),
    "cancelling sum": (lambda m, x: x * (x + 1.0) - x * x, (1,), [0.0], []),
    "difference of squares": (lambda m, x: (x - 1.0) * (x + 1.0) * 3.0, (1, 2), [1.0], []),
    "iterated map step": (lambda m, x: x * (m.sin(x) + x), (1, 2, 3), [0.0, -0.8767262154354],
                          []),
    "a constant times a difference beside a small multiple": (
        lambda m, x: 0.5e-3 * x * x - 1.5 * (1.1 - x) * (1.1 - x), (1, 2), [1.1, 1.1003667889],
        []),
    "a constant into a difference": (lambda m, x: 5.0 * (2.0 - x) * x + 3.0 * x * x, (1, 2),
                                     [2.0, 5.0], []),
    "rosenbrock with a second term": (
        lambda m, x: 100.0 * (x - x * x) ** 2 + (1.0 - x) ** 2 + 100.0 * (1.0 - x * x) ** 2,
        (1, 2, 3), [1.0], []),
    "common exp factor": (lambda m, x: m.exp(x) * (x - 3.0) + m.exp(x) * 3.0, (1, 2), [0.0], []),
    "shifted sigmoid": (lambda m, x: (m.sigmoid(x) - 0.25) ** 3 * x, (1, 2, 3),
                        [-1.0986122886681098], []),
    "difference of logs": (lambda m, x: m.log(x * x + 1.0) - m.log(1.0 + x * x * 0.5), (1, 2),
                           [0.0], []),
    "smoothed absolute value": (lambda m, x: m.sqrt(x * x + 1e-6) * (x - 1.0), (1, 2),
                                [1.0, 0.0], []),
    "kinks": (lambda m, x: m.abs(x) * x + m.maximum(x, 1.0) * (x - 1.0), (1, 2), [0.0, 1.0],
              [0.0, 1.0]),
}


def exact_formula(formula, symbol):
    """The formula in SymPy with every float constant as the exact rational it is: SymPy would
    otherwise combine floats at 15 digits as it builds (1.5 * (1.1 - x) becomes 1.65 - 1.5 x),
    the very rewrite whose rounding is under test."""
    with sympy.evaluate(False):
        built = formula(SympySide, symbol)
    exact = built.xreplace({f: sympy.Rational(float(f)) for f in built.atoms(sympy.Float)})
    return exact.doit()


def _derivatives(formula, order):
    x = sg.var("x")
    symbol = sympy.Symbol("x", real=True)
    value, reference = formula(SymgradSide, x), exact_formula(formula, symbol)
    for _ in range(order):
        value = sg.grad(value, x, disconnected="zero")
    return value, x, sympy.diff(reference, symbol, order), symbol


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_the_optimiser_is_as_accurate_as_the_graph(name):
    formula, orders, roots, kinks = CORPUS[name]
    points = adversarial_points(roots, kinks)
    kink_points = set(kinks) | {-k for k in kinks}
    for order in orders:
        value, x, reference, symbol = _derivatives(formula, order)
        # a derivative at a kink is a convention SymPy does not share: judge off the kinks
        judged = judge(f"{name}, order {order}", value, x, reference, symbol,
                       [p for p in points if p not in kink_points])
        assert judged > len(points) // 2


@pytest.mark.parametrize("name", ["eight shifted factors", "ten shifted factors",
                                  "expanded square to the fourth", "tanh"])
def test_vector_derivatives_are_as_accurate_as_scalar_ones(name):
    """hvp, jvp and the gradient of a sum run the same derivative nodes on arrays."""
    formula, orders, roots, _ = CORPUS[name]
    points = np.array(adversarial_points(roots))
    v = sg.var("v", shape=("n",))
    t = sg.var("t", shape=("n",))
    total = sg.sum(formula(SymgradSide, v))
    symbol = sympy.Symbol("x", real=True)
    first = sympy.diff(exact_formula(formula, symbol), symbol)
    second = sympy.diff(first, symbol)
    exact_gradient = _reference(first, symbol, points)
    exact_curvature = _reference(second, symbol, points)
    cases = [(sg.grad(total, v), exact_gradient, "numpy"),
             (sg.grad(total, v), exact_gradient, "numba"),
             (sg.hvp(total, v, t), exact_curvature, "numpy"),
             (sg.jvp(sg.grad(total, v), v, t), exact_curvature, "numpy")]
    for expression, exact, backend in cases:
        with np.errstate(all="ignore"):
            optimised = sg.compile(expression, inputs=[v, t], backend=backend)(
                points, np.ones_like(points))
            plain = sg.compile(expression, inputs=[v, t], optimize=False)(points,
                                                                           np.ones_like(points))
        finite = np.isfinite(exact) & np.isfinite(plain)
        error = np.abs(optimised[finite] - exact[finite])
        allowed = (ERROR_FACTOR * np.abs(plain[finite] - exact[finite])
                   + ULPS * np.spacing(np.abs(exact[finite])) + 2.0 ** -1060)
        assert (error <= allowed).all(), (name, backend, points[finite][error > allowed])


def test_the_judge_catches_an_expanded_polynomial():
    """The harness itself: the expanded form of (x - 1000) ** 8, standing in for an optimised
    program, is judged against the product form as written and must fail where it cancels;
    the product form judged against itself passes."""
    x = sg.var("x")
    symbol = sympy.Symbol("x", real=True)
    exact = (symbol - 1000) ** 8
    polynomial = sum(float(c) * x ** k for (k,), c in sympy.Poly(sympy.expand(exact),
                                                                 symbol).terms())
    product = sg.compile(_product(x - 1000.0, 8), inputs=[x], optimize=False)
    expanded = sg.compile(polynomial, inputs=[x], optimize=False)
    points = adversarial_points([1000.0])
    with pytest.raises(AssertionError, match="less accurate"):
        judge_functions("expanded", expanded, product, exact, symbol, points)
    assert judge_functions("as written", product, product, exact, symbol, points) > 0


# -- drawn polynomials -----------------------------------------------------------------------------

LEAVES = {"x": lambda m, x: x, "tanh": lambda m, x: m.tanh(x), "sin": lambda m, x: m.sin(x),
          "sigmoid": lambda m, x: m.sigmoid(x)}


@st.composite
def shifted_polynomials(draw):
    """A product of powers of shifted leaves plus a multiple of another such product: roots and
    repeated roots at shifts from 0 to 1e6, written as a person would (not expanded)."""
    leaf = draw(st.sampled_from(sorted(LEAVES)))
    bounded = leaf != "x"
    shift = st.sampled_from([0.0, 0.25, 0.5, 0.999]) if bounded else st.sampled_from(
        [0.0, 1.0, 2.5, 100.0, 1e3, 1e4 + 0.5, 1e6, -1e3])
    factors = draw(st.lists(st.tuples(shift, st.integers(1, 4)), min_size=1, max_size=3))
    scale = draw(st.sampled_from([1.0, -3.0, 0.5]))
    extra = draw(st.sampled_from([None, 0.0, 1.0, 1e3]))

    def formula(m, x):
        u = LEAVES[leaf](m, x)
        total = scale
        for c, power in factors:
            total = total * _product(u - c, power)
        if extra is not None:
            total = total + 2.0 * (u - extra) * u
        return total

    roots = [c for c, _ in factors] if not bounded else []
    if leaf == "tanh":
        roots += [math.atanh(c) for c, _ in factors if abs(c) < 1]
    order = draw(st.integers(1, 3))
    return leaf, factors, scale, extra, formula, roots, order


@given(shifted_polynomials())
def test_drawn_shifted_polynomials_are_as_accurate_as_the_graph(drawn):
    leaf, factors, scale, extra, formula, roots, order = drawn
    note(f"leaf {leaf}, factors {factors}, scale {scale}, extra {extra}, order {order}")
    with sg.use_graph():
        value, x, reference, symbol = _derivatives(formula, order)
        judge(f"{leaf} {factors}", value, x, reference, symbol, adversarial_points(roots))
