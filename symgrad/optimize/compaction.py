"""Derivatives of derivatives kept small as they are built: each polynomial cluster in one leaf
that a grad of a derivative appends becomes one polynomial node of exact coefficients
(ops.elementwise.polynomial), so that the next order differentiates those exactly and the graph
grows by a few nodes per order where the product rule doubles it.

Registered with differentiate (DERIVATIVE_SIMPLIFICATIONS), which cannot import the optimiser.
Imports graph, ops, differentiate and optimize.polynomial.
"""

from ..differentiate import DERIVATIVE_SIMPLIFICATIONS
from ..ops import Expr, apply
from ..ops.elementwise import polynomial as polynomial_node
from . import polynomial

SMALLEST_CLUSTER = 4        # as the optimiser's (polynomial.canonicalize): smaller ones stay


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
            else:
                leaf, integers, denominator = replacement
                replacement = polynomial_node(Expr(graph, copies.get(leaf, leaf)), integers,
                                              denominator)
        copies[node] = replacement.node
    return Expr(graph, copies.get(gradient.node, gradient.node))


def _exact_polynomial(graph, root, shape, copies):
    """(leaf, integer coefficients, denominator) of the cluster rooted at ``root`` when it is a
    polynomial of degree at least 1 in one leaf of its shape, with at least SMALLEST_CLUSTER
    operations or a polynomial node among them; else None."""
    members, leaves = polynomial._cluster(graph, root)
    if members is None:
        return None
    exact = any(graph.nodes[m]["op"] == "polynomial" for m in members)
    if len(members) < SMALLEST_CLUSTER and not exact or (exact and len(members) == 1):
        return None
    leaf_values, leaf = polynomial._leaf_values(graph, leaves)
    if leaf is None or graph.nodes[leaf]["shape"] != shape:
        return None
    values = polynomial._coefficients(graph, root, members, leaf_values)
    if values is None or len(values[root]) < 2:
        return None
    integers, denominator = polynomial._integers(values[root])
    return leaf, integers, denominator


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
