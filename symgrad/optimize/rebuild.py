"""The loop every pass runs in: copy the nodes the outputs need into a fresh graph, in evaluation
order, offering each node to the pass's rewrites before building it as it was.

Building through ``apply`` in a hash-consed graph does three things on the way: merges common
subexpressions, runs every op's local simplifications, and drops dead nodes (only ancestors of the
outputs are copied). A copy is faithful when its operands are faithful copies and it is built as
the node was: the same expression, which the local simplifications declined when the node was
first built, and which the structural rewrites declined in the copy before if they did then.
Such nodes are built straight into the graph, and offered only the rewrites that read more than
their operands' expressions (the graphs a rebuild makes are remembered with what it learnt), so
that a round after the first costs little where nothing changed. Imports graph and ops.
"""

import weakref
from collections import Counter

from ..graph import Graph
from ..ops import Expr, apply, const
from ..ops.core import BUILD_RULES, Applied


def rewrite(*ops, uses=False, readers=False, structural=False, operand_ops=None):
    """Mark a function ``rule(node, inputs, **attrs) -> Expr | None`` as a rewrite of ``ops``;
    with ``uses`` it is also given ``uses=[...]``, how many nodes (and outputs) read each of its
    operands in the graph being rebuilt, for rewrites that pay off only when an operand dies;
    with ``readers``, ``readers(expr)``, the same count for any node built so far (an operand's
    operand, say). Such a rewrite asks whether a count is one (whether a node dies with the one
    it replaces): the pass in place (optimize.inplace) offers the rewrites again to the reader of
    an operand left with one reader, not to those of an operand losing one of many. ``structural`` declares that its answer depends on nothing but the node
    (op, attributes, shape, dtype, whether it is a derivative) and its operands' expressions, and
    that it builds nothing when it answers None: a node it declined is not offered to it again
    while its operands are copied faithfully. ``operand_ops`` says that it declines, before it
    builds anything, every node none of whose operands is of one of these ops: it is then not
    called for such a node (most nodes are declined so, and a call costs more than the test)."""
    def register(rule):
        rule.ops = ops
        rule.operand_ops = None if operand_ops is None else frozenset(operand_ops)
        rule.wants_uses = uses
        rule.wants_readers = readers
        rule.structural = structural and not uses and not readers
        return rule
    return register


def index_rules(rules):
    by_op = {}
    for rule in rules:
        for op in rule.ops:
            by_op.setdefault(op, []).append(rule)
    return by_op


def offer(offered, data, graph, operand_nodes, skip_structural, operand_uses, readers):
    """Offer the node ``data``, whose operands are ``operand_nodes`` of ``graph``, each rewrite
    of ``offered`` in turn, but the structural ones when ``skip_structural``; ``operand_uses()``
    is the reader count of each operand, for the rules that ask. Returns (the rule that fired,
    its result), or (None, None) when every one declined."""
    counted = present = operands = None
    for rule in offered:
        if skip_structural and rule.structural:
            continue
        if rule.operand_ops is not None:
            if present is None:
                present = {graph._node[i]["op"] for i in operand_nodes}
            if rule.operand_ops.isdisjoint(present):
                continue
        if operands is None:
            operands = [Expr(graph, i) for i in operand_nodes]
        if rule.wants_uses or rule.wants_readers:
            extra = {}
            if rule.wants_uses:
                if counted is None:
                    counted = operand_uses()
                extra["uses"] = counted
            if rule.wants_readers:
                extra["readers"] = readers
            result = rule(data, operands, **data["attrs"], **extra)
        else:
            result = rule(data, operands, **data["attrs"])
        if result is not None:
            return rule, result
    return None, None


class _Learnt:
    """What a rebuild knows of the graph it made: that every node in it was built by ``apply``
    under ``build_rules`` (the local simplifications then in force), and which nodes the
    structural rewrites of ``rules`` declined with their operands as they are (``declined``), and
    how many readers the operands had when the rewrites that ask declined (``declined_uses``)."""

    __slots__ = ("build_rules", "rules", "declined", "declined_uses")

    def __init__(self, build_rules, rules, declined, declined_uses):
        self.build_rules, self.rules, self.declined = build_rules, rules, declined
        # for a declined node offered rewrites that read reader counts: its operands' counts then
        self.declined_uses = declined_uses


# the graphs rebuild made, with what it learnt: a later rebuild of one of them skips what it
# would only find again (a user's graph is not in it: its nodes may predate a build rule)
_LEARNT = weakref.WeakKeyDictionary()


def is_private(graph):
    """Whether ``graph`` is a copy rebuild made: the optimiser's own, which nobody else holds, so
    that a pass may change it in place."""
    return graph in _LEARNT


def rebuild(source, outputs, inputs, rules, log, replace=None):
    """Copy what ``outputs`` need from ``source`` into a new Graph, applying ``rules`` (op ->
    list of rewrites), and first ``replace(node, lookup)`` when given (``lookup(old key)`` is the
    copy's Expr). Returns the new graph and the map from old node keys to new ones."""
    target = Graph()
    mapping = {}
    needed = source.ancestors_in_order(outputs)
    uses = Counter(outputs)
    for node in needed:
        uses.update(source._node[node]["inputs"])
    # the readers of each copy: those of every source node it copies (merged or not)
    copy_uses = Counter()
    rule_set = frozenset(rule for offered in rules.values() for rule in offered)
    learnt = _LEARNT.get(source)
    build_rules = dict(BUILD_RULES)
    # the source's nodes were built by apply under the build rules now in force: a faithful copy
    # of one is what apply would build again, with nothing for them to simplify
    ours = learnt is not None and learnt.build_rules == build_rules
    declined_before = learnt.declined if ours and learnt.rules == (rule_set or learnt.rules) \
        else frozenset()
    declined = set()
    declined_uses = {}
    asks_uses = {op for op, offered in rules.items() if any(rule.wants_uses for rule in offered)}
    faithful = {}
    alike = {}          # whether each copy has its node's shape, dtype and numberness
    source_nodes, target_nodes = source._node, target._node

    def readers(expr):
        return copy_uses[expr.node]

    def place(node, copy):
        mapping[node] = copy
        copy_uses[copy] += uses[node]
    with target.lock:
        for node in inputs:
            data = source_nodes[node]
            place(node, target.variable(data["attrs"]["name"], data["shape"], data["dtype"]))
            faithful[node] = alike[node] = True
        for node in needed:
            if node in mapping:
                continue
            data = source_nodes[node]
            op = data["op"]
            if op == "var":
                place(node, target.variable(data["attrs"]["name"], data["shape"], data["dtype"]))
                faithful[node] = alike[node] = True
                continue
            if op == "const":
                place(node, const(data["value"], target, dtype=data["dtype"]).node)
                faithful[node] = alike[node] = True
                continue
            if not data["inputs"]:      # an op of no operand (identity): apply has no graph for it
                place(node, target.add(op, (), data["attrs"], data["shape"], data["dtype"]))
                faithful[node] = alike[node] = True
                continue
            images = tuple(mapping[i] for i in data["inputs"])
            intact = all(faithful[i] for i in data["inputs"])
            # a node the user built on a derivative keeps its order without becoming one
            stamp = data["order"] if data["derivative"] else 0
            fired = False
            with target.deriving(stamp, grad_of=carried_grad_of(source, data, mapping)):
                result = replace(node, lambda key: Expr(target, mapping[key])) if replace else None
                offered = rules.get(op, ()) if result is None else ()
                if offered:
                    fired_rule, result = offer(
                        offered, data, target, images,
                        skip_structural=intact and node in declined_before,
                        operand_uses=lambda: [uses[i] for i in data["inputs"]], readers=readers)
                    if fired_rule is not None:
                        log.append(Applied(fired_rule.__name__, _where(source, node)))
                        fired = True
                if result is not None:
                    copy = result.node
                elif intact and ours:
                    copy = target.add(op, images, data["attrs"], data["shape"], data["dtype"])
                elif all(alike[i] for i in data["inputs"]):
                    copy = _simplified_or_added(target, data, images)
                else:
                    copy = apply(op, *(Expr(target, i) for i in images), **data["attrs"]).node
            place(node, copy)
            copied = target_nodes[copy]
            own_form = not fired and result is None \
                and copied["key"] == (op, images, data["key"][2]) \
                and copied["shape"] == data["shape"] and copied["dtype"] == data["dtype"]
            faithful[node] = intact and own_form
            alike[node] = faithful[node] or _alike(copied, data)
            if own_form and copied["derivative"] == data["derivative"]:
                if rule_set:
                    declined.add(copy)
                    if op in asks_uses:
                        declined_uses[copy] = tuple(uses[i] for i in data["inputs"])
                elif intact and node in declined_before:
                    declined.add(copy)      # no rules offered: the earlier answers still hold
                    if node in learnt.declined_uses:
                        declined_uses[copy] = learnt.declined_uses[node]
            _carry_records(source, node, target, copy)
    name_outputs(source, outputs, target, mapping)
    _LEARNT[target] = _Learnt(build_rules, rule_set or (learnt.rules if ours else rule_set),
                              declined, declined_uses)
    return target, mapping


def renumbered(source, outputs, inputs):
    """The copy ``rebuild(source, outputs, inputs, {}, log)`` makes of a graph a pass finished in
    place (optimize.inplace), whose every node is as apply builds it: what the outputs need,
    keyed in evaluation order again, with the names, records and declined rewrites the copy
    would carry. Built straight into the new graph, without the checks rebuild makes of each
    node, which such a graph passes. Returns the new graph and the map from old keys to new."""
    learnt = _LEARNT[source]
    target = Graph()
    mapping = {}
    declined, declined_uses = set(), {}
    source_nodes = source._node
    for node in inputs:
        data = source_nodes[node]
        mapping[node] = target.variable(data["attrs"]["name"], data["shape"], data["dtype"])
    for node in source.ancestors_in_order(outputs):
        if node in mapping:
            continue
        data = source_nodes[node]
        op = data["op"]
        if op == "var":
            mapping[node] = target.variable(data["attrs"]["name"], data["shape"], data["dtype"])
            continue
        if op == "const":
            mapping[node] = const(data["value"], target, dtype=data["dtype"]).node
            continue
        if not data["inputs"]:
            mapping[node] = target.add(op, (), data["attrs"], data["shape"], data["dtype"])
            continue
        # the stamp target.deriving would set, set directly: this runs once per node
        target._order = data["order"] if data["derivative"] else 0
        target._grad_of = carried_grad_of(source, data, mapping)
        copy = mapping[node] = target.add(op, tuple(mapping[i] for i in data["inputs"]),
                                          data["attrs"], data["shape"], data["dtype"])
        target._order, target._grad_of = 0, None
        if node in learnt.declined:
            declined.add(copy)
            if node in learnt.declined_uses:
                declined_uses[copy] = learnt.declined_uses[node]
        _carry_records(source, node, target, copy)
    name_outputs(source, outputs, target, mapping)
    _LEARNT[target] = _Learnt(learnt.build_rules, learnt.rules, frozenset(declined),
                              declined_uses)
    return target, mapping


def _carry_records(source, node, target, copy):
    """What a copy keeps of the node it copies: the name a derivative result suggested (read
    out, so that it no longer depends on the nodes it was read through) and how it came to be."""
    name = source.readable_name(node) if source._node[node]["derivative"] else None
    if name and copy not in target.name_hints:
        target.name_hints[copy] = name
    if node in source.rewrites:
        records = target.rewrites.setdefault(copy, [])
        records.extend(r for r in source.rewrites[node] if r not in records)


def _alike(copied, data):
    """Whether a copy has the shape and dtype of the node it copies, and is a number (a 0-d
    constant, weak in NumPy's promotion) when the node is: then an op reading it has the shape
    and dtype it had, without apply working them out again."""
    return copied["shape"] == data["shape"] and copied["dtype"] == data["dtype"] \
        and (copied["op"] == "const" and copied["shape"] == ()) \
        == (data["op"] == "const" and data["shape"] == ())


def _simplified_or_added(target, data, images):
    """What apply would build of ``data``'s op on ``images``, copies alike its operands: the
    op's local simplifications are offered the operands, and the node otherwise has the shape
    and dtype it had (a function of its operands' shapes, dtypes and numberness)."""
    attrs = data["attrs"]
    rules = BUILD_RULES.get(data["op"])
    if rules:
        operands = [Expr(target, i) for i in images]
        for rule in rules:
            simpler = rule(operands, **attrs)
            if simpler is not None:
                return simpler.node
    return target.add(data["op"], images, attrs, data["shape"], data["dtype"])


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
