"""The optimiser (symgrad/optimize), the stability rewrites (ops/stability) and the lean code codegen
emits from them, against independent references.

Every rewrite is checked on an expression holding its pattern: it fires, and the optimised function
agrees with ``optimize=False`` and with NumPy, SymPy or a closed form. Sizes are statements of the
emitted source (assignments executed per call, ``del`` and ``return`` not counted), never times.
"""

import re

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad import cli
from symgrad.ops import apply, broadcast_to_like, const, identity, stability
from symgrad.optimize import algebra

RNG_SEED = 20240604


def statements(source):
    """Statements executed per call: the body's lines, without ``del`` and ``return``."""
    body = source.splitlines()[1:]
    return sum(1 for line in body
               if line.strip() and not line.strip().startswith(("del ", "return")))


def numpy_passes(source):
    """Statements that run over arrays: a NumPy call (not the allocation np.empty) or an
    arithmetic operator; the workspace's own lines are not counted."""
    return len([line for line in source.splitlines()[1:]
                if re.search(r"np\.(?!empty)\w+\(| [-+*/]=? ", line) and "_sg_" not in line])


def rule_names(compiled):
    return [line.split(":")[0] for line in compiled.rewrites]


def random_arguments(inputs, rng, low=0.5, high=2.0):
    """Positive values, so that log and sqrt stay defined."""
    return [rng.uniform(low, high, size=v.shape) for v in inputs]


def with_grads(f, wrt):
    """A scalar and its gradients: the outputs every rewrite case compiles."""
    return [f, *sg.grad(f, wrt, disconnected="zero")]


def assert_same_results(got, expected, rtol=1e-12, atol=1e-12):
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(got) == len(expected)
    for k, (a, b) in enumerate(zip(got, expected)):
        assert np.shape(a) == np.shape(b), f"output {k}: shape {np.shape(a)} vs {np.shape(b)}"
        assert np.asarray(a).dtype == np.asarray(b).dtype, f"output {k}: dtype"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"output {k}")


def relative_error(got, expected):
    """Worst absolute difference relative to the largest entry of the reference (at least 1)."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    assert got.shape == expected.shape
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    return float(np.max(np.abs(got - expected), initial=0.0)) / scale


def compile_both(outputs, inputs):
    return (sg.compile(outputs, inputs=inputs),
            sg.compile(outputs, inputs=inputs, optimize=False))


# -- 1. every algebraic rewrite: fires, and keeps values and gradients -----------------------------
#
# Each case builds (outputs, inputs) holding the rule's pattern, either in the forward expression
# (its gradients come along) or in the derivative the outputs contain.


def _cancel_log_exp():
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
    return with_grads(sg.sum(sg.log(sg.exp(sg.sin(x))) * y), [x, y]), [x, y]


def _cancel_exp_log():
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
    return with_grads(sg.sum(sg.exp(sg.log(x)) * y), [x, y]), [x, y]


def _square_product_of_equals():
    x, y = sg.var("x", shape=(2, 3)), sg.var("y", shape=(2, 3))
    return with_grads(sg.sum(sg.sin(x) * sg.sin(x) * y), [x, y]), [x, y]


def _gather_constant_factors():
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
    f = sg.sum((sg.sin(x) * 2.0) * 3.0 * y + (-sg.cos(x)) * 5.0)
    return with_grads(f, [x, y]), [x, y]


def _negate_instead_of_times_minus_one():
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
    return with_grads(sg.sum(sg.sin(x) * -1.0 * y), [x, y]), [x, y]


def _negate_constant_factor():
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
    return with_grads(sg.sum(-(sg.sin(x) * 3.0) * y), [x, y]), [x, y]


def _subtract_a_negation():
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
    return with_grads(sg.sum((x + -sg.sin(y)) * x + (-x + y) * y), [x, y]), [x, y]


def _add_a_negation():
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
    return with_grads(sg.sum((x - -sg.sin(y)) * x), [x, y]), [x, y]


def _fold_mul_by_zero_in_derivatives():
    # d/dx sin(0 x) y multiplies the cotangent by the constant 0 while deriving
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
    return with_grads(sg.sum(sg.sin(x * 0.0) * y) + sg.sum(x * y), [x, y]), [x, y]


def _drop_added_zeros():
    # the second derivative of s t in s is zeros_like(s), added here to t**2
    s, t = sg.var("s"), sg.var("t")
    zero = sg.grad(sg.grad(s * t, s), s, disconnected="zero")
    return with_grads(zero + t * t * s, [s, t]), [s, t]


def _sum_of_products_as_inner_product():
    # an L2 penalty and a dot product written out: np.vdot, no array of products
    W, V = sg.var("W", shape=(3, 4)), sg.var("V", shape=(3, 4))
    h = 0.5 * sg.sum(W ** 2) + sg.sum(sg.tanh(W) * V)
    return with_grads(h, [W, V]), [W, V]


def _negate_after_summing():
    # a softmax-like cotangent: the negation of a product, summed over the last axis
    Z = sg.var("Z", shape=(3, 4))
    h = sg.sum(sg.sum(-(sg.exp(Z) * Z), axis=-1) ** 2)
    return with_grads(h, [Z]), [Z]


def _add_into_the_slice():
    # Rosenbrock's shape: the gradient of x reaches it through two overlapping slices
    x = sg.var("x", shape=(5,))
    h = sg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    return with_grads(h, [x]), [x]


def _sum_of_a_broadcast_scalar():
    # grad of sum(x) s in x is s spread over x; summing it back is 3 s
    x, s = sg.var("x", shape=(3,)), sg.var("s")
    h = sg.sum(sg.grad(sg.sum(x) * s, x)) * s
    return with_grads(h, [x, s]), [x, s]


def _scalar_arithmetic_before_broadcast():
    x, s, t = sg.var("x", shape=(3,)), sg.var("s"), sg.var("t")
    spread = sg.grad(sg.sum(x) * s, x)
    return with_grads(sg.sum(sg.sin(spread * t)), [s, t]), [x, s, t]


def _factor_out_a_common_factor():
    # the iterated map's step: the cotangent scales three contributions, one of them nested
    x, g = sg.var("x", shape=(4,)), sg.var("g", shape=(4,))
    y = sg.sin(x) * x + x ** 2
    return [sg.grad(sg.sum(y * g), x), g * sg.exp(x) - sg.cos(x) * g], [x, g]


def test_a_common_factor_stays_when_a_product_is_read_elsewhere():
    x, g = sg.var("x", shape=(4,)), sg.var("g", shape=(4,))
    shared = g * sg.sin(x)
    fn = sg.compile([shared + g * x, shared], inputs=[x, g])
    assert "factor_out_a_common_factor" not in rule_names(fn)


def _softmax_of_a_shift_by_logsumexp():
    # the gradient of a logsumexp over one axis of a batch, its value not asked for
    X, w = sg.var("X", shape=(3, 4)), sg.var("w", shape=(3,))
    return [sg.grad(sg.sum(w * sg.logsumexp(X, axis=1)), X)], [X, w]


def test_a_logsumexp_read_elsewhere_keeps_its_shift():
    # with the value asked for too, the logsumexp is computed anyway: exp(x - it) is two passes
    # where a softmax would take four
    X = sg.var("X", shape=(3, 4))
    f = sg.sum(sg.logsumexp(X, axis=1))
    both = sg.compile([f, sg.grad(f, X)], inputs=[X])
    assert "softmax_of_a_shift_by_logsumexp" not in rule_names(both)
    alone = sg.compile(sg.grad(f, X), inputs=[X])
    assert "softmax_of_a_shift_by_logsumexp" in rule_names(alone)
    at = np.random.default_rng(RNG_SEED).standard_normal((3, 4)) * 30.0
    softmax = np.exp(at - at.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(alone(at), softmax, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(both(at)[1], softmax, rtol=1e-13, atol=1e-300)


def _three_signed_terms(first, second, nested_left, square):
    """x * a ± s ± x * b (or x ** 2 for the last) with the sum nested either way."""
    x, a, b, s = (sg.var(name, shape=(4,)) for name in "xabs")
    p, q = x * a, x ** 2 if square else b * x
    combine = {"+": lambda u, v: u + v, "-": lambda u, v: u - v}
    if nested_left:
        return combine[second](combine[first](p, s), q), [x, a, b, s]
    return combine[first](p, combine[second](s, q)), [x, a, b, s]


@pytest.mark.parametrize("square", [False, True])
@pytest.mark.parametrize("nested_left", [True, False])
@pytest.mark.parametrize("first,second", [("+", "+"), ("+", "-"), ("-", "+"), ("-", "-")])
def test_a_sum_of_three_terms_keeps_its_order(first, second, nested_left, square):
    # x * a ± s ± x * b as x * (a ± b) ± s would save a multiplication but reorder the sum,
    # which can cancel where the written order did not (found by the rewrite-safety profile:
    # 17 ulps where the graph made 1): the optimiser leaves it as written, bit for bit
    y, inputs = _three_signed_terms(first, second, nested_left, square)
    optimized, raw = compile_both([y], inputs)
    assert "factor_out_a_common_factor" not in rule_names(optimized)
    arguments = random_arguments(inputs, np.random.default_rng(RNG_SEED), low=-2.0)
    np.testing.assert_array_equal(optimized(*arguments)[0], raw(*arguments)[0])


def test_the_iterated_map_step_makes_fifteen_passes():
    # sin x * x + x**2 is x (sin x + x) (two terms, one factor); its derivative
    # cos x * x + sin x + 2 x keeps its three terms in the written order
    x = sg.var("x", shape=(1000,))
    x1 = sg.sin(x) * x + x ** 2
    fn = sg.compile(sg.grad(sg.sum(sg.sin(x1) * x1 + x1 ** 2), x), inputs=[x])
    assert numpy_passes(fn.source) == 15, fn.source
    start = np.random.default_rng(RNG_SEED).uniform(-0.5, 0.5, 1000)
    slope = np.cos(start) * start + np.sin(start) + 2 * start
    after = np.sin(start) * start + start ** 2
    slope *= np.cos(after) * after + np.sin(after) + 2 * after
    np.testing.assert_allclose(fn(start), slope, rtol=1e-12)


@pytest.mark.parametrize("form", ["c(k-x)", "c(x-k)", "c(k+x)", "(k-x)c", "c(2xy-b)"])
def test_a_constant_times_a_difference_is_not_distributed(form):
    # x * a + c (k - x) as x (a - c) + c k cancels near x = k where the written form is exact
    # (tests/test_rewrite_safety.py, "a constant times a difference beside a small multiple")
    x, a, y, b = (sg.var(name, shape=(4,)) for name in "xayb")
    c, k = -2.0, 1.5
    scaled = {"c(k-x)": lambda: c * (k - x), "c(x-k)": lambda: c * (x - k),
              "c(k+x)": lambda: c * (k + x), "(k-x)c": lambda: (k - x) * c,
              "c(2xy-b)": lambda: c * ((x * 2.0) * y - b)}[form]()
    optimized, raw = compile_both([a * x + scaled], [x, a, y, b])
    assert "factor_out_a_common_factor" not in rule_names(optimized)
    arguments = random_arguments([x, a, y, b], np.random.default_rng(RNG_SEED), low=-2.0)
    np.testing.assert_array_equal(optimized(*arguments)[0], raw(*arguments)[0])


def test_the_rosenbrock_gradient_and_hvp_make_as_many_passes_as_by_hand():
    # hand-written (tests/benchmarks/peers.py): 9 passes for the gradient, 13 for the HVP; the
    # HVP's 14th is its constant times a difference, which is not distributed
    scipy_optimize = pytest.importorskip("scipy.optimize")
    x, v = sg.var("x", shape=(1000,)), sg.var("v", shape=(1000,))
    d = x[1:] - x[:-1] ** 2
    f = sg.sum(100.0 * d ** 2 + (1.0 - x[:-1]) ** 2)
    gradient = sg.compile(sg.grad(f, x), inputs=[x])
    hvp = sg.compile(sg.hvp(f, x, v), inputs=[x, v])
    assert numpy_passes(gradient.source) == 9, gradient.source
    assert numpy_passes(hvp.source) == 14, hvp.source
    rng = np.random.default_rng(RNG_SEED)
    xv, vv = rng.uniform(-2.0, 2.0, 1000), rng.standard_normal(1000)
    np.testing.assert_allclose(gradient(xv), scipy_optimize.rosen_der(xv), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(hvp(xv, vv), scipy_optimize.rosen_hess_prod(xv, vv),
                               rtol=1e-12, atol=1e-9)


def _one_number_as_a_scalar():
    # an HVP's seed is a constant of shape (1,): the Rosenbrock HVP multiplied by it
    x, v = sg.var("x", shape=(5,)), sg.var("v", shape=(5,))
    d = x[1:] - x[:-1] ** 2
    f = sg.sum(100.0 * d ** 2 + (1.0 - x[:-1]) ** 2)
    return [sg.hvp(f, x, v), x * sg.const(np.array([3.0]))], [x, v]


def _constants_of_two_products_meet():
    # Rosenbrock's gradient: (d * -200) * (2 * x) is (d * x) * -400
    x = sg.var("x", shape=(6,))
    d = x[1:] - x[:-1] ** 2
    return with_grads(sg.sum(100.0 * d ** 2 + (1.0 - x[:-1]) ** 2), [x]), [x]


def _sum_of_products_as_a_matvec():
    # the gradient of a linear map's outputs meets its matrix: A.T * p summed along rows
    A, x = sg.var("A", shape=(5, 4)), sg.var("x", shape=(4,))
    h = sg.sum(sg.sum(A * sg.sin(x), axis=-1) ** 2)
    return with_grads(h, [A, x]), [A, x]


def _identity_products_in_derivatives():
    # a Hessian's rows are cotangents seeded by the identity: I @ A.T is A.T
    A, x = sg.var("A", shape=(6, 4)), sg.var("x", shape=(4,))
    return [sg.hessian(sg.logsumexp(A @ x), x)], [A, x]


def _negate_the_factor_of_an_identity_part():
    # a Hessian's rows through a difference: the seed's part times a factor, negated
    a = sg.var("a", shape=(1, 4, 1, 3))
    part = identity((3,))[:, None, :, None]
    return [-(sg.tanh(a) * part)], [a]


def _pad_the_factor_of_an_identity_part():
    # a Hessian's rows through a slice: the zeros around it made for the factor, not the product
    a, u = sg.var("a", shape=(1, 4, 3, 3)), sg.var("u", shape=(3, 4))
    part = identity((3,))[:, None, :, None]
    index = (("slice", None, None, None), ("slice", 1, None, None))
    return [apply("index_grad", sg.tanh(a) * part, u, index=index, keep=2)], [a, u]


def _spread_a_multiple_of_the_identity():
    # the Hessian of sum(exp(u)) on a grid: the identity seed times e^u, made from parts of eye(n)
    u = sg.var("u", shape=(3, 4))
    dx, dy = u[1:, :] - u[:-1, :], u[:, 1:] - u[:, :-1]
    return [sg.hessian(sg.sum(dx * dx) + sg.sum(dy * dy) - 1.5 * sg.sum(sg.exp(u)), u)], [u]


def _spread_a_product_with_a_part_of_the_seed():
    # a factor times the seed's part, then times a value of the variable's shape
    a, b = sg.var("a", shape=(3, 1, 3, 1)), sg.var("b", shape=(3, 3))
    part = identity((3,))[None, :, None, :]
    return [(sg.tanh(a) * part) * b], [a, b]


def _rank_one_update_through_a_matmul():
    # the Hessian of logsumexp(A x) is A.T (diag(p) - p p.T) A; and both sides of the rule
    A, x = sg.var("A", shape=(6, 4)), sg.var("x", shape=(4,))
    c, r = sg.var("c", shape=(6, 1)), sg.var("r", shape=(1, 4))
    left = sg.const(np.arange(18.0).reshape(3, 6) / 10.0)
    right = sg.const(np.arange(12.0).reshape(4, 3) / 10.0)
    return [sg.hessian(sg.logsumexp(A @ x), x), left @ (sg.tanh(A) - c * r),
            (r * c + sg.exp(A)) @ right], [A, x, c, r]


ALGEBRA_CASES = {
    "cancel_log_exp": _cancel_log_exp,
    "cancel_exp_log": _cancel_exp_log,
    "softmax_of_a_shift_by_logsumexp": _softmax_of_a_shift_by_logsumexp,
    "square_product_of_equals": _square_product_of_equals,
    "gather_constant_factors": _gather_constant_factors,
    "negate_instead_of_times_minus_one": _negate_instead_of_times_minus_one,
    "negate_constant_factor": _negate_constant_factor,
    "subtract_a_negation": _subtract_a_negation,
    "add_a_negation": _add_a_negation,
    "fold_mul_by_zero_in_derivatives": _fold_mul_by_zero_in_derivatives,
    "identity_products_in_derivatives": _identity_products_in_derivatives,
    "drop_added_zeros": _drop_added_zeros,
    "sum_of_a_broadcast_scalar": _sum_of_a_broadcast_scalar,
    "negate_after_summing": _negate_after_summing,
    "add_into_the_slice": _add_into_the_slice,
    "sum_of_products_as_inner_product": _sum_of_products_as_inner_product,
    "scalar_arithmetic_before_broadcast": _scalar_arithmetic_before_broadcast,
    "factor_out_a_common_factor": _factor_out_a_common_factor,
    "one_number_as_a_scalar": _one_number_as_a_scalar,
    "constants_of_two_products_meet": _constants_of_two_products_meet,
    "sum_of_products_as_a_matvec": _sum_of_products_as_a_matvec,
    "rank_one_update_through_a_matmul": _rank_one_update_through_a_matmul,
    "negate_the_factor_of_an_identity_part": _negate_the_factor_of_an_identity_part,
    "pad_the_factor_of_an_identity_part": _pad_the_factor_of_an_identity_part,
    "spread_a_multiple_of_the_identity": _spread_a_multiple_of_the_identity,
    "spread_a_product_with_a_part_of_the_seed": _spread_a_product_with_a_part_of_the_seed,
}


def test_every_algebra_rule_has_a_case():
    missing = [rule.__name__ for rule in algebra.RULES if rule.__name__ not in ALGEBRA_CASES]
    assert not missing, f"rules in algebra.RULES with no case in ALGEBRA_CASES: {missing}"
    unknown = set(ALGEBRA_CASES) - {rule.__name__ for rule in algebra.RULES}
    assert not unknown, f"cases in ALGEBRA_CASES for no rule in algebra.RULES: {unknown}"


@pytest.mark.parametrize("rule", sorted(ALGEBRA_CASES))
def test_algebra_rule_fires_and_keeps_values_and_gradients(rule):
    outputs, inputs = ALGEBRA_CASES[rule]()
    optimized, raw = compile_both(outputs, inputs)
    assert rule in rule_names(optimized)
    rng = np.random.default_rng(RNG_SEED)
    for _ in range(3):
        args = random_arguments(inputs, rng)
        assert_same_results(optimized(*args), raw(*args))


# rules that trade a statement for work: each firing may add one statement and one node
GROWS_BY_ONE = {
    # one vector-matrix product more, for an outer product and a sum on the smaller result
    "rank_one_update_through_a_matmul",
    # one product more: the parts of eye(n) meet x one at a time, where np.eye(n^2) was made
    "spread_a_multiple_of_the_identity",
}


@pytest.mark.parametrize("rule", sorted(ALGEBRA_CASES))
def test_algebra_rule_never_grows_the_program(rule):
    outputs, inputs = ALGEBRA_CASES[rule]()
    optimized, raw = compile_both(outputs, inputs)
    allowed = rule_names(optimized).count(rule) if rule in GROWS_BY_ONE else 0
    assert statements(optimized.source) <= statements(raw.source) + allowed
    stats = sg.graph_stats(outputs, inputs=inputs)
    assert sum(a for _, a in stats.values()) <= sum(b for b, _ in stats.values()) + allowed, \
        stats


def test_each_algebra_rule_alone_keeps_values():
    """Run as the only rule of a one-pass pipeline, each rewrite still fires and keeps values."""
    from symgrad.codegen import build_function, generate
    from symgrad.optimize import Pass, optimize
    rng = np.random.default_rng(RNG_SEED)
    for rule in algebra.RULES:
        with sg.use_graph():
            outputs, inputs = ALGEBRA_CASES[rule.__name__]()
            graph = outputs[0].graph
            result = optimize(graph, [o.node for o in outputs], [v.node for v in inputs],
                              passes=[Pass("alone", rules=(rule,))])
            assert rule.__name__ in [a.rule for a in result.applied]
            source, namespace = generate(result.graph, result.outputs, result.inputs)
            alone = build_function(source, namespace)
            raw = sg.compile(outputs, inputs=inputs, optimize=False)
            args = random_arguments(inputs, rng)
            assert_same_results(tuple(alone(*args)), raw(*args))


def test_algebra_rewrites_match_sympy():
    """The optimised function of a formula full of patterns against SymPy's own value and
    gradient of the same formula."""
    x, y = sg.var("x"), sg.var("y")
    f = (sg.log(sg.exp(x)) * y + (x * 2.0) * 3.0 * y - -(x * y) + x * x * (-1.0)
         + sg.exp(sg.log(y)) * y)
    fn = sg.compile([f, *sg.grad(f, [x, y])], inputs=[x, y])
    assert {"cancel_log_exp", "cancel_exp_log", "gather_constant_factors"} <= set(rule_names(fn))
    sx, sy = sympy.symbols("x y", positive=True)
    expression = sx * sy + 6 * sx * sy + sx * sy - sx ** 2 + sy ** 2
    reference = sympy.lambdify((sx, sy), [expression, sympy.diff(expression, sx),
                                          sympy.diff(expression, sy)])
    for x0, y0 in [(0.3, 1.7), (2.5, 0.2), (-1.25, 3.0)]:
        np.testing.assert_allclose(fn(x0, y0), reference(x0, y0), rtol=1e-12)


# -- bugs the cases above do not reach ---------------------------------------------------------


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_cancel_exp_log_of_a_boolean_still_negates():
    x = sg.var("x", shape=(3,))
    fn = sg.compile(-sg.exp(sg.log(x > 0.0)), inputs=[x])
    np.testing.assert_array_equal(fn(np.array([0.5, -1.0, 2.0])), [-1.0, -0.0, -1.0])


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_cancel_log_exp_of_a_boolean_keeps_a_float_dtype():
    x = sg.var("x", shape=(3,))
    fn = sg.compile([sg.log(sg.exp(x > 0.0)), sg.sum(sg.exp(sg.log(x > 0.0)))], inputs=[x])
    logged, total = fn(np.array([0.5, -1.0, 2.0]))
    np.testing.assert_array_equal(logged, [1.0, 0.0, 1.0])
    assert logged.dtype.kind == "f" and np.asarray(total).dtype.kind == "f"


def test_horner_form_keeps_the_shape_of_the_replaced_node():
    x, s = sg.var("x", shape=(3,)), sg.var("s", shape=(1,))
    u = s * broadcast_to_like(const(2.0), x)
    p = u * u
    for k in range(6):
        p = p + u * u * float(k + 2)
    optimized, raw = compile_both([p], [s, x])
    args = [np.array([0.7]), np.zeros(3)]
    assert_same_results(optimized(*args), raw(*args))      # got shape (1,), expected (3,)
    np.testing.assert_allclose(raw(*args)[0], np.full(3, 28 * 4 * 0.49))


def test_horner_form_keeps_nan_of_forward_zero_products():
    x = sg.var("x", shape=(3,))
    p = x
    for _ in range(5):
        p = p * x + x
    optimized, raw = compile_both([p * 0.0 + x], [x])
    with np.errstate(all="ignore"):
        got, expected = optimized(np.array([np.inf, 1.0, 2.0])), raw(np.array([np.inf, 1.0, 2.0]))
    np.testing.assert_array_equal(expected[0], [np.nan, 1.0, 2.0])
    np.testing.assert_array_equal(got[0], expected[0])


# -- 1. the polynomial (Horner) pass ---------------------------------------------------------------


def tanh_derivatives(x, order):
    """Derivatives 1..order of tanh, element-wise on a vector, by repeated grad of a sum."""
    derivatives, d = [], sg.tanh(x)
    for _ in range(order):
        d = sg.grad(sg.sum(d), x)
        derivatives.append(d)
    return derivatives


def sympy_tanh_derivative(n, values):
    s = sympy.Symbol("s")
    return sympy.lambdify(s, sympy.diff(sympy.tanh(s), s, n), "numpy")(values)


@pytest.mark.parametrize("order", [3, 4, 5])
def test_horner_form_fires_and_keeps_values(order):
    x = sg.var("x", shape=("n",))
    d = tanh_derivatives(x, order)[-1]
    optimized, raw = compile_both([d, sg.grad(sg.sum(d), x)], [x])
    assert "horner_form_of_polynomial" in rule_names(optimized)
    values = np.random.default_rng(RNG_SEED).uniform(-3.0, 3.0, 25)
    got, expected = optimized(values), raw(values)
    for a, b in zip(got, expected):
        assert relative_error(a, b) < 1e-9
    assert relative_error(got[0], sympy_tanh_derivative(order, values)) < 1e-9
    assert relative_error(got[1], sympy_tanh_derivative(order + 1, values)) < 1e-9


@pytest.mark.parametrize("order", [1, 3, 5, 8])
def test_horner_form_never_grows_the_program(order, monkeypatch):
    # the pass on the product-rule tree: a grad of a derivative is built as one polynomial node
    # (optimize.compaction), whose written form is one statement of many operations
    from symgrad import differentiate
    monkeypatch.setattr(differentiate, "DERIVATIVE_SIMPLIFICATIONS", [])
    x = sg.var("x", shape=("n",))
    d = tanh_derivatives(x, order)[-1]
    outputs = [d, sg.grad(sg.sum(d), x)]
    optimized, raw = compile_both(outputs, [x])
    assert statements(optimized.source) <= statements(raw.source)
    stats = sg.graph_stats(outputs, inputs=[x])
    assert sum(a for _, a in stats.values()) <= sum(b for b, _ in stats.values())


def test_tanh_derivatives_past_order_6_keep_the_written_form(monkeypatch):
    # from order 7, Horner's rule in tanh(x) ** 2 rounds more than 16 times worse than the
    # product-rule tree near |tanh(x)| = 1 (its alternating coefficients cancel there), so the
    # pass leaves the tree as written: larger, but as accurate as the graph. (Built, a grad of a
    # derivative is one polynomial node: tests/test_compaction.py)
    from symgrad import differentiate
    monkeypatch.setattr(differentiate, "DERIVATIVE_SIMPLIFICATIONS", [])
    counts = {}
    for order in (6, 7):
        with sg.use_graph():
            x = sg.var("x", shape=("n",))
            fn = sg.compile(tanh_derivatives(x, order)[-1], inputs=[x])
            counts[order] = statements(fn.source)
            assert ("horner_form_of_polynomial" in rule_names(fn)) == (order == 6)
    assert counts[7] > 5 * counts[6], counts


def test_horner_form_of_a_one_leaf_polynomial_matches_sympy():
    # a product-rule tree in u = sin(x): every derivative of u**6 in u is a polynomial in u
    x = sg.var("x", shape=(5,))
    u = sg.sin(x)
    p = u ** 6.0
    for _ in range(4):
        p = sg.grad(sg.sum(p), x) * 0.5 + p * u
    fn = sg.compile(p, inputs=[x])
    values = np.random.default_rng(RNG_SEED).uniform(-1.5, 1.5, 5)
    s = sympy.Symbol("s")
    q = sympy.sin(s) ** 6
    for _ in range(4):
        q = sympy.diff(q, s) / 2 + q * sympy.sin(s)
    reference = sympy.lambdify(s, q, "numpy")(values)
    assert relative_error(fn(values), reference) < 1e-12
    assert relative_error(sg.compile(p, inputs=[x], optimize=False)(values), reference) < 1e-12


def test_horner_form_is_as_accurate_as_the_graph_in_the_tails():
    import mpmath
    x = sg.var("x", shape=("n",))
    d = tanh_derivatives(x, 8)[-1]
    optimized, raw = compile_both(d, [x])
    values = np.array([-10.0, -8.0, -6.0, 5.0, 7.0, 9.5])
    s = sympy.Symbol("s")
    exact = sympy.lambdify(s, sympy.diff(sympy.tanh(s), s, 8), "mpmath")
    with mpmath.workdps(50):
        reference = np.array([float(exact(mpmath.mpf(float(v)))) for v in values])

    def worst(got):
        return float(np.max(np.abs(got - reference) / np.abs(reference)))
    assert worst(raw(values)) < 1e-7
    assert worst(optimized(values)) <= 10 * worst(raw(values))


# -- 1 and 4. stability rewrites ---------------------------------------------------------------------


def _naive_softmax(v):
    e = np.exp(v - np.max(v))
    return e / np.sum(e)


WEIGHTS = np.array([1.0, -2.0, 0.5, 3.0])

# (rule, case id, builder of a scalar from v of shape (4,), the same in plain NumPy, CLI formula)
STABILITY_CASES = [
    ("log_of_softmax", "log_softmax",
     lambda v: sg.sum(sg.log(sg.softmax(v)) * WEIGHTS),
     lambda v: np.sum(np.log(_naive_softmax(v)) * WEIGHTS), "sum(log(softmax(v)))"),
    ("log_of_sum_of_exp", "logsumexp",
     lambda v: sg.log(sg.sum(sg.exp(v))),
     lambda v: np.log(np.sum(np.exp(v))), "log(sum(exp(v)))"),
    ("log_of_one_plus_exp", "softplus",
     lambda v: sg.sum(sg.log(1.0 + sg.exp(v)) * WEIGHTS),
     lambda v: np.sum(np.log(1.0 + np.exp(v)) * WEIGHTS), "sum(log(1 + exp(v)))"),
    ("log_of_one_plus_exp", "softplus_swapped",
     lambda v: sg.sum(sg.log(sg.exp(v) + 1.0)),
     lambda v: np.sum(np.log(np.exp(v) + 1.0)), "sum(log(exp(v) + 1))"),
    ("log_of_sigmoid", "log_sigmoid",
     lambda v: sg.sum(sg.log(sg.sigmoid(v)) * WEIGHTS),
     lambda v: np.sum(np.log(1.0 / (1.0 + np.exp(-v))) * WEIGHTS), "sum(log(sigmoid(v)))"),
    ("log_through_view", "reshape",
     lambda v: sg.sum(sg.log(sg.reshape(sg.softmax(v), (2, 2))) * WEIGHTS.reshape(2, 2)),
     lambda v: np.sum(np.log(_naive_softmax(v)) * WEIGHTS),
     "sum(log(reshape(softmax(v), (2, 2))))"),
    ("log_through_view", "getitem",
     lambda v: sg.sum(sg.log(sg.softmax(v)[1:]) * WEIGHTS[1:]),
     lambda v: np.sum(np.log(_naive_softmax(v))[1:] * WEIGHTS[1:]),
     "sum(log(softmax(v)[1:]))"),
    ("log_through_view", "transpose",
     lambda v: sg.sum(sg.log(sg.transpose(sg.softmax(sg.reshape(v, (2, 2)), axis=1)))
                      * WEIGHTS.reshape(2, 2)),
     lambda v: np.sum(np.log(np.stack([_naive_softmax(r) for r in v.reshape(2, 2)])).T
                      * WEIGHTS.reshape(2, 2)),
     "sum(log(transpose(softmax(reshape(v, (2, 2)), axis=1))))"),
    ("log_of_scaled", "scaled_softmax",
     lambda v: sg.sum(sg.log(3.0 * sg.softmax(v)) * WEIGHTS),
     lambda v: np.sum(np.log(3.0 * _naive_softmax(v)) * WEIGHTS), "sum(log(3 * softmax(v)))"),
    ("log1p_of_exp", "log1p_exp",
     lambda v: sg.sum(sg.log1p(sg.exp(v)) * WEIGHTS),
     lambda v: np.sum(np.log1p(np.exp(v)) * WEIGHTS), "sum(log1p(exp(v)))"),
    ("one_minus_sigmoid", "one_minus_sigmoid",
     lambda v: sg.sum((1.0 - sg.sigmoid(v)) * WEIGHTS),
     lambda v: np.sum((1.0 - 1.0 / (1.0 + np.exp(-v))) * WEIGHTS), "sum(1 - sigmoid(v))"),
]
STABILITY_IDS = [case[1] for case in STABILITY_CASES]


def test_every_stability_rewrite_has_a_case():
    names = [rule.__name__ for rule in stability.LOG_RULES] + ["log1p_of_exp", "one_minus_sigmoid"]
    covered = {case[0] for case in STABILITY_CASES}
    assert not [n for n in names if n not in covered]


def finite_difference_gradient(function, point, step=1e-6):
    gradient = np.zeros_like(point)
    for i in range(point.size):
        shift = np.zeros_like(point)
        shift[i] = step
        gradient[i] = (function(point + shift) - function(point - shift)) / (2 * step)
    return gradient


@pytest.mark.parametrize("rule, case, build, naive, formula", STABILITY_CASES, ids=STABILITY_IDS)
def test_stability_rewrite_fires_and_keeps_values(rule, case, build, naive, formula):
    v = sg.var("v", shape=(4,))
    f = build(v)
    optimized, raw = compile_both(with_grads(f, [v]), [v])
    assert rule in rule_names(optimized) and rule in rule_names(raw)
    rng = np.random.default_rng(RNG_SEED)
    for _ in range(3):
        point = rng.uniform(-3.0, 3.0, 4)
        value, gradient = optimized(point)
        assert_same_results((value, gradient), raw(point))
        np.testing.assert_allclose(value, naive(point), rtol=1e-12)
        np.testing.assert_allclose(gradient, finite_difference_gradient(naive, point),
                                   rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("rule, case, build, naive, formula", STABILITY_CASES, ids=STABILITY_IDS)
def test_stability_rewrite_is_finite_at_plus_minus_1000(rule, case, build, naive, formula):
    v = sg.var("v", shape=(4,))
    f = build(v)
    outputs = with_grads(f, [v])
    for optimize in (True, False):
        fn = sg.compile(outputs, inputs=[v], optimize=optimize)
        for point in ([1000.0, -1000.0, 0.5, -0.25], [-1000.0, 1000.0, 1000.0, -1000.0],
                      [1000.0] * 4, [-1000.0] * 4):
            with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
                value, gradient = fn(np.array(point))
            assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient)), (point, optimize)


@pytest.mark.parametrize("rule, case, build, naive, formula", STABILITY_CASES, ids=STABILITY_IDS)
def test_stability_rewrite_is_explained(rule, case, build, naive, formula, capsys):
    v = sg.var("v", shape=(4,))
    sg.compile(with_grads(build(v), [v]), inputs=[v], explain=True)
    printed = capsys.readouterr().out
    assert re.search(rf"^\s+{rule}: ", printed, re.MULTILINE), printed
    assert cli.main(["grad", formula, "--shape", "v=4", "--explain"]) == 0
    printed = capsys.readouterr().out
    assert re.search(rf"^\s+{rule}: ", printed, re.MULTILINE), printed


def test_explain_reports_no_rewrites_and_algebra_rewrites(capsys):
    x = sg.var("x")
    sg.compile(sg.sin(x), explain=True)
    assert "no rewrites" in capsys.readouterr().out
    assert cli.main(["grad", "log(exp(x)) * y", "--explain"]) == 0
    assert "cancel_log_exp: " in capsys.readouterr().out


def test_explain_names_the_rewrite_of_this_expression_when_nodes_are_shared():
    x = sg.var("x")
    sg.compile(sg.log(1.0 + sg.exp(x)))
    assert "log1p_of_exp" in rule_names(sg.compile(sg.log1p(sg.exp(x))))


def test_explain_names_every_stability_rewrite_of_a_chain():
    x = sg.var("x")
    fn = sg.compile(sg.log(1.0 - sg.sigmoid(x)))
    assert {"one_minus_sigmoid", "log_of_sigmoid"} <= set(rule_names(fn))


# -- 2 and 7. optimising never grows the program ----------------------------------------------------


def _textbook_product():
    x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
    f = (x + y) * z
    return [f, *sg.grad(f, [x, y, z])], [x, y, z]


def _textbook_max():
    x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
    f = (x + y) * sg.maximum(y, z)
    return [f, *sg.grad(f, [x, y, z])], [x, y, z]


def _textbook_power():
    x = sg.var("x")
    d = x ** 5.0
    derivatives = []
    for _ in range(3):
        d = sg.grad(d, x)
        derivatives.append(d)
    return derivatives, [x]


def _tanh_derivatives():
    # the product-rule tree, for the optimiser to shrink: a grad of a derivative is built as one
    # polynomial node (optimize.compaction), whose written form is one statement
    from symgrad import differentiate
    compaction = differentiate.DERIVATIVE_SIMPLIFICATIONS[:]
    differentiate.DERIVATIVE_SIMPLIFICATIONS[:] = []
    try:
        x = sg.var("x", shape=(4,))
        return tanh_derivatives(x, 6), [x]
    finally:
        differentiate.DERIVATIVE_SIMPLIFICATIONS[:] = compaction


def _rosenbrock_hessian():
    x = sg.var("x", shape=(6,))
    f = sg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    return [f, sg.grad(f, x), sg.hessian(f, x)], [x]


def _softmax_cross_entropy():
    z, y = sg.var("z", shape=(5, 4)), sg.var("y", shape=(5, 4))
    loss = -sg.mean(sg.sum(y * sg.log(sg.softmax(z, axis=1)), axis=1))
    return [loss, sg.grad(loss, z)], [z, y]


def _small_mlp():
    X, Y = sg.var("X", shape=("n", 6)), sg.var("Y", shape=("n", 3))
    W1, b1 = sg.var("W1", shape=(6, 5)), sg.var("b1", shape=(5,))
    W2, b2 = sg.var("W2", shape=(5, 3)), sg.var("b2", shape=(3,))
    logits = sg.relu(X @ W1 + b1) @ W2 + b2
    loss = (-sg.mean(sg.sum(Y * sg.log_softmax(logits, axis=1), axis=1))
            + 1e-4 * (sg.sum(W1 ** 2) + sg.sum(W2 ** 2)))
    return [loss, *sg.grad(loss, [W1, b1, W2, b2])], [X, Y, W1, b1, W2, b2]


def _iterated_map():
    x = sg.var("x", shape=(3,))
    xk = x
    for _ in range(6):
        xk = sg.sin(xk) * xk + xk ** 2
    f = sg.sum(xk)
    return [f, sg.grad(f, x), sg.hvp(f, x, x)], [x]


PROGRAMS = {
    "textbook_product": _textbook_product,
    "textbook_max": _textbook_max,
    "textbook_power": _textbook_power,
    "tanh_derivatives": _tanh_derivatives,
    "rosenbrock_hessian": _rosenbrock_hessian,
    "softmax_cross_entropy": _softmax_cross_entropy,
    "mlp_gradient": _small_mlp,
    "iterated_map_hvp": _iterated_map,
}


def program_arguments(inputs, rng):
    return [rng.uniform(-1.0, 1.0, size=tuple(4 if isinstance(d, str) else d for d in v.shape))
            for v in inputs]


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_optimising_never_grows_the_program(program):
    outputs, inputs = PROGRAMS[program]()
    optimized, raw = compile_both(outputs, inputs)
    assert statements(optimized.source) <= statements(raw.source)
    args = program_arguments(inputs, np.random.default_rng(RNG_SEED))
    assert_same_results(optimized(*args), raw(*args), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_graph_stats_optimised_totals_never_exceed_built(program):
    outputs, inputs = PROGRAMS[program]()
    stats = sg.graph_stats(outputs, inputs=inputs)
    assert stats and all(isinstance(k, int) and k >= 0 for k in stats)
    assert sum(after for _, after in stats.values()) <= sum(built for built, _ in stats.values())


def test_graph_stats_counts_each_derivative_order():
    x = sg.var("x")
    derivatives, d = [], sg.tanh(x)
    for _ in range(4):
        d = sg.grad(d, x)
        derivatives.append(d)
    stats = sg.graph_stats([sg.tanh(x), *derivatives], inputs=[x])
    assert sorted(stats) == [0, 1, 2, 3, 4]
    assert stats[0] == (1, 1)           # tanh
    assert all(after <= built for built, after in stats.values()), stats
    assert sum(a for _, a in stats.values()) < sum(b for b, _ in stats.values())


def test_cli_stats_reports_optimised_totals_at_most_built(capsys):
    assert cli.main(["grad", "tanh(x)", "--wrt", "x", "--order", "5", "--stats"]) == 0
    printed = capsys.readouterr().out
    rows = {}
    for line in printed.splitlines():
        match = re.match(r"\s*(\d+|all)\s+(?:forward|derivative)?\s+(\d+)\s+(\d+)\s+([\d.]+)x",
                         line)
        if match:
            rows[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    assert set(rows) == {"0", "1", "2", "3", "4", "5", "all"}, printed
    built, after = rows["all"]
    assert after <= built
    assert built == sum(rows[str(k)][0] for k in range(6))
    assert after == sum(rows[str(k)][1] for k in range(6))


# -- 3. the user's graph is never changed -------------------------------------------------------------


def snapshot(graph):
    return (graph.number_of_nodes(), graph.number_of_edges(), graph.next_key,
            {n: (d["op"], d["inputs"], d["order"]) for n, d in graph.nodes(data=True)},
            dict(graph.rewrites), dict(graph.name_hints))


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_compile_never_changes_the_users_graph(program, capsys):
    outputs, inputs = PROGRAMS[program]()
    graph = outputs[0].graph
    before = snapshot(graph)
    sg.compile(outputs, inputs=inputs)
    sg.compile(outputs, inputs=inputs, optimize=False)
    sg.compile(outputs, inputs=inputs, explain=True)
    sg.graph_stats(outputs, inputs=inputs)
    capsys.readouterr()
    assert snapshot(graph) == before


def test_compile_never_changes_the_graph_of_rewritten_patterns():
    for build in list(ALGEBRA_CASES.values()):
        with sg.use_graph() as graph:
            outputs, inputs = build()
            before = snapshot(graph)
            sg.compile(outputs, inputs=inputs)
            assert snapshot(graph) == before, build.__name__


# -- 5. the figures of issue 4 --------------------------------------------------------------------------


def mlp_784_500_400_10():
    X, Y = sg.var("X", shape=("n", 784)), sg.var("Y", shape=("n", 10))
    W1, b1 = sg.var("W1", shape=(784, 500)), sg.var("b1", shape=(500,))
    W2, b2 = sg.var("W2", shape=(500, 400)), sg.var("b2", shape=(400,))
    W3, b3 = sg.var("W3", shape=(400, 10)), sg.var("b3", shape=(10,))
    logits = sg.relu(sg.relu(X @ W1 + b1) @ W2 + b2) @ W3 + b3
    loss = (-sg.mean(sg.sum(Y * sg.log_softmax(logits, axis=1), axis=1))
            + 1e-4 * (sg.sum(W1 ** 2) + sg.sum(W2 ** 2) + sg.sum(W3 ** 2)))
    return loss, [X, Y], [W1, b1, W2, b2, W3, b3]


def hand_written_backprop(X, Y, W1, b1, W2, b2, W3, b3):
    a1 = X @ W1 + b1
    h1 = np.maximum(a1, 0.0)
    a2 = h1 @ W2 + b2
    h2 = np.maximum(a2, 0.0)
    z = h2 @ W3 + b3
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = X.shape[0]
    loss = -np.mean(np.sum(Y * log_p, axis=1)) + 1e-4 * sum(np.sum(W ** 2) for W in (W1, W2, W3))
    dz = (np.exp(log_p) * Y.sum(axis=1, keepdims=True) - Y) / n
    dW3, db3 = h2.T @ dz + 2e-4 * W3, dz.sum(axis=0)
    da2 = (dz @ W3.T) * (a2 > 0)
    dW2, db2 = h1.T @ da2 + 2e-4 * W2, da2.sum(axis=0)
    da1 = (da2 @ W2.T) * (a1 > 0)
    dW1, db1 = X.T @ da1 + 2e-4 * W1, da1.sum(axis=0)
    return loss, dW1, db1, dW2, db2, dW3, db3


def test_issue_mlp_gradient_at_most_3x_forward_statements():
    loss, data, params = mlp_784_500_400_10()
    forward = sg.compile(loss, inputs=data + params)
    step = sg.compile([loss, *sg.grad(loss, params)], inputs=data + params)
    assert statements(step.source) <= 3 * statements(forward.source)
    rng = np.random.default_rng(RNG_SEED)
    n = 6
    X = rng.standard_normal((n, 784))
    Y = np.eye(10)[rng.integers(0, 10, n)]
    weights = [rng.standard_normal((784, 500)) * 0.05, rng.standard_normal(500) * 0.1,
               rng.standard_normal((500, 400)) * 0.06, rng.standard_normal(400) * 0.1,
               rng.standard_normal((400, 10)) * 0.07, rng.standard_normal(10) * 0.1]
    got = step(X, Y, *weights)
    expected = hand_written_backprop(X, Y, *weights)
    for a, b in zip(got, expected):
        assert relative_error(a, b) < 1e-12
    np.testing.assert_allclose(forward(X, Y, *weights), expected[0], rtol=1e-12)


def test_issue_iterated_map_gradient_at_most_4x_forward_statements():
    x = sg.var("x")
    xk = x
    for _ in range(80):
        xk = sg.sin(xk) * xk + xk ** 2
    forward = sg.compile(xk, inputs=[x])
    gradient = sg.compile([xk, sg.grad(xk, x)], inputs=[x])
    assert statements(gradient.source) <= 4 * statements(forward.source)
    for x0 in (0.5, -0.3, 0.05):
        value, derivative = x0, 1.0
        for _ in range(80):     # forward-mode by hand: d x_{k+1} = (cos x x + sin x + 2 x) d x_k
            value, derivative = (np.sin(value) * value + value ** 2,
                                 (np.cos(value) * value + np.sin(value) + 2 * value) * derivative)
        got_value, got_derivative = gradient(x0)
        np.testing.assert_allclose(got_value, value, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(got_derivative, derivative, rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(forward(x0), value, rtol=1e-12, atol=1e-300)


def test_tanh_derivatives_grow_by_a_bounded_count_up_to_order_6():
    counts = {}
    values = np.random.default_rng(RNG_SEED).uniform(-3.0, 3.0, 17)
    for order in range(1, 9):
        with sg.use_graph():
            x = sg.var("x", shape=("n",))
            fn = sg.compile(tanh_derivatives(x, order)[-1], inputs=[x])
            counts[order] = statements(fn.source)
            assert relative_error(fn(values), sympy_tanh_derivative(order, values)) < 1e-9
    # polynomial, not geometric, while Horner's form is as accurate as the tree (orders 1 to 6);
    # order 8's form is in powers of 1 - tanh(x) ** 2
    assert max(counts[k + 1] - counts[k] for k in range(1, 6)) <= 4, counts
    assert counts[8] <= counts[6] + 4, counts


# -- 6. lean code: del and in-place accumulation never change results ---------------------------------


def assert_fresh(results, arguments):
    """No returned array shares memory with an argument, nor with another returned array."""
    results = results if isinstance(results, tuple) else (results,)
    for k, result in enumerate(results):
        for argument in arguments:
            assert not np.shares_memory(result, argument), f"output {k} aliases an argument"
        for j in range(k):
            if results[j] is not result:
                assert not np.shares_memory(result, results[j]), f"outputs {j} and {k} overlap"


def without_lean_code(compiled):
    """The same function with every ``del`` dropped and every ``np.add(a, b, out=a)`` written
    ``a + b``: what the emitted code computes before the memory economies."""
    source = "\n".join(line for line in compiled.source.splitlines()
                       if not line.strip().startswith("del "))
    source = re.sub(r"np\.add\((\w+), (\w+), out=\1\)", r"(\1 + \2)", source)
    namespace = dict(compiled._function.__globals__)
    exec(source, namespace)
    function = namespace[compiled._function.__name__]
    return lambda *arguments: function(*(np.asarray(a, dtype=np.float64) for a in arguments))


def check_lean(outputs, inputs, arguments, reference, expect_in_place=None):
    optimized, raw = compile_both(outputs, inputs)
    if expect_in_place is not None:
        assert ("out=" in optimized.source) == expect_in_place, optimized.source
    kept = [a.copy() for a in arguments]
    got, expected = optimized(*arguments), raw(*arguments)
    assert_same_results(got, expected)
    for compiled, results in ((optimized, got), (raw, expected)):
        plain = without_lean_code(compiled)(*arguments)
        assert_same_results(results if isinstance(results, tuple) else (results,), plain,
                            rtol=0, atol=0)
    got = got if isinstance(got, tuple) else (got,)
    for a, b in zip(got, reference(*kept)):
        assert np.shape(a) == np.shape(b)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for argument, copy in zip(arguments, kept):
        np.testing.assert_array_equal(argument, copy)       # arguments never written to
    assert_fresh(got, arguments)
    assert_fresh(raw(*arguments), arguments)
    return optimized


@pytest.fixture
def square():
    rng = np.random.default_rng(RNG_SEED)
    return rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), rng.standard_normal(3)


def test_lean_output_view_of_an_accumulated_intermediate(square):
    A, B = sg.var("A", shape=(3, 3)), sg.var("B", shape=(3, 3))
    P = sg.exp(A) @ B
    check_lean([sg.transpose(P), P + A, sg.reshape(P, (9,))], [A, B], list(square[:2]),
               lambda a, b: [(np.exp(a) @ b).T, np.exp(a) @ b + a, (np.exp(a) @ b).ravel()])


def test_lean_live_view_read_after_the_accumulation(square):
    A, B = sg.var("A", shape=(3, 3)), sg.var("B", shape=(3, 3))
    Q = sg.exp(A)
    check_lean([(Q + B) * sg.transpose(Q), (Q * B + A) @ sg.transpose(Q * B)], [A, B],
               list(square[:2]),
               lambda a, b: [(np.exp(a) + b) * np.exp(a).T,
                             (np.exp(a) * b + a) @ (np.exp(a) * b).T])


def test_lean_accumulation_with_a_view_of_its_own_buffer(square):
    A = sg.var("A", shape=(3, 3))
    Q = sg.exp(A)
    check_lean([Q + sg.transpose(Q)], [A], [square[0]],
               lambda a: [np.exp(a) + np.exp(a).T], expect_in_place=True)


def test_lean_repeated_operand(square):
    A = sg.var("A", shape=(3, 3))
    Q = sg.sin(A)
    check_lean([Q + Q, (Q * 2.0 + Q * 2.0) + Q], [A], [square[0]],
               lambda a: [2 * np.sin(a), 5 * np.sin(a)], expect_in_place=True)


def test_lean_broadcasting_adds_never_accumulate_into_the_smaller_operand(square):
    A, v = sg.var("A", shape=(3, 3)), sg.var("v", shape=(3,))
    c = sg.var("c", shape=(3, 1))
    outputs = [sg.exp(v) + A, A + sg.exp(v), sg.exp(c) + sg.exp(v), sg.exp(A) + v,
               sg.exp(v) + sg.exp(A)]
    column = np.random.default_rng(1).standard_normal((3, 1))
    fn = check_lean(outputs, [A, v, c], [square[0], square[2], column],
                    lambda a, vv, cc: [np.exp(vv) + a, a + np.exp(vv), np.exp(cc) + np.exp(vv),
                                       np.exp(a) + vv, np.exp(vv) + np.exp(a)],
                    expect_in_place=True)
    for buffer in re.findall(r"np\.add\((\w+), \w+, out=\1\)", fn.source):
        definition = re.search(rf"^\s+{buffer} = (.*)$", fn.source, re.MULTILINE).group(1)
        assert definition == "np.exp(A)", fn.source       # only a (3, 3) buffer takes the sum


def test_lean_outputs_that_are_views_or_inputs_are_fresh_arrays(square):
    A, B = sg.var("A", shape=(3, 3)), sg.var("B", shape=(3, 3))
    outputs = [A, sg.transpose(A), sg.reshape(A, (9,)), A[1:, :2], sg.stop_gradient(B),
               A + 0.0, B * 1.0, sg.exp(sg.log(B)), sg.transpose(sg.transpose(A)),
               sg.sum(A, axis=0, keepdims=True)[0], sg.grad(sg.sum(A), A)]
    a, b = square[0], np.abs(square[1]) + 0.5
    check_lean(outputs, [A, B], [a, b],
               lambda a, b: [a, a.T, a.ravel(), a[1:, :2], b, a, b, b, a, a.sum(axis=0),
                             np.ones((3, 3))])


def test_lean_gradient_accumulates_into_buffers_with_live_views(square):
    # d/dA sum(sin A sin(A)^T * B) sums two contributions, one of them through a transpose
    A, B = sg.var("A", shape=(3, 3)), sg.var("B", shape=(3, 3))
    f = sg.sum(sg.sin(A) @ sg.transpose(sg.sin(A)) * B)
    check_lean([f, sg.grad(f, A), sg.grad(f, B)], [A, B], list(square[:2]),
               lambda a, b: [np.sum(np.sin(a) @ np.sin(a).T * b),
                             np.cos(a) * ((b + b.T) @ np.sin(a)), np.sin(a) @ np.sin(a).T],
               expect_in_place=True)


def test_lean_named_dimensions_and_float32(square):
    X = sg.var("X", shape=("n", 3), dtype="float32")
    W = sg.var("W", shape=(3, 3))
    h = sg.tanh(X @ W)
    f = sg.sum(h * h + h)
    arguments = [np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32), square[0]]
    check_lean([f, sg.grad(f, W), h + sg.transpose(sg.transpose(h))], [X, W], arguments,
               lambda x, w: [np.sum(np.tanh(x @ w) ** 2 + np.tanh(x @ w)),
                             x.T.astype(float) @ ((2 * np.tanh(x @ w) + 1)
                                                  * (1 - np.tanh(x @ w) ** 2)),
                             2 * np.tanh(x @ w)])


def test_lean_code_releases_and_accumulates_in_the_mlp():
    loss, data, params = mlp_784_500_400_10()
    step = sg.compile([loss, *sg.grad(loss, params)], inputs=data + params)
    lines = [line.strip() for line in step.source.splitlines()]
    assert any(line.startswith("del ") for line in lines)
    in_place = [line for line in lines if "out=" in line]
    for line in in_place:      # a ufunc writing into one of its own operands, or a kept buffer
        assert re.search(r"= np\.\w+\((\w+, )*(\w+)(, [\w.()-]+)*, out=\2\)", line) \
            or re.search(r"= np\.\w+\([^=]*, out=_sg_ws\[\d+\](\[block\])?\)", line), line
    # each weight: data term + L2 term into one buffer, the large ones block by block
    accumulations = [line for line in in_place if "np.add(" in line]
    accumulations += [line for line in lines if re.match(r"\w+\[rows\] \+= \w+", line)]
    assert len(accumulations) == 3, step.source


FUZZ_OPS = 8


def _fuzz_program(rng, size=14):
    return [(int(rng.integers(FUZZ_OPS)), int(rng.integers(k + 2)), int(rng.integers(k + 2)))
            for k in range(size)]


def _run_program(program, a, b, library):
    """The program's values in symgrad (library sg) or NumPy (library np)."""
    symbolic = library is sg
    values = [a, b]
    for op, i, j in program:
        x, y = values[i], values[j]
        if op == 0:
            values.append(sg.sin(x) if symbolic else np.sin(x))
        elif op == 1:
            values.append(x + y)
        elif op == 2:
            values.append(x * y)
        elif op == 3:
            values.append(sg.transpose(x) if symbolic else x.T)
        elif op == 4:
            values.append(x - y)
        elif op == 5:
            values.append(x @ y * 0.3)
        elif op == 6:
            values.append(sg.reshape(sg.reshape(x, (9,)) * 0.5, (3, 3)) if symbolic else x * 0.5)
        else:
            values.append(x + x[0])
    return values


@pytest.mark.parametrize("seed", range(40))
def test_lean_code_on_random_graphs_of_views_and_sums(seed):
    """Random DAGs of shared (3, 3) intermediates, transposes, reshapes and sums: outputs against
    NumPy, the gradient against central differences, and against the code without del/out=."""
    rng = np.random.default_rng(seed)
    program = _fuzz_program(rng)
    picks = sorted({int(k) for k in rng.integers(2, len(program) + 2, 3)})
    A, B = sg.var("A", shape=(3, 3)), sg.var("B", shape=(3, 3))
    nodes = _run_program(program, A, B, sg)
    f = sg.sum(nodes[picks[-1]] * nodes[picks[0]])
    outputs = [nodes[k] for k in picks] + [f, *sg.grad(f, [A, B], disconnected="zero")]
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))

    def reference(a, b):
        values = _run_program(program, a, b, np)
        return [values[k] for k in picks] + [np.sum(values[picks[-1]] * values[picks[0]])]
    optimized = check_lean(outputs, [A, B], [a, b], reference)
    got = optimized(a, b)
    da, db = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    step = 1e-6
    numeric = (reference(a + step * da, b + step * db)[-1]
               - reference(a - step * da, b - step * db)[-1]) / (2 * step)
    analytic = np.sum(got[-2] * da) + np.sum(got[-1] * db)
    assert abs(analytic - numeric) <= 1e-6 * max(1.0, abs(numeric))


# -- regressions from review ---------------------------------------------------------------------


def test_horner_coefficients_of_a_difference_of_equal_terms():
    x = sg.var("x", shape=(3,))
    fn = sg.compile(sg.grad(sg.sum(3.0 * sg.tanh(x - x)), x), inputs=[x])
    np.testing.assert_array_equal(fn(np.array([0.3, -1.0, 2.0])), np.zeros(3))


def test_negating_a_mask_keeps_its_float_result():
    x = sg.var("x", shape=(3,))
    fn = sg.compile((x > 0) * -1.0, inputs=[x])
    np.testing.assert_array_equal(fn(np.array([1.0, -1.0, 2.0])), [-1.0, 0.0, -1.0])


def test_gathering_constants_never_overflows_or_underflows():
    x = sg.var("x", shape=(2,))
    big = sg.compile((x * 1e200) * 1e200 * 0.0 + (x * 1e-200) * 1e-200, inputs=[x])
    raw = sg.compile((x * 1e200) * 1e200 * 0.0 + (x * 1e-200) * 1e-200, inputs=[x],
                     optimize=False)
    point = np.array([0.0, 1.0])
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(big(point), raw(point))


def test_a_user_view_op_keeps_its_base_from_being_written_in_place():
    reverse = sg.defop("reverse_for_test", 1, lambda shapes: shapes[0], "{0}[::-1]",
                       vjp=lambda g, out, x: [g[::-1]])
    try:
        x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
        s = sg.sin(x)
        fn = sg.compile([reverse(s), s + y], inputs=[x, y])
        a, b = np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0])
        first, second = fn(a, b)
        np.testing.assert_allclose(first, np.sin(a)[::-1])
        np.testing.assert_allclose(second, np.sin(a) + b)
        assert not np.shares_memory(sg.compile(reverse(x), inputs=[x])(a), a)
    finally:
        del sg.OPS["reverse_for_test"]


def test_review_regressions_in_rewrites():
    # the rank-one rule compares sizes: with named dimensions it stays out
    P, c = sg.var("P", shape=("m", "n")), sg.var("c", shape=("m", 1))
    r, B = sg.var("r", shape=("n",)), sg.var("B", shape=("n", 3))
    fn = sg.compile((P - c * r) @ B, inputs=[P, c, r, B])
    rng = np.random.default_rng(RNG_SEED)
    args = [rng.standard_normal(s) for s in [(4, 5), (4, 1), (5,), (5, 3)]]
    np.testing.assert_allclose(fn(*args), (args[0] - args[1] * args[2]) @ args[3], rtol=1e-13)
    # a node the user built on a derivative is not a derivative: 0 * inf stays nan
    x = sg.var("x", shape=(2,))
    scaled = sg.grad(sg.sum(x ** 3.0), x) * 0.0
    at = np.array([1e200, 1.0])
    with np.errstate(all="ignore"):
        assert_same_results((sg.compile(scaled, inputs=[x])(at),),
                            (sg.compile(scaled, inputs=[x], optimize=False)(at),))


def test_third_review_regressions_in_rewrites():
    rng = np.random.default_rng(RNG_SEED)
    # a logsumexp without keepdims over the last axis lines up with x's last axes, not with
    # the rows it reduced: exp(X - it) is no softmax
    X, Z = sg.var("X", shape=(3, 3)), sg.var("Z", shape=(2, 1))
    for y, at in ((sg.exp(X - sg.logsumexp(X, axis=1)), rng.standard_normal((3, 3))),
                  (sg.exp(Z - sg.logsumexp(Z, axis=1)), np.zeros((2, 1)))):
        inputs = [X] if y.shape == (3, 3) else [Z]
        got, want = (sg.compile(y, inputs=inputs, optimize=flag)(at) for flag in (True, False))
        assert got.shape == want.shape == y.shape
        np.testing.assert_allclose(got, want, rtol=1e-14)
    # x ** c with c a one-number array broadcasts: it is x * x only when c is a scalar
    x = sg.var("x")
    y = x ** np.array([2.0]) + x ** np.array([2.0], dtype=np.float32)
    assert np.shape(sg.compile(y, inputs=[x])(3.0)) == (1,)
    # terms whose coefficients cancel leave zeros of the operand's dtype
    x32 = sg.var("x32", shape=(4,), dtype="float32")
    at32 = np.arange(4, dtype=np.float32)
    for f, slope in ((sg.sum(x32 * x32 - (x32 + x32) * x32), -2.0 * at32),
                     (sg.sum(0.0 * x32 ** 2 + x32), np.ones(4, np.float32))):
        got = sg.compile(sg.grad(f, x32), inputs=[x32])(at32)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, slope, rtol=1e-6)
    # like terms meet in one number before a common factor is taken out
    for h, count in ((sg.grad(x * x * 3.0 - x * (x * 0.5), x), 1),
                     (sg.hessian(0.25 - (x ** 2.0) ** 2.0, x), 2)):
        fn = sg.compile(h, inputs=[x])
        assert statements(fn.source) == count, fn.source
    np.testing.assert_allclose(sg.compile(sg.hessian(0.25 - (x ** 2.0) ** 2.0, x), inputs=[x])(
        1.5), -12.0 * 1.5 ** 2, rtol=1e-14)


def test_the_logsumexp_hessian_makes_three_matrix_products():
    # A x, p @ A (once: the row sums of A.T * p meet the rank-one term's product) and
    # (A.T * p) @ A; the closed form is A.T (diag(p) - p p.T) A + I
    rng = np.random.default_rng(RNG_SEED)
    A, at = rng.standard_normal((20, 8)), rng.standard_normal(8)
    x = sg.var("x", shape=(8,))
    f = sg.logsumexp(sg.const(A) @ x) + 0.5 * sg.sum(x * x)
    fn = sg.compile(sg.hessian(f, x), inputs=[x])
    assert fn.source.count(" @ ") == 3, fn.source
    assert "identity_products_in_derivatives" in rule_names(fn), fn.rewrites
    p = np.exp(A @ at - np.max(A @ at))
    p /= p.sum()
    want = A.T @ (np.diag(p) - np.outer(p, p)) @ A + np.eye(8)
    np.testing.assert_allclose(fn(at), want, rtol=1e-12, atol=1e-14)


# -- issue 16: the Horner pass cancelled where the written product did not; x ** 0 gave nan -------


def _chain_of_factors(factor, times):
    product = factor
    for _ in range(times - 1):
        product = product * factor
    return product


@pytest.mark.parametrize("optimize", [True, False])
def test_derivatives_of_shifted_products_keep_their_digits(optimize):
    x = sg.var("x")
    eight = _chain_of_factors(x - 1000.0, 8)
    assert sg.compile(sg.hessian(eight, x), inputs=[x], optimize=optimize)(1001.0) == 56.0
    as_powers = (x - 1000.0) ** 3 * (x - 1000.0) ** 5
    assert sg.compile(sg.hessian(as_powers, x), inputs=[x], optimize=optimize)(1001.0) == 56.0
    expanded = (x * x - 2000.0 * x + 1000000.0) ** 4
    assert sg.compile(sg.hessian(expanded, x), inputs=[x], optimize=optimize)(1001.0) == 56.0
    ten = _chain_of_factors(x - 100.0, 10)
    assert sg.compile(sg.grad(ten, x), inputs=[x], optimize=optimize)(102.0) == 5120.0
    shifted = (x - 5.0) ** 8
    hessian = sg.compile(sg.hessian(shifted, x), inputs=[x], optimize=optimize)
    np.testing.assert_allclose([hessian(5.001), hessian(5.0001)], [5.6e-17, 5.6e-23], rtol=1e-9)


def test_vector_derivatives_of_shifted_products_keep_their_digits():
    v = sg.var("v", shape=(2,))
    t = sg.var("t", shape=(2,))
    total = sg.sum(_chain_of_factors(v - 1000.0, 8))
    at, ones = np.array([1001.0, 999.0]), np.ones(2)
    np.testing.assert_array_equal(sg.compile(sg.hvp(total, v, t), inputs=[v, t])(at, ones),
                                  [56.0, 56.0])
    np.testing.assert_array_equal(
        sg.compile(sg.jvp(sg.grad(total, v), v, t), inputs=[v, t])(at, ones), [56.0, 56.0])
    np.testing.assert_array_equal(sg.compile(sg.grad(total, v), inputs=[v])(at), [8.0, -8.0])


@pytest.mark.parametrize("optimize", [True, False])
def test_the_derivative_of_x_to_the_zero_is_zero_at_zero(optimize):
    x = sg.var("x", shape=(2,))
    u = sg.var("u", shape=(2,))
    total = sg.sum(x ** 0 * x)
    at = np.array([0.0, 1.0])
    np.testing.assert_array_equal(sg.compile(sg.grad(total, x), inputs=[x],
                                             optimize=optimize)(at), [1.0, 1.0])
    np.testing.assert_array_equal(sg.compile(sg.hvp(total, x, u), inputs=[x, u],
                                             optimize=optimize)(at, np.ones(2)), [0.0, 0.0])
    cubic = sg.sum(sum(c * x ** k for k, c in enumerate([1.0, 2.0, 3.0, 4.0])))
    np.testing.assert_array_equal(sg.compile(sg.grad(cubic, x), inputs=[x],
                                             optimize=optimize)(at), [2.0, 20.0])


def test_a_variable_exponent_keeps_its_mixed_derivative_at_a_zero_exponent():
    # d/dx x ** y = y x ** (y - 1) is 0 at y = 0 for every x, 0 included; its derivative in y
    # there is x ** -1 (from SymPy: diff(x ** y, x, y) = x ** (y - 1) (y log x + 1))
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
    power = sg.sum(x ** y)
    fn = sg.compile([sg.grad(power, x), sg.hessian(power, [x, y])[0][1]], inputs=[x, y],
                    optimize=False)
    gradient, mixed = fn(np.array([0.0, 2.0, 4.0]), np.array([0.0, 0.0, 2.0]))
    np.testing.assert_array_equal(gradient, [0.0, 0.0, 8.0])
    xs, ys = sympy.symbols("x y", positive=True)
    reference = sympy.diff(xs ** ys, xs, ys)
    np.testing.assert_allclose(np.diag(mixed)[1:], [float(reference.subs({xs: 2, ys: 0})),
                                                    float(reference.subs({xs: 4, ys: 2}))])


def test_a_polynomial_whose_coefficients_pass_float64_is_left_as_written():
    # (t + 1)(t + 2)(t + 3) in t = 1e200 x has coefficients up to 1e600: the accuracy check
    # could not weigh them (OverflowError escaped compile), and no Horner form could hold them
    x = sg.var("x")
    t = x * 1e200
    gradient = sg.grad((t + 1.0) * (t + 2.0) * (t + 3.0), x)
    fn = sg.compile(gradient, inputs=[x])
    assert "horner_form_of_polynomial" not in rule_names(fn)
    assert fn(1e-200) == sg.compile(gradient, inputs=[x], optimize=False)(1e-200) == 2.6e201


# -- issue 17: one registry of build rules, the optimiser runs what PASSES lists -------------------


def test_a_build_rule_of_a_new_op_applies_in_stage_order_without_replacing_its_op():
    from symgrad.ops.core import BUILD_RULES, OPS, defop, register_build_rule, \
        unregister_build_rule

    def stability_rule(inputs):
        return sg.var("stable") if sg.ops.core.is_scalar_constant(inputs[0], 1) else None

    def local_rule(inputs):
        return inputs[0] if sg.ops.core.is_scalar_constant(inputs[0], 0) else None

    # the stability rule is registered first, before the op exists: its stage still runs second
    register_build_rule("double_for_test", stability_rule, stage="stability")
    try:
        record = defop("double_for_test", 1, lambda shapes: shapes[0], "2.0 * {0}",
                       vjp=lambda g, out, x: [2.0 * g], simplify=local_rule)
        assert BUILD_RULES["double_for_test"] == (local_rule, stability_rule)
        with sg.use_graph():
            x = sg.var("x")
            zero, one = sg.ops.const(0.0), sg.ops.const(1.0)
            assert sg.ops.apply("double_for_test", x).op == "double_for_test"
            assert sg.ops.apply("double_for_test", zero).node == zero.node
            assert sg.ops.apply("double_for_test", one).name == "stable"
            assert OPS["double_for_test"] is record
            unregister_build_rule("double_for_test", stability_rule)
            unregister_build_rule("double_for_test", local_rule)
            assert "double_for_test" not in BUILD_RULES
            assert sg.ops.apply("double_for_test", one).op == "double_for_test"
    finally:
        for rule in (stability_rule, local_rule):
            if rule in BUILD_RULES.get("double_for_test", ()):
                unregister_build_rule("double_for_test", rule)
        OPS.pop("double_for_test", None)


def test_optimize_runs_exactly_the_passes_listed():
    from symgrad.optimize import PASSES, Pass, optimize, optimize_loop_bodies, polynomial
    assert [step.run for step in PASSES if step.run is not None] == [polynomial.canonicalize,
                                                                       optimize_loop_bodies]
    x = sg.var("x", shape=("n",))
    d = tanh_derivatives(x, 4)[-1]
    graph, outputs, inputs = x.graph, [d.node], [x.node]
    ran = []

    def recorder(name):
        def run(current, current_outputs, current_inputs, log):
            ran.append((name, current is graph))
            return current, current_outputs, current_inputs
        return run

    log = [sg.ops.core.Applied("a build rule", "before the optimiser")]
    passes = [Pass("first", run=recorder("first")), PASSES[0],
              Pass("second", run=recorder("second"))]
    result = optimize(graph, outputs, inputs, passes=passes, log=log)
    assert ran == [("first", True), ("second", False)]
    assert result.applied is log and log[0].rule == "a build rule"
    assert "horner_form_of_polynomial" not in [a.rule for a in log]
    assert "horner_form_of_polynomial" in [a.rule for a in optimize(graph, outputs, inputs).applied]
    # whole-graph passes alone still hand on a private copy, never the user's graph
    assert optimize(graph, outputs, inputs, passes=[Pass("only", run=recorder("only"))]).graph \
        is not graph


# -- issue 23: what a rebuild learns (faithful copies, rewrites declined) changes nothing ---------

def _optimised_fingerprint(outputs, inputs):
    """Everything the optimiser hands on: each node the outputs and inputs need, in evaluation
    order (expression, shape, dtype, order, derivative stamp), the outputs, names, rewrite
    records and the log. Nodes are numbered by that order, not by their keys: a pass finished
    in place (optimize.inplace) keeps the keys of the copy it started from, where copies made
    round after round renumber them. The forward node a derivative node names in its comment
    (grad_of) is left out, as a node a rewrite builds in place can exist already with its own,
    and the log keeps the rules that fired, in order, without where: a copy describes a node
    by its operands in the graph it copies, the pass in place by those it has now."""
    from symgrad.optimize import optimize
    graph = outputs[0].graph
    result = optimize(graph, [o.node for o in outputs], [i.node for i in inputs])
    nodes = result.graph._node
    number = {}
    rows = []
    for node in result.graph.ancestors_in_order(result.inputs + result.outputs):
        data = nodes[node]
        number[node] = len(number)
        rows.append((number[node], data["op"], tuple(number[i] for i in data["inputs"]),
                     data["key"][2], data["shape"], data["dtype"], data["order"],
                     data["derivative"]))
    return (rows, [number[o] for o in result.outputs], [number[i] for i in result.inputs],
            sorted((number[n], name) for n, name in result.graph.name_hints.items()
                   if n in number),
            sorted((number[n], records) for n, records in result.graph.rewrites.items()
                   if n in number),
            [a.rule for a in result.applied])


class _Forgetful(dict):
    """A stand-in for the table of what rebuilds learnt that keeps nothing."""

    def __setitem__(self, graph, learnt):
        pass


def _through_apply(target, data, images):
    from symgrad.ops import Expr, apply
    return apply(data["op"], *(Expr(target, i) for i in images), **data["attrs"]).node


def _as_before(patched, rebuild_module):
    """Every rebuild copies each node through apply and offers it every rewrite (as before
    issue 23): nothing learnt is kept, and copies alike their operands are not built directly."""
    patched.setattr(rebuild_module, "_LEARNT", _Forgetful())
    patched.setattr(rebuild_module, "_simplified_or_added", _through_apply)


def _programs_for_the_optimiser():
    import pathlib
    import sys
    benchmarks = str(pathlib.Path(__file__).parent / "benchmarks")
    if benchmarks not in sys.path:
        sys.path.insert(0, benchmarks)
    import peers
    programs = dict(ALGEBRA_CASES)

    def tanh_order(order):
        x = sg.var("x", shape=("n",))
        return [tanh_derivatives(x, order)[-1]], [x]

    def rosenbrock_hvp():
        x, v = sg.var("x", shape=(50,)), sg.var("v", shape=(50,))
        f = peers.rosenbrock(sg, x)
        return [f, sg.grad(f, x), sg.hvp(f, x, v)], [x, v]

    def logsumexp_hessian():
        A = np.random.default_rng(RNG_SEED).standard_normal((12, 6)) / 10.0
        x = sg.var("x", shape=(6,))
        return [sg.hessian(peers.logsumexp_quadratic(A, sg, x), x)], [x]

    def chain():
        x, W = sg.var("x", shape=(4,)), sg.var("W", shape=(4, 4))
        y = x
        for _ in range(20):
            y = sg.tanh(W @ (sg.sin(y) * 0.5 + x))
            y = y - sg.mean(y)
            y = sg.exp(y) * y
        f = sg.sum(y)
        return [f, *sg.grad(f, [x, W])], [x, W]

    for order in (4, 8):
        programs[f"tanh order {order}"] = lambda order=order: tanh_order(order)
    def a_product_read_elsewhere_until_round_two():
        # round 1 declines p + 2 p (2 p has another reader) and drops that reader (the sum of a
        # broadcast scalar): round 2 must offer the sum to factor_out_a_common_factor again
        p, c = sg.var("p", shape=(5,)), sg.var("c")
        b = p * 2.0
        return [p + b, sg.sum(broadcast_to_like(c, b))], [p, c]

    programs.update(rosenbrock_hvp=rosenbrock_hvp, logsumexp_hessian=logsumexp_hessian,
                    chain=chain, a_product_read_elsewhere_until_round_two=(
                        a_product_read_elsewhere_until_round_two))
    return programs


def test_what_rebuilds_learn_changes_no_optimised_graph(monkeypatch):
    """Copies alike their operands skip apply's shape and dtype rules; rounds after the first
    build faithful copies straight into the graph and skip the structural rewrites their nodes
    declined before: the graph handed on is the one rebuilding everything through apply and
    every rewrite makes, node for node, and so is the log."""
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / "benchmarks"))
    rebuild_module = sys.modules["symgrad.optimize.rebuild"]
    for name, build in _programs_for_the_optimiser().items():
        fingerprints = []
        for before in (False, True):
            with monkeypatch.context() as patched:
                if before:
                    _as_before(patched, rebuild_module)
                with sg.use_graph():
                    fingerprints.append(_optimised_fingerprint(*build()))
        assert fingerprints[0] == fingerprints[1], name


def test_a_rule_pass_finishes_in_place_after_one_copy(monkeypatch):
    """The chain's rewrites that its first copy cannot fire (a product read twice until another
    rewrite drops a reader) fire in the copy itself: one copy with the rules, one renumbering,
    and the same rewrites and graph as copies made round after round."""
    import sys
    optimize_module = sys.modules["symgrad.optimize"]
    calls = []
    for name in ("rebuild", "renumbered", "rewrite_in_place"):
        original = getattr(optimize_module, name)
        monkeypatch.setattr(optimize_module, name, lambda *a, original=original, name=name, **k:
                            calls.append(name) or original(*a, **k))
    build = _programs_for_the_optimiser()["chain"]
    with sg.use_graph():
        fingerprint = _optimised_fingerprint(*build())
    assert calls == ["rebuild", "rewrite_in_place", "renumbered"]
    assert fingerprint[-1].count("factor_out_a_common_factor") == 19
    monkeypatch.undo()
    with monkeypatch.context() as patched:
        _as_before(patched, sys.modules["symgrad.optimize.rebuild"])
        with sg.use_graph():
            assert _optimised_fingerprint(*build()) == fingerprint


def test_a_rewrite_in_place_that_changes_a_shape_hands_over_to_a_copy(monkeypatch):
    """When a rewrite in place builds a node unlike the one it replaces, the pass stops where
    it is, the graph consistent, and copies take over: here every rewrite in place hands over
    at once, and the optimised graph is the one copies alone make."""
    import sys
    inplace = sys.modules["symgrad.optimize.inplace"]
    for name, build in _programs_for_the_optimiser().items():
        with sg.use_graph():
            want = _optimised_fingerprint(*build())
        with monkeypatch.context() as patched:
            patched.setattr(inplace, "_alike", lambda copied, data: False)
            with sg.use_graph():
                got = _optimised_fingerprint(*build())
        # the copies' log may describe a node where the pass in place left it: same rewrites
        assert got[:-1] == want[:-1] and sorted(got[-1]) == sorted(want[-1]), name


def _random_programs(examples):
    """A decorator running a check on ``examples`` graphs of the property generator
    (tests/test_properties.py) with their gradients, as the emitted corpus draws them: the check
    gets (outputs, inputs)."""
    from hypothesis import HealthCheck, given, settings, strategies as st
    import test_properties

    def run(check):
        @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def drawn(data):
            with sg.use_graph():
                program = test_properties.program_with_gradient(data.draw)
                if program is not None:
                    check(*program)
        return drawn
    return run


def test_what_rebuilds_learn_changes_no_random_graph(monkeypatch):
    """The same for random graphs, copies alone (the pass in place is checked below): what
    rebuilds learn changes nothing, node for node, nor the log."""
    import sys
    rebuild_module = sys.modules["symgrad.optimize.rebuild"]
    optimize_module = sys.modules["symgrad.optimize"]

    @_random_programs(400)
    def check(outputs, inputs):
        fingerprints = []
        for before in (False, True):
            with monkeypatch.context() as patched:
                patched.setattr(optimize_module, "is_private", lambda graph: False)
                if before:
                    _as_before(patched, rebuild_module)
                fingerprints.append(_optimised_fingerprint(outputs, inputs))
        assert fingerprints[0] == fingerprints[1]

    check()


def test_the_pass_in_place_ends_where_no_rewrite_fires(monkeypatch):
    """On random graphs the pass in place hands on a graph in which no rewrite fires any more (a
    further copy offering every node every rewrite fires none) and which is no larger than the
    one copies made round after round reach. The two can differ: rewrites meeting nodes in
    another order can leave a constant factor associated otherwise, (a * b) * c for a * (b * c),
    each form a vetted rewrite's."""
    import sys
    from symgrad.optimize import optimize
    from symgrad.optimize.rebuild import index_rules, rebuild
    optimize_module = sys.modules["symgrad.optimize"]
    rules = index_rules(tuple(algebra.RULES))

    def size(result):
        return len(result.graph.ancestors_in_order(result.inputs + result.outputs))

    @_random_programs(400)
    def check(outputs, inputs):
        graph = outputs[0].graph
        nodes, roots = [o.node for o in outputs], [i.node for i in inputs]
        in_place = optimize(graph, nodes, roots)
        fired = []
        rebuild(in_place.graph, in_place.outputs, in_place.inputs, rules, fired)
        assert fired == []
        with monkeypatch.context() as patched:
            patched.setattr(optimize_module, "is_private", lambda graph: False)
            copies = optimize(graph, nodes, roots)
        assert size(in_place) <= size(copies)

    check()
