"""Polynomial canonicalisation, the cure for expression swell in higher derivatives.

Each derivative of tanh is a polynomial in t = tanh(x), but the product rule builds it as a tree
that doubles at every order. Here every maximal cluster of element-wise +, -, *, negation and
integer powers is read as a polynomial in its leaves (the nodes feeding it), expanded by SymPy and
rebuilt in Horner form when that takes fewer operations: the n-th derivative then costs O(n)
statements instead of O(2^n). Clusters are bounded in size, degree and terms, so SymPy's work is.

Imports ops and optimize.rebuild.
"""

import sympy

from ..graph import Graph
from ..ops import Expr, apply, const
from .rebuild import Applied, carried_grad_of, name_outputs

POLYNOMIAL_OPS = ("add", "subtract", "multiply", "negative", "power")
MAX_CLUSTER = 400
MAX_DEGREE = 40
MAX_TERMS = 300          # of the expanded polynomial, bounded before SymPy expands
EXPLORATION_BUDGET = 200_000    # cluster nodes visited per graph: keeps the pass linear


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


def _term_bound(graph, root, members):
    """An upper bound on the number of terms of the expanded cluster, computed without expanding
    (a product of n binomials would expand to 2**n terms)."""
    terms = {}
    for node in sorted(members):
        data = graph.nodes[node]
        args = [terms.get(i, 1) for i in data["inputs"]]
        if data["op"] in ("add", "subtract"):
            terms[node] = args[0] + args[1]
        elif data["op"] == "multiply":
            terms[node] = args[0] * args[1]
        elif data["op"] == "negative":
            terms[node] = args[0]
        else:
            terms[node] = args[0] ** _integer_exponent(graph, node)
        if terms[node] > MAX_TERMS * 100:
            return terms[node]
    return terms[root]


def _to_sympy(graph, root, members, symbols):
    built = {}
    for node in sorted(members):            # keys ascend in evaluation order
        data = graph.nodes[node]
        args = [built.get(i, symbols.get(i)) for i in data["inputs"]]
        op = data["op"]
        if op == "add":
            built[node] = args[0] + args[1]
        elif op == "subtract":
            built[node] = args[0] - args[1]
        elif op == "multiply":
            built[node] = args[0] * args[1]
        elif op == "negative":
            built[node] = -args[0]
        else:
            built[node] = args[0] ** _integer_exponent(graph, node)
    return built[root]


def _leaf_symbols(graph, leaves):
    symbols = {}
    for k, leaf in enumerate(leaves):
        data = graph.nodes[leaf]
        if data["op"] == "broadcast_to_like":         # a seed such as ones(x.shape): a number
            data = graph.nodes[data["inputs"][0]]
        if data["op"] == "const" and data["value"].size == 1 and data["dtype"] != "bool":
            value = float(data["value"].reshape(()))
            symbols[leaf] = sympy.Integer(int(value)) if value.is_integer() and abs(value) < 2**53 \
                else sympy.Float(value)
        else:
            symbols[leaf] = sympy.Symbol(f"l{k}")
    return symbols


def _horner_plan(coefficients):
    """(coefficients in the variable used, whether that variable is t**2, whether the result is
    multiplied by t once more): an odd or even polynomial, like every derivative of tanh, is
    evaluated in t**2 for half the work."""
    degree = len(coefficients) - 1
    present = [degree - k for k, c in enumerate(coefficients) if c != 0]
    if len(present) > 1 and len({d % 2 for d in present}) == 1:
        odd = present[0] % 2
        squared = [c for k, c in enumerate(coefficients) if (degree - k) % 2 == odd]
        return squared, True, bool(odd)
    return coefficients, False, False


def _horner_cost(coefficients):
    plan, squared, odd = _horner_plan(coefficients)
    return 2 * (len(plan) - 1) + squared + odd


def _build_horner(coefficients, leaf):
    """sum c_k t**k evaluated as ((c_n u + c_{n-1}) u + ...) with u = t or t**2."""
    plan, squared, odd = _horner_plan(coefficients)
    variable = apply("power", leaf, 2.0) if squared else leaf
    result = None
    for coefficient in plan:
        if result is None:
            result = const(coefficient, leaf.graph)
            continue
        result = apply("multiply", result, variable)
        if coefficient > 0:
            result = apply("add", result, coefficient)
        elif coefficient < 0:
            result = apply("subtract", result, -coefficient)
    return apply("multiply", leaf, result) if odd else result


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
        if not _is_polynomial(graph, node, shape):
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
        if _term_bound(graph, node, members) > MAX_TERMS * 100:
            continue
        symbols = _leaf_symbols(graph, leaves)
        variables = [s for s in symbols.values() if isinstance(s, sympy.Symbol)]
        if len(variables) != 1:
            continue        # several leaves: no cheap canonical form to aim for
        expression = sympy.expand(_to_sympy(graph, node, members, symbols))
        if not expression.has(variables[0]):
            continue
        polynomial = sympy.Poly(expression, variables[0])
        if polynomial.degree() > MAX_DEGREE:
            continue
        coefficients = [float(c) for c in polynomial.all_coeffs()]
        if _horner_cost(coefficients) < len(members):
            leaf = next(leaf for leaf, s in symbols.items() if s is variables[0])
            replacements[node] = (coefficients, leaf)
    if not replacements:
        return graph, outputs, inputs
    target = Graph()
    mapping = {}
    with target.lock:
        for node in inputs:
            data = graph.nodes[node]
            mapping[node] = target.variable(data["attrs"]["name"], data["shape"], data["dtype"])
        for node in order:
            if node in mapping:
                continue
            data = graph.nodes[node]
            with target.deriving(data["order"], grad_of=carried_grad_of(graph, data, mapping)):
                if data["op"] == "var":
                    mapping[node] = target.variable(data["attrs"]["name"], data["shape"],
                                                    data["dtype"])
                    continue
                if data["op"] == "const":
                    mapping[node] = const(data["value"], target).node
                    continue
                if node in replacements:
                    coefficients, leaf = replacements[node]
                    result = _build_horner(coefficients, Expr(target, mapping[leaf]))
                    if result.shape != data["shape"]:
                        result = apply("broadcast_to_like", result,
                                       Expr(target, mapping[leaf]))
                    applied.append(Applied(
                        "horner_form_of_polynomial",
                        f"degree {len(coefficients) - 1} in one leaf: "
                        f"{len(_cluster(graph, node)[0])} operations -> "
                        f"{_horner_cost(coefficients)}"))
                else:
                    operands = [Expr(target, mapping[i]) for i in data["inputs"]]
                    result = apply(data["op"], *operands, **data["attrs"])
            mapping[node] = result.node
            name = graph.readable_name(node) if data["derivative"] else None
            if name and result.node not in target.name_hints:
                target.name_hints[result.node] = name
    name_outputs(graph, outputs, target, mapping)
    return target, [mapping[o] for o in outputs], [mapping[i] for i in inputs]
