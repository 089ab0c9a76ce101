"""The formula parser and the SymPy bridge.

Hostile text must raise ParseError and execute nothing; valid text must mean what NumPy means.
"""

import builtins
import contextlib
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import sympy

import symgrad as sg

RNG = np.random.default_rng(20240601)

# -- hostile input ---------------------------------------------------------------------------------

MARKER = "pwned"          # every payload that could write a file writes this, relative to the cwd

HOSTILE = {
    "import call": f"__import__('os').system('touch {MARKER}')",
    "import bare": "__import__",
    "import no strings": "__import__(os)",
    "dunder attribute": "x.__class__",
    "dunder chain": "x.__class__.__bases__[0].__subclasses__()",
    "dunder on tuple": "(1, 2).__class__",
    "dunder name": "__builtins__",
    "dunder in axis": "sum(x, axis=__import__)",
    "dunder in index": "v[__import__]",
    "lambda": "lambda: 0",
    "called lambda": "(lambda q: q)(1)",
    "list comprehension": "[i for i in v]",
    "generator": "sum(i for i in v)",
    "dict comprehension": "{i: i for i in v}",
    "set": "{1, 2}",
    "f-string": "f'{x}'",
    "f-string import": "f\"{__import__('os').system('touch pwned')}\"",
    "string": "'abc'",
    "bytes": "b'x'",
    "walrus": "(y := 3)",
    "assignment": "x = 1",
    "augmented assignment": "x += 1",
    "import statement": f"import os; os.system('touch {MARKER}')",
    "from import": "from os import system",
    "del": "del x",
    "exec": f"exec('open(\"{MARKER}\", \"w\")')",
    "eval": "eval('1 + 1')",
    "exec no strings": "exec(x)",
    "eval name": "eval(x)",
    "open": f"open('{MARKER}', 'w')",
    "getattr": "getattr(x, 'T')",
    "globals": "globals()",
    "breakpoint": "breakpoint()",
    "print": "print(x)",
    "semicolon": "x; y",
    "two lines": "x\ny",
    "conditional": "x if y else z",
    "not": "not x",
    "and": "x and y",
    "yield": "yield x",
    "await": "await x",
    "fullwidth x": "\uff58 + 1",
    "cyrillic y": "x + \u0443",
    "greek omicron": "\u03bf + x",
    "zero-width space": "x\u200b+ 1",
    "right-to-left override": "x + \u202e1",
    "fullwidth plus": "x \uff0b y",
    "NUL byte": "x\x00",
    "lone NUL": "\x00",
    "bell": "x\x07 + 1",
    "escape sequence": "x\x1b[31m",
    "backslash continuation": "x \\\n+ y",
    "comment": "x # comment",
    "10 MB": "1" * 10_000_000,
    "100000-deep parentheses": "(" * 100_000 + "x" + ")" * 100_000,
    "100000 unary minus": "-" * 100_000 + "x",
    "1000-digit integer": "9" * 1000,
    "301-digit integer": "1" + "0" * 300,
    "million-digit float": "1." + "0" * 1_000_000,
    "call of a parenthesis": "(x)(y)",
    "call of a call": "sin(x)(y)",
    "call of an index": "v[0](1)",
    "call of a number": "1(2)",
    "call of a method result": "v.sum()(1)",
    "unknown function": "foo(x)",
    "os.system spelled": "system(x)",
    "method of a name": "os.system(x)",
    "attribute real": "x.real",
    "attribute shape": "v.shape",
    "attribute graph": "x.graph",
    "attribute of method": "v.sum.__call__()",
    "attribute of T": "v.T.__doc__",
    "unknown method": "v.astype(x)",
    "star args": "sin(*v)",
    "double star kwargs": "v.sum(**x)",
    "caret power": "x ^ 2",
    "modulo": "x % 2",
    "bitwise": "x & y",
    "shift": "x << 1",
    "invert": "~x",
    "backtick": "`x`",
    "dollar": "$x",
    "hex literal": "0x10",
    "complex literal": "1j",
    "chained comparison": "0 < x < 1",
    "empty": "",
    "blank": "   \t ",
    "unfinished": "sin(x) + ",
    "non-literal axis": "sum(v, axis=x)",
    "non-literal reshape": "reshape(v, x)",
    "float index": "v[1.5]",
    "variable index": "v[x]",
    "slice of four parts": "v[1:2:3:4]",
}

# payloads above that open files, run commands or evaluate would do it through these
WATCHED = [
    (builtins, "eval"), (builtins, "exec"), (builtins, "compile"), (builtins, "open"),
    (builtins, "breakpoint"), (builtins, "input"), (os, "system"), (os, "popen"),
    (os, "remove"), (subprocess, "Popen"),
]


DANGEROUS_MODULES = {"os", "posix", "subprocess", "shutil", "socket", "ctypes", "importlib",
                     "pty", "builtins", "sys", "io", "pathlib", "pickle", "marshal", "code"}


@contextlib.contextmanager
def nothing_may_run(monkeypatch):
    """Replace every door to execution with a spy that records the call and refuses it.

    Imports are recorded and let through (NumPy imports lazily from its own modules); the caller
    checks that none was of a dangerous module and that no module was loaded for the first time.
    """
    calls = []
    real_import = builtins.__import__

    def spy(name):
        def refuse(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called")
        return refuse

    def watched_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] in DANGEROUS_MODULES:
            calls.append(f"import {name}")
        return real_import(name, globals, locals, fromlist, level)

    loaded = set(sys.modules)
    with monkeypatch.context() as patch:
        for owner, name in WATCHED:
            patch.setattr(owner, name, spy(f"{owner.__name__}.{name}"))
        patch.setattr(builtins, "__import__", watched_import)
        yield calls
    calls.extend(f"loaded {m}" for m in sorted(set(sys.modules) - loaded))


@pytest.fixture
def shaped_variables():
    """A vector, so that payloads reach the grammar rather than a shape error."""
    return sg.var("v", shape=(3,))


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_text_is_refused_and_nothing_runs(text, monkeypatch, tmp_path, shaped_variables):
    monkeypatch.chdir(tmp_path)
    graph = sg.default_graph()
    nodes_before, edges_before = graph.number_of_nodes(), graph.number_of_edges()
    outcome = None
    with nothing_may_run(monkeypatch) as calls:
        try:
            sg.parse(text)
        except BaseException as error:      # noqa: BLE001 (judged below, outside the spies)
            outcome = error
    assert calls == []
    assert list(tmp_path.iterdir()) == []
    assert isinstance(outcome, sg.ParseError), f"{type(outcome).__name__}: {outcome}"
    assert isinstance(outcome, ValueError) and isinstance(outcome, sg.SymgradError)
    assert (graph.number_of_nodes(), graph.number_of_edges()) == (nodes_before, edges_before)


def test_the_spies_see_what_they_watch(monkeypatch):
    with nothing_may_run(monkeypatch) as calls:
        for attempt in (lambda: eval("1"), lambda: exec("pass"), lambda: open("x"),
                        lambda: os.system("true")):
            with pytest.raises(AssertionError):
                attempt()
        __import__("os")
    assert calls == ["builtins.eval", "builtins.exec", "builtins.open", "os.system", "import os"]


def test_the_hostile_corpus_is_big_enough():
    assert len(HOSTILE) >= 40


@pytest.mark.parametrize("text", [
    "(" * 100_000 + "x" + ")" * 100_000,
    "-" * 100_000 + "x",
    "-" * 100_000 + "1",
    "+-" * 50_000 + "x",
    "x" + "**x" * 50_000,
    "2**" * 50_000 + "2",
    "[" * 100_000 + "x" + "]" * 100_000,
    "sin(" * 30_000 + "x" + ")" * 30_000,
    "max(x, " * 20_000 + "x" + ")" * 20_000,
], ids=["parens", "minus", "minus literal", "plus minus", "power tower", "literal tower", "lists",
        "calls", "max calls"])
def test_deep_nesting_is_a_parse_error_even_without_the_length_limit(text):
    with pytest.raises(sg.ParseError):
        sg.parse(text, max_length=10 ** 7)


def test_long_flat_formulas_are_fine_without_the_length_limit():
    e = sg.parse("x + " * 10_000 + "x", max_length=10 ** 6)
    assert sg.compile(e)(0.5) == pytest.approx(5_000.5)


def test_the_length_limit_comes_first_and_can_be_raised():
    with pytest.raises(sg.ParseError, match="limit"):
        sg.parse("x + 1", max_length=3)
    assert sg.parse("x + 1", max_length=5).shape == ()


def test_integer_literals_are_limited_to_300_digits():
    with pytest.raises(sg.ParseError, match="too long"):
        sg.parse("9" * 301 + " * x")
    with pytest.raises(sg.ParseError, match="too long"):
        sg.parse("1" * 5000, max_length=10 ** 6)     # past Python's own int-from-str guard
    assert float(sg.compile(sg.parse("1" + "0" * 299))()) == 1e299


@pytest.mark.parametrize("text", ["1e400 * x", "1" + "0" * 400 + ".0 * x"],
                         ids=["exponent", "digits"])
def test_huge_float_literals_are_refused(text):
    with pytest.raises(sg.ParseError):
        sg.parse(text)


@pytest.mark.parametrize("text", ["[1]", "[x, y] + 1", "max(x, [1])"])
def test_a_list_is_not_a_value(text):
    with pytest.raises(sg.ParseError):
        sg.parse(text)


@pytest.mark.parametrize("text", ["v[]", "v[,]"])
def test_an_empty_subscript_is_refused(text, shaped_variables):
    with pytest.raises(sg.ParseError):
        sg.parse(text)


def test_grammar_errors_are_parse_errors_even_after_a_shape_error():
    with pytest.raises(sg.ParseError):
        sg.parse("x[0](1)")                      # x is a scalar: x[0] fails before '(1)' is read


def test_non_string_input_is_a_parse_error():
    for value in (None, 1.5, b"x + 1", ["x"]):
        with pytest.raises(sg.ParseError):
            sg.parse(value)


def test_shapes_must_name_variables():
    with pytest.raises(sg.SymgradError):
        sg.parse("x", shapes={"not a name": (2,)})


def test_valid_formulas_execute_nothing_either(monkeypatch):
    with nothing_may_run(monkeypatch) as calls:
        e = sg.parse("sum(tanh(W @ v + b)) * max(x, 0) - mean(W.T, axis=0, keepdims=True)[0, 1]",
                     shapes={"W": (2, 3), "v": (3,), "b": (2,)})
    assert calls == []
    assert e.shape == ()


# -- nesting within max_depth ----------------------------------------------------------------------

NESTINGS = {
    "parens": ("(", ")"),
    "unary minus": ("-", ""),
    "power tower": ("2**", ""),
    "calls": ("sin(", ")"),
    "elementwise max": ("maximum(x, ", ")"),
}
def nesting_params():
    return list(NESTINGS)


@pytest.mark.parametrize("kind", nesting_params())
def test_nesting_up_to_max_depth_parses(kind):
    opening, closing = NESTINGS[kind]
    depth = 100                                   # parse()'s default max_depth
    e = sg.parse(opening * depth + "x" + closing * depth)
    assert e.shape == ()


@pytest.mark.parametrize("kind", nesting_params())
def test_nesting_past_max_depth_is_refused_at_a_position(kind):
    opening, closing = NESTINGS[kind]
    depth = 150
    text = opening * depth + "x" + closing * depth
    with pytest.raises(sg.ParseError) as info:
        sg.parse(text, max_depth=120)
    assert info.value.position is not None
    assert "deeper than 120" in str(info.value)


# -- valid formulas mean what NumPy means ----------------------------------------------------------

SHAPES = {"A": (3, 4), "B": (4, 2), "v": (4,), "M": (2, 3, 4), "c": (3,)}


def random_values():
    values = {name: RNG.normal(size=shape) for name, shape in SHAPES.items()}
    values.update({name: float(RNG.uniform(0.5, 2.0)) * RNG.choice([-1, 1])
                   for name in ("x", "y", "z")})
    values["p"] = float(RNG.uniform(0.5, 2.0))      # a positive scalar
    return values


def softmax(a, axis=-1):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def logsumexp(a, axis=None, keepdims=False):
    return np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims))


FORMULAS = [
    # precedence and associativity
    ("-x**2", lambda d: -(d["x"] ** 2)),
    ("-2**2", lambda d: -4.0),
    ("2**-1", lambda d: 0.5),
    ("p**-x", lambda d: d["p"] ** -d["x"]),
    ("p**2**0.5", lambda d: d["p"] ** (2 ** 0.5)),
    ("(p**2)**0.5", lambda d: (d["p"] ** 2) ** 0.5),
    ("x - y - z", lambda d: d["x"] - d["y"] - d["z"]),
    ("x - (y - z)", lambda d: d["x"] - (d["y"] - d["z"])),
    ("x / y / z", lambda d: d["x"] / d["y"] / d["z"]),
    ("x / y * z", lambda d: d["x"] / d["y"] * d["z"]),
    ("x + y * z", lambda d: d["x"] + d["y"] * d["z"]),
    ("-x * -y", lambda d: d["x"] * d["y"]),
    ("x*-y", lambda d: -d["x"] * d["y"]),
    ("+x", lambda d: d["x"]),
    ("--x", lambda d: d["x"]),
    ("2 * x + 3 < y", lambda d: 2 * d["x"] + 3 < d["y"]),
    ("x <= y", lambda d: d["x"] <= d["y"]),
    ("x >= y", lambda d: d["x"] >= d["y"]),
    ("x > y", lambda d: d["x"] > d["y"]),
    ("x == x", lambda d: True),
    ("x != y", lambda d: d["x"] != d["y"]),
    ("(x < y) * 2 + (x > y)", lambda d: (d["x"] < d["y"]) * 2 + (d["x"] > d["y"])),
    ("v > 0", lambda d: d["v"] > 0),
    # literals and constants
    (".5 * x + 5. + 1e-3 + 2E2", lambda d: 0.5 * d["x"] + 5 + 1e-3 + 200),
    ("pi * x + E", lambda d: math.pi * d["x"] + math.e),
    ("007 + x", lambda d: 7 + d["x"]),
    # functions
    ("sin(x) * cos(y) + tan(z)", lambda d: np.sin(d["x"]) * np.cos(d["y"]) + np.tan(d["z"])),
    ("exp(x) + log(p) + log1p(p) + expm1(x)",
     lambda d: np.exp(d["x"]) + np.log(d["p"]) + np.log1p(d["p"]) + np.expm1(d["x"])),
    ("sqrt(p) + tanh(x) + abs(y) + sign(z)",
     lambda d: np.sqrt(d["p"]) + np.tanh(d["x"]) + abs(d["y"]) + np.sign(d["z"])),
    ("sigmoid(v) + relu(v) + softplus(v)",
     lambda d: 1 / (1 + np.exp(-d["v"])) + np.maximum(d["v"], 0) + np.log1p(np.exp(d["v"]))),
    ("leaky_relu(v, 0.2)", lambda d: np.where(d["v"] > 0, d["v"], 0.2 * d["v"])),
    ("leaky_relu(v, alpha=0.3)", lambda d: np.where(d["v"] > 0, d["v"], 0.3 * d["v"])),
    ("where(v > 0, v, 0.1 * v)", lambda d: np.where(d["v"] > 0, d["v"], 0.1 * d["v"])),
    ("clip(v, -0.5, 0.5)", lambda d: np.clip(d["v"], -0.5, 0.5)),
    ("stop_gradient(x) * y", lambda d: d["x"] * d["y"]),
    ("maximum(x, y) - minimum(A, v)",
     lambda d: np.maximum(d["x"], d["y"]) - np.minimum(d["A"], d["v"])),
    # max and min: two arguments element-wise, one argument a reduction
    ("max(x, y)", lambda d: max(d["x"], d["y"])),
    ("min(x, y)", lambda d: min(d["x"], d["y"])),
    ("max(A, v)", lambda d: np.maximum(d["A"], d["v"])),
    ("min(A, 0)", lambda d: np.minimum(d["A"], 0)),
    ("max(A)", lambda d: np.max(d["A"])),
    ("min(A)", lambda d: np.min(d["A"])),
    ("max(A, axis=0)", lambda d: np.max(d["A"], axis=0)),
    ("max(A, axis=1, keepdims=True)", lambda d: np.max(d["A"], axis=1, keepdims=True)),
    ("min(M, axis=(0, 2))", lambda d: np.min(d["M"], axis=(0, 2))),
    ("max(x)", lambda d: d["x"]),
    # reductions with keyword arguments
    ("sum(A)", lambda d: np.sum(d["A"])),
    ("sum(A, axis=0)", lambda d: np.sum(d["A"], axis=0)),
    ("sum(A, 1)", lambda d: np.sum(d["A"], axis=1)),
    ("sum(A, axis=-1, keepdims=True)", lambda d: np.sum(d["A"], axis=-1, keepdims=True)),
    ("sum(M, axis=(0, 1))", lambda d: np.sum(d["M"], axis=(0, 1))),
    ("mean(M, axis=1, keepdims=True)", lambda d: np.mean(d["M"], axis=1, keepdims=True)),
    ("logsumexp(A, axis=1)", lambda d: logsumexp(d["A"], axis=1)),
    ("logsumexp(A)", lambda d: logsumexp(d["A"])),
    ("softmax(v)", lambda d: softmax(d["v"])),
    ("softmax(A, axis=0)", lambda d: softmax(d["A"], axis=0)),
    ("log_softmax(A, axis=1)", lambda d: np.log(softmax(d["A"], axis=1))),
    # methods and attributes
    ("A.T", lambda d: d["A"].T),
    ("M.T", lambda d: d["M"].T),
    ("A.sum()", lambda d: d["A"].sum()),
    ("A.sum(axis=1)", lambda d: d["A"].sum(axis=1)),
    ("A.mean(0, keepdims=True)", lambda d: d["A"].mean(0, keepdims=True)),
    ("A.max()", lambda d: d["A"].max()),
    ("A.min(axis=1)", lambda d: d["A"].min(axis=1)),
    ("A.reshape(4, 3)", lambda d: d["A"].reshape(4, 3)),
    ("A.reshape((2, 6))", lambda d: d["A"].reshape((2, 6))),
    ("A.reshape(-1)", lambda d: d["A"].reshape(-1)),
    ("A.transpose()", lambda d: d["A"].transpose()),
    ("M.transpose(1, 0, 2)", lambda d: d["M"].transpose(1, 0, 2)),
    ("A.T.sum(axis=0).max()", lambda d: d["A"].T.sum(axis=0).max()),
    # linear algebra and shape functions
    ("A @ B", lambda d: d["A"] @ d["B"]),
    ("A @ v", lambda d: d["A"] @ d["v"]),
    ("v @ v", lambda d: d["v"] @ d["v"]),
    ("c @ A @ B", lambda d: d["c"] @ d["A"] @ d["B"]),
    ("A.T @ c", lambda d: d["A"].T @ d["c"]),
    ("matmul(A, B) + dot(v, v)", lambda d: d["A"] @ d["B"] + d["v"] @ d["v"]),
    ("sum(tanh(A @ v))", lambda d: np.sum(np.tanh(d["A"] @ d["v"]))),
    ("transpose(M, axes=(2, 0, 1))", lambda d: np.transpose(d["M"], (2, 0, 1))),
    ("reshape(A, (6, 2))", lambda d: np.reshape(d["A"], (6, 2))),
    ("concatenate([A, A * 2], axis=0)", lambda d: np.concatenate([d["A"], d["A"] * 2], axis=0)),
    ("concatenate([v, c], axis=0)", lambda d: np.concatenate([d["v"], d["c"]])),
    # indexing and slicing
    ("A[1]", lambda d: d["A"][1]),
    ("A[-1, -2]", lambda d: d["A"][-1, -2]),
    ("A[:, 2]", lambda d: d["A"][:, 2]),
    ("A[1:, ::2]", lambda d: d["A"][1:, ::2]),
    ("A[::-1]", lambda d: d["A"][::-1]),
    ("v[1:3]", lambda d: d["v"][1:3]),
    ("v[:-1] - v[1:]", lambda d: d["v"][:-1] - d["v"][1:]),
    ("A[None]", lambda d: d["A"][None]),
    ("v[:, None] * v[None, :]", lambda d: d["v"][:, None] * d["v"][None, :]),
    ("A[..., 0]", lambda d: d["A"][..., 0]),
    ("M[0, :, 1:3]", lambda d: d["M"][0, :, 1:3]),
    ("M[1][2][3]", lambda d: d["M"][1][2][3]),
    ("A[1, :][2]", lambda d: d["A"][1, :][2]),
    # broadcasting
    ("A + v", lambda d: d["A"] + d["v"]),
    ("M * v - x", lambda d: d["M"] * d["v"] - d["x"]),
]


@pytest.mark.parametrize("text,reference", FORMULAS, ids=[t for t, _ in FORMULAS])
def test_formula_values_match_numpy(text, reference):
    e = sg.parse(text, shapes=SHAPES)
    names = list(e.variables)
    fn = sg.compile(e)
    for _ in range(3):
        values = random_values()
        got = np.asarray(fn(*[values[n] for n in names]))
        expected = np.asarray(reference(values))
        assert got.shape == expected.shape == tuple(e.shape)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_comparisons_are_boolean():
    assert sg.parse("x < y").dtype == "bool"
    assert sg.compile(sg.parse("x < y"))(1.0, 2.0).dtype == bool


def test_shapes_argument_sets_variable_shapes():
    e = sg.parse("tanh(W @ v)", shapes={"W": (4, 3), "v": (3,)})
    assert e.shape == (4,)
    assert e.variables["W"].shape == (4, 3)
    # a variable already in the graph keeps its shape when the formula names it again
    assert sg.parse("v * 2").shape == (3,)
    # names not in shapes are scalars
    assert sg.parse("q").shape == ()


def test_symbolic_dimensions_from_shapes():
    e = sg.parse("mean(X @ w, axis=0)", shapes={"X": ("n", 3), "w": (3, 2)})
    assert e.shape == (2,)
    fn = sg.compile(e)
    w = RNG.normal(size=(3, 2))
    for n in (1, 5):
        X = RNG.normal(size=(n, 3))
        np.testing.assert_allclose(fn(X, w), np.mean(X @ w, axis=0), rtol=1e-12)


def test_keyword_and_positional_arguments_agree():
    v = sg.var("A", shape=(3, 4))
    assert sg.parse("sum(A, axis=1)").node == sg.parse("sum(A, 1)").node == v.sum(axis=1).node
    assert sg.parse("A.sum(axis=0, keepdims=True)").node == v.sum(axis=0, keepdims=True).node
    assert sg.parse("leaky_relu(A, alpha=0.1)").node == sg.parse("leaky_relu(A, 0.1)").node
    assert sg.parse("where(condition=A > 0, x=A, y=0)").shape == (3, 4)


@pytest.mark.parametrize("text,message", [
    ("sin()", "missing"),
    ("sin(x, y)", "at most"),
    ("sum(x, foo=1)", "no argument"),
    ("sin(x, x=1)", "twice"),
    ("sum(x, axis=0, axis=0)", "repeated"),
    ("sum(axis=0, x)", "positional argument after a keyword"),
    ("max(x, y, z)", "literal"),
])
def test_bad_arguments_are_parse_errors(text, message):
    with pytest.raises(sg.ParseError, match=message):
        sg.parse(text)


def test_the_formula_is_the_same_expression_as_the_operators_build():
    x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
    assert sg.parse("(x + y) * max(y, z)").node == ((x + y) * sg.maximum(y, z)).node
    assert sg.parse("-x**2").node == (-(x ** 2)).node


# -- positions -------------------------------------------------------------------------------------

POSITIONS = [
    ("x + $y", 4),
    ("x ^ 2", 2),
    ("x; y", 1),
    ("x + \u0443", 4),
    ("x\x00", 1),
    ("sin(x) + foo(y)", 9),
    ("x.__class__", 2),
    ("sin(x).real", 7),
    ("0 < x < 1", 6),
    ("x = 1", 2),
    ("(y := 3)", 3),
    ("(x + y", 6),
    ("x + ", 4),
    ("x y", 2),
    ("lambda: 0", 0),
    ("x + __import__", 4),
    ("(x)(y)", 3),
    ("v[1.5]", 2),
    ("'abc' + x", 0),
    ("x +* y", 3),
]


@pytest.mark.parametrize("text,column", POSITIONS, ids=[t for t, _ in POSITIONS])
def test_parse_errors_point_at_the_offending_column(text, column, shaped_variables):
    with pytest.raises(sg.ParseError) as info:
        sg.parse(text)
    assert info.value.position == column
    assert f"column {column + 1}" in str(info.value)


def test_short_formulas_get_a_caret_under_the_problem():
    with pytest.raises(sg.ParseError) as info:
        sg.parse("x + $y")
    lines = str(info.value).splitlines()
    assert lines[-2].strip() == "x + $y"
    assert lines[-1].index("^") - lines[-2].index("x") == 4


@pytest.mark.parametrize("text,column", [("sum(x, axis=y)", 12), ("reshape(v, x) + 1", 11)])
def test_non_literal_argument_errors_point_at_the_argument(text, column, shaped_variables):
    with pytest.raises(sg.ParseError) as info:
        sg.parse(text)
    assert info.value.position == column


# -- SymPy -----------------------------------------------------------------------------------------

X, Y, Z = sympy.symbols("x y z")
SYMPY_EXPRESSIONS = [
    sympy.sin(X) * sympy.exp(Y) - Z ** 3,
    sympy.log(X ** 2 + 1) / (Y ** 2 + 2),
    sympy.sqrt(X ** 2 + Y ** 2) + sympy.Abs(Z),
    sympy.tanh(X * Y) + sympy.cos(Z) ** 2,
    sympy.Max(X, Y) - sympy.Min(Y, Z),
    X ** -2 + 1 / Y,
    sympy.exp(-X ** 2 / 2) * sympy.tan(Y),
    sympy.sign(X) * Z,
    sympy.Rational(3, 4) * X - sympy.pi * Y + sympy.E,
    sympy.Piecewise((X, X > 0), (Y, True)),
    sympy.Abs(X) ** Y,
    sympy.Heaviside(X) * Y,
]


def sample_points(count=5):
    return [tuple(float(v) for v in RNG.uniform(-2, 2, size=3)) for _ in range(count)]


@pytest.mark.parametrize("expression", SYMPY_EXPRESSIONS, ids=[str(e) for e in SYMPY_EXPRESSIONS])
def test_from_sympy_and_back_keep_the_values(expression):
    reference = sympy.lambdify((X, Y, Z), expression, "numpy")
    e = sg.from_sympy(expression)
    inputs = [sg.var(n) for n in ("x", "y", "z")]
    fn = sg.compile(e, inputs=inputs)
    back = sg.to_sympy(e)
    round_trip = sympy.lambdify((X, Y, Z), back, "numpy")
    assert back.free_symbols <= {X, Y, Z}
    for point in sample_points():
        expected = float(reference(*point))
        assert float(fn(*point)) == pytest.approx(expected, rel=1e-10, abs=1e-12)
        assert float(round_trip(*point)) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("text", [
    "sigmoid(x) * y", "softplus(x) - relu(y)", "leaky_relu(x, 0.1) + z", "log1p(x**2) + expm1(y)",
    "where(x < y, x, z)", "clip(x, -0.5, 0.5) * y", "abs(x) + sign(y) * maximum(x, z)",
    "stop_gradient(x) * y", "x ** 2 / (1 + y ** 2) - sqrt(1 + z ** 2)",
])
def test_to_sympy_of_parsed_formulas_keeps_the_values(text):
    e = sg.parse(text)
    inputs = [sg.var(n) for n in ("x", "y", "z")]
    fn = sg.compile(e, inputs=inputs)
    converted = sg.to_sympy(e)
    reference = sympy.lambdify((X, Y, Z), converted, "numpy")
    again = sg.compile(sg.from_sympy(converted), inputs=inputs)
    for point in sample_points():
        value = float(fn(*point))
        assert float(reference(*point)) == pytest.approx(value, rel=1e-10, abs=1e-12)
        assert float(again(*point)) == pytest.approx(value, rel=1e-10, abs=1e-12)


def test_from_sympy_symbols_are_the_same_variables():
    x = sg.var("x")
    assert sg.from_sympy(X).node == x.node
    assert sg.from_sympy(sympy.sin(X)).node == sg.sin(x).node


def test_to_sympy_refuses_tensors_and_from_sympy_refuses_non_sympy():
    with pytest.raises(sg.SymgradError):
        sg.to_sympy(sg.var("v", shape=(3,)) * 2.0)
    with pytest.raises(sg.SymgradError):
        sg.from_sympy("x + 1")
    with pytest.raises(sg.SymgradError):
        sg.from_sympy(sympy.Symbol("__class__"))
    with pytest.raises(sg.SymgradError):
        sg.from_sympy(sympy.I * X)


@pytest.mark.parametrize("text", ["leaky_relu(x, None)",
                                  "concatenate([W, W], axis=None)", "reshape(W, None)",
                                  "transpose(W, 5)", "transpose(W, (1.0, 0.0))"])
def test_literal_arguments_of_the_wrong_kind_are_parse_errors(text):
    with pytest.raises(sg.ParseError) as info:
        sg.parse(text, shapes={"W": (2, 3)})
    assert info.value.position is not None
