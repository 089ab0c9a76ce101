"""Sparse Jacobians and Hessians: the structural pattern of a derivative read off the graph, the
colourings that compress it, and the compressed pass whose nonzeros make a SciPy CSR matrix.

A node's pattern is a boolean matrix (its entries by the variable's entries), propagated in
evaluation order by each op's record (Op.sparsity); an op that only moves entries is run, in its
own NumPy form, on the positions of its operand's entries. Imports graph, ops, differentiate and
codegen (whose plan evaluates an op); api exposes it.
"""

import heapq
import math

import numpy as np

from .codegen.plan import Plan
from .differentiate import _as_list, _check_policy, _vjp, grad
from .errors import ShapeError, SymgradError
from .graph import Graph
from .ops import OPS, Expr, apply, const, static_shape, stop_gradient, zeros_like

# A greedy colouring in Python visits each vertex's neighbours; the smallest-last and
# incidence-degree orders also push each adjacency entry on a heap (about 3 s a million entries
# on the shared machine): they are tried up to a tenth of this many entries.
ORDERINGS_LIMIT = 300_000
# The star colouring visits the neighbours of neighbours of neighbours: it is tried up to this
# many such visits (a distance-2 colouring, always tried, is also a star colouring).
STAR_COLORING_LIMIT = 3_000_000


def _scipy_sparse():
    # imported when a pattern is first asked for: import symgrad does not pay for SciPy
    import scipy.sparse
    return scipy.sparse


# -- the pattern -----------------------------------------------------------------------------------


def sparsity(y, x):
    """The structural nonzero pattern of the Jacobian ``dy/dx`` of 1-D ``y`` and ``x``, read off
    the graph: a SciPy CSR array of dtype bool, shape ``(y.size, x.size)``. It holds every
    entry that can be nonzero: exact for element-wise ops, indexing, reshapes, reductions and
    products with constants; where the structure depends on values (``where``, ``maximum``)
    both branches count, and an op with no rule counts as dense.

    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(4,))
    >>> sg.sparsity(x[1:] * x[:-1], x).toarray().astype(int)
    array([[1, 1, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 1, 1]])
    """
    y, x = _vectors(y, x, "sparsity")
    return _pattern(y, x)


def _vectors(y, x, what):
    if not isinstance(y, Expr) or not isinstance(x, Expr):
        raise SymgradError(f"{what} takes expressions built with symgrad (sg.var, sg.parse, ...)")
    _as_list(x)
    for e, role in ((y, "output"), (x, "variable")):
        if e.ndim != 1 or not static_shape(e.shape):
            raise ShapeError(f"{what}: the {role} must be 1-D with a known length, got shape "
                             f"{e.shape}; reshape it, e.g. e.reshape(-1)")
    if y.graph is not x.graph:
        raise SymgradError("cannot combine expressions from two different graphs")
    return y, x


def _reached_operands(op, data, known):
    """The positions of the node's differentiable operands that depend on x (those in ``known``,
    the patterns or Jacobians found so far)."""
    return [p for p, operand in enumerate(data["inputs"])
            if p not in op.nondifferentiable and operand in known]


def _count_reads(data, readers, held, kept):
    """Count the read of each operand of node ``data``: what no reader waits for any more is
    dropped from ``held`` (both passes keep a value per node only while it is needed), except
    ``kept``, the result."""
    for operand in set(data["inputs"]):
        readers[operand] -= 1
        if not readers[operand] and operand != kept:
            held.pop(operand, None)


def _evaluation_order(y):
    """The nodes ``y`` is computed from, in evaluation order, and how many of them read each one
    (once per reader), so that a node's pattern or nonzeros can be dropped after its last reader."""
    nodes = y.graph._node
    order = y.graph.ancestors_in_order([y.node])
    readers = {}
    for node in order:
        for operand in set(nodes[node]["inputs"]):
            readers[operand] = readers.get(operand, 0) + 1
    return order, readers


def _pattern(y, x):
    """The pattern of dy/dx (CSR, bool, sorted indices), one op at a time in evaluation order;
    a node's pattern is dropped once its last reader has been visited."""
    sparse = _scipy_sparse()
    graph, nodes = y.graph, y.graph._node
    order, readers = _evaluation_order(y)
    patterns = {x.node: sparse.identity(x.size, dtype=bool, format="csr")}
    for node in order:
        data = nodes[node]
        if node != x.node and data["inputs"] and data["dtype"] not in ("int64", "bool"):
            op = OPS[data["op"]]
            positions = _reached_operands(op, data, patterns)
            if positions:
                if not static_shape(data["shape"]):
                    raise ShapeError(f"sparsity: op {data['op']!r} gives shape {data['shape']}, "
                                     f"whose length is known only at the call")
                pattern = _propagated(graph, node, data, op, positions, patterns, x.size)
                if pattern.nnz:
                    patterns[node] = pattern
        _count_reads(data, readers, patterns, y.node)
    result = patterns.get(y.node)
    if result is None:
        return sparse.csr_array((y.size, x.size), dtype=bool)
    result = sparse.csr_array(result, dtype=bool)
    result.sort_indices()
    return result


def _propagated(graph, node, data, op, positions, patterns, columns):
    """The pattern of ``node``: the union over its operands of (which operand entries each of
    its entries depends on) times (the operand's pattern)."""
    sparse = _scipy_sparse()
    out_shape = data["shape"]
    out_size = math.prod(out_shape)
    operand_shapes = [graph._node[i]["shape"] for i in data["inputs"]]
    rule = op.sparsity
    if rule == "elementwise":
        local = {p: _broadcast_map(operand_shapes[p], out_shape) for p in positions}
    elif rule == "moves":
        local = _moved(graph, data, positions)
    elif rule == "adds":
        local = _added(graph, data, positions)
    elif callable(rule):
        values = [graph._node[i].get("value") if graph._node[i]["op"] == "const" else None
                  for i in data["inputs"]]
        found = rule(operand_shapes, out_shape, values, **data["attrs"])
        local = {p: found[p] for p in positions}
    else:
        local = {p: "dense" for p in positions}
    total = None
    for p in positions:
        pattern = patterns[data["inputs"][p]]
        dependence = local[p]
        if dependence is None:
            continue
        if isinstance(dependence, str):
            term = _dense_rows(pattern, out_size, columns)
        elif isinstance(dependence, np.ndarray):      # entry k of the result is operand entry map[k]
            if dependence.shape == (pattern.shape[0],) and np.array_equal(
                    dependence, np.arange(pattern.shape[0])):
                term = pattern
            else:
                taken = np.flatnonzero(dependence >= 0)
                selection = sparse.csr_array(
                    (np.ones(taken.size, dtype=bool), (taken, dependence[taken])),
                    shape=(out_size, pattern.shape[0]))
                term = selection @ pattern
        else:
            rows, cols = dependence
            selection = sparse.csr_array((np.ones(len(rows), dtype=bool), (rows, cols)),
                                         shape=(out_size, pattern.shape[0]))
            term = selection @ pattern
        total = term if total is None else total + term
    if total is None:
        return sparse.csr_array((out_size, columns), dtype=bool)
    return sparse.csr_array(total, dtype=bool)


def _dense_rows(pattern, rows, columns):
    """Every one of ``rows`` entries depending on every column any entry of ``pattern`` has."""
    sparse = _scipy_sparse()
    used = np.unique(pattern.indices)
    return sparse.csr_array((np.ones(rows * used.size, dtype=bool), np.tile(used, rows),
                             np.arange(rows + 1) * used.size), shape=(rows, columns))


def _broadcast_map(shape, out_shape):
    """Entry k of a broadcast result reads entry map[k] of an operand of ``shape``."""
    size = math.prod(shape)
    if tuple(shape) == tuple(out_shape):
        return np.arange(size)
    return np.broadcast_to(np.arange(size).reshape(shape), out_shape).ravel()


def _moved(graph, data, positions):
    """{operand position: map} for an op that moves entries: the op run in its own NumPy form on
    the positions (1, 2, ...) of one operand's entries, the others differentiable operands zero,
    gives map[k], the operand entry result entry k holds (-1 for a constant). Operands no
    gradient flows through lend their value when constant, their shape when floating; an
    unknown integer or boolean one (an index, a mask) decides which entries move where, and the
    op is then taken as dense."""
    operands = [graph._node[i] for i in data["inputs"]]
    op = OPS[data["op"]]
    fixed = {}
    for p, operand in enumerate(operands):
        if p in op.nondifferentiable:
            if operand["op"] == "const":
                fixed[p] = operand["value"]
            elif operand["dtype"] in ("float64", "float32"):
                fixed[p] = np.zeros(operand["shape"], dtype=operand["dtype"])
            else:
                return {q: "dense" for q in positions}
    maps = {}
    for p in positions:
        shape = operands[p]["shape"]
        values = [fixed[q] if q in fixed else
                  np.arange(1.0, math.prod(shape) + 1.0).reshape(shape) if q == p else
                  np.zeros(o["shape"]) for q, o in enumerate(operands)]
        moved = _evaluate(data, values)
        if moved is None:
            maps[p] = "dense"
            continue
        codes = moved.ravel()
        if not np.array_equal(codes, np.round(codes)) or codes.min(initial=0) < 0 \
                or codes.max(initial=0) > math.prod(shape):
            maps[p] = "dense"       # not a pure move after all: never miss an entry
        else:
            maps[p] = codes.astype(np.int64) - 1
    return maps


def _added(graph, data, positions):
    """{operand position: (result entries, operand entries)} for an op that adds each entry of
    an operand into one entry of the result (a scatter, whose derivative rule is a move): the
    rule, handed the positions (1, 2, ...) of the result's entries as its cotangent, moves them
    back, so that evaluated it names the result entry each operand entry is added into. As for
    _moved, an unknown integer or boolean operand (an index) makes the op dense."""
    op = OPS[data["op"]]
    scratch = Graph()
    operands = []
    for operand in (graph._node[i] for i in data["inputs"]):
        if operand["op"] == "const":
            value = np.asarray(operand["value"])
        elif operand["dtype"] in ("float64", "float32"):
            value = np.zeros(operand["shape"], dtype=operand["dtype"])
        else:
            return {p: "dense" for p in positions}
        operands.append(const(value, scratch, dtype=value.dtype))
    out = apply(data["op"], *operands, **data["attrs"])
    size = math.prod(data["shape"])
    cotangent = const(np.arange(1.0, size + 1.0).reshape(data["shape"]), scratch)
    pulled = op.vjp(cotangent, out, *operands, **data["attrs"])
    found = {}
    for p in positions:
        moved = pulled[p]
        if moved is None:
            found[p] = None
            continue
        if moved.op == "const":
            codes = moved.data["value"]
        elif all(scratch._node[i]["op"] == "const" for i in moved.data["inputs"]):
            codes = _evaluate(moved.data, [scratch._node[i]["value"]
                                           for i in moved.data["inputs"]])
        else:
            codes = None
        if codes is None:
            found[p] = "dense"
            continue
        codes = np.asarray(codes, dtype=np.float64).ravel()
        if codes.size != math.prod(graph._node[data["inputs"][p]]["shape"]) or not np.array_equal(
                codes, np.round(codes)) or codes.min(initial=1) < 1 or codes.max(initial=1) > size:
            found[p] = "dense"      # not one place per entry after all: never miss an entry
        else:
            found[p] = (codes.astype(np.int64) - 1, np.arange(codes.size, dtype=np.int64))
    return found


def _evaluate(data, values, dtype="float64"):
    """The op of node ``data`` applied to constant ``values`` by the emission compiled code runs
    (codegen's folding), in ``dtype``; None when that fails."""
    scratch = Graph()
    operands = [const(np.asarray(v), scratch, dtype=np.asarray(v).dtype) for v in values]
    node = scratch.add(data["op"], [o.node for o in operands], data["attrs"], data["shape"],
                       dtype)
    plan = Plan(scratch, [o.node for o in operands], [])
    return plan._evaluate(node, scratch._node[node])


# -- direct emission of the nonzeros ---------------------------------------------------------------

# Linear ops whose local Jacobian is constant when every operand but the one a gradient flows
# through is constant: their weights are read by running the op on probes.
LINEAR_OPS = frozenset({"sum", "mean", "cumsum", "matmul", "inner", "einsum"})
# Those of them whose weights are one number per row of the result (1, or 1 over the count)
UNIFORM_ROWS = frozenset({"sum", "mean"})


class _Abandoned(Exception):
    """Direct emission does not serve here: an op it has no rule for. The nodes it built are
    removed (Graph.atomic) and the compressed pass is built instead."""


class _Structure:
    """A node's Jacobian pattern with respect to the variable, carried forward by direct
    emission: each nonzero's row (an entry of the node) and column (an entry of the variable),
    in row-major order, and where each row's nonzeros start."""

    __slots__ = ("rows", "columns", "lengths", "starts")

    def __init__(self, rows, columns, size):
        self.rows, self.columns = rows, columns
        self.lengths = np.bincount(rows, minlength=size)
        self.starts = np.cumsum(self.lengths) - self.lengths


class _Term:
    """What one operand adds to a node's Jacobian: the operand's nonzero ``taken[k]``, times
    ``weights[k]`` (a linear op's) and times the op's partial derivative at the entry it lands
    in (an element-wise op's; a NumPy array, of one entry when uniform, or a flat Expr), is
    added to the node's nonzero ``positions[k]``."""

    __slots__ = ("operand", "taken", "positions", "weights", "partial")

    def __init__(self, operand, taken, weights, partial):
        self.operand, self.taken, self.weights, self.partial = operand, taken, weights, partial
        self.positions = None


class _Emitter:
    """Builds the nonzeros' values as expressions of the graph, folding constants."""

    def __init__(self, graph):
        self.graph = graph

    def take(self, values, index):
        if isinstance(values, np.ndarray):
            return values[index]
        if index.size == values.shape[0] and np.array_equal(index, np.arange(index.size)):
            return values
        return values[index]

    def times(self, values, factor):
        """``values * factor``: either a NumPy array or an Expr."""
        if isinstance(factor, np.ndarray) and isinstance(values, np.ndarray):
            return values * factor
        if isinstance(values, np.ndarray):
            values, factor = factor, values
        if isinstance(factor, np.ndarray):
            if factor.size and np.all(factor == factor.flat[0]):
                if factor.flat[0] == 1.0:
                    return values
                factor = float(factor.flat[0])
            else:
                factor = const(factor, self.graph, dtype=values.dtype)
        return values * factor

    def combine(self, size, parts, dtype):
        """The sum of ``parts``, (positions, values) pairs, as one vector of ``size``: the
        constant parts added now, the others added into it at their positions."""
        base = None
        symbolic = []
        for positions, values in parts:
            if isinstance(values, np.ndarray):
                if base is None:
                    base = np.zeros(size, dtype=dtype)
                np.add.at(base, positions, values)
            else:
                whole = positions.size == size and np.array_equal(positions, np.arange(size))
                symbolic.append((not whole, positions, values))
        if not symbolic:
            return np.zeros(size, dtype=dtype) if base is None else base
        symbolic.sort(key=lambda part: part[0])     # whole vectors first: the others add into them
        total = base
        for partial, positions, values in symbolic:
            if partial:
                if total is None:
                    total = np.zeros(size, dtype=dtype)
                if isinstance(total, np.ndarray):
                    total = const(total, self.graph, dtype=values.dtype)
                total = apply("put_add", total, values,
                              const(positions, self.graph, dtype="int64"))
            elif total is None:
                total = values
            elif isinstance(total, np.ndarray) and not total.any():
                total = values
            else:
                total = values + (const(total, self.graph, dtype=values.dtype)
                                  if isinstance(total, np.ndarray) else total)
        return total


def _direct(y, x, wanted=None):
    """The nonzeros of dy/dx by forward accumulation of sparse Jacobians with patterns fixed
    now, in three passes over the nodes between x and y: each node's pattern and how its
    operands' nonzeros make it (_Term); backwards, which nonzeros y's ``wanted`` ones (a
    function of y's _Structure giving a boolean mask; all by default) are made of; forwards,
    the expressions of those nonzeros only, constants folded. Returns (y's _Structure, its
    mask of wanted nonzeros, the (positions among the wanted, values) parts that sum to them,
    the _Emitter that built them, the entries of the operands the nodes between x and y read
    from x: what a compressed pass computes per colour). Raises _Abandoned at an op it has no
    rule for."""
    graph, nodes = y.graph, y.graph._node
    order, readers = _evaluation_order(y)
    remaining = dict(readers)
    columns = x.size
    identity = np.arange(columns, dtype=np.int64)
    structures = {x.node: _Structure(identity, identity, columns)}
    rows_of, terms_of = {x.node: identity}, {}
    level = nodes[y.node]["order"] + 1
    folded = {}
    path_size = 0
    for node in order:
        data = nodes[node]
        if node != x.node and data["inputs"] and data["dtype"] not in ("int64", "bool"):
            op = OPS[data["op"]]
            positions = _reached_operands(op, data, structures)
            if positions and op.vjp is None:
                raise _Abandoned(data["op"])    # the compressed pass says it has no rule
            if positions:
                if not static_shape(data["shape"]):
                    raise ShapeError(f"sparsity: op {data['op']!r} gives shape "
                                     f"{data['shape']}, whose length is known only at the call")
                with graph.deriving(level, grad_of=node):
                    structure, terms = _node_terms(graph, node, data, op, positions,
                                                   structures, columns, folded)
                if structure.rows.size:
                    structures[node], rows_of[node], terms_of[node] = \
                        structure, structure.rows, terms
                    path_size += sum(math.prod(nodes[data["inputs"][p]]["shape"])
                                     for p in positions)
        _count_reads(data, remaining, structures, y.node)
    found = structures.get(y.node)
    if found is None:
        raise _Abandoned("no nonzero")
    mask = np.ones(found.rows.size, dtype=bool) if wanted is None else wanted(found)
    needed = _needed(order, terms_of, rows_of, y.node, mask)
    emitter = _Emitter(graph)
    parts = _emitted(graph, order, readers, terms_of, rows_of, needed, x, y, emitter,
                     level)
    return found, mask, parts, emitter, path_size


def _node_terms(graph, node, data, op, positions, structures, columns, folded):
    """The _Structure of ``node`` and its _Terms, one per operand: (how its entries take the
    operand's entries, as a constant matrix) times (the operand's Jacobian) times (the op's
    partial derivative at each entry, for an element-wise op), summed on their patterns'
    union."""
    rule = op.sparsity
    local = {}
    if rule == "elementwise":
        for p in positions:
            shape = graph._node[data["inputs"][p]]["shape"]
            local[p] = (_selection(_broadcast_map(shape, data["shape"])),
                        _elementwise_partial(graph, node, data, op, p, folded))
    elif rule == "moves":
        for p, moved in _moved(graph, data, positions).items():
            if isinstance(moved, str):
                raise _Abandoned(data["op"])
            local[p] = (_selection(moved), None)
    elif data["op"] in LINEAR_OPS and len(positions) == 1 and all(
            graph._node[i]["op"] == "const" for q, i in enumerate(data["inputs"])
            if q != positions[0]):
        local[positions[0]] = (_linear_weights(graph, data, positions[0]), None)
    else:
        raise _Abandoned(data["op"])
    out_size = math.prod(data["shape"])
    terms, term_rows, term_columns, ordered = [], [], [], []
    for p in positions:
        (rows, entries, weights), partial = local[p]
        operand = structures[data["inputs"][p]]
        if weights is None and rows.size == out_size == operand.lengths.size and \
                np.array_equal(entries, np.arange(entries.size)):
            # entry k of the result is entry k of the operand (an element-wise op on operands
            # of its shape, a reshape): the operand's pattern as it is
            taken = np.arange(operand.rows.size)
            term_rows.append(operand.rows)
            term_columns.append(operand.columns)
        else:
            lengths = operand.lengths[entries]
            total = int(lengths.sum())
            offsets = np.cumsum(lengths) - lengths
            taken = np.repeat(operand.starts[entries] - offsets, lengths) + np.arange(total)
            term_rows.append(np.repeat(rows, lengths))
            term_columns.append(operand.columns[taken])
            weights = None if weights is None else np.repeat(weights, lengths)
        # a selection takes at most one operand entry per result entry: its pairs come in
        # row-major order, each once, as the operand's do
        ordered.append(weights is None)
        terms.append(_Term(data["inputs"][p], taken, weights, partial))
    rows, columns_found, placed = _union(term_rows, term_columns, ordered, columns)
    for term, positions_found in zip(terms, placed):
        term.positions = positions_found
    return _Structure(rows, columns_found, math.prod(data["shape"])), terms


def _union(rows, columns, ordered, width):
    """The distinct (row, column) pairs of several terms in row-major order, as (rows, columns),
    and where each term's pairs are among them. ``ordered`` says of each term whether its pairs
    come in row-major order, each once already; others are merged by a stable sort, which
    merges sorted runs."""
    identity = np.arange(rows[0].size)
    if all(ordered) and all(r is rows[0] or np.array_equal(r, rows[0]) for r in rows[1:]) and \
            all(c is columns[0] or np.array_equal(c, columns[0]) for c in columns[1:]):
        return rows[0], columns[0], [identity] * len(rows)
    keys = np.concatenate([r * width + c for r, c in zip(rows, columns)])
    order = np.argsort(keys, kind="stable")
    ordered_keys = keys[order]
    fresh = np.empty(ordered_keys.size, dtype=bool)
    fresh[:1] = True
    np.not_equal(ordered_keys[1:], ordered_keys[:-1], out=fresh[1:])
    placed = np.empty(keys.size, dtype=np.int64)
    placed[order] = np.cumsum(fresh) - 1
    chosen = order[fresh]
    return (np.concatenate(rows)[chosen], np.concatenate(columns)[chosen],
            np.split(placed, np.cumsum([r.size for r in rows])[:-1]))


def _needed(order, terms_of, rows_of, y_node, mask):
    """Node -> the mask of its nonzeros that y's nonzeros in ``mask`` are made of, walking the
    terms backwards."""
    needed = {y_node: mask}
    for node in reversed(order):
        mask = needed.get(node)
        terms = terms_of.get(node)
        if mask is None or terms is None:
            continue
        for term in terms:
            operand_mask = needed.get(term.operand)
            if operand_mask is None:
                operand_mask = needed[term.operand] = np.zeros(rows_of[term.operand].size,
                                                                dtype=bool)
            operand_mask[term.taken[mask[term.positions]]] = True
    return needed


class _Parts:
    """A node's needed nonzeros as the parts that sum to them, (positions, values) pairs, summed
    into one vector only when a reader needs one: a reader that takes them all as they are (a
    reshape) takes the parts instead, so that constant parts stay constants and a Hessian's
    mirror images are taken of the parts that are expressions only."""

    __slots__ = ("parts", "size", "dtype", "node", "summed")

    def __init__(self, parts, size, dtype, node):
        self.parts, self.size, self.dtype, self.node, self.summed = parts, size, dtype, node, None

    def vector(self, graph, emitter, level):
        if self.summed is None:
            with graph.deriving(level, grad_of=self.node):
                self.summed = emitter.combine(self.size, self.parts, self.dtype)
        return self.summed


def _emitted(graph, order, readers, terms_of, rows_of, needed, x, y, emitter, level):
    """The expressions of the needed nonzeros, node by node in evaluation order, as the _Parts
    of each node (y's for the caller to place), dropped after their last reader."""
    nodes = graph._node
    mask = needed.get(x.node)
    size = 0 if mask is None else int(mask.sum())
    values_of = {x.node: _Parts([(np.arange(size), np.ones(size, dtype=x.dtype))], size,
                                x.dtype, x.node)}
    compact_of = {x.node: None if mask is None else np.cumsum(mask) - 1}
    for node in order:
        data = nodes[node]
        terms, mask = terms_of.get(node), needed.get(node)
        if terms is not None and mask is not None and mask.any():
            compact = np.cumsum(mask) - 1
            parts = []
            with graph.deriving(level, grad_of=node):
                for term in terms:
                    chosen = mask[term.positions]
                    if not chosen.any():
                        continue
                    operand = values_of[term.operand]
                    taken = compact_of[term.operand][term.taken[chosen]]
                    placed = compact[term.positions[chosen]]
                    if term.weights is None and term.partial is None and \
                            taken.size == operand.size and np.array_equal(
                                taken, np.arange(taken.size)):
                        parts.extend((placed[positions], values)
                                     for positions, values in operand.parts)
                        continue
                    values = emitter.take(operand.vector(graph, emitter, level), taken)
                    if term.weights is not None:
                        values = emitter.times(values, term.weights[chosen])
                    partial = term.partial
                    if partial is not None:
                        if not (isinstance(partial, np.ndarray) and partial.size == 1):
                            partial = emitter.take(partial,
                                                   rows_of[node][term.positions[chosen]])
                        values = emitter.times(values, partial)
                    parts.append((placed, values))
            values_of[node] = _Parts(parts, int(compact[-1]) + 1, data["dtype"], node)
            compact_of[node] = compact
        for operand in set(data["inputs"]):
            readers[operand] -= 1
            if not readers[operand] and operand != y.node:
                values_of.pop(operand, None)
                compact_of.pop(operand, None)
    return values_of[y.node].parts


def _selection(moved):
    """(result entries, operand entries, weights None) of a map: entry k of the result is
    operand entry map[k], none where map[k] is -1."""
    rows = np.flatnonzero(moved >= 0)
    return rows, moved[rows], None


def _elementwise_partial(graph, node, data, op, p, folded):
    """The partial derivative of each entry of an element-wise op's result with respect to the
    operand entry it reads, flat: a NumPy array (a constant, of one entry when uniform), or an
    Expr; from the op's own derivative rule, handed a cotangent of one."""
    inputs = [Expr(graph, i) for i in data["inputs"]]
    out = Expr(graph, node)
    if tuple(inputs[p].shape) != tuple(data["shape"]):
        # the rule would sum the result's entries over the axes the operand is broadcast along
        inputs[p] = apply("broadcast_to", inputs[p], shape=data["shape"])
        out = apply(data["op"], *inputs, **data["attrs"])
    # a cotangent of ones with the result's axes, each of length 1: rules read its number of
    # axes, and g * f' is then f' with no product
    ones = const(np.ones((1,) * len(data["shape"])), graph, dtype=data["dtype"])
    partial = op.vjp(ones, out, *inputs, **data["attrs"])[p]
    if partial is None:
        return np.zeros(1, dtype=data["dtype"])
    if isinstance(partial, Exception):
        raise partial
    value = _constant_value(graph, partial.node, folded)
    if value is not None:
        if value.size and np.all(value == value.flat[0]):
            return value.reshape(-1)[:1].astype(data["dtype"])
        return np.broadcast_to(value, data["shape"]).ravel()
    if tuple(partial.shape) != tuple(data["shape"]):
        partial = apply("broadcast_to", partial, shape=data["shape"])
    return partial.reshape(-1)


# ops whose listed operands lend only their shape: a value made of constants through them is a
# constant (the gradient of a sum seeds ones broadcast like the summed node)
_SHAPE_ONLY = {"broadcast_to_like": (1,), "zeros_like": (0,), "identity_like": (0,)}


def _constant_value(graph, node, folded):
    """The value of ``node`` when it is made of constants only (operands that lend only their
    shape aside), computed now by its own emission; else None. ``folded`` remembers every node
    looked at, so that a whole direct emission looks at each node once."""
    nodes = graph._node
    stack = [node]
    while stack:
        top = stack[-1]
        if top in folded:
            stack.pop()
            continue
        data = nodes[top]
        if data["op"] == "const":
            folded[stack.pop()] = data.get("value")
            continue
        shape_only = _SHAPE_ONLY.get(data["op"], ())
        operands = [o for k, o in enumerate(data["inputs"]) if k not in shape_only]
        if not OPS[data["op"]].emit.foldable or not static_shape(data["shape"]) or (
                not operands and not shape_only):
            folded[stack.pop()] = None
            continue
        waiting = [o for o in operands if o not in folded]
        if waiting:
            stack.extend(waiting)
            continue
        stack.pop()
        values = [folded[o] for o in operands]
        if any(v is None for v in values):
            folded[top] = None
        elif shape_only:
            folded[top] = _evaluate(data, [
                np.zeros(nodes[o]["shape"], dtype=nodes[o]["dtype"]) if k in shape_only
                else folded[o] for k, o in enumerate(data["inputs"])], data["dtype"])
        else:
            folded[top] = _evaluate(data, values, data["dtype"])
    return folded[node]


def _linear_weights(graph, data, p):
    """(result entries, operand entries, weights) of a linear op's constant local Jacobian:
    its structure from the op's sparsity rule, its values from the op run on one probe per
    colour of a colouring of that structure's columns."""
    sparse = _scipy_sparse()
    operands = [graph._node[i] for i in data["inputs"]]
    shapes = [o["shape"] for o in operands]
    values = [o.get("value") if o["op"] == "const" else None for o in operands]
    dependence = OPS[data["op"]].sparsity(shapes, data["shape"], values, **data["attrs"])[p]
    out_size, size = math.prod(data["shape"]), math.prod(shapes[p])
    if dependence is None:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    if isinstance(dependence, str):
        rows, entries = np.divmod(np.arange(out_size * size, dtype=np.int64), size)
    else:
        rows, entries = (np.asarray(d, dtype=np.int64) for d in dependence)
    if data["op"] in UNIFORM_ROWS:
        # one probe of ones gives each row's weight times its count: a sum over a whole
        # vector, whose entries all conflict, would otherwise take one probe per entry
        counts = np.bincount(rows, minlength=out_size)
        result = _evaluate(data, [np.ones(shapes[q]) if q == p else values[q]
                                  for q in range(len(operands))])
        if result is None:
            raise _Abandoned(data["op"])
        return rows, entries, (np.asarray(result, dtype=np.float64).ravel()
                               / np.maximum(counts, 1))[rows]
    structure = sparse.csr_array((np.ones(rows.size, dtype=bool), (rows, entries)),
                                 shape=(out_size, size))
    colors = _greedy((structure.T @ structure).astype(bool).tocsr(), range(size))
    weights = np.zeros(rows.size)
    for color in range(int(colors.max(initial=-1)) + 1):
        probe = (colors == color).astype(np.float64).reshape(shapes[p])
        arguments = [probe if q == p else values[q] for q in range(len(operands))]
        result = _evaluate(data, arguments)
        if result is None:
            raise _Abandoned(data["op"])
        chosen = colors[entries] == color
        weights[chosen] = np.asarray(result, dtype=np.float64).ravel()[rows[chosen]]
    return rows, entries, weights


# -- colourings ------------------------------------------------------------------------------------


def _greedy(adjacency, order):
    """Greedy colouring of the graph of ``adjacency`` (CSR, symmetric) visiting ``order``: each
    vertex takes the least colour none of its neighbours has."""
    indptr, indices = adjacency.indptr.tolist(), adjacency.indices.tolist()
    n = adjacency.shape[0]
    colors = [n] * n                # n: not coloured yet, a colour no vertex takes
    marked = [-1] * (n + 1)         # marked[c] == v: a neighbour of v has colour c
    for v in order:
        for w in indices[indptr[v]:indptr[v + 1]]:
            marked[colors[w]] = v
        color = 0
        while marked[color] == v:
            color += 1
        colors[v] = color
    return np.array(colors, dtype=np.int64)


def _fewest_colors(adjacency, least=0):
    """The colouring with the fewest colours among greedy ones in several vertex orders:
    saturation degree (DSATUR), natural, largest degree first, and up to ORDERINGS_LIMIT
    adjacency entries smallest degree last and incidence degree, whose heaps cost more per
    entry. The first to take ``least`` colours, a lower bound the caller knows (the nonzeros of
    a row, all of whose columns conflict), is taken: no order does better."""
    adjacency = adjacency.tocsr()
    adjacency.setdiag(False)
    adjacency.eliminate_zeros()
    n = adjacency.shape[0]
    degrees = np.diff(adjacency.indptr)
    orders = [lambda: _saturation_coloring(adjacency), lambda: _greedy(adjacency, range(n))]
    if degrees.min(initial=0) != degrees.max(initial=0):
        orders.append(lambda: _greedy(adjacency, np.argsort(-degrees, kind="stable").tolist()))
    if adjacency.nnz <= ORDERINGS_LIMIT // 10:
        orders.append(lambda: _greedy(adjacency, _smallest_last(adjacency)))
        orders.append(lambda: _greedy(adjacency, _incidence_degree(adjacency)))
    best = None
    for order in orders:
        colors = order()
        if best is None or colors.max(initial=-1) < best.max(initial=-1):
            best = colors
        if best.max(initial=-1) + 1 <= least:
            break
    return best


def _smallest_last(adjacency):
    """Matula and Beck's order: a vertex of least degree among those left goes last, then the
    same for the rest (a heap with stale entries skipped)."""
    indptr, indices = adjacency.indptr.tolist(), adjacency.indices.tolist()
    n = adjacency.shape[0]
    degree = np.diff(adjacency.indptr).tolist()
    heap = [(degree[v], v) for v in range(n)]
    heapq.heapify(heap)
    removed = [False] * n
    order = []
    while heap:
        d, v = heapq.heappop(heap)
        if removed[v] or d != degree[v]:
            continue
        removed[v] = True
        order.append(v)
        for w in indices[indptr[v]:indptr[v + 1]]:
            if not removed[w]:
                degree[w] -= 1
                heapq.heappush(heap, (degree[w], w))
    order.reverse()
    return order


def _incidence_degree(adjacency):
    """The incidence-degree order: next, a vertex with the most neighbours already ordered
    (Coleman and Moré), the first one on ties."""
    indptr, indices = adjacency.indptr.tolist(), adjacency.indices.tolist()
    n = adjacency.shape[0]
    count = [0] * n
    heap = [(0, v) for v in range(n)]
    placed = [False] * n
    order = []
    while heap:
        c, v = heapq.heappop(heap)
        if placed[v] or -c != count[v]:
            continue
        placed[v] = True
        order.append(v)
        for w in indices[indptr[v]:indptr[v + 1]]:
            if not placed[w]:
                count[w] += 1
                heapq.heappush(heap, (-count[w], w))
    return order


def _saturation_coloring(adjacency):
    """Brélaz's DSATUR: next, an uncoloured vertex whose neighbours have the most distinct
    colours, given the least colour they lack. The vertices wait in one list per saturation:
    at saturation 0 the largest degree first, then in each list the vertex whose saturation
    rose last, next to the ones just coloured. A rise costs a list append where a heap of
    (saturation, degree) cost a heap push, so the colouring is linear in the adjacency
    entries."""
    indptr, indices = adjacency.indptr.tolist(), adjacency.indices.tolist()
    n = adjacency.shape[0]
    colors = [-1] * n
    # bit c: a neighbour has colour c; every bit once coloured, so that no colour adds to it
    seen = [0] * n
    saturation = [0] * n
    # popped from the end: the largest degree, the first vertex among equals
    degree = np.diff(adjacency.indptr)
    buckets = [np.lexsort((-np.arange(n), degree)).tolist()]
    top = 0
    for _ in range(n):
        while True:
            while not buckets[top]:
                top -= 1
            v = buckets[top].pop()
            if seen[v] != -1 and saturation[v] == top:
                break               # else a stale entry: v rose to a later bucket
        mask = seen[v]
        color = (~mask & (mask + 1)).bit_length() - 1
        colors[v] = color
        seen[v] = -1
        bit = 1 << color
        for w in indices[indptr[v]:indptr[v + 1]]:
            if not seen[w] & bit:
                seen[w] |= bit
                rise = saturation[w] = saturation[w] + 1
                if rise == len(buckets):
                    buckets.append([])
                buckets[rise].append(w)
                if rise > top:
                    top = rise
    return np.array(colors, dtype=np.int64)


def _star_coloring(adjacency):
    """A star colouring (Gebremedhin, Manne and Pothen 2005, algorithm 4.1): proper, and every
    path on four vertices has three colours, so each off-diagonal entry of a symmetric matrix is
    alone of its colour in its row or in its column."""
    indptr, indices = adjacency.indptr.tolist(), adjacency.indices.tolist()
    colors = [-1] * adjacency.shape[0]
    for v in range(adjacency.shape[0]):
        forbidden = set()
        for w in indices[indptr[v]:indptr[v + 1]]:
            color_w = colors[w]
            if color_w >= 0:
                forbidden.add(color_w)
            for x in indices[indptr[w]:indptr[w + 1]]:
                color_x = colors[x]
                if x == v or color_x < 0:
                    continue
                if color_w < 0:
                    forbidden.add(color_x)
                elif any(colors[y] == color_w for y in indices[indptr[x]:indptr[x + 1]]
                         if y != w):
                    forbidden.add(color_x)
        color = 0
        while color in forbidden:
            color += 1
        colors[v] = color
    return np.array(colors, dtype=np.int64)


def _unique_in_row(pattern, colors):
    """For each nonzero (i, j) of ``pattern`` (CSR order): whether j is the only column of its
    colour in row i, so that row i of the compressed matrix holds it alone."""
    count = colors.max(initial=-1) + 1
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    keys = rows * count + colors[pattern.indices]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return counts[inverse] == 1


def _symmetric_recovery(pattern, colors):
    """(row, colour) of the compressed product H S where each nonzero (i, j) of the symmetric
    ``pattern`` is read: row i at j's colour where j is alone of its colour in row i, else row
    j at i's colour; None when a nonzero is neither (the colouring does not serve)."""
    alone = _unique_in_row(pattern, colors)
    positions = _scipy_sparse().csr_array(
        (np.arange(pattern.nnz, dtype=np.int64), pattern.indices, pattern.indptr),
        shape=pattern.shape).T.tocsr()
    positions.sort_indices()
    mirror = positions.data         # the position of (j, i) for each (i, j), the same pattern
    if not np.all(alone | alone[mirror]):
        return None
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    read_rows = np.where(alone, rows, pattern.indices)
    read_colors = np.where(alone, colors[pattern.indices], colors[rows])
    return read_rows, read_colors


# -- sparse Jacobians and Hessians -----------------------------------------------------------------


METHODS = (None, "direct", "compressed")


def _method(method):
    if method not in METHODS:
        raise SymgradError(f"method must be one of {', '.join(map(repr, METHODS))}, got "
                           f"{method!r}")


def sparse_jacobian(y, x, disconnected="raise", method=None):
    """``dy/dx`` as an expression whose compiled value is a SciPy CSR array of shape
    ``(y.size, x.size)``, by one of two methods chosen now (``method=None``), whichever
    computes fewer entries per call, or the one ``method`` names:

    "direct": each node's Jacobian is carried forward with its pattern fixed now and its
    nonzeros as expressions (_direct), so the compiled code computes only the nonzeros.
    "compressed": a colouring of the pattern's columns (one forward pass of ``J S``) or of its
    rows (one reverse pass of ``W^T J``), whichever has fewer colours; the compiled function
    computes the compressed product in one batched pass and gathers the nonzeros from it."""
    y, x = _vectors(y, x, "jacobian")
    _check_policy(disconnected)
    _method(method)
    graph = y.graph
    with graph.atomic():
        mark = graph.next_key
        direct = _direct_csr(y, x, method, symmetric=False)
        if _chosen(direct, method, mark):
            return _without_unread(direct[0], mark)
        pattern = _pattern(y, x)
        column_colors = _fewest_colors((pattern.T @ pattern).astype(bool),
                                       np.diff(pattern.indptr).max(initial=0))
        symmetric = pattern.shape[0] == pattern.shape[1] and (pattern != pattern.T).nnz == 0
        # a symmetric pattern's rows conflict as its columns do
        row_colors = column_colors if symmetric else _fewest_colors(
            (pattern @ pattern.T).astype(bool),
            np.bincount(pattern.indices, minlength=x.size).max(initial=0))
        rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
        if column_colors.max(initial=-1) < row_colors.max(initial=-1):
            colors, method = column_colors, "columns"
            count = int(colors.max(initial=-1)) + 1
            seeds = _seeds(colors, count, x.dtype)
            placeholder = zeros_like(y)
            pulled = _vjp(y, [x], placeholder, disconnected)[0]
            compressed = _vjp(pulled, [placeholder], stop_gradient(const(seeds, graph)),
                              "zero")[0]
            flat = colors[pattern.indices] * y.size + rows
        else:
            colors, method = row_colors, "rows"
            count = int(colors.max(initial=-1)) + 1
            compressed = _vjp(y, [x], const(_seeds(colors, count, y.dtype), graph),
                              disconnected)[0]
            flat = colors[rows] * x.size + pattern.indices
        return _without_unread(_cheaper(direct, _csr(compressed, flat, pattern, count, method),
                                        mark), mark)


def sparse_hessian(f, x, disconnected="raise", method=None):
    """The Hessian of scalar ``f`` as an expression whose compiled value is a SciPy CSR array
    with the gradient's pattern, symmetrised, by one of two methods chosen now as for
    sparse_jacobian: "direct", the gradient's Jacobian by direct emission; "compressed", a
    symmetric colouring, a star colouring or a distance-2 one, whichever has fewer colours,
    found now, and the compiled function computes ``S^T H`` in one batched reverse pass over
    the gradient and reads each nonzero where it is alone of its colour, in its row or in its
    column."""
    if not isinstance(f, Expr) or f.shape != ():
        raise ShapeError(f"hessian needs a scalar output, got "
                         f"{f.shape if isinstance(f, Expr) else type(f).__name__}")
    _check_policy(disconnected)
    _method(method)
    graph = f.graph
    with graph.atomic():
        mark = graph.next_key
        gradient = grad(f, x, disconnected)
        gradient, x = _vectors(gradient, x, "hessian")
        direct = _direct_csr(gradient, x, method, symmetric=True)
        if _chosen(direct, method, mark):
            return _without_unread(direct[0], mark)
        pattern = _pattern(gradient, x)
        pattern = (pattern + pattern.T).tocsr()
        pattern.sort_indices()
        adjacency = pattern.copy()
        adjacency.setdiag(False)
        adjacency.eliminate_zeros()
        choices = [(_fewest_colors((pattern @ pattern).astype(bool),
                                   np.diff(pattern.indptr).max(initial=0)), "distance2")]
        degrees = np.diff(adjacency.indptr)
        if int(np.sum(degrees.astype(np.int64) ** 3)) <= STAR_COLORING_LIMIT:
            choices.insert(0, (_star_coloring(adjacency), "star"))
        for colors, method in sorted(choices, key=lambda c: c[0].max(initial=-1)):
            recovery = _symmetric_recovery(pattern, colors)
            if recovery is not None:
                break
        else:
            raise SymgradError("hessian: no colouring recovers the Hessian (a bug in symgrad)")
        count = int(colors.max(initial=-1)) + 1
        compressed = _vjp(gradient, [x], const(_seeds(colors, count, x.dtype), graph),
                          "zero")[0]
        read_rows, read_colors = recovery
        result = _csr(compressed, read_colors * x.size + read_rows, pattern, count, method)
        return _without_unread(_cheaper(direct, result, mark), mark)


class _LowerTriangle:
    """Which nonzeros of a Hessian direct emission computes: where the pattern it finds is
    symmetric, those on and below the diagonal, and ``mirror`` holds the position of each
    nonzero's mirror image; else (``mirror`` None) every one."""

    def __init__(self, size):
        self.size, self.mirror = size, None

    def __call__(self, found):
        indptr = np.concatenate([[0], np.cumsum(found.lengths)])
        # each nonzero's position, transposed: at (j, i) the position of (i, j)
        transposed = _scipy_sparse().csr_array(
            (np.arange(found.rows.size, dtype=np.int64), found.columns, indptr),
            shape=(self.size, self.size)).T.tocsr()
        transposed.sort_indices()
        if np.array_equal(transposed.indptr, indptr) and np.array_equal(
                transposed.indices, found.columns):
            self.mirror = transposed.data
            return found.rows >= found.columns
        return np.ones(found.rows.size, dtype=bool)


def _direct_csr(y, x, method, symmetric):
    """(the csr_matrix node of dy/dx by direct emission, a lower bound of the work of a
    compressed pass: the least colours its pattern allows times the operand entries of the
    nodes between x and y), or None: the method is "compressed", dy/dx has no nonzero, or
    direct emission has no rule for an op on the way. ``symmetric`` (y a gradient, dy/dx a
    Hessian): the pattern is symmetrised, and when the one direct emission finds is symmetric
    already, only the nonzeros on and below the diagonal are computed, each one below written
    to its mirror image too."""
    if method == "compressed":
        return None
    graph = y.graph
    sparse = _scipy_sparse()
    lower = _LowerTriangle(x.size) if symmetric else None
    try:
        with graph.atomic():
            found, mask, parts, emitter, path_size = _direct(y, x, lower)
            wanted = np.flatnonzero(mask)
            mirror = strict = None
            pattern = sparse.csr_array(
                (np.ones(found.rows.size, dtype=bool), found.columns,
                 np.concatenate([[0], np.cumsum(found.lengths)])), shape=(y.size, x.size))
            if symmetric and lower.mirror is None:
                # a pattern found asymmetric is symmetrised: every nonzero is computed and
                # placed among the symmetrised pattern's
                pattern = (pattern + pattern.T).tocsr()
                pattern.sort_indices()
                keys = np.repeat(np.arange(y.size, dtype=np.int64),
                                 np.diff(pattern.indptr)) * x.size + pattern.indices
                target = np.searchsorted(keys, found.rows * x.size + found.columns)
            else:
                target = wanted
                if symmetric:
                    mirror = lower.mirror[wanted]
                    strict = (found.rows != found.columns)[wanted]
            if symmetric:
                # a symmetric colouring takes at least the nonzeros of a row, less one, over
                # two, plus one
                least = (np.diff(pattern.indptr).max(initial=0) + 2) // 2
            else:
                # a compressed pass takes at least as many colours as a row (columns) or a
                # column (rows) has nonzeros
                least = min(np.diff(pattern.indptr).max(initial=0),
                            np.bincount(pattern.indices, minlength=x.size).max(initial=0))
            placed = []
            for positions, values in parts:
                placed.append((target[positions], values))
                if strict is not None and strict[positions].any():
                    below = np.flatnonzero(strict[positions])
                    placed.append((mirror[positions[below]], emitter.take(values, below)))
            values = emitter.combine(pattern.nnz, placed, y.dtype)
            if isinstance(values, np.ndarray):
                values = const(values, graph, dtype=y.dtype)
            return apply("csr_matrix", values, const(pattern.indices, graph, dtype="int64"),
                         const(pattern.indptr, graph, dtype="int64"), shape=pattern.shape,
                         colors=0, method="direct"), least * path_size
    except _Abandoned as reason:
        if method == "direct" and reason.args[0] != "no nonzero":
            raise SymgradError(f"direct emission of the sparse derivative has no rule for op "
                               f"{reason.args[0]!r}; method='compressed' computes it") from None
        return None


# What an entry costs NumPy, relative to an element-wise op's, in a method's work: a gather
# reads scattered entries; put_add copies its base and adds at scattered positions (fitted to
# the timings of tests/benchmarks/sparse_chooser.py)
WORK_WEIGHTS = {"gather": 2, "put_add": 3}


def _work(result, mark):
    """The entries computed per call by the nodes added since key ``mark`` that ``result``
    reads, weighted by WORK_WEIGHTS."""
    nodes = result.graph._node
    return sum(WORK_WEIGHTS.get(nodes[node]["op"], 1) * math.prod(nodes[node]["shape"])
               for node in result.graph.ancestors_in_order([result.node])
               if node >= mark and nodes[node]["op"] not in ("const", "csr_matrix"))


def _chosen(direct, method, mark):
    """Whether direct emission's result (_direct_csr's) is taken without building the
    compressed pass: the method is "direct", or (method None) its work is at most half the
    least a compressed pass could do, the compressed pass's work per colour having measured
    at least two thirds of its bound's on the structures of tests/benchmarks/sparse_chooser.py."""
    return direct is not None and (method == "direct" or 2 * _work(direct[0], mark) <= direct[1])


def _cheaper(direct, compressed, mark):
    """Of direct emission's result (or None) and the compressed pass's, the one whose nodes
    do less work per call (_work); the other's nodes are left unread."""
    if direct is not None and _work(direct[0], mark) <= _work(compressed, mark):
        return direct[0]
    return compressed


def _without_unread(result, mark):
    """``result``, with the nodes added since key ``mark`` that it does not read removed (the
    partial derivatives and terms direct emission or a compressed pass built and left unused)."""
    graph, nodes = result.graph, result.graph._node
    read = set(graph.ancestors_in_order([result.node]))
    added = [node for node in range(mark, graph.next_key) if node in nodes]
    unread = {node for node in added if node not in read}
    if unread:
        for node in added:
            # a kept derivative node built by the rule of a node that goes keeps that op's
            # name, as Graph.release_unused leaves it, for the comment in the emitted code
            if nodes[node]["grad_of"] in unread and node not in unread:
                nodes[node]["grad_of"] = nodes[nodes[node]["grad_of"]]["op"]
        graph.discard(unread)
    return result


def _seeds(colors, count, dtype):
    """The (colours, entries) matrix whose row k is 1 at the entries of colour k."""
    seeds = np.zeros((count, colors.size), dtype=dtype)
    seeds[colors, np.arange(colors.size)] = 1.0
    return seeds


def _csr(compressed, flat, pattern, count, method):
    """The csr_matrix node whose nonzeros are ``compressed``'s flat entries ``flat``."""
    graph = compressed.graph
    if pattern.nnz:
        data = compressed.reshape(-1)[flat.astype(np.int64)]
    else:
        data = const(np.zeros(0, dtype=compressed.dtype), graph)
    return apply("csr_matrix", data, const(pattern.indices, graph, dtype="int64"),
                 const(pattern.indptr, graph, dtype="int64"), shape=pattern.shape,
                 colors=count, method=method)


def pattern_of(matrix):
    """The pattern a sparse result (sg.jacobian or sg.hessian with sparse=True) computes, as a
    boolean CSR array; a SciPy sparse matrix or a NumPy array's nonzeros pass through."""
    sparse = _scipy_sparse()
    if isinstance(matrix, Expr):
        if matrix.op != "csr_matrix":
            raise SymgradError(f"a {matrix.op} expression is not a sparse result: give "
                               f"sg.jacobian(..., sparse=True) or sg.sparsity(y, x)")
        _, indices, indptr = (operand.data.get("value") for operand in matrix.inputs)
        return sparse.csr_array((np.ones(indices.size, dtype=bool), indices, indptr),
                                shape=matrix.shape)
    return sparse.csr_array(matrix, dtype=bool)


def draw_sparsity(matrix, path, title=None):
    """Draw the nonzero pattern of ``matrix`` (a sparse result of sg.jacobian or sg.hessian, a
    pattern of sg.sparsity, any SciPy sparse matrix or NumPy array) as a spy plot to ``path``
    (.png, .svg or .pdf: matplotlib, ``pip install -e ".[pictures]"``); the title says its
    shape, its nonzeros and, for a sparse result, its colours.

    >>> import os, tempfile
    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(6,))
    >>> J = sg.jacobian(x[1:] * x[:-1], x, sparse=True)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     sg.draw_sparsity(J, os.path.join(folder, "spy.png"))
    ...     os.listdir(folder)
    ['spy.png']
    """
    try:
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise SymgradError("draw_sparsity needs matplotlib: pip install -e "
                           "'.[pictures]' in a clone of symgrad") from None
    pattern = pattern_of(matrix)
    if title is None:
        title = f"{pattern.shape[0]} x {pattern.shape[1]}, {pattern.nnz:,} nonzeros"
        if isinstance(matrix, Expr):
            attrs = matrix.data["attrs"]
            title += (", nonzeros computed directly" if attrs["method"] == "direct" else
                      f", {attrs['colors']} colours ({attrs['method']})")
    figure, axes = plt.subplots(figsize=(5, 5))
    try:
        axes.spy(pattern, markersize=max(0.5, min(6.0, 300.0 / max(pattern.shape))))
        axes.set_title(title, fontsize=10)
        figure.savefig(path, bbox_inches="tight")
    finally:
        plt.close(figure)
