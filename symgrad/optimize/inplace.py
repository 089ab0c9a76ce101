"""A rule pass finished in place: after the first copy of a rule pass, the rewrites that copy's
order and reader counts kept from firing are applied where they stand, from a worklist, instead
of in whole new copies of the graph (issue 23, item 1). On the 10k-op chain of
tests/benchmarks/compile_time.py the second copy fired 1,110 rewrites among 30,000 nodes and a
third copy only confirmed the fixed point.

Only a graph the optimiser made (rebuild's copy, which nobody else holds) is changed. A rewrite
that fires at node n builds its result r into the same graph (through apply, which hash-conses
and simplifies it); every reader of n then reads r instead, re-keyed in the hash-cons table, and
a reader that becomes a node already there is replaced by that node in turn. A node nothing
reads any more is removed, with what only it read. The readers whose operands changed, the
readers of operands that lost a reader (a rewrite that pays only when an operand dies may pay
now) and the nodes the rewrites built are offered the rules again, in evaluation order, until
none fires.

Keys stop being an evaluation order (a reader is older than the r it now reads), which later
passes rely on: the optimiser copies such a graph once more, without rules, to renumber it.
Imports graph, ops and optimize.rebuild.
"""

import heapq
from collections import Counter

import networkx as nx

from ..ops import Expr
from ..ops.core import BUILD_RULES, Applied
from .rebuild import _LEARNT, _alike, _where, offer

# a guard, never reached by the rules we have: each node may be rewritten this many times over
REWRITES_PER_NODE = 8


class NotInPlace(Exception):
    """A rewrite built a node unlike the one it replaces (another shape or dtype, or a number
    where there was an array): its readers' shapes and dtypes must be worked out again, which
    the copy does."""


def rewrite_in_place(graph, outputs, inputs, rules, log):
    """Offer the nodes that ``outputs`` need the rewrites of ``rules`` (op -> list), applying each
    one that fires in ``graph`` itself, until none fires. ``outputs`` (a list) is updated where an
    output is replaced. Returns how many rewrites fired; raises NotInPlace, with ``graph`` left
    consistent and part-rewritten, when the copy must take over."""
    return _InPlace(graph, outputs, inputs, rules, log).run()


class _InPlace:
    def __init__(self, graph, outputs, inputs, rules, log):
        self.graph, self.outputs, self.rules, self.log = graph, outputs, rules, log
        self.nodes, self.succ, self.pred = graph._node, graph._succ, graph._pred
        self.kept = Counter(outputs)            # outputs hold their nodes as a reader would
        self.inputs = set(inputs)
        needed = graph.ancestors_in_order(outputs)
        # how many operand slots of the nodes needed, and outputs, read each node: what the rules
        # are told of an operand's readers (nodes built on the way and dropped are not counted)
        self.uses = Counter(outputs)
        for node in needed:
            self.uses.update(self.nodes[node]["inputs"])
        self.counted = set(needed)
        self.position = {node: (k,) for k, node in enumerate(needed)}
        learnt = _LEARNT.get(graph)
        self.rule_set = frozenset(rule for offered in rules.values() for rule in offered)
        # what the copy's rewrites declined, with the operands they still have, and the
        # operands' reader counts then
        known = learnt is not None and learnt.rules == self.rule_set
        self.declined = set(learnt.declined) if known else set()
        self.declined_uses = dict(learnt.declined_uses) if known else {}
        self.fired = 0
        self.changed = set()    # nodes whose operands changed since the last downstream pass
        self.removed_ops = {}   # node removed -> its op
        self.limit = REWRITES_PER_NODE * (len(needed) + 1)
        self._drop_unneeded(set(needed) | self.inputs)
        self.queue = [(self.position[node], node) for node in needed if self._undecided(node)]
        self.queued = {node for _, node in self.queue}

    def _undecided(self, node):
        """Whether a rewrite of ``rules`` could answer otherwise at ``node`` than it did in the
        copy: the node was not declined there, or it was by rewrites that read reader counts,
        and these have changed (or are not known)."""
        data = self.nodes[node]
        offered = self.rules.get(data["op"])
        if not offered or not data["inputs"]:
            return False
        if node not in self.declined:
            return True
        if any(rule.wants_readers for rule in offered):
            return True
        if any(rule.wants_uses for rule in offered):
            return self.declined_uses.get(node) != tuple(self.uses[i] for i in data["inputs"])
        return False     # the others' answers depend on the node and its operands alone

    # -- the worklist ---------------------------------------------------------------------------

    def run(self):
        nodes, queue = self.nodes, self.queue
        try:
            while True:
                while queue:
                    _, node = heapq.heappop(queue)
                    self.queued.discard(node)
                    if node in nodes:
                        self._visit(node)
                if not self.changed:
                    break
                self._offer_build_rules_downstream()
        finally:
            self._settle()
        return self.fired

    def _settle(self):
        """What the copy a pass ends with would hold of the nodes the pass leaves, where the
        pass in place left it otherwise; and what the rewrites declined, for the copy that comes
        next (rebuild reads it)."""
        nodes = self.nodes
        # names stay where a copy keeps them: on derivative nodes, on leaves only when outputs
        # (an output that became a variable or a forward node is named by that node)
        hints = self.graph.name_hints
        for node in [n for n in hints if n in nodes and not (
                nodes[n]["derivative"] and (nodes[n]["inputs"] or self.kept[n]))]:
            del hints[node]
        for data in nodes.values():
            if not data["inputs"]:
                # a leaf (a constant a rewrite built in a derivative) belongs to no order: the
                # copy makes it outside every derivative
                data["order"], data["derivative"], data["grad_of"] = 0, False, None
            elif data["grad_of"] in self.removed_ops and not isinstance(data["grad_of"], str):
                # a derivative node whose forward node is gone says its op, as the copy would
                data["grad_of"] = self.removed_ops[data["grad_of"]]
        nx._clear_cache(self.graph)
        learnt = _LEARNT.get(self.graph)
        if learnt is not None:
            learnt.rules, learnt.declined = self.rule_set, frozenset(self.declined)
            learnt.declined_uses = self.declined_uses

    def _push(self, node):
        if node not in self.queued and node in self.nodes and self.nodes[node]["inputs"] \
                and self.nodes[node]["op"] in self.rules:
            self.queued.add(node)
            heapq.heappush(self.queue, (self.position[node], node))

    def _visit(self, node):
        data = self.nodes[node]
        offered = self.rules[data["op"]]
        skip_structural = node in self.declined
        if skip_structural and all(rule.structural for rule in offered):
            return
        graph = self.graph
        mark = graph.next_key
        stamp = data["order"] if data["derivative"] else 0
        with graph.deriving(stamp, grad_of=data["grad_of"]):
            rule, result = offer(offered, data, graph, data["inputs"],
                                 skip_structural, lambda: [self._uses(i) for i in data["inputs"]],
                                 lambda expr: self._uses(expr.node))
        if rule is None or result.node == node:
            self._drop_new(mark, keep=())
            self.declined.add(node)
            if any(rule.wants_uses for rule in offered):
                self.declined_uses[node] = tuple(self.uses[i] for i in data["inputs"])
            return
        if not _alike(self.nodes[result.node], data):
            raise NotInPlace(rule.__name__)
        self.fired += 1
        if self.fired > self.limit:
            raise NotInPlace("the rewrites do not settle")
        self.log.append(Applied(rule.__name__, _where(graph, node)))
        self._adopt_new(mark, result.node, self.position[node])
        self._replace(node, result.node)

    def _offer_build_rules_downstream(self):
        """Offer apply's local simplifications to every node downstream of one whose operands
        changed, in evaluation order, as the next copy would (it rebuilds each such node through
        them): some look through several nodes (a product of a scalar spread by a chain of
        broadcasts and inserted axes is the product of the scalar). What they simplify is
        replaced as a rewrite's result is, and offered the rewrites again."""
        changed, self.changed = self.changed, set()
        nodes = self.nodes
        downstream = set()
        for node in self.graph.ancestors_in_order(self.outputs):
            if node not in nodes or not nodes[node]["inputs"]:
                continue
            if node in changed or not downstream.isdisjoint(nodes[node]["inputs"]):
                downstream.add(node)
                simpler = self._build_rules(node)
                if simpler is not None:
                    self._replace(node, simpler)

    def _uses(self, node):
        return self.uses[node]

    # -- replacing a node -----------------------------------------------------------------------

    def _replace(self, old, new):
        """Every reader of ``old`` reads ``new`` instead; readers that become nodes already in the
        graph are replaced by those in turn; ``old`` is removed if nothing reads it then."""
        nodes, succ, pred, cons = self.nodes, self.succ, self.pred, self.graph._cons
        pending = [(old, new)]
        while pending:
            old, new = pending.pop()
            if old == new or old not in nodes:
                continue
            self._carry_records(old, new)
            if self.kept[old] and old not in self.inputs:
                self.outputs[:] = [new if o == old else o for o in self.outputs]
                self.uses[old] -= self.kept[old]
                self.uses[new] += self.kept[old]
                self.kept[new] += self.kept.pop(old)
            for reader, edge in list(succ[old].items()):
                data = nodes[reader]
                inputs = list(data["inputs"])
                for position in edge["positions"]:
                    inputs[position] = new
                inputs = tuple(inputs)
                key = (data["op"], inputs, data["key"][2])
                del succ[old][reader], pred[reader][old]
                self.uses[old] -= len(edge["positions"])
                self.uses[new] += len(edge["positions"])
                existing = cons.get(key)
                if cons.get(data["key"]) == reader:
                    del cons[data["key"]]
                data["inputs"], data["key"] = inputs, key
                self.changed.add(reader)
                self._link(new, reader, edge["positions"])
                self.declined.discard(reader)
                self.declined_uses.pop(reader, None)
                if existing is not None and existing != reader:
                    self.position.setdefault(existing, self.position[reader])
                    pending.append((reader, existing))
                    continue
                cons[key] = reader
                simpler = self._build_rules(reader)
                if simpler is not None:
                    pending.append((reader, simpler))
                else:
                    self._push(reader)
            self._remove_if_dead(old)

    def _link(self, operand, reader, positions):
        edge = self.pred[reader].get(operand)
        if edge is None:
            edge = {"positions": tuple(positions)}
            self.succ[operand][reader] = edge
            self.pred[reader][operand] = edge
        else:
            edge["positions"] = tuple(sorted(edge["positions"] + tuple(positions)))

    def _build_rules(self, node):
        """What apply's local simplifications make of ``node`` with its new operands (the copy
        offers them every node whose operands changed), or None."""
        data = self.nodes[node]
        simplifications = BUILD_RULES.get(data["op"])
        if not simplifications:
            return None
        graph = self.graph
        mark = graph.next_key
        operands = [Expr(graph, i) for i in data["inputs"]]
        stamp = data["order"] if data["derivative"] else 0
        with graph.deriving(stamp, grad_of=data["grad_of"]):
            for rule in simplifications:
                simpler = rule(operands, **data["attrs"])
                if simpler is not None and simpler.node != node:
                    if not _alike(self.nodes[simpler.node], data):
                        raise NotInPlace(f"the build rule {rule.__name__}")
                    self._adopt_new(mark, simpler.node, self.position[node])
                    return simpler.node
        self._drop_new(mark, keep=())
        return None

    def _carry_records(self, old, new):
        """What the copy carries from a node to the node that stands for it: the name a
        derivative result suggested, and how it came to be."""
        graph = self.graph
        if self.nodes[old]["derivative"] and new not in graph.name_hints:
            name = graph.readable_name(old)
            if name:
                graph.name_hints[new] = name
        records = graph.rewrites.get(old)
        if records:
            kept = graph.rewrites.setdefault(new, [])
            kept.extend(r for r in records if r not in kept)

    # -- nodes built and nodes dead -------------------------------------------------------------

    def _adopt_new(self, mark, result, at):
        """Give the nodes built since key ``mark`` that ``result`` reads places in the order,
        just after ``at`` (before the readers of the node it replaces), and offer them the
        rules; drop the others (built by a rewrite on its way, then not used)."""
        built = [node for node in range(mark, self.graph.next_key) if node in self.nodes]
        if not built:
            return
        used, stack = set(), [result]
        while stack:
            node = stack.pop()
            if node >= mark and node not in used:
                used.add(node)
                stack.extend(self.nodes[node]["inputs"])
        for rank, node in enumerate(built):
            if node in used:
                self.position[node] = at + (rank,)
                self.counted.add(node)
                self.uses.update(self.nodes[node]["inputs"])
                self._push(node)
        self._drop_new(mark, keep=used)

    def _drop_new(self, mark, keep):
        """Remove what a rewrite built since key ``mark`` on its way and did not use: its
        operands get back the readers they had, and nothing needs offering again."""
        for node in reversed(range(mark, self.graph.next_key)):
            if node in self.nodes and node not in keep:
                self._remove_if_dead(node, notify=False)

    def _drop_unneeded(self, needed):
        """The nodes nothing needed reads (built by the copy's rewrites on their way) are removed
        first: they would count as readers."""
        for node in sorted(set(self.nodes) - needed, reverse=True):
            if node in self.nodes:
                self._remove_if_dead(node, notify=False)

    def _remove_if_dead(self, node, notify=True):
        """Remove ``node`` if nothing reads it and it is no output or input, then each of its
        operands that this leaves unread; the readers left to an operand that lost one are
        offered the rules again (a rewrite may pay once an operand has a single reader)."""
        graph, nodes, succ, pred = self.graph, self.nodes, self.succ, self.pred
        stack = [node]
        while stack:
            node = stack.pop()
            if node not in nodes or succ[node] or self.kept[node] or node in self.inputs:
                continue
            data = nodes[node]
            if node in self.counted:
                self.counted.discard(node)
                self.uses.subtract(data["inputs"])
            operands = list(pred[node])
            # the graph's own removal: its edges, hash-cons entry, name and records
            graph.discard((node,))
            self.removed_ops[node] = data["op"]
            for operand in operands:
                if succ[operand]:
                    # the rewrites that read counts ask whether an operand has one reader: only
                    # an operand left with one is news (an operand of thousands is not walked)
                    if notify and self.uses[operand] == 1:
                        for reader in succ[operand]:
                            self._push(reader)
                else:
                    stack.append(operand)
            self.declined.discard(node)
            self.declined_uses.pop(node, None)
            self.changed.discard(node)
            self.position.pop(node, None)
            self.kept.pop(node, None)
            self.uses.pop(node, None)

