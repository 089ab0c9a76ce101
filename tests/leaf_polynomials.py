"""Exact higher derivatives of functions whose derivatives are polynomials in a few leaves, for
tests/test_compaction.py and tests/benchmarks/higher_order.py (not a test module).

SymPy's own n-th derivative of sigmoid(x), expanded, has 155,695 operations at order 6: too slow
past it. Here each family is a polynomial in leaf symbols (t = tanh(x), s = sigmoid(x) and
r = sigmoid(-x), e = exp(sin x) with sin x and cos x, the variables themselves), and each order
is the previous one's total derivative by the chain rule, with the leaves' textbook derivatives
(d t = (1 - t**2) du, d s = s r dx, d r = -s r dx, d e = e cos x dx, d sin = cos, d cos = -sin):
exact polynomials with integer coefficients, computed by SymPy's Poly arithmetic alone.
test_compaction checks the first orders against sympy.diff of the written function.
"""

import mpmath
import sympy

X, Y, T, S, R, E, SN, CS = sympy.symbols("x y t s r e sn cs")


def _sympy_sigmoid(z):
    return 1 / (1 + sympy.exp(-z))


# name -> (the function in x (and y) for SymPy, as a polynomial in its leaves, the leaves'
# derivatives by each variable, the leaves' values in mpmath)
FAMILIES = {
    "tanh": (sympy.tanh(X), T, {X: {X: 1, T: 1 - T ** 2}},
             lambda x, y: {X: x, T: mpmath.tanh(x)}),
    "sigmoid": (_sympy_sigmoid(X), S, {X: {S: S * R, R: -S * R}},
                lambda x, y: {S: 1 / (1 + mpmath.exp(-x)), R: 1 / (1 + mpmath.exp(x))}),
    "expsin": (sympy.exp(sympy.sin(X)), E, {X: {E: E * CS, SN: CS, CS: -SN}},
               lambda x, y: {E: mpmath.exp(mpmath.sin(x)), SN: mpmath.sin(x),
                             CS: mpmath.cos(x)}),
    "xtanh": (X * sympy.tanh(X), X * T, {X: {X: 1, T: 1 - T ** 2}},
              lambda x, y: {X: x, T: mpmath.tanh(x)}),
    "tanhxy": (sympy.tanh(X * Y), T, {X: {X: 1, T: (1 - T ** 2) * Y},
                                      Y: {Y: 1, T: (1 - T ** 2) * X}},
               lambda x, y: {X: x, Y: y, T: mpmath.tanh(x * y)}),
}
GENERATORS = (X, Y, T, S, R, E, SN, CS)


def exact_derivatives(name, order, variables="x"):
    """d_1 .. d_order of family ``name`` as Polys in GENERATORS, differentiating by the letters
    of ``variables`` in turn (each a key of the family's rules: "xy" alternates x and y)."""
    _, written, rules, _ = FAMILIES[name]
    by = {"x": X, "y": Y}
    current = sympy.Poly(written, *GENERATORS)
    derivatives = []
    for n in range(order):
        variable = by[variables[n % len(variables)]]
        total = sympy.Poly(0, *GENERATORS)
        for leaf, derivative in rules[variable].items():
            total += current.diff(leaf) * sympy.Poly(derivative, *GENERATORS)
        current = total
        derivatives.append(current)
    return derivatives


def evaluate(name, polynomial, x, y=0.0, digits=50):
    """The polynomial at the leaves' values at (x, y), at ``digits`` digits, and what a relative
    rounding of each leaf (the inputs too) moves it by, sum |leaf * dP/dleaf|: (value,
    sensitivity), mpmath numbers. A form built from the rounded leaves errs by that much at
    least; the product rule's tree does too."""
    with mpmath.workdps(digits):
        leaves = FAMILIES[name][3](mpmath.mpf(x), mpmath.mpf(y))
        values = [leaves.get(g, mpmath.mpf(0)) for g in GENERATORS]
        value, moved = mpmath.mpf(0), [mpmath.mpf(0)] * len(GENERATORS)
        for powers, coefficient in polynomial.terms():
            term = mpmath.mpf(int(coefficient))
            for v, p in zip(values, powers):
                if p:
                    term *= v ** p
            value += term
            moved = [m + p * term for m, p in zip(moved, powers)]
        return value, sum(abs(m) for m in moved)
