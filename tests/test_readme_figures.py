"""The figures README.md quotes in its prose are the ones the code produces: each test recomputes a
figure from the code the sentence describes and reads the figure out of the sentence itself, so
editing either side fails here. (Figures after an output block are checked by tests/test_readme.py;
the CNN example's accuracy by tests/test_examples.py and the executed notebook's by
tests/test_notebooks.py, which run them anyway. Benchmark timings are not tested: the README names
the script that measures them.)"""

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad import cli

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))
from _common import statement_count  # noqa: E402  (the rule graph_economy.py counts by)

import test_rewrite_safety as rewrite_safety  # noqa: E402


def readme_text():
    """README.md with every run of whitespace as one space: prose is wrapped anywhere."""
    return " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())


def quoted(pattern):
    """The groups of the one sentence of README.md that ``pattern`` matches."""
    matches = [match.groups() for match in re.finditer(pattern, readme_text())]
    assert len(matches) == 1, f"README.md: {len(matches)} sentences match {pattern!r}"
    return matches[0]


def number(text):
    return float(text.replace(",", ""))


def rounded_as_quoted(value, figure):
    """``value`` rounded to as many decimals as ``figure`` (a string) shows."""
    decimals = len(figure.partition(".")[2])
    return f"{value:.{decimals}f}"


# -- the optimiser: statements of tanh's n-th derivative -------------------------------------------

def tanh_derivative_statements(order):
    """Statements of the compiled n-th derivative of tanh, built as graph_economy.py builds it."""
    with sg.use_graph():
        x = sg.var("x", shape=("n",))
        d = sg.tanh(x)
        for _ in range(order):
            d = sg.grad(sg.sum(d), x)
        return statement_count(sg.compile(d, inputs=[x]).source)


def test_tanh_derivative_statement_counts():
    extra, first, last = map(int, quoted(
        r"The n-th derivative of `tanh` then costs n \+ (\d+) statements at every order from "
        r"(\d+) to (\d+)"))
    low, high, low_order, high_order, at_eight, eight = map(int, quoted(
        r"higher_order\.py`\): (\d+) to (\d+) at orders (\d+) to (\d+) and (\d+) at order "
        r"(\d+), the\s+same programs"))
    counts = {order: tanh_derivative_statements(order) for order in range(first, last + 1)}
    assert all(count == order + extra for order, count in counts.items()), counts
    assert [counts[low_order], counts[high_order], counts[eight]] == [low, high, at_eight]


def test_tanh_derivative_graph_sizes():
    step, at_twenty, twenty, tree, twelve = map(int, (figure.replace(",", "") for figure in quoted(
        r"grows by (\d+)\s+nodes an order \((\d+) at order (\d+)\) where the product rule "
        r"doubled it \(([\d,]+) at order (\d+)\)")))
    with sg.use_graph() as graph:
        x, _ = sg.var("x"), sg.var("y")     # as higher_order.py builds it, whose figures these are
        d, sizes = sg.tanh(x), {}
        for order in range(1, twenty + 1):
            d = sg.grad(d, x)
            sizes[order] = graph.number_of_nodes()
    assert sizes[twenty] == at_twenty
    assert all(sizes[n + 1] - sizes[n] == step for n in range(2, twenty)), sizes
    from symgrad import differentiate
    compaction, differentiate.DERIVATIVE_SIMPLIFICATIONS[:] = \
        differentiate.DERIVATIVE_SIMPLIFICATIONS[:], []
    try:
        with sg.use_graph() as graph:
            x, _ = sg.var("x"), sg.var("y")
            d = sg.tanh(x)
            for _ in range(twelve):
                d = sg.grad(d, x)
            assert graph.number_of_nodes() == tree
    finally:
        differentiate.DERIVATIVE_SIMPLIFICATIONS[:] = compaction


def test_the_horner_accuracy_factor():
    from symgrad.optimize.polynomial import ACCURACY_FACTOR

    factor, = quoted(r"the running error bound of Horner's rule must be within (\d+)x of what")
    again, = quoted(r"the optimiser takes a Horner form instead where it is within (\d+)x of")
    assert number(factor) == number(again) == ACCURACY_FACTOR


# -- the fusing backend: tanh in a loop ----------------------------------------------------------

def test_tanh_in_loops_is_as_close_to_numpy_as_quoted():
    pytest.importorskip("numba")
    figure, = quoted(r"`tanh` in a loop is symgrad's own vectorisable form, within ([\d.]+) ulp of "
                     r"`np.tanh`")
    n = 200_000
    with sg.use_graph():
        x = sg.var("x", shape=(n,))
        t = sg.tanh(x)
        fn = sg.compile([t, t > 2.0], inputs=[x], backend="numba")     # two ops: one loop
    assert "_sg_tanh(" in fn.kernel_source
    rng = np.random.default_rng(20)
    worst = 0.0
    for scale in (1e-12, 1e-3, 0.3466, 1.0, 2.0, 5.0, 25.0):
        at = rng.uniform(-scale, scale, n)
        want = np.tanh(at)
        worst = max(worst, float(np.max(np.abs(fn(at)[0] - want) / np.spacing(np.abs(want)))))
    # the README's figure is a bound the loop meets, and no looser than the loop needs
    assert worst <= number(figure) < worst + 0.5, worst


# -- the examples' notebooks ---------------------------------------------------------------------

def test_the_digits_notebook_reached_the_quoted_accuracy():
    nbformat = pytest.importorskip("nbformat")
    figure, = quoted(r"`mlp_digits\.ipynb` \| an MLP trained with minibatch SGD on scikit-learn's "
                     r"digits \(([\d.]+) % test accuracy\)")
    notebook = nbformat.read(ROOT / "examples" / "mlp_digits.ipynb", as_version=4)
    printed = "".join(output.text for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.outputs
                      if output.output_type == "stream" and output.name == "stdout")
    accuracy = re.findall(r"^test accuracy: (\d\.\d+)$", printed, re.M)
    assert len(accuracy) == 1
    assert rounded_as_quoted(100 * float(accuracy[0]), figure) == figure, accuracy


# -- the rewrite-safety harness --------------------------------------------------------------------

def test_the_rewrite_safety_corpus_is_as_described():
    programs, orders, fewest, most, default, long = quoted(
        r"The corpus is (\d+) programs at (\d+) derivative orders, (\d+) to (\d+) points each; the "
        r"default profile draws ([\d,]+) polynomials, the long one ([\d,]+)")
    corpus = rewrite_safety.CORPUS
    points = [len(rewrite_safety.adversarial_points(roots, kinks))
              for _, _, roots, kinks in corpus.values()]
    assert int(programs) == len(corpus)
    assert int(orders) == sum(len(program[1]) for program in corpus.values())
    assert [int(fewest), int(most)] == [min(points), max(points)]
    from hypothesis import settings
    assert number(default) == settings.get_profile("ci").max_examples
    assert number(long) == settings.get_profile("long").max_examples


def test_the_rewrite_safety_points_and_tolerance_are_as_described():
    (fewest_ulps, most_ulps, smallest_offset, largest_offset, smallest_shift, largest_shift,
     smallest_magnitude, largest_magnitude) = quoted(
        r"near roots \(at, ([\d,]+) to ([\d,]+) ulps and relative offsets of (\S+) to (\S+) "
        r"away\), under shifts of (\S+) to (\S+), at magnitudes (\S+) to (\S+) of both signs")
    factor, ulps = quoted(r"The optimised error must stay within (\d+)x the unoptimised graph's "
                          r"error around the point plus (\d+) ulps")
    # near the top of a binade the smallest relative offset, 1e-12, is some 9,000 ulps: the
    # neighbours counted in ulps (up to 4,096) and the relative offsets fall apart at 8,000
    root, apart = 1.99, 8000 * math.ulp(1.99)
    distances = [abs(p - root) for p in rewrite_safety.near(root) if p != root]
    in_ulps = sorted({round(d / math.ulp(root)) for d in distances if d < apart})
    offsets = sorted({d / root for d in distances if d >= apart})
    assert [in_ulps[0], in_ulps[-1]] == [number(fewest_ulps), number(most_ulps)]
    assert np.allclose([offsets[0], offsets[-1]], [number(smallest_offset), number(largest_offset)],
                       rtol=1e-6)
    shifts = [abs(s) for s in rewrite_safety.SHIFTS]
    assert [min(shifts), max(shifts)] == [number(smallest_shift), number(largest_shift)]
    magnitudes = rewrite_safety.MAGNITUDES
    assert [min(magnitudes), max(magnitudes)] == [number(smallest_magnitude),
                                                  number(largest_magnitude)]
    assert number(factor) == rewrite_safety.ERROR_FACTOR and number(ulps) == rewrite_safety.ULPS


# -- scan's checkpoint=: peak memory of the char-RNN gradient -------------------------------------

def test_checkpointed_scan_peak_memory():
    import scan_checkpoint      # tests/benchmarks/scan_checkpoint.py, which measures them

    steps, stored, at_sqrt, sqrt_k, at_tenth, tenth_k = quoted(
        r"at T = ([\d,]+) steps, the peak memory of a gradient call is ([\d.]+) MiB when every "
        r"step is stored, ([\d.]+) MiB with `checkpoint=(\d+)` \(about √T\) and ([\d.]+) MiB "
        r"with `checkpoint=(\d+)`")
    at_best, best = quoted(r"The least memory is near k = √\(T c / r\), for a carry of c numbers "
                           r"and residuals of r numbers a step: ([\d.]+) MiB at k = (\d+) here")
    steps = int(number(steps))
    assert int(sqrt_k) == math.isqrt(steps) and int(tenth_k) == steps // 10
    # the carry is (8, 32); a step's residuals are the carry, the new carry and the log-softmax
    assert int(best) == round(math.sqrt(steps / 3))
    args = scan_checkpoint.data(steps)

    def mib(k):
        return scan_checkpoint.peak_bytes(scan_checkpoint.build(steps, k), args) / 2 ** 20
    figures = {None: stored, int(sqrt_k): at_sqrt, int(tenth_k): at_tenth, int(best): at_best}
    peaks = {k: mib(k) for k in [*figures, int(best) // 2, 2 * int(best)]}
    for k, figure in figures.items():
        assert float(f"{peaks[k]:.2g}") == number(figure), (k, peaks[k], figure)
    assert peaks[int(best)] == min(peaks.values()), peaks


# -- code generation: which intermediates the workspace holds ---------------------------------------

def test_the_workspace_bounds_are_as_quoted():
    from symgrad.codegen.memory import WORKSPACE_MAX, WORKSPACE_MIN
    least, most = map(number, quoted(r"float64 intermediates of ([\d,]+) to ([\d,]+) entries are "
                                     r"written into a \*\*workspace\*\*"))
    assert (least, most) == (WORKSPACE_MIN, WORKSPACE_MAX)


def test_the_spread_terms_made_in_blocks_are_as_quoted():
    from symgrad.codegen.memory import SPREAD_MIN
    (fraction,) = quoted(r"a term broadcast from arrays an (\w+) its size or less")
    assert {"half": 2, "quarter": 4, "eighth": 8, "sixteenth": 16}[fraction] == SPREAD_MIN


def test_the_sums_on_diagonals_are_as_large_as_quoted():
    from symgrad.codegen.memory import BLOCKED_SUM_MIN
    (mib,) = quoted(r"In a derivative's sum of ([\d.]+) MiB or more, a term that is a part of the "
                    r"identity seed times values is added on the diagonal")
    assert number(mib) == BLOCKED_SUM_MIN * 8 / 2 ** 20


def test_the_orders_node_budget_is_the_commands():
    assert f"derivatives' graph past {cli.NODE_BUDGET:,} nodes is refused" in readme_text()
