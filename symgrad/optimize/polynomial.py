"""Polynomial canonicalisation, the cure for expression swell in higher derivatives.

Each derivative of tanh is a polynomial in t = tanh(x), but the product rule builds it as a tree
that doubles at every order. Here every maximal cluster of element-wise +, -, *, negation and
integer powers over a single leaf (the node feeding it, constants aside) in a derivative is read as
exact coefficients, computed bottom-up, and rebuilt in Horner form when that takes fewer
operations: the n-th derivative then costs O(n) statements instead of O(2^n). SymPy factors out
(1 - t**2) where the polynomial vanishes, so that the tails stay accurate. Cluster size and degree
are bounded, and so is the total work per graph.

Imports graph, ops and optimize.rebuild.
"""

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy

from ..ops import Expr, apply, const
from .rebuild import Applied, rebuild

POLYNOMIAL_OPS = ("add", "subtract", "multiply", "negative", "power")
MAX_CLUSTER = 50_000
MAX_DEGREE = 40
EXPLORATION_BUDGET = 1_000_000    # cluster nodes visited per graph: keeps the pass linear


def _integer_exponent(graph, node):
    exponent = graph.nodes[graph.nodes[node]["inputs"][1]]
    if exponent["op"] != "const" or exponent["value"].size != 1:
        return None
    value = float(exponent["value"].reshape(()))
    return int(value) if value.is_integer() and 0 <= value <= MAX_DEGREE else None


def _is_polynomial(graph, node, shape):
    data = graph.nodes[node]
    if data["op"] not in POLYNOMIAL_OPS or data["shape"] != shape or data["dtype"] == "bool":
        return False
    return data["op"] != "power" or _integer_exponent(graph, node) is not None


def _cluster(graph, root):
    """The polynomial nodes under ``root`` (same shape) and the leaves feeding them."""
    shape = graph.nodes[root]["shape"]
    members, leaves, stack = set(), [], [root]
    while stack:
        node = stack.pop()
        if node in members:
            continue
        members.add(node)
        if len(members) > MAX_CLUSTER:
            return None, None
        data = graph.nodes[node]
        operands = data["inputs"][:1] if data["op"] == "power" else data["inputs"]
        for operand in operands:
            if _is_polynomial(graph, operand, shape):
                stack.append(operand)
            elif operand not in leaves:
                leaves.append(operand)
    return members, leaves


def _add(a, b, sign=1):
    """Coefficients of a + sign * b."""
    result = [Fraction(0)] * max(len(a), len(b))
    for k, c in enumerate(a):
        result[k] += c
    for k, c in enumerate(b):
        result[k] += sign * c
    return result


def _multiply(a, b):
    result = [Fraction(0)] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        if x:
            for j, y in enumerate(b):
                result[i + j] += x * y
    return result


def _coefficients(graph, root, members, leaf_values):
    """The cluster as exact coefficients in its one variable leaf, lowest degree first, computed
    bottom-up (never expanding a tree of products term by term); None past MAX_DEGREE."""
    values = dict(leaf_values)
    for node in sorted(members):            # keys ascend in evaluation order
        data = graph.nodes[node]
        op = data["op"]
        args = [values[i] for i in (data["inputs"][:1] if op == "power" else data["inputs"])]
        if op == "add":
            value = _add(args[0], args[1])
        elif op == "subtract":
            value = _add(args[0], args[1], sign=-1)
        elif op == "multiply":
            value = _multiply(args[0], args[1])
        elif op == "negative":
            value = [-c for c in args[0]]
        else:
            value = [Fraction(1)]
            for _ in range(_integer_exponent(graph, node)):
                value = _multiply(value, args[0])
        while len(value) > 1 and value[-1] == 0:
            value.pop()
        if len(value) - 1 > MAX_DEGREE:
            return None
        values[node] = value
    return values[root]


def _leaf_values(graph, leaves):
    """Coefficient lists for the leaves: constants (also broadcast seeds such as ones(x.shape))
    are numbers; every other leaf is the variable t. None when there is not exactly one."""
    values, variables = {}, []
    for leaf in leaves:
        data = graph.nodes[leaf]
        if data["op"] == "broadcast_to_like":
            data = graph.nodes[data["inputs"][0]]
        if data["op"] == "const" and data["value"].size == 1 and data["dtype"] != "bool" \
                and np.isfinite(data["value"]).all():
            values[leaf] = [Fraction(float(data["value"].reshape(())))]
        else:
            values[leaf] = [Fraction(0), Fraction(1)]
            variables.append(leaf)
    return (values, variables[0]) if len(variables) == 1 else (None, None)


@dataclass(frozen=True)
class HornerPlan:
    """How to evaluate a polynomial p(t) with few operations and no needless cancellation:
    p(t) = t**odd * (1 - u)**vanishing * q(u), with u = t**2 when ``squared`` (p even or odd,
    like every derivative of tanh) and u = t otherwise; q is evaluated by Horner's rule.
    Taking the factor (1 - u) out keeps the result accurate where p is small because t**2 is
    near 1 (the tails of tanh's derivatives), which Horner on the expanded form is not."""
    coefficients: tuple         # of q, highest degree first
    squared: bool
    odd: bool
    vanishing: int

    @property
    def cost(self):
        return (2 * (len(self.coefficients) - 1) + self.squared + self.odd
                + (2 + (self.vanishing > 1) if self.vanishing else 0))


def _horner_plan(polynomial):
    coefficients = polynomial.all_coeffs()
    degree = polynomial.degree()
    present = [degree - k for k, c in enumerate(coefficients) if c != 0]
    if len(present) < 2 or len({d % 2 for d in present}) != 1:
        return HornerPlan(tuple(float(c) for c in coefficients), False, False, 0)
    odd = present[0] % 2
    u = sympy.Symbol("u")
    in_u = sympy.Poly([c for k, c in enumerate(coefficients) if (degree - k) % 2 == odd], u)
    vanishing = 0
    if in_u.domain.is_Exact:
        factor = sympy.Poly(1 - u, u)
        while in_u.degree() > 0:
            quotient, remainder = sympy.div(in_u, factor)
            if not remainder.is_zero:
                break
            in_u, vanishing = quotient, vanishing + 1
    return HornerPlan(tuple(float(c) for c in in_u.all_coeffs()), True, bool(odd), vanishing)


def _build_horner(plan, leaf):
    variable = apply("power", leaf, 2.0) if plan.squared else leaf
    result = None
    for coefficient in plan.coefficients:
        if result is None:
            result = const(coefficient, leaf.graph)
            continue
        result = apply("multiply", result, variable)
        if coefficient > 0:
            result = apply("add", result, coefficient)
        elif coefficient < 0:
            result = apply("subtract", result, -coefficient)
    if plan.vanishing:
        complement = apply("subtract", 1.0, variable)
        if plan.vanishing > 1:
            complement = apply("power", complement, float(plan.vanishing))
        result = apply("multiply", result, complement)
    return apply("multiply", leaf, result) if plan.odd else result


def _removable(candidates, root, consumers):
    """The nodes that disappear when ``root`` is replaced: the cluster's members and constant
    leaves (broadcast seeds) that nothing outside the cluster consumes, also as a shape donor."""
    gone = {root}
    for node in sorted(candidates, reverse=True):
        if node != root and consumers.get(node, set()) <= gone:
            gone.add(node)
    return gone


def canonicalize(graph, outputs, inputs, applied):
    """A new graph in which each polynomial cluster whose Horner form is cheaper is replaced by
    it. Returns (graph, outputs, inputs)."""
    order = graph.ancestors_in_order(outputs)
    consumers = {}
    for node in order:
        for operand in graph.nodes[node]["inputs"]:
            consumers.setdefault(operand, set()).add(node)
    output_set = set(outputs)
    replacements = {}
    budget = EXPLORATION_BUDGET
    for node in order:
        if budget <= 0:
            break
        shape = graph.nodes[node]["shape"]
        # derivatives only: a forward p * 0.0 must keep its nan at p = inf, which expanding drops
        if not graph.nodes[node]["derivative"] or not _is_polynomial(graph, node, shape):
            continue
        is_root = node in output_set or any(
            not _is_polynomial(graph, c, shape) or c in replacements
            for c in consumers.get(node, ()))
        if not is_root:
            continue
        members, leaves = _cluster(graph, node)
        budget -= MAX_CLUSTER if members is None else len(members)
        if members is None or len(members) < 4:
            continue
        leaf_values, leaf = _leaf_values(graph, leaves)
        if leaf is None or graph.nodes[leaf]["shape"] != shape:
            continue        # several leaves (or none): no cheap canonical form to aim for
        coefficients = _coefficients(graph, node, members, leaf_values)
        if coefficients is None or len(coefficients) < 2:
            continue
        polynomial = sympy.Poly(list(reversed(coefficients)), sympy.Symbol("t"))
        plan = _horner_plan(polynomial)
        seeds = {k for k in leaves if k != leaf and graph.nodes[k]["op"] == "broadcast_to_like"}
        if plan.cost < len(_removable(members | seeds, node, consumers)):
            replacements[node] = (plan, leaf, len(members))
    if not replacements:
        return graph, outputs, inputs

    def replace(node, lookup):
        if node not in replacements:
            return None
        plan, leaf, size = replacements[node]
        applied.append(Applied("horner_form_of_polynomial",
                               f"a polynomial of {size} operations in one leaf -> {plan.cost}"))
        return _build_horner(plan, lookup(leaf))

    target, mapping = rebuild(graph, outputs, inputs, {}, applied, replace)
    return target, [mapping[o] for o in outputs], [mapping[i] for i in inputs]
