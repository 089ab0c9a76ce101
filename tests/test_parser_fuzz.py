"""A short run of the parser fuzz target (tests/fuzz_parser.py) as part of the suite.

Whatever the text, sg.parse returns an Expr or raises ParseError or ShapeError, a failure leaves the
graph unchanged, and no audit event fires. The long run is ``python tests/fuzz_parser.py``.
"""

import pytest
from hypothesis import find, given, settings

import fuzz_parser
from fuzz_parser import check

ANY_TEXT, MUTATED, FORMULAS = fuzz_parser.strategies()


@settings(max_examples=150, deadline=None)
@given(ANY_TEXT)
def test_arbitrary_text(text):
    check(text)


@settings(max_examples=150, deadline=None)
@given(MUTATED)
def test_mutated_formulas(text):
    check(text)


@settings(max_examples=150, deadline=None)
@given(FORMULAS)
def test_formulas(text):
    check(text)


# the hostile formulas are long by design; Hypothesis warns when it describes one
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@pytest.mark.parametrize("outcome", ["ok", "parse", "shape"])
def test_the_formulas_reach_every_outcome(outcome):
    # the oracle is only worth something if parsing succeeds and fails both ways along the way
    find(FORMULAS, lambda text: check(text) == outcome, settings=settings(database=None))


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x01x + 1", b"\x01\xff\xfe", b"\x02\x03\x04",
                                  bytes(range(256))])
def test_fuzzer_bytes_become_text(data):
    assert isinstance(fuzz_parser.text_of(data), str)
    check(fuzz_parser.text_of(data))


def test_the_oracle_catches_what_it_should():
    graph = fuzz_parser.fresh_graph()
    assert check("sum(tanh(W @ v))", graph) == "ok"
    assert check("x.__class__", graph) == "parse"
    assert check("W @ W", graph) == "shape"
    with pytest.raises(AssertionError, match="changed the graph"):
        check("v + 1 +", _GrowsOnFailure(graph))


class _GrowsOnFailure:
    """A graph stand-in whose state changes between the oracle's two looks at it."""

    def __init__(self, graph):
        self.graph, self.looks = graph, 0

    def number_of_nodes(self):
        self.looks += 1
        return self.graph.number_of_nodes() + self.looks

    def __getattr__(self, name):
        return getattr(self.graph, name)
