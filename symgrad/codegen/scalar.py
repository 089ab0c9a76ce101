"""The scalar fast path: for a graph of float64 scalars, an entry running Python floats through
``math`` code inline, as a hand would write it, and handing any other call to the NumPy function.
Imports errors, ops and naming, and codegen's emission, entry, numpy and plan.
"""

import math
import re
import string

import numpy as np

from ..errors import SymgradError
from ..naming import SCALAR_NAMES
from ..ops import OPS
from .emission import EmitContext, LazyLiterals
from .emission import emitted as emitted_by
from .entry import ENTRY_NAMESPACE, entry_def, entry_way_out
from .numpy import NumpyRenderer
from .plan import Plan, operand_forms

# How Python's float arithmetic and the math module refuse what NumPy answers with inf or nan
# (1/0, log(0), exp(1000), sqrt(-1)): the fast path then hands the call to the NumPy code.
SCALAR_REFUSALS = (ArithmeticError, ValueError)


class ScalarPlan(Plan):
    """The plan of the fast path: every op in its Python-float form (Emission.scalar), an
    identity always an alias, and on floats, in every case of generate_scalar alike (so that
    their code agrees up to the step), x * 1.0 is x, exactly, and an op of constants a constant.
    In a case, ``known_order`` holds what it knows: (a, b) -> 1 when a > b, -1 when a < b;
    (a, None) -> the sign of a. Every ordered op (Emission.ordered) they decide simplifies."""

    def __init__(self, graph, outputs, inputs, known_order=None):
        self.known_order = dict(known_order or {})
        self._texts = {}            # alias of a number -> that number's source
        super().__init__(graph, outputs, inputs)

    python_floats = True

    def emitter(self, data):
        return OPS[data["op"]].emit.scalar

    fold_emitter = emitter      # an identity is an alias here, never folded

    def decide_computation(self, step):
        node, data = step.node, self.nodes[step.node]
        args = self._arg_texts(data)
        if self.emitter(data) == "{0}":
            step.kind, step.alias_of = "alias", data["inputs"][0]
            if not args[0].isidentifier():
                self._texts[node] = args[0]
            return
        if self.known_order and self._decided(step, data, args):
            return
        for position, neutral in OPS[data["op"]].emit.scalar_identities:
            kept = args[1 - position]
            if args[position] == neutral and kept.isidentifier():
                step.kind, step.alias_of = "alias", data["inputs"][1 - position]
                return
        super().decide_computation(step)

    def _arg_texts(self, data):
        """The operands as the emission sees them, with a stand-in name for a named one."""
        args = [self.literal(i) if self.is_literal(i) else self._texts.get(i, f"_sg_{k}")
                for k, i in enumerate(data["inputs"])]
        return operand_forms(self, data, args, named=lambda operand: True)

    def _decided(self, step, data, args):
        """Whether ``step`` is an ordered op (Emission.ordered) whose operands' order the case
        knows, now an alias of the operand it is or folded to its number."""
        ordered = OPS[data["op"]].emit.ordered
        if ordered is None:
            return False
        operands = data["inputs"]
        pair = (operands[0], operands[1] if len(operands) == 2 else None)
        sign = self.known_order.get(pair)
        if sign is None and pair[1] is not None:
            sign = -self.known_order.get(pair[::-1], 0) or None
        result = None if sign is None else ordered[0 if sign > 0 else 1]
        if result is None:
            return False
        operand = None if isinstance(result, float) else operands[result]
        if operand is None:
            self.folded[step.node] = np.float64(result)
            step.kind = "constant"
        elif args[result].isidentifier():
            step.kind, step.alias_of = "alias", operand
        elif self.is_constant(operand):
            self.folded[step.node] = self.value(operand)        # a literal
            step.kind = "constant"
        else:
            return False            # an expression (a mask made a float): the op stays
        return True


class ScalarRenderer(NumpyRenderer):
    """Writes the fast path's statements: Python floats, nothing to release or reuse. Each
    statement is kept as a record (_Statement) of what it assigns and which variables it reads
    where, so that _tidy drops and inlines statements without reading their text back.
    ``variables`` maps each node whose value a variable holds (an input, a computed node, an alias
    of one) to that variable's name; any other node is a number written where it is read."""

    def __init__(self, plan, function_name):
        super().__init__(plan, function_name, taken=SCALAR_NAMES)
        self.namespace["math"] = math       # for constants folded in a case
        self.variables = {node: self.names[node] for node in plan.inputs}

    def emitter(self, data):
        return OPS[data["op"]].emit.scalar

    def returned(self, node):
        return self.operand(node)           # a float is immutable: never a copy

    def render_step(self, step, lines):
        super().render_step(step, lines)
        if step.kind == "alias" and step.alias_of in self.variables:
            self.variables[step.node] = self.variables[step.alias_of]

    def render_compute(self, step, lines):
        """Append ``step``'s statement to ``lines`` as a record: its emission, with the variables
        it reads in the places the emission puts its operands."""
        node = step.node
        data = self.plan.nodes[node]
        emitter = self.emitter(data)
        args = self.args(data)
        target = self.names[node] = self.new_name(node)
        self.variables[node] = target
        attrs = LazyLiterals(data["attrs"])
        emitted = emitted_by(emitter, self.context(node, args), attrs)
        comment = self.comment(data)
        read = [self.variables.get(i) for i in data["inputs"]]
        if not isinstance(emitted, str):        # statements of the emitter's own
            step.statements[node] = emitted
            lines.append(_Block([statement + comment for statement in emitted],
                                 [name for name in read if name is not None]))
            return
        step.statements[node] = [f"{target} = {emitted}"]
        expression = self._expression_of(node, data, emitter, attrs, read, emitted)
        lines.append(_Statement(f"{target} = ", expression, comment, target))

    def _expression_of(self, node, data, emitter, attrs, read, emitted):
        """The emission of ``node`` as an _Expression: the emitter run once more with each
        variable operand given as the field {k}, the numbers as they are (an emitter may decide
        on them: x ** 2.0 is x * x), gives the template this node instantiates, whose fields say
        where each variable is read. When that template does not give back ``emitted`` (an
        emitter deciding on a name), the expression is opaque: kept whole, its variables read
        more than once (nothing is inlined into it)."""
        fields = [f"{{{k}}}" if name is not None else _escaped(self.operand(operand))
                  for k, (operand, name) in enumerate(zip(data["inputs"], read))]
        fields = operand_forms(self, data, fields, named=lambda operand: operand in self.names)
        # made outside the try: a failure of symgrad's own here is a bug to see, not opacity
        ctx = EmitContext(_TemplateNames(), self.plan.nodes, node, fields, self.names[node],
                          [self.operand_dtype(i) for i in data["inputs"]], self.syntax)
        try:
            if isinstance(emitter, str):
                template = _FORMATTER.vformat(emitter, fields, _EscapedLiterals(data["attrs"]))
            else:
                template = emitter(ctx)
            expression = _Expression.parsed(template, read)
        except Exception:       # noqa: BLE001 (an emitter's own failure on fields: opaque)
            expression = None
        if expression is None or expression.text() != emitted:
            expression = _Expression([emitted], [], atomic=False,
                                     pinned=[name for name in read if name is not None])
        return expression

    def statements(self, outputs, single):
        """The fast path's statements (records), its return included."""
        body = self.body()
        returned = []
        for k, node in enumerate(outputs):
            returned += [(", ", False)] if k else []
            returned.append((self.returned(node), node in self.variables))
        if not single and len(outputs) == 1:
            returned.append((",", False))
        return body + [_Statement("return ", _Expression.of(returned))]


class _TemplateNames:
    """The naming services of an emission run for its shape: a name claimed is not taken again
    (the statement took its own), and a scalar has no dimension."""

    def dim(self, name):
        raise SymgradError(f"dimension {name!r} of a scalar")

    def claim(self, wanted):
        return wanted

    def library(self, name, op_name):
        return name


class _EscapedLiterals(LazyLiterals):
    """Attribute values as source, written into a template as literal text."""

    def __missing__(self, key):
        return _escaped(super().__missing__(key))


def _escaped(text):
    return text.replace("{", "{{").replace("}", "}}")


def _renderer(graph, outputs, inputs, function_name, known_order=None):
    return ScalarRenderer(ScalarPlan(graph, outputs, inputs, known_order), function_name)


def scalar_ready(graph, outputs, inputs, function_name):
    """Whether the fast path applies: every needed node a float64 (or, inside, boolean) scalar
    with a Python-float form, every input and output a float64 scalar, and a function name that
    does not hide a name the entry uses."""
    if not inputs or function_name in SCALAR_NAMES:
        return False
    if any(graph.nodes[node]["dtype"] != "float64" for node in outputs):
        return False            # a comparison's result stays a NumPy bool
    for node in inputs:
        data = graph.nodes[node]
        if data["shape"] != () or data["dtype"] != "float64":
            return False
    for node in graph.ancestors_in_order(outputs):
        data = graph.nodes[node]
        if data["shape"] != () or data["dtype"] not in ("float64", "bool"):
            return False
        if data["op"] not in ("var", "const") and OPS[data["op"]].emit.scalar is None:
            return False
    return True


def generate_scalar(graph, outputs, inputs, function_name, single):
    """The entry of an all-scalar graph: Python floats go through ``math`` code, inline; any other
    argument, or a value ``math`` refuses, goes to ``_sg_general`` (the checked NumPy function).

    The first step (Emission.ordered: the derivative of max, abs or relu) splits the code into
    cases, as a hand would write ``if y > z:``; then assignments nothing reads are dropped and a
    temporary read once is written where it is read (_tidy).

    Returns (source, namespace), or (None, None) when scalar_ready says no.
    """
    if not scalar_ready(graph, outputs, inputs, function_name):
        return None, None
    generator = _renderer(graph, outputs, inputs, function_name)
    body = generator.statements(outputs, single)
    params = [generator.names[n] for n in inputs]
    step = next((node for node in generator.plan.order if OPS[graph.nodes[node]["op"]].emit.step),
                None)
    split = None if step is None else _split_at_step(graph, outputs, inputs, function_name,
                                                     single, generator, body, step, params)
    if split is None:
        body = _tidy([], [body], [])
    else:
        prefix, conditions, cases = split
        body = _tidy(prefix, cases, conditions)
    floats = " and ".join(f"type({p}) is _sg_float" for p in params)
    lines = [entry_def(function_name, params),
             f"    if {floats} and not _sg_extra and not _sg_unexpected:",
             "        try:"]
    lines += [f"            {line}" for line in body]
    lines += ["        except _sg_refusals:",
              "            pass    # math refuses where NumPy answers inf or nan: NumPy answers",
              entry_way_out(params)]
    namespace = dict(generator.namespace, math=math, _sg_refusals=SCALAR_REFUSALS,
                     **ENTRY_NAMESPACE)
    return "\n".join(lines) + "\n", namespace


def _split_at_step(graph, outputs, inputs, function_name, single, generator, body, step, params):
    """The cases ``body`` splits into at ``step``: (the statements every case shares, the
    conditions of the positive and negative cases, [positive, negative, general statements]),
    or None when there is no split. The general statements serve zero and nan. Each case is
    planned and rendered once, with what it knows of the order (ScalarPlan's known_order).

    The step's operand decides the case; when it is a difference ``a - b`` the condition
    compares ``a`` with ``b`` (a - b > 0 exactly when a > b, in IEEE arithmetic with its gradual
    underflow, nan and infinities included), so that max(a, b) and min(a, b) are decided too,
    and often the case needs nothing computed before it."""
    operand = graph.nodes[step]["inputs"][0]
    if operand not in generator.variables:
        return None         # a number: the step was folded
    pairs, compared = [(operand, None)], (operand, None)
    data = graph.nodes[operand]
    if data["op"] == "subtract":
        pairs.append(tuple(data["inputs"]))
        compared = tuple(data["inputs"])
    positive, negative = [
        _renderer(graph, outputs, inputs, function_name, {pair: sign for pair in pairs})
        .statements(outputs, single) for sign in (1, -1)]
    shared = 0
    for statements in zip(body, positive, negative):
        if not statements[0].key == statements[1].key == statements[2].key:
            break
        shared += 1
    if shared == min(len(body), len(positive), len(negative)):
        return None         # the cases simplify nothing
    assigned = {statement.target for statement in body[:shared]}
    names = [generator.variables.get(node) for node in compared]
    if not all(name is None or name in params or name in assigned for name in names):
        return None         # the cases would start before the operands exist: no split
    sides = [(generator.operand(node), node in generator.variables) if node is not None
             else ("0.0", False) for node in compared]
    conditions = [_Statement("if ", _Expression.of([sides[0], (symbol, False), sides[1]]), ":")
                  for symbol in (" > ", " < ")]
    return body[:shared], conditions, [positive[shared:], negative[shared:], body[shared:]]


# the longest statement (comment included) inlining makes: a chain of one-read temporaries stays
# readable, and far below Python's 200 nested parentheses
INLINE_WIDTH = 100
_FORMATTER = string.Formatter()
# what a template's literal text starting an atomic expression may begin with, the names in its
# slots included: a name, a number, a dotted name (math.sin)
_WORD = re.compile(r"[\w.]*")


class _Expression:
    """An expression of the fast path as its statement holds it: literal ``pieces`` around
    ``slots``, each slot the name of a variable read there or the expression of a temporary
    written where it was read. Made from an emission's template (``parsed``), so where each
    variable is read is known from the emission, not found in its text.

    ``atomic``: whether it binds tighter than any operator (a name, a number, a call, one
    parenthesised whole), so that it needs no parentheses wherever it is written. ``pinned``: the
    variables an opaque expression (one made of text alone) reads, each counted as read twice
    so that nothing is inlined into it."""

    def __init__(self, pieces, slots, atomic, pinned=()):
        self.pieces = pieces            # len(slots) + 1 strings
        self.slots = slots
        self.atomic = atomic
        self.pinned = list(pinned)
        self.parent = None              # (expression, slot) it is written in; None: a statement's

    @classmethod
    def of(cls, parts):
        """The expression of ``parts``: (text, whether the text is a variable's name read)."""
        pieces, slots = [""], []
        for text, read in parts:
            if read:
                slots.append(text)
                pieces.append("")
            else:
                pieces[-1] += text
        return cls(pieces, slots, _binds_tightest(pieces, len(slots)))

    @classmethod
    def parsed(cls, template, names):
        """The expression of a template whose fields {k} read variable ``names[k]``; None when a
        field is anything else (a number's place, a format, an attribute of an operand)."""
        parts = []
        for text, field, spec, conversion in _FORMATTER.parse(template):
            parts.append((text, False))
            if field is not None:
                if spec or conversion or not field.isdigit() or int(field) >= len(names) \
                        or names[int(field)] is None:
                    return None
                parts.append((names[int(field)], True))
        return cls.of(parts)

    def text(self):
        written = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:]):
            written += [slot if isinstance(slot, str) else slot.text(), piece]
        return "".join(written)

    def set_apart(self, slot):
        """Whether ``slot`` is a whole right-hand side, call argument or tuple item: nothing
        binds to what is written there from either side."""
        return _separated(self, slot, before=True) and _separated(self, slot, before=False)


def _binds_tightest(pieces, slots):
    """Whether the expression of ``pieces`` around as many as ``slots`` names is a name, a
    number, a call or one parenthesised whole (``(a if c else b)``, not ``(a) + (b)``): a
    leading run of word characters and dots (names included), then nothing or one parenthesised
    group to the end."""
    k, start = 0, _WORD.match(pieces[0]).end()
    while start == len(pieces[k]) and k < slots:
        k += 1                      # the name in the slot continues the run
        start = _WORD.match(pieces[k]).end()
    rest = pieces[k][start:]
    if not rest:
        return True
    if not rest.startswith("(") or not pieces[-1].endswith(")"):
        return False
    depth = 0
    for index in range(k, slots + 1):
        text = rest if index == k else pieces[index]
        for position, character in enumerate(text):
            depth += {"(": 1, ")": -1}.get(character, 0)
            if depth == 0 and (index < slots or position < len(text) - 1):
                return False        # the group closes before the end
    return True


def _separated(expression, slot, before):
    """Whether what is written in ``slot`` of ``expression`` starts (``before``) or ends its
    side of a whole: after ``(``, a comma, or the start of the statement's expression; before
    ``)``, a comma, or its end. Across an inlined expression written without parentheses, its
    side is its slot's."""
    while True:
        piece = expression.pieces[slot] if before else expression.pieces[slot + 1]
        piece = piece.rstrip() if before else piece.lstrip()
        if piece:
            return piece.endswith((",", "(")) if before else piece.startswith((",", ")"))
        if (slot > 0) if before else (slot + 1 < len(expression.slots)):
            return False            # next to another operand
        if expression.parent is None:
            return True
        expression, slot = expression.parent


class _Statement:
    """One statement of the fast path: ``head`` (``t3 = ``, ``return ``, ``if ``), its
    expression, ``tail`` (a comment, ``:``), and ``target``, the variable an assignment makes.
    Each is one assignment of a pure expression to a name of its own, so _tidy may drop it or
    write its expression where it is read."""

    def __init__(self, head, expression, tail="", target=None):
        self.head, self.expression, self.tail, self.target = head, expression, tail, target
        self.source = expression.text()     # as written before anything is inlined into it
        self.width = len(head) + len(self.source) + len(tail)
        self._read_at = {name: (expression, k) for k, name in enumerate(expression.slots)}

    @property
    def key(self):
        """What the statement writes: two alike compute the same value under the same name."""
        return self.head, self.source, self.tail

    def reads(self):
        """The variables read, each as many times as it is read."""
        names, pending = [], [self.expression]
        while pending:
            expression = pending.pop()
            names += expression.pinned * 2
            for slot in expression.slots:
                if isinstance(slot, str):
                    names.append(slot)
                else:
                    pending.append(slot)
        return names

    def inline(self, assignment):
        """Write ``assignment``'s expression where this statement reads its variable (once),
        parenthesised unless it is atomic or written where it is set apart."""
        holder, slot = self._read_at.pop(assignment.target)
        inlined = written = assignment.expression
        if not (inlined.atomic or holder.set_apart(slot)):
            written = _Expression(["(", ")"], [inlined], atomic=True)
            inlined.parent = (written, 0)
        holder.slots[slot] = written
        written.parent = (holder, slot)
        parentheses = 0 if written is inlined else 2
        self.width += len(assignment.source) + parentheses - len(assignment.target)
        for k, name in enumerate(inlined.slots):       # whole: nothing inlined into it yet
            self._read_at[name] = (inlined, k)

    def lines(self):
        return [self.head + self.expression.text() + self.tail]


class _Block:
    """Statements an emitter wrote itself (a list, not an expression): kept as they are, every
    variable they read counted as read twice."""

    target = None

    def __init__(self, lines, read):
        self._lines, self.read = lines, list(read)

    @property
    def key(self):
        return tuple(self._lines)

    def reads(self):
        return self.read * 2

    def lines(self):
        return list(self._lines)


def _tidy(prefix, cases, conditions):
    """The fast path's lines: the statements ``prefix``, then each case under its condition (the
    last case, the general one, unconditioned). Every case ends in a return.

    An assignment nothing reads is dropped, and one read once is written into the statement
    that reads it, as a hand would write ``return z, z, x + y`` (a name stored and loaded less,
    which counts on the fast path: tests/benchmarks/README.md). The prefix's names are read by
    the conditions and the cases too, which take nothing inlined.
    """
    cases = [_inline_once_read(case, {}) for case in cases]
    read_later = {}
    for statement in conditions + [statement for case in cases for statement in case]:
        for name in statement.reads():
            read_later[name] = read_later.get(name, 0) + 2   # 2: never inlined there
    lines = _lines(_inline_once_read(prefix, read_later))
    for condition, case in zip(conditions, cases):
        lines += condition.lines() + [f"    {line}" for line in _lines(case)]
    return lines + _lines(cases[len(conditions)])


def _lines(statements):
    return [line for statement in statements for line in statement.lines()]


def _inline_once_read(statements, read_later):
    """Straight-line ``statements`` without the assignments nothing reads, and with each variable
    read once (here, not in ``read_later``: name -> reads after these statements) written where
    it is read. One pass from the end, so linear in the size of the code: a statement is whole
    when it is reached, nothing yet inlined into it."""
    reads = dict(read_later)
    reader = {}                 # name -> the statement in ``kept`` reading it
    kept = []                   # the statements, last first
    for statement in reversed(statements):
        name = statement.target
        if name is not None:
            count = reads.get(name, 0)
            if count == 0:
                continue        # nothing reads it
            if count == 1 and name in reader \
                    and reader[name].width + len(statement.source) <= INLINE_WIDTH:
                reading = reader.pop(name)
                reading.inline(statement)
                for read in statement.reads():
                    reads[read] = reads.get(read, 0) + 1
                    reader[read] = reading
                continue
        kept.append(statement)
        for read in statement.reads():
            reads[read] = reads.get(read, 0) + 1
            reader[read] = statement
    return kept[::-1]
