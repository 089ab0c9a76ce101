"""Symbol-to-symbol differentiation: reverse accumulation appends derivative nodes to the same graph.

`backprop` is the textbook build_grad; grad, vjp, jacobian, hessian, hvp and jvp are built on it.
Imports graph, ops and errors.
"""

import math
import warnings

import networkx as nx
import numpy as np

from .errors import InternalError, ShapeError, SymgradError, UndefinedGradientError
from .graph import collector_paused
from .ops import (OPS, Expr, broadcast_to_like, const, expand_dims, graph_of, identity,
                  identity_like, static_shape, stop_gradient, sum, zeros_like)
from .ops import loops
from .ops.core import float_dtype
from .ops.printing import to_text

DISCONNECTED_POLICIES = ("raise", "warn", "zero")
# Rules symgrad wrote itself: a malformed result from one of them is a bug in symgrad, while one
# from a user's rule (sg.defop, sg.custom_gradient) is the user's to fix.
BUILTIN_RULES = frozenset(OPS) - {"custom_gradient"}
# Dense Jacobians and Hessians (and the identity a Jacobian starts from) of more entries than
# this are refused before anything is built: 10**8 float64 entries take 800 MB. hvp, vjp and jvp
# never form them.
DENSE_LIMIT = 10**8
# Functions (graph, gradient, mark) -> an Expr computing the same values as ``gradient``, whose
# nodes from key ``mark`` on the current grad built; run on the gradient of a derivative, where
# the product rule makes each order a constant factor larger than the last. The optimiser
# registers its compaction here (optimize/compaction.py): this module cannot import it.
DERIVATIVE_SIMPLIFICATIONS = []


class DisconnectedWarning(UserWarning):
    """An output does not depend on a variable it was differentiated with respect to."""


def _differentiable_inputs(data):
    if data["dtype"] in ("int64", "bool"):
        return []       # no gradient flows out of an integer or boolean value (a cast's)
    skip = OPS[data["op"]].nondifferentiable
    return [(p, i) for p, i in enumerate(data["inputs"]) if p not in skip]


def backprop(graph, output, cotangent, wrt):
    """Reverse accumulation from ``output`` seeded with ``cotangent`` (an Expr of shape
    ``batch + output.shape``). Returns ({wrt node: gradient Expr or None}, set of wrt nodes that
    ``output`` depends on differentiably).

    1. Order the output's ancestors topologically (iterative DFS).
    2. Keep the nodes on a differentiable path from a ``wrt`` node to the output.
    3. Visit them in reverse, summing each node's incoming contributions and calling its op's rule.
    """
    return backprop_seeds(graph, [(output, cotangent)], wrt)


def backprop_seeds(graph, seeds, wrt):
    """backprop from several outputs at once: ``seeds`` is a list of (output node, its
    cotangent), the cotangents with the same leading batch axes (a loop's body, whose carries
    and stacked values each have one)."""
    with collector_paused():
        return _backprop_seeds(graph, seeds, wrt)


def _backprop_seeds(graph, seeds, wrt):
    nodes = graph._node             # networkx's node dicts, read directly in these linear loops
    outputs = [output for output, _ in seeds]
    order = graph.ancestors_in_order(outputs)
    wrt = set(wrt)
    # each node's differentiable operands, asked for by both passes below
    operands_of = [[i for _, i in _differentiable_inputs(nodes[node])] for node in order]
    reaches_wrt = set()
    for node, operands in zip(order, operands_of):
        if node in wrt or any(i in reaches_wrt for i in operands):
            reaches_wrt.add(node)
    feeds_output = set(outputs)
    for node, operands in zip(reversed(order), reversed(operands_of)):
        if node in feeds_output:
            feeds_output.update(operands)
    del operands_of
    on_path = reaches_wrt & feeds_output

    output, cotangent = seeds[0]
    level = max(max(nodes[o]["order"], c.data["order"]) for o, c in seeds) + 1
    leading = cotangent.ndim - len(nodes[output]["shape"])
    batch = cotangent.shape[:leading]
    contributions = {}
    for seed, seed_cotangent in seeds:
        contributions.setdefault(seed, []).append(seed_cotangent)
    gradients = {}
    loop_results = _loop_results(nodes, order, on_path)
    for node in reversed(order):
        if node not in on_path:
            continue
        results_of_loop = loop_results.get(node)
        if results_of_loop is not None:
            if node != results_of_loop[-1]:
                continue        # one reverse loop for all of them, at the last one reached
            seeded = [r for r in results_of_loop if r in contributions]
            if not seeded:
                continue
        elif node not in contributions:
            continue
        data = nodes[node]
        op = OPS[data["op"]]
        inputs = [Expr(graph, i) for i in data["inputs"]]
        with graph.deriving(level, grad_of=node):
            if results_of_loop is not None:
                cotangents = []
                for result in seeded:
                    g = _total(contributions.pop(result))
                    if result in wrt:
                        gradients[result] = g
                    cotangents.append((nodes[result]["attrs"]["output"], g))
                attrs = data["attrs"]
                results = loops.loop_vjp(cotangents, inputs, attrs["body"], attrs["reverse"],
                                         attrs["length"], attrs.get("checkpoint"))
            else:
                g = _total(contributions.pop(node))
                if node in wrt:
                    gradients[node] = g
                if not data["inputs"]:
                    continue
                if op.vjp is None:
                    raise UndefinedGradientError(_no_rule_message(graph, node, wrt, output))
                results = list(op.vjp(g, Expr(graph, node), *inputs, **data["attrs"]))
        if len(results) != len(inputs):
            raise _rule_error(data["op"], f"returned {len(results)} gradients for "
                                          f"{len(inputs)} operands")
        for position, (operand, result) in enumerate(zip(data["inputs"], results)):
            if result is None or operand not in on_path or position in op.nondifferentiable:
                continue
            if isinstance(result, UndefinedGradientError):
                raise result        # a gradient through an operand the rule has none for
            expected = batch + nodes[operand]["shape"]
            if not isinstance(result, Expr) or result.graph is not graph:
                raise _rule_error(data["op"], f"gave operand {position} {result!r}, not an "
                                              f"expression of this graph")
            if result.shape != expected:
                raise _rule_error(data["op"], f"gave operand {position} a gradient of shape "
                                              f"{result.shape}, expected {expected}")
            contributions.setdefault(operand, []).append(result)
    connected = {w for w in wrt if w in feeds_output}
    return {w: gradients.get(w) for w in wrt}, connected


def _loop_results(nodes, order, on_path):
    """{scan node: the results of its loop on the path, in the order backprop reaches them}, for
    loops with more than one result there (the same body, inputs and direction): their
    cotangents are pulled back together, by one reverse loop."""
    by_loop = {}
    for node in reversed(order):
        data = nodes[node]
        if node in on_path and data["op"] == "scan":
            attrs = data["attrs"]
            key = (tuple(data["inputs"]), attrs["body"], attrs["reverse"], attrs["length"],
                   attrs.get("checkpoint"))
            by_loop.setdefault(key, []).append(node)
    return {node: results for results in by_loop.values() if len(results) > 1
            for node in results}


def _loop_backprop(graph, seeds, wrt):
    return backprop_seeds(graph, seeds, wrt)[0]


# the derivative of a loop (ops.loops) differentiates its body with the same driver
loops.DIFFERENTIATE["backprop"] = _loop_backprop


def _rule_error(op, what):
    if op in BUILTIN_RULES:
        return InternalError(f"the derivative rule of the built-in op {op!r} {what}")
    return SymgradError(f"the derivative rule of {op!r} {what}; a rule returns one expression "
                        f"shaped like its operand (with g's leading batch axes), or None, per "
                        f"operand")


def _total(terms):
    """The sum of ``terms``; a term that comes k times (x * x gives g x twice) is added once, as
    k times it: one pass instead of k, and exact (k x is as close to x + ... + x as can be)."""
    if len(terms) == 1:
        return terms[0]     # the common case, without the bookkeeping below
    counts = {}
    for term in terms:
        counts.setdefault(term.node, [term, 0])[1] += 1
    total = None
    for term, count in counts.values():
        term = term if count == 1 else term * float(count)
        total = term if total is None else total + term
    return total


def _no_rule_message(graph, node, wrt, output):
    path = []
    for source in wrt:
        try:
            path = nx.shortest_path(graph, source, node)
            break
        except nx.NetworkXNoPath:
            continue
    steps = " -> ".join(_describe(graph, n) for n in path) or _describe(graph, node)
    return (f"op {graph.nodes[node]['op']!r} has no derivative rule; it lies on the path "
            f"{steps} -> ... -> output")


def _describe(graph, node):
    data = graph.nodes[node]
    return data["attrs"]["name"] if data["op"] == "var" else data["op"]


# -- the public transformations -----------------------------------------------------------------------


def _as_list(wrt):
    """(list of wrt variables, whether one was given alone)."""
    if isinstance(wrt, Expr):
        wrts, single = [wrt], True
    elif isinstance(wrt, (list, tuple)) and all(isinstance(w, Expr) for w in wrt) and wrt:
        wrts, single = list(wrt), False
    else:
        raise SymgradError("wrt must be a variable or a non-empty list/tuple of variables")
    for w in wrts:
        if w.op != "var":
            raise SymgradError(f"wrt must be variables (sg.var, or a name in a parsed formula); "
                               f"{to_text(w, limit=40)!r} is a {w.op} expression")
        if w.dtype not in ("float64", "float32"):
            # an integer or boolean variable takes discrete values: no derivative exists
            raise UndefinedGradientError(f"variable {w.name!r} is of dtype {w.dtype}: no "
                                         f"gradient flows into an integer or boolean variable")
    return wrts, single


def _check_policy(disconnected):
    if disconnected not in DISCONNECTED_POLICIES:
        raise SymgradError(f"disconnected must be one of {DISCONNECTED_POLICIES}, "
                           f"got {disconnected!r}")


def _wrt_label(w):
    return w.name if w.op == "var" else to_text(w, limit=40)


def _vjp_nodes(y, wrts, cotangent, disconnected):
    """Gradients of <y, cotangent> with respect to each of ``wrts``, applying the policy."""
    graph = y.graph
    table, connected = backprop(graph, y.node, cotangent, [w.node for w in wrts])
    leading = cotangent.ndim - y.ndim
    results = []
    for w in wrts:
        g = table[w.node]
        if w.node not in connected:
            if w.node in graph.ancestors_in_order([y.node]):
                reason = (f"the output depends on {_wrt_label(w)!r} only through operations no "
                          f"gradient flows through (comparisons, masks, stop_gradient, shapes)")
            else:
                reason = f"the output does not depend on {_wrt_label(w)!r}"
            message = f"{reason}; pass disconnected='zero' for a zero gradient"
            if disconnected == "raise":
                raise UndefinedGradientError(message)
            if disconnected == "warn":
                warnings.warn(message, DisconnectedWarning, stacklevel=3)
        if g is None:
            with graph.deriving(y.data["order"] + 1):
                g = zeros_like(w) if not leading else _batched_zeros(cotangent, leading, w)
        results.append(g)
    return results


def _batched_zeros(cotangent, leading, w):
    batch = cotangent.shape[:leading]
    if static_shape(batch + w.shape):
        return const(np.zeros(batch + w.shape, dtype=w.dtype), w.graph)
    # named dimensions: zeros shaped by the cotangent's batch axes and by w, from shapes alone
    batch_zeros = zeros_like(sum(cotangent, axis=tuple(range(leading, cotangent.ndim))))
    return broadcast_to_like(expand_dims(batch_zeros, tuple(range(-w.ndim, 0))), zeros_like(w))


def _graph_of(*exprs):
    if not all(isinstance(e, Expr) for e in exprs):
        raise SymgradError("differentiate expressions built with symgrad (sg.var, sg.parse, ...)")
    return graph_of(*exprs)


def _name(graph, node, hint, mark):
    """Suggest a readable name for a result node, if this call created it (a gradient may be an
    existing node, even the function itself: d/dy of x * y is x)."""
    if node >= mark:
        graph.name_hints.setdefault(node, hint)


def grad(f, wrt, disconnected="raise"):
    """The gradient of scalar ``f``: one Expr shaped like ``wrt``, or a list for a list ``wrt``.

    >>> from symgrad import var, grad
    >>> x = var("x")
    >>> str(grad(x ** 3, x))
    '3.0 * x ** 2.0'
    """
    wrts, single = _as_list(wrt)
    _check_policy(disconnected)
    graph = _graph_of(f, *wrts)
    if f.shape != ():
        raise ShapeError(f"grad needs a scalar output, got shape {f.shape}; use jacobian or vjp")
    with graph.atomic():
        mark = graph.next_key
        seed = const(np.ones((), dtype=f.dtype), graph)
        results = _vjp_nodes(f, wrts, seed, disconnected)
        if f.data["order"]:
            results = [_simplified_derivative(graph, g, mark) for g in results]
        for w, g in zip(wrts, results):
            _name(graph, g.node, ("grad", f.node, w.node), mark)
    return results[0] if single else results


def _simplified_derivative(graph, gradient, mark):
    for simplify in DERIVATIVE_SIMPLIFICATIONS:
        gradient = simplify(graph, gradient, mark)
    return gradient


def vjp(y, wrt, u, disconnected="raise"):
    """Reverse mode with a given cotangent: ``u`` has shape ``y.shape`` (or leading batch axes
    followed by it); the result has shape ``wrt.shape`` (after the same batch axes).

    >>> import numpy as np
    >>> import symgrad as sg
    >>> x, u = sg.var("x", shape=(2,)), sg.var("u", shape=(2,))
    >>> y = x * x[::-1]                            # J = [[x1, x0], [x1, x0]]
    >>> sg.compile(sg.vjp(y, x, u), inputs=[x, u])(np.array([2.0, 3.0]), np.array([1.0, 0.0]))
    array([3., 2.])
    """
    wrts, single = _as_list(wrt)
    results = _vjp(y, wrts, u, disconnected)
    return results[0] if single else results


def _vjp(y, wrts, u, disconnected):
    """vjp for a list ``wrts`` of any expressions (jvp differentiates with respect to one that
    is not a variable)."""
    _check_policy(disconnected)
    graph = _graph_of(y, *wrts)
    with graph.atomic():
        u = u if isinstance(u, Expr) else const(u, graph)
        if tuple(u.shape[u.ndim - y.ndim:]) != tuple(y.shape) or u.ndim < y.ndim:
            raise ShapeError(f"vjp: the cotangent's shape {u.shape} does not end with the "
                             f"output's shape {y.shape}")
        return _vjp_nodes(y, wrts, u, disconnected)


def _refuse_dense(shape, what):
    if static_shape(shape) and math.prod(shape) > DENSE_LIMIT:
        raise ShapeError(f"{what}: a dense result of shape {shape} would have "
                         f"{math.prod(shape):,} entries, more than the {DENSE_LIMIT:,} "
                         f"symgrad builds; hvp, vjp and jvp give its products without forming it")


def jacobian(y, wrt, disconnected="raise"):
    """The Jacobian, shape ``y.shape + wrt.shape``, built as one vjp whose cotangent is the identity
    carried as leading batch axes: the graph does not grow with the number of outputs. One of
    more than DENSE_LIMIT entries is refused (ShapeError).

    >>> from symgrad import var, jacobian
    >>> jacobian(var("v", shape=(3,)) * 2.0, var("v", shape=(3,))).shape
    (3, 3)
    """
    wrts, single = _as_list(wrt)
    graph = _graph_of(y, *wrts)
    for shape in [y.shape + y.shape] + [y.shape + w.shape for w in wrts]:
        _refuse_dense(shape, "jacobian")
    with graph.atomic():
        mark = graph.next_key
        if y.shape == ():
            seed = const(np.ones((), dtype=y.dtype), graph)
        elif static_shape(y.shape):
            seed = identity(y.shape, float_dtype([y.data["dtype"]]), graph)
        else:                           # a named dimension's size is known only at run time
            seed = identity_like(y)
        results = vjp(y, wrts, seed, disconnected)
        for w, j in zip(wrts, results):
            _name(graph, j.node, ("jacobian", y.node, w.node), mark)
    return results[0] if single else results


def hessian(f, wrt, disconnected="raise"):
    """Second derivatives of scalar ``f``: shape ``wrt.shape + wrt.shape``; for a list ``wrt``, a
    list of lists of blocks ``H[i][j]`` of shape ``wrt[i].shape + wrt[j].shape``. A block of more
    than DENSE_LIMIT entries is refused (ShapeError).

    >>> import numpy as np
    >>> import symgrad as sg
    >>> x, y = sg.var("x"), sg.var("y")
    >>> H = sg.hessian(x ** 2 * y + y ** 3, [x, y])
    >>> np.array(sg.compile([block for row in H for block in row])(1.0, 2.0)).reshape(2, 2)
    array([[ 4.,  2.],
           [ 2., 12.]])
    """
    wrts, single = _as_list(wrt)
    graph = _graph_of(f, *wrts)
    for w in wrts:
        _refuse_dense(w.shape + w.shape, "hessian")
    with graph.atomic():
        mark = graph.next_key
        gradients = grad(f, wrts, disconnected)
        # a zero second derivative is a fine Hessian block, never an error
        blocks = [jacobian(g, wrts, "zero") for g in gradients]
        for i, row in enumerate(blocks):
            for j, block in enumerate(row):
                _name(graph, block.node, ("hessian", f.node, wrts[i].node, wrts[j].node), mark)
    return blocks[0][0] if single else blocks


def _directions(graph, wrts, directions, single, what):
    """One direction per variable, arrays lifted to constants, each shaped like its variable."""
    directions = [directions] if single else list(directions)
    if len(directions) != len(wrts):
        raise SymgradError(f"{what}: {len(wrts)} variables but {len(directions)} directions")
    lifted = []
    for w, direction in zip(wrts, directions):
        direction = direction if isinstance(direction, Expr) else const(direction, graph)
        if direction.shape != w.shape:
            raise ShapeError(f"{what}: a direction of shape {direction.shape} for "
                             f"{_wrt_label(w)!r} of shape {w.shape}")
        lifted.append(direction)
    return lifted


def hvp(f, wrt, v, disconnected="raise"):
    """Hessian-vector product: the gradient of <grad f, v>, never forming the Hessian. ``v`` is a
    constant for this product even when it is computed in the graph.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> x, v = sg.var("x", shape=(2,)), sg.var("v", shape=(2,))
    >>> f = x[0] ** 2 * x[1]                         # Hessian [[2 x1, 2 x0], [2 x0, 0]]
    >>> sg.compile(sg.hvp(f, x, v), inputs=[x, v])(np.array([1.0, 3.0]), np.array([1.0, 0.0]))
    array([6., 2.])
    """
    wrts, single = _as_list(wrt)
    graph = _graph_of(f, *wrts)
    with graph.atomic():
        mark = graph.next_key
        directions = _directions(graph, wrts, v, single, "hvp")
        gradients = grad(f, wrts, disconnected)
        inner = _total([sum(g * stop_gradient(d)) for g, d in zip(gradients, directions)])
        results = grad(inner, wrts, "zero")
        for w, h in zip(wrts, results):
            _name(graph, h.node, ("hvp", f.node, w.node), mark)
    return results[0] if single else results


def jvp(y, wrt, t, disconnected="raise"):
    """Forward mode: the directional derivative ``J t``, shape ``y.shape``.

    Derived by transposition: ``u -> vjp(y, wrt, u)`` is linear, so differentiating it with respect
    to a placeholder ``u`` and pulling back ``t`` gives ``J t`` from the reverse rules alone.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> x, t = sg.var("x", shape=(2,)), sg.var("t", shape=(2,))
    >>> y = x * x[::-1]                            # J = [[x1, x0], [x1, x0]]
    >>> sg.compile(sg.jvp(y, x, t), inputs=[x, t])(np.array([2.0, 3.0]), np.array([1.0, 0.0]))
    array([3., 3.])
    """
    wrts, single = _as_list(wrt)
    graph = _graph_of(y, *wrts)
    with graph.atomic():
        tangents = _directions(graph, wrts, t, single, "jvp")
        placeholder = zeros_like(y)
        pulled = vjp(y, wrts, placeholder, disconnected)
        return _total([_vjp(p, [placeholder], stop_gradient(tangent), "zero")[0]
                       for p, tangent in zip(pulled, tangents)])
