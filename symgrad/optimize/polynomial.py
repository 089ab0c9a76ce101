"""Polynomial canonicalisation, the cure for expression swell in higher derivatives.

Each derivative of tanh is a polynomial in t = tanh(x), but the product rule builds it as a tree
that doubles at every order. Here every maximal cluster of element-wise +, -, *, negation and
integer powers over a single leaf (the node feeding it, constants aside) in a derivative is read as
exact coefficients, computed bottom-up, and rebuilt in Horner form when that takes fewer
operations and rounds no worse than the written form (checked at sample points of the leaf's
range, see "accuracy" below): the n-th derivative then costs O(n) statements instead of O(2^n)
where that is safe. SymPy factors out (1 - t**2) where the polynomial vanishes, so that the tails
stay accurate. Cluster size and degree are bounded, and so is the total work per graph.

Imports graph, ops and optimize.rebuild.
"""

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy

from ..ops import apply, const
from ..ops.elementwise import Factors, factored_form, factored_terms
from .rebuild import Applied, rebuild

# "polynomial" is a node of exact coefficients that differentiation made (optimize.compaction)
POLYNOMIAL_OPS = ("add", "subtract", "multiply", "negative", "power", "polynomial")
MAX_CLUSTER = 50_000
MAX_DEGREE = 40
LARGEST_COEFFICIENT = Fraction(np.finfo(np.float64).max)
EXPLORATION_BUDGET = 1_000_000    # cluster nodes visited per graph: keeps the pass linear


def _integer_exponent(graph, node):
    exponent = graph._node[graph._node[node]["inputs"][1]]
    if exponent["op"] != "const" or exponent["value"].size != 1:
        return None
    value = float(exponent["value"].reshape(()))
    return int(value) if value.is_integer() and 0 <= value <= MAX_DEGREE else None


def _is_polynomial(graph, node, shape):
    data = graph._node[node]
    if data["op"] not in POLYNOMIAL_OPS or data["shape"] != shape or data["dtype"] == "bool":
        return False
    return data["op"] != "power" or _integer_exponent(graph, node) is not None


def _cluster(graph, root):
    """The polynomial nodes under ``root`` (same shape) and the leaves feeding them."""
    shape = graph._node[root]["shape"]
    # leaves: an ordered set, since a gradient's sum over thousands of terms is one cluster
    members, leaves, stack = set(), {}, [root]
    while stack:
        node = stack.pop()
        if node in members:
            continue
        members.add(node)
        if len(members) > MAX_CLUSTER:
            return None, None
        data = graph._node[node]
        operands = data["inputs"][:1] if data["op"] == "power" else data["inputs"]
        for operand in operands:
            if _is_polynomial(graph, operand, shape):
                stack.append(operand)
            else:
                leaves[operand] = None
    return members, list(leaves)


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


def _coefficients(graph, root, members, leaf_values, arithmetic=None):
    """Every member of the cluster as exact coefficients in its one variable leaf, lowest degree
    first, computed bottom-up (never expanding a tree of products term by term); None past
    MAX_DEGREE or past the largest float64. ``arithmetic`` (UNIVARIATE by default) says what a
    value is: optimize.compaction reads clusters in several leaves with its own."""
    arithmetic = arithmetic or UNIVARIATE
    values = dict(leaf_values)
    for node in sorted(members):            # keys ascend in evaluation order
        data = graph._node[node]
        op = data["op"]
        args = [values[i] for i in (data["inputs"][:1] if op == "power" else data["inputs"])]
        if op == "polynomial":
            value = arithmetic.composed(data["attrs"], args[0])
        elif op == "power":
            value = arithmetic.power(args[0], _integer_exponent(graph, node))
        else:
            value = getattr(arithmetic, op)(*args)
        value = arithmetic.checked(value)
        if value is None:
            return None     # a coefficient past float64 could be neither checked nor emitted
        values[node] = value
    return values


class UNIVARIATE:
    """Coefficient lists in one variable, lowest degree first (Fractions)."""
    add = staticmethod(_add)
    multiply = staticmethod(_multiply)

    @staticmethod
    def subtract(a, b):
        return _add(a, b, sign=-1)

    @staticmethod
    def negative(a):
        return [-c for c in a]

    @staticmethod
    def power(a, exponent):
        value = [Fraction(1)]
        for _ in range(exponent):
            value = _multiply(value, a)
        return value

    @staticmethod
    def composed(attrs, inner):
        return _composed(attrs, inner)

    @staticmethod
    def checked(value):
        while len(value) > 1 and value[-1] == 0:
            value.pop()
        if len(value) - 1 > MAX_DEGREE or any(abs(c) > LARGEST_COEFFICIENT for c in value):
            return None
        return value


def _composed(attrs, inner):
    """The coefficients of a polynomial node's polynomial of ``inner`` (coefficients), by
    Horner's rule in exact arithmetic."""
    value = [Fraction(0)]
    for coefficient in reversed(attrs["coefficients"]):
        value = _add(_multiply(value, inner), [Fraction(coefficient, attrs["denominator"])])
    return value


def split_leaves(graph, leaves):
    """({constant leaf: the number it holds, exactly}, [the other leaves, the variables]):
    constants include broadcast seeds such as ones(x.shape)."""
    constants, variables = {}, []
    for leaf in leaves:
        data = graph._node[leaf]
        if data["op"] == "broadcast_to_like":
            data = graph._node[data["inputs"][0]]
        if data["op"] == "const" and data["value"].size == 1 and data["dtype"] != "bool" \
                and np.isfinite(data["value"]).all():
            constants[leaf] = Fraction(float(data["value"].reshape(())))
        else:
            variables.append(leaf)
    return constants, variables


def _leaf_values(graph, leaves):
    """Coefficient lists for the leaves: constants are numbers; every other leaf is the
    variable t. None when there is not exactly one."""
    constants, variables = split_leaves(graph, leaves)
    if len(variables) != 1:
        return None, None
    values = {leaf: [constant] for leaf, constant in constants.items()}
    values[variables[0]] = [Fraction(0), Fraction(1)]
    return values, variables[0]


@dataclass(frozen=True)
class HornerPlan:
    """How to evaluate a polynomial p(t) with few operations and no needless cancellation:
    p(t) = t**odd * (1 - u)**vanishing * q(u), with u = t**2 when ``squared`` (p even or odd,
    like every derivative of tanh) and u = t otherwise; q is evaluated by Horner's rule, in u or,
    when ``complement``, in w = 1 - u (q(1 - w) rewritten in powers of w).
    Taking the factor (1 - u) out keeps the result accurate where p is small because t**2 is
    near 1 (the tails of tanh's derivatives), which Horner on the expanded form is not; writing q
    in w keeps it accurate there too, where q's alternating coefficients in u cancel."""
    coefficients: tuple         # of q, highest degree first
    squared: bool
    odd: bool
    vanishing: int
    complement: bool = False

    @property
    def cost(self):
        vanishing = (1 + (self.vanishing > 1) + (not self.complement)) if self.vanishing else 0
        return (2 * (len(self.coefficients) - 1) + self.squared + self.complement + self.odd
                + vanishing)


def _horner_plans(polynomial):
    """The ways to evaluate ``polynomial`` worth trying, cheapest and simplest first."""
    coefficients = polynomial.all_coeffs()
    degree = polynomial.degree()
    present = [degree - k for k, c in enumerate(coefficients) if c != 0]
    if len(present) < 2 or len({d % 2 for d in present}) != 1:
        return [HornerPlan(tuple(float(c) for c in coefficients), False, False, 0)]
    odd = present[0] % 2
    u, w = sympy.Symbol("u"), sympy.Symbol("w")
    in_u = sympy.Poly([c for k, c in enumerate(coefficients) if (degree - k) % 2 == odd], u)
    vanishing = 0
    if in_u.domain.is_Exact:
        factor = sympy.Poly(1 - u, u)
        while in_u.degree() > 0:
            quotient, remainder = sympy.div(in_u, factor)
            if not remainder.is_zero:
                break
            in_u, vanishing = quotient, vanishing + 1
    plans = [HornerPlan(tuple(float(c) for c in in_u.all_coeffs()), True, bool(odd), vanishing)]
    if in_u.degree() > 0:
        in_w = sympy.Poly(in_u.as_expr().subs(u, 1 - w), w)
        plans.append(HornerPlan(tuple(float(c) for c in in_w.all_coeffs()), True, bool(odd),
                                vanishing, complement=True))
    return plans


@dataclass(frozen=True)
class FactoredPlan:
    """p(t) written as the product of its factors, as a polynomial node writes itself
    (ops.elementwise.factored_form): no cancellation between terms, each root rounded once.
    The form a polynomial node keeps when no Horner form rounds as well."""
    factors: Factors

    @property
    def cost(self):
        return self.factors.cost


# -- accuracy: a Horner form replaces a cluster only where it provably rounds no worse -------------
#
# Expanding a polynomial and evaluating it by Horner's rule can cancel catastrophically where the
# written form did not: (x - 1000) ** 8 expanded loses every digit near x = 1000. A form is taken
# only when, at every sample point of the leaf's range, the first-order running error bound of
# Horner's evaluation (Higham, Accuracy and Stability of Numerical Algorithms, 5.1) is within
# ACCURACY_FACTOR of what the graph as written can achieve there:
# - a leaf that is itself a rounded value in a bounded range (tanh, sigmoid, sin, cos) carries a
#   relative error the cluster cannot undo; the written cluster's own running error bound, plus
#   the effect of the leaf's rounding |t p'(t)|, is the yardstick;
# - any other leaf (an input, an unbounded function) may be exact, and the written cluster may be
#   exact relative to its value (a product of shifts); there Horner must be accurate relative to
#   |p(t)| itself, which refuses every polynomial with a real root, or a complex one near the axis.
# The actual errors against exact values are compared too (a bound is a worst case). The sample
# points are a grid over the range, the approach to a bounded range's ends, and the
# neighbourhoods of the real parts of every root of every polynomial in the cluster, where the
# written form is most accurate and an expanded one least.

ROUNDED_LEAF_RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "sin": (-1.0, 1.0),
                       "cos": (-1.0, 1.0)}
ACCURACY_FACTOR = 16.0
ROOT_NEIGHBOURHOOD = (0.0, 2.0 ** -40, -2.0 ** -40, 2.0 ** -20, -2.0 ** -20, 2.0 ** -8, -2.0 ** -8)


def _sample_points(polynomials, low, high):
    if np.isfinite(low):
        # where a bounded leaf saturates (tanh x near +-1), a written 1 - t * t is exact
        approach = 2.0 ** -np.arange(1.0, 53.0)
        grid = [np.linspace(low, high, 129), low + (high - low) * approach,
                high - (high - low) * approach]
    else:
        magnitudes = np.geomspace(1e-8, 1e8, 97)
        grid = [magnitudes, -magnitudes, [0.0]]
    roots = set()
    for coefficients in {tuple(c) for c in polynomials}:
        if len(coefficients) > 1:
            roots.update(np.roots([float(c) for c in reversed(coefficients)]).real)
    near = [r * (1.0 + d) + d for r in roots for d in ROOT_NEIGHBOURHOOD]
    points = np.concatenate(grid + [np.array(near, dtype=float)])
    return np.unique(points[np.isfinite(points) & (points >= low) & (points <= high)])


def _rounded(value, error):
    """A value with its running error bound in units of rounding, after one more rounding."""
    return value, error + np.abs(value)


def _plus(a, b, sign=1.0):
    return _rounded(a[0] + sign * b[0], a[1] + b[1])


def _times(a, b):
    return _rounded(a[0] * b[0], np.abs(a[0]) * b[1] + np.abs(b[0]) * a[1])


def _to_the(a, exponent):
    if exponent == 0:
        return np.ones_like(a[0]), np.zeros_like(a[0])
    return _rounded(a[0] ** exponent, exponent * np.abs(a[0]) ** (exponent - 1) * a[1])


def _operands(graph, node):
    data = graph._node[node]
    return data["inputs"][:1] if data["op"] == "power" else data["inputs"]


def _written_bound(graph, root, members, polynomials, leaf, t):
    """The value and running error bound of ``root`` evaluated as the graph writes it; the
    cluster's constant leaves are the one-coefficient entries of ``polynomials``."""
    exact = np.zeros_like(t)
    values = {leaf: (t, exact)}
    order = sorted(members)
    # each member's arrays are dropped after their last reader: the live ones are the cluster's
    # width, not its size (a product-rule tree of thousands of nodes at thousands of points)
    unread = {}
    for node in order:
        for operand in _operands(graph, node):
            unread[operand] = unread.get(operand, 0) + 1
    for node in order:
        data = graph._node[node]
        operands = _operands(graph, node)
        args = []
        for operand in operands:
            if operand not in values:
                values[operand] = (np.full_like(t, float(polynomials[operand][0])), exact)
            args.append(values[operand])
        for operand in operands:
            unread[operand] -= 1
            if not unread[operand] and operand != leaf:
                del values[operand]
        op = data["op"]
        if op == "add":
            values[node] = _plus(*args)
        elif op == "subtract":
            values[node] = _plus(*args, sign=-1.0)
        elif op == "multiply":
            values[node] = _times(*args)
        elif op == "negative":
            values[node] = (-args[0][0], args[0][1])
        elif op == "polynomial":
            attrs = data["attrs"]
            values[node] = _factored_bound(
                factored_form(attrs["coefficients"], attrs["denominator"]), args[0])
        else:
            values[node] = _to_the(args[0], _integer_exponent(graph, node))
    return values[root]


def _factored_bound(factors, variable):
    """The value and running error bound of ``factors`` written over ``variable`` (a value and
    its bound), step for step as ops.elementwise writes them; a rounded root or leading
    coefficient carries its own rounding."""
    def constant(value, exact):
        return np.full_like(variable[0], value), np.full_like(variable[0], 0.0 if exact else
                                                              abs(value))
    terms = factored_terms(
        factors, variable, _to_the(variable, 2) if factors.squared else variable, constant,
        shift=lambda v, r, exact: _plus(v, constant(r, exact), sign=-1.0),
        square=lambda x: _to_the(x, 2), plus=lambda x, value, exact: _plus(x, constant(value,
                                                                                       exact)))
    result = terms[0]
    for term in terms[1:]:
        result = _times(result, term)
    return result


def _horner_bound(plan, t):
    """The value and running error bound of the form _build_horner makes, step for step."""
    exact = np.zeros_like(t)
    leaf = (t, exact)
    if isinstance(plan, FactoredPlan):
        return _factored_bound(plan.factors, leaf)
    one = (np.ones_like(t), exact)
    variable = _to_the(leaf, 2) if plan.squared else leaf
    if plan.complement:
        variable = _plus(one, variable, sign=-1.0)
    result = None
    for coefficient in plan.coefficients:
        constant = (np.full_like(t, coefficient), exact)
        result = constant if result is None else _plus(_times(result, variable), constant)
    if plan.vanishing:
        complement = variable if plan.complement else _plus(one, variable, sign=-1.0)
        result = _times(result, _to_the(complement, plan.vanishing))
    return _times(leaf, result) if plan.odd else result


def _exact_values(coefficients, t):
    """p(t) at each float t, computed exactly and rounded once. The coefficients are dyadic
    rationals (sums and products of floats), and so is each t = a / b: p(t) D b**n is an integer,
    made by Horner's rule in integers, and Python's int / int rounds correctly."""
    scale = math.lcm(*(c.denominator for c in coefficients))
    numerators = [int(c * scale) for c in coefficients]
    degree = len(coefficients) - 1
    values = []
    for point in t.tolist():
        a, b = point.as_integer_ratio()
        total, power_of_b = numerators[-1], 1
        for numerator in reversed(numerators[:-1]):
            power_of_b *= b
            total = total * a + numerator * power_of_b
        try:
            values.append(total / (scale * b ** degree))
        except OverflowError:
            values.append(math.copysign(math.inf, total))
    return np.array(values)


def _largest_nearby(errors, width=2):
    """Each entry's largest neighbour within ``width`` places, itself included."""
    padded = np.pad(errors, width, mode="edge")
    return np.max([padded[k:k + len(errors)] for k in range(2 * width + 1)], axis=0)


@dataclass(frozen=True)
class WrittenAccuracy:
    """What the cluster as the graph writes it achieves at the sample points ``t``: the exact
    values there, the error a form may make by its bound (``achievable``) and the written form's
    actual error, each point's largest over its neighbours so that one lucky point does not
    decide. Computed once per cluster, for every plan tried."""
    t: np.ndarray
    exact: np.ndarray
    achievable: np.ndarray
    written_actual: np.ndarray


def _written_accuracy(graph, root, members, polynomials, leaf):
    low, high = ROUNDED_LEAF_RANGES.get(graph._node[leaf]["op"], (-np.inf, np.inf))
    t = _sample_points([polynomials[m] for m in members], low, high)
    coefficients = [float(c) for c in reversed(polynomials[root])]
    exact = _exact_values(polynomials[root], t)
    with np.errstate(all="ignore"):
        written_value, written = _written_bound(graph, root, members, polynomials, leaf, t)
        if graph._node[leaf]["op"] in ROUNDED_LEAF_RANGES:
            achievable = written + np.abs(t * np.polyval(np.polyder(coefficients), t))
        else:
            achievable = np.abs(np.polyval(coefficients, t))
        written_actual = _largest_nearby(np.abs(written_value - exact))
    return WrittenAccuracy(t, exact, achievable, written_actual)


def _as_accurate_as_the_graph(plan, written):
    """Whether the plan's form is, by its error bound and by its actual errors against the exact
    values, within ACCURACY_FACTOR of the written form's at every sample point. The bounds are
    worst cases and the written form can be exact where its bound is not (1 - t * t at t = 1),
    hence both."""
    with np.errstate(all="ignore"):
        value, horner = _horner_bound(plan, written.t)
        actual = np.abs(value - written.exact)
        safe = ((horner <= ACCURACY_FACTOR * written.achievable)
                & (actual <= ACCURACY_FACTOR * (written.written_actual
                                                + np.spacing(np.abs(written.exact)))))
    return bool(np.all(safe | (~np.isfinite(written.achievable))
                       | (~np.isfinite(written.exact))))


def _build_factored(factors, leaf):
    terms = factored_terms(
        factors, leaf, apply("power", leaf, 2.0) if factors.squared else leaf,
        constant=lambda value, exact: const(value, leaf.graph),
        shift=lambda v, r, exact: apply("subtract", v, r) if r > 0.0 else apply("add", v, -r),
        square=lambda x: apply("power", x, 2.0),
        plus=lambda x, value, exact: apply("add", x, value))
    result = terms[0]
    for term in terms[1:]:
        result = apply("multiply", result, term)
    return result


def _build_horner(plan, leaf):
    if isinstance(plan, FactoredPlan):
        return _build_factored(plan.factors, leaf)
    variable = apply("power", leaf, 2.0) if plan.squared else leaf
    if plan.complement:
        variable = apply("subtract", 1.0, variable)
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
        complement = variable if plan.complement else apply("subtract", 1.0, variable)
        if plan.vanishing > 1:
            complement = apply("power", complement, float(plan.vanishing))
        result = apply("multiply", result, complement)
    return apply("multiply", leaf, result) if plan.odd else result


def _integers(coefficients):
    """Exact coefficients (Fractions, lowest degree first) as (integers, common denominator)."""
    denominator = math.lcm(*(c.denominator for c in coefficients))
    return tuple(int(c * denominator) for c in coefficients), denominator


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
        for operand in graph._node[node]["inputs"]:
            consumers.setdefault(operand, set()).add(node)
    output_set = set(outputs)
    replacements = {}
    budget = EXPLORATION_BUDGET
    for node in order:
        if budget <= 0:
            break
        shape = graph._node[node]["shape"]
        # derivatives only: a forward p * 0.0 must keep its nan at p = inf, which expanding drops
        if not graph._node[node]["derivative"] or not _is_polynomial(graph, node, shape):
            continue
        is_root = node in output_set or any(
            not _is_polynomial(graph, c, shape) or c in replacements
            for c in consumers.get(node, ()))
        if not is_root:
            continue
        members, leaves = _cluster(graph, node)
        budget -= MAX_CLUSTER if members is None else len(members)
        # a polynomial node is a cluster of its own, as costly as its factored form
        exact = members is not None and any(graph._node[m]["op"] == "polynomial" for m in members)
        if members is None or len(members) < 4 and not exact:
            continue
        leaf_values, leaf = _leaf_values(graph, leaves)
        if leaf is None or graph._node[leaf]["shape"] != shape:
            continue        # several leaves (or none): no cheap canonical form to aim for
        polynomials = _coefficients(graph, node, members, leaf_values)
        if polynomials is None or len(polynomials[node]) < 2:
            continue
        coefficients = polynomials[node]
        polynomial = sympy.Poly(list(reversed(coefficients)), sympy.Symbol("t"))
        seeds = {k for k in leaves if k != leaf and graph._node[k]["op"] == "broadcast_to_like"}
        removable = len(_removable(members | seeds, node, consumers))
        written = None
        plans = _horner_plans(polynomial)
        if exact:
            # the written form is the polynomial nodes' factored forms: a plan costing more
            # than the whole polynomial's is no gain
            plans.append(FactoredPlan(factored_form(*_integers(coefficients))))
        for plan in plans:
            if plan.cost > plans[-1].cost if exact else plan.cost >= removable:
                continue
            if written is None:
                written = _written_accuracy(graph, node, members, polynomials, leaf)
            if _as_accurate_as_the_graph(plan, written):
                replacements[node] = (plan, leaf, len(members))
                break
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
