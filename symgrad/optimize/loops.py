"""The optimiser inside loops (ops.loops' scan nodes): each loop's body keeps only what the
results read of it are computed from (a gradient's accumulator nobody reads, a stacked value
nobody reads, and the closed-over values only they needed, are dropped), and is optimised with
the same passes as the function; what the optimised body computes from closed-over values alone
moves out of the loop, computed once. Imports graph and ops.
"""

from ..graph import Graph
from ..ops import Expr, apply
from ..ops.core import Applied
from ..ops.loops import Body, _extract
from .rebuild import rebuild


def _loop_key(data):
    attrs = data["attrs"]
    return (data["inputs"], attrs["body"], attrs["reverse"], attrs["length"],
            attrs.get("checkpoint"))


def _read_results(graph, outputs):
    """loop key -> (carries whose final values are read, stacked body nodes read)."""
    read = {}
    for node in graph.ancestors_in_order(outputs):
        data = graph.nodes[node]
        if data["op"] == "scan":
            finals, stacked = read.setdefault(_loop_key(data), (set(), set()))
            kind, which = data["attrs"]["output"]
            (finals if kind == "final" else stacked).add(which)
    return read


def optimize_loops(graph, outputs, inputs, log, optimize):
    """The ``run`` of the optimiser's pass "loop bodies": ``optimize`` is the optimiser itself,
    run on each body."""
    read = _read_results(graph, outputs)
    if not read:
        return graph, outputs, inputs
    made = {}       # loop key -> (new body, carry position map, stacked node map, operands)

    def replace(node, lookup):
        data = graph.nodes[node]
        if data["op"] != "scan":
            return None
        key = _loop_key(data)
        if key not in made:
            made[key] = _rebuilt_loop(data, read[key], lookup, log, optimize)
        body, carry_position, stacked_node, operands = made[key]
        kind, which = data["attrs"]["output"]
        output = ("final", carry_position[which]) if kind == "final" \
            else ("stacked", stacked_node[which])
        attrs = dict(data["attrs"], body=body, output=output)
        return apply("scan", *operands, **attrs)

    target, mapping = rebuild(graph, outputs, inputs, {}, log, replace=replace)
    return target, [mapping[o] for o in outputs], [mapping[i] for i in inputs]


def _rebuilt_loop(data, read, lookup, log, optimize):
    body = data["attrs"]["body"]
    finals, stacked = read
    carries = body.needed_carries(finals, stacked)
    wanted = [body.carry_out[j] for j in carries] + sorted(stacked)
    placeholders = [body.carries[j] for j in carries] + list(body.xs) + list(body.closed)
    applied = []
    optimized = optimize(body.graph, wanted, placeholders, log=applied)
    inner, mapped = optimized.graph, dict(zip(placeholders, optimized.inputs))
    mapped_results = dict(zip(wanted, optimized.outputs))
    count_carries, count_xs = len(body.carries), len(body.xs)
    operand_of = {mapped[p]: lookup(data["inputs"][count_carries + count_xs + k]).node
                  for k, p in enumerate(body.closed)}
    # the graph being built (a loop of no operands reads nothing from it)
    target = lookup(data["inputs"][0]).graph if data["inputs"] else Graph()
    loop = [mapped[body.carries[j]] for j in carries] + [mapped[x] for x in body.xs]
    names = [f"c{k}" for k in range(len(carries))] + [f"x{k}" for k in range(count_xs)]
    results = [mapped_results[body.carry_out[j]] for j in carries] + \
        [mapped_results[n] for n in sorted(stacked)]
    new_graph, new_loop, closed, closed_values, new_results = _extract(
        inner, loop, names, results, target, operand_of)
    new_body = Body(new_graph, new_loop[:len(carries)], new_loop[len(carries):], closed,
                    new_results[:len(carries)], new_results[len(carries):])
    operands = [lookup(data["inputs"][j]) for j in carries] + \
        [lookup(data["inputs"][count_carries + i]) for i in range(count_xs)] + \
        [Expr(target, value) for value in closed_values]
    dropped = count_carries - len(carries)
    if dropped or len(closed) < len(body.closed):
        log.append(Applied("drop_unread_loop_results",
                           f"scan: {dropped} of {count_carries} carries, "
                           f"{len(body.closed) - len(closed)} of {len(body.closed)} "
                           f"closed-over inputs"))
    for record in applied:
        log.append(Applied(record.rule, f"in a loop's body: {record.where}"))
    stacked_node = dict(zip(sorted(stacked), new_results[len(carries):]))
    return new_body, {j: k for k, j in enumerate(carries)}, stacked_node, operands
