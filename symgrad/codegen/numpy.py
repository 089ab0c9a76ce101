"""The NumPy renderer: a plan (symgrad.codegen.plan) written out as one Python function, one
statement per step, with the memory decisions (symgrad.codegen.memory) taken as the plan says.

Owns which node gets which generated name (inputs keep theirs, intermediates are t0, t1...,
gradients d_out_d_x: symgrad.naming makes the names) and the namespace the source is compiled in.
The numba and array-API renderers build on it.
Imports ops, naming and errors, and codegen's emission, plan and memory.
"""

import copy
from dataclasses import dataclass, field

import numpy as np

from .. import naming
from ..errors import InternalError, SymgradError
from ..naming import Namer
from ..ops import OPS
from ..ops.shape import index_grad_target
from .emission import (LIBRARIES, NUMPY_SYNTAX, EmitContext, LazyLiterals, binds_tightest,
                       emitted, numpy_emitter, scalar_type, statements, statements_into,
                       whole_argument)
from . import loops
from .memory import (PASSES, block_rows, array_made_by_its_cotangent, inline_small_values,
                     number_workspace_slots, update_in_place, diagonal_subscripts)
from .plan import Plan, operand_forms


class FunctionNames:
    """The names and the namespace of one generated function: ``names`` maps each node with a
    value in the source to its name there (inputs keep theirs; symgrad.naming makes the others),
    ``namespace`` is what the source is compiled in. The naming services an emitter asks for
    through its EmitContext (dimension lengths, helpers' names) are here, and how an op reads
    its operands (their source, dtypes and the context its emitter sees)."""

    syntax = NUMPY_SYNTAX   # how emitters index, transpose and reshape (EmitContext)
    enclosing = None        # the function's names, for those of a loop's body (codegen.loops)

    def __init__(self, plan, function_name="f", taken=()):
        self.plan = plan
        self.graph = plan.graph
        # a dunder would rebind the namespace's own entries (def __builtins__ ...)
        if naming.is_reserved_function_name(function_name):
            raise SymgradError(f"function name {function_name!r} is reserved")
        self.function_name = naming.checked_identifier(function_name, "function name")
        self.namer = Namer(taken=[function_name, *taken])
        self.names = {}
        for node in plan.inputs:
            self.names[node] = self.namer.claim(self.plan.nodes[node]["attrs"]["name"])
        self.input_names = {self.names[node] for node in plan.inputs}
        self.namespace = {"np": np, "float": float, "__builtins__": {}}
        self._dims = {}
        self._constants = 0
        self._comments = {}         # label -> the comment of a derivative's statements

    def dim(self, name):
        """The variable holding the run-time length of dimension ``name``, read from the first
        input that has it."""
        if self.enclosing is not None:
            return self.enclosing.dim(name)
        if name not in self._dims:
            for node in self.plan.inputs:
                shape = self.plan.nodes[node]["shape"]
                if name in shape:
                    self._dims[name] = (self.namer.claim(naming.dimension(name)),
                                        f"np.shape({self.names[node]})[{shape.index(name)}]")
                    break
            else:
                raise SymgradError(f"dimension {name!r} is not the length of any input's axis")
        return self._dims[name][0]

    def claim(self, wanted):
        return self.namer.claim(wanted)

    def library(self, name, op_name):
        """Bind library ``name`` (emission.LIBRARIES) in the namespace, for op ``op_name``."""
        self.namespace[name] = LIBRARIES[name]
        return name

    def new_name(self, node):
        name = self.graph.readable_name(node)
        return self.namer.claim(name) if name else self.namer.temp()

    def namespace_constant(self, value):
        """The name of ``value`` put in the function's namespace."""
        if self.enclosing is not None:
            return self.enclosing.namespace_constant(value)
        name = self.namer.claim(naming.constant(self._constants))
        self._constants += 1
        self.namespace[name] = value
        return name

    # -- operands ------------------------------------------------------------------------------------

    def operand(self, node):
        """Source for a node used as an operand: its name, or a literal for a number known now."""
        name = self.names.get(node)
        if name is not None:
            return name
        if self.plan.is_literal(node):
            return self.plan.literal(node)
        name = self.namespace_constant(self.plan.value(node))
        self.names[node] = name
        return name

    def dim_lines(self):
        """The statements reading the lengths of the dimensions asked for."""
        return [f"{name} = {expression}" for name, expression in self._dims.values()]

    def operand_dtype(self, node):
        """The dtype of ``node``'s value as the emitted code holds it."""
        return self.plan.operand_dtype(node)

    def operand_dtypes(self, data):
        """The dtypes of the operands of ``data``'s node as the emitted code holds them."""
        return [self.operand_dtype(i) for i in data["inputs"]]

    def args(self, data, operand_dtypes=None):
        """The operands' source as the op's emission takes them (plan.operand_forms);
        ``operand_dtypes`` when the caller has them."""
        names, args = self.names, []
        for i in data["inputs"]:        # (a loop: a comprehension costs a call per statement)
            name = names.get(i)
            args.append(self.operand(i) if name is None else name)
        return operand_forms(self, data, args, named=names.__contains__,
                             operand_dtypes=operand_dtypes)

    @property
    def python_floats(self):
        return self.plan.python_floats

    @property
    def nodes(self):
        return self.plan.nodes

    def context(self, node, args, operand_dtypes=None):
        if operand_dtypes is None:
            operand_dtypes = self.operand_dtypes(self.plan.nodes[node])
        return EmitContext(self, self.plan.nodes, node, args, self.names[node], operand_dtypes,
                           self.syntax)

    def comment(self, data):
        if not data["derivative"]:
            return ""
        source = data.get("grad_of")
        if source is None:
            return ""
        if isinstance(source, str):         # the optimiser keeps only the op of a pruned node
            label = source
        else:
            label = self.names.get(source)
            if label is None:
                label = self.plan.nodes[source]["op"]
        comment = self._comments.get(label)
        if comment is None:
            # a newline in an op name would end the comment and start a statement
            comment = self._comments[label] = (f"  # grad of {label}"
                                               if naming.is_identifier(label) else "")
        return comment


class NumpyRenderer(FunctionNames):
    """Writes one Python function computing the plan's outputs from its inputs (variable
    nodes): the statements of each step, as the plan's memory decisions say, and the function
    around them."""

    body_passes = loops.BODY_PASSES     # the memory decisions a loop's body takes

    def __init__(self, plan, function_name="f", taken=()):
        super().__init__(plan, function_name, taken)
        self._block_names = None    # the variables of the loops over blocks (blocked sums)
        self._bare = set()          # inlined values whose expressions need parentheses as operands

    def nested(self, plan, names):
        """A renderer of ``plan``, a loop's body, writing into this function: it shares its
        names, namespace and dimensions; ``names`` names the body's placeholders."""
        inner = copy.copy(self)
        inner.plan, inner.graph = plan, plan.graph
        inner.names = dict(names)
        inner.enclosing = self
        inner._loops = None
        return inner

    # a stacked result of a loop: allocated before it, one slice written a step
    loop_slice = staticmethod(loops.numpy_slice)
    loop_stack_start = staticmethod(loops.numpy_stack_start)
    loop_stack_put = staticmethod(loops.numpy_stack_put)
    loop_stack_end = staticmethod(loops.numpy_stack_end)

    # -- operands ------------------------------------------------------------------------------------

    def record(self, step, node, body, lines):
        """Keep ``node``'s statements on its step (for the table and pictures) and emit them,
        each with the node's comment."""
        step.statements[node] = body
        comment = self.comment(self.plan.nodes[node])
        if len(body) == 1:
            lines.append(body[0] + comment)
        else:
            lines.extend(statement + comment for statement in body)

    # -- the body ------------------------------------------------------------------------------------

    def body(self):
        """The statements of every step, each step's dead arrays released (``del``) after it."""
        lines = []
        render_step, released_names = self.render_step, self.released_names
        for step in self.plan.steps:
            render_step(step, lines)
            if step.released:
                released = released_names(step)
                if released:
                    lines.append(f"del {', '.join(sorted(released))}")
        return lines

    def released_names(self, step):
        """The names whose arrays die after ``step``."""
        return [self.names[node] for node in step.released]

    def render_step(self, step, lines):
        kind = step.kind
        if kind == "input" or kind == "constant":
            return                  # named when read: a number is written where it is read
        if step.statements is None:
            step.statements = {}
        if kind == "alias":
            self.names[step.node] = self.operand(step.alias_of)
            return
        if kind == "group":
            self.render_group(step, lines)
            return
        if step.inlined:
            self.names[step.node] = self.inlined_expression(step.node)
            return
        plan = self.plan
        if step.in_blocks or step.node in plan.diagonal_terms \
                or array_made_by_its_cotangent(plan, step):
            return                  # made by the sum reading it, or with its value's step
        if loops.is_loop(plan.nodes[step.node]):
            loops.render_loop(self, step, lines)
            return
        if step.diagonal_terms:
            self.render_diagonal_sum(step, lines)
        elif step.blocked_term is not None:
            self.render_blocked_sum(step, lines)
        elif step.node in plan.into_slice:
            self.render_into_slice(step, lines)
        elif step.mask:
            data = self.plan.nodes[step.node]
            args = self.args(data)
            self.names[step.node] = self.new_name(step.node)
            body = OPS[data["op"]].emit.numpy_mask(self.context(step.node, args))
            self.record(step, step.node, body, lines)
        else:
            self.render_compute(step, lines)

    def render_group(self, step, lines):
        raise InternalError(f"unknown step {step!r}")

    def emitter(self, data):
        return numpy_emitter(data["op"], data["dtype"])

    def render_compute(self, step, lines):
        node = step.node
        data = self.plan.nodes[node]
        dtypes = self.operand_dtypes(data)
        args = self.args(data, dtypes)
        if step.updates is not None:
            # the dying operand's array carries on, updated, as node's
            position = data["inputs"].index(step.updates)
            other = args[1] if position == 0 else args[0]
            buffer = self.names[step.updates]
            self.names[node] = buffer
            step.statements[node] = [f"{buffer} {OPS[data['op']].emit.augmented}= {other}"]
            lines.append(step.statements[node][0] + self.comment(data))
            return
        emitter = self.emitter(data)
        buffer = None if step.reuses is None else self.names[step.reuses]
        self.names[node] = self.new_name(node)
        ctx = self.context(node, args, dtypes)
        attrs = LazyLiterals(data["attrs"])
        if buffer is None and node in self.plan.slots:
            buffer = f"_sg_ws[{self.plan.slots[node]}]"
        body = (statements(emitter, ctx, attrs) if buffer is None
                else statements_into(data["op"], ctx, attrs, buffer))
        self.record(step, node, body, lines)

    def inlined_expression(self, node):
        """The source of ``node``'s value, written into the expression reading it; its reader
        parenthesises it (args) unless its template is a call, an attribute or an item of its
        first operand, which bind tighter than any operator."""
        data = self.plan.nodes[node]
        template = self.emitter(data)
        ctx = EmitContext(self, self.plan.nodes, node, self.args(data), None,
                          [self.operand_dtype(i) for i in data["inputs"]], self.syntax)
        expression = emitted(template, ctx, LazyLiterals(data["attrs"]))
        if not isinstance(expression, str):
            raise InternalError(f"the emission of inlined node {node!r} is not one expression")
        if not (isinstance(template, str) and binds_tightest(template)):
            self._bare.add(node)        # an emitter's expression: parenthesised, whatever it is
        return expression

    def args(self, data, operand_dtypes=None):
        """The operands' source as the op's emission takes them; an inlined expression in
        parentheses unless it is a whole argument of a call in each of the op's templates."""
        args = super().args(data, operand_dtypes)
        if not self._bare or self._bare.isdisjoint(data["inputs"]):
            return args
        emit = OPS[data["op"]].emit
        templates = [self.emitter(data), emit.numpy_into]
        return [f"({arg})" if operand in self._bare
                and not all(isinstance(t, str) and whole_argument(t, k) for t in templates
                            if t is not None) else arg
                for k, (operand, arg) in enumerate(zip(data["inputs"], args))]

    def slice_view(self, node, lines):
        """Emit the array of ``node``'s index_grad reader (whose own step then emits nothing)
        and return the source of the slice ``node``'s value is to be written into."""
        reader = self.plan.into_slice[node]
        self.names[reader] = self.new_name(reader)
        # its shape is static: the array reads neither operand (the second may not exist yet)
        reader_ctx = self.context(reader, [self.names[node], "None"])
        start, index = index_grad_target(reader_ctx)
        comment = self.comment(self.plan.nodes[reader])
        lines.extend(statement + comment for statement in start)
        reader_step = self.plan.step_of[reader]
        reader_step.statements = {reader: []}
        return reader_ctx.item(self.names[reader], index)

    def render_into_slice(self, step, lines):
        """Emit ``node`` straight into the slice of its index_grad reader's array."""
        node = step.node
        data = self.plan.nodes[node]
        args = self.args(data)
        self.names[node] = self.new_name(node)
        ctx = self.context(node, args)
        attrs = LazyLiterals(data["attrs"])
        body = statements_into(data["op"], ctx, attrs, self.slice_view(node, lines))
        self.record(step, node, body, lines)

    def render_blocked_sum(self, step, lines):
        """Emit ``node`` = other + term (or other - term) as a loop over blocks of rows, each
        block of the term made into a workspace block and added at once: into the other
        operand's array when the plan has it taken over, else into a new array."""
        nodes = self.plan.nodes
        node, term = step.node, step.blocked_term
        data = nodes[node]
        other = next(i for i in data["inputs"] if i != term)
        shape = tuple(data["shape"])
        _, blocks = block_rows(shape)
        if self._block_names is None:     # the loops' variables, one pair for every loop
            self._block_names = tuple(self.namer.claim(name) for name in naming.BLOCK_LOOP)
        rows, block = self._block_names
        # an operand spread along the rows (a number, fewer axes, or one row) is read whole
        args = [f"{self.operand(i)}[{rows}]" if len(nodes[i]["shape"]) == len(shape)
                and nodes[i]["shape"][0] == shape[0] else self.operand(i)
                for i in nodes[term]["inputs"]]
        self.names[term] = self.new_name(term)
        ctx = self.context(term, args)
        attrs = LazyLiterals(nodes[term]["attrs"])
        made = statements_into(nodes[term]["op"], ctx, attrs, f"_sg_ws[{step.block_slot}][{block}]")
        comment = self.comment(data)
        takes_other = step.reuses is not None     # the other operand's array becomes the sum's
        self.names[node] = self.new_name(node)
        if takes_other:
            update = (f"{self.names[other]}[{rows}] {'+' if data['op'] == 'add' else '-'}= "
                      f"{self.names[term]}")
        else:       # a value held elsewhere, or computed at compile time (a constant's name)
            lines.append(f"{self.names[node]} = np.empty({shape!r}){comment}")
            update = (f"np.{data['op']}({self.operand(other)}[{rows}], {self.names[term]}, "
                      f"out={self.names[node]}[{rows}])")
        lines.append(f"for {rows}, {block} in {self.namespace_constant(blocks)}:"
                     f"  # in blocks of rows, each made and added while in cache")
        lines.extend(f"    {statement}{self.comment(nodes[term])}" for statement in made)
        lines.append(f"    {update}{comment}")
        step.statements[term], step.statements[node] = made, [update]
        if takes_other:
            step.statements[node].append(f"{self.names[node]} = {self.names[other]}")
            lines.append(step.statements[node][-1] + comment)

    def render_diagonal_sum(self, step, lines):
        """Emit ``node`` = other + term (or other - term, or a sum of two terms) by adding each
        term's values on its diagonal, a view of the sum's array: the other operand's array when
        the plan has it taken over, else its copy, or new zeros when both operands are terms.
        Values of inf or nan make the term's zeros nan: such a term is added whole."""
        nodes = self.plan.nodes
        node = step.node
        data = nodes[node]
        shape = tuple(data["shape"])
        others = [i for i in data["inputs"] if i not in step.diagonal_terms]
        name = self.new_name(node)
        array = name if step.reuses is None else self.names[step.reuses]
        start = [] if step.reuses is not None else [
            f"{name} = {self.operand(others[0])}.copy()" if others
            else f"{name} = np.zeros({shape!r})"]
        diagonal = self.namer.claim(naming.suffixed(array, "diagonal"))
        made = {}
        for position, term in enumerate(data["inputs"]):
            if term not in step.diagonal_terms:
                continue
            factor, values, axes, negated = self.plan.diagonal_terms[term]
            sign = "-" if data["op"] == "subtract" and position == 1 else "+"
            on_diagonal = "-" if negated != (sign == "-") else "+"
            subscripts = diagonal_subscripts(len(shape), axes)
            source = self.operand(values)
            spread = source if tuple(nodes[values]["shape"]) == shape \
                else f"np.broadcast_to({source}, {shape!r})"
            made[term] = [
                f"if np.all(np.isfinite({source})):  # else 0 * {source} is nan off the diagonal",
                f'    {diagonal} = np.einsum("{subscripts}", {array})',
                f'    {diagonal} {on_diagonal}= np.einsum("{subscripts}", {spread})',
                f"    del {diagonal}",
                "else:",
                f"    {array} {sign}= {self.operand(factor)} * {source}"]
        end = [] if step.reuses is None else [f"{name} = {array}"]
        self.names[node] = name
        comment = self.comment(data)
        for statement in start + [line for term in step.diagonal_terms for line in made[term]] \
                + end:
            lines.append(statement if statement.startswith(("if ", "else:"))
                         else statement + comment)
        # a term's row in the table of the graph: its values added on the diagonal
        step.statements.update({term: [line.strip() for line in made[term][1:3]]
                                for term in made})
        step.statements[node] = start + end

    # -- the function ----------------------------------------------------------------------------------

    def makes_a_copy(self, node):
        """Whether an output is returned as a copy: a view of an argument or of a constant, or
        the read-only result of a broadcast, never is itself."""
        data = self.plan.nodes[node]
        if OPS[data["op"]].emit.fresh:
            return False
        return OPS[data["op"]].emit.view or self.names.get(node) in self.input_names \
            or self.names.get(node) in self.namespace

    def returned(self, node):
        """An output as a fresh array (a copy where ``makes_a_copy`` says)."""
        if not self.makes_a_copy(node):
            return self.operand(node)
        data = self.plan.nodes[node]
        if data["shape"] == ():
            return f"{scalar_type(data['dtype'])}({self.operand(node)})"
        return f"np.array({self.operand(node)})"

    def returned_values(self):
        returned = []
        outputs = self.plan.outputs
        for k, node in enumerate(outputs):
            value = self.returned(node)
            # the same node asked for twice comes back as two arrays, not one array twice
            if node in outputs[:k] and not self.makes_a_copy(node) \
                    and self.plan.nodes[node]["shape"] != ():
                value = f"np.array({value})"
            returned.append(value)
        return returned

    def parameters(self):
        return [self.names[n] for n in self.plan.inputs]

    def preamble(self):
        """Lines the body starts with, before the dimensions' lengths are read."""
        return []

    def source(self):
        """The function's source."""
        body = self.body()
        returned = self.returned_values()
        lines = [f"def {self.function_name}({', '.join(self.parameters())}):"]
        lines += [f"    {line}" for line in [*self.preamble(), *self.dim_lines()]]
        if self.plan.slot_shapes:
            # a call takes a workspace from the function's pool (or makes one) and gives it back
            # on the way out; concurrent calls each hold their own
            lines.append("    _sg_ws = _sg_take()")
            self.namespace.update(_workspace_pool(self.plan.slot_shapes))
        if body:        # indented as one string: no second copy of every statement
            lines.append("    " + "\n    ".join(body))
        if self.plan.slot_shapes:
            lines.append("    _sg_give(_sg_ws)")
        lines.append(f"    return {', '.join(returned)}" + ("," if len(returned) == 1 else ""))
        return "\n".join(lines) + "\n"


class TracingRenderer(NumpyRenderer):
    """The NumPy renderer of a function returning a dict of every named value, for the table's
    values (symgrad.render); its plan has no memory decisions: every value stays as computed and
    named."""

    def returned_values(self):
        named = [n for n in self.plan.order if n in self.names]
        return ["{" + ", ".join(f"{self.names[n]!r}: {self.names[n]}" for n in named) + "}"]


def _workspace_pool(shapes):
    """The namespace entries of a function's workspace pool: ``_sg_take()`` pops a list of
    arrays of ``shapes`` (allocated when the pool is empty), ``_sg_give`` returns it. list.pop
    and list.append are atomic, so threads never share a workspace."""
    pool = []

    def take():
        try:
            return pool.pop()
        except IndexError:
            return [np.empty(shape) for shape in shapes]
    return {"_sg_take": take, "_sg_give": pool.append}


def planned(graph, outputs, inputs, passes=PASSES, reorder=True):
    """The plan of ``outputs`` with ``passes`` (codegen.memory) taken, in their order, and its
    workspace slots numbered; with ``reorder``, its statements first put in an order that reads
    values soon after making them when codegen.plan.LOCALITY is on (codegen.plan.locality_order;
    the fused and array API backends keep the depth-first order)."""
    plan = Plan(graph, outputs, inputs, locality=reorder)
    for memory_pass in passes:
        plan = memory_pass(plan)
    return number_workspace_slots(plan)


# what the table of a graph shows (render.describe): every node under a name of its own, so no
# update in place; a trace keeps every value as computed and named, so no memory decision at all
# (nor an inlined value, which has no statement of its own)
TABLE_PASSES = tuple(p for p in PASSES if p not in (update_in_place, inline_small_values))


@dataclass
class Rendered:
    """A function as rendered, for views of it (symgrad.render): its source and namespace, every
    node's name and statements, the nodes in evaluation order, those computed at compile
    time (folded), and what each loop rendered (codegen.loops.loop_views)."""
    source: str
    namespace: dict
    names: dict
    statements: dict
    order: list
    folded: frozenset
    loops: dict = field(default_factory=dict)


def tabulated(graph, outputs, inputs, trace=False):
    """The function whose statements the table of a graph shows (Rendered): every node under a
    name of its own; with ``trace``, the source returns a dict of every named value."""
    plan = planned(graph, outputs, inputs, passes=() if trace else TABLE_PASSES)
    renderer = (TracingRenderer if trace else NumpyRenderer)(plan)
    source = renderer.source()
    statements = {node: body for step in plan.steps if step.statements
                  for node, body in step.statements.items()}
    return Rendered(source, renderer.namespace, renderer.names, statements, plan.order,
                    frozenset(plan.folded), loops.loop_views(renderer))


def generate(graph, outputs, inputs, function_name="f", passes=PASSES):
    """Source of a function returning a tuple of ``outputs``, and the namespace it needs.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> src, _ = generate(x.graph, [sg.sin(x).node], [x.node])
    >>> print(src, end="")
    def f(x):
        t0 = np.sin(x)
        return t0,
    """
    renderer = NumpyRenderer(planned(graph, outputs, inputs, passes), function_name)
    return renderer.source(), renderer.namespace
