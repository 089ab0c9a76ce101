"""User-supplied derivative rules: ``custom_gradient`` keeps an expression's value and replaces the
rule that differentiates it (gradient clipping in the backward pass only, straight-through
estimators, a rule more stable than the chain rule). New primitives are registered with ``defop``.

Imports ops.core only.
"""

import itertools

from ..errors import SymgradError
from .core import Expr, apply, defop, lift, same_dtype

_RULES = {}
_rule_keys = itertools.count()


def _custom_vjp(g, out, value, *inputs, rule):
    results = _RULES[rule](g, out, *inputs)
    if not isinstance(results, (list, tuple)):
        raise SymgradError(f"a custom gradient rule returns a list with one gradient (or None) "
                           f"per input, got {results!r}")
    # numbers and arrays are constant gradients; anything else is refused by lift
    results = [None if r is None else lift(r, g.graph) for r in results]
    if len(results) != len(inputs):
        raise SymgradError(f"a custom gradient rule returned {len(results)} gradients for "
                           f"{len(inputs)} inputs")
    return [None] + results


defop("custom_gradient", None, lambda shapes, rule: shapes[0], "{0}", _custom_vjp,
      dtype=same_dtype, nondifferentiable=(0,), view=True)


def custom_gradient(value, inputs, vjp):
    """``value`` (computed from ``inputs``) with its derivative rule replaced by ``vjp``.

    ``vjp(g, out, *inputs)`` returns one expression (or None) per input, like an op's rule: ``g``
    is the cotangent of ``value``, ``out`` is ``value``. Clipping the gradient in the backward pass:

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> y = custom_gradient(x, [x], lambda g, out, x: [sg.clip(g, -1.0, 1.0)])
    >>> sg.compile(sg.grad(5.0 * y, x), inputs=[x])(2.0)
    1.0
    """
    inputs = [inputs] if isinstance(inputs, Expr) else list(inputs)
    if not callable(vjp):
        raise SymgradError("custom_gradient needs a callable vjp(g, out, *inputs)")
    rule = f"rule{next(_rule_keys)}"
    _RULES[rule] = vjp
    try:
        return apply("custom_gradient", value, *inputs, rule=rule)
    except BaseException:
        del _RULES[rule]        # no node refers to it
        raise
