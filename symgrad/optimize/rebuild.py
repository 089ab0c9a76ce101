"""The loop every pass runs in: copy the nodes the outputs need into a fresh graph, in evaluation
order, offering each node to the pass's rewrites before building it as it was.

Building through ``apply`` in a hash-consed graph does three things on the way: merges common
subexpressions, runs every op's local simplifications, and drops dead nodes (only ancestors of the
outputs are copied). Imports graph and ops.
"""

from collections import Counter

from ..graph import Graph
from ..ops import Expr, apply, const
from ..ops.core import Applied


def rewrite(*ops, uses=False, readers=False):
    """Mark a function ``rule(node, inputs, **attrs) -> Expr | None`` as a rewrite of ``ops``;
    with ``uses`` it is also given ``uses=[...]``, how many nodes (and outputs) read each of its
    operands in the graph being rebuilt, for rewrites that pay off only when an operand dies;
    with ``readers``, ``readers(expr)``, the same count for any node built so far (an operand's
    operand, say)."""
    def register(rule):
        rule.ops = ops
        rule.wants_uses = uses
        rule.wants_readers = readers
        return rule
    return register


def index_rules(rules):
    by_op = {}
    for rule in rules:
        for op in rule.ops:
            by_op.setdefault(op, []).append(rule)
    return by_op


def rebuild(source, outputs, inputs, rules, log, replace=None):
    """Copy what ``outputs`` need from ``source`` into a new Graph, applying ``rules`` (op ->
    list of rewrites), and first ``replace(node, lookup)`` when given (``lookup(old key)`` is the
    copy's Expr). Returns the new graph and the map from old node keys to new ones."""
    target = Graph()
    mapping = {}
    needed = source.ancestors_in_order(outputs)
    uses = Counter(outputs)
    for node in needed:
        uses.update(source.nodes[node]["inputs"])
    # the readers of each copy: those of every source node it copies (merged or not)
    copy_uses = Counter()

    def readers(expr):
        return copy_uses[expr.node]

    def place(node, copy):
        mapping[node] = copy
        copy_uses[copy] += uses[node]
    with target.lock:
        for node in inputs:
            data = source.nodes[node]
            place(node, target.variable(data["attrs"]["name"], data["shape"], data["dtype"]))
        for node in needed:
            if node in mapping:
                continue
            data = source.nodes[node]
            if data["op"] == "var":
                place(node, target.variable(data["attrs"]["name"], data["shape"], data["dtype"]))
                continue
            if data["op"] == "const":
                place(node, const(data["value"], target, dtype=data["dtype"]).node)
                continue
            operands = [Expr(target, mapping[i]) for i in data["inputs"]]
            # a node the user built on a derivative keeps its order without becoming one
            stamp = data["order"] if data["derivative"] else 0
            with target.deriving(stamp, grad_of=carried_grad_of(source, data, mapping)):
                result = replace(node, lambda key: Expr(target, mapping[key])) if replace else None
                for rule in rules.get(data["op"], ()) if result is None else ():
                    extra = {"uses": [uses[i] for i in data["inputs"]]} if rule.wants_uses else {}
                    if rule.wants_readers:
                        extra["readers"] = readers
                    result = rule(data, operands, **data["attrs"], **extra)
                    if result is not None:
                        log.append(Applied(rule.__name__, _where(source, node)))
                        break
                if result is None:
                    result = apply(data["op"], *operands, **data["attrs"])
            place(node, result.node)
            name = source.readable_name(node) if data["derivative"] else None
            if name and result.node not in target.name_hints:
                target.name_hints[result.node] = name
            if node in source.rewrites:
                records = target.rewrites.setdefault(result.node, [])
                records.extend(r for r in source.rewrites[node] if r not in records)
    name_outputs(source, outputs, target, mapping)
    return target, mapping


def _where(source, node):
    """A short description of the node a rewrite replaced: its op and its operands' ops (constant
    time: describing the whole expression would make every rewrite cost its ancestors)."""
    data = source.nodes[node]
    operands = ", ".join(source.nodes[i]["op"] if source.nodes[i]["op"] != "var"
                         else source.nodes[i]["attrs"]["name"] for i in data["inputs"])
    return f"{data['op']}({operands})"


def carried_grad_of(source, data, mapping):
    """What a copied derivative node says it came from: the copy of that forward node, or, when
    the forward node was not needed, its op's name (for the comment in the emitted code)."""
    origin = data["grad_of"]
    if origin is None or isinstance(origin, str):
        return origin
    return mapping[origin] if origin in mapping else source.nodes[origin]["op"]


def name_outputs(source, outputs, target, mapping):
    """An output keeps the name its own derivative call suggested, even when the optimised graph
    merged it with a node that suggested another."""
    for node in outputs:
        name = source.readable_name(node) if source.nodes[node]["derivative"] else None
        if name:
            target.name_hints[mapping[node]] = name
