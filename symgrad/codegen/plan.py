"""The plan of a generated function: what it computes, in which order, and what each array's memory
is. Computed once from the graph and the outputs; the memory decisions (symgrad.codegen.memory)
fill in its steps, and a renderer (numpy, scalar, numba, array_api) writes it out.

A step computes one node (or, with fusion, a group of nodes: symgrad.codegen.numba). Nodes whose
value is known when the function is compiled, constants and ops on constants alone, are folded:
the plan holds their values and no step computes them.
Imports ops, naming and errors, and codegen.emission and codegen.entry.
"""

import heapq
import itertools
import math

import numpy as np

from .. import naming
from ..errors import SymgradError
from ..ops import OPS, static_shape
from ..ops.core import FOLD_LIMIT
from .emission import (LIBRARIES, EmitContext, LazyLiterals, number_source, numpy_emitter,
                       scalar_type, statements)
from .entry import build_function

# Up to this many outputs, the statements of those needing fewer nodes come first
# (_outputs_by_reach).
REACH_ORDER_LIMIT = 16


class Step:
    """One step of the function: a node, or a group of nodes fused into one loop, with the nodes
    it reads and the decisions the memory passes take for it.

    kind: "input" (a variable), "constant" (a constant or a folded node: nothing to compute),
    "alias" (another node's value under another name: stop_gradient), "compute", or "group".
    """

    # a plan holds one step per node: slots keep a large plan's memory (and its collector's work)
    # down
    __slots__ = ("kind", "node", "group", "operands", "alias_of", "mask", "blocked_term",
                 "in_blocks", "reuses", "updates", "block_slot", "released", "statements",
                 "inlined", "diagonal_terms")

    def __init__(self, kind, node=None, operands=(), group=None):
        self.kind = kind
        self.node = node
        self.group = group
        self.operands = operands
        self.alias_of = None        # an alias's node, whose value it is
        # the memory decisions (codegen.memory), each None / False when not taken
        self.mask = False           # the value is given as a boolean mask (Emission.numpy_mask)
        self.blocked_term = None    # this sum is made in blocks with this term (read only here)
        self.in_blocks = False      # this term is made inside the blocks of the sum reading it
        self.reuses = None          # the dying operand whose array the result is written into
        self.updates = None         # the same, written as an augmented assignment (t1 *= 2.0)
        self.block_slot = None      # a blocked sum's workspace slot of one block of its term
        self.released = ()          # the nodes whose arrays are released (del) after the step
        self.statements = None      # node -> its statements, as the renderer wrote them
        self.inlined = False        # the value is written into its one reader's expression
        self.diagonal_terms = ()    # this sum's terms added on their diagonals (read only here)

    def __repr__(self):
        return f"<step {self.kind} {self.node if self.group is None else self.group}>"


class Plan:
    """The steps computing ``outputs`` from ``inputs``, in order, with what every memory pass and
    renderer needs to know of the graph: which values are folded, who reads what, and when each
    value is read last.

    Its ops are emitted, and its folded values computed, in their NumPy form; the fast path's
    plan (codegen.scalar.ScalarPlan) has them in their Python-float form (``python_floats``:
    math.sin and np.sin may differ in the last bit).
    """

    python_floats = False

    def __init__(self, graph, outputs, inputs, locality=False):
        self.graph = graph
        # the node data by key: networkx's own dict, read directly (its NodeView is a
        # function call per lookup, and a plan reads node data a few times per step)
        self.nodes = graph._node
        self.outputs = list(outputs)
        self.output_set = set(self.outputs)
        self.inputs = list(inputs)
        alone = _ArraysOfInputsAlone(self.nodes)
        self.order = graph.ancestors_in_order(outputs_by_reach(graph, self.outputs),
                                              visit_last=alone.__getitem__)
        input_set = set(self.inputs)
        for node in self.order:
            data = self.nodes[node]
            if data["op"] == "var" and node not in input_set:
                raise SymgradError(f"the outputs depend on variable {data['attrs']['name']!r}, "
                                   f"which is not among the inputs")
            if data["op"] == "csr_matrix" and node not in self.output_set:
                raise SymgradError("a sparse matrix (sg.jacobian or sg.hessian with sparse=True) "
                                   "is a result of its own: compile it as an output, and "
                                   "compute with it after the call")
        self.float64_only = all(self.nodes[n]["dtype"] == "float64" for n in self.inputs)
        self.folded = {}            # node -> its value, computed from constant operands
        self._literals = {}         # node -> the source of its number (literal)
        self.group_of = {}          # node -> the group computing it (codegen.numba)
        # the memory decisions that concern nodes, grouped or not (codegen.memory)
        self.into_slice = {}        # value -> the index_grad whose array's slice it is written to
        self.slice_arrays = set()   # those index_grads, whose arrays their values' steps make
        # term -> (its part of eye(n), its values, the axes of its diagonal, negated), added on
        # the diagonal by the sum reading it
        self.diagonal_terms = {}
        self.workspace_eligible = set()     # nodes whose new arrays may live in the workspace
        self.decided = []           # the memory passes taken, in order
        self.slots = {}             # node -> the workspace slot its array lives in
        self.slot_shapes = []       # workspace slot -> the shape of its array
        self.steps = [self._step(node) for node in self.order]
        self.step_of = {step.node: step for step in self.steps}
        if locality:
            locality_order(self)
        self.readers = {}
        self.last_use = {}
        self.update_liveness()

    # -- building -----------------------------------------------------------------------------------

    def _step(self, node):
        data = self.nodes[node]
        step = Step("compute", node, data["inputs"])
        if data["op"] == "var":
            step.kind = "input"
        elif data["op"] == "const":
            step.kind = "constant"
        else:
            self.decide_computation(step)
        return step

    def decide_computation(self, step):
        """Decide whether ``step`` computes anything: an identity is an alias of its operand, and
        an op on constants alone (not an output) is folded when its emission computes it."""
        node, data = step.node, self.nodes[step.node]
        if self.emitter(data) == "{0}" and not self.is_literal(data["inputs"][0]):
            step.kind, step.alias_of = "alias", data["inputs"][0]
        elif node not in self.output_set and self.constant_operands(data):
            value = self._evaluate(node, data)
            if value is not None:
                self.folded[node] = value
                step.kind = "constant"

    def emitter(self, data):
        """The op's emission the plan's values are computed with."""
        return OPS[data["op"]].numpy

    def fold_emitter(self, data):
        """The emission a folded value is computed by: the one the code would run."""
        return numpy_emitter(data["op"], data["dtype"])

    def constant_operands(self, data):
        """Whether ``data``'s node can be computed now: a built-in op on constants only, with a
        result of at most FOLD_LIMIT entries."""
        inputs = data["inputs"]
        if not inputs:
            return False
        folded, nodes = self.folded, self.nodes
        for i in inputs:        # is_constant, for every operand of every node
            if i not in folded and nodes[i]["op"] != "const":
                return False
        return OPS[data["op"]].emit.foldable and static_shape(data["shape"]) \
            and math.prod(data["shape"]) <= FOLD_LIMIT

    def is_constant(self, node):
        return node in self.folded or self.nodes[node]["op"] == "const"

    def value(self, node):
        """A constant's or a folded node's value."""
        return self.folded[node] if node in self.folded else self.nodes[node]["value"]

    def is_literal(self, node):
        """Whether ``node``'s value is written into the source as a number: a number known now."""
        return self.is_constant(node) and self.value(node).shape == ()

    def literal(self, node):
        """Source of a number known now, as an operand (worked out once: a value known now never
        changes)."""
        text = self._literals.get(node)
        if text is None:
            value = self.value(node)
            text = self._literals[node] = number_source(bool(value) if value.dtype == bool
                                                        else float(value))
        return text

    def _evaluate(self, node, data):
        """The node's value, computed once by its own emission on the constants, or None when
        that fails (the statement is then emitted and fails, or warns, at run time as it would
        have)."""
        namespace = {"np": np, **LIBRARIES, "float": float, "math": math, "__builtins__": {}}
        args = []
        for k, operand in enumerate(data["inputs"]):
            if self.is_literal(operand):
                args.append(self.literal(operand))
            else:
                name = f"_sg_operand_{k}"
                namespace[name] = self.value(operand)
                args.append(name)
        args = operand_forms(self, data, args, named=lambda operand: not self.is_literal(operand))
        emitter = self.fold_emitter(data)
        try:
            ctx = EmitContext(_FoldingNames(), self.nodes, node, args, "_sg_folded",
                              [self.operand_dtype(i) for i in data["inputs"]])
            body = statements(emitter, ctx, LazyLiterals(data["attrs"]))
            source = "def _sg_fold():\n" + "".join(f"    {s}\n" for s in body) \
                + "    return _sg_folded\n"
            # asarray: a view of a constant (c.T, c[1:]) stays a view, which neither doubles
            # the constant's memory nor loses the layout NumPy and BLAS read it in
            # ((A.T * p) @ A is faster with A.T a view: tests/benchmarks/README.md)
            with np.errstate(all="ignore"):
                value = np.asarray(build_function(source, namespace, "_sg_fold")(),
                                   dtype=data["dtype"])
        except Exception:           # noqa: BLE001 (whatever it is, the run-time code shows it)
            return None
        if value.shape != tuple(data["shape"]):
            return None
        value.setflags(write=False)
        return value

    def operand_dtype(self, node):
        """The dtype of ``node``'s value as the emitted code holds it (the graph's)."""
        return self.nodes[node]["dtype"]

    # -- liveness ------------------------------------------------------------------------------------

    def update_liveness(self):
        """Who reads each node (once per reading step) and the index of the last step reading
        it; an output is read at the end, and an array lives as long as any view of it: writing
        into it or releasing it earlier would change (or keep alive) what the view shows."""
        self.readers, self.last_use = readers, last_use = {}, {}
        for k, step in enumerate(self.steps):
            for operand in step.operands:
                reading = readers.get(operand)
                if reading is None:
                    readers[operand] = [step]
                else:
                    reading.append(step)
                last_use[operand] = k
        for node in self.outputs:
            last_use[node] = len(self.steps)
        # views, aliases, and ops symgrad cannot vouch for
        views = {name for name, op in OPS.items() if op.emit.view}
        nodes = self.nodes
        for node in reversed(self.order):
            data = nodes[node]
            if data["op"] in views:
                for base in data["inputs"]:
                    last_use[base] = max(last_use.get(base, -1), last_use.get(node, -1))

    def node_steps(self):
        """The steps computing one node each."""
        return [step for step in self.steps if step.kind == "compute"]


class _FoldingNames:
    """The naming services of an emission computed at compile time: helpers get private names,
    and a constant's shape is static."""

    def dim(self, name):
        raise SymgradError(f"dimension {name!r} has no length at compile time")

    def claim(self, wanted):
        return naming.checked_identifier(wanted, "name")

    def library(self, name, op_name):
        return name         # the folding namespace has every library


def operand_forms(plan, data, args, named, operand_dtypes=None):
    """``args`` (the operands' source) as the op's emission takes them:

    - boolean (and int64) operands made floating when the node is floating and none of its
      operands is (symgrad's arithmetic on integers is floating, as on booleans):
      NumPy adds and multiplies two masks as booleans (True + True is True), refuses to subtract
      or negate them and takes sin of a mask in float16. On Python floats every boolean operand
      is made a float: True * True is the int 1 (a square's template repeats its operand). Masks
      (Op.nondifferentiable: where's condition) stay; a reduction of a mask converts as it adds
      (Emission.reduces_masks).
    - numbers written as NumPy scalars of the node's dtype where, as Python numbers, they would
      not give it: NumPy promotes a Python number to the dtype of the arrays it meets (NEP 50)
      and to float64 alone, so ``np.where(c, 1.0, 0.0)`` of a float32 node is written
      ``np.where(c, np.float32(1.0), np.float32(0.0))``. Operands that have no say in the dtype
      (masks, shape donors) count as in ops.promoted_dtypes.

    ``named(operand)`` says whether an operand is a name (an array) rather than a number;
    ``operand_dtypes`` are the operands' (plan.operand_dtype), when the caller has them.
    """
    dtype = data["dtype"]
    if dtype not in ("float64", "float32"):
        return args
    inputs = data["inputs"]
    if operand_dtypes is None:
        operand_dtypes = [plan.operand_dtype(operand) for operand in inputs]
    if dtype == "float64" and operand_dtypes.count("float64") == len(operand_dtypes):
        return args         # no boolean to make floating, and nothing to promote
    scalar = plan.python_floats
    op = OPS[data["op"]]
    if not op.emit.reduces_masks:
        masks = op.nondifferentiable
        booleans = [k for k in range(len(args)) if k not in masks
                    and operand_dtypes[k] in ("bool", "int64")]
        if booleans and (scalar or len(booleans) >= len(args) - len(masks)):
            floating = "float" if scalar else scalar_type(dtype)
            args = [f"{floating}({a})" if k in booleans else a for k, a in enumerate(args)]
    if scalar:
        return args
    numbers, arrays = [], []
    for k, operand in enumerate(inputs):
        if k in op.nondifferentiable:
            continue
        if named(operand):
            if operand_dtypes[k] != "bool":
                arrays.append(operand_dtypes[k])
        elif plan.nodes[operand]["dtype"] != "bool":
            numbers.append(k)
    # arrays all of the node's dtype promote a number to it: NumPy's promotion is not needed
    if not numbers or arrays and all(name == dtype for name in arrays) \
            or (np.result_type(*arrays).name if arrays else "float64") == dtype:
        return args
    return [f"{scalar_type(dtype)}({a})" if k in numbers else a for k, a in enumerate(args)]


def outputs_by_reach(graph, outputs):
    """The outputs in the order their statements are emitted: values in the caller's order, then
    derivatives, those needing fewer nodes first (stable). The forward pass is then done before
    any cotangent exists, and a reverse-mode gradient comes out in backpropagation's order, each
    parameter's gradient as soon as the cotangent it reads is complete: for [loss, dW1, dW2, dW3],
    dW3, dW2, then dW1, so that each layer's cotangent dies before the next one is made.
    Counting reaches walks each derivative's ancestors: past REACH_ORDER_LIMIT outputs the
    caller's order stands, and the cost stays linear in the graph."""
    if len(outputs) < 2 or len(outputs) > REACH_ORDER_LIMIT:
        return outputs
    nodes = graph._node
    key = {node: (1, _ancestor_count(nodes, node)) if nodes[node]["derivative"]
           else (0, 0) for node in set(outputs)}
    return sorted(outputs, key=key.__getitem__)


def _ancestor_count(nodes, root):
    """How many nodes ``root`` needs, itself included: the length of
    graph.ancestors_in_order([root]), counted by a walk that keeps no order (and so is cheaper)."""
    seen, stack = {root}, [root]
    see, push, pop = seen.add, stack.append, stack.pop
    while stack:
        for operand in nodes[pop()]["inputs"]:
            if operand not in seen:
                see(operand)
                push(operand)
    return len(seen)


class _ArraysOfInputsAlone(dict):
    """{node: whether it is an array computed from inputs and constants alone}, each answer
    worked out when first looked up (the walk of Plan asks once per reading of a node).

    Such a value is computed just before its first reader, after the reader's other operands:
    computed ahead of them, it would be held while they are made and have left the cache when
    read (a weight decay's 2 c W, made before the whole backward pass its gradient waits for). A
    number costs nothing to hold and keeps its place."""

    def __init__(self, nodes):
        super().__init__()
        self.nodes = nodes

    def __missing__(self, node):
        nodes = self.nodes
        data = nodes[node]
        alone = data["shape"] != () and data["op"] not in ("var", "const")
        if alone:
            for i in data["inputs"]:
                if nodes[i]["op"] not in ("var", "const"):
                    alone = False
                    break
        self[node] = alone
        return alone


# -- statement order for locality -------------------------------------------------------------------

# Whether the NumPy backend orders its statements for locality (locality_order). Off: the
# unrolled char-RNN's call moved within the shared machine's noise at 50 steps and gained a few
# percent at 200, while the order, a Python pass over every statement, made emitting the 10k-op
# chain of tests/benchmarks/compile_time.py markedly slower (tests/benchmarks/small_arrays.py
# compares the two orders; its README has the figures).
LOCALITY = False
# A derivative's statement whose operands were just made is taken ahead of the depth-first order
# when at most this many statements it waits for are not made yet (they are taken with it):
# enough for one step of an unrolled loop's backward pass (the cotangent of a tanh cell waits for
# 1 - h * h, a step's gradient of the logits for a few ops of its targets), few enough that the
# look-ahead stays a constant cost per offer.
PULL_LIMIT = 8
# A value read by more statements than this offers none of them: they are many independent
# pieces of work (a loss's cotangent read by every step of an unrolled loop), and offered at once
# each would be made as soon as it can be, and held until its step comes.
OFFER_LIMIT = 8
# A named dimension counts as this many entries when two orders' memory is compared: their sizes
# are unknown until the call, and the comparison needs one number.
NOMINAL_DIM = 1 << 10
# The estimated peak of live arrays may exceed the depth-first order's by this fraction: an
# unrolled loop's backward pass, step by step, starts its gradients' sums at its first step while
# the stored forward pass is all alive (and the estimate does not see the arrays the memory passes
# reuse).
PEAK_TOLERANCE = 1 / 32


def locality_order(plan):
    """Put ``plan``'s steps in locality_schedule's order when no value lives longer in total
    there (bytes times statements) and the estimated peak of live arrays is at most
    PEAK_TOLERANCE above the depth-first order's: a pure reordering, each statement computing
    what it did. The plan's liveness is then out of date (Plan.update_liveness)."""
    schedule = locality_schedule(plan) if LOCALITY else None
    if schedule is not None and _costs_no_more(plan, *schedule):
        plan.steps = [plan.steps[k] for k in schedule[0]]
        plan.order = [step.node for step in plan.steps]
    return plan


def locality_schedule(plan):
    """(order, operands, sizes, views, start): the positions of ``plan``'s steps in an order
    that reads a value soon after making it, with what _costs_no_more needs (each step's
    operands from ``start`` on, as positions, the estimated bytes of each array, which steps
    are views); None when that order is the depth-first one.

    The depth-first order (Graph.ancestors_in_order over the outputs) makes each derivative
    output's statements together: the gradients of an unrolled loop's weights are then one
    sweep over all the steps each, and every step's cotangent is kept from the first sweep to
    the last, out of the cache by then. Here, the statements of the value outputs (a forward
    pass) keep their order and come first (``start`` is where they end). Then each derivative
    statement made (but for those of inputs and constants alone, and those of many readers:
    OFFER_LIMIT) offers its readers, the latest made first: one whose other operands are made
    is made next; one that waits for at most PULL_LIMIT statements more is made with them once
    no reader is ready (those waiting for fewest first, then the latest offered). When none is
    offered, the next statement of the depth-first order is made. A list scheduler preferring
    the operands made most recently, with a bounded look-ahead.

    Iterative, and n log n in the plan's size: each edge offers its reader once, an offer looks
    at most PULL_LIMIT statements ahead, and those that must look ahead wait in a heap.
    """
    steps = plan.steps
    count = len(steps)
    nodes = plan.nodes
    start = 1 + max((k for k, step in enumerate(steps) if step.node in plan.output_set
                     and not nodes[step.node]["derivative"]), default=-1)
    if count - start < 3:
        return None
    position = {step.node: k for k, step in enumerate(steps)}
    made = [True] * start + [False] * (count - start)
    operands = [()] * count
    readers = [[] for _ in range(count)]
    sizes = [0] * count
    # statements of inputs and constants alone, and views of them (an input's slice, and its
    # transpose), are made when a statement taken ahead reads them, and count for nothing in its
    # look-ahead; they offer no reader (nothing of theirs is in the cache for the readers)
    cheap = [False] * count
    views = [False] * count
    itemsize = {}
    described = [False] * count

    def describe(k, ahead):
        """Fill in cheap, views and sizes for step ``k`` reading ``ahead``."""
        described[k] = True
        step = steps[k]
        if step.kind == "input" or step.kind == "constant":
            cheap[k] = True
            return
        data = nodes[step.node]
        view = views[k] = step.kind == "alias" or OPS[data["op"]].emit.view
        if all(cheap[o] for o in ahead) and (view or all(steps[o].kind in ("input", "constant")
                                                         for o in ahead)):
            cheap[k] = True
        if not view and data["shape"] != ():
            dtype = data["dtype"]
            if dtype not in itemsize:
                itemsize[dtype] = np.dtype(dtype).itemsize
            sizes[k] = itemsize[dtype] * math.prod(
                d if isinstance(d, int) else NOMINAL_DIM for d in data["shape"])

    for k in range(start, count):
        ahead = operands[k] = [position[o] for o in steps[k].operands]
        for operand in ahead:
            if operand >= start:
                readers[operand].append(k)
            elif not described[operand]:
                # a value made before, read here: its own operands' cheapness is not needed
                # (it is made, and never waited for)
                describe(operand, ())
        describe(k, ahead)
    offers = [not cheap[k] and len(readers[k]) <= OFFER_LIMIT for k in range(count)]

    order = list(range(start))
    offered = []            # readers offered, the latest on top
    # readers offered that wait for statements not made yet, those waiting for fewest first,
    # then the latest offered: a statement waiting for one transpose is not left behind by a
    # chain of others, each waiting for a few
    waiting = []

    def make(k):
        made[k] = True
        order.append(k)
        if offers[k]:
            offered.extend(reader for reader in reversed(readers[k]) if not made[reader])

    def waited_for(k):
        """The steps not made yet that ``k`` waits for, in depth-first order, and how many of
        them count; None when that is more than PULL_LIMIT."""
        found, pending, counted = set(), [k], 0
        while pending:
            for operand in operands[pending.pop()]:
                if not made[operand] and operand not in found:
                    if not cheap[operand]:
                        counted += 1
                        if counted > PULL_LIMIT:
                            return None
                    found.add(operand)
                    pending.append(operand)
        return sorted(found), counted

    following = start
    while len(order) < count:
        if offered:
            k = offered.pop()
            if made[k]:
                continue
            if all(made[o] for o in operands[k]):
                make(k)
                continue
            ahead = waited_for(k)
            if ahead is None:
                continue
            if ahead[1]:        # those ready now go first
                heapq.heappush(waiting, (ahead[1], -len(order), k))
                continue
        elif waiting:
            k = heapq.heappop(waiting)[2]
            if made[k]:
                continue
            ahead = waited_for(k)
            if ahead is None:
                continue
        else:
            while made[following]:
                following += 1
            make(following)
            continue
        for earlier in ahead[0]:
            make(earlier)
        make(k)
    if order == list(range(count)):
        return None
    return order, operands, sizes, views, start


def _costs_no_more(plan, order, operands, sizes, views, start):
    """Whether the steps in ``order`` (positions in ``plan.steps``, the same up to ``start``,
    with the operands of those after it) keep values alive no longer in total (bytes times
    statements) than in the steps' own order, with an estimated peak of live arrays at most
    PEAK_TOLERANCE above it. Only the statements from ``start`` on move: the arrays they make,
    and those made before that they read, are counted from ``start`` to their last use."""
    count = len(order)
    lengths = np.fromiter(map(len, operands), dtype=np.int64, count=count)
    readers = np.repeat(np.arange(count), lengths)
    operand_of = np.fromiter(itertools.chain.from_iterable(operands), dtype=np.int64,
                             count=int(lengths.sum()))
    view_edges = np.array(views, dtype=bool)[readers]
    views, bases = readers[view_edges], operand_of[view_edges]
    counted = np.unique(np.concatenate([operand_of, np.arange(start, count)]))
    output_positions = np.array([k for k in counted.tolist()
                                 if plan.steps[k].node in plan.output_set], dtype=np.int64)
    size = np.array(sizes, dtype=np.float64)[counted]

    def costs(place):
        """(total of bytes times statements alive, peak of live bytes) from ``start`` on, with
        step k at place[k]."""
        last = np.full(count, -1, dtype=np.int64)
        np.maximum.at(last, operand_of, place[readers])
        last[output_positions] = count
        while views.size:       # a view keeps its base alive (Plan.update_liveness)
            extended = np.maximum(last[bases], last[views])
            if np.array_equal(extended, last[bases]):
                break
            np.maximum.at(last, bases, last[views])
        made = np.maximum(place[counted], start)
        died = np.maximum(last[counted], made)
        change = np.zeros(count + 2)
        np.add.at(change, made, size)
        np.add.at(change, died + 1, -size)
        return float(size @ (died - made)), float(np.cumsum(change).max())

    place = np.empty(count, dtype=np.int64)
    place[np.array(order, dtype=np.int64)] = np.arange(count)
    old_total, old_peak = costs(np.arange(count))
    new_total, new_peak = costs(place)
    return new_total < old_total and new_peak <= old_peak * (1 + PEAK_TOLERANCE)
