"""The statement order chosen for locality (codegen.plan.locality_order, on with
codegen.plan.LOCALITY): a reordering of the depth-first order that never changes a number, and
that runs an unrolled loop's backward pass step by step instead of one sweep over all the steps
per gradient."""

from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import symgrad as sg
from symgrad.codegen import plan as plan_module
from symgrad.codegen.numpy import planned
from symgrad.ops import OPS

import test_loops
import test_properties


@pytest.fixture(autouse=True)
def locality(monkeypatch):
    monkeypatch.setattr(plan_module, "LOCALITY", True)


def every_order_kept(plan, *schedule):
    return True


def derivative_span(plan):
    """The most statements between a derivative value's definition and its last use (not an
    output, which lives to the end, and not a view, which holds no array of its own)."""
    place = {step.node: k for k, step in enumerate(plan.steps)}
    nodes = plan.nodes
    return max(plan.last_use[node] - k for node, k in place.items()
               if nodes[node]["derivative"] and node not in plan.output_set
               and node in plan.last_use and not OPS[nodes[node]["op"]].emit.view)


def unrolled_rnn(steps):
    loss, grads, inputs = test_loops.char_rnn(steps, looped=False)
    return [loss, *grads], inputs


def test_the_unrolled_rnn_backward_runs_step_by_step(monkeypatch):
    steps = 50
    with sg.use_graph() as graph:
        outputs, inputs = unrolled_rnn(steps)
        nodes = [o.node for o in outputs], [i.node for i in inputs]
        depth_first = planned(graph, *nodes, reorder=False)
        local = planned(graph, *nodes)
        with monkeypatch.context() as patch:
            patch.setattr(plan_module, "LOCALITY", False)
            before = sg.compile(outputs, inputs)
        after = sg.compile(outputs, inputs)
    per_step = len(local.steps) / steps
    # depth first, each weight's gradient is a sweep over all the steps, and each step's
    # cotangent is kept from the sweep that makes it to the last one
    assert derivative_span(depth_first) > 5 * per_step
    assert derivative_span(local) < per_step
    assert [s.node for s in local.steps] != [s.node for s in depth_first.steps]
    data = test_loops.rnn_data(steps)
    for got, want in zip(after(*data), before(*data)):
        assert np.array_equal(got, want)


def test_a_short_program_keeps_the_depth_first_order():
    # the gradients' sums, started at the first step, would raise the peak of live arrays more
    # than the few steps' cotangents they spare
    with sg.use_graph() as graph:
        outputs, inputs = unrolled_rnn(3)
        nodes = [o.node for o in outputs], [i.node for i in inputs]
        depth_first = planned(graph, *nodes, reorder=False)
        local = planned(graph, *nodes)
        # an order of its own, not kept
        assert plan_module.locality_schedule(planned(graph, *nodes, reorder=False)) is not None
    assert [s.node for s in local.steps] == [s.node for s in depth_first.steps]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_the_order_is_topological_and_changes_no_number(data):
    with sg.use_graph() as graph:
        drawer = test_properties.GraphDrawer(data.draw)
        drawer.build(data.draw(st.integers(1, 8)))
        sinks = drawer.sinks()
        inputs = [drawer.variables[name] for name in sorted(drawer.variables)]
        outputs = sinks + sg.grad(sum(sg.sum(e) for e in sinks), inputs, disconnected="zero")
        nodes = [o.node for o in outputs], [i.node for i in inputs]
        plan = planned(graph, *nodes, reorder=False)
        schedule = plan_module.locality_schedule(plan)
        order = range(len(plan.steps)) if schedule is None else schedule[0]
        assert sorted(order) == list(range(len(plan.steps)))
        made = set()
        for k in order:
            assert all(operand in made for operand in plan.steps[k].operands)
            made.add(plan.steps[k].node)
        with mock.patch.object(plan_module, "LOCALITY", False):
            before = sg.compile(outputs, inputs)
        # every order taken, as if it cost less
        with mock.patch.object(plan_module, "_costs_no_more", every_order_kept):
            after = sg.compile(outputs, inputs)
    batch = data.draw(st.integers(1, 3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    values = [rng.uniform(-1.5, 1.5, [batch if d == test_properties.BATCH else d
                                      for d in v.shape]) for v in inputs]
    with np.errstate(all="ignore"):
        want, got = before(*values), after(*values)
    for g, w in zip(got, want):
        assert np.array_equal(g, w, equal_nan=True)

