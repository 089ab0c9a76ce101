"""Graph -> NumPy source: golden sources, names, argument checks and the sandbox it runs in."""

import gc
import inspect
import itertools
import linecache
import math
import types
from functools import partial
import re
import textwrap
import traceback

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad import codegen
from symgrad.codegen import memory
from test_properties import draw_case
from test_reliability import run_together

RNG = np.random.default_rng(7)


def golden(text):
    return textwrap.dedent(text).lstrip("\n")


# -- golden sources --------------------------------------------------------------------------------


def test_golden_forward_function():
    x, y = sg.var("x"), sg.var("y")
    fn = sg.compile(sg.sin(x) * sg.exp(y))
    assert fn.source == golden("""
        def f(x, y):
            t0 = np.sin(x)
            t1 = np.exp(y)
            t2 = t0 * t1
            return t2,
        """)


def test_golden_gradient():
    x, y = sg.var("x"), sg.var("y")
    f = sg.sin(x) * sg.exp(y)
    fn = sg.compile([f, *sg.grad(f, [x, y])])
    # d/dy of sin(x) * exp(y) is the function itself: hash-consing finds t2 again
    assert fn.source == golden("""
        def f(x, y):
            t0 = np.sin(x)
            t1 = np.exp(y)
            t2 = t0 * t1
            t3 = np.cos(x)  # grad of t0
            d_out_d_x = t1 * t3  # grad of t0
            return t2, d_out_d_x, t2
        """)
    value, gx, gy = fn(0.3, -0.2)
    assert gx == pytest.approx(np.cos(0.3) * np.exp(-0.2))
    assert gy == pytest.approx(value)


def test_golden_second_derivative():
    x = sg.var("x")
    raw = sg.compile(sg.grad(sg.grad(x ** 3, x), x), optimize=False)
    assert raw.source == golden("""
        def f(x):
            t0 = 2.0 * x  # grad of power
            d2_out_d_x2 = 3.0 * t0  # grad of power
            return d2_out_d_x2,
        """)
    # the optimiser gathers the constant factors
    optimized = sg.compile(sg.grad(sg.grad(x ** 3, x), x))
    assert optimized.source == golden("""
        def f(x):
            d2_out_d_x2 = x * 6.0  # grad of power
            return d2_out_d_x2,
        """)
    assert raw(1.5) == optimized(1.5) == 9.0


def test_golden_hessian_row_names_both_variables():
    x, y = sg.var("x"), sg.var("y")
    fn = sg.compile(sg.hessian(x ** 3 * y, [x, y])[0])
    assert fn.source == golden("""
        def f(x, y):
            t0 = y * x  # grad of power
            d2_out_d_x2 = t0 * 6.0  # grad of power
            t1 = x ** 2.0  # grad of power
            d2_out_d_x_d_y = 3.0 * t1  # grad of power
            return d2_out_d_x2, d2_out_d_x_d_y
        """)
    assert fn(2.0, 5.0) == pytest.approx((6 * 2.0 * 5.0, 3 * 4.0))


def test_the_source_is_plain_numpy_that_runs_on_its_own():
    x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
    f = (x + y) * sg.maximum(y, z) + sg.tanh(x * z) / (1.0 + y ** 2)
    fn = sg.compile([f, *sg.grad(f, [x, y, z])])
    namespace = {"np": np}
    exec(fn.source, namespace)                      # the printed text alone, with NumPy
    for _ in range(5):
        point = RNG.normal(size=3)
        np.testing.assert_allclose(namespace["f"](*point), fn(*point), rtol=1e-15)


# -- names -----------------------------------------------------------------------------------------


def test_variables_keep_their_names():
    weight, bias, inputs = sg.var("weight", (2, 3)), sg.var("bias", (2,)), sg.var("inputs", (3,))
    loss = sg.sum(sg.tanh(weight @ inputs + bias))
    fn = sg.compile([loss, *sg.grad(loss, [weight, bias])], inputs=[weight, bias, inputs])
    header = fn.source.splitlines()[0]
    assert header == "def f(weight, bias, inputs):"
    assert "weight @ inputs" in fn.source
    assert "d_out_d_weight" in fn.source and "d_out_d_bias" in fn.source
    assert fn.input_names == ["weight", "bias", "inputs"]


def test_the_function_name_can_be_chosen():
    x = sg.var("x")
    fn = sg.compile(sg.sin(x), name="forward")
    assert fn.source.startswith("def forward(x):")
    assert fn(0.5) == pytest.approx(np.sin(0.5))


def test_names_the_source_needs_are_not_shadowed_by_variables():
    names = ["np", "float", "t0", "d_out_d_x", "f", "c0", "x"]
    v = {n: sg.var(n) for n in names}
    e = sg.sin(v["np"]) * v["float"] + v["t0"] * v["x"] + v["d_out_d_x"] * v["f"] - v["c0"]
    fn = sg.compile([e, sg.grad(e, v["x"])], inputs=[v[n] for n in names])
    values = dict(zip(names, RNG.normal(size=len(names))))
    expected = (np.sin(values["np"]) * values["float"] + values["t0"] * values["x"]
                + values["d_out_d_x"] * values["f"] - values["c0"])
    value, gx = fn(**values)
    assert value == pytest.approx(expected)
    assert gx == pytest.approx(values["t0"])
    assert fn.input_names == names


def test_derivative_statements_carry_a_grad_of_comment():
    x, y = sg.var("x"), sg.var("y")
    f = sg.log(1.0 + x ** 2) * sg.cos(y)
    fn = sg.compile([f, *sg.grad(f, [x, y])])
    forward = sg.compile(f).source.splitlines()[1:-1]
    body = fn.source.splitlines()[1:-1]
    assert body[:len(forward)] == forward
    assert all("#" not in line for line in forward)
    derivative = body[len(forward):]
    assert derivative
    assert all("  # grad of " in line for line in derivative)


# -- calling ---------------------------------------------------------------------------------------


@pytest.fixture
def matrices():
    X, Y = sg.var("X", ("n", 3)), sg.var("Y", ("n", 2))
    fn = sg.compile(sg.sum(X) + sg.sum(Y) * 2.0, inputs=[X, Y])
    return fn


def test_positional_and_keyword_calls_agree(matrices):
    X, Y = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 2))
    expected = X.sum() + 2 * Y.sum()
    assert matrices(X, Y) == pytest.approx(expected)
    assert matrices(X=X, Y=Y) == pytest.approx(expected)
    assert matrices(Y=Y, X=X) == pytest.approx(expected)
    assert matrices(X, Y=Y) == pytest.approx(expected)
    assert matrices(X.tolist(), Y.tolist()) == pytest.approx(expected)


def test_a_symbolic_dimension_binds_per_call(matrices):
    for n in (1, 2, 7):
        X, Y = np.ones((n, 3)), np.ones((n, 2))
        assert matrices(X, Y) == pytest.approx(7 * n)


def error_of(call):
    with pytest.raises(sg.SymgradError) as info:
        call()
    return info.value, str(info.value)


def test_wrong_argument_count_is_an_error_naming_the_arguments(matrices):
    X, Y = np.ones((4, 3)), np.ones((4, 2))
    _, message = error_of(lambda: matrices(X))
    assert "Y" in message
    _, message = error_of(lambda: matrices(X, Y, X))
    assert "3" in message
    _, message = error_of(lambda: matrices(X, Y, Z=X))
    assert "'Z'" in message
    _, message = error_of(lambda: matrices(X, X=X))
    assert "'X'" in message


def test_a_wrong_shape_names_the_argument(matrices):
    error, message = error_of(lambda: matrices(np.ones((4, 3)), np.ones((4, 3))))
    assert isinstance(error, sg.ShapeError)
    assert "'Y'" in message
    error, message = error_of(lambda: matrices(np.ones(3), np.ones((4, 2))))
    assert isinstance(error, sg.ShapeError) and "'X'" in message
    error, message = error_of(lambda: matrices(np.ones((4, 3, 1)), np.ones((4, 2))))
    assert isinstance(error, sg.ShapeError) and "'X'" in message


def test_inconsistent_symbolic_dimensions_name_both_arguments(matrices):
    error, message = error_of(lambda: matrices(np.ones((4, 3)), np.ones((5, 2))))
    assert isinstance(error, sg.ShapeError)
    assert "'Y'" in message and "'X'" in message and "'n'" in message
    assert "4" in message and "5" in message


def test_an_unconvertible_argument_names_the_argument():
    x = sg.var("x")
    fn = sg.compile(x * 2.0)
    _, message = error_of(lambda: fn("abc"))
    assert "'x'" in message
    _, message = error_of(lambda: fn(object()))
    assert "'x'" in message


def test_fixed_shapes_are_checked_exactly():
    W = sg.var("W", (2, 3))
    fn = sg.compile(W.T)
    np.testing.assert_array_equal(fn(np.arange(6.0).reshape(2, 3)), np.arange(6.0).reshape(2, 3).T)
    error, message = error_of(lambda: fn(np.ones((3, 2))))
    assert isinstance(error, sg.ShapeError) and "'W'" in message


def test_one_output_gives_an_array_and_a_list_gives_a_tuple():
    x = sg.var("x")
    single = sg.compile(x * 2.0)(3.0)
    assert np.ndim(single) == 0 and single == 6.0
    pair = sg.compile([x * 2.0, x * 3.0])(3.0)
    assert isinstance(pair, tuple) and pair == (6.0, 9.0)
    one = sg.compile([x * 2.0])(3.0)
    assert isinstance(one, tuple) and one == (6.0,)


def test_a_returned_input_is_a_copy():
    v = sg.var("v", (3,))
    fn = sg.compile([v, sg.grad(sg.sum(v * v) / 2.0, v)])
    argument = np.arange(3.0)
    same, grad = fn(argument)
    same[0] = 99.0
    grad[1] = 99.0
    np.testing.assert_array_equal(argument, [0.0, 1.0, 2.0])


def test_inputs_must_cover_the_outputs_and_be_distinct_variables():
    x, y = sg.var("x"), sg.var("y")
    with pytest.raises(sg.SymgradError, match="'y'"):
        sg.compile(x * y, inputs=[x])
    with pytest.raises(sg.SymgradError):
        sg.compile(x * y, inputs=[x, y, x])
    with pytest.raises(sg.SymgradError):
        sg.compile(x * y, inputs=[x, y * 2.0])
    with pytest.raises(sg.SymgradError):
        sg.compile([], inputs=[x])
    # an extra input is fine: the function ignores it
    assert sg.compile(x * 2.0, inputs=[x, y])(1.0, 5.0) == 2.0


# -- nothing can be injected -----------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "x; import os", "x\nimport os", "x)\n    import os\n    (y", "__class__", "__import__", "__x",
    "a b", "a-b", "1x", "", "x.y", "lambda", "def", "None", "\u0177", "\uff58", "x\u0301",
    "\u03b1", "x\x00", "x\n",
])
def test_variable_names_that_could_inject_code_are_refused(name):
    with pytest.raises(sg.SymgradError):
        sg.var(name)
    assert sg.default_graph().number_of_nodes() == 0


def test_function_names_that_could_inject_code_are_refused():
    x = sg.var("x")
    for name in ("f(): pass\nimport os\ndef g", "f g", "lambda", "\uff46"):
        with pytest.raises(sg.SymgradError):
            sg.compile(x, name=name)


def test_the_namespace_has_no_builtins():
    x, v = sg.var("x"), sg.var("v", (3,))
    f = sg.sum(sg.exp(v * x) * sg.const(np.arange(3.0)))
    source, namespace = codegen.generate(x.graph, [f.node], [x.node, v.node])
    assert namespace["__builtins__"] == {}
    extra = set(namespace) - {"np", "float", "__builtins__"}
    assert all(isinstance(namespace[name], np.ndarray) for name in extra)     # constants only
    for word in ("import", "open", "exec", "eval", "__", "getattr", "lambda"):
        assert word not in source


def test_compiled_source_cannot_call_open_or_import(tmp_path):
    x = sg.var("x")
    _, namespace = codegen.generate(x.graph, [sg.sin(x).node], [x.node])
    path = tmp_path / "created"
    attempts = {
        "open": f"def f(x):\n    return open({str(path)!r}, 'w')\n",
        "import": "def f(x):\n    import os\n    return os.getcwd()\n",
        "dunder import": "def f(x):\n    return __import__('os')\n",
        "eval": "def f(x):\n    return eval('1')\n",
    }
    for label, source in attempts.items():
        function = codegen.build_function(source, dict(namespace))
        with pytest.raises((NameError, ImportError)):
            function(1.0)
    assert not path.exists()


def test_compiled_functions_run_in_that_namespace():
    x = sg.var("x")
    fn = sg.compile(sg.sin(x))
    assert fn._function.__globals__["__builtins__"] == {}


# -- regressions from review -------------------------------------------------------------------------


def test_negative_zero_and_negative_int_literals_keep_their_sign_in_powers():
    y = sg.var("y")
    fn = sg.compile(sg.const(-0.0) ** y, inputs=[y])
    with np.errstate(divide="ignore"):
        assert fn(-2.0) == np.inf                      # (-0.0) ** -2 is +inf; -0.0 ** -2 would be -inf
    from symgrad.ops import literal
    assert literal(-2) == "-2" and "(-0.0) ** y" in fn.source


def test_outputs_never_share_memory_with_arguments_or_constants():
    m = sg.var("m", shape=(2, 3))
    a = np.ones((2, 3))
    for output in (m.T, m.reshape((3, 2)), m[0], m[None], m):
        assert not np.shares_memory(sg.compile(output, inputs=[m])(a), a)
    constant = sg.compile(sg.const(np.arange(3.0)), inputs=[])
    first = constant()
    first[0] = 99.0
    assert constant()[0] == 0.0


def test_the_function_cannot_be_named_after_what_the_code_uses():
    x = sg.var("x")
    with pytest.raises(sg.SymgradError):
        sg.compile(sg.sin(x), name="np")
    np.testing.assert_allclose(sg.compile(x * np.ones(3), name="c0")(2.0), [2.0, 2.0, 2.0])


def test_the_same_output_twice_comes_back_as_two_arrays():
    x = sg.var("x", shape=(3,))
    y = sg.sin(x)
    first, second = sg.compile([y, y], inputs=[x])(np.ones(3))
    np.testing.assert_array_equal(first, second)
    assert not np.shares_memory(first, second)


# -- the scalar fast path ----------------------------------------------------------------------------

# values where float and math code is most likely to part from NumPy: signed zeros, ties with the
# other operand (0.5), the overflow and domain edges, and the non-finite values
EDGES = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.0, 1e-300, -1e-300, 30.0, -30.0, 710.0, -710.0,
         1e308, -1e308, np.inf, -np.inf, np.nan]

# every op with a Python-float form, on scalars x and y (y = 0.5 makes ties with EDGES)
SCALAR_BUILDERS = {
    **{name: (lambda f: lambda x, y: f(x))(getattr(sg, name))
       for name in ["sin", "cos", "tan", "exp", "log", "log1p", "expm1", "sqrt", "tanh", "sign",
                    "abs", "sigmoid", "softplus", "relu"]},
    "leaky_relu": lambda x, y: sg.leaky_relu(x, 0.1),
    "negative": lambda x, y: -x,
    "add": lambda x, y: x + y, "subtract": lambda x, y: x - y, "multiply": lambda x, y: x * y,
    "divide": lambda x, y: x / y, "reciprocal": lambda x, y: 1.0 / x,
    "square": lambda x, y: x ** 2.0, "power": lambda x, y: x ** y, "cube": lambda x, y: x ** 3.0,
    "maximum": sg.maximum, "minimum": sg.minimum, "clip": lambda x, y: sg.clip(x, -1.0, y),
    "where": lambda x, y: sg.where(x < y, x * 2.0, y), "stop_gradient": lambda x, y: sg.stop_gradient(x),
}


def same_numbers(a, b):
    return (np.isnan(a) and np.isnan(b)) or a == b and np.signbit(a) == np.signbit(b)


def assert_fast_path_is_numpy(fn, pairs, label):
    """The fast path of ``fn`` (Python floats in) gives what its NumPy function gives at each
    (a, b) of ``pairs``: the same number (a zero with NumPy's sign, nan for nan), or for a nonzero
    value one within 1e-12 relative, as math's libm and NumPy's (or SciPy's) may round a
    transcendental function differently (and sigmoid' = s (1 - s) turns one ulp of s near 1
    into 1e-15 relative)."""
    for a, b in pairs:
        with np.errstate(all="ignore"):
            fast = fn(float(a), float(b))
            reference = fn(np.float64(a), np.float64(b))      # the NumPy function
        for got, want in zip(fast, reference):
            assert same_numbers(got, want) or want != 0.0 and \
                abs(got - want) <= 1e-12 * abs(want), \
                f"{label} at ({a}, {b}): fast path {fast}, NumPy {reference}"


@pytest.mark.parametrize("op", sorted(SCALAR_BUILDERS))
def test_the_scalar_fast_path_gives_numpys_answers_and_derivatives(op):
    x, y = sg.var("x"), sg.var("y")
    f = SCALAR_BUILDERS[op](x, y)
    fn = sg.compile([f, *sg.grad(f, [x, y], disconnected="zero")], inputs=[x, y])
    assert fn.scalar_source is not None, "this graph should have a fast path"
    assert all(type(v) is float for v in fn(0.25, 0.5))        # floats in, floats out
    assert_fast_path_is_numpy(fn, [(a, b) for a in EDGES for b in (0.5, a, -2.0)], op)


def test_the_scalar_entry_binds_and_checks_like_the_numpy_function():
    x, y = sg.var("x"), sg.var("y")
    fn = sg.compile([x * y, sg.grad(x * y, x)], inputs=[x, y])
    assert fn.scalar_source is not None
    assert fn(2.0, y=3.0) == fn(x=2.0, y=3.0) == (6.0, 3.0)
    assert fn(2, 3.0) == (6.0, 3.0)                     # an int goes through NumPy
    for call, message in [(lambda: fn(2.0), "missing argument"),
                          (lambda: fn(2.0, 3.0, 4.0), "at most 2"),
                          (lambda: fn(2.0, 3.0, x=1.0), "given twice"),
                          (lambda: fn(2.0, z=1.0), "unexpected argument 'z'"),
                          (lambda: fn(np.ones(2), 1.0), "argument 'x'")]:
        with pytest.raises(sg.SymgradError, match=message):
            call()


def test_graphs_with_arrays_or_boolean_outputs_have_no_scalar_fast_path():
    x, v = sg.var("x"), sg.var("v", shape=(2,))
    assert sg.compile(sg.sum(v * x)).scalar_source is None
    assert sg.compile(x < 1.0).scalar_source is None
    assert sg.compile(sg.logsumexp(sg.reshape(x, (1,)))).scalar_source is None


def test_inputs_named_like_the_fast_paths_own_names_are_renamed_in_it():
    math_, type_ = sg.var("math"), sg.var("type")
    fn = sg.compile(sg.sin(math_) * type_, inputs=[math_, type_])
    assert fn.scalar_source is not None
    assert fn(0.5, 2.0) == pytest.approx(2 * np.sin(0.5))
    assert fn(type=2.0, math=0.5) == pytest.approx(2 * np.sin(0.5))


# -- the entry: argument checks in front of the NumPy function --------------------------------------


def test_the_entry_passes_ready_arrays_straight_through_and_converts_the_rest():
    X, v, s = sg.var("X", shape=("n", 3)), sg.var("v", shape=(3,)), sg.var("s")
    fn = sg.compile([sg.sum(X @ v) / s, sg.grad(sg.sum(X @ v) / s, v)], inputs=[X, v, s])
    assert "X.shape[1] == 3" in fn.entry_source and "v.shape == (3,)" in fn.entry_source
    rng = np.random.default_rng(4)
    X0, v0 = rng.standard_normal((5, 3)), rng.standard_normal(3)
    expected = (np.sum(X0 @ v0) / 2.0, X0.sum(axis=0) / 2.0)
    variants = [(X0, v0, 2.0), (X0, v0, np.float64(2.0)), (X0, v0, np.array(2.0)),
                (X0.tolist(), list(v0), 2), (np.asfortranarray(X0), v0[::1], 2.0),
                (X0.astype(np.float32), v0, 2.0)]
    for arguments in variants:
        value, gradient = fn(*arguments)
        np.testing.assert_allclose(value, expected[0], rtol=1e-6)
        np.testing.assert_allclose(gradient, expected[1], rtol=1e-6)
    with np.errstate(all="ignore"):
        assert fn(X0, v0, 0.0)[0] == np.inf * np.sign(expected[0])   # NumPy's 1/0, not Python's


def test_the_entry_checks_every_named_dimension_against_its_first_binding():
    X, Y = sg.var("X", shape=("n", 3)), sg.var("Y", shape=("n", 2))
    fn = sg.compile(sg.sum(X) + sg.sum(Y), inputs=[X, Y])
    assert fn(np.ones((4, 3)), np.ones((4, 2))) == 20.0
    with pytest.raises(sg.ShapeError, match="dimension 'n' is 5"):
        fn(np.ones((4, 3)), np.ones((5, 2)))
    with pytest.raises(sg.ShapeError, match="argument 'X'"):
        fn(np.ones((4, 4)), np.ones((4, 2)))
    with pytest.raises(sg.ShapeError, match="argument 'X'"):
        fn(np.ones(4), np.ones((4, 2)))


@pytest.mark.parametrize("backend", sg.api.BACKENDS)
def test_an_index_past_a_named_dimension_names_the_argument(backend):
    x, M = sg.var("x", shape=("n",)), sg.var("M", shape=(2, "m"))
    fn = sg.compile([x[5] * x[-2], sg.grad(sg.sum(M[:, 3]), M)], inputs=[x, M], backend=backend)
    value, gradient = fn(np.arange(6.0), np.ones((2, 4)))
    assert float(value) == 20.0 and np.asarray(gradient)[:, 3].tolist() == [1.0, 1.0]
    with pytest.raises(sg.ShapeError, match="argument 'x': dimension 'n' is 5, but the formula "
                                            "takes index 5 of it"):
        fn(np.arange(5.0), np.ones((2, 4)))
    with pytest.raises(sg.ShapeError, match="argument 'M': dimension 'm' is 3, .* index 3"):
        fn(np.arange(6.0), np.ones((2, 3)))
    with pytest.raises(sg.ShapeError, match="argument 'x': dimension 'n' is 0"):
        fn([], np.ones((2, 4)))
    assert sg.show_graph(x[-2], at={"x": np.ones(2)})
    with pytest.raises(sg.ShapeError, match="index -2 of it, which needs a length of at least 2"):
        sg.show_graph(x[-2], at={"x": np.ones(1)})


def test_least_lengths_are_those_of_the_ordered_walk():
    """least_dimension_lengths walks in order only when an index needs a length: the first index
    in Graph.ancestors_in_order's order wins a tie, and the dimensions come in that order."""
    from symgrad.codegen.entry import INDEXING_OPS, least_dimension_lengths
    from symgrad.ops.shape import least_lengths

    def ordered(graph, outputs):        # the walk as it was, over every node in order
        needs = {}
        for node in graph.ancestors_in_order(outputs):
            data = graph.nodes[node]
            if data["op"] in INDEXING_OPS:
                shapes = [graph.nodes[i]["shape"] for i in data["inputs"]]
                for dim, (least, index) in least_lengths(data["op"], shapes,
                                                         data["attrs"]).items():
                    if least > needs.get(dim, (0, None))[0]:
                        needs[dim] = (least, index)
        return needs

    x, M = sg.var("x", shape=("n",)), sg.var("M", shape=(2, "m"))
    v = sg.var("v", shape=(7,))
    cases = [[x[-6] * x[5], M[1, 3]], [M[0, -4] + x[5], x[-6] * M[1, 3]], [v[3] * v[-2]],
             [sg.sum(x) * v[2]], [sg.grad(sg.sum(M[:, 3]) * x[4], M)]]
    for outputs in cases:
        graph, nodes = outputs[0].graph, [o.node for o in outputs]
        assert least_dimension_lengths(graph, nodes) == ordered(graph, nodes)
        assert list(least_dimension_lengths(graph, nodes)) == list(ordered(graph, nodes))
    assert least_dimension_lengths(v.graph, [(v[3] * v[-2]).node]) == {}
    assert least_dimension_lengths(x.graph, [(x[-6] * x[5]).node]) == {"n": (6, -6)}


# -- constants computed at compile time ---------------------------------------------------------------


def test_built_in_ops_on_constants_are_computed_once_at_compile_time():
    A = np.random.default_rng(6).standard_normal((4, 3))
    x = sg.var("x", shape=(3,))
    y = (sg.const(A).T @ sg.const(A)) @ x + sg.sum(sg.exp(sg.const(A)))
    fn = sg.compile(y, inputs=[x])
    statements = [line for line in fn.source.splitlines() if " = " in line]
    assert len(statements) == 2, fn.source          # the product with x, and the sum with it
    x0 = np.arange(3.0)
    np.testing.assert_allclose(fn(x0), A.T @ A @ x0 + np.exp(A).sum(), rtol=1e-12)
    assert sg.compile(y, inputs=[x], optimize=False)(x0) == pytest.approx(fn(x0), rel=1e-12)


def test_user_ops_on_constants_run_at_call_time():
    # a user's op may have effects (a random draw, a counter): it is never computed in advance
    def emit(ctx):
        return f"{ctx.args[0]} * 3.0"

    triple = sg.defop("triple_at_run_time", 1, lambda shapes: shapes[0], emit,
                      lambda g, out, x: [g * 3.0])
    try:
        x = sg.var("x")
        fn = sg.compile(triple(sg.const(np.arange(2.0))) * x, inputs=[x])
        assert "* 3.0" in fn.source
        np.testing.assert_allclose(fn(2.0), [0.0, 6.0])
    finally:
        del sg.OPS["triple_at_run_time"]


# -- the workspace: large intermediates in buffers kept between calls --------------------------------


def test_large_intermediates_live_in_a_workspace_the_caller_never_sees():
    from scipy.optimize import rosen_der, rosen_hess_prod
    n = memory.WORKSPACE_MIN + 3
    x, v = sg.var("x", shape=(n,)), sg.var("v", shape=(n,))
    d = x[1:] - x[:-1] ** 2
    f = sg.sum(100.0 * d ** 2 + (1.0 - x[:-1]) ** 2)
    fn = sg.compile([sg.grad(f, x), sg.hvp(f, x, v), d * 1.0], inputs=[x, v])
    assert "out=_sg_ws[" in fn.source and "_sg_give(_sg_ws)" in fn.source
    rng = np.random.default_rng(5)
    first_at = rng.uniform(-2, 2, n), rng.standard_normal(n)
    first = fn(*first_at)
    kept = [np.copy(a) for a in first]
    second_at = rng.uniform(-2, 2, n), rng.standard_normal(n)
    second = fn(*second_at)
    for a, b in zip(first, kept):           # the second call overwrote no result of the first
        assert np.array_equal(a, b)
    for (gradient, product, _), (at, direction) in [(first, first_at), (second, second_at)]:
        np.testing.assert_allclose(gradient, rosen_der(at), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(product, rosen_hess_prod(at, direction), rtol=1e-12, atol=1e-9)
    assert not any(np.shares_memory(a, b) for a in first for b in second)


def test_concurrent_calls_each_take_their_own_workspace():
    n = memory.WORKSPACE_MIN
    x = sg.var("x", shape=(n,))
    y = sg.sin(x) * x + x ** 2.0
    fn = sg.compile([sg.grad(sg.sum(y * y), x)], inputs=[x])
    points = [np.random.default_rng(k).standard_normal(n) for k in range(6)]
    want = [2 * (np.sin(p) * p + p ** 2) * (np.cos(p) * p + np.sin(p) + 2 * p) for p in points]
    failures = []

    def work(k):
        for _ in range(20):
            (got,) = fn(points[k])
            if not np.allclose(got, want[k], rtol=1e-12):
                failures.append(k)

    run_together(work, len(points))
    assert failures == []


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.data())
def test_every_intermediate_in_the_workspace_changes_no_result(data):
    """Random graphs compiled with every float64 intermediate in the workspace (WORKSPACE_MIN
    = 1) give what they give without one, call after call: to rounding, as a workspace buffer is
    C-ordered where NumPy may keep an operand's Fortran order, which changes the order of a sum."""
    with sg.use_graph():
        f, _, inputs, point = draw_case(data)
        outputs = [f, *sg.grad(f, inputs, disconnected="zero")]
        plain = sg.compile(outputs, inputs=inputs)
        # the function compile makes, its plan's workspace pass taking every intermediate
        passes = [partial(memory.workspace, minimum=1) if p is memory.workspace else p
                  for p in memory.PASSES]
        graph, nodes, variables = f.graph, [y.node for y in outputs], [x.node for x in inputs]
        source, namespace = codegen.generate(graph, nodes, variables, passes=passes)
        kept = codegen.build_function(source, namespace)
    args = point.split(point.flat)
    other = point.split(point.flat[::-1].copy())
    with np.errstate(all="ignore"):
        want, want_other = plain(*args), plain(*other)
        first = kept(*args)
        first_copy = [np.copy(a) for a in first]
        for got, expected in [(kept(*other), want_other), (first, want), (kept(*args), want)]:
            for g, w in zip(got, expected):
                np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-300, equal_nan=True)
    for a, b in zip(first, first_copy):
        assert np.array_equal(a, b, equal_nan=True)


def rosenbrock_gradient(n):
    """The compiled gradient of Rosenbrock's function of ``n`` variables, its variable, and the
    lines of its source without their comments."""
    x = sg.var("x", shape=(n,))
    d = x[1:] - x[:-1] ** 2
    fn = sg.compile(sg.grad(sg.sum(100.0 * d ** 2 + (1.0 - x[:-1]) ** 2), x), inputs=[x])
    return fn, x, [line.split("  #")[0].strip() for line in fn.source.splitlines()]


def test_a_cotangent_is_computed_straight_into_the_slice_of_its_gradient():
    from scipy.optimize import rosen_der
    fn, x, lines = rosenbrock_gradient(50)
    # x[1:]'s cotangent, 200 d, is computed first, straight into its slice (with no copy) ...
    into = [line for line in lines if re.search(r"out=\w+\[1:\]\)$", line)]
    assert len(into) == 1 and "200.0" in into[0], lines
    assert not any(re.match(r"\w+\[(1:|:-1)\] = ", line) for line in lines)
    # ... so that d dies in x[:-1]'s, which takes its buffer (x[:-1]'s cotangent is
    # -2 (1 - x[:-1]) - 400 d x[:-1] as written: the optimiser does not distribute -2 over
    # 1 - x[:-1], which cancels near the minimum): three fresh arrays in all (x[:-1] squared,
    # 1 - x[:-1] and the gradient), one fewer than hand-written NumPy
    fresh = [line for line in lines if re.match(r"\w+ = ", line) and "out=" not in line
             and not re.fullmatch(r"\w+ = \w+(\[[^\]]*\])?", line)]
    assert len(fresh) == 3, fresh
    at = np.linspace(-1.5, 2.0, 50)
    np.testing.assert_allclose(fn(at), rosen_der(at), rtol=1e-12)
    # read by anything else too, the cotangent stays an array of its own
    shared = x[:-1] * 3.0
    both = sg.compile([sg.grad(sg.sum(sg.sin(shared)), x), sg.cos(shared) * 3.0], inputs=[x])
    assert not any("out=" in line and "[" in line.split("out=")[1] for line in
                   both.source.splitlines())
    np.testing.assert_allclose(both(at)[0][:-1], 3.0 * np.cos(3.0 * at[:-1]), rtol=1e-13)
    assert both(at)[0][-1] == 0.0


def test_an_operand_dying_in_an_arithmetic_op_is_updated_in_place_under_its_name():
    from scipy.optimize import rosen_der
    fn, _, lines = rosenbrock_gradient(40)
    updates = [line for line in lines if re.fullmatch(r"\w+ [-+*/]= \S+", line)]
    assert len(updates) >= 2, fn.source
    for line in updates:            # the name updated is one assigned earlier, never released
        name = line.split()[0]
        first = lines.index(line)
        assert any(earlier.startswith(f"{name} = ") for earlier in lines[:first])
        assert not any(re.search(rf"\bdel\b.*\b{name}\b", earlier) for earlier in lines[:first])
    at = np.linspace(-1.5, 2.0, 40)
    np.testing.assert_allclose(fn(at), rosen_der(at), rtol=1e-12)
    # a subtraction's or a division's right operand takes the result with out=, not an update
    a, b = sg.var("a", shape=(8,)), sg.var("b", shape=(8,))
    fn = sg.compile([sg.cos((a - sg.exp(b)) / (b / sg.sin(a)))], inputs=[a, b])
    assert re.search(r"np\.subtract\(a, (\w+), out=\1\)", fn.source), fn.source
    assert re.search(r"np\.divide\(b, (\w+), out=\1\)", fn.source), fn.source
    va, vb = np.linspace(-1, 1, 8), np.linspace(2, 0.5, 8)
    np.testing.assert_allclose(fn(va, vb)[0], np.cos((va - np.exp(vb)) / (vb / np.sin(va))),
                               rtol=1e-15)


@pytest.mark.parametrize("shape, index", [
    ((1000,), np.s_[1:]), ((1000,), np.s_[:-1]), ((1000,), np.s_[3:7]), ((1000,), np.s_[5]),
    ((30_000,), np.s_[2:-3]), ((30_000,), np.s_[-1]), ((200, 100), np.s_[:, 1:]),
    ((200, 100), np.s_[1:3]), ((200, 100), np.s_[None, 4, :]), ((200, 100), np.s_[:, ::2]),
])
def test_a_slicing_gradient_is_zero_wherever_the_slice_does_not_reach(shape, index):
    # np.empty may hand back the memory of the arrays of nan freed just before: an entry left
    # unzeroed shows as nan
    x = sg.var("x", shape=shape)
    fn = sg.compile(sg.grad(sg.sum(sg.sin(x[index]) * 3.0), x), inputs=[x])
    at = np.linspace(-1.0, 1.0, math.prod(shape)).reshape(shape)
    want = np.zeros(shape)
    want[index] = 3.0 * np.cos(at[index])
    for _ in range(3):
        del [np.full(shape, np.nan) for _ in range(4)][:]
        np.testing.assert_array_equal(fn(at), want)
    if math.prod(shape) >= 16384 and index != np.s_[:, ::2]:
        assert "np.empty(" in fn.source and "np.zeros(" not in fn.source, fn.source


def test_the_scalar_fast_path_splits_into_cases_at_a_step_and_keeps_numpys_answers():
    x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
    textbook = (x + y) * sg.maximum(y, z)
    fn = sg.compile([textbook, *sg.grad(textbook, [x, y, z])], inputs=[x, y, z])
    lines = [line.split("#")[0].strip() for line in fn.scalar_source.splitlines()]
    # the step's operand is y - z: the cases compare y with z, before the max is computed
    assert "if y > z:" in lines and "if y < z:" in lines
    # where y > z the step is 1 and max(y, z) is y: d/dy is (x + y) + y with no multiplication
    # by the step and no conditional expression for the max
    positive = lines[lines.index("if y > z:") + 1:lines.index("if y < z:")]
    assert not any("1.0" in line or " if " in line for line in positive), positive
    assert positive[-1] == "return t0 * y, y, t0 + y, t0 * 0.0", positive
    assert fn(-2.0, 5.0, -4.0) == (15.0, 5.0, 8.0, 0.0)
    # several steps (only the first splits) on a grid with ties, signed zeros, inf and nan
    mixed = sg.relu(x - z) * sg.abs(y) + sg.minimum(x, y * z)
    both = sg.compile([mixed, *sg.grad(mixed, [x, y, z])], inputs=[x, y, z])
    values = [-np.inf, -2.0, -0.0, 0.0, 0.5, 2.0, np.inf, np.nan]
    for a, b, c in itertools.product(values, repeat=3):
        with np.errstate(all="ignore"):
            fast = both(a, b, c)
            reference = both(np.float64(a), np.float64(b), np.float64(c))
        assert all(same_numbers(got, want) for got, want in zip(fast, reference)), \
            f"at {(a, b, c)}: fast path {fast}, NumPy {reference}"


def test_review_regressions_in_emission():
    # a constant the optimiser leaves (sigmoid of a number) before the step of the fast path
    x, y = sg.var("x"), sg.var("y")
    f = sg.maximum(x * sg.sigmoid(sg.const(0.3)), y)
    fn = sg.compile([f, *sg.grad(f, [x, y])], inputs=[x, y])
    for a, b in [(2.0, 1.0), (-2.0, 1.0), (1.0, 1.0 / (1.0 + math.exp(-0.3)))]:
        assert all(same_numbers(p, q) for p, q in zip(fn(a, b), fn(np.float64(a), np.float64(b))))
    # a mask squared is float64, as ** 2.0 makes it
    b = sg.var("b", shape=(3,))
    mask = (b > 0.0) ** 2.0
    fn = sg.compile([sg.sum(mask * 0.5 + b), mask], inputs=[b])
    total, squared = fn(np.array([-1.0, 2.0, 3.0]))
    assert total == 5.0 and squared.dtype == np.float64
    # a literal the code generator folded is not subscripted as a name
    from symgrad.ops.shape import expand_dims
    v = sg.var("v", shape=(3,))
    truth = sg.const(1.0) > 0.0
    fn = sg.compile([expand_dims(truth, 0) * v, truth[None] * v], inputs=[v])
    assert all(np.array_equal(r, np.ones(3)) for r in fn(np.ones(3)))


def test_compile_returns_the_generated_entry_itself():
    # no object between the caller and the entry: the entry bound to its assembly (what it
    # pickles as), carrying its attributes
    x, v = sg.var("x"), sg.var("v", shape=(3,))
    scalar = sg.compile([x * x, sg.grad(x * x, x)], inputs=[x])
    arrays = sg.compile(sg.grad(sg.sum(v * v), v), inputs=[v])
    # a function name the generated entries use themselves: the entry hands every call on
    plain = sg.compile(sg.grad(sg.sum(v * v), v), inputs=[v], name="type")
    for fn, source in [(scalar, scalar.scalar_source), (arrays, arrays.entry_source),
                       (plain, None)]:
        assert isinstance(fn, types.MethodType) and isinstance(fn.__func__, types.FunctionType)
        assert isinstance(fn, sg.CompiledFunction)
        assert fn.entry_source == source and fn.source.startswith("def ")
        assert fn.input_names == [e.name for e in fn_inputs(fn, x, v)]
    assert scalar(3.0) == (9.0, 6.0) and type(scalar(3.0)[0]) is float
    np.testing.assert_array_equal(arrays(np.arange(3.0)), [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(plain(v=np.arange(3.0)), [0.0, 2.0, 4.0])
    assert plain.__name__ == "type" and plain.scalar_source is None
    # help() and Jupyter show the inputs, not the entry's own parameters
    assert str(inspect.signature(scalar)) == "(x)" and str(inspect.signature(plain)) == "(v)"
    with pytest.raises(sg.SymgradError, match="unexpected argument 'w'"):
        plain(np.arange(3.0), w=1.0)
    with pytest.raises(sg.ShapeError, match="argument 'v'"):
        plain(np.arange(4.0))
    assert not isinstance(lambda: None, sg.CompiledFunction)


def fn_inputs(fn, x, v):
    return [x] if fn.input_names == ["x"] else [v]


def assignment(target, template, operands, comment=""):
    """A statement of the scalar fast path as its renderer records it: ``target`` assigned
    ``template`` with its fields {k} reading variable ``operands[k]``."""
    from symgrad.codegen.scalar import _Expression, _Statement
    return _Statement(f"{target} = ", _Expression.parsed(template, operands), comment, target)


def returning(template, operands):
    from symgrad.codegen.scalar import _Expression, _Statement
    return _Statement("return ", _Expression.parsed(template, operands))


def condition(template, operands):
    from symgrad.codegen.scalar import _Expression, _Statement
    return _Statement("if ", _Expression.parsed(template, operands), ":")


def random_program(rng, names, length):
    """Straight-line statements as the scalar fast path records them, each a pure expression of
    earlier names, ending in a return of a few of them."""
    forms = ["{0} + {1}", "{0} - {1}", "{0} * {1}", "{0} / {1}", "-{0}", "{0} ** 2.0",
             "math.sin({0})", "({0} if {0} > {1} else {1})", "{0} - 0.5 * {1}",
             "float({0} > {1}) * {1}", "math.pow({0}, 3.0)", "{0}"]
    statements, known = [], list(names)
    for k in range(length):
        operands = [known[i] for i in rng.integers(0, len(known), 2)]
        statements.append(assignment(f"t{k}", forms[rng.integers(len(forms))], operands,
                                     "  # grad of t0" if rng.random() < 0.3 else ""))
        known.append(f"t{k}")
    returned = [known[i] for i in rng.integers(len(names), len(known), 3)]
    return statements + [returning("{0}, {1}, {2}", returned)]


def test_tidying_the_fast_path_keeps_every_value_bit_for_bit():
    # dropped assignments nothing reads and inlined one-read temporaries compute the same
    # floats in the same order: operator precedence is kept by the parentheses it adds
    from symgrad.codegen.scalar import _lines, _tidy
    rng = np.random.default_rng(7)
    for trial in range(300):
        program = random_program(rng, ["x", "y"], int(rng.integers(1, 12)))
        written = _lines(program)
        tidied = _tidy([], [program], [])
        assert len(tidied) <= len(written)
        results = []
        for body in (written, tidied):
            namespace = {"math": math}
            exec("def f(x, y):\n" + "".join(f"    {line}\n" for line in body), namespace)
            with np.errstate(all="ignore"):
                try:
                    results.append(namespace["f"](0.75, -1.25))
                except (ArithmeticError, ValueError) as error:
                    results.append(type(error))
        if isinstance(results[0], type):
            # a statement that raises may have been dropped as unread: the fast path then
            # answers where it would have handed the call to NumPy, which answers the same
            assert results[1] == results[0] or not isinstance(results[1], type)
            continue
        assert all(same_numbers(a, b) for a, b in zip(*results)), (written, tidied)
    # a temporary read once is written where it is read; one read twice stays
    program = [assignment("t0", "{0} - {1}", ["x", "y"]), assignment("t1", "{0} * 2.0", ["t0"]),
               assignment("t2", "{0} + {1}", ["x", "y"]), returning("{0}, {1} + {0}", ["t1", "t2"])]
    assert _tidy([], [program], []) == ["t1 = (x - y) * 2.0", "return t1, (x + y) + t1"]
    # a prefix name read in a case is not inlined into it; the general case may read its own
    prefix = [assignment("t0", "{0} * {1}", ["x", "y"]), assignment("t9", "{0} - {1}", ["x", "y"])]
    cases = [[returning("{0},", ["t0"])],
             [assignment("t1", "{0} + 1.0", ["t0"]), returning("{0},", ["t1"])]]
    assert _tidy(prefix, cases, [condition("{0} > {1}", ["x", "y"])]) == [
        "t0 = x * y", "if x > y:", "    return t0,", "return t0 + 1.0,"]


@pytest.mark.parametrize("template, reader, want", [
    # set apart (a call argument, a tuple item, a conversion's operand): no parentheses
    ("{0} - {1}", "math.sin({0})", "return math.sin(x - y),"),
    ("{0} > {1}", "float({0}) * 2.0", "return float(x > y) * 2.0,"),
    ("{0} - {1}", "math.pow({0}, 3.0)", "return math.pow(x - y, 3.0),"),
    # next to an operator: parenthesised, so that -x squared stays (-x) ** 2.0
    ("-{0}", "{0} ** 2.0", "return (-x) ** 2.0,"),
    ("{0} - {1}", "{1} + {0}", "return y + (x - y),"),
    ("{0} + {1}", "({0} if {1} > 0.0 else 0.0)", "return ((x + y) if y > 0.0 else 0.0),"),
    # binding tighter than any operator: no parentheses
    ("math.exp({0})", "{0} * 2.0", "return math.exp(x) * 2.0,"),
    ("({0} if {0} > {1} else {1})", "-{0}", "return -(x if x > y else y),"),
    ("1.0", "{0} * {1}", "return 1.0 * y,"),
])
def test_an_inlined_expression_is_written_by_the_readers_emission(template, reader, want):
    # where the temporary is read, and whether its expression needs parentheses there, come from
    # the emissions' templates, not from the text around the read
    from symgrad.codegen.scalar import _tidy
    program = [assignment("t0", template, ["x", "y"]), returning(reader + ",", ["t0", "y"])]
    assert _tidy([], [program], []) == [want]
    # a read inside an expression written bare takes the side of the place that expression is
    # in; inside parentheses it is set apart on the side of each parenthesis
    program = [assignment("t0", "{0} - {1}", ["x", "y"]), assignment("t1", "math.sin({0})", ["t0"]),
               returning("{0} * 2.0, {1}", ["t1", "y"])]
    assert _tidy([], [program], []) == ["return math.sin(x - y) * 2.0, y"]
    program = [assignment("t0", "{0} * {1}", ["x", "y"]), assignment("t1", "{0} + 1.0", ["t0"]),
               returning("-{0}, {1}", ["t1", "y"])]
    assert _tidy([], [program], []) == ["return -((x * y) + 1.0), y"]
    program = [assignment("t0", "{0} * {1}", ["x", "y"]), assignment("t1", "{0}", ["t0"]),
               returning("{0}, {1}", ["t1", "y"])]
    assert _tidy([], [program], []) == ["return x * y, y"]


def test_an_emission_whose_reads_the_fast_path_cannot_see_is_kept_as_written():
    # an emitter deciding on its operand's name, or writing statements of its own: nothing is
    # inlined into what it wrote (the variables it reads are not where a template would say)
    from symgrad.ops.core import apply, defop

    def decides_on_the_name(ctx):
        operand = ctx.args[0]
        return f"{operand} * 2.0" if operand.isidentifier() else f"2.0 * {operand}"

    def two_statements(ctx):
        helper = ctx.temp("h")
        return [f"{helper} = {ctx.args[0]} * 3.0", f"{ctx.out} = {helper} + 1.0"]

    defop("named_twice", 1, lambda shapes: shapes[0], "{0} * 2.0", lambda g, out, x: [g * 2.0],
          scalar=decides_on_the_name)
    defop("in_statements", 1, lambda shapes: shapes[0], "{0} * 3.0 + 1.0",
          lambda g, out, x: [g * 3.0], scalar=two_statements)
    try:
        x, y = sg.var("x"), sg.var("y")
        f = apply("in_statements", apply("named_twice", x + y) - y)
        fn = sg.compile([f, *sg.grad(f, [x, y])], inputs=[x, y])
        lines = [line.strip() for line in fn.scalar_source.splitlines()]
        # the opaque expression is itself inlined, parenthesised, into its reader
        assert lines[3:7] == ["t0 = x + y", "t2 = (t0 * 2.0) - y", "t3_h = t2 * 3.0",
                              "t3 = t3_h + 1.0"], fn.scalar_source
        assert fn(0.5, 0.25) == (4.75, 6.0, 3.0) and type(fn(0.5, 0.25)[0]) is float
    finally:
        del sg.OPS["named_twice"], sg.OPS["in_statements"]


def test_every_ordered_op_is_what_it_declares_on_each_side():
    # Emission.ordered lets a case of the fast path replace an op by an operand or a number: checked
    # here against the NumPy function, on random operands of either order
    from symgrad.ops import OPS
    from symgrad.ops.elementwise import heaviside
    builders = {"maximum": sg.maximum, "minimum": sg.minimum, "relu": sg.relu,
                "absolute": sg.abs, "sign": sg.sign, "leaky_relu": sg.leaky_relu,
                "heaviside": heaviside}
    assert {name for name, op in OPS.items() if op.emit.ordered is not None} == set(builders)
    rng = np.random.default_rng(11)
    x, y = sg.var("x"), sg.var("y")
    for name, build in builders.items():
        binary = OPS[name].arity == 2
        fn = sg.compile(build(x, y) if binary else build(x), inputs=[x, y])
        for a, b in rng.uniform(-3.0, 3.0, (40, 2)):
            first_greater = a > b if binary else a > 0.0
            declared = OPS[name].emit.ordered[0 if first_greater else 1]
            if declared is None:
                continue
            want = declared if isinstance(declared, float) else (a, b)[declared]
            assert fn(np.float64(a), np.float64(b)) == want, (name, a, b)


def test_mean_is_numpys_bit_for_bit_and_a_count_of_a_mask_is_a_float():
    X = sg.var("X", shape=("n", 4))
    at = np.random.default_rng(5).standard_normal((7, 4)) * 1e3
    for axis, keepdims in [(None, False), (0, False), (1, True), ((0, 1), True)]:
        fn = sg.compile(sg.mean(X, axis=axis, keepdims=keepdims), inputs=[X])
        assert "np.mean" not in fn.source
        got, want = fn(at), np.mean(at, axis=axis, keepdims=keepdims)
        assert got.shape == want.shape and np.array_equal(got, want), (axis, keepdims)
    b = sg.var("b", shape=(3,))
    for count in (sg.sum(b > 0.0), sg.mean(b > 0.0)):
        for backend in ("numpy", "array_api"):
            value = sg.compile(count, inputs=[b], backend=backend)(np.array([1.0, 2.0, -1.0]))
            assert value.dtype == np.float64
            assert value == (2.0 if count.op == "sum" else 2.0 / 3.0)
    # np.mean divides a float32 sum in float64: past 2**24 entries a float32 count would round
    n = 2 ** 24 + 1
    at32 = np.full(n, 3.0, np.float32)
    at32[::7] = 1.7
    fn = sg.compile(sg.mean(sg.var("X32", shape=(n,), dtype="float32")))
    assert fn(at32) == np.mean(at32) and fn(at32).dtype == np.float32


def test_a_folded_transpose_of_a_constant_is_a_view_not_a_copy():
    # the Hessian of logsumexp(A x) reads A.T (A.T * p): a view of the one constant matrix the
    # function holds, as a hand writes it, not a second copy of A
    A = np.random.default_rng(2).standard_normal((64, 32)) / 8.0
    x = sg.var("x", shape=(32,))
    fn = sg.compile(sg.hessian(sg.logsumexp(sg.const(A) @ x), x), inputs=[x])
    held = [v for v in fn._function.__globals__.values()
            if isinstance(v, np.ndarray) and v.size == A.size]
    assert len(held) == 2 and np.shares_memory(*held) and ".T" not in fn.source, fn.source
    at = np.linspace(-1.0, 1.0, 32)
    p = np.exp(A @ at - np.max(A @ at))
    p /= p.sum()
    np.testing.assert_allclose(fn(at), A.T @ (np.diag(p) - np.outer(p, p)) @ A, rtol=1e-12,
                               atol=1e-15)


def test_arithmetic_on_masks_is_floating_as_the_graph_says():
    # NumPy adds two masks as booleans (True + True is True), refuses to subtract or negate
    # them and takes sin of a mask in float16; Python squares True into the int 1
    x, y = sg.var("x"), sg.var("y")
    v = sg.var("v", shape=(4,))
    at = np.array([1.0, -1.0, 0.0, 2.0])
    m, n = (at > 0.0).astype(float), (at < 1.5).astype(float)
    array_cases = [((v > 0.0) + (v < 1.5), m + n), ((v > 0.0) - (v < 1.5), m - n),
                   (-(v > 0.0), -m), ((v > 0.0) * (v < 1.5), m * n), (sg.sin(v > 0.0), np.sin(m)),
                   ((v > 0.0) @ (v < 1.5), m @ n)]
    for (expression, want), backend in itertools.product(array_cases, sg.api.BACKENDS):
        got = np.asarray(sg.compile(expression, inputs=[v], backend=backend)(at))
        assert got.dtype == np.float64 and np.array_equal(got, want), (expression, backend, got)
    scalar_cases = [((x > y) + (y < x), 2.0), ((x > y) - (y > x), 1.0), (-(x > y), -1.0),
                    ((x > y) ** 2.0, 1.0), ((x > y) * (x > 0.0) * 3.0, 3.0)]
    for expression, want in scalar_cases:
        fn = sg.compile(expression, inputs=[x, y])
        fast, numpy = fn(3.0, 2.0), fn(np.float64(3.0), np.float64(2.0))
        assert type(fast) is float and fast == want and numpy == want, (expression, fast, numpy)
        assert numpy.dtype == np.float64


def test_review_regressions_in_folding_and_masks():
    # a constant expression on a transposed constant is still folded whole (c.T @ c)
    rng = np.random.default_rng(4)
    C = rng.standard_normal((60, 40))
    v = sg.var("v", shape=(40,))
    c = sg.const(C)
    fn = sg.compile(sg.sum(v * ((c.T @ c) @ v)), inputs=[v])
    assert fn.source.count(" @ ") == 1, fn.source
    at = rng.standard_normal(40)
    np.testing.assert_allclose(fn(at), at @ (C.T @ C) @ at, rtol=1e-12)
    # a float32 constant times a float64 array is float64, times a float64 number (weak, as
    # NumPy's Python numbers) float32, as the graph says
    c32 = sg.const(np.full((40, 30), 0.1, np.float32))
    for three, dtype in ((sg.const(np.full(1, 3.0)), np.float64),
                         (sg.const(np.float64(3.0)), np.float32)):
        total = sg.sum(c32.T * three)
        assert total.dtype == np.dtype(dtype).name
        got = sg.compile(total, inputs=[v])(at)
        assert got.dtype == dtype and abs(got - 360.0) < 1e-4
    # a case of the fast path that picks a mask made a float (maximum(x, y > 0))
    x, y = sg.var("x"), sg.var("y")
    f = sg.maximum(x, y > 0.0)
    fn = sg.compile([f, sg.grad(f, x)], inputs=[x, y])
    for a, b in [(-1.0, 1.0), (2.0, 1.0), (0.5, -1.0), (1.0, 1.0)]:
        fast, numpy = fn(a, b), fn(np.float64(a), np.float64(b))
        assert fast == numpy and all(type(r) is float for r in fast), (a, b, fast, numpy)


def test_a_count_taken_at_call_time_is_a_numpy_float():
    # an axis's length is a 0-d value like any other: an expand_dims of it indexes it (t[None]),
    # which a Python float refuses (found by the long property profile: a mean over a batch,
    # summed back through a broadcast, then expanded)
    from symgrad.ops import apply
    from symgrad.ops.shape import expand_dims
    x = sg.var("x", shape=("n", 3))
    count = apply("axis_size", x, axis=(0,))
    fn = sg.compile([expand_dims(2.0 / count, 0), count], inputs=[x])
    expanded, length = fn(np.ones((4, 3)))
    np.testing.assert_array_equal(expanded, [0.5])
    assert isinstance(length, np.float64) and length == 4.0


def test_a_count_taken_at_call_time_keeps_a_float32_gradient_float32():
    # the count is a NumPy scalar of the graph's dtype: a float64 one would promote the mean's
    # gradient (g / count) to float64 under NumPy's promotion rules
    x = sg.var("x", shape=("n", 3), dtype="float32")
    f = sg.mean(sg.sin(x))
    value, gradient = sg.compile([f, sg.grad(f, x)], inputs=[x])(np.ones((4, 3), np.float32))
    assert value.dtype == gradient.dtype == np.float32
    np.testing.assert_allclose(gradient, np.full((4, 3), np.cos(1.0) / 12.0), rtol=1e-6)


def relu_backward_reference(x, g):
    """g times relu's derivative under symgrad's convention (PyTorch's and JAX's), by NumPy's
    unit step: 1 above 0, 0 below and at a tie (either zero), nan at nan."""
    return g * np.heaviside(x, 0.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_relu_derivative_read_by_a_product_is_a_boolean_mask_with_exact_ties(dtype):
    x, g = sg.var("x", shape=(4, 5), dtype=dtype), sg.var("g", shape=(4, 5), dtype=dtype)
    fn = sg.compile(sg.vjp(sg.relu(x), x, g), inputs=[x, g])
    # the mask, as a hand writes g *= x > 0; the floating step only when an entry is nan.
    # Not with float32 inputs, where the graph's dtypes are not always the run time's
    masked = "x > 0.0" in fn.source and "np.count_nonzero" in fn.source
    assert masked == (dtype == "float64"), fn.source
    rng = np.random.default_rng(3)
    at, cotangent = rng.standard_normal((2, 4, 5)).astype(dtype)
    got = fn(at, cotangent)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, relu_backward_reference(at, cotangent))
    for special in ([0.0], [-0.0], [np.nan], [0.0, np.nan, -0.0, np.inf, -np.inf]):
        tied = at.copy()
        tied.flat[:len(special)] = special
        got = fn(tied, cotangent)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, relu_backward_reference(tied, cotangent))


def test_a_step_is_floating_wherever_it_is_read():
    x = sg.var("x", shape=(3,))
    at = np.array([-1.0, 0.0, 2.0])
    for outputs, want in (
            # an output: the caller gets the step's floats
            (lambda: sg.grad(sg.sum(sg.relu(x)), x), [0.0, 0.0, 1.0]),
            # a product of two steps (clip's two kinks) multiplies floats, not booleans
            (lambda: sg.grad(sg.sum(sg.minimum(sg.maximum(x, -1.0), 1.5)), x), [0.5, 1.0, 0.0]),
            # a step times a number is a mask, made floating by the product
            (lambda: sg.grad(sg.sum(sg.minimum(x, 0.0) * 3.0), x), [3.0, 1.5, 0.0])):
        with sg.use_graph():
            x = sg.var("x", shape=(3,))
            got = sg.compile(outputs(), inputs=[x])(at)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)


def test_a_gradient_comes_out_in_backpropagations_order():
    # [loss, dW1, dW2]: the loss, then dW2 (its cotangent is made first), then dW1, so each
    # layer's cotangent dies before the next is made; the caller gets the order asked for
    rng = np.random.default_rng(0)
    X = sg.var("X", shape=(6, 4))
    W1, W2 = sg.var("W1", shape=(4, 5)), sg.var("W2", shape=(5, 2))
    loss = sg.sum(sg.tanh(sg.tanh(X @ W1) @ W2) ** 2)
    fn = sg.compile([loss, *sg.grad(loss, [W1, W2])], inputs=[X, W1, W2])
    lines = fn.source.splitlines()
    assigned = [next(k for k, line in enumerate(lines) if line.lstrip().startswith(name + " "))
                for name in ("d_out_d_W2", "d_out_d_W1")]
    assert assigned == sorted(assigned), fn.source
    args = [rng.standard_normal(v.shape) for v in (X, W1, W2)]
    value, dW1, dW2 = fn(*args)
    assert dW1.shape == (4, 5) and dW2.shape == (5, 2)
    # central differences, entry by entry
    f = sg.compile(loss, inputs=[X, W1, W2])
    for k, gradient in ((1, dW1), (2, dW2)):
        for index in np.ndindex(gradient.shape):
            up, down = [a.copy() for a in args], [a.copy() for a in args]
            up[k][index] += 1e-6
            down[k][index] -= 1e-6
            assert abs((f(*up) - f(*down)) / 2e-6 - gradient[index]) < 1e-6


@pytest.mark.parametrize("shape", [(700, 300), (300_001,)])
def test_a_large_sum_with_a_term_of_inputs_alone_is_made_in_blocks_of_rows(shape):
    # shapes whose rows do not divide into whole blocks: the last block is shorter
    rng = np.random.default_rng(4)
    x_, y_, w_ = (rng.standard_normal(shape) for _ in range(3))
    forms = {   # the term on either side of a sum, subtracted, and an expression reading it
        "g + c w": (lambda g, w: g + 2e-4 * w, lambda g, w: g + 2e-4 * w, True),
        "c w + g": (lambda g, w: 2e-4 * w + g, lambda g, w: 2e-4 * w + g, True),
        "g - w^2": (lambda g, w: g - w ** 2, lambda g, w: g - np.square(w), True),
        "c w - g": (lambda g, w: 2e-4 * w - g, lambda g, w: 2e-4 * w - g, False)}
    for name, (build, reference, in_blocks) in forms.items():
        with sg.use_graph():
            x, y, w = (sg.var(v, shape=shape) for v in ("x", "y", "w"))
            fn = sg.compile(build(sg.sin(x) * y, w), inputs=[x, y, w])
        assert ("in blocks of rows" in fn.source) == in_blocks, (name, fn.source)
        first = fn(x_, y_, w_)
        # element for element the same operations as NumPy's whole-array ones
        np.testing.assert_array_equal(first, reference(np.sin(x_) * y_, w_), err_msg=name)
        kept = first.copy()
        second = fn(x_, 2.0 * y_, w_)      # a later call leaves the first result alone
        np.testing.assert_array_equal(first, kept, err_msg=name)
        np.testing.assert_array_equal(second, reference(np.sin(x_) * 2.0 * y_, w_), err_msg=name)


def test_a_sum_in_blocks_names_its_loop_apart_and_writes_a_new_array_when_it_cannot_take_one():
    rng = np.random.default_rng(5)
    a_, b_ = rng.standard_normal((2, 600, 400))
    # inputs named like the loop's variables
    rows, block = sg.var("rows", shape=(600, 400)), sg.var("block", shape=(600, 400))
    fn = sg.compile(sg.tanh(rows) + 3.0 * block, inputs=[rows, block])
    assert "in blocks of rows" in fn.source
    np.testing.assert_array_equal(fn(a_, b_), np.tanh(a_) + 3.0 * b_)
    # the other operand a view (a transpose) of an array: the blocks go into a new array
    s = sg.var("s", shape=(400, 600))
    fn = sg.compile(sg.transpose(sg.tanh(rows)) + 0.5 * s, inputs=[rows, s])
    assert "in blocks of rows" in fn.source and "np.empty((400, 600))" in fn.source, fn.source
    np.testing.assert_array_equal(fn(a_, b_.T.copy()), np.tanh(a_).T + 0.5 * b_.T)
    # an operand broadcast against the term (a bias row) has no rows of its own: a whole sum
    bias = sg.var("bias", shape=(400,))
    fn = sg.compile(sg.tanh(bias) + 0.5 * block, inputs=[bias, block])
    assert "in blocks of rows" not in fn.source, fn.source
    np.testing.assert_array_equal(fn(a_[0], b_), np.tanh(a_[0]) + 0.5 * b_)


def test_review_regressions_of_masks_and_sums_in_blocks():
    # a float32 step times a number stays float32 whatever the data (a mask times a Python
    # float would be float64 unless an entry is 0 or nan)
    x = sg.var("x", shape=(4, 3), dtype="float32")
    fn = sg.compile(sg.grad(sg.sum(sg.relu(x) * 2.0), x), inputs=[x])
    for at in (np.ones((4, 3), np.float32), np.zeros((4, 3), np.float32)):
        assert fn(at).dtype == np.float32
        np.testing.assert_array_equal(fn(at), np.where(at > 0, 2.0, 0.0))
    # a float64 step times a float32 value stays float64, as the graph says
    with sg.use_graph():
        x, w = sg.var("x", shape=(4, 3)), sg.var("w", shape=(4, 3), dtype="float32")
        fn = sg.compile(sg.grad(sg.sum(sg.relu(x) * w), x), inputs=[x, w])
    got = fn(np.ones((4, 3)), np.full((4, 3), 3.0, np.float32))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, np.full((4, 3), 3.0))
    # a sum in blocks whose term reads a constant of the sum's shape, and one whose other
    # operand is computed at compile time
    shape = (600, 400)
    W, A = sg.var("W", shape=shape), sg.var("A", shape=shape)
    rng = np.random.default_rng(6)
    w_, a_ = rng.standard_normal((2, *shape))
    fn = sg.compile(sg.sin(A) + W * sg.const(np.full(shape, 2.0)), inputs=[W, A])
    np.testing.assert_array_equal(fn(w_, a_), np.sin(a_) + w_ * 2.0)
    fn = sg.compile(sg.sin(sg.const(np.ones(shape))) + W * 3.0, inputs=[W])
    np.testing.assert_array_equal(fn(w_), np.sin(np.ones(shape)) + w_ * 3.0)


def test_a_float32_gradient_seeded_by_a_number_stays_float32():
    # the seed of a sum's gradient is a number broadcast to the operand's shape: written as a
    # Python literal it broadcast as float64 (x - x cancels: only seeds remain)
    for shape, at in (((3,), np.ones(3, np.float32)), (("k",), np.ones(4, np.float32))):
        with sg.use_graph():
            x = sg.var("x", shape=shape, dtype="float32")
            for gradient, want in ((sg.grad(sg.sum(x - x), x), 0.0),
                                   (sg.grad(sg.sum(x * 2.0), x), 2.0)):
                for optimize in (True, False):
                    got = sg.compile(gradient, inputs=[x], optimize=optimize)(at)
                    assert got.dtype == np.float32, (shape, want, optimize)
                    np.testing.assert_array_equal(got, np.full(at.shape, want, np.float32))


# -- the generated sources in linecache ------------------------------------------------------------


def symgrad_sources():
    return {name for name in linecache.cache if name.startswith("<symgrad-")}


def test_a_traceback_from_a_compiled_function_shows_its_generated_lines():
    A, v = sg.var("A", shape=("m", "n")), sg.var("v", shape=("n",))
    fn = sg.compile(sg.sum(sg.sin(A @ v)), inputs=[A, v])
    with pytest.raises(ValueError) as raised:
        fn._function(np.ones((2, 3)), np.ones(4))      # past the argument checks, into NumPy
    text = "".join(traceback.format_exception(raised.value))
    assert "t0 = A @ v" in fn.source and "t0 = A @ v" in text


def test_collected_functions_leave_no_source_in_linecache():
    x = sg.var("x")
    expression = sg.sin(x) * x + 2.0
    gc.collect()
    before = symgrad_sources()
    kept = sg.compile(expression, inputs=[x])
    for _ in range(300):
        sg.compile(expression, inputs=[x])(1.5)
    gc.collect()
    left = symgrad_sources() - before
    assert left and left == {kept._function.__code__.co_filename,
                             kept.__code__.co_filename}       # the live one keeps its lines
    del kept
    gc.collect()
    assert symgrad_sources() <= before


@pytest.mark.parametrize("backend", ["numpy", "numba", "array_api"])
@pytest.mark.parametrize("optimize", [False, True])
@pytest.mark.parametrize("shape", [(), (100,)])
def test_an_array_read_beside_its_alias_is_the_one_updated_in_place(shape, optimize, backend):
    """stop_gradient(q) (and a custom_gradient of q) is q's own array under q's name: a product
    of the two, taking that array in place, carries on as q's array, not as the alias's (q's
    name was released under it: UnboundLocalError)."""
    if backend not in sg.api.BACKENDS:
        pytest.skip(f"backend {backend!r} is not available")
    x, v = sg.var("x", shape=shape), sg.var("v", shape=shape)
    q = sg.sin(x)
    passed_on = sg.custom_gradient(q, [q], lambda g, out, q: [g])
    square, frozen = sg.stop_gradient(q) * q, sg.sum(sg.stop_gradient(q) * q)
    outputs = [sg.exp(square), sg.exp(q - sg.stop_gradient(q)), sg.exp(passed_on * q) * 2.0,
               sg.grad(frozen, x), sg.hvp(frozen, x, v)]
    if shape:
        outputs.append(sg.jacobian(sg.exp(square), x))
    at = np.linspace(-3.0, 3.0, math.prod(shape)).reshape(shape)
    direction = np.cos(7.0 * at)
    # one function each: q must die at the product, not live on for another output
    got = [sg.compile(output, inputs=[x, v], optimize=optimize, backend=backend)(at, direction)
           for output in outputs]
    # closed forms: d/dx [q0 sin x] = q0 cos x at q0 = sin x, and q0 stays frozen in the
    # second derivative, -q0 sin x (not cos 2x)
    want = [np.exp(np.sin(at) ** 2), np.ones(shape), 2.0 * np.exp(np.sin(at) ** 2),
            np.sin(at) * np.cos(at), -np.sin(at) ** 2 * direction]
    if shape:
        want.append(np.diag(np.exp(np.sin(at) ** 2) * np.sin(at) * np.cos(at)))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)
    # the gradient against central differences of sum(sin(x0) sin(x)) with x0 held
    h = 1e-6
    frozen_sum = lambda x: np.sum(np.sin(at) * np.sin(x))     # noqa: E731
    steps = np.eye(max(at.size, 1)).reshape((-1, *shape)) * h
    differences = np.array([(frozen_sum(at + s) - frozen_sum(at - s)) / (2 * h) for s in steps])
    np.testing.assert_allclose(got[3], differences.reshape(shape), rtol=1e-7, atol=1e-8)


def test_one_folding_limit_for_building_and_compiling():
    # an op on constants alone is computed ahead of time up to FOLD_LIMIT entries, whether
    # while the expression is built (element-wise: the node becomes a constant) or when the
    # function is compiled (the constant's transpose); past it the statement stays in the code
    from symgrad.ops.core import FOLD_LIMIT
    x = sg.var("x")
    for size, folded in ((FOLD_LIMIT, True), (FOLD_LIMIT + 1, False)):
        c = sg.const(np.linspace(0.0, 1.0, size))
        built = c * 2.0
        assert (built.op == "const") is folded
        fn = sg.compile(sg.sum(c.reshape((1, size)).T * 2.0 * x), inputs=[x])
        assert ("reshape" in fn.source or ".T" in fn.source) is not folded, fn.source
        assert fn(1.5) == pytest.approx(np.sum(np.linspace(0.0, 1.0, size)) * 3.0, rel=1e-12)


def test_constants_read_only_by_folding_stay_out_of_the_namespace():
    # the Hessian of logsumexp(A x) folds A.T, eye and products of them: the function keeps
    # only the constants its code reads, and the table shows no row for a folded value the code
    # never reads
    A = np.random.default_rng(2).standard_normal((40, 20)) / 8.0
    x = sg.var("x", shape=(20,))
    h = sg.hessian(sg.logsumexp(sg.const(A) @ x), x)
    fn = sg.compile(h, inputs=[x], optimize=False)
    held = {name for name, v in fn._function.__globals__.items() if isinstance(v, np.ndarray)}
    read = set(re.findall(r"\bc\d+\b", fn.source))
    assert held and held == read, (held, read, fn.source)
    table = sg.show_graph(h, [x])
    names = [line.split()[0] for line in table.splitlines()[2:]]
    assert all(name in read or not re.fullmatch(r"c\d+", name) for name in names), table


def test_compiling_leaves_the_cycle_collector_as_it_found_it():
    # compile pauses Python's cycle collector while it works (api._collector_paused)
    import gc
    x = sg.var("x")
    assert gc.isenabled()
    sg.compile(sg.sin(x), inputs=[x])
    assert gc.isenabled()
    with pytest.raises(sg.SymgradError):
        sg.compile(sg.var("y_never_an_input") * x, inputs=[x])
    assert gc.isenabled()
    gc.disable()
    try:
        sg.compile(sg.cos(x), inputs=[x])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_review_regressions_of_the_codegen_package():
    # the fast path inlines into an op whose Python-float form is a function (math.pow): the
    # shape of its emission was lost to an attribute error a broad except swallowed
    x, y = sg.var("x"), sg.var("y")
    fn = sg.compile([sg.sin(x * y) ** 3 + sg.cos(x) ** 2], inputs=[x, y])
    assert "math.pow(math.sin(x * y), 3.0)" in fn.scalar_source, fn.scalar_source
    (value,) = fn(0.3, 0.7)
    assert value == pytest.approx(math.sin(0.3 * 0.7) ** 3 + math.cos(0.3) ** 2, rel=1e-15)
    # the table of a graph with a sum made in blocks (whose statements assign no name)
    from symgrad.codegen import memory
    n = int(math.isqrt(memory.BLOCKED_SUM_MIN)) + 8
    W, X = sg.var("W_blocked", shape=(n, n)), sg.var("X_blocked", shape=(n, n))
    table = sg.show_graph([X @ W + W * 2e-4], [W, X])
    assert "[rows]" in table, table
    # a node whose statements start with a helper's shows that helper's assignment
    v = sg.var("v_lse", shape=(3,))
    row = [line for line in sg.show_graph(sg.logsumexp(v), [v]).splitlines() if "logsumexp" in line]
    assert row and "_max = np.maximum.reduce(" in row[0], row


def test_outputs_by_reach_counts_what_each_output_needs():
    """The derivatives are ordered by how many nodes each needs: the unordered count agrees
    with the ordered walk on every node of a graph with shared operands, and a gradient
    needing fewer nodes comes first."""
    from symgrad.codegen.plan import _ancestor_count, outputs_by_reach
    with sg.use_graph() as graph:
        x, W = sg.var("x", shape=(3,)), sg.var("W", shape=(3, 3))
        hidden = sg.tanh(W @ x)
        loss = sg.sum(sg.exp(hidden) * hidden + x)
        gx, gW = sg.grad(loss, [x, W])
        for node in graph._node:
            assert _ancestor_count(graph._node, node) == len(graph.ancestors_in_order([node]))
        reach = {n: len(graph.ancestors_in_order([n])) for n in (gx.node, gW.node)}
        ordered = outputs_by_reach(graph, [gx.node, gW.node, loss.node])
        assert ordered[0] == loss.node
        assert [reach[n] for n in ordered[1:]] == sorted(reach.values()), reach
