"""The scalar fast path: for a graph of float64 scalars, an entry running Python floats through
``math`` code inline, as a hand would write it, and handing any other call to the NumPy function.
Imports ops and naming, and codegen's entry, numpy and plan.
"""

import math
import os
import re

import numpy as np

from ..naming import SCALAR_NAMES
from ..ops import OPS
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
        super().__init__(graph, outputs, inputs, form="scalar")

    def settle(self, step):
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
        super().settle(step)

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
    """Writes the fast path's statements: Python floats, nothing to release or reuse."""

    def __init__(self, plan, function_name):
        super().__init__(plan, function_name, taken=SCALAR_NAMES)
        self.namespace["math"] = math       # for constants folded in a case

    def emitter(self, data):
        return OPS[data["op"]].emit.scalar

    def returned(self, node):
        return self.operand(node)           # a float is immutable: never a copy


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
    body = _scalar_statements(generator, outputs, single)
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
    or None when there is no split. The general statements serve zero and nan.

    The step's operand decides the case; when it is a difference ``a - b`` the condition
    compares ``a`` with ``b`` (a - b > 0 exactly when a > b, in IEEE arithmetic with its gradual
    underflow, nan and infinities included), so that max(a, b) and min(a, b) are decided too,
    and often the case needs nothing computed before it."""
    operand = graph.nodes[step]["inputs"][0]
    operand_source = generator.operand(operand)
    if not operand_source.isidentifier():
        return None         # a constant: the step was folded
    pairs, compared = [(operand, None)], (operand_source, "0.0")
    data = graph.nodes[operand]
    if data["op"] == "subtract":
        pairs.append(tuple(data["inputs"]))
        compared = tuple(generator.operand(i) for i in data["inputs"])
    positive, negative = [_scalar_statements(
        _renderer(graph, outputs, inputs, function_name, {pair: sign for pair in pairs}),
        outputs, single) for sign in (1, -1)]
    shared = len(os.path.commonprefix([body, positive, negative]))
    if shared == min(len(body), len(positive), len(negative)):
        return None         # the cases simplify nothing
    assigned = {line.split(" = ", 1)[0] for line in body[:shared]}
    if not all(source in params or source in assigned or not source.isidentifier()
               for source in compared):
        return None         # the cases would start before the operands exist: no split
    left, right = compared
    return (body[:shared], [f"if {left} > {right}:", f"if {left} < {right}:"],
            [positive[shared:], negative[shared:], body[shared:]])


def _scalar_statements(generator, outputs, single):
    """The fast path's statements, its return included."""
    body = generator.body()
    returned = ", ".join(generator.returned(node) for node in outputs)
    return body + [f"return {returned}" + ("" if single or len(outputs) > 1 else ",")]


# the longest statement (comment included) inlining makes: a chain of one-read temporaries stays
# readable, and far below Python's 200 nested parentheses
INLINE_WIDTH = 100
# a name read in a statement of the fast path (not an attribute, not a number's exponent)
_READ = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
_ASSIGNMENT = re.compile(r"([A-Za-z_]\w*) = ([^#]*?)(  #.*)?$")


def _tidy(prefix, cases, conditions):
    """The fast path's statements: ``prefix``, then each case under its condition (the last
    case, the general one, unconditioned). Every case ends in a return.

    Each statement of a fast path is one assignment of a pure expression to a name of its own,
    so an assignment nothing reads is dropped, and one read once is written into the statement
    that reads it, as a hand would write ``return z, z, x + y`` (a name stored and loaded less,
    which counts on the fast path: tests/benchmarks/README.md). The prefix's names are read by
    the conditions and the cases too, which take nothing inlined.
    """
    cases = [_inline_once_read(case, {}) for case in cases]
    read_later = {}
    for line in conditions + [line for case in cases for line in case]:
        for name in _READ.findall(line.split("#", 1)[0]):
            read_later[name] = read_later.get(name, 0) + 2   # 2: never inlined there
    lines = _inline_once_read(prefix, read_later)
    for condition, case in zip(conditions, cases):
        lines += [condition] + [f"    {line}" for line in case]
    return lines + cases[len(conditions)]


def _inline_once_read(lines, read_later):
    """Straight-line ``lines`` without the assignments nothing reads, and with each name read
    once (here, not in ``read_later``: name -> reads after these lines) written where it is
    read. One pass from the end, so linear in the size of the code."""
    reads = dict(read_later)
    reader = {}                 # name -> index in ``kept`` of the statement reading it
    kept = []                   # the statements, last first
    for line in reversed(lines):
        match = _ASSIGNMENT.match(line)
        if match is not None:
            name, expression = match.group(1), match.group(2)
            count = reads.get(name, 0)
            if count == 0:
                continue        # nothing reads it
            if count == 1 and name in reader \
                    and len(kept[reader[name]]) + len(expression) <= INLINE_WIDTH:
                index = reader.pop(name)
                kept[index] = _substituted(kept[index], name, expression)
                for read in _READ.findall(expression):
                    reads[read] = reads.get(read, 0) + 1
                    reader[read] = index
                continue
        kept.append(line)
        for read in _READ.findall(line.split("#", 1)[0] if match is None else match.group(2)):
            reads[read] = reads.get(read, 0) + 1
            reader[read] = len(kept) - 1
    return kept[::-1]


def _substituted(line, name, expression):
    """``line`` with its one read of ``name`` replaced by ``expression``, parenthesised unless it
    is atomic or the read is a whole right-hand side, tuple item or call argument."""
    match = _ASSIGNMENT.match(line)
    if match is None:           # a return: no comment
        target, code, comment = "", line, ""
    else:                       # only the right-hand side reads
        target, code, comment = f"{match.group(1)} = ", match.group(2), match.group(3) or ""
    read = re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", code)
    before, after = code[:read.start()].rstrip(), code[read.end():].lstrip()
    whole = (before in ("", "return") or before.endswith((",", "("))) \
        and (after == "" or after.startswith((",", ")")))
    if not (whole or _atomic(expression)):
        expression = f"({expression})"
    return target + code[:read.start()] + expression + code[read.end():] + comment


def _atomic(expression):
    """Whether ``expression`` binds tighter than any operator: a name, a number, a call or one
    parenthesised whole (``(a if c else b)``, not ``(a) + (b)``)."""
    rest = re.sub(r"^[\w.]+", "", expression)
    if not rest:
        return True
    if not rest.startswith("(") or not rest.endswith(")"):
        return False
    depth = 0
    for k, character in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth == 0 and k < len(rest) - 1:
            return False
    return True


