"""Loops kept as one node: ``scan`` builds its step once, into a body that is a graph of its own,
and one scan node per result (a final carry, or a value stacked over the steps) stands for the
whole loop in the graph it is built in, however many steps it takes.

The step is traced in the caller's graph on placeholders for the carry and the slice of ``xs``;
what it builds that depends on them moves into the body, and what it builds from other values
alone (``W.T``, closed-over weights) stays outside as an input of the loop: it is computed once.
Scan nodes of one body and the same inputs are one loop, which codegen writes once.

The derivative of a scan is a scan running the other way (``_scan_vjp``): the body is
differentiated once, symbolically, into a reverse body that reads what the forward loop stored
of each step (the values its derivative needs: residuals) and accumulates the gradients of the
closed-over inputs as carries. Being a scan, it is differentiated the same way: grad of grad,
and jvp (which differentiate.py derives by transposing vjp), need nothing more. A loop's
``checkpoint`` is an attribute of its scan nodes, passed on to its reverse loop: what it changes
is how codegen.loops writes them (residuals recomputed segment by segment), not their values.

Imports ops.core, ops.shape and ops.arrays; differentiate registers its backprop (DIFFERENTIATE).
"""

import hashlib
import itertools
import numbers

import numpy as np

from ..errors import ArgumentError, ShapeError, SymgradError
from ..graph import Graph
from .arrays import moveaxis
from .core import Applied, Expr, apply, const, defop, graph_of, lift, located, static_shape
from .shape import broadcast_to_like, expand_dims, zeros_like
from .reduce import sum as reduce_sum

# differentiate (a later layer) registers here "backprop": (graph, [(node, cotangent)], wrt) ->
# {wrt node: gradient Expr or None}, as ops.core's NUMPY_PROTOCOL is filled by symgrad.numpy
DIFFERENTIATE = {}

_trace_keys = itertools.count()


class Body:
    """The step of a loop, built once: ``graph`` holds it, its placeholders are variables of that
    graph (``carries``, ``xs``: a slice of each scanned array, ``closed``: the values it reads
    from outside), and ``carry_out`` and ``ys`` are its results. Two bodies built alike are
    equal (``digest``), so the same loop built twice is one node."""

    __slots__ = ("graph", "carries", "xs", "closed", "carry_out", "ys", "digest", "derived")

    def __init__(self, graph, carries, xs, closed, carry_out, ys):
        self.graph = graph
        self.carries, self.xs, self.closed = tuple(carries), tuple(xs), tuple(closed)
        self.carry_out, self.ys = tuple(carry_out), tuple(ys)
        self.digest = _digest(self)
        self.derived = {}       # the reverse bodies made of this one (_reverse_recipe), by kind

    def __eq__(self, other):
        return isinstance(other, Body) and other.digest == self.digest

    def __hash__(self):
        return hash(self.digest)

    def __repr__(self):
        return f"Body({self.digest})"

    def __getstate__(self):
        return {name: getattr(self, name) for name in self.__slots__ if name != "derived"}

    def __setstate__(self, state):
        for name, value in state.items():
            object.__setattr__(self, name, value)
        self.derived = {}

    def data(self, node):
        return self.graph._node[node]

    @property
    def placeholders(self):
        return self.carries + self.xs + self.closed

    def needed_carries(self, finals, stacked):
        """The carries a loop must update when ``finals`` (indices of carries) and ``stacked``
        (results stacked step by step) are read: those, and the carries their values depend on,
        step after step."""
        nodes = self.graph._node
        needed = set(finals)
        while True:
            reached, pending = set(), [self.carry_out[j] for j in needed] + list(stacked)
            while pending:
                node = pending.pop()
                if node not in reached:
                    reached.add(node)
                    pending.extend(nodes[node]["inputs"])
            more = {j for j, placeholder in enumerate(self.carries) if placeholder in reached}
            if more <= needed:
                return sorted(needed)
            needed |= more


def _digest(body):
    """A fingerprint of the body's nodes, placeholders and results (nested bodies by theirs)."""
    nodes = body.graph._node
    lines = [repr((node, data["op"], data["inputs"], sorted(data["attrs"].items()),
                   data["shape"], data["dtype"])) for node, data in sorted(nodes.items())]
    lines.append(repr((body.carries, body.xs, body.closed, body.carry_out, body.ys)))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# -- moving a traced step into a body of its own ------------------------------------------------


def _needed(source, results, stops):
    """The nodes ``results`` need in ``source``, each after its inputs, not looking past the
    nodes ``stops`` (iterative)."""
    nodes = source._node
    seen, order = set(), []
    for root in results:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(() if root in stops else nodes[root]["inputs"]))]
        while stack:
            node, pending = stack[-1]
            for operand in pending:
                if operand not in seen:
                    seen.add(operand)
                    stack.append((operand, iter(() if operand in stops
                                                else nodes[operand]["inputs"])))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def _copy_node(target, data, inputs):
    """A node of ``data``'s op, attributes, shape and dtype on ``inputs`` in ``target``, built
    as it was (its rules ran when it was first built)."""
    return target.add(data["op"], inputs, data["attrs"], data["shape"], data["dtype"],
                      value=data.get("value"))


def _extract(source, loop, names, results, target, substitute=None):
    """Split what ``results`` (nodes of ``source``) compute into a body and what lies outside.

    ``loop`` are the placeholders (nodes of ``source``) of the values that change from step to
    step, to be the body's variables ``names``. The nodes depending on them go into a new
    graph, the body; constants are copied into it; every other value they read is computed
    outside, in ``target``, and becomes a closed-over input: where ``source`` is ``target`` it
    is the node itself, otherwise a copy built in ``target``, with the nodes of ``substitute``
    (source node -> target node: another body's closed-over placeholders) replaced.

    Returns (body graph, its loop placeholders, its closed placeholders, their values as nodes
    of ``target``, the body's result nodes).
    """
    substitute = substitute or {}
    nodes = source._node
    loop_set = set(loop)
    order = _needed(source, results, loop_set)
    varying = set(loop_set)
    for node in order:
        if node not in varying and any(i in varying for i in nodes[node]["inputs"]):
            varying.add(node)

    def constant(node):
        return nodes[node]["op"] == "const"

    outside_needed = {r for r in results if r not in varying and not constant(r)}
    for node in reversed(order):
        if node in varying:
            if node not in loop_set:
                outside_needed.update(i for i in nodes[node]["inputs"]
                                      if i not in varying and not constant(i))
        elif node in outside_needed:
            outside_needed.update(nodes[node]["inputs"])
    outside = {}
    for node in order:
        if node not in outside_needed:
            continue
        if node in substitute:
            outside[node] = substitute[node]
        elif source is target:
            outside[node] = node
        else:
            outside[node] = _copy_node(target, nodes[node],
                                       [outside[i] for i in nodes[node]["inputs"]])

    body = Graph()
    inside = {node: body.variable(name, nodes[node]["shape"], nodes[node]["dtype"])
              for node, name in zip(loop, names)}
    closed, closed_values, closed_of = [], [], {}

    def inner(node):
        found = inside.get(node)
        if found is not None:
            return found
        data = nodes[node]
        if data["op"] == "const":
            inside[node] = _copy_node(body, data, ())
            return inside[node]
        value = outside[node]
        placeholder = closed_of.get(value)
        if placeholder is None:
            placeholder = body.variable(f"w{len(closed)}", data["shape"], data["dtype"])
            closed_of[value] = placeholder
            closed.append(placeholder)
            closed_values.append(value)
        inside[node] = placeholder
        return placeholder

    for node in order:
        if node in varying and node not in loop_set:
            data = nodes[node]
            copy = _copy_node(body, data, [inner(i) for i in data["inputs"]])
            copied = body._node[copy]
            copied["order"], copied["derivative"] = data["order"], data["derivative"]
            origin = data["grad_of"]
            copied["grad_of"] = inside.get(origin, nodes[origin]["op"]) \
                if isinstance(origin, int) and origin in nodes else origin
            inside[node] = copy
    body_results = [inner(r) for r in results]
    return body, [inside[n] for n in loop], closed, closed_values, body_results


# -- the op ---------------------------------------------------------------------------------------


def _result_data(body, output):
    kind, which = output
    if kind == "final":
        return body.data(body.carries[which]), ()
    if kind == "stacked":
        return body.data(which), None
    raise SymgradError(f"a scan result is ('final', carry) or ('stacked', node), got {output!r}")


def _scan_shape(shapes, body, output, reverse, length, checkpoint=None):
    placeholders = body.placeholders
    if len(shapes) != len(placeholders):
        raise ShapeError(f"the loop takes {len(placeholders)} operands, got {len(shapes)}")
    scanned = range(len(body.carries), len(body.carries) + len(body.xs))
    for k, (shape, placeholder) in enumerate(zip(shapes, placeholders)):
        expected = body.data(placeholder)["shape"]
        if k in scanned:
            if tuple(shape[:1]) != (length,) or tuple(shape[1:]) != expected:
                raise ShapeError(f"operand {k}, scanned, has shape {shape}: expected "
                                 f"{(length, *expected)}")
        elif tuple(shape) != expected:
            raise ShapeError(f"operand {k} has shape {shape}: the loop's body takes {expected}")
    data, final = _result_data(body, output)
    return data["shape"] if final is not None else (length, *data["shape"])


def _scan_dtype(dtypes, body, output, reverse, length, checkpoint=None):
    return _result_data(body, output)[0]["dtype"]


def _emit_scan(ctx):
    # codegen writes a loop itself (codegen.loops): its body is a program, not one expression
    raise SymgradError("a scan node is written by codegen.loops, not by an emission template")


def _scan_vjp(g, out, *inputs, body, output, reverse, length, checkpoint=None):
    return _reverse_scan([(output, g)], inputs, body, reverse, length, checkpoint)


def loop_vjp(cotangents, inputs, body, reverse, length, checkpoint=None):
    """The gradients of several results of one loop (scan nodes of the same body and inputs),
    ``cotangents`` a list of (output attribute, cotangent), pulled back by one reverse loop: one
    gradient per input. differentiate calls it when a loop has more than one result on the path,
    so reading a loop's final carry and its stacked values costs one reverse loop, not two."""
    return _reverse_scan(sorted(cotangents, key=lambda pair: pair[0]), inputs, body, reverse,
                         length, checkpoint)


defop("scan", None, _scan_shape, _emit_scan, _scan_vjp, dtype=_scan_dtype, loop=None,
      view=True, foldable=False)


# -- the public functions --------------------------------------------------------------------------


def _flatten(tree, what):
    """(leaves, structure) of a value that is an expression, a number or array, or a tuple or
    list of them (nested); None has no leaves."""
    if tree is None:
        return [], None
    if isinstance(tree, (tuple, list)):
        leaves, structure = [], []
        for item in tree:
            item_leaves, item_structure = _flatten(item, what)
            leaves.extend(item_leaves)
            structure.append((len(item_leaves), item_structure))
        return leaves, (type(tree), tuple(structure))
    return [tree], "leaf"


def _unflatten(structure, leaves):
    if structure is None:
        return None
    if structure == "leaf":
        return leaves[0]
    kind, parts = structure
    items, start = [], 0
    for count, part in parts:
        items.append(_unflatten(part, leaves[start:start + count]))
        start += count
    return kind(items)


def _same_structure(a, b):
    """Whether two structures of _flatten agree, tuples and lists alike."""
    if a in (None, "leaf") or b in (None, "leaf"):
        return a == b
    return len(a[1]) == len(b[1]) and all(
        count_a == count_b and _same_structure(part_a, part_b)
        for (count_a, part_a), (count_b, part_b) in zip(a[1], b[1]))


def _scan_length(xs, length):
    lengths = []
    for k, x in enumerate(xs):
        if x.ndim == 0:
            raise ShapeError(f"xs[{k}] is a scalar: scan runs along the first axis of each of "
                             f"xs")
        lengths.append(x.shape[0])
    if len(set(lengths)) > 1:
        raise ShapeError(f"the arrays of xs disagree in length along their first axis: "
                         f"{', '.join(map(str, lengths))}")
    if length is not None:
        if isinstance(length, bool) or not (
                (isinstance(length, numbers.Integral) and length >= 0)
                or (isinstance(length, str) and length.isidentifier() and length.isascii())):
            raise ShapeError(f"length must be a non-negative int or a dimension name, got "
                             f"{length!r}")
        length = int(length) if isinstance(length, numbers.Integral) else length
        if lengths and lengths[0] != length:
            raise ShapeError(f"length {length!r} disagrees with xs, whose first axis is "
                             f"{lengths[0]!r} long")
        return length
    if not lengths:
        raise ShapeError("needs xs to scan over or a length")
    return lengths[0]


def _checked_carries(carry_out, init_structure, carries, graph):
    """The carry a step returned, as expressions, each of its carry's shape and dtype."""
    out_leaves, out_structure = _flatten(carry_out, "carry")
    if not _same_structure(out_structure, init_structure):
        raise ShapeError(f"the step returns a carry of another structure than init's: "
                         f"{len(out_leaves)} value(s) for {len(carries)}")
    carry_out = [lift(leaf, graph, c.data["dtype"]) for leaf, c in zip(out_leaves, carries)]
    for path, before, after in zip(_leaf_paths(init_structure), carries, carry_out):
        if before.shape != after.shape or before.data["dtype"] != after.data["dtype"]:
            name = f" ({before.name})" if before.name else ""
            raise ShapeError(f"{_carry_label(path)}{name} enters the step with shape "
                             f"{before.shape} and dtype {before.data['dtype']} and leaves it "
                             f"with shape {after.shape} and dtype {after.data['dtype']}: a "
                             f"carry keeps its shape and dtype")
    return carry_out


def _placeholder(graph, shape, dtype):
    """A fresh variable of ``graph`` standing for a value of the loop while its step is traced."""
    while True:
        name = f"_sg_scan{next(_trace_keys)}"
        if graph.find("var", (), {"name": name}) is None:
            return Expr(graph, graph.add("var", (), {"name": name}, shape, dtype))


def _carry_label(structure_path):
    return "carry" + "".join(f"[{k}]" for k in structure_path)


def _leaf_paths(structure, prefix=()):
    """The index path of each leaf of a structure, in order."""
    if structure is None:
        return []
    if structure == "leaf":
        return [prefix]
    paths = []
    for k, (_, part) in enumerate(structure[1]):
        paths.extend(_leaf_paths(part, prefix + (k,)))
    return paths


def scan(step, init, xs=None, length=None, reverse=False, checkpoint=None):
    """A loop kept as one node, as ``jax.lax.scan``: ``step(carry, x) -> (carry, y)`` is built
    once, and ``scan`` returns ``(final carry, ys)``, the ``y`` of every step stacked along a
    new first axis. ``carry``, ``x`` and ``y`` are expressions or tuples (lists) of them; ``xs``
    is scanned along its first axis (``x`` is None without it, and ``length`` says how many
    steps); with ``reverse`` the steps go from the last slice to the first (ys keep the order
    of xs). Expressions the step reads from outside (weights) are inputs of the loop.

    ``checkpoint=k`` (a positive int) trades time for memory in the loop's derivative. Without
    it, the forward loop stores what the reverse loop reads of every step (its residuals: for
    a tanh RNN the state, the activation and the log-probabilities), T steps of them. With it,
    the forward loop stores only the carry entering every k-th step; the reverse loop runs
    segment by segment, last to first, recomputing each segment's k steps from its carry into
    a buffer of k steps and then running their reverse steps. Memory goes from T steps of
    residuals to T/k carries and k steps of residuals, the least near k = sqrt(T c / r) for a
    carry of c numbers and r numbers of residuals a step; time grows by one more forward pass
    of the step. The gradient is the same to the last bit: the same operations on the same
    numbers. Residuals also read by anything else than a loop running the other way (ys the
    function returns) are stored as before; in a second derivative, a loop reading recomputed
    values stores its own.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> final, ys = scan(lambda c, _: (c * x, c), 1.0 * x, length=3)
    >>> sg.compile([final, ys], inputs=[x])(2.0)
    (np.float64(16.0), array([2., 4., 8.]))
    >>> final, _ = scan(lambda c, _: (sg.sin(c) * x, None), x, length=100, checkpoint=10)
    >>> d = sg.grad(final, x)
    >>> d_stored = sg.grad(scan(lambda c, _: (sg.sin(c) * x, None), x, length=100)[0], x)
    >>> sg.compile(d, inputs=[x])(0.5) == sg.compile(d_stored, inputs=[x])(0.5)
    np.True_
    """
    if not callable(step):
        raise SymgradError("scan needs a callable step(carry, x) -> (carry, y)")
    if checkpoint is not None and (isinstance(checkpoint, bool) or not isinstance(
            checkpoint, numbers.Integral) or checkpoint < 1):
        raise ArgumentError(f"scan: checkpoint must be None or a positive int (the number of "
                            f"steps between the carries kept for the derivative), got "
                            f"{checkpoint!r}")
    segments = {} if checkpoint is None else {"checkpoint": int(checkpoint)}
    init_leaves, init_structure = _flatten(init, "init")
    xs_leaves, xs_structure = _flatten(xs, "xs")
    graph = graph_of(*init_leaves, *xs_leaves)
    with graph.atomic():
        carries = [lift(leaf, graph) for leaf in init_leaves]
        scanned = [lift(leaf, graph) for leaf in xs_leaves]
        try:
            steps = _scan_length(scanned, length)
        except ShapeError as error:
            raise located(error, "scan", carries + scanned) from None
        carry_in = [_placeholder(graph, c.shape, c.data["dtype"]) for c in carries]
        x_in = [_placeholder(graph, x.shape[1:], x.data["dtype"]) for x in scanned]
        mark_traced = graph.next_key
        result = step(_unflatten(init_structure, carry_in),
                      None if xs is None else _unflatten(xs_structure, x_in))
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise SymgradError(f"a scan's step returns (carry, y), got {type(result).__name__}")
        try:
            carry_out = _checked_carries(result[0], init_structure, carries, graph)
        except ShapeError as error:
            raise located(error, "scan", carries + scanned) from None
        ys = result[1]
        y_leaves, y_structure = _flatten(ys, "y")
        y_out = [lift(leaf, graph) for leaf in y_leaves]
        loop = [e.node for e in carry_in + x_in]
        names = [f"c{k}" for k in range(len(carry_in))] + [f"x{k}" for k in range(len(x_in))]
        results = [e.node for e in carry_out + y_out]
        body_graph, placeholders, closed, closed_values, body_results = _extract(
            graph, loop, names, results, graph)
        body = Body(body_graph, placeholders[:len(carry_in)], placeholders[len(carry_in):],
                    closed, body_results[:len(carry_out)], body_results[len(carry_out):])
        _discard_trace(graph, mark_traced, closed_values, [e.node for e in carry_in + x_in])
        operands = carries + scanned + [Expr(graph, v) for v in closed_values]
        finals = [apply("scan", *operands, body=body, output=("final", k), reverse=bool(reverse),
                        length=steps, **segments) for k in range(len(carries))]
        stacked = [apply("scan", *operands, body=body, output=("stacked", node),
                         reverse=bool(reverse), length=steps, **segments) for node in body.ys]
        _note_hoisted(graph, finals + stacked, [v for v in closed_values if v >= mark_traced])
    return _unflatten(init_structure, finals), _unflatten(y_structure, stacked)


def _note_hoisted(graph, results, hoisted):
    """Say in the loop's rewrite log (compile's explain) which values its step computes were
    computed once, outside it."""
    if not hoisted:
        return
    nodes = graph._node

    def named(node):
        data = nodes[node]
        return data["attrs"]["name"] if data["op"] == "var" else data["op"]
    records = [Applied("hoist_loop_invariant",
                       f"{nodes[n]['op']}({', '.join(named(i) for i in nodes[n]['inputs'])}) "
                       f"computed once, outside the loop") for n in hoisted]
    for result in results:
        graph.note_rewrites(result.node, records)


def _discard_trace(graph, mark, kept, placeholders):
    """Remove from ``graph`` what tracing a step built there, but the values computed outside
    the loop (``kept``, and what they are computed from)."""
    keep = set()
    pending = [node for node in kept if node >= mark]
    while pending:
        node = pending.pop()
        if node in keep:
            continue
        keep.add(node)
        pending.extend(i for i in graph._node[node]["inputs"] if i >= mark)
    doomed = [node for node in range(mark, graph.next_key) if node in graph and node not in keep]
    graph.discard(doomed + list(placeholders))


def fori_loop(lower, upper, body, init, checkpoint=None):
    """``body(i, value)`` applied for i = lower, ..., upper - 1, as ``jax.lax.fori_loop``: a scan
    over the indices (int64 scalars), ``value`` an expression or a tuple of them.
    ``checkpoint=k`` is scan's: the derivative keeps every k-th value and recomputes the rest.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> sg.compile(fori_loop(0, 4, lambda i, v: v * x + i, 0.0 * x), inputs=[x])(2.0)
    np.float64(11.0)
    >>> v = fori_loop(0, 4, lambda i, v: v * x + i, 0.0 * x, checkpoint=2)
    >>> sg.compile(sg.grad(v, x), inputs=[x])(2.0)
    np.float64(6.0)
    """
    leaves, _ = _flatten(init, "init")
    for bound in (lower, upper):
        if isinstance(bound, bool) or not isinstance(bound, numbers.Integral):
            error = ShapeError(f"the bounds are ints (the number of steps is static), "
                               f"got {bound!r}")
            raise located(error, "fori_loop", leaves) from None
    graph = graph_of(*leaves)
    with graph.atomic():        # a failed loop takes its indices back with it
        indices = const(np.arange(int(lower), max(int(lower), int(upper)), dtype=np.int64),
                        graph, dtype="int64")
        final, _ = scan(lambda value, i: (body(i, value), None), init, indices,
                        checkpoint=checkpoint)
    return final


# -- the derivative: a scan running the other way ------------------------------------------------


class _Recipe:
    """The reverse body of a Body for one kind of cotangent, built once in a scratch graph:
    the placeholders of the carried cotangents (one per floating carry, then one accumulator per
    differentiated closed-over input), the residuals (forward values of a step that the
    derivative reads: each a placeholder of the body, or a node stacked by the forward loop),
    the cotangents of the stacked outputs, and the results."""

    def __init__(self, graph, carried, residuals, y_bars, carry_out, x_bars, closed):
        self.graph = graph
        self.carried = carried          # scratch placeholders, in the reverse loop's carry order
        self.residuals = residuals      # scratch nodes, forward values the derivative reads
        self.y_bars = y_bars            # scratch placeholders, one per stacked output seeded
        self.carry_out = carry_out      # scratch nodes: the next carried cotangents
        self.x_bars = x_bars            # (xs position, scratch node) of each x's cotangent
        self.closed = closed            # scratch copies of the forward closed placeholders


def _copy_graph(source):
    """A copy of a body's graph whose node keys are the same (they are 0, 1, ... in order)."""
    copy = Graph()
    for node, data in sorted(source._node.items()):
        made = _copy_node(copy, data, data["inputs"])
        if made != node:
            raise SymgradError("a loop body's nodes are numbered in creation order")
        copy._node[made].update(order=data["order"], derivative=data["derivative"],
                                grad_of=data["grad_of"])
        if data["op"] == "var":
            copy._variables[data["attrs"]["name"]] = made
    return copy


def _floating(data):
    return data["dtype"] in ("float64", "float32")


def _zeros(like):
    """Zeros of ``like``'s shape and dtype: a constant when the shape is static."""
    if static_shape(like.shape):
        return const(np.zeros(like.shape, dtype=like.data["dtype"]), like.graph)
    return zeros_like(like)


def _reverse_recipe(body, outputs, batch, differentiated):
    """The _Recipe of ``body`` for cotangents of ``outputs`` (final carries and stacked values)
    with ``batch`` leading axes, the gradients of the closed-over inputs at the positions
    ``differentiated`` accumulated."""
    key = (outputs, batch, differentiated)
    recipe = body.derived.get(key)
    if recipe is not None:
        return recipe
    backprop = DIFFERENTIATE.get("backprop")
    if backprop is None:
        raise SymgradError("differentiating a loop needs symgrad.differentiate: import symgrad")
    scratch = _copy_graph(body.graph)
    forward_end = scratch.next_key
    floating = [j for j, c in enumerate(body.carries) if _floating(body.data(c))]

    def placeholder(node):
        data = body.data(node)
        return _placeholder(scratch, tuple(batch) + tuple(data["shape"]), data["dtype"])

    carry_bars = [placeholder(body.carries[j]) for j in floating]
    accumulators = [placeholder(body.closed[k]) for k in differentiated]
    stacked = [which for kind, which in outputs if kind == "stacked"]
    y_bars = [placeholder(node) for node in stacked]
    seeds = [(body.carry_out[j], bar) for j, bar in zip(floating, carry_bars)]
    seeds += list(zip(stacked, y_bars))
    floating_xs = [i for i, x in enumerate(body.xs) if _floating(body.data(x))]
    wrt = [body.carries[j] for j in floating] + [body.xs[i] for i in floating_xs] \
        + [body.closed[k] for k in differentiated]
    gradients = backprop(scratch, seeds, wrt)
    with scratch.deriving(1):
        carry_out = []
        for j, bar in zip(floating, carry_bars):
            g = gradients.get(body.carries[j])
            carry_out.append(g if g is not None else _zeros(bar))
        for k, accumulator in zip(differentiated, accumulators):
            g = gradients.get(body.closed[k])
            carry_out.append(accumulator if g is None else accumulator + g)
        x_bars = [(i, gradients[body.xs[i]]) for i in floating_xs
                  if gradients.get(body.xs[i]) is not None]
    results = [e.node for e in carry_out] + [g.node for _, g in x_bars]
    residuals = _residuals(scratch, body, forward_end, results)
    recipe = _Recipe(scratch, [e.node for e in carry_bars + accumulators], residuals,
                     [e.node for e in y_bars], [e.node for e in carry_out],
                     [(i, g.node) for i, g in x_bars], list(body.closed))
    body.derived[key] = recipe
    return recipe


def _residuals(scratch, body, forward_end, results):
    """The forward values of a step the derivative reads: the forward nodes (those below
    ``forward_end``) read by a derivative node, or themselves results; constants and closed-over
    values are not (they are the same at every step)."""
    nodes = scratch._node
    invariant = set(body.closed)

    def stored(node):
        return node < forward_end and node not in invariant and nodes[node]["op"] != "const"

    found = {r for r in results if stored(r)}
    order = _needed(scratch, results, {n for n in range(forward_end)})
    for node in order:
        if node >= forward_end:
            found.update(i for i in nodes[node]["inputs"] if stored(i))
    return sorted(found)


def _reverse_scan(cotangents, inputs, body, reverse, length, checkpoint=None):
    """The gradients of a loop's results pulled back by their cotangents (a list of (output
    attribute, cotangent) with the same leading batch axes): one per input, from one scan
    running the other way. A checkpointed loop's reverse loop is checkpointed too: its own
    residuals (read by a derivative of it) are recomputed the same way."""
    outputs = tuple(output for output, _ in cotangents)
    seeded = dict(cotangents)
    output, g = cotangents[0]
    graph = g.graph
    segments = {} if checkpoint is None else {"checkpoint": checkpoint}
    count_carries, count_xs = len(body.carries), len(body.xs)
    init = inputs[:count_carries]
    scanned = inputs[count_carries:count_carries + count_xs]
    closed = inputs[count_carries + count_xs:]
    data, final = _result_data(body, output)
    leading = g.ndim - len(data["shape"]) - (final is None)
    batch = tuple(g.shape[:leading])
    differentiated = tuple(k for k, value in enumerate(closed)
                           if value.op != "const" and value.data["dtype"] in ("float64", "float32"))
    recipe = _reverse_recipe(body, outputs, batch, differentiated)
    scratch = recipe.graph
    loop = [*recipe.carried, *recipe.residuals, *recipe.y_bars]
    names = [f"c{k}" for k in range(len(recipe.carried))] + \
        [f"x{k}" for k in range(len(loop) - len(recipe.carried))]
    results = recipe.carry_out + [node for _, node in recipe.x_bars]
    substitute = dict(zip(recipe.closed, (value.node for value in closed)))
    body_graph, placeholders, closed_placeholders, closed_values, body_results = _extract(
        scratch, loop, names, results, graph, substitute)
    count = len(recipe.carried)
    reverse_body = Body(body_graph, placeholders[:count], placeholders[count:],
                        closed_placeholders, body_results[:count], body_results[count:])

    floating = [j for j, c in enumerate(body.carries) if _floating(body.data(c))]
    starts = []
    for j in floating:
        if ("final", j) in seeded:
            starts.append(seeded["final", j])
        else:
            starts.append(_batched_zeros(g, leading, init[j]))
    starts += [_batched_zeros(g, leading, closed[k]) for k in differentiated]
    residual_values = []
    for node in recipe.residuals:
        if node in body.xs:
            residual_values.append(scanned[body.xs.index(node)])
        else:
            residual_values.append(apply("scan", *inputs, body=body, output=("stacked", node),
                                         reverse=reverse, length=length, **segments))
    for output in outputs:
        if output[0] == "stacked":
            y_g = seeded[output]
            residual_values.append(moveaxis(y_g, leading, 0) if leading else y_g)
    operands = starts + residual_values + [Expr(graph, v) for v in closed_values]

    def result(kind, which):
        return apply("scan", *operands, body=reverse_body, output=(kind, which),
                     reverse=not reverse, length=length, **segments)

    gradients = [None] * len(inputs)
    for position, j in enumerate(floating):
        gradients[j] = result("final", position)
    for position, k in enumerate(differentiated):
        gradients[count_carries + count_xs + k] = result("final", len(floating) + position)
    for (i, _), node in zip(recipe.x_bars, reverse_body.ys):
        stacked = result("stacked", node)
        gradients[count_carries + i] = moveaxis(stacked, 0, leading) if leading else stacked
    substituted = set(substitute.values())
    made = [result("final", k) for k in range(len(reverse_body.carries))] + \
        [result("stacked", node) for node in reverse_body.ys]
    _note_hoisted(graph, made, [v for v in closed_values if v not in substituted
                                and graph._node[v]["op"] != "const"])
    return gradients


def _batched_zeros(g, leading, like):
    """Zeros of shape ``g``'s leading batch axes + ``like``'s shape, in ``like``'s dtype."""
    shape = tuple(g.shape[:leading]) + tuple(like.shape)
    if static_shape(shape):
        return const(np.zeros(shape, dtype=like.data["dtype"]), g.graph)
    if not leading:
        return zeros_like(like)
    batch_zeros = zeros_like(reduce_sum(g, axis=tuple(range(leading, g.ndim))))
    if not like.ndim:
        return batch_zeros
    return broadcast_to_like(expand_dims(batch_zeros, tuple(range(-like.ndim, 0))),
                             zeros_like(like))
