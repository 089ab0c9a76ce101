"""Stability rewrites, applied as expressions are built so that derivatives are taken of the stable
form too: log(softmax) -> log_softmax, log(sum(exp)) -> logsumexp, log(1 + exp) -> softplus,
log(sigmoid(x)) -> -softplus(-x), 1 - sigmoid(x) -> sigmoid(-x), also through views (reshape,
transpose, indexing) and positive constant factors. Each rewrite is recorded on the graph
(``graph.rewrites``) so that ``compile(..., explain=True)`` can name it.

Imports ops.core and the op families; registers its rules at the "stability" stage of the build
rules, which apply runs after each op's local simplifications.
"""

import numpy as np

from .core import Applied, apply, broadcast_shapes, build_rule, constant_value, is_scalar_constant
from .elementwise import log, negative, sigmoid, softplus
from .reduce import log_softmax, logsumexp

VIEWS = ("reshape", "transpose", "getitem", "expand_dims", "squeeze")


def _recorded(rule, before, result, operand):
    """Note on ``result`` that ``rule`` made it, after what made its ``operand`` (a chain such as
    log(1 - sigmoid(x)) -> log(sigmoid(-x)) -> -softplus(x) keeps both steps)."""
    records = result.graph.rewrites.get(operand.node, []) + [Applied(rule, before)]
    result.graph.note_rewrites(result.node, records)
    return result


def log_of_softmax(x):
    return log_softmax(x.inputs[0], axis=x.attrs["axis"]) if x.op == "softmax" else None


def log_of_sum_of_exp(x):
    if x.op != "sum" or x.inputs[0].op != "exp":
        return None
    return logsumexp(x.inputs[0].inputs[0], axis=x.attrs["axis"], keepdims=x.attrs["keepdims"])


def log_of_one_plus_exp(x):
    if x.op != "add":
        return None
    a, b = x.inputs
    for one, other in ((a, b), (b, a)):
        if is_scalar_constant(one, 1) and other.op == "exp" and other.shape == x.shape:
            return softplus(other.inputs[0])
    return None


def log_of_sigmoid(x):
    return negative(softplus(negative(x.inputs[0]))) if x.op == "sigmoid" else None


def log_through_view(x):
    """log(view(p)) = view(log(p)), so that the rules above see p (a reshaped softmax, say)."""
    if x.op not in VIEWS or not _stabilizable(x.inputs[0]):
        return None
    inner = log(x.inputs[0])
    return apply(x.op, inner, **x.attrs)


def log_of_scaled(x):
    """log(c * p) = log(p) + log(c) for a positive constant c, so that the rules above see p."""
    if x.op != "multiply":
        return None
    a, b = x.inputs
    for factor, other in ((a, b), (b, a)):
        value = constant_value(factor)
        if value is not None and value.size == 1 and value.reshape(()) > 0 \
                and _stabilizable(other) and other.shape == x.shape:
            return log(other) + float(np.log(value.reshape(())))
    return None


LOG_RULES = [log_of_softmax, log_of_sum_of_exp, log_of_one_plus_exp, log_of_sigmoid,
             log_through_view, log_of_scaled]


def _stabilizable(x):
    """Whether one of the direct rules would rewrite log(x), looking through views; a check of
    the pattern only, so that asking builds nothing."""
    while x.op in VIEWS:
        x = x.inputs[0]
    if x.op in ("softmax", "sigmoid"):
        return True
    if x.op == "sum":
        return x.inputs[0].op == "exp"
    if x.op == "add":
        a, b = x.inputs
        return any(is_scalar_constant(one, 1) and other.op == "exp" and other.shape == x.shape
                   for one, other in ((a, b), (b, a)))
    return False


@build_rule("log", stage="stability")
def _stable_log(inputs):
    (x,) = inputs
    for rule in LOG_RULES:
        result = rule(x)
        if result is not None:
            return _recorded(rule.__name__, f"log({x.op}(...))", result, x)
    return None


@build_rule("log1p", stage="stability")
def _stable_log1p(inputs):
    (x,) = inputs
    if x.op == "exp":
        return _recorded("log1p_of_exp", "log1p(exp(...))", softplus(x.inputs[0]), x)
    return None


@build_rule("subtract", stage="stability")
def _stable_one_minus(inputs):
    one, x = inputs
    if is_scalar_constant(one, 1) and x.op == "sigmoid" \
            and broadcast_shapes(one.shape, x.shape) == x.shape:
        return _recorded("one_minus_sigmoid", "1 - sigmoid(...)", sigmoid(negative(x.inputs[0])),
                         x)
    return None
