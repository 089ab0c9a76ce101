"""Infix text of an expression, for repr/str and the CLI: short, and bounded for large DAGs.

Imports ops.core only.
"""

from .core import literal

_INFIX = {"add": ("+", 1), "subtract": ("-", 1), "multiply": ("*", 2), "divide": ("/", 2),
          "matmul": ("@", 2), "power": ("**", 4), "less": ("<", 0), "less_equal": ("<=", 0),
          "greater": (">", 0), "greater_equal": (">=", 0), "equal": ("==", 0),
          "not_equal": ("!=", 0)}
_ATOM = 9


def constant_text(value):
    if value.shape == ():
        number = value.item()
        return repr(number) if isinstance(number, bool) else literal(float(number)).strip("()")
    return f"const{list(value.shape)}"


def node_text(data, operands, input_ndim=None):
    """Text and precedence of one node given its operands' (text, precedence) pairs."""
    op, attrs = data["op"], data["attrs"]
    if op == "var":
        return attrs["name"], _ATOM
    if op == "const":
        text = constant_text(data["value"])
        return text, _ATOM if not text.startswith("-") else 3
    if op in _INFIX:
        symbol, precedence = _INFIX[op]
        (left, lp), (right, rp) = operands
        # ** is right-associative, the others left-associative; comparisons do not chain
        chains = precedence > 0
        left = left if lp > precedence or (lp == precedence and op != "power" and chains) \
            else f"({left})"
        right = right if rp > precedence or (rp == precedence and op == "power") else f"({right})"
        return f"{left} {symbol} {right}", precedence
    if op == "negative":
        text, precedence = operands[0]
        return f"-{text if precedence > 3 else f'({text})'}", 3
    if op == "transpose" and list(attrs["axes"]) == list(range(len(attrs["axes"]) - 1, -1, -1)):
        text, precedence = operands[0]
        return f"{text if precedence == _ATOM else f'({text})'}.T", _ATOM
    shown = {k: v for k, v in attrs.items() if k not in ("keep",)}
    if shown.get("keepdims") is False:
        del shown["keepdims"]
    if "keepdims" in attrs and len(attrs["axis"]) == input_ndim:
        del shown["axis"]       # a reduction over every axis reads best without one
    arguments = [text for text, _ in operands] + [f"{k}={v!r}" for k, v in sorted(shown.items())]
    return f"{op}({', '.join(arguments)})", _ATOM


def to_text(expr, limit=2000):
    """The expression as infix text, cut with '...' past ``limit`` characters.

    >>> from symgrad import var
    >>> to_text((var("x") + var("y")) * var("z"))
    '(x + y) * z'
    """
    graph = expr.graph
    texts = {}
    for node in graph.ancestors_in_order([expr.node]):
        data = graph.nodes[node]
        first_ndim = len(graph.nodes[data["inputs"][0]]["shape"]) if data["inputs"] else None
        text, precedence = node_text(data, [texts[i] for i in data["inputs"]], first_ndim)
        texts[node] = (text if len(text) <= limit else text[:limit] + "...", precedence)
    return texts[expr.node][0]
