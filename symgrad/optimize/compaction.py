"""Derivatives of derivatives kept small as they are built: each polynomial cluster in one leaf
that a grad of a derivative appends becomes one polynomial node of exact coefficients
(ops.elementwise.polynomial), so that the next order differentiates those exactly and the graph
grows by a few nodes per order where the product rule doubles it.

A cluster in several leaves (x * tanh(x), sigmoid(x) * sigmoid(-x), exp(sin x) with cos x,
tanh(x * y) with x and y) is read as one exact polynomial in all of them, and when it is smaller
so, written again as a sum of its terms grouped by the powers of all leaves but one: each group
one polynomial node in that main leaf times powers of the others. The leaves' derivatives are
polynomials in the same leaves (d tanh = 1 - tanh**2, d sin = cos, d exp = exp), so each order is
again such a sum, of a size polynomial in the order, and its numbers are exact integers: nothing
rounds between orders. The main leaf is one whose value is rounded in a bounded range (tanh,
sigmoid, sin, cos), where a polynomial node's factored form keeps the accuracy the product
rule's 1 - t * t had where t saturates.

Registered with differentiate (DERIVATIVE_SIMPLIFICATIONS), which cannot import the optimiser.
Imports graph, ops, differentiate and optimize.polynomial.
"""

from fractions import Fraction

from ..differentiate import DERIVATIVE_SIMPLIFICATIONS
from ..ops import Expr, apply
from ..ops.elementwise import polynomial as polynomial_node
from . import polynomial

SMALLEST_CLUSTER = 4        # as the optimiser's (polynomial.canonicalize): smaller ones stay
# a cluster in more leaves, or a polynomial of more terms, is left as built: reading it costs
# (terms x terms) per product, and a sum of that many groups is no compaction
MAX_LEAVES = 6
MAX_TERMS = 2_000
# a second derivative (a Hessian-vector product of Rosenbrock's, polynomial in x and v) does not
# swell: its product-rule program is kept as it was; from the third order on, where each order
# is the product rule applied to the last, clusters in several leaves are compacted
SEVERAL_LEAVES_FROM_ORDER = 3


def compact_derivative(graph, gradient, mark):
    """``gradient`` (an Expr whose new nodes have keys from ``mark`` on) with each polynomial
    cluster of at least SMALLEST_CLUSTER operations in one leaf, rooted among its new nodes,
    replaced by one polynomial node with the cluster's exact coefficients, and the new nodes
    reading one built again on it. Nothing is changed in place: the returned Expr (``gradient``
    itself when nothing was replaced) computes the same polynomial, and nodes older than
    ``mark`` are untouched."""
    order = _new_ancestors(graph, gradient.node, mark)
    if not order:
        return gradient
    nodes = graph.nodes
    consumers = {}
    for node in order:
        for operand in nodes[node]["inputs"]:
            consumers.setdefault(operand, []).append(node)
    copies = {}
    for node in order:
        data = nodes[node]
        shape = data["shape"]
        replacement = None
        if data["derivative"] and polynomial._is_polynomial(graph, node, shape) and (
                node == gradient.node or any(not polynomial._is_polynomial(graph, c, shape)
                                             for c in consumers.get(node, ()))):
            replacement = _exact_polynomial(graph, node, shape, copies)
        if replacement is None and not any(i in copies for i in data["inputs"]):
            continue
        # the stamps differentiation gave the node: its copy is the same derivative
        with graph.deriving(data["order"], grad_of=data["grad_of"]):
            if replacement is None:
                operands = [Expr(graph, copies.get(i, i)) for i in data["inputs"]]
                replacement = apply(data["op"], *operands, **data["attrs"])
            elif isinstance(replacement, GroupedPolynomial):
                replacement = replacement.build(graph, copies)
            else:
                leaf, integers, denominator = replacement
                replacement = polynomial_node(Expr(graph, copies.get(leaf, leaf)), integers,
                                              denominator)
        copies[node] = replacement.node
    return Expr(graph, copies.get(gradient.node, gradient.node))


def _exact_polynomial(graph, root, shape, copies):
    """(leaf, integer coefficients, denominator) of the cluster rooted at ``root`` when it is a
    polynomial of degree at least 1 in one leaf of its shape, with at least SMALLEST_CLUSTER
    operations or a polynomial node among them; a GroupedPolynomial when it is one in several
    leaves of its shape, written in fewer operations so; else None."""
    members, leaves = polynomial._cluster(graph, root)
    if members is None:
        return None
    exact = any(graph.nodes[m]["op"] == "polynomial" for m in members)
    if len(members) < SMALLEST_CLUSTER and not exact or (exact and len(members) == 1):
        return None
    leaf_values, leaf = polynomial._leaf_values(graph, leaves)
    if leaf is None:
        if graph.nodes[root]["order"] < SEVERAL_LEAVES_FROM_ORDER:
            return None
        return _grouped_polynomial(graph, root, shape, members, leaves)
    if graph.nodes[leaf]["shape"] != shape:
        return None
    values = polynomial._coefficients(graph, root, members, leaf_values)
    if values is None or len(values[root]) < 2:
        return None
    integers, denominator = polynomial._integers(values[root])
    return leaf, integers, denominator


def _grouped_polynomial(graph, root, shape, members, leaves):
    """The GroupedPolynomial of the cluster ``members`` rooted at ``root`` in its variable
    ``leaves`` (at least two, each of the cluster's shape), when it has fewer operations than
    the cluster; else None."""
    constants, variables = polynomial.split_leaves(graph, leaves)
    if not 2 <= len(variables) <= MAX_LEAVES or any(
            graph.nodes[v]["shape"] != shape for v in variables):
        return None
    arithmetic = SeveralLeaves(len(variables))
    values = {leaf: arithmetic.ring(arithmetic.exact(value)) for leaf, value in constants.items()}
    values.update((v, arithmetic.generators[k]) for k, v in enumerate(variables))
    computed = polynomial._coefficients(graph, root, members, values, arithmetic)
    if computed is None:
        return None
    grouped = GroupedPolynomial.of(computed[root], variables, _main_leaf(graph, variables,
                                                                          computed[root]))
    seeds = sum(1 for leaf in constants if graph.nodes[leaf]["op"] == "broadcast_to_like")
    if grouped is None or grouped.cost >= len(members) + seeds:
        return None
    return grouped


def _main_leaf(graph, variables, value):
    """The index of the leaf whose powers the polynomial nodes hold: one rounded in a bounded
    range (tanh's 1 - t**2 factors stay exact at its ends) of the highest degree, the first
    such."""
    degrees = value.degrees()
    return max(range(len(variables)), key=lambda k: (
        graph.nodes[variables[k]]["op"] in polynomial.ROUNDED_LEAF_RANGES, degrees[k], -k))


class SeveralLeaves:
    """polynomial._coefficients' arithmetic for clusters in several leaves: SymPy's sparse
    polynomials over the rationals, one generator per leaf."""

    def __init__(self, count):
        from sympy import QQ
        from sympy.polys.rings import ring
        self.domain = QQ
        self.ring, *self.generators = ring([f"l{k}" for k in range(count)], QQ)

    def exact(self, fraction):
        return self.domain(fraction.numerator, fraction.denominator)

    @staticmethod
    def add(a, b):
        return a + b

    @staticmethod
    def subtract(a, b):
        return a - b

    @staticmethod
    def multiply(a, b):
        return a * b

    @staticmethod
    def negative(a):
        return -a

    @staticmethod
    def power(a, exponent):
        return a ** exponent

    def composed(self, attrs, inner):
        value = self.ring.zero
        for coefficient in reversed(attrs["coefficients"]):
            value = value * inner + self.exact(Fraction(coefficient, attrs["denominator"]))
        return value

    @staticmethod
    def checked(value):
        if len(value) > MAX_TERMS or any(d > polynomial.MAX_DEGREE for d in value.degrees()) \
                or any(abs(c) > polynomial.LARGEST_COEFFICIENT for c in value.coeffs()):
            return None
        return value


class GroupedPolynomial:
    """A polynomial in several leaves as it is written: ``common`` (the powers of the leaves
    every term has, the main leaf's left to its polynomial nodes) times the sum of ``groups``,
    each (powers of the other leaves, exact coefficients of a polynomial in the main leaf,
    lowest degree first), plus the constant term. A group whose polynomial in the main leaf is
    a constant holds it in a polynomial node of another of its leaves, so that every
    coefficient stays exact."""

    def __init__(self, leaves, main, common, groups, constant):
        self.leaves, self.main, self.common, self.groups = leaves, main, common, groups
        self.constant = constant        # the constant term, a float exactly, or None

    @classmethod
    def of(cls, value, leaves, main):
        """The written form of the ring element ``value``; None for a constant, or for a
        constant term that no float holds (it would round)."""
        terms = value.terms()
        if len(terms) > 1:
            common = [0 if k == main else min(m[k] for m, _ in terms)
                      for k in range(len(leaves))]
        else:
            common = [0] * len(leaves)
        groups = {}
        for monomial, coefficient in terms:
            powers = tuple(0 if k == main else e - c
                           for k, (e, c) in enumerate(zip(monomial, common)))
            coefficients = groups.setdefault(powers, {})
            coefficients[monomial[main]] = Fraction(int(coefficient.numerator),
                                                    int(coefficient.denominator))
        written, constant = [], None
        for powers in sorted(groups):
            by_degree = groups[powers]
            coefficients = [by_degree.get(d, Fraction(0)) for d in range(max(by_degree) + 1)]
            if len(coefficients) == 1 and not any(powers):
                constant = coefficients[0]
            else:
                written.append((powers, coefficients))
        if not written or constant is not None and Fraction(float(constant)) != constant:
            return None
        return cls(leaves, main, tuple(common), written, constant)

    @property
    def cost(self):
        """Operations of the written sum."""
        cost = len(self.groups) - 1 + (self.constant is not None)
        cost += sum(e > 1 for e in self.common) + sum(e > 0 for e in self.common)
        for powers, coefficients in self.groups:
            others = [e for e in powers if e]
            if len(coefficients) == 1:
                held, others = (coefficients[0], others[0]), others[1:]
            else:
                held = None
            cost += (held != (1, 1)) + sum(e > 1 for e in others) + len(others)
        return cost

    def build(self, graph, copies):
        leaves = [Expr(graph, copies.get(leaf, leaf)) for leaf in self.leaves]
        total = None
        for powers, coefficients in self.groups:
            term = self._term(leaves, powers, coefficients)
            total = term if total is None else apply("add", total, term)
        if self.constant is not None:
            total = apply("add", total, float(self.constant))
        for k, e in enumerate(self.common):
            if e:
                total = apply("multiply", self._power(leaves[k], e), total)
        return total

    def _term(self, leaves, powers, coefficients):
        others = [(k, e) for k, e in enumerate(powers) if e]
        if len(coefficients) > 1:
            held = self._exact(leaves[self.main], coefficients, 0)
        else:
            k, e = others.pop(0)
            held = self._exact(leaves[k], coefficients, e)
        for k, e in others:
            held = apply("multiply", held, self._power(leaves[k], e))
        return held

    @staticmethod
    def _exact(leaf, coefficients, shift):
        """coefficients (in the leaf, lowest degree first) times leaf**shift, as one exact
        polynomial node (or the leaf itself)."""
        integers, denominator = polynomial._integers([Fraction(0)] * shift + coefficients)
        if integers[-1] == denominator and len(integers) == 2 and not integers[0]:
            return leaf
        return polynomial_node(leaf, integers, denominator)

    @staticmethod
    def _power(leaf, exponent):
        return leaf if exponent == 1 else apply("power", leaf, float(exponent))


def _new_ancestors(graph, root, mark):
    """The ancestors of ``root`` with keys from ``mark`` on, in evaluation order (ascending keys;
    the walk stops at older nodes, so it costs what this derivative added, not the graph)."""
    nodes = graph.nodes
    if root < mark:
        return []
    seen, stack = {root}, [root]
    while stack:
        for operand in nodes[stack.pop()]["inputs"]:
            if operand >= mark and operand not in seen:
                seen.add(operand)
                stack.append(operand)
    return sorted(seen)


DERIVATIVE_SIMPLIFICATIONS.append(compact_derivative)
