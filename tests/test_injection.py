"""No string a user chooses can put code into generated source.

Every public way a user's string or value reaches the emitted function is tried with injection
payloads: variable names (sg.var, free names of sg.parse, SymPy symbols), the compiled function's
name, dimension names, constants, op attributes and user ops from sg.defop, and nodes added to a
Graph by hand. Each attempt either raises a SymgradError at once, or compiles to source whose
syntax tree holds nothing but the function's own names, NumPy functions and number literals.

What sg.defop takes as its emission template is code by design (the op's author writes it, like a
function body); the name, the attribute values and the dtype of a user op are not, and are checked.
"""

import ast
import keyword
import math
import re

import numpy as np
import pytest
import sympy
from hypothesis import given, settings, strategies as st

import symgrad as sg

MARKER = "pwned"

NAME_PAYLOADS = [
    # statements and expressions
    "x; import os", "x\nimport os", "x\n    import os", f"x):\n    open('{MARKER}', 'w')\ndef g(x",
    "__import__('os')", f"x=np.__builtins__['__import__']('os').system('touch {MARKER}')",
    "x # comment", "x\\", "x\r", "x\x00", "x y", "x.y", "x[0]", "x)", "(x", "x,y", "x=1", "*x",
    "**x", "x:int", "-x", "x+1", "'x'", "f'{x}'", "", " ", "1x", "0",
    # keywords, soft keywords and the emitted code's own names
    "def", "lambda", "import", "class", "return", "None", "True", "False", "await", "async",
    "match", "case", "type", "_", "np", "float", "f", "t0", "t1", "c0", "dim_n", "d_out_d_x",
    "np_2", "x_2", "__builtins__", "__class__", "__import__", "_x", "print", "exec", "eval",
    "globals", "os", "self",
    # look-alikes and invisible characters
    "\uff58", "\u00e9", "\u0445", "\U0001d431", "x\u0301", "\ufb01", "x\u200b", "x\u202e",
    # very long
    "x" * 10_000, "_" + "9" * 5000,
]


# -- what generated source may contain ------------------------------------------------------------

NUMPY_FUNCTIONS = {"shape", "zeros", "where", "sum", "mean", "max", "min", "prod", "reshape",
                   "squeeze", "expand_dims", "transpose", "broadcast_to", "broadcast_shapes",
                   "concatenate", "array", "clip", "dot", "float64", "float32", "bool_", "nan",
                   "inf"}
KEYWORDS = {"axis", "keepdims", "out"}
FORBIDDEN_NODES = (ast.Import, ast.ImportFrom, ast.Lambda, ast.ClassDef, ast.AsyncFunctionDef,
                   ast.Global, ast.Nonlocal, ast.With, ast.Try, ast.Raise, ast.While, ast.For,
                   ast.If, ast.IfExp, ast.comprehension, ast.Await, ast.Yield, ast.YieldFrom,
                   ast.JoinedStr, ast.Starred, ast.NamedExpr, ast.Dict, ast.Set)


def numpy_name(attr):
    return attr in NUMPY_FUNCTIONS or isinstance(getattr(np, attr, None), np.ufunc)


def assert_clean(fn, function_name="f"):
    """``fn.source`` defines one function whose every name is a parameter, an intermediate it
    assigns, a constant of its namespace, ``np`` or ``float``; every attribute is a NumPy function
    or ``.T``; every literal is a number, a bool or None. Returns the parameter names."""
    tree = ast.parse(fn.source)
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.FunctionDef)
    function = tree.body[0]
    assert function.name == function_name
    arguments = function.args
    assert not (arguments.defaults or arguments.kw_defaults or arguments.kwonlyargs
                or arguments.posonlyargs or arguments.vararg or arguments.kwarg
                or function.decorator_list or function.returns)
    assert all(a.annotation is None for a in arguments.args)
    parameters = [a.arg for a in arguments.args]
    namespace = fn._function.__globals__
    constants = {k for k, v in namespace.items() if isinstance(v, np.ndarray)}
    assert set(namespace) == {"np", "float", "__builtins__", function_name} | constants
    assert namespace["__builtins__"] == {}
    assigned = {t.id for node in ast.walk(function) if isinstance(node, (ast.Assign, ast.AugAssign))
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(t, ast.Name)}
    allowed = set(parameters) | assigned | constants | {"np", "float"}
    for node in ast.walk(function):
        assert not isinstance(node, FORBIDDEN_NODES), ast.dump(node)
        if isinstance(node, ast.FunctionDef):
            assert node is function
        elif isinstance(node, ast.Name):
            assert node.id in allowed, node.id
        elif isinstance(node, ast.Attribute):
            is_numpy = isinstance(node.value, ast.Name) and node.value.id == "np"
            # np.add.reduce: the inner np.add is checked as an attribute of np on its own
            is_ufunc = isinstance(node.value, ast.Attribute) and isinstance(node.value.value, ast.Name) \
                and node.value.value.id == "np" and isinstance(getattr(np, node.value.attr), np.ufunc)
            assert (is_numpy and numpy_name(node.attr)) or (is_ufunc and node.attr == "reduce") \
                or (not is_numpy and node.attr == "T"), ast.dump(node)
        elif isinstance(node, ast.Constant):
            assert node.value is None or node.value is Ellipsis \
                or type(node.value) in (bool, int, float), repr(node.value)
        elif isinstance(node, ast.Call):
            called = node.func
            calls_numpy = isinstance(called, ast.Attribute) and (
                (isinstance(called.value, ast.Name) and called.value.id == "np")
                or (called.attr == "reduce" and isinstance(called.value, ast.Attribute)))
            assert calls_numpy or (isinstance(called, ast.Name) and called.id == "float"), \
                ast.dump(node)
            assert {k.arg for k in node.keywords} <= KEYWORDS
    return parameters


@pytest.fixture(autouse=True)
def in_a_scratch_directory(tmp_path, monkeypatch):
    """Every test runs in an empty directory, which must stay empty: payloads write MARKER."""
    monkeypatch.chdir(tmp_path)
    yield
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def user_ops():
    """Names of ops a test registers with sg.defop, removed afterwards (OPS is global)."""
    created = []
    yield created
    for name in created:
        sg.OPS.pop(name, None)


def refused_or_clean(build, function_name="f"):
    """Call ``build()`` (which returns a compiled function): either it raises a SymgradError, or
    its source is clean. Returns the compiled function, or None when it was refused."""
    try:
        fn = build()
    except sg.SymgradError:
        return None
    assert_clean(fn, function_name)
    return fn


# -- variable names -------------------------------------------------------------------------------


def expected(value):
    return np.sin(value) * 2.0 + value


@pytest.mark.parametrize("name", NAME_PAYLOADS, ids=range(len(NAME_PAYLOADS)))
def test_variable_names(name):
    try:
        x = sg.var(name)
    except sg.SymgradError:
        assert not (name.isascii() and name.isidentifier()) or name.startswith("__") \
            or keyword.iskeyword(name)
        return
    fn = sg.compile(sg.sin(x) * 2.0 + x)
    (parameter,) = assert_clean(fn)
    assert parameter == name or parameter.startswith(f"{name}_")   # renamed only if it clashes
    assert float(fn(0.5)) == pytest.approx(expected(0.5))
    assert float(fn(**{name: 0.5})) == pytest.approx(expected(0.5))


@pytest.mark.parametrize("name", NAME_PAYLOADS, ids=range(len(NAME_PAYLOADS)))
def test_free_names_of_a_parsed_formula(name):
    for text in (name, f"sin({name}) * 2 + {name}"):
        try:
            e = sg.parse(text, max_length=50_000)
        except sg.SymgradError:                 # ParseError, or ShapeError for 'x[0]'
            continue
        parameters = assert_clean(sg.compile(e))
        # every parameter is a name written in the text (renamed with a suffix if it clashes)
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
        assert all(p in words or p.rsplit("_", 1)[0] in words for p in parameters)


@pytest.mark.parametrize("name", NAME_PAYLOADS, ids=range(len(NAME_PAYLOADS)))
def test_sympy_symbol_names(name):
    if not name.strip():
        return                                  # SymPy itself refuses an empty symbol name
    symbol = sympy.Symbol(name)
    fn = refused_or_clean(lambda: sg.compile(sg.from_sympy(sympy.sin(symbol) * 2 + symbol)))
    if fn is not None:
        assert float(fn(0.5)) == pytest.approx(expected(0.5))


@pytest.mark.parametrize("name", NAME_PAYLOADS, ids=range(len(NAME_PAYLOADS)))
def test_compiled_function_names(name):
    x = sg.var("x")
    fn = refused_or_clean(lambda: sg.compile(sg.sin(x) * 2.0 + x, name=name), function_name=name)
    if fn is not None:
        assert float(fn(0.5)) == pytest.approx(expected(0.5))
    else:
        assert not name.isidentifier() or not name.isascii() or name in ("np", "float") \
            or name.startswith("__") or keyword.iskeyword(name)


@pytest.mark.parametrize("name", NAME_PAYLOADS, ids=range(len(NAME_PAYLOADS)))
def test_dimension_names(name):
    def build():
        X = sg.var("X", shape=(name, 3))
        # reshape reads the named dimension back from the argument at run time
        return sg.compile(sg.reshape(X, (3, name)) * 2.0 + sg.mean(X, axis=0)[:, None])
    fn = refused_or_clean(build)
    if fn is not None:
        X = np.arange(6.0).reshape(2, 3)
        np.testing.assert_allclose(fn(X), X.reshape(3, 2) * 2 + X.mean(axis=0)[:, None])
    for shapes in ({"X2": (name, 3)}, {name: (3,)}):
        try:
            e = sg.parse("sum(X2) + 1" if "X2" in shapes else f"sum({name})", shapes=shapes)
        except sg.SymgradError:
            continue
        assert_clean(sg.compile(e))


# -- constants and attribute values ---------------------------------------------------------------


class EvilText:
    """Mixed into a number: its text is code, so only its value may reach the source."""

    def __repr__(self):
        return f"__import__('os').system('touch {MARKER}')"

    __str__ = __repr__

    def __format__(self, spec):
        return repr(self)


class EvilFloat(EvilText, float):
    pass


class EvilInt(EvilText, int):
    def __index__(self):
        return int(self)


CONSTANTS = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, -1e308, 5e-324, 2.2e-308, 1e-320,
             np.float32(0.1), np.float64(-2.5), np.int64(2 ** 62), np.uint64(2 ** 64 - 1),
             np.int8(-128), 2 ** 62, True, False, np.bool_(True), EvilFloat(1.5), EvilInt(3),
             np.arange(6).reshape(2, 3), np.array([True, False, True]),
             np.array([np.nan, np.inf, -0.0]), np.float32([1.5, 2.5]),
             np.array(EvilFloat(2.0)), 10 ** 400, "1", "x; import os", b"1", None, [1, "x"],
             {"a": 1}, 1 + 2j, sympy.Integer(3), __import__("fractions").Fraction(1, 3),
             __import__("decimal").Decimal("1.5")]


@pytest.mark.parametrize("value", CONSTANTS, ids=range(len(CONSTANTS)))
def test_constants(value):
    x = sg.var("x")
    fn = refused_or_clean(lambda: sg.compile(x * sg.const(value) + sg.const(value) * 2))
    if fn is not None:
        number = np.asarray(value, dtype=float)
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(fn(1.5), 1.5 * number + number * 2, rtol=1e-6, atol=1e-300)


def test_an_evil_number_keeps_only_its_value():
    x = sg.var("x")
    fn = sg.compile([x * EvilFloat(1.5), sg.leaky_relu(x, EvilFloat(0.25)),
                     sg.clip(x, EvilFloat(-1.0), EvilFloat(1.0))])
    assert_clean(fn)
    assert "import" not in fn.source
    assert [float(v) for v in fn(-2.0)] == [-3.0, -0.5, -1.0]


def attribute_builds():
    """(label, function of a payload building an Expr) for every op attribute a user sets."""
    v = lambda: sg.var("v", shape=(2, 3))          # noqa: E731
    x = lambda: sg.var("x")                        # noqa: E731
    return [
        ("sum axis", lambda p: sg.sum(v(), axis=p)),
        ("mean axis", lambda p: v().mean(axis=p, keepdims=True)),
        ("max axis", lambda p: sg.max(v(), axis=p)),
        ("logsumexp axis", lambda p: sg.logsumexp(v(), axis=p)),
        ("softmax axis", lambda p: sg.softmax(v(), axis=p)),
        ("log_softmax axis", lambda p: sg.log_softmax(v(), axis=p)),
        ("concatenate axis", lambda p: sg.concatenate([v(), v()], axis=p)),
        ("reshape target", lambda p: sg.reshape(v(), (p, -1))),
        ("reshape target tuple", lambda p: v().reshape(p)),
        ("transpose axes", lambda p: sg.transpose(v(), (p, 0))),
        ("index", lambda p: v()[p]),
        ("slice", lambda p: v()[:, p:]),
        ("leaky_relu slope", lambda p: sg.leaky_relu(x(), p)),
        ("clip bounds", lambda p: sg.clip(x(), p, 10.0)),
        ("keepdims", lambda p: sg.sum(v(), axis=0, keepdims=p)),
    ]


ATTRIBUTE_PAYLOADS = [0, 1, -1, (0,), (0, 1), np.int64(1), EvilInt(1), (EvilInt(1),), 2,
                      EvilFloat(0.5), 0.5, math.nan, math.inf, "1", "0); import os; (0",
                      "n", "x", ("0]; import os; [0",), None, True, [0], 10 ** 400, -(10 ** 400)]
ATTRIBUTE_CASES = [(label, build, payload) for label, build in attribute_builds()
                   for payload in ATTRIBUTE_PAYLOADS]


@pytest.mark.parametrize("label,build,payload", ATTRIBUTE_CASES,
                         ids=[f"{label}-{k % len(ATTRIBUTE_PAYLOADS)}"
                              for k, (label, _, _) in enumerate(ATTRIBUTE_CASES)])
def test_op_attributes(label, build, payload):
    try:
        e = build(payload)
    except (sg.SymgradError, TypeError, ValueError, OverflowError):
        # TypeError and friends: a value of the wrong kind, refused by Python's own conversion
        # (float("0); import os"), tuple(0.5)...) before anything was built
        return
    fn = refused_or_clean(lambda: sg.compile(e))
    if fn is not None and e.variables:
        fn(*[np.ones([2 if d == "n" else d for d in var.shape]) for var in e.variables.values()])


# -- user ops -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAME_PAYLOADS, ids=range(len(NAME_PAYLOADS)))
def test_user_op_names(name, user_ops):
    try:
        op = sg.defop(name, 1, lambda shapes: shapes[0], "{0} * 2.0",
                      vjp=lambda g, out, x: [g * 2.0])
    except sg.SymgradError:
        assert not (name.isascii() and name.isidentifier()) or name in sg.OPS
        return
    user_ops.append(name)
    x = sg.var("x")
    fn = sg.compile([op(x), sg.grad(op(x) * x, x)])
    assert_clean(fn)
    assert [float(v) for v in fn(1.5)] == [3.0, 6.0]


@pytest.mark.parametrize("payload", ATTRIBUTE_PAYLOADS + NAME_PAYLOADS[:12],
                         ids=range(len(ATTRIBUTE_PAYLOADS) + 12))
def test_user_op_attribute_values(payload, user_ops):
    user_ops.append("scaled_by")
    scaled = sg.defop("scaled_by", 1, lambda shapes, k: shapes[0], "{0} * {k}",
                      vjp=lambda g, out, x, k: [g * k])
    x = sg.var("x")
    try:
        e = scaled(x, k=payload)
    except (sg.SymgradError, TypeError):           # TypeError: an unhashable list
        return
    refused_or_clean(lambda: sg.compile(e))


def test_a_user_op_dtype_is_checked_before_it_reaches_source(user_ops):
    # regression: the dtype a user op declares was written into source as np.<dtype>(...)
    user_ops.append("evil_dtype")
    payload = (f"float64(0) if np.__builtins__['__import__']('os').system('touch {MARKER}') "
               f"else np.float64")
    op = sg.defop("evil_dtype", 1, lambda shapes: shapes[0], "{0} ** 3",
                  vjp=lambda g, out, x: [g], dtype=lambda dtypes: payload)
    with pytest.raises(sg.SymgradError, match="dtype"):
        sg.compile(op(sg.var("x")))


# -- nodes added by hand ---------------------------------------------------------------------------

HAND_MADE = {
    "variable name": lambda g: g.add("var", (), {"name": NAME_PAYLOADS[5]}, (), "float64"),
    "dimension name": lambda g: g.add(
        "reshape", (g.add("var", (), {"name": "X"}, ("n); import os; (n", 3), "float64"),),
        {"shape": (3, "n); import os; (n")}, (3, "n); import os; (n"), "float64"),
    "attribute string": lambda g: g.add(
        "axis_size", (g.variable("v", (3,)),),
        {"axis": (f"0]); np.__builtins__['__import__']('os').system('touch {MARKER}'); "
                  f"t9 = np.float64(np.shape(v)[0",)}, (), "float64"),
    "dtype": lambda g: g.add("stop_gradient", (g.variable("v", ()),), {}, (),
                             f"float64(0) if np.__builtins__['__import__']('os').system("
                             f"'touch {MARKER}') else np.float64"),
    "derivative comment": lambda g: g.add("sin", (g.variable("v", ()),), {}, (), "float64"),
}


@pytest.mark.parametrize("optimize", [False, True])
@pytest.mark.parametrize("kind", list(HAND_MADE))
def test_nodes_added_by_hand_cannot_inject(kind, optimize):
    # regression: a variable added with Graph.add skipped check_name, and its name went into the
    # def line verbatim (a default argument ran when the function was defined)
    graph = sg.Graph()
    node = HAND_MADE[kind](graph)
    e = sg.Expr(graph, node)
    if kind == "derivative comment":
        graph.nodes[node].update(derivative=True, grad_of="sin\nimport os")
    inputs = [sg.Expr(graph, n) for n in graph.nodes if graph.nodes[n]["op"] == "var"]
    fn = refused_or_clean(lambda: sg.compile(e, inputs=inputs, optimize=optimize))
    if kind == "derivative comment":
        assert fn is not None and "import" not in fn.source
    elif not optimize:
        assert fn is None           # the payload reached codegen as it was, and was refused there


# -- any name at all -------------------------------------------------------------------------------

ANY_NAME = st.one_of(st.text(max_size=30), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}",
                                                         fullmatch=True),
                     st.sampled_from(NAME_PAYLOADS[:60]))


@settings(max_examples=150, deadline=None)
@given(name=ANY_NAME, function_name=ANY_NAME, dimension=ANY_NAME)
def test_no_name_can_inject_code(name, function_name, dimension):
    with sg.use_graph():
        try:
            x = sg.var(name, shape=(dimension,))
            e = sg.reshape(x, (dimension,)) * 2.0
            fn = sg.compile(sg.sum(e), name=function_name)
        except sg.SymgradError:
            return
        assert_clean(fn, function_name)
        assert float(fn(np.ones(4))) == 8.0
