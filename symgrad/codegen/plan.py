"""The plan of a generated function: what it computes, in which order, and what each array's memory
is. Computed once from the graph and the outputs; the memory decisions (symgrad.codegen.memory)
fill in its steps, and a renderer (numpy, scalar, numba, array_api) writes it out.

A step computes one node (or, with fusion, a group of nodes: symgrad.codegen.numba). Nodes whose
value is known when the function is compiled, constants and ops on constants alone, are folded:
the plan holds their values and no step computes them.
Imports ops, naming and errors, and codegen.emission and codegen.entry.
"""

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
                 "inlined")

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

    def __init__(self, graph, outputs, inputs):
        self.graph = graph
        # the node data by key: networkx's own dict, read directly (its NodeView is a
        # function call per lookup, and a plan reads node data a few times per step)
        self.nodes = graph._node
        self.outputs = list(outputs)
        self.output_set = set(self.outputs)
        self.inputs = list(inputs)
        self.order = graph.ancestors_in_order(outputs_by_reach(graph, self.outputs),
                                              visit_last=self._an_array_of_inputs_alone)
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
        self.group_of = {}          # node -> the group computing it (codegen.numba)
        # the memory decisions that concern nodes, grouped or not (codegen.memory)
        self.into_slice = {}        # value -> the index_grad whose array's slice it is written to
        self.slice_arrays = set()   # those index_grads, whose arrays their values' steps make
        self.workspace_eligible = set()     # nodes whose new arrays may live in the workspace
        self.decided = []           # the memory passes taken, in order
        self.slots = {}             # node -> the workspace slot its array lives in
        self.slot_shapes = []       # workspace slot -> the shape of its array
        self.steps = [self._step(node) for node in self.order]
        self.step_of = {step.node: step for step in self.steps}
        self.readers = {}
        self.last_use = {}
        self.update_liveness()

    # -- building -----------------------------------------------------------------------------------

    def _an_array_of_inputs_alone(self, node):
        """Whether ``node`` is an array computed from inputs and constants alone. Such a value
        is computed just before its first reader, after the reader's other operands: computed
        ahead of them, it would be held while they are made and have left the cache when read
        (a weight decay's 2 c W, made before the whole backward pass its gradient waits for). A
        number costs nothing to hold and keeps its place."""
        data = self.nodes[node]
        return data["shape"] != () and data["op"] not in ("var", "const") and all(
            self.nodes[i]["op"] in ("var", "const") for i in data["inputs"])

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
        if not data["inputs"] or not all(self.is_constant(i) for i in data["inputs"]):
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
        """Source of a number known now, as an operand."""
        value = self.value(node)
        return number_source(bool(value) if value.dtype == bool else float(value))

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
        self.readers, self.last_use = {}, {}
        for k, step in enumerate(self.steps):
            for operand in step.operands:
                self.readers.setdefault(operand, []).append(step)
                self.last_use[operand] = k
        for node in self.outputs:
            self.last_use[node] = len(self.steps)
        for node in reversed(self.order):
            data = self.nodes[node]
            if OPS[data["op"]].emit.view:       # views, aliases, and ops symgrad cannot vouch for
                for base in data["inputs"]:
                    self.last_use[base] = max(self.last_use.get(base, -1),
                                              self.last_use.get(node, -1))

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


def operand_forms(plan, data, args, named):
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

    ``named(operand)`` says whether an operand is a name (an array) rather than a number.
    """
    dtype = data["dtype"]
    if dtype not in ("float64", "float32"):
        return args
    scalar = plan.python_floats
    op = OPS[data["op"]]
    inputs = data["inputs"]
    operand_dtypes = [plan.operand_dtype(operand) for operand in inputs]
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
    while stack:
        for operand in nodes[stack.pop()]["inputs"]:
            if operand not in seen:
                seen.add(operand)
                stack.append(operand)
    return len(seen)
