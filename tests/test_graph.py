"""The IR: hash-consing, variables by name, rollback of failed calls, topological walks."""

import random

import networkx as nx
import numpy as np
import pytest

import symgrad as sg
from symgrad.graph import Graph


def snapshot(graph):
    """Everything a failed call must leave untouched (keys it used are not handed out again)."""
    return (graph.number_of_nodes(), graph.number_of_edges(),
            sorted(graph.nodes), sorted(graph.edges(data="positions")), graph.variables,
            dict(graph.name_hints))


# -- the graph object ------------------------------------------------------------------------------


def test_expressions_live_in_one_networkx_digraph(fresh_graph):
    x = sg.var("x")
    f = sg.sin(x) * x
    assert isinstance(f.graph, nx.DiGraph)
    assert f.graph is x.graph is fresh_graph is sg.default_graph()
    assert f.node in f.graph
    assert f.graph.has_edge(x.node, f.node)


def test_node_keys_are_in_creation_order():
    x = sg.var("x")
    a = sg.exp(x)
    b = a + 1.0
    c = b * a
    assert x.node < a.node < b.node < c.node
    assert list(x.graph.nodes) == sorted(x.graph.nodes)


def test_use_graph_nests_and_restores():
    outer = sg.default_graph()
    with sg.use_graph() as inner:
        assert sg.default_graph() is inner is not outer
        assert sg.var("x").graph is inner
    assert sg.default_graph() is outer
    assert "x" not in outer.variables


# -- hash-consing ----------------------------------------------------------------------------------


def test_same_op_on_same_operands_is_the_same_node():
    x, y = sg.var("x"), sg.var("y")
    assert (x + y).node == (x + y).node
    assert sg.sin(x * y).node == sg.sin(x * y).node
    assert (x + y).node != (y + x).node            # operand order matters
    assert (x + y).node != (x - y).node


def test_constants_with_the_same_value_are_one_node():
    x = sg.var("x")
    assert (x * 2.0).node == (x * 2.0).node
    assert sg.const(np.eye(3)).node == sg.const(np.eye(3)).node
    assert sg.const(np.eye(3)).node != sg.const(np.eye(3) * 2).node
    assert sg.const(np.zeros(2)).node != sg.const(np.zeros((2, 1))).node


def test_a_lifted_number_is_the_constant_const_makes_of_it():
    # lift remembers the constant of each Python number per graph: the node must be the one
    # sg.const builds, of the dtype the other operand asks for, and 0.0 and -0.0 stay apart
    # (a comparison: no build rule drops its operand)
    with sg.use_graph():
        x, x32 = sg.var("x", shape=(2,)), sg.var("x32", shape=(2,), dtype="float32")
        for number in (0.5, 2, 2.0, 0.0, -0.0, float("inf"), -3):
            for operand in (x, x32):
                lifted = (operand < number).inputs[1]
                again = (operand < number).inputs[1]
                made = sg.const(number, dtype=operand.data["dtype"])
                assert lifted.node == again.node == made.node
                assert lifted.data["value"].dtype == operand.dtype
                assert np.array_equal(lifted.data["value"], number)
                assert np.signbit(lifted.data["value"]) == np.signbit(number)
        assert (x < 0.0).inputs[1].node != (x < -0.0).inputs[1].node
        assert (x < 2).inputs[1].node == (x < 2.0).inputs[1].node
        nan = (x < float("nan")).inputs[1]
        assert nan.op == "const" and np.isnan(nan.data["value"])


def test_a_lifted_number_whose_constant_was_rolled_back_is_made_again():
    with sg.use_graph() as g:
        v = sg.var("v", shape=(3,))
        before = g.number_of_nodes()
        with pytest.raises(sg.ShapeError):
            v @ 0.25                            # lifts 0.25, then refuses the scalar operand
        assert g.number_of_nodes() == before    # the constant went with the failed call
        quarter = (v * 0.25).inputs[1]
        assert quarter.node in g and quarter.op == "const"
        assert quarter.data["value"] == 0.25
        assert quarter.node == sg.const(0.25).node


def test_atomically_keeps_a_success_and_rolls_back_a_failure():
    g = Graph()
    x = g.variable("x", ())

    def build(operand, fail):
        node = g.add("sin", (operand,), {}, (), "float64")
        if fail:
            raise RuntimeError("boom")
        return node

    before = snapshot(g)
    with pytest.raises(RuntimeError):
        g.atomically(build, x, fail=True)
    assert snapshot(g) == before and g.find("sin", (x,), {}) is None
    node = g.atomically(build, x, fail=False)
    assert node in g and g.find("sin", (x,), {}) == node


def test_attributes_are_part_of_the_key():
    v = sg.var("v", shape=(3, 4))
    assert v.sum(axis=0).node == v.sum(axis=0).node
    assert v.sum(axis=0).node != v.sum(axis=1).node
    assert v.sum(axis=0).node != v.sum(axis=0, keepdims=True).node


def test_graph_add_hash_conses_directly():
    g = Graph()
    x = g.variable("x", ())
    a = g.add("sin", (x,), {}, (), "float64")
    assert g.add("sin", (x,), {}, (), "float64") == a
    assert g.add("cos", (x,), {}, (), "float64") != a
    assert g.number_of_nodes() == 3


def test_x_times_x_has_one_edge_with_both_positions():
    x = sg.var("x")
    square = x * x
    graph = square.graph
    assert graph.nodes[square.node]["inputs"] == (x.node, x.node)
    assert graph.number_of_edges(x.node, square.node) == 1
    assert graph.edges[x.node, square.node]["positions"] == (0, 1)
    y = sg.var("y")
    product = x * y
    assert graph.edges[x.node, product.node]["positions"] == (0,)
    assert graph.edges[y.node, product.node]["positions"] == (1,)


def test_parsed_and_built_expressions_share_nodes():
    x, y = sg.var("x"), sg.var("y")
    built = sg.sin(x) * y
    before = built.graph.number_of_nodes()
    assert sg.parse("sin(x) * y").node == built.node
    assert built.graph.number_of_nodes() == before


# -- variables -------------------------------------------------------------------------------------


def test_variables_are_identified_by_name():
    a = sg.var("x")
    b = sg.var("x")
    assert a.node == b.node
    assert sg.parse("x").node == a.node
    assert sg.var("W", shape=(2, 3)).node == sg.var("W", shape=(2, 3)).node
    assert sg.var("y").node != a.node
    assert sg.default_graph().variables == {"x": a.node, "W": sg.var("W", (2, 3)).node,
                                            "y": sg.var("y").node}


def test_redeclaring_a_variable_with_another_shape_is_a_shape_error():
    sg.var("x")
    sg.var("W", shape=(2, 3))
    with pytest.raises(sg.ShapeError):
        sg.var("x", shape=(3,))
    with pytest.raises(sg.ShapeError):
        sg.var("W", shape=(3, 2))
    with pytest.raises(sg.ShapeError):
        sg.var("W", shape=("n", 3))
    with pytest.raises(sg.ShapeError):
        sg.parse("x + 1", shapes={"x": (2,)})
    assert sg.var("W", shape=(2, 3)).shape == (2, 3)


def test_the_same_name_in_another_graph_is_another_variable():
    sg.var("x")
    with sg.use_graph():
        assert sg.var("x", shape=(5,)).shape == (5,)
    assert sg.var("x").shape == ()


def test_variables_of_an_expression_are_sorted_and_free_only():
    z, a, m = sg.var("z"), sg.var("a"), sg.var("m")
    f = z * sg.exp(a) + 1.0
    assert list(f.variables) == ["a", "z"]
    assert f.variables["z"].node == z.node
    assert list(m.variables) == ["m"]
    assert sg.const(1.0).variables == {}


# -- failed calls leave the graph as it was --------------------------------------------------------


# Every public call that can fail is checked against a complete snapshot of the graph in
# tests/test_reliability.py; the tests here are about Graph.atomic itself.


def test_a_variable_created_by_a_failed_call_is_forgotten():
    with pytest.raises(sg.ParseError):
        sg.parse("exp(fresh) + $")
    assert "fresh" not in sg.default_graph().variables
    assert sg.var("fresh", shape=(2,)).shape == (2,)       # no stale declaration left behind


def test_atomic_rolls_back_every_node_added_in_the_block():
    g = Graph()
    x = g.variable("x", ())
    sin = g.add("sin", (x,), {}, (), "float64")
    before = snapshot(g)
    with pytest.raises(RuntimeError):
        with g.atomic():
            y = g.variable("y", ())
            a = g.add("multiply", (sin, y), {}, (), "float64")
            g.add("multiply", (a, a), {}, (), "float64")
            assert g.add("sin", (x,), {}, (), "float64") == sin
            raise RuntimeError("boom")
    assert snapshot(g) == before
    again = g.add("multiply", (sin, sin), {}, (), "float64")
    assert again not in (y, a)                 # a key that escaped the failed block stays dead
    assert y not in g and a not in g
    assert set(g.predecessors(again)) == {sin}


def test_a_successful_atomic_block_keeps_its_nodes():
    g = Graph()
    with g.atomic():
        x = g.variable("x", ())
        g.add("sin", (x,), {}, (), "float64")
    assert g.number_of_nodes() == 2


# -- walks -----------------------------------------------------------------------------------------


def test_ancestors_in_order_is_a_topological_order_of_exactly_the_ancestors():
    rng = random.Random(0)
    g = Graph()
    nodes = [g.variable(f"v{i}", ()) for i in range(5)]
    for i in range(300):
        arity = rng.choice([1, 2, 3])
        inputs = tuple(rng.choice(nodes) for _ in range(arity))
        nodes.append(g.add(f"op{arity}", inputs, {"i": i}, (), "float64"))
    for root_set in ([nodes[-1]], nodes[-5:], [nodes[150], nodes[3], nodes[150]]):
        order = g.ancestors_in_order(root_set)
        expected = set(root_set).union(*(nx.ancestors(g, r) for r in root_set))
        assert set(order) == expected
        assert len(order) == len(expected)                 # no duplicates
        position = {node: i for i, node in enumerate(order)}
        for node in order:
            for operand in g.nodes[node]["inputs"]:
                assert position[operand] < position[node]


def test_ancestors_in_order_is_iterative_on_a_30000_node_chain():
    g = Graph()
    node = g.variable("x", ())
    first = node
    for i in range(30_000):
        node = g.add("sin" if i % 2 else "cos", (node,), {}, (), "float64")
    order = g.ancestors_in_order([node])
    assert len(order) == 30_001
    assert order[0] == first and order[-1] == node
    assert order == sorted(order)



def test_the_cycle_collector_is_paused_while_a_derivative_is_built_and_restored_after():
    # full collections walk every live object: on a 100k-op chain they took a third of sg.grad
    import gc
    seen = []

    def rule(g, out, x):
        seen.append(gc.isenabled())
        return [g * 2.0]

    x = sg.var("x")
    y = sg.custom_gradient(x * 2.0, [x], rule)
    assert gc.isenabled()
    sg.grad(y, x)
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        sg.grad(y * 3.0, x)         # a caller who turned it off keeps it off
        assert seen == [False, False] and not gc.isenabled()
    finally:
        gc.enable()
