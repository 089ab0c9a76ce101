"""Derivatives of derivatives kept small as they are built (optimize/compaction.py, issue 23,
item 2): each order of tanh's and tan's derivatives is one polynomial node of exact
coefficients, so the built graph grows by a few nodes per order; every order, optimised or not,
is judged against SymPy's polynomials evaluated at 50 digits, at points near every root, where
tanh saturates, near tan's poles and far out, and against the product-rule tree where that is
small. Functions whose derivatives are polynomials in several leaves (sigmoid(x) and sigmoid(-x),
x and tanh(x), ...) are judged the same way against tests/leaf_polynomials.py's exact ones.
"""

import math
import re

import mpmath
import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad import differentiate
import leaf_polynomials
from test_rewrite_safety import adversarial_points, judge_functions

S, T = sympy.symbols("s t")
EPS = np.finfo(np.float64).eps


def derivatives(function, order, x):
    """d_1 .. d_order of ``function(x)``, each the grad of the one before, as the CLI builds."""
    built, d = [], function(x)
    for _ in range(order):
        d = sg.grad(d, x)
        built.append(d)
    return built


# function -> (symgrad's, SymPy's, its derivative as a polynomial in itself, the leaf in mpmath)
FUNCTIONS = {
    "tanh": (sg.tanh, sympy.tanh(S), 1 - T ** 2, mpmath.tanh),
    "tan": (sg.tan, sympy.tan(S), 1 + T ** 2, mpmath.tan),
}


def exact_polynomials(name, order):
    """P_1 .. P_{order + 1}: the n-th derivative is P_n(f(x)), P_{n+1} = P_n' * f' by SymPy."""
    derivative = sympy.Poly(FUNCTIONS[name][2], T)
    polynomials = [derivative]
    for _ in range(order):
        polynomials.append(sympy.Poly(polynomials[-1].diff(T) * derivative, T))
    return polynomials


def hard_points(name, polynomial):
    """x near every root of the polynomial in the leaf (where the value cancels), where tanh
    saturates, near tan's poles, tiny and huge."""
    roots = [r.real for r in np.roots([float(c) for c in polynomial.all_coeffs()])
             if abs(r.imag) < 1e-9]
    inverse = {"tanh": lambda t: math.atanh(t) if abs(t) < 1 else None, "tan": math.atan}[name]
    centres = [x for x in map(inverse, roots) if x is not None and math.isfinite(x)]
    return adversarial_points(roots=centres + [18.0, -18.0, 36.0, 1e-9, 1.5707963, -1.57])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_built_graph_grows_by_a_few_nodes_per_order(name, fresh_graph):
    # the product rule doubles it: tanh's graph had 35 nodes at order 4 and 7,288 at order 12
    x = sg.var("x")
    sizes = [fresh_graph.number_of_nodes()]
    for d in derivatives(FUNCTIONS[name][0], 20, x):
        sizes.append(fresh_graph.number_of_nodes())
        assert len(fresh_graph.ancestors_in_order([d.node])) <= 6
    assert sizes[20] <= 10 * sizes[4], sizes
    assert max(b - a for a, b in zip(sizes[2:], sizes[3:])) <= 4, sizes


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_order_to_20_against_sympy_at_50_digits(name, fresh_graph):
    function, _, _, leaf = FUNCTIONS[name]
    x = sg.var("x")
    built = derivatives(function, 20, x)
    polynomials = exact_polynomials(name, 20)
    for n, d in enumerate(built, start=1):
        points = hard_points(name, polynomials[n - 1])
        optimised, plain = sg.compile(d, inputs=[x]), sg.compile(d, inputs=[x], optimize=False)
        coefficients = [int(c) for c in polynomials[n - 1].all_coeffs()]
        derivative = [int(c) for c in polynomials[n - 1].diff(T).all_coeffs()]
        for point in points:
            with mpmath.workdps(50):
                t = leaf(mpmath.mpf(point))
                exact = float(mpmath.polyval(coefficients, t))
                # a form is as good as any when it errs by a few roundings per factor of the
                # value and of what the rounding of the leaf itself makes of it, |t p'(t)| u
                sensitivity = float(abs(t * mpmath.polyval(derivative, t)))
            allowed = 8 * (n + 2) * EPS * (abs(exact) + sensitivity) + 2.0 ** -1060
            for fn in (optimised, plain):
                got = float(fn(point))
                assert abs(got - exact) <= allowed, (name, n, point, got, exact)


def test_sympy_agrees_with_the_polynomials_the_test_uses():
    for name in FUNCTIONS:
        _, expression, _, _ = FUNCTIONS[name]
        for n, polynomial in enumerate(exact_polynomials(name, 5)[:5], start=1):
            reference = sympy.diff(expression, S, n)
            at = sympy.Rational(3, 7)
            value = polynomial.as_expr().subs(T, expression.subs(S, at))
            assert abs(float((reference.subs(S, at) - value).evalf(40))) < 1e-30


@pytest.mark.parametrize("order", range(2, 11))
def test_as_accurate_as_the_product_rule_tree(order, monkeypatch):
    # the rewrite-safety judge: within 8 times the tree's error around each point, plus 8 ulps
    with sg.use_graph():
        x = sg.var("x")
        d = derivatives(sg.tanh, order, x)[-1]
        compact = [sg.compile(d, inputs=[x]), sg.compile(d, inputs=[x], optimize=False)]
    monkeypatch.setattr(differentiate, "DERIVATIVE_SIMPLIFICATIONS", [])
    with sg.use_graph():
        x = sg.var("x")
        tree = sg.compile(derivatives(sg.tanh, order, x)[-1], inputs=[x], optimize=False)
    reference = sympy.diff(sympy.tanh(S), S, order)
    points = hard_points("tanh", exact_polynomials("tanh", order)[order - 1])
    for fn in compact:
        assert judge_functions(f"tanh, order {order}", fn, tree, reference, S, points) > 50


def without_names(source):
    """The statements of ``source`` with its comments dropped and each name made ``v``: the
    names of intermediates follow the graph they were built from (the first derivative's node
    was named d_out_d_x where the tree held it)."""
    return [re.sub(r"\b(t\d+|d\d*_out_d_x\d*)\b", "v", line.partition("  #")[0])
            for line in source.splitlines()]


@pytest.mark.parametrize("order", [2, 3, 4, 5, 6, 8])
def test_where_the_tree_had_a_horner_form_the_program_is_the_same(order, monkeypatch):
    # the optimiser's Horner form of the tree, judged against the tree; now judged against the
    # factored form of the exact polynomial, the same one is chosen (at order 2 the tree was
    # kept, (t * -2.0) * w, and is now t * (w * -2.0): the same numbers, -2.0 being exact)
    functions = []
    for compaction in (differentiate.DERIVATIVE_SIMPLIFICATIONS, []):
        monkeypatch.setattr(differentiate, "DERIVATIVE_SIMPLIFICATIONS", compaction)
        with sg.use_graph():
            x = sg.var("x", shape=("n",))
            d = sg.tanh(x)
            for _ in range(order):
                d = sg.grad(sg.sum(d), x)
            functions.append(sg.compile(d, inputs=[x]))
    if order > 2:
        assert without_names(functions[0].source) == without_names(functions[1].source)
    points = np.concatenate([np.linspace(-20.0, 20.0, 4001), [0.0, -0.0, 1e-300, 710.0]])
    np.testing.assert_array_equal(functions[0](points), functions[1](points))


def test_earlier_orders_keep_their_nodes(fresh_graph):
    x = sg.var("x")
    d, kept = sg.tanh(x), []
    for _ in range(8):
        d = sg.grad(d, x)
        kept.append((d, dict(fresh_graph.nodes[d.node])))
    assert all(fresh_graph.nodes[d.node] == data for d, data in kept)
    assert [d.data["order"] for d, _ in kept] == list(range(1, 9))


def test_a_polynomial_node_differentiates_exactly(fresh_graph):
    # order 19's coefficients pass 2**53: a float could not hold order 20's
    x = sg.var("x")
    d = derivatives(sg.tanh, 20, x)[-1]
    assert d.op == "polynomial"
    exact = exact_polynomials("tanh", 20)[19]
    denominator = d.data["attrs"]["denominator"]
    assert [sympy.Integer(c) / denominator for c in d.data["attrs"]["coefficients"]] \
        == list(reversed(exact.all_coeffs()))
    assert max(abs(c) for c in d.data["attrs"]["coefficients"]) > 2 ** 53


def test_first_derivatives_and_hessians_are_built_as_before(fresh_graph):
    # only a grad of a derivative is compacted: a gradient, a Hessian and a jvp keep the
    # product rule's nodes (they do not grow order after order)
    x = sg.var("x", shape=(3,))
    f = sg.sum(sg.tanh(x) ** 3)
    for result in (sg.grad(f, x), sg.hessian(f, x), sg.jvp(sg.grad(f, x), x, np.ones(3))):
        ops = {fresh_graph.nodes[n]["op"] for n in fresh_graph.ancestors_in_order([result.node])}
        assert "polynomial" not in ops


# -- several leaves: x * tanh(x), sigmoid(x) * sigmoid(-x), exp(sin x), tanh(x * y) ---------------

# name -> (the function, the variables differentiated by in turn)
SEVERAL = {
    "sigmoid": (lambda x, y: sg.sigmoid(x), "x"),
    "expsin": (lambda x, y: sg.exp(sg.sin(x)), "x"),
    "xtanh": (lambda x, y: x * sg.tanh(x), "x"),
    "tanhxy": (lambda x, y: sg.tanh(x * y), "xy"),
}
# where sigmoid and tanh saturate, where exp(sin x) is largest, roots and turns of sin, near 0
SEVERAL_CENTRES = [18.0, -18.0, 36.0, -36.0, 40.0, 1e-9, 3.0, -3.0, math.pi / 2, math.pi]


def several_derivatives(name, order):
    """The function's graph variables and d_1 .. d_order, each the grad of the one before."""
    build, turns = SEVERAL[name]
    x, y = sg.var("x"), sg.var("y")
    d, built = build(x, y), []
    for n in range(order):
        d = sg.grad(d, {"x": x, "y": y}[turns[n % len(turns)]], disconnected="zero")
        built.append(d)
    return [x, y][:len(turns)], built


@pytest.mark.parametrize("name", SEVERAL)
def test_several_leaves_grow_polynomially_in_the_order(name, fresh_graph):
    # the product rule doubles them: sigmoid's built graph had 18,033 nodes at order 12
    _, built = several_derivatives(name, 20)
    own = [len(fresh_graph.ancestors_in_order([d.node])) for d in built]
    assert all(size <= 6 * n + 10 for n, size in enumerate(own, start=1)), own
    assert fresh_graph.number_of_nodes() <= 2_000, fresh_graph.number_of_nodes()


def test_the_leaf_polynomials_agree_with_sympy_diff():
    x, y = leaf_polynomials.X, leaf_polynomials.Y
    at = {x: sympy.Rational(3, 8), y: sympy.Rational(-5, 4)}
    for name, (_, turns) in SEVERAL.items():
        expression = leaf_polynomials.FAMILIES[name][0]
        for n, polynomial in enumerate(leaf_polynomials.exact_derivatives(name, 4, turns)):
            expression = sympy.diff(expression, {"x": x, "y": y}[turns[n % len(turns)]])
            value, _ = leaf_polynomials.evaluate(name, polynomial, 0.375, -1.25)
            with mpmath.workdps(50):
                assert abs(sympy.N(expression.subs(at), 50) - value) < 1e-40


@pytest.mark.parametrize("name", SEVERAL)
def test_several_leaves_every_order_to_20_against_sympy_at_50_digits(name, fresh_graph):
    # a form computed from rounded leaves errs by what a rounding of each leaf moves the value,
    # sum |leaf * dP/dleaf| u, at least; the grouped sum stays within a few roundings per order
    # of that (sigmoid's alternating Eulerian terms near 0 come closest: 214 u at order 20)
    inputs, built = several_derivatives(name, 20)
    exact = leaf_polynomials.exact_derivatives(name, 20, SEVERAL[name][1])
    points = adversarial_points(roots=SEVERAL_CENTRES)
    y = 0.7
    for n, d in enumerate(built, start=1):
        for fn in (sg.compile(d, inputs=inputs), sg.compile(d, inputs=inputs, optimize=False)):
            for point in points:
                value, sensitivity = leaf_polynomials.evaluate(name, exact[n - 1], point, y)
                value, sensitivity = float(value), float(sensitivity)
                if not math.isfinite(value + sensitivity):
                    continue
                with np.errstate(all="ignore"):
                    got = float(fn(point, y) if len(inputs) == 2 else fn(point))
                allowed = 16 * (n + 2) * EPS * (abs(value) + sensitivity) + 2.0 ** -1060
                assert abs(got - value) <= allowed, (name, n, point, got, value)


def leaf_expression(name, polynomial, y):
    """The exact polynomial in the leaves as a SymPy expression of x (y fixed at ``y``)."""
    x = leaf_polynomials.X
    sigmoid = 1 / (1 + sympy.exp(-x))
    leaves = {leaf_polynomials.Y: y, leaf_polynomials.T: sympy.tanh(x * y if name == "tanhxy"
                                                                    else x),
              leaf_polynomials.S: sigmoid, leaf_polynomials.R: 1 / (1 + sympy.exp(x)),
              leaf_polynomials.E: sympy.exp(sympy.sin(x)), leaf_polynomials.SN: sympy.sin(x),
              leaf_polynomials.CS: sympy.cos(x)}
    return polynomial.as_expr().subs(leaves)


@pytest.mark.parametrize("name", SEVERAL)
def test_several_leaves_as_accurate_as_the_product_rule_tree(name, monkeypatch):
    # the rewrite-safety judge, orders 2 to 10 (the tree doubles past them), along x with y
    # at 0.7: within 8 times the tree's error around each point, plus 8 ulps
    y = 0.7
    exact = leaf_polynomials.exact_derivatives(name, 10, SEVERAL[name][1])
    points = adversarial_points(roots=SEVERAL_CENTRES)
    for order in range(2, 11):
        functions = []
        for compaction in (differentiate.DERIVATIVE_SIMPLIFICATIONS, []):
            monkeypatch.setattr(differentiate, "DERIVATIVE_SIMPLIFICATIONS", compaction)
            with sg.use_graph():
                inputs, built = several_derivatives(name, order)
                for optimize in (True, False)[:2 if compaction else 1]:
                    fn = sg.compile(built[-1], inputs=inputs, optimize=optimize)
                    functions.append((lambda f: (lambda p: f(p, y)))(fn) if len(inputs) == 2
                                     else fn)
        *compact, tree = functions
        reference = leaf_expression(name, exact[order - 1], sympy.Rational(y))
        for fn in compact:
            assert judge_functions(f"{name}, order {order}", fn, tree, reference,
                                   leaf_polynomials.X, points) > 40


def test_a_second_derivative_in_several_leaves_is_built_as_before(fresh_graph):
    # Rosenbrock's Hessian-vector product is a polynomial in x and v: it does not swell, and its
    # program stays the product rule's (compaction of several leaves starts at the third order)
    x, v = sg.var("x", shape=(6,)), sg.var("v", shape=(6,))
    f = sg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    product = sg.hvp(f, x, v)
    ops = {fresh_graph.nodes[n]["op"] for n in fresh_graph.ancestors_in_order([product.node])}
    assert "polynomial" not in ops
    with sg.use_graph() as graph:
        _, third = several_derivatives("sigmoid", 3)
        ops = {graph.nodes[n]["op"] for n in graph.ancestors_in_order([third[-1].node])}
    assert "polynomial" in ops
