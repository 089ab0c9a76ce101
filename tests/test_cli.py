"""The `symgrad` command: formats, values against closed forms, and one-line errors."""

import json
import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import sympy

from symgrad import cli
from symgrad.cli import main

TEXTBOOK = ["grad", "(x + y) * max(y, z)", "--at", "x=-2,y=5,z=-4"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--format", "json")
    assert code == 0, err
    assert err == ""
    return json.loads(out)


# -- text ------------------------------------------------------------------------------------------


def table_rows(out):
    """(name, kind, op, is_output) for each row of the printed table."""
    lines = out.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("(* marks"))
    rows = []
    for line in lines[2:end]:
        cells = line.split()
        output = cells[1] == "*"
        if output:
            del cells[1]
        rows.append((cells[0], cells[1], cells[2], output))
    return rows, [line for line in lines[end + 1:] if not line.startswith("outputs: ")]


def test_text_shows_the_graph_values_and_marks_derivative_nodes(capsys):
    code, out, err = run(capsys, *TEXTBOOK)
    assert code == 0 and err == ""
    assert out.splitlines()[0].split()[:4] == ["name", "kind", "op", "shape"]
    rows, summary = table_rows(out)
    for expected in ("value = 15", "d/dx = 5", "d/dy = 8", "d/dz = 0"):
        assert expected in summary
    kinds = [kind for _, kind, _, _ in rows]
    assert set(kinds) == {"input", "forward", "grad"}
    # evaluation order: the forward nodes first, then the derivative nodes appended to the graph
    first_grad = kinds.index("grad")
    assert "forward" not in kinds[first_grad:]
    assert [name for name, kind, _, _ in rows if kind == "input"] == ["x", "y", "z"]
    assert {name for name, _, _, output in rows if output} >= {"d_out_d_y", "d_out_d_z"}


def test_text_without_values_still_lists_the_derivative_nodes(capsys):
    code, out, err = run(capsys, "grad", "sin(x) * y")
    assert code == 0 and err == ""
    assert "np.cos(x)" in out
    rows, summary = table_rows(out)
    assert ("grad" in [kind for _, kind, _, _ in rows]) and summary == []
    assert "value =" not in out


# -- json ------------------------------------------------------------------------------------------


def test_json_gives_the_textbook_values(capsys):
    report = run_json(capsys, *TEXTBOOK)
    assert report == {"value": 15.0, "grad": {"x": 5.0, "y": 8.0, "z": 0.0}}


def test_wrt_selects_and_orders_the_gradient(capsys):
    report = run_json(capsys, *TEXTBOOK, "--wrt", "z,x")
    assert list(report["grad"]) == ["z", "x"]
    assert report["grad"] == {"z": 0.0, "x": 5.0}


def test_order_gives_the_derivatives_of_tanh(capsys):
    report = run_json(capsys, "grad", "tanh(x)", "--wrt", "x", "--order", "3", "--at", "x=0.5")
    t = np.tanh(0.5)
    assert report["value"] == pytest.approx(t)
    assert "grad" not in report
    first = 1 - t ** 2
    second = -2 * t * (1 - t ** 2)
    third = (1 - t ** 2) * (6 * t ** 2 - 2)
    assert report["derivatives"] == pytest.approx([first, second, third], rel=1e-12)


def test_order_past_the_degree_of_a_polynomial_is_zero(capsys):
    report = run_json(capsys, "grad", "x**2", "--order", "4", "--at", "x=3")
    assert report["derivatives"] == pytest.approx([6.0, 2.0, 0.0, 0.0])


def test_hessian_in_json(capsys):
    report = run_json(capsys, "hessian", "x**2*y + y**3", "--at", "x=1,y=2")
    assert report["value"] == 10.0
    assert report["grad"] == {"x": 4.0, "y": 13.0}
    assert report["hessian"] == [[4.0, 2.0], [2.0, 12.0]]


def test_hessian_rows_and_columns_follow_wrt(capsys):
    report = run_json(capsys, "hessian", "x**2*y + y**3", "--wrt", "y,x", "--at", "x=1,y=2")
    assert report["hessian"] == [[12.0, 2.0], [2.0, 4.0]]


def test_tensor_values_infer_their_shapes(capsys):
    W = np.array([[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]])
    v = np.array([1.0, -2.0, 0.5])
    at = f"W={json.dumps(W.tolist())},v={json.dumps(v.tolist())}"
    report = run_json(capsys, "grad", "sum(tanh(W @ v))", "--at", at)
    hidden = np.tanh(W @ v)
    assert report["value"] == pytest.approx(hidden.sum())
    np.testing.assert_allclose(report["grad"]["W"], np.outer(1 - hidden ** 2, v), rtol=1e-12)
    np.testing.assert_allclose(report["grad"]["v"], W.T @ (1 - hidden ** 2), rtol=1e-12)


def test_hessian_of_a_vector_variable_is_flattened(capsys):
    report = run_json(capsys, "hessian", "sum(v**3) + v[0]*v[1]", "--at", "v=[1,2]")
    assert report["hessian"] == [[6.0, 1.0], [1.0, 12.0]]


def test_hessian_over_a_named_dimension_takes_its_length_from_at(capsys):
    report = run_json(capsys, "hessian", "sum(v**3) + v[0]*y", "--shape", "v=n",
                      "--at", "v=[1,2],y=3")
    assert report["grad"] == {"v": [6.0, 12.0], "y": 1.0}
    assert report["hessian"] == [[6.0, 0.0, 1.0], [0.0, 12.0, 0.0], [1.0, 0.0, 0.0]]


def test_high_orders_run_where_the_graph_stays_small(capsys):
    # the bound was order 10; sigmoid's 20th derivative is a polynomial in sigmoid(x) and
    # sigmoid(-x) (the Eulerian numbers: at 0 the odd orders are -tanh's over 2 ** (n + 1))
    report = run_json(capsys, "grad", "sigmoid(x)", "--order", "25", "--at", "x=0")
    # tanh's n-th derivative is P_n(tanh x), P_{n+1} = P_n' * (1 - t**2) (sympy.diff of tanh
    # itself takes minutes at order 25)
    t = sympy.Symbol("t")
    polynomial, tanh_at_0 = sympy.Poly(t, t), []
    for _ in range(25):
        polynomial = sympy.Poly(polynomial.diff(t) * (1 - t ** 2), t)
        tanh_at_0.append(float(polynomial.eval(0)))
    assert len(report["derivatives"]) == 25
    for n, value in enumerate(report["derivatives"], start=1):
        # the even orders are 0, a sum of terms s**k * sigmoid(-x)**(n + 1 - k) whose
        # magnitudes (Eulerian numbers over 2 ** (n + 1)) add up to n! / 2 ** (n + 1)
        terms = math.factorial(n) / 2 ** (n + 1)
        assert value == pytest.approx(tanh_at_0[n - 1] / 2 ** (n + 1), rel=1e-12,
                                      abs=16 * (n + 2) * np.finfo(float).eps * terms)


def test_an_order_whose_graph_would_pass_the_budget_is_refused_before_it_is_built(
        capsys, monkeypatch):
    monkeypatch.setattr(cli, "NODE_BUDGET", 2_000)
    code, out, err = run(capsys, "grad", "log(x) * sin(x)", "--order", "30", "--at", "x=0.5")
    assert code == 2 and out == ""
    stopped = int(re.search(r"at order (\d+)", err).group(1))
    assert err.startswith("symgrad: error: --order 30: the derivatives' graph would pass 2,000 "
                          "nodes at order ") and f"ask for order {stopped - 1} or less" in err
    # the orders below it run, within the budget
    report = run_json(capsys, "grad", "log(x) * sin(x)", "--order", str(stopped - 1), "--at",
                      "x=0.5")
    assert len(report["derivatives"]) == stopped - 1
    with pytest.raises(SystemExit):
        main(["grad", "--help"])
    assert "pass 2,000 nodes" in " ".join(capsys.readouterr().out.split())


# -- dot and code ----------------------------------------------------------------------------------


def test_dot_output(capsys):
    code, out, err = run(capsys, "grad", "(x + y) * max(y, z)", "--format", "dot")
    assert code == 0 and err == ""
    text = out.strip()
    assert text.startswith("digraph")
    assert text.endswith("}")
    assert text.count("{") == text.count("}")
    assert "dashed" in text                            # derivative nodes and edges
    assert "->" in text
    node_lines = [line for line in text.splitlines() if "[label=" in line]
    dashed = [line for line in node_lines if "dashed" in line]
    assert dashed and len(dashed) < len(node_lines)    # forward nodes are drawn solid


def test_code_output_is_a_function_that_computes_the_gradient(capsys):
    code, out, err = run(capsys, "grad", "(x + y) * max(y, z)", "--format", "code")
    assert code == 0 and err == ""
    assert out.startswith("def f(x, y, z):")
    assert "    return " in out
    namespace = {"np": np}
    exec(out, namespace)
    assert [float(v) for v in namespace["f"](-2.0, 5.0, -4.0)] == [15.0, 5.0, 8.0, 0.0]


def test_picture_output(capsys, tmp_path):
    path = tmp_path / "graph.svg"
    code, out, err = run(capsys, "grad", "sin(x) * y", "-o", str(path))
    assert code == 0
    assert "<svg" in path.read_text()


# -- bad input -------------------------------------------------------------------------------------

BAD = {
    "parse error": ["grad", "x +* y"],
    "hostile formula": ["grad", "__import__('os').system('true')"],
    "unknown function": ["grad", "foo(x)"],
    "unknown --wrt": ["grad", "x * y", "--wrt", "q"],
    "bad --wrt name": ["grad", "x * y", "--wrt", "x;y"],
    "repeated --wrt": ["grad", "x * y", "--wrt", "x,x"],
    "missing --at value": ["grad", "x * y", "--at"],
    "--at misses a variable": ["grad", "x * y", "--at", "x=1", "--format", "json"],
    "--at empty value": ["grad", "x * y", "--at", "x=,y=1"],
    "--at without =": ["grad", "x * y", "--at", "x:1"],
    "--at without name": ["grad", "x * y", "--at", "=1"],
    "--at not a number": ["grad", "x * y", "--at", "x=abc,y=1"],
    "--at python code": ["grad", "x * y", "--at", "x=__import__('os'),y=1"],
    "--at unclosed list": ["grad", "x * y", "--at", "x=[1,2,y=1"],
    "--at ragged list": ["grad", "sum(v)", "--at", "v=[[1,2],[3]]"],
    "--at twice": ["grad", "x * y", "--at", "x=1,x=2,y=3"],
    "--at unused": ["grad", "x * y", "--at", "x=1,y=2,w=3", "--format", "json"],
    "--order with two wrt": ["grad", "x * y", "--order", "2", "--wrt", "x,y"],
    "--order with default wrt": ["grad", "x * y", "--order", "2"],
    "--order zero": ["grad", "x * y", "--order", "0"],
    "--order not a number": ["grad", "x * y", "--order", "two"],
    "json without --at": ["grad", "x * y", "--format", "json"],
    "unknown format": ["grad", "x * y", "--format", "yaml"],
    "unknown command": ["integrate", "x"],
    "no command": [],
    "no formula": ["grad"],
    "non-scalar formula": ["grad", "v * 2", "--at", "v=[1,2]"],
    "no variables": ["grad", "1 + 2"],
    "shape clash": ["grad", "sum(W)", "--at", "W=[[1,2],[3,4]]", "--shape", "W=3x3"],
    "disconnected hessian": ["hessian", "x", "--wrt", "x,y", "--at", "x=1,y=1"],
    "bad picture suffix": ["grad", "x * y", "-o", "graph.txt"],
    "max of no entries": ["grad", "max(x)", "--at", "x=[]"],
    "max of an empty slice": ["grad", "max(x[2:])", "--at", "x=[1,2]"],
    "index past a named dimension": ["grad", "x[5]", "--shape", "x=n", "--at", "x=[1,2]"],
    "index into a named dimension bound to 0": ["grad", "softmax(x)[0]", "--shape", "x=n",
                                                "--at", "x=[]", "--format", "json"],
    "dense hessian too large": ["hessian", "sum(x*x)", "--shape", "x=1000000000"],
    "--order too large": ["grad", "x * x", "--order", "99999999999999999999"],
    "--order past its bound": ["grad", "x * x", "--order", "1001"],
    "--at number that overflows": ["grad", "x * 2", "--at", "x=1e400"],
    "--at integer that overflows": ["grad", "sum(x)", "--shape", "x=2", "--at",
                                    "x=[1, " + "9" * 400 + "]"],
    "--shape longer than NumPy indexes": ["grad", "sum(x)", "--shape",
                                          "x=99999999999999999999999"],
}


@pytest.mark.parametrize("argv", list(BAD.values()), ids=list(BAD))
def test_bad_input_exits_2_with_one_line(capsys, argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("symgrad: error: ")
    assert err.endswith("\n") and err.count("\n") == 1
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_parse_error_says_where(capsys):
    code, _, err = run(capsys, "grad", "x +* y")
    assert code == 2
    assert "column 4" in err


def test_a_list_formula_is_a_clean_error(capsys):
    code, _, err = run(capsys, "grad", "[x, y]")
    assert code == 2 and err.startswith("symgrad: error:")


def test_help_and_version_exit_0(capsys):
    # argparse's --help and --version end with SystemExit(0); either form of success is fine
    for argv in (["--version"], ["grad", "--help"]):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
        assert code == 0
    out, _ = capsys.readouterr()
    assert "symgrad" in out and "--wrt" in out


# -- the installed console script ------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("symgrad") is None,
                    reason="the symgrad console script is not on PATH")
def test_the_console_script():
    script = shutil.which("symgrad")
    done = subprocess.run([script, *TEXTBOOK, "--format", "json"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"value": 15.0, "grad": {"x": 5.0, "y": 8.0, "z": 0.0}}
    failed = subprocess.run([script, "grad", "x +* y"], capture_output=True, text=True, timeout=120,
                            check=False)
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert failed.stderr.startswith("symgrad: error:") and failed.stderr.count("\n") == 1


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "symgrad.cli", "grad", "x*y", "--at", "x=2,y=3",
                           "--format", "json"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["grad"] == {"x": 3.0, "y": 2.0}


def test_text_says_which_node_each_output_is(capsys):
    code, out, _ = run(capsys, *TEXTBOOK)
    assert code == 0
    assert "outputs: t2 (value), t1 (d/dx), d_out_d_y (d/dy), d_out_d_z (d/dz)" in out.splitlines()
    code, out, _ = run(capsys, "hessian", "x**2*y", "--at", "x=1,y=2")
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("outputs: "))
    assert "(d2/dx2)" in line and "(d2/dx dy)" in line and "(d2/dy2)" in line


@pytest.mark.parametrize("suffix, magic", [("svg", b"<"), ("png", b"\x89PNG\r\n\x1a\n"),
                                           ("pdf", b"%PDF-")])
@pytest.mark.parametrize("graphviz", [True, False], ids=["dot", "no-dot"])
def test_the_textbook_picture_in_every_format_with_or_without_graphviz(capsys, tmp_path,
                                                                       monkeypatch, suffix,
                                                                       magic, graphviz):
    import symgrad.render as render
    if graphviz and shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    if not graphviz:
        monkeypatch.setattr(render.shutil, "which", lambda name: None)
    path = tmp_path / f"g.{suffix}"
    code, out, err = run(capsys, "grad", "(x + y) * max(y, z)", "-o", str(path))
    assert (code, err) == (0, "") and out.strip() == f"wrote {path}"
    assert path.read_bytes().lstrip()[:len(magic)] == magic


def test_the_hessian_of_a_shifted_product_keeps_its_digits(capsys):
    # the Horner pass expanded (x - 1000) ** 8 into monomials: this printed [[8192.0]]
    product = "*".join(["(x-1000)"] * 8)
    code, out, _ = run(capsys, "hessian", product, "--at", "x=1001", "--format", "json")
    assert code == 0
    assert json.loads(out)["hessian"] == [[56.0]]


def test_a_dense_hessian_too_large_for_memory_exits_2(capsys):
    # over a named dimension the Hessian is sized only when evaluated: 200,000 ** 2 entries
    at = "x=[" + ",".join(["1"] * 200_000) + "]"
    code, out, err = run(capsys, "hessian", "sum(x*x)", "--shape", "x=n", "--at", at,
                         "--format", "json")
    assert code == 2 and out == ""
    assert err.startswith("symgrad: error: not enough memory") and err.count("\n") == 1


# -- the functions of the one op table, through the command line -----------------------------------


def test_new_functions_in_a_formula_evaluate_and_differentiate_as_numpy_and_scipy_do(capsys):
    import scipy.special
    W = np.array([[0.3, -1.2, 0.7], [1.1, 0.4, -0.5]])
    v = np.array([0.9, -0.3, 1.7])
    at = f"W={json.dumps(W.tolist())},v={json.dumps(v.tolist())}"
    formula = ("sum(einsum('ij,j->i', W, v) % 1.5) + sum(pad(v, 2, mode=\"reflect\") * erf(v[0]))"
               " + sum(logsumexp(W, axis=1))")
    report = run_json(capsys, "grad", formula, "--at", at)

    def value(W, v):
        return (np.sum(np.remainder(np.einsum("ij,j->i", W, v), 1.5))
                + np.sum(np.pad(v, 2, mode="reflect") * scipy.special.erf(v[0]))
                + np.sum(scipy.special.logsumexp(W, axis=1)))

    assert report["value"] == pytest.approx(value(W, v), rel=1e-12)
    # % has derivative 1 in its first operand almost everywhere; pad's reflection counts each
    # entry as often as it is copied; erf' = 2 exp(-x^2) / sqrt(pi)
    inner = np.ones(2)
    copies = np.array([np.sum(np.pad(np.eye(3)[k], 2, mode="reflect")) for k in range(3)])
    softmax = np.exp(W - scipy.special.logsumexp(W, axis=1, keepdims=True))
    want_W = np.outer(inner, v) + softmax
    want_v = W.T @ inner + copies * scipy.special.erf(v[0])
    want_v[0] += np.sum(np.pad(v, 2, mode="reflect")) * 2 * np.exp(-v[0] ** 2) / np.sqrt(np.pi)
    np.testing.assert_allclose(report["grad"]["W"], want_W, rtol=1e-12)
    np.testing.assert_allclose(report["grad"]["v"], want_v, rtol=1e-12)
    # and against central differences of the NumPy function, entry by entry
    step = 1e-6
    for name, point in (("W", W), ("v", v)):
        for index in np.ndindex(point.shape):
            bump = np.zeros_like(point)
            bump[index] = step
            args = {"W": W, "v": v}
            up, down = dict(args, **{name: point + bump}), dict(args, **{name: point - bump})
            difference = (value(**up) - value(**down)) / (2 * step)
            assert np.asarray(report["grad"][name])[index] == pytest.approx(difference, rel=1e-6)


@pytest.mark.parametrize("formula,column", [
    ("einsum('i\\x', v)", 10),
    ("sum(v) + 'v'", 10),
    ("pad(v, 1, mode='nope')", 1),
    ("einsum('i, v)", 13),
])
def test_a_bad_string_in_a_formula_exits_2_with_one_line_that_says_where(capsys, formula, column):
    code, out, err = run(capsys, "grad", formula, "--at", "v=[1,2,3]")
    assert code == 2 and out == ""
    assert err.startswith("symgrad: error: ") and err.count("\n") == 1
    assert f"column {column}" in err


def test_output_into_a_closed_pipe_ends_quietly():
    # a reader that is gone before symgrad writes (head done, a dot that is not installed): no
    # BrokenPipeError traceback, exit status 0 even under pipefail. The reader exits at once,
    # while symgrad takes a good part of a second to start, so the write meets a closed pipe
    done = subprocess.run(
        ["bash", "-c", f'set -o pipefail; "{sys.executable}" -m symgrad.cli grad "x * y" '
                       f'--format dot | "{sys.executable}" -c pass'],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
