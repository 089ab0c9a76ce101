"""The textbook gradient examples, worked with symgrad.

Run with ``python examples/textbook_gradients.py``. It prints, for each example, the graph as a table
(forward nodes, then the derivative nodes that differentiation appended to the same graph, each with
its value at the point), the NumPy source compiled from it, and the numbers:

1. f = (x + y) * z at x=-2, y=5, z=-4: value -12, gradient (-4, -4, 3);
2. f = (x + y) * max(y, z) at the same point: value 15, gradient (5, 8, 0);
3. derivatives of tanh up to order 3 by repeated ``sg.grad``, and d^3/dx^3 x**5 at x=2 (= 240).

Examples 1 and 2 are built twice, with Python operators and with ``sg.parse``: both spellings give
the same nodes of the same graph.
"""

import math
import sys
from pathlib import Path

try:
    import symgrad as sg
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import symgrad as sg

POINT = {"x": -2.0, "y": 5.0, "z": -4.0}


def numbers(values):
    """Compiled outputs are NumPy scalars / 0-d arrays; print them as plain floats."""
    return [float(v) for v in values]


def worked_example(title, build, formula):
    """Differentiate ``build(x, y, z)`` (operators) and ``sg.parse(formula)``, show both."""
    print(f"=== {title} ===")
    # A fresh graph per example keeps the tables small.
    with sg.use_graph():
        x, y, z = sg.var("x"), sg.var("y"), sg.var("z")

        # 1. Built with Python operators.
        f = build(x, y, z)
        gradients = sg.grad(f, [x, y, z])      # symbol to symbol: three new expressions
        print(sg.show_graph([f, *gradients], inputs=[x, y, z], at=POINT))
        fn = sg.compile([f, *gradients], inputs=[x, y, z])
        print(fn.source)
        value, *grad = numbers(fn(**POINT))
        print(f"operators: f = {value:g}, (df/dx, df/dy, df/dz) = ({', '.join(f'{g:g}' for g in grad)})")

        # 2. The same formula typed as text. Its free names are the variables x, y, z above and
        #    the graph hash-conses nodes, so the parsed expression *is* the node built above.
        parsed = sg.parse(formula)
        print(f"sg.parse({formula!r}) is the same node: {parsed.node == f.node}")
        parsed_fn = sg.compile([parsed, *sg.grad(parsed, [x, y, z])], inputs=[x, y, z])
        p_value, *p_grad = numbers(parsed_fn(**POINT))
        print(f"parsed:    f = {p_value:g}, (df/dx, df/dy, df/dz) = ({', '.join(f'{g:g}' for g in p_grad)})")
        print()
    return value, grad


def higher_order():
    print("=== higher-order derivatives by repeated sg.grad ===")
    with sg.use_graph():
        t = sg.var("t")
        # Each derivative is an ordinary expression in the same graph, so it can be differentiated
        # again: d1 = 1 - tanh^2, d2 = -2 tanh (1 - tanh^2), d3 = -2 (1 - tanh^2)(1 - 3 tanh^2).
        derivatives = [sg.tanh(t)]
        for order in range(1, 4):
            derivatives.append(sg.grad(derivatives[-1], t))
            print(f"d^{order}/dt^{order} tanh(t) = {derivatives[-1]}")
        fn = sg.compile(derivatives, inputs=[t])
        print(fn.source)
        at = 0.5
        values = numbers(fn(at))
        th = math.tanh(at)
        closed_form = [th, 1 - th**2, -2 * th * (1 - th**2), -2 * (1 - th**2) * (1 - 3 * th**2)]
        for order, (value, exact) in enumerate(zip(values, closed_form)):
            print(f"order {order} of tanh at t={at}: {value:.12f}  (closed form {exact:.12f})")

        x = sg.var("x")
        d = x ** 5
        for _ in range(3):
            d = sg.grad(d, x)
        third = float(sg.compile(d, inputs=[x])(2.0))
        print(f"d^3/dx^3 x**5 = {d} = {sg.to_sympy(d)}; at x=2: {third:g}")
        print()
    return values, third


def main():
    # d/dx and d/dy of (x + y) * z are the node z itself and d/dz is the node x + y: the gradient
    # needs no new node, so this first table has no rows of kind 'grad'.
    value, grad = worked_example("(x + y) * z at x=-2, y=5, z=-4",
                                 lambda x, y, z: (x + y) * z, "(x + y) * z")
    assert (value, grad) == (-12.0, [-4.0, -4.0, 3.0])

    value, grad = worked_example("(x + y) * max(y, z) at x=-2, y=5, z=-4",
                                 lambda x, y, z: (x + y) * sg.maximum(y, z), "(x + y) * max(y, z)")
    assert (value, grad) == (15.0, [5.0, 8.0, 0.0])

    values, third = higher_order()
    th = math.tanh(0.5)
    assert math.isclose(values[3], -2 * (1 - th**2) * (1 - 3 * th**2), rel_tol=1e-12)
    assert third == 240.0


if __name__ == "__main__":
    main()
